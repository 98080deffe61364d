import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mrishift.config import ConfigError, apply_overlay, load_schema, validate_config

CONFIG = Path(__file__).resolve().parents[1] / "config"


def load(name):
    return yaml.safe_load((CONFIG / name).read_text())


def test_defaults_are_filled():
    config = validate_config({})
    assert config["data"]["source"] == "synthetic"
    assert config["data"]["synthetic"]["subjects_per_domain"] == 8
    assert config["preprocess"]["clip_percentiles"] == [1.0, 99.0]
    assert config["splits"]["seed"] == 0xBADCAFE


def test_shipped_configs_validate():
    validate_config(load("config.yaml"))
    validate_config(load("tiny.yaml"))
    paper = load("paper.yaml")
    paper["data"]["cc359"]["paths"] = ["/data/CC359"]
    assert validate_config(paper)["preprocess"]["spacing_mm"] == [1.0, 1.0, 1.0]
    adam = validate_config({**paper, "models": {**paper["models"], **load("adam.yaml")["models"]},
                            "training": {**paper["training"], **load("adam.yaml")["training"]}})
    assert adam["models"]["optimizers"] == ["sgd", "adam"] and adam["training"]["adam"]["source"]["lr_drop_epoch"] == 76
    assert validate_config({})["training"]["adam"] == {"source": {"lr": 0.001, "lr_drop_epoch": None},
                                                       "finetune": {"lr": 0.001, "lr_drop_epoch": None}}
    sizes = validate_config({**paper, "models": {**paper["models"], **load("width-depth.yaml")["models"]}})
    assert sizes["models"]["sizes"][1:] == [{"width": 0.5}, {"width": 2.0}, {"width": 4.0}, {"levels": 3},
                                            {"levels": 5}]
    frozen = load("frozen-random-encoder.yaml")
    assert validate_config({**paper, "models": {**paper["models"], **frozen["models"]}})["models"][
        "frozen_random_encoder"] == [False, True]


@pytest.mark.parametrize("config, message", [
    ({"data": {"sorce": "synthetic"}}, "config key 'data': Additional properties are not allowed ('sorce'"),
    ({"preprocess": {"spacing_mm": [1, 1, -1]}}, "config key 'preprocess.spacing_mm.2': -1 is less than or equal to"),
    ({"data": {"domains": ["siemens_15", "toshiba_3"]}}, "config key 'data.domains.1': 'toshiba_3' is not one of"),
    ({"splits": {"budgets": ["3scans", "half"]}}, "config key 'splits.budgets.1': 'half' does not match"),
    ({"data": {"synthetic": {"subjects_per_domain": "8"}}}, "'data.synthetic.subjects_per_domain': '8' is not of type"),
    ({"data": {"source": "cc359"}}, "'data.cc359.paths' is required when data.source is 'cc359'.*Calgary-Campinas"),
    ({"data": {"synthetic": {"subjects_per_domain": 3}}, "splits": {"budgets": ["3scans"]}}, "too few"),
    ({"models": {"architectures": ["unet_vanilla"]}, "training": {"source": {"patch_size": 72}}},
     "'training.source.patch_size': 72 is not a multiple of unet_vanilla's stride 16"),
    ({"training": {"source": {"optimizer": "adam"}}}, "'training.source': Additional properties are not allowed"),
    ({"models": {"optimizers": ["rmsprop"]}}, "'models.optimizers.0': 'rmsprop' is not one of"),
    ({"models": {"sizes": [{}, {"levels": 4}]}}, "'models.sizes': .* names one size of unet2d_residual twice"),
    ({"models": {"sizes": [{"depth": 3}]}}, "'models.sizes.0': Additional properties are not allowed"),
    ({"models": {"sizes": [{"levels": 5}]}, "training": {"finetune": {"patch_size": 40}}},
     "'training.finetune.patch_size': 40 is not a multiple of unet2d_residual_l5's stride 16"),
    ({"strategies": {"ft_middle": {}}}, "'strategies.ft_middle': arm 'ft_middle': 'strategy: ft_middle' is not a regis"),
    ({"strategies": {"fast": {"strategy": "ft_last", "lr": 0}}}, "'strategies.fast': strategy 'ft_last': lr must be"),
    ({"data": {"domains": ["siemens_15", "ge_3"]}, "evaluation": {"similarity": {"sources": ["philips_3"]}}},
     "'evaluation.similarity': 'sources: \\['philips_3'\\]' must be a non-empty list of the study's domains"),
    ({"splits": {"finetune_pairs": {"sources": ["ge_3"], "targets": ["ge_3"]}}},
     "'splits.finetune_pairs': 'sources: \\['ge_3'\\]' and 'targets: \\['ge_3'\\]' leave no source→target pair"),
    ({"splits": {"finetune_pairs": {"sources": ["ge_3"]}}, "evaluation": {"similarity": {"sources": ["ge_15"]}}},
     "'evaluation.similarity': none of its pairs is fine-tuned"),
    ({"splits": {"finetune_pairs": {"sources": ["ge_3"]}}, "strategies": {"ft_all": {"sources": ["ge_15"]}}},
     "'strategies.ft_all': 'sources: \\['ge_15'\\]' must be a non-empty list of the study's fine-tuning sources"),
])
def test_bad_config_names_the_key(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("'data.cc359", "'data\\.cc359")):
        validate_config(config)


def test_finetune_pairs_default_to_every_ordered_pair_and_keep_the_study_order():
    from mrishift.adaptation.registry import chosen_pairs

    domains = ["siemens_15", "ge_3", "philips_3"]
    assert chosen_pairs(validate_config({})["splits"]["finetune_pairs"], domains) == [
        ("siemens_15", "ge_3"), ("siemens_15", "philips_3"), ("ge_3", "siemens_15"), ("ge_3", "philips_3"),
        ("philips_3", "siemens_15"), ("philips_3", "ge_3")]
    assert chosen_pairs({"sources": ["philips_3", "siemens_15"], "targets": None}, domains) == [
        ("siemens_15", "ge_3"), ("siemens_15", "philips_3"), ("philips_3", "siemens_15"), ("philips_3", "ge_3")]


def test_every_schema_leaf_has_default_and_description():
    schema = load_schema()

    def walk(node, path):
        assert "description" in node, f"{path} has no description"
        if "$ref" in node:
            node = {**schema["$defs"][node["$ref"].split("/")[-1]], **node}
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} allows unknown keys"
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")
        else:
            assert "default" in node, f"{path} has no default"

    walk(schema, "config")
    readme = (CONFIG / "README.md").read_text()
    for key in ["source", "domains", "subjects_per_domain", "native_spacing_mm", "shift_strength", "deformation_mm",
                "paths", "require_complete", "spacing_mm", "image_interpolation", "clip_percentiles", "seed",
                "n_validation", "n_folds", "budgets", "architectures", "width", "epochs", "iters_per_epoch",
                "batch_size", "patch_size", "lr", "lr_drop_epoch", "lr_factor", "optimizer", "momentum", "augment_p",
                "seeds", "validate_every", "device", "bf16", "channels_last", "threads", "strategies", "test_time"]:
        assert f"`{key}`" in readme or f".{key}`" in readme, f"config/README.md does not explain {key}"


def test_an_overlay_replaces_arms_and_budgets_but_merges_the_rest():
    merged = {"strategies": {"ft_all": {}, "ft_first": {}, "ft_last": {"lr": 0.1}},  # Snakemake's key-by-key merge
              "splits": {"budgets": ["every4"], "seed": 3}, "training": {"seeds": [0]}}
    overlay = {"strategies": {"ft_last": {}}, "splits": {"budgets": ["every4"]}}
    config = apply_overlay(merged, overlay)
    assert config["strategies"] == {"ft_last": {}}  # not ft_all + ft_first + ft_last with the default's lr
    assert config["splits"] == {"budgets": ["every4"], "seed": 3} and config["training"] == {"seeds": [0]}
    assert apply_overlay({"strategies": {"a": {}}}, {})["strategies"] == {"a": {}}  # no overlay: unchanged
    assert list(apply_overlay({}, {"strategies": {"b": {}, "a": {}}})["strategies"]) == ["b", "a"]  # order kept


def test_a_non_editable_install_finds_its_schema(tmp_path):
    """The schema is package data: a wheel-style install (here into a folder, away from the repository) validates a
    config with no repository layout around it."""
    root = CONFIG.parent
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(tmp_path / "site"), str(root)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    assert (tmp_path / "site/mrishift/schema.yaml").is_file()
    check = ("import mrishift.config as c, yaml, sys; "
             "assert c.__file__.startswith(sys.argv[1]), c.__file__; "
             "config = c.validate_config(yaml.safe_load(open(sys.argv[2]))); "
             "print(config['training']['finetune_job'], config['splits']['seed'])")
    result = subprocess.run([sys.executable, "-c", check, str(tmp_path / "site"), str(CONFIG / "config.yaml")],
                            capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site"),
                                                                               "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["strategy", str(0xBADCAFE)]
