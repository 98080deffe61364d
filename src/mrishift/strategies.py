"""Fine-tuning strategies: one small class each, registered by name, hyper-parameters declared beside it.

The trainer only talks to this contract:

* ``trainable(model) -> list[str]``: names of the parameters that train (all others are frozen);
* ``frozen_bn``: what BatchNorm layers whose parameters are all frozen do — ``"eval"`` (default: their
  running statistics stay the source's) or ``"train"`` (they keep updating, as in the public code);
* ``recipe(recipe) -> Recipe``: the recipe it trains with (default: the configured one, ``lr`` overridable);
* ``optimizer(parameters, recipe) -> torch.optim.Optimizer``;
* ``batch(epoch, target, source)``: draws one training batch;
* ``loss(model, images, masks) -> Tensor``.

Adding a strategy = one class here (or in its own module imported by mrishift.strategies) with
``@register("name")`` and its ``HPARAMS``, plus one entry in the config.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch
from torch import nn

_REGISTRY: dict[str, type["Strategy"]] = {}


def register(name: str):
    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def names() -> list[str]:
    return list(_REGISTRY)


def build(name: str, **hparams) -> "Strategy":
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; registered: {names()}")
    return _REGISTRY[name](**hparams)


class Strategy:
    name: ClassVar[str]
    # defaults; overrides are checked when the config is parsed. lr: this strategy's initial learning rate
    # (None = the fine-tuning recipe's), e.g. to give a small trainable set a larger step.
    HPARAMS: ClassVar[dict] = {"frozen_bn": "eval", "lr": None}
    trains: ClassVar[bool] = True  # False: the source model is used as it is

    def __init__(self, **hparams):
        unknown = set(hparams) - set(self.HPARAMS)
        if unknown:
            raise ValueError(f"strategy {self.name!r}: unknown hyper-parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.HPARAMS)}")
        self.hparams = {**self.HPARAMS, **hparams}
        if self.hparams["frozen_bn"] not in ("eval", "train"):
            raise ValueError(f"strategy {self.name!r}: frozen_bn must be 'eval' or 'train', got {self.hparams['frozen_bn']!r}")
        lr = self.hparams["lr"]
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
            raise ValueError(f"strategy {self.name!r}: lr must be a positive number or null, got {lr!r}")

    @property
    def frozen_bn(self) -> str:
        return self.hparams["frozen_bn"]

    def trainable(self, model: nn.Module) -> list[str]:
        return [name for name, _ in model.named_parameters()]

    def recipe(self, recipe):
        """The recipe this strategy trains with (the run record stores it)."""
        return recipe if self.hparams["lr"] is None else replace(recipe, lr=float(self.hparams["lr"]))

    def optimizer(self, parameters, recipe) -> torch.optim.Optimizer:
        if recipe.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=recipe.lr)
        return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)

    def batch(self, epoch: int, target, source=None):
        return target.batch()

    def loss(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(model(images), masks)


@register("none")
class NoAdaptation(Strategy):
    """The unadapted source model: the baseline."""

    trains = False

    def trainable(self, model):
        return []


@register("ft_all")
class FineTuneAll(Strategy):
    """Fine-tune every layer (FTA)."""


@register("ft_first")
class FineTuneFirst(Strategy):
    """Fine-tune only the first layers: first 3×3 conv + first residual block (FTF)."""

    def trainable(self, model):
        return model.layer_groups()["first"]


@register("ft_last")
class FineTuneLast(Strategy):
    """Fine-tune only the last layers: last residual block + output layer (FTL)."""

    def trainable(self, model):
        return model.layer_groups()["last"]
