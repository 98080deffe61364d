"""Fine-tuning strategies: one small class each, registered by name, hyper-parameters declared beside it.

The trainer only talks to this contract:

* ``trainable(model) -> list[str]``: names of the parameters that train (all others are frozen);
* ``network(source, arch, width) -> (model, arch)``: the network a fine-tuning run trains, built from its source
  model, and the architecture name it is saved under (so scoring rebuilds it); by default the source model itself.
  A strategy that owns extra modules (SpotTune's frozen copy and policy network) returns a network holding them:
  they are then saved with the model and in every epoch checkpoint. The run's seed is set just before;
* ``begin(model, recipe)``: called once a run's model is on its device, before its optimizer is built and before a
  checkpoint is restored — so it sees the weights the run starts from (a fine-tune: its source model), e.g. to keep
  them for a penalty, and the recipe it trains with; by default nothing;
* ``uses_source_data``: True for a strategy whose batches also draw source-domain slices (``batch``'s ``source``:
  a sampler over the pair's source training scans, every slice; the workflow declares and loads them only then);
* ``from_scratch``: True for a strategy whose runs start from random initialisation, with the source recipe, and never
  read a source model (``mrishift.adaptation.scratch``);
* ``frozen_bn``: what BatchNorm layers whose parameters are all frozen do — ``"train"`` (default, the public
  code: the whole model is in train mode, so their running statistics follow the target data) or ``"eval"``
  (they keep the source's statistics);
* ``recipe(recipe) -> Recipe``: the recipe it trains with (default: the configured one, ``lr`` overridable);
* ``optimizer(parameters, recipe, source_state) -> torch.optim.Optimizer``: ``parameters`` the trainable ones by
  name; ``source_state`` the optimizer state the source run ended with (``mrishift.training.loop.optimizer_state``: SGD
  momentum buffers or Adam moments by parameter name) for a strategy with ``uses_source_optimizer``, else None. The
  trainer sets each parameter group's learning rate every epoch from the recipe's schedule, times the group's
  ``lr_scale`` (default 1) — how a group with its own rate (SpotTune's policy) follows the schedule;
* ``batch(epoch, target, source)``: draws one training batch;
* ``loss_terms(model, images, masks) -> {name: Tensor}``: the loss as named terms (default: ``bce``), summed for the
  gradient; the run record keeps each term's mean per epoch (``loss_terms``) when there are several, beside the
  total (``losses``); ``loss`` is their sum;
* ``adapt(model, target, device)``: for strategies that do not train (``trains = False``), what they do to the
  source model instead (e.g. re-estimate BatchNorm statistics); by default nothing.

Adding a strategy = one class here (or in its own module imported at the end of this one, as
``gradient_transfer`` and ``scratch`` are) with ``@register("name")`` and its ``HPARAMS``, plus one entry in the
config.

A study runs *arms*: ``strategies: {arm: {strategy: class, budgets: [...], **hparams}}`` in the config, the class
defaulting to the arm's name, so one class can run under several settings (``ft_first_bn_eval: {strategy: ft_first,
frozen_bn: eval}``). ``budgets`` (default: every budget of ``splits.budgets``) lets a costly or side arm run on fewer
budgets, e.g. to keep the demo inside its time. ``build_arm`` makes one; the arm's name is what paths, tables and
figures show.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from mrishift.adaptation.registry import Registry, chosen_subset, is_number, resolve_hparams
from mrishift.models.architectures import LAYER_GROUPS

# torch is imported by the methods that run in a job, not here: the workflow builds and checks every arm each time
# it is parsed — at every Snakemake start, twice per cluster job — where importing torch would cost ~2 s.
if TYPE_CHECKING:
    import torch
    from torch import nn

_REGISTRY = Registry("strategy")
register, names, build = _REGISTRY.register, _REGISTRY.names, _REGISTRY.build


ARM_KEYS = ("strategy", "budgets", "sources", "targets")  # an arm's own settings; every other key is a hyper-parameter


def run_settings(spec: dict) -> dict:
    """What each run of an arm computes with: its entry without the budgets and pairs it runs on (so adding one reruns
    nothing)."""
    return {k: v for k, v in spec.items() if k not in ("budgets", "sources", "targets")}


def arm_budgets(spec: dict, budgets: list[str]) -> list[str]:
    """The budgets an arm runs, in the study's order: its ``budgets:`` entry, else all of ``budgets``."""
    return chosen_subset(spec, "budgets", budgets, "budgets")


def arm_pairs(spec: dict, study_pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The source→target pairs an arm fine-tunes, in the study's order: those of ``study_pairs``
    (``splits.finetune_pairs``) from its ``sources:`` to its ``targets:`` (each absent or null: all of them)."""
    given = {key: spec[key] for key in ("sources", "targets") if spec.get(key) is not None}
    sources = chosen_subset(given, "sources", list(dict.fromkeys(s for s, _ in study_pairs)), "fine-tuning sources")
    targets = chosen_subset(given, "targets", list(dict.fromkeys(t for _, t in study_pairs)), "fine-tuning targets")
    pairs = [(s, t) for s, t in study_pairs if s in sources and t in targets]
    if not pairs:
        raise ValueError(f"'sources: {sources}' and 'targets: {targets}' leave none of splits.finetune_pairs")
    return pairs


def describe_arm(arm: str, spec: dict) -> dict:
    """What the analysis needs to know of an arm: its class, resolved hyper-parameters and whether it trains."""
    return describe(build_arm(arm, spec))


def describe(strategy: "Strategy") -> dict:
    """``describe_arm`` of an arm already built."""
    return {"class": strategy.name, "hparams": strategy.hparams, "trains": strategy.trains,
            "from_scratch": strategy.from_scratch}


def build_arm(arm: str, spec: dict) -> "Strategy":
    """The strategy of one study arm (``spec`` = the arm's config entry: ``strategy:`` plus hyper-parameters)."""
    return _REGISTRY.build_arm(arm, spec, "strategy", ARM_KEYS)


class Strategy:
    name: ClassVar[str]
    # defaults; overrides are checked when the config is parsed. lr: this strategy's initial learning rate
    # (None = the fine-tuning recipe's), e.g. to give a small trainable set a larger step.
    HPARAMS: ClassVar[dict] = {"frozen_bn": "train", "lr": None}
    trains: ClassVar[bool] = True  # False: the source model is used as it is
    uses_source_data: ClassVar[bool] = False  # True: batch() also gets a sampler of the source training scans
    uses_source_optimizer: ClassVar[bool] = False  # True: optimizer() gets the source run's final optimizer state
    from_scratch: ClassVar[bool] = False  # True: starts from random initialisation with the source recipe (scratch.py)

    def __init__(self, **hparams):
        self.hparams = resolve_hparams(f"strategy {self.name!r}", self.HPARAMS, hparams)
        if self.hparams["frozen_bn"] not in ("eval", "train"):
            raise ValueError(f"strategy {self.name!r}: frozen_bn must be 'eval' or 'train', got {self.hparams['frozen_bn']!r}")
        lr = self.hparams["lr"]
        if lr is not None and (not is_number(lr) or lr <= 0):
            raise ValueError(f"strategy {self.name!r}: lr must be a positive number or null, got {lr!r}")

    @property
    def frozen_bn(self) -> str:
        return self.hparams["frozen_bn"]

    def trainable(self, model: nn.Module) -> list[str]:
        return [name for name, _ in model.named_parameters()]

    def recipe(self, recipe):
        """The recipe this strategy trains with (the run record stores it)."""
        return recipe if self.hparams["lr"] is None else replace(recipe, lr=float(self.hparams["lr"]))

    def optimizer(self, parameters: dict[str, nn.Parameter], recipe, source_state: dict | None = None
                  ) -> torch.optim.Optimizer:
        import torch

        if recipe.optimizer == "adam":
            return torch.optim.Adam(parameters.values(), lr=recipe.lr)
        return torch.optim.SGD(parameters.values(), lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.momentum > 0)

    def network(self, source: nn.Module, arch: str, width: float) -> tuple[nn.Module, str]:
        """The network a fine-tuning run trains, from its source model, and the architecture it is saved as."""
        return source, arch

    def begin(self, model: nn.Module, recipe) -> None:
        """The model as the run starts (on its device, trainable set chosen, no checkpoint restored yet) and the
        recipe it trains with."""

    def batch(self, epoch: int, target, source=None):
        return target.batch()

    def adapt(self, model: nn.Module, target, device) -> None:
        """What a strategy that does not train does to the source model (``trains = False``)."""

    def loss_terms(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        from mrishift.adaptation.losses import segmentation_loss

        return {"bce": segmentation_loss(model(images), masks)}

    def loss(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return sum(self.loss_terms(model, images, masks).values())


@register("none")
class NoAdaptation(Strategy):
    """The unadapted source model: the baseline."""

    trains = False

    def trainable(self, model):
        return []


@register("ft_all")
class FineTuneAll(Strategy):
    """Fine-tune every layer (FTA)."""


class FineTuneLayers(Strategy):
    """Fine-tune one named layer group of the model (``layers``: a key of ``model.layer_groups()``)."""

    HPARAMS = {**Strategy.HPARAMS, "layers": None}
    DEFAULT_LAYERS: ClassVar[str]

    def __init__(self, **hparams):
        super().__init__(**hparams)
        self.hparams["layers"] = self.hparams["layers"] or self.DEFAULT_LAYERS
        if self.hparams["layers"] not in LAYER_GROUPS:
            raise ValueError(f"strategy {self.name!r}: layers must be one of {list(LAYER_GROUPS)}, "
                             f"got {self.hparams['layers']!r}")

    def trainable(self, model):
        return model.layer_groups()[self.hparams["layers"]]


@register("ft_first")
class FineTuneFirst(FineTuneLayers):
    """Fine-tune only the first layers: first 3×3 conv + first residual block (FTF)."""

    DEFAULT_LAYERS = "first"


@register("ft_last")
class FineTuneLast(FineTuneLayers):
    """Fine-tune only the last layers (FTL): by default the last residual block + the 1×1 output conv, the paper's
    equal-size split (the MICCAI 2021 code); ``layers: output`` gives the output head alone (the DART20 code)."""

    DEFAULT_LAYERS = "last"


@register("ft_last2")
class FineTuneLastTwo(FineTuneLayers):
    """Fine-tune only the last two convolutions, each with its BatchNorm (the transfer-learning study's "top two
    layers"; smaller than ``ft_last``)."""

    DEFAULT_LAYERS = "last2"


@register("ft_encoder")
class FineTuneEncoder(FineTuneLayers):
    """Fine-tune the encoder (contracting path and bottleneck), the decoder frozen."""

    DEFAULT_LAYERS = "encoder"


@register("ft_decoder")
class FineTuneDecoder(FineTuneLayers):
    """Fine-tune the decoder (expanding path, skip projections and output head), the encoder frozen."""

    DEFAULT_LAYERS = "decoder"


@register("bn_stats")
class BatchNormStatistics(Strategy):
    """No weight moves: every BatchNorm layer's running statistics are re-estimated on the budget's target slices
    (AdaBN, Li et al. 2018). One forward pass in train mode over all the budget's slices (centre-fitted to the patch),
    each layer's input normalised by the earlier layers' new statistics; each layer then stores the exact mean and
    variance of its input over those slices — the population variance, so that eval mode reproduces that pass."""

    trains = False

    def trainable(self, model):
        return []

    def adapt(self, model, target, device):
        from mrishift.adaptation import batchnorm

        model.to(device)
        batchnorm.reestimate_statistics(model, target.all_slices().to(device))


def mixed_batch(target, source, n_target: int, size: int):
    """One batch of ``size`` slices: ``n_target`` drawn by the target's sampler, the rest by the source's."""
    import torch

    parts = [sampler.batch(n) for sampler, n in ((target, n_target), (source, size - n_target)) if n > 0]
    return tuple(torch.cat(tensors) for tensors in zip(*parts))


# Registered in their own modules; imported here so that every strategy is known wherever strategies is.
from mrishift.adaptation import gradient_transfer, scratch  # noqa: E402,F401
