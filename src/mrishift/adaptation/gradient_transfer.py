"""The gradient-transfer study's strategies (Shirokikh et al., its Table 2): every layer fine-tuned, with the
source's knowledge carried over by a penalty (L2-SP), by the batches (mixed mini-batches of source and target slices),
by the optimizer (continuing the source run's state), or by per-slice gating between frozen and fine-tuned blocks
(SpotTune). Each is one registered class, as in ``strategies``; see its module docstring for the contract."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mrishift.adaptation.registry import is_number
from mrishift.adaptation.strategies import Strategy, mixed_batch, register
from mrishift.models.architectures import SPOTTUNE

if TYPE_CHECKING:  # torch is imported where a job runs, not while the workflow parses (see strategies)
    import torch
    from torch import nn


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


@register("spottune")
class SpotTune(Strategy):
    """Per slice and per block, the frozen source block or a fine-tuned copy of it, as a policy network chooses
    (SpotTune, Guo et al. 2019; SpotTUnet, the MICCAI 2021 study; ``mrishift.models.architectures.SPOTTUNE``). Both
    copies start from the source weights, the policy from the run's seed; the fine-tuned copy and the policy train, the
    frozen copy never. Choices are hard Gumbel-softmax samples (straight-through) at ``temperature`` (0.1) in training,
    the argmax without noise at inference. Loss: BCE + ``k_reg`` · mean(1 − policy), policy = 1 for the frozen block:
    the share of fine-tuned blocks is penalised (``k_reg`` 0.005, the gradient-transfer study's fixed value; the MICCAI
    study tuned it per budget in 0–0.012 — sweep it as arms). The policy trains at ``policy_lr`` (0.01) with weight
    decay ``policy_weight_decay`` (1e-3), in the recipe's optimizer (SGD: Nesterov momentum 0.9 as the MICCAI code; Adam
    as the gradient-transfer code), and follows the recipe's step schedule like the network."""

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
        from mrishift.models import networks

        spottune = arch + SPOTTUNE
        model = networks.build(spottune, width=width, levels=source.levels)
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
