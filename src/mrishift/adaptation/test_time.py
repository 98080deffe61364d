"""Test-time adaptation: what a source model does to each target volume before predicting it, with no label.

Each method is one class registered by name with its ``HPARAMS`` (the papers' settings as defaults), run as study
arms like the fine-tuning strategies: ``test_time: {arm: {method: registered class (default: the arm's name),
sources: [...], targets: [...] (the pairs it runs on; default: all), **hparams}}``. The contract is one method::

    adapt(model, image, reference) -> (model, image)

``model`` is a fresh copy of the source model on its device, the method's to change (the stored model is never
touched, and no volume sees another's adaptation); ``image`` the scaled (x, y, z) volume; ``reference`` what is kept
of the source domain (``SourceReference``; ``None`` unless the class sets ``uses_reference``). It returns the network and the volume to predict. There is no mask in
the signature: a method that needs labels cannot be written as one. Scores are the study's per-scan table with role
``test_time`` and budget ``0``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mrishift.adaptation.registry import Registry, chosen_pairs, is_number, resolve_hparams
from mrishift.data.histogram import match_histogram
from mrishift.data.splits import ZERO_BUDGET  # noqa: F401  (the budget column of every test-time score)
from mrishift.models.architectures import LAYER_GROUPS, NORMALIZED
from mrishift.seeding import seed_hash

# torch (and the modules built on it) is imported by the methods that run in a job, not here: the workflow builds and
# checks every arm each time it is parsed — at every Snakemake start, twice per cluster job.
if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("mrishift")

ARM_KEYS = ("method", "sources", "targets")  # an arm's own settings; every other key is a hyper-parameter

_REGISTRY = Registry("test-time method")
register, names, build = _REGISTRY.register, _REGISTRY.names, _REGISTRY.build


def arm_pairs(spec: dict, domains: list[str]) -> list[tuple[str, str]]:
    """The source→target pairs an arm adapts: from its ``sources:`` to its ``targets:`` (each default: every domain)."""
    return chosen_pairs(spec, domains)


def run_settings(spec: dict) -> dict:
    """What each volume's adaptation computes with: the arm's entry without the pairs it runs on."""
    return {k: v for k, v in spec.items() if k not in ("sources", "targets")}


def build_arm(arm: str, spec: dict) -> "TestTimeMethod":
    """The method of one test-time arm (``spec``: its config entry, ``method:`` plus hyper-parameters)."""
    return _REGISTRY.build_arm(arm, spec, "method", ARM_KEYS)


@dataclass(frozen=True)
class SourceReference:
    """What a test-time method keeps of its source domain: the quantile function of the source training scans'
    foreground intensities (``mrishift.data.histogram``)."""

    intensity_quantiles: np.ndarray

    @classmethod
    def read(cls, path) -> "SourceReference":
        """The reference written by rule intensity_reference; a damaged file raises naming it."""
        try:
            quantiles = np.asarray(json.loads(Path(path).read_text())["quantiles"], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not an intensity reference ({error})") from error
        if quantiles.ndim != 1 or quantiles.size < 2 or not np.all(np.isfinite(quantiles)) or np.any(np.diff(quantiles) < 0):
            raise ValueError(f"{path}: intensity quantiles must be finite and non-decreasing")
        return cls(quantiles)


class TestTimeMethod:
    name: ClassVar[str]
    HPARAMS: ClassVar[dict] = {}
    # which source model it adapts: "plain" (the study's) or "normalized" (trained with a normalizer CNN in front,
    # mrishift.models.networks.NORMALIZED; the workflow trains those for the arm's source domains)
    source_model: ClassVar[str] = "plain"
    # whether adapt() reads the source domain's SourceReference (the workflow computes one only for such arms;
    # every other method gets None)
    uses_reference: ClassVar[bool] = False

    def __init__(self, **hparams):
        self.hparams = resolve_hparams(f"test-time method {self.name!r}", self.HPARAMS, hparams)

    def adapt(self, model: nn.Module, image: np.ndarray,
              reference: SourceReference | None) -> tuple[nn.Module, np.ndarray]:
        raise NotImplementedError

    def passes(self) -> tuple[int, int]:
        """(training passes, inference passes) over a volume's slices this method makes, its prediction included: what
        bench/plan_paper.py prices at the measured training and inference rates."""
        return 0, 1

    def volume_loss(self) -> tuple[float, float]:
        """The label-free loss of the last adapted volume at the source model and at the network that predicts it
        (the test-time BN-statistics study's Fig. 8 reads the first as a predictor of failure); NaN for a method that
        minimises none."""
        return math.nan, math.nan

    def per_volume(self, source_model: nn.Module, reference: SourceReference | None, device: torch.device,
                   seed: int = 0):
        """``image -> (adapted model, image to predict)``, each volume starting again from ``source_model`` and from
        the torch generator seeded with ``seed``."""
        import torch

        def adapt(image):
            torch.manual_seed(seed)
            model = copy.deepcopy(source_model).to(device)
            return self.adapt(model, image, reference)

        return adapt

    def for_run(self, source_model: nn.Module, references: dict[str, SourceReference], device: torch.device,
                source: str, target: str, seed: str):
        """per_volume of one run of the study (``source``→``target``, ``seed``): its source domain's reference, if the
        method reads one, and a torch seed of its own — what scores the run and what redraws it for QC."""
        return self.per_volume(source_model, references.get(source), device,
                               seed_hash(seed, self.arm, source, target))


def _slices(model: nn.Module, image: np.ndarray) -> torch.Tensor:
    """A volume as the network sees it: its axial slices, or a 3D network's sliding windows."""
    from mrishift.models.inputs import network_inputs

    return network_inputs(model, image, next(model.parameters()).device)


def _batchnorm_affine(model: nn.Module, layers: str) -> list[nn.Parameter]:
    """The affine parameters (weight, bias) of the BatchNorm layers in a layer group (``all``: every one)."""
    from mrishift.adaptation import batchnorm

    chosen = None if layers == "all" else set(model.layer_groups()[layers])
    names_of = {id(p): n for n, p in model.named_parameters()}
    return [p for norm in batchnorm.layers(model) for p in (norm.weight, norm.bias)
            if p is not None and (chosen is None or names_of[id(p)] in chosen)]


class GradientMethod(TestTimeMethod):
    """Minimises an unsupervised loss of one volume (``loss``) over some parameters (``trained_parameters``; by default
    the BatchNorm affine parameters of the layer group ``layers``) for ``iterations`` optimizer steps; with
    ``keep_best`` the iterate of lowest loss, the source model's included, is the one that predicts."""

    HPARAMS = {"optimizer": "adam", "lr": 1e-3, "iterations": 20, "layers": "encoder", "keep_best": True}

    def __init__(self, **hparams):
        super().__init__(**hparams)
        h = self.hparams
        if h["optimizer"] not in ("adam", "sgd"):
            raise ValueError(f"{self.name}: optimizer must be 'adam' or 'sgd', got {h['optimizer']!r}")
        if not is_number(h["lr"]) or h["lr"] <= 0:
            raise ValueError(f"{self.name}: lr must be a positive number, got {h['lr']!r}")
        if not is_number(h["iterations"], integer=True) or h["iterations"] < 1:
            raise ValueError(f"{self.name}: iterations must be a positive integer, got {h['iterations']!r}")
        if not isinstance(h["keep_best"], bool):
            raise ValueError(f"{self.name}: keep_best must be true or false, got {h['keep_best']!r}")
        if "layers" in h and h["layers"] != "all" and h["layers"] not in LAYER_GROUPS:
            raise ValueError(f"{self.name}: layers must be 'all' or one of {list(LAYER_GROUPS)}, "
                             f"got {h['layers']!r}")

    def passes(self):
        finish = 1 if type(self).finish is not GradientMethod.finish else 0
        loss_after = 0 if self.hparams["keep_best"] else 1
        return self.hparams["iterations"], int(self.hparams["keep_best"]) + finish + loss_after + 1

    def volume_loss(self):
        return self.loss_before, self.loss_after

    def trained_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """What the loss is minimised over (default: the BatchNorm affine parameters of ``layers``)."""
        return _batchnorm_affine(model, self.hparams["layers"])

    def prepare(self, model: nn.Module) -> None:
        """Set the network's mode before the first step."""

    def loss(self, model: nn.Module, slices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, model: nn.Module, slices: torch.Tensor) -> None:
        """What the adapted network needs before predicting (default: eval mode)."""
        model.eval()

    def _loss_now(self, model: nn.Module, slices: torch.Tensor) -> float:
        """The loss at the final iterate (without ``keep_best`` no step has seen it), leaving every buffer as it was:
        one more forward pass that changes nothing the prediction uses."""
        import torch

        buffers = {name: value.clone() for name, value in model.named_buffers()}
        with torch.no_grad():
            loss = self.loss(model, slices).item()
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
        return loss

    def adapt(self, model, image, reference):
        import torch

        h = self.hparams
        slices = _slices(model, image)
        trained = self.trained_parameters(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in trained:
            parameter.requires_grad_(True)
        optimizer = (torch.optim.Adam(trained, lr=h["lr"]) if h["optimizer"] == "adam"
                     else torch.optim.SGD(trained, lr=h["lr"]))
        self.prepare(model)
        self.losses, best, best_loss = [], None, math.inf
        for step in range(h["iterations"] + int(h["keep_best"])):  # keep_best: the last iterate's loss too
            loss = self.loss(model, slices)
            self.losses.append(loss.item())
            if h["keep_best"] and self.losses[-1] < best_loss:
                best_loss, best = self.losses[-1], [p.detach().clone() for p in trained]
            if step == h["iterations"]:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if best is not None:
            with torch.no_grad():
                for parameter, value in zip(trained, best):
                    parameter.copy_(value)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.loss_before = self.losses[0]
        self.loss_after = min(self.losses) if h["keep_best"] else self._loss_now(model, slices)
        self.finish(model, slices)
        kept = f"the lowest, iterate {int(np.argmin(self.losses))} of" if h["keep_best"] else "after"
        log.info("%s: loss %.4g at the source model, %.4g at the network that predicts (%s %d steps)", self.name,
                 self.loss_before, self.loss_after, kept, h["iterations"])
        return model, image


@register("bn_kl_affine")
class BatchNormKL(GradientMethod):
    """BN-statistics alignment (the test-time BN-statistics paper): minimise (1/B) Σ over the B BatchNorm layers of Σ
    over channels KL(N(batch mean, batch var) ‖ N(running mean, running var)), the batch statistics being those of
    the layer's input over the volume's slices; BatchNorm stays in eval mode (running statistics fixed), only the
    affine parameters of the encoder's BatchNorm layers move (the paper: its input and down-sampling blocks); the
    iterate of lowest loss is kept. Adam, lr 1e-3, 20 iterations: one of the paper's settings (SGD/Adam, 1e-3/5e-3,
    20/50), not tuned here."""

    def prepare(self, model):
        model.eval()

    def loss(self, model, slices):
        import torch

        from mrishift.adaptation import batchnorm

        with batchnorm.record_inputs(model) as inputs:
            model(slices)
        return torch.stack([batchnorm.kl_to_running(norm, x) for norm, x in inputs.items()]).mean()


@register("bn_kl_normalizer")
class NormalizerKL(BatchNormKL):
    """BN-statistics alignment through a normalizer (the test-time BN-statistics paper's first method): the same loss
    as ``bn_kl_affine``, minimised over the parameters of the 3-layer normalizer CNN in front of the network
    (``networks.Normalizer``), which was trained jointly with it on the source; the network, BatchNorm statistics
    included, stays frozen; the iterate of lowest loss is kept. Its source models are the normalized ones."""

    HPARAMS = {k: v for k, v in GradientMethod.HPARAMS.items() if k != "layers"}
    source_model = "normalized"

    def trained_parameters(self, model):
        from mrishift.models import networks

        if not isinstance(getattr(model, "normalizer", None), networks.Normalizer):
            raise ValueError(f"{self.name} adapts a normalizer, and this {type(model).__name__} has none: its source "
                             f"model must be a '*{NORMALIZED}' architecture")
        return list(model.normalizer.parameters())


@register("tent")
class Tent(GradientMethod):
    """Tent (Wang et al., ICLR 2021), episodic: per volume, minimise the mean binary entropy of the predicted
    foreground probability over every pixel of the volume, updating the affine parameters of every BatchNorm layer;
    BatchNorm normalises with the volume's own statistics (batch statistics; running ones untouched while adapting).
    Tent's setting: Adam, lr 1e-3, one step per batch. The volume is then predicted with every BatchNorm layer's
    statistics set to the volume's (under the adapted affine parameters), i.e. as Tent predicts with batch
    statistics, over the whole volume rather than per inference batch."""

    HPARAMS = {**GradientMethod.HPARAMS, "iterations": 1, "layers": "all", "keep_best": False}

    def prepare(self, model):
        from mrishift.adaptation import batchnorm

        model.train()
        for norm in batchnorm.layers(model):
            norm.momentum = 0.0  # batch statistics normalise; running ones stay the source's until finish()

    def loss(self, model, slices):
        return binary_entropy(model(slices)).mean()

    def finish(self, model, slices):
        from mrishift.adaptation import batchnorm

        batchnorm.reestimate_statistics(model, slices)


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of Bernoulli(sigmoid(logits)), elementwise, computed stably from the logits."""
    import torch
    from torch import nn

    p = torch.sigmoid(logits)
    return nn.functional.softplus(logits) - p * logits


@register("adabn")
class AdaBN(TestTimeMethod):
    """AdaBN (Li et al. 2018) per volume: every BatchNorm layer's statistics := those of its input over the volume's
    slices (one forward pass, no gradient, no weight moves)."""

    def adapt(self, model, image, reference):
        from mrishift.adaptation import batchnorm

        batchnorm.reestimate_statistics(model, _slices(model, image))
        return model, image

    def passes(self):
        return 0, 2


@register("hist_match")
class HistogramMatching(TestTimeMethod):
    """Histogram matching: the volume's foreground intensities (above its mean) are mapped onto the source training
    scans' pooled foreground distribution (``mrishift.data.histogram``), then the unadapted source model predicts."""

    uses_reference = True

    def adapt(self, model, image, reference):
        if reference is None:
            raise ValueError(f"{self.name} needs the source domain's intensity reference, and none was given")
        return model, match_histogram(image, reference.intensity_quantiles)
