"""One plain training loop for every run (source, oracle, fine-tuning), resumable to the exact same weights.

Batches come from a ``mrishift.training.sampling`` sampler (random axial slices cropped to the patch, or a 3D network's
patches). BCE with logits over the labelled voxels;
SGD with Nesterov momentum (or Adam); a step learning-rate schedule. A checkpoint (model, optimizer, epoch, loss
curve, RNG states) is written atomically after every epoch; a killed run restarts from it and ends with the weights
an uninterrupted run gives.

GPU switches (``Recipe``): bf16 autocast, channels_last, ``torch.compile`` and batches assembled on the device from
slices held there. On a CPU bf16, compile and device-held data are ignored, so one config runs anywhere; the last
draws exactly the batches of the host path (``mrishift.training.sampling``), so it never changes what a run computes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mrishift.io import atomic_path, error_summary
from mrishift.models import networks
from mrishift.models.inputs import resolve_device
from mrishift.training.sampling import SliceSampler

log = logging.getLogger("mrishift")


@dataclass(frozen=True)
class Recipe:
    epochs: int = 100
    iters_per_epoch: int = 100
    batch_size: int = 32
    patch_size: int | tuple[int, int, int] = 256  # a slice's side; (x, y, z) for a 3D network's patches
    lr: float = 1e-2
    lr_drop_epoch: int = 80  # lr × lr_factor at the end of this (0-based) epoch, as dpipe's Schedule({80: 0.1})
    lr_factor: float = 0.1
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adam"
    momentum: float = 0.9
    augment_p: float = 0.0  # probability of each flip and of a 90° rotation
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    bf16: bool = False  # bf16 autocast, CUDA only (the public code trains in fp32)
    channels_last: bool = True
    compile: bool = False  # torch.compile the model's forward/backward, CUDA only
    data_on_device: bool = True  # hold the run's slices in GPU memory and assemble batches there, CUDA only
    deterministic: bool = False  # CUDA: deterministic cuDNN algorithms (else autotuned); a CPU always is

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if isinstance(self.patch_size, list):  # JSON gives lists; a frozen recipe keeps a hashable tuple
            object.__setattr__(self, "patch_size", tuple(self.patch_size))
        sides = self.patch_size if isinstance(self.patch_size, tuple) else (self.patch_size,)
        if min(self.epochs, self.iters_per_epoch, self.batch_size, *sides) < 1:
            raise ValueError(f"epochs, iters_per_epoch, batch_size and patch_size must be positive: {self}")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p must be in [0, 1], got {self.augment_p}")


def learning_rate(recipe: Recipe, epoch: int) -> float:
    """The public code's step schedule: the factor applies from the epoch *after* ``lr_drop_epoch``."""
    return recipe.lr * (recipe.lr_factor if epoch > recipe.lr_drop_epoch else 1.0)


def freeze(model: nn.Module, trainable: list[str]) -> list[nn.Parameter]:
    names = set(trainable)
    unknown = names - {n for n, _ in model.named_parameters()}
    if unknown:
        raise ValueError(f"strategy names parameters the model does not have: {sorted(unknown)[:5]}")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    return [p for n, p in model.named_parameters() if n in names]


def set_train_mode(model: nn.Module, frozen_bn: str) -> None:
    """Train mode, except BatchNorm layers whose parameters are all frozen when ``frozen_bn == "eval"``."""
    model.train()
    if frozen_bn == "eval":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if not any(p.requires_grad for p in module.parameters()):
                    module.eval()


def _save_checkpoint(path: Path, model, optimizer, epoch: int, losses: list[float], loss_terms: dict,
                     validation: list[dict], rng: np.random.Generator, identity: str,
                     source_rng: np.random.Generator | None = None):
    state = {
        "identity": identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "losses": losses,
        "loss_terms": json.dumps(loss_terms),
        "validation": json.dumps(validation),
        "torch_rng": torch.get_rng_state(),
        "sampler_rng": json.dumps(rng.bit_generator.state),
        "source_sampler_rng": json.dumps(source_rng.bit_generator.state if source_rng is not None else None),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path | None, device: torch.device) -> dict | None:
    """The checkpoint's state, or None when there is none. A damaged one (a partial copy, a full disk) never blocks
    the run and never passes silently: it is logged with its path and the reason, moved aside to ``*.corrupt`` for
    inspection, and the run starts from scratch."""
    if path is None or not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        log.warning("checkpoint %s is unreadable (%s); moved to %s, the run restarts from scratch", path,
                    error_summary(error), aside)
        return None


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, kind: str) -> dict:
    """The optimizer's per-parameter state (SGD momentum buffers, Adam moments and step) keyed by parameter name —
    positions in a param group mean nothing to a run that trains another set — with ``kind`` ("sgd"/"adam")."""
    return {"kind": kind, "state": {name: {key: value.detach().clone() for key, value in optimizer.state[p].items()}
                                    for name, p in model.named_parameters() if optimizer.state.get(p)}}


def train(model: nn.Module, strategy, target: SliceSampler, recipe: Recipe, seed: int,
          checkpoint: str | Path | None = None, source: SliceSampler | None = None, identity: str = "",
          validate: Callable[[nn.Module], dict] | None = None, validate_every: int = 0,
          source_optimizer: dict | None = None, keep_optimizer: bool = False,
          snapshot_steps: tuple[int, ...] = (), snapshot: Callable[[int, nn.Module], None] | None = None) -> dict:
    """Train ``model`` in place with ``strategy``; resume from ``checkpoint`` when it exists and was written by the
    same run (``identity``: anything that defines the run, e.g. its config as JSON). Returns a run record; with
    ``keep_optimizer`` its ``optimizer_state`` holds the final ``optimizer_state`` (not JSON: the caller saves it with
    the model, for strategies that continue it). ``source_optimizer``: the run it fine-tunes' saved optimizer state,
    for a strategy that builds its optimizer from it (``uses_source_optimizer``).

    ``validate(model) -> {metric: value}`` (model in eval mode) is called after every ``validate_every``-th epoch
    and after the last; its results are logged in the record's ``validation`` list. It only watches: the final model
    is always the last epoch's (the paper's choice), whatever the validation scores.

    ``snapshot(step, model)`` is called once the run has taken each of ``snapshot_steps`` optimizer steps (0: before
    the first), model in train mode. A run resumed from its epoch checkpoint takes the steps of the epochs it trains
    again, with the same weights: the caller keeps the snapshots outside what a killed job loses."""
    recipe = strategy.recipe(recipe)
    device = resolve_device(recipe.device)
    torch.manual_seed(seed)
    trainable = freeze(model, strategy.trainable(model))
    n_trainable = sum(p.numel() for p in trainable)
    log.info("strategy %s: %d of %d parameter tensors train (%d parameters); frozen BatchNorm: %s",
             strategy.name, len(trainable), len(list(model.parameters())), n_trainable, strategy.frozen_bn)
    losses: list[float] = []
    loss_terms: dict[str, list[float]] = {}  # per named term of a strategy's loss, when it has several
    validation: list[dict] = []
    started = time.perf_counter()

    def record(epochs: int) -> dict:
        return {"device": str(device), "epochs": epochs, "trainable_parameters": n_trainable, "losses": losses,
                **({"loss_terms": loss_terms} if loss_terms else {}),
                "validation": validation, "final_model": "last epoch", "seconds": time.perf_counter() - started,
                "recipe": asdict(recipe),
                **({"gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20} if device.type == "cuda" else {})}

    if not strategy.trains or not trainable:
        strategy.adapt(model, target, device)
        return record(epochs=0)
    model.to(device)
    layout = networks.memory_format(model)
    if recipe.channels_last:
        model.to(memory_format=layout)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.deterministic = recipe.deterministic
        torch.backends.cudnn.benchmark = not recipe.deterministic
    if recipe.data_on_device and on_gpu:
        for sampler in (target, source):
            if sampler is not None:
                sampler.to_device(device)
    # The compiled module shares the model's parameters; checkpoints and the saved model use the plain one.
    step_model = torch.compile(model) if recipe.compile and on_gpu else model
    start_epoch = 0
    strategy.begin(model, recipe)
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer = strategy.optimizer(named, recipe, source_optimizer)
    checkpoint = Path(checkpoint) if checkpoint else None
    state = _load_checkpoint(checkpoint, device)
    if state is not None and state.get("identity") != identity:
        log.warning("ignoring checkpoint %s: it belongs to another run configuration", checkpoint)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, losses = state["epoch"], list(state["losses"])
        loss_terms = json.loads(state.get("loss_terms", "{}"))
        validation = json.loads(state["validation"])
        torch.set_rng_state(state["torch_rng"])
        target.rng.bit_generator.state = json.loads(state["sampler_rng"])
        if source is not None:
            source.rng.bit_generator.state = json.loads(state["source_sampler_rng"])
        log.info("resumed from %s at epoch %d", checkpoint, start_epoch)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=recipe.bf16 and on_gpu)
    steps = set(snapshot_steps) if snapshot else set()
    if 0 in steps and start_epoch == 0:
        snapshot(0, model)
    for epoch in range(start_epoch, recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, epoch) * group.get("lr_scale", 1.0)
        set_train_mode(model, strategy.frozen_bn)
        running = torch.zeros((), device=device)
        running_terms: dict[str, torch.Tensor] = {}
        for step in range(epoch * recipe.iters_per_epoch + 1, (epoch + 1) * recipe.iters_per_epoch + 1):
            images, masks = strategy.batch(epoch, target, source)
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            if recipe.channels_last:
                images = images.contiguous(memory_format=layout)
            with autocast:
                terms = strategy.loss_terms(step_model, images, masks)
                loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach().float()
            if len(terms) > 1:
                for name, value in terms.items():
                    running_terms[name] = running_terms.get(name, 0) + value.detach().float()
            if step in steps:
                snapshot(step, model)
        losses.append(float(running) / recipe.iters_per_epoch)  # one host sync per epoch
        for name, total in running_terms.items():
            loss_terms.setdefault(name, []).append(float(total) / recipe.iters_per_epoch)
        elapsed = time.perf_counter() - started
        done = epoch + 1 - start_epoch
        parts = "".join(f" {name} {values[-1]:.4f}" for name, values in loss_terms.items())
        log.info("epoch %d/%d loss %.4f%s lr %.1e (ETA %.0f s)", epoch + 1, recipe.epochs, losses[-1], parts,
                 learning_rate(recipe, epoch), elapsed / done * (recipe.epochs - epoch - 1))
        if validate and ((epoch + 1) % max(validate_every, 1) == 0 or epoch + 1 == recipe.epochs):
            model.eval()
            validation.append({"epoch": epoch + 1, **validate(model)})
            if recipe.channels_last:  # inference may switch the memory format back
                model.to(memory_format=layout)
            log.info("epoch %d validation %s", epoch + 1, {k: round(v, 4) for k, v in validation[-1].items()})
        if checkpoint:
            _save_checkpoint(checkpoint, model, optimizer, epoch + 1, losses, loss_terms, validation, target.rng,
                             identity, source.rng if source is not None else None)
    model.to(memory_format=torch.contiguous_format)
    finished = record(epochs=recipe.epochs)
    if keep_optimizer:
        finished["optimizer_state"] = optimizer_state(model, optimizer, recipe.optimizer)
    return finished
