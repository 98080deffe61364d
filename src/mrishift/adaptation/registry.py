"""Classes registered by name with declared hyper-parameters: the fine-tuning strategies
(mrishift.adaptation.strategies) and the test-time methods (mrishift.adaptation.test_time) share this, so a study arm is
built and checked the same way for both."""

from __future__ import annotations


class Registry:
    """Name -> class for one kind of thing (``kind`` names it in messages). A class declares its defaults as
    ``HPARAMS``; ``build(name, **hparams)`` rejects any hyper-parameter it does not declare."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        def wrap(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls

        return wrap

    def names(self) -> list[str]:
        return list(self._classes)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._classes

    def build(self, name: str, **hparams):
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {self.names()}")
        return self._classes[name](**hparams)

    def build_arm(self, arm: str, spec: dict, class_key: str, arm_keys: tuple[str, ...]):
        """The instance one study arm runs: ``spec`` is its config entry — the class under ``class_key`` (default:
        the arm's name), the arm's own settings ``arm_keys``, and hyper-parameters. ``.arm`` is set to the name."""
        cls = spec.get(class_key, arm)
        if cls not in self:
            raise ValueError(f"arm {arm!r}: '{class_key}: {cls}' is not a registered {self.kind}; "
                             f"registered: {self.names()}")
        built = self.build(cls, **{k: v for k, v in spec.items() if k not in arm_keys})
        built.arm = arm
        return built


def is_number(value, integer: bool = False) -> bool:
    """Whether a hyper-parameter is a real number (an int when ``integer``) — YAML's true/false are not."""
    return isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)


def resolve_hparams(owner: str, defaults: dict, given: dict) -> dict:
    """``defaults`` updated by ``given``; an undeclared key raises naming ``owner`` and the declared keys."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"{owner}: unknown hyper-parameter(s) {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **given}


def chosen_subset(spec: dict, key: str, allowed: list, what: str) -> list:
    """An arm's ``key:`` entry (default: all of ``allowed``), in ``allowed``'s order; anything else raises."""
    chosen = spec.get(key, allowed)
    if not isinstance(chosen, list) or not chosen or any(x not in allowed for x in chosen):
        raise ValueError(f"'{key}: {chosen}' must be a non-empty list of the study's {what} {allowed}")
    return [x for x in allowed if x in chosen]


def chosen_pairs(spec: dict, domains: list[str]) -> list[tuple[str, str]]:
    """The source→target pairs of an entry with ``sources:`` and ``targets:`` (each absent or null: every domain), in
    the study's order (source, then target); none left raises."""
    given = {key: spec[key] for key in ("sources", "targets") if spec.get(key) is not None}
    sources, targets = (chosen_subset(given, key, domains, "domains") for key in ("sources", "targets"))
    pairs = [(s, t) for s in sources for t in targets if s != t]
    if not pairs:
        raise ValueError(f"'sources: {sources}' and 'targets: {targets}' leave no source→target pair")
    return pairs
