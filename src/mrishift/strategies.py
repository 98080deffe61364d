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
  read a source model (``mrishift.scratch``);
* ``frozen_bn``: what BatchNorm layers whose parameters are all frozen do — ``"train"`` (default, the public
  code: the whole model is in train mode, so their running statistics follow the target data) or ``"eval"``
  (they keep the source's statistics);
* ``recipe(recipe) -> Recipe``: the recipe it trains with (default: the configured one, ``lr`` overridable);
* ``optimizer(parameters, recipe, source_state) -> torch.optim.Optimizer``: ``parameters`` the trainable ones by
  name; ``source_state`` the optimizer state the source run ended with (``mrishift.train.optimizer_state``: SGD
  momentum buffers or Adam moments by parameter name) for a strategy with ``uses_source_optimizer``, else None. The
  trainer sets each parameter group's learning rate every epoch from the recipe's schedule, times the group's
  ``lr_scale`` (default 1) — how a group with its own rate (SpotTune's policy) follows the schedule;
* ``batch(epoch, target, source)``: draws one training batch;
* ``loss_terms(model, images, masks) -> {name: Tensor}``: the loss as named terms (default: ``bce``), summed for the
  gradient; the run record keeps each term's mean per epoch (``loss_terms``) when there are several, beside the
  total (``losses``); ``loss`` is their sum;
* ``adapt(model, target, device)``: for strategies that do not train (``trains = False``), what they do to the
  source model instead (e.g. re-estimate BatchNorm statistics); by default nothing.

Adding a strategy = one class here (or in its own module imported by mrishift.strategies) with
``@register("name")`` and its ``HPARAMS``, plus one entry in the config.

A study runs *arms*: ``strategies: {arm: {strategy: class, budgets: [...], **hparams}}`` in the config, the class
defaulting to the arm's name, so one class can run under several settings (``ft_first_bn_eval: {strategy: ft_first,
frozen_bn: eval}``). ``budgets`` (default: every budget of ``splits.budgets``) lets a costly or side arm run on fewer
budgets, e.g. to keep the demo inside its time. ``build_arm`` makes one; the arm's name is what paths, tables and
figures show.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from mrishift.architectures import LAYER_GROUPS, SPOTTUNE
from mrishift.registry import Registry, chosen_subset, is_number, resolve_hparams

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
        from mrishift.losses import segmentation_loss

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


@register("l2sp")
class L2SP(Strategy):
    """Fine-tune every layer with the L2-SP penalty (Li et al. 2018, the gradient-transfer study's setting
    α = 0.1): BCE + α/2 · ‖w − w_source‖² over every trainable parameter, w_source the weights the run started from."""

    HPARAMS = {**Strategy.HPARAMS, "alpha": 0.1}

    def __init__(self, **hparams):
        super().__init__(**hparams)
        alpha = self.hparams["alpha"]
        if not is_number(alpha) or alpha < 0:
            raise ValueError(f"strategy {self.name!r}: alpha must be a number >= 0, got {alpha!r}")
        self._anchors: list[tuple[nn.Parameter, torch.Tensor]] = []

    def begin(self, model, recipe):
        self._anchors = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]

    def penalty(self) -> torch.Tensor:
        """α/2 · ‖w − w_source‖² (0 before ``begin``)."""
        distance = sum(((p - start) ** 2).sum() for p, start in self._anchors)
        return self.hparams["alpha"] / 2 * distance

    def loss_terms(self, model, images, masks):
        return {**super().loss_terms(model, images, masks), "l2sp": self.penalty()}


@register("mmtl")
class MixedMiniBatch(Strategy):
    """Every layer fine-tuned on mini-batches that mix source-domain and target slices, the target share growing with
    the epoch (mixed mini-batch transfer, the gradient-transfer study). ``schedule``: ``linear`` (the paper:
    int(epoch / epochs × batch) target slices) or ``steps`` (its code: min(epoch // 4 + 1, batch))."""

    HPARAMS = {**Strategy.HPARAMS, "schedule": "linear"}
    uses_source_data = True

    def __init__(self, **hparams):
        super().__init__(**hparams)
        if self.hparams["schedule"] not in ("linear", "steps"):
            raise ValueError(f"strategy {self.name!r}: schedule must be 'linear' or 'steps', "
                             f"got {self.hparams['schedule']!r}")
        self._epochs = self._batch_size = 0

    def begin(self, model, recipe):
        self._epochs, self._batch_size = recipe.epochs, recipe.batch_size

    def target_slices(self, epoch: int) -> int:
        """How many of a batch's slices are the target's in this epoch (0-based)."""
        if self.hparams["schedule"] == "linear":
            return int(epoch / self._epochs * self._batch_size)
        return min(epoch // 4 + 1, self._batch_size)

    def batch(self, epoch, target, source=None):
        if source is None:
            raise ValueError(f"strategy {self.name!r} mixes source slices into every batch: no source sampler given")
        return mixed_batch(target, source, self.target_slices(epoch), self._batch_size)


def mixed_batch(target, source, n_target: int, size: int):
    """One batch of ``size`` slices: ``n_target`` drawn by the target's sampler, the rest by the source's."""
    import torch

    parts = [sampler.batch(n) for sampler, n in ((target, n_target), (source, size - n_target)) if n > 0]
    return tuple(torch.cat(tensors) for tensors in zip(*parts))


@register("octl")
class OptimizerContinuation(Strategy):
    """Every layer fine-tuned by an optimizer that continues the source run's (optimizer-continuation transfer, the
    gradient-transfer study): SGD starts from the source's momentum buffers with μ = ``momentum`` (0.99); Adam from
    its first and second moments with β = ``betas`` (0.99, 0.999) and bias correction as if at step ``from_step``
    (100), the study's compromise between forgetting the source's history at once and letting it dominate. The
    optimizer kind is the recipe's, and the source run must have used the same one."""

    HPARAMS = {**Strategy.HPARAMS, "momentum": 0.99, "betas": [0.99, 0.999], "from_step": 100}
    uses_source_optimizer = True

    def __init__(self, **hparams):
        super().__init__(**hparams)
        momentum, betas, step = self.hparams["momentum"], self.hparams["betas"], self.hparams["from_step"]
        if not is_number(momentum) or not 0 <= momentum < 1:
            raise ValueError(f"strategy {self.name!r}: momentum must be in [0, 1), got {momentum!r}")
        if (not isinstance(betas, list) or len(betas) != 2
                or not all(is_number(b) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"strategy {self.name!r}: betas must be two numbers in [0, 1), got {betas!r}")
        if not is_number(step, integer=True) or step < 0:
            raise ValueError(f"strategy {self.name!r}: from_step must be an integer >= 0, got {step!r}")

    def optimizer(self, parameters, recipe, source_state=None):
        if source_state is None:
            raise ValueError(f"strategy {self.name!r} continues the source run's optimizer, but the source model file "
                             "holds no optimizer state (saved before source runs kept it: retrain the source models)")
        if source_state["kind"] != recipe.optimizer:
            raise ValueError(f"strategy {self.name!r}: the source run used {source_state['kind']}, this recipe "
                             f"{recipe.optimizer}; the continued state must be the same optimizer's")
        import torch

        if recipe.optimizer == "adam":
            optimizer = torch.optim.Adam(parameters.values(), lr=recipe.lr, betas=tuple(self.hparams["betas"]))
        else:
            optimizer = torch.optim.SGD(parameters.values(), lr=recipe.lr, momentum=self.hparams["momentum"],
                                        nesterov=self.hparams["momentum"] > 0)
        continued = {name: state for name, state in source_state["state"].items() if name in parameters}
        if not continued:
            raise ValueError(f"strategy {self.name!r}: the source optimizer state covers none of the "
                             f"{len(parameters)} trainable parameters")
        for name, state in continued.items():  # parameters the source run froze start afresh
            p = parameters[name]
            optimizer.state[p] = {key: value.to(p.device).clone() for key, value in state.items()}
            if recipe.optimizer == "adam":
                optimizer.state[p]["step"] = torch.tensor(float(self.hparams["from_step"]))
        return optimizer


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
        from mrishift import batchnorm

        model.to(device)
        batchnorm.reestimate_statistics(model, target.all_slices().to(device))


@register("spottune")
class SpotTune(Strategy):
    """Per slice and per block, the frozen source block or a fine-tuned copy of it, as a policy network chooses
    (SpotTune, Guo et al. 2019; SpotTUnet, the MICCAI 2021 study; ``mrishift.architectures.SPOTTUNE``). Both copies
    start from the source weights, the policy from the run's seed; the fine-tuned copy and the policy train, the
    frozen copy never. Choices are hard Gumbel-softmax samples (straight-through) at ``temperature`` (0.1) in
    training, the argmax without noise at inference. Loss: BCE + ``k_reg`` · mean(1 − policy), policy = 1 for the frozen block: the share
    of fine-tuned blocks is penalised (``k_reg`` 0.005, the gradient-transfer study's fixed value; the MICCAI study
    tuned it per budget in 0–0.012 — sweep it as arms). The policy trains at ``policy_lr`` (0.01) with weight decay
    ``policy_weight_decay`` (1e-3), in the recipe's optimizer (SGD: Nesterov momentum 0.9 as the MICCAI code; Adam as
    the gradient-transfer code), and follows the recipe's step schedule like the network."""

    HPARAMS = {**Strategy.HPARAMS, "k_reg": 0.005, "temperature": 0.1, "policy_lr": 0.01,
               "policy_weight_decay": 1e-3}

    def __init__(self, **hparams):
        super().__init__(**hparams)
        for key, positive in (("k_reg", False), ("temperature", True), ("policy_lr", True),
                              ("policy_weight_decay", False)):
            value = self.hparams[key]
            if not is_number(value) or value < 0 or (positive and value == 0):
                raise ValueError(f"strategy {self.name!r}: {key} must be a number {'>' if positive else '>='} 0, "
                                 f"got {value!r}")

    def network(self, source, arch, width):
        from mrishift import models

        spottune = arch + SPOTTUNE
        model = models.build(spottune, width=width, levels=source.levels)
        weights = source.state_dict()
        model.load_state_dict(weights, strict=False)  # the fine-tuned copy, under the source's names
        model.frozen.load_state_dict(weights)
        return model.to(next(source.parameters()).device), spottune

    def trainable(self, model):
        return [name for name, _ in model.named_parameters() if not name.startswith("frozen.")]

    def begin(self, model, recipe):
        model.temperature = float(self.hparams["temperature"])

    def optimizer(self, parameters, recipe, source_state=None):
        policy = [p for name, p in parameters.items() if name.startswith("policy.")]
        network = [p for name, p in parameters.items() if not name.startswith("policy.")]
        groups = [{"params": network},
                  {"params": policy, "lr_scale": self.hparams["policy_lr"] / recipe.lr,
                   "weight_decay": self.hparams["policy_weight_decay"]}]
        import torch

        if recipe.optimizer == "adam":
            return torch.optim.Adam(groups, lr=recipe.lr)
        groups[1]["momentum"] = 0.9
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)

    def loss_terms(self, model, images, masks):
        terms = super().loss_terms(model, images, masks)
        fine_tuned = model.gates  # (B, blocks) of that forward pass: 1 − policy
        return {**terms, "policy": self.hparams["k_reg"] * fine_tuned.mean()}


# Registered in their own modules; imported here so that every strategy is known wherever strategies is.
from mrishift import scratch  # noqa: E402,F401
