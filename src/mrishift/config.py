"""Config validation against the package's schema.yaml (config/schema.yaml links to it): defaults filled in, errors
name the key and the problem."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from mrishift.data.cc359 import DOMAINS, subject_ids
from mrishift.data.splits import parse_budget

SCHEMA = resources.files("mrishift") / "schema.yaml"  # package data: found however mrishift is installed


class ConfigError(ValueError):
    pass


# Keys an overlay (--configfile) replaces whole instead of merging into the default key by key: an overlay that
# lists two arms runs those two, not those two plus every arm of config/config.yaml.
REPLACED_BY_OVERLAY = (("strategies",), ("test_time",), ("splits", "budgets"))


def apply_overlay(config: dict, overlay: dict) -> dict:
    """Give ``config`` (Snakemake's merge of the default and the overlays) the overlay's own value of every key in
    ``REPLACED_BY_OVERLAY``; other keys keep Snakemake's key-by-key merge."""
    for path in REPLACED_BY_OVERLAY:
        node, target = overlay, config
        for key in path[:-1]:
            node, target = (node or {}).get(key), target.setdefault(key, {})
        if isinstance(node, dict) and path[-1] in node:
            target[path[-1]] = copy.deepcopy(node[path[-1]])  # keeps the overlay's order: it is the tables' order
    return config


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = sub["default"] if not isinstance(sub["default"], (dict, list)) else \
                        yaml.safe_load(yaml.safe_dump(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema(path: str | Path | None = None) -> dict:
    return yaml.safe_load(Path(path).read_text() if path else SCHEMA.read_text())


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Fill defaults into ``config`` in place and validate it; raise ``ConfigError`` naming every bad key."""
    schema = schema or load_schema()
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            lines.append(f"config key '{key}': {error.message}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    _check_semantics(config)
    return config


def _check_semantics(config: dict) -> None:
    """Rules a JSON schema cannot express."""
    data = config["data"]
    unknown = [d for d in data["domains"] if d not in DOMAINS]
    if unknown:
        raise ConfigError(f"config key 'data.domains': unknown domain(s) {unknown}; known: {list(DOMAINS)}")
    if data["source"] == "cc359" and not data["cc359"]["paths"] and not data["cc359"]["plan_only"]:
        from mrishift.data.fetch import HOW_TO_GET

        raise ConfigError("config key 'data.cc359.paths' is required when data.source is 'cc359'. " + HOW_TO_GET)
    from mrishift.adaptation import registry, strategies

    try:
        study_pairs = registry.chosen_pairs(config["splits"]["finetune_pairs"], data["domains"])
    except ValueError as error:
        raise ConfigError(f"config key 'splits.finetune_pairs': {error}") from error
    for arm, spec in config["strategies"].items():
        try:
            strategies.build_arm(arm, spec)
            strategies.arm_budgets(spec, config["splits"]["budgets"])
            strategies.arm_pairs(spec, study_pairs)
        except ValueError as error:
            raise ConfigError(f"config key 'strategies.{arm}': {error}") from error
    from mrishift.adaptation import test_time
    from mrishift.evaluation import similarity

    for arm, spec in config["test_time"].items():
        try:
            test_time.build_arm(arm, spec)
            test_time.arm_pairs(spec, data["domains"])
        except ValueError as error:
            raise ConfigError(f"config key 'test_time.{arm}': {error}") from error
        if arm in config["strategies"]:
            raise ConfigError(f"config key 'test_time.{arm}': the name is also a fine-tuning arm's (strategies.{arm}); "
                              "tables and figures tell arms apart by name")
    try:
        analysed = similarity.analysed_pairs(config["evaluation"]["similarity"], data["domains"])
    except ValueError as error:
        raise ConfigError(f"config key 'evaluation.similarity': {error}") from error
    finetuned = registry.chosen_pairs(config["splits"]["finetune_pairs"], data["domains"])
    if not set(analysed) & set(finetuned):
        raise ConfigError("config key 'evaluation.similarity': none of its pairs is fine-tuned "
                          f"(splits.finetune_pairs: {finetuned})")
    from mrishift.models import architectures

    sizes = config["models"]["sizes"]
    for architecture in config["models"]["architectures"]:
        levels = architectures.default_levels(architecture)
        resolved = [(size.get("width", config["models"]["width"]), size.get("levels") or levels) for size in sizes]
        if len(set(resolved)) < len(resolved):
            raise ConfigError(f"config key 'models.sizes': {sizes} names one size of {architecture} twice (models.width "
                              f"{config['models']['width']:g}, {levels} levels: {{}})")
        for size in sizes:
            stride = architectures.stride(architecture, size.get("levels"))
            for recipe in ("source", "finetune"):
                key, patch = f"training.{recipe}.patch_size", config["training"][recipe]["patch_size"]
                if architectures.dims(architecture) == 3:
                    key, patch = f"training.volumetric.{recipe}.patch_size", config["training"]["volumetric"][recipe][
                        "patch_size"]
                if any(side % stride for side in (patch if isinstance(patch, list) else [patch])):
                    raise ConfigError(f"config key '{key}': {patch} is not a multiple of "
                                      f"{architecture}{architectures.size_suffix(size)}'s stride {stride} (its "
                                      "down-sampling levels)")
    splits = config["splits"]
    budgets = [parse_budget(b) for b in splits["budgets"]]  # raises ValueError naming the bad budget
    n_subjects = (min(len(subject_ids(d, data["synthetic"]["subjects_per_domain"])) for d in data["domains"])
                  if data["source"] == "synthetic" else 59)
    needed = splits["n_validation"] + 1
    if max(b.scans for b in budgets) + 1 > n_subjects or needed > n_subjects or splits["n_folds"] > n_subjects:
        raise ConfigError(
            f"config: {n_subjects} subjects per domain are too few for n_validation={splits['n_validation']}, "
            f"n_folds={splits['n_folds']} and budgets {splits['budgets']} (each domain needs at least one test scan)"
        )
