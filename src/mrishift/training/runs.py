"""What a training job writes and what later jobs read back: weights + a self-describing run record (the scans it
reads are ``mrishift.data.scans``)."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mrishift import __version__
from mrishift.io import atomic_path, error_summary, write_json
from mrishift.models import networks


def save_model(path: str | Path, model: torch.nn.Module, arch: str, width: float,
               optimizer: dict | None = None) -> None:
    """Plain (uncompiled) state_dict plus what rebuilds the network; loadable with weights_only=True. ``optimizer``
    (a source run's final ``mrishift.training.loop.optimizer_state``) is kept under that key when given."""
    saved = {"arch": arch, "width": width, "levels": model.levels, "model": model.state_dict()}
    if getattr(model, "window", None) is not None:  # a 3D network's sliding window (its training patch)
        saved["window"] = list(model.window)
    if optimizer is not None:
        saved["optimizer"] = optimizer
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and what makes it."""


def load_saved(path: str | Path, map_location="cpu", made_by: str = "") -> dict:
    """What ``save_model`` wrote (``arch``, ``width``, ``model``: the state dict), without building the network; a
    damaged file raises ``ModelFileError`` naming it and, when the caller says (``made_by``: what makes the file,
    e.g. a workflow rule), what remakes it once the file is deleted."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        remedy = f"; delete it and rerun {made_by}, which makes it" if made_by else ""
        raise ModelFileError(f"{path}: unreadable model file ({error_summary(error)}){remedy}") from error


def saved_network(saved: dict) -> torch.nn.Module:
    """A freshly initialised network of the architecture, width and resolution levels a ``load_saved`` dict names
    (a 3D network with the sliding window it was saved with)."""
    model = networks.build(saved["arch"], width=saved["width"], **{k: saved[k] for k in ("levels",) if k in saved})
    if "window" in saved:
        model.window = tuple(saved["window"])
    return model


def initial_network(saved: dict, seed: int) -> torch.nn.Module:
    """The network a run that starts from random initialisation (a source or oracle run, a scratch arm) started from:
    the saved model's network initialised under the run's seed (its record's ``seed``), as ``jobs.train_run`` built
    it. Feature reuse compares a scratch model with it."""
    torch.manual_seed(seed)
    return saved_network(saved)


def same_network(a: dict, b: dict) -> bool:
    """Whether two saved models are the same network (architecture, width, levels), their weights aside. A SpotTune
    network counts as its base: its own parameters are the base's, under the same names, beside a frozen copy and a
    policy (``models.SPOTTUNE``)."""
    return (networks.base_name(a["arch"]) == networks.base_name(b["arch"])
            and all(a.get(key) == b.get(key) for key in ("width", "levels")))


def load_model(path: str | Path, map_location="cpu", made_by: str = "") -> torch.nn.Module:
    """The network saved by ``save_model`` (errors as ``load_saved``)."""
    state = load_saved(path, map_location, made_by)
    model = saved_network(state)
    model.load_state_dict(state["model"])
    return model


def versions() -> dict:
    """What trained a run: package versions (snakemake's is absent when the library runs outside the workflow)."""
    try:
        snakemake = metadata.version("snakemake")
    except metadata.PackageNotFoundError:
        snakemake = None
    return {"mrishift": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "snakemake": snakemake, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "platform": sys.platform}


def write_record(path: str | Path, **fields) -> None:
    write_json(path, {**fields, "versions": versions()})


def learning_curves(record_paths) -> pd.DataFrame:
    """One row per (training run, epoch) from run records: identity, optimizer step at the epoch's end, mean
    training loss, its named terms where the strategy has several (``loss_terms``: "bce=0.4123 l2sp=0.0011"), and
    the validation scores where the run validated at that epoch (NaN elsewhere)."""
    rows = []
    for path in record_paths:
        record = json.loads(Path(path).read_text())
        identity, steps = record["identity"], record["recipe"]["iters_per_epoch"]
        validation = {v["epoch"]: v for v in record.get("validation", [])}
        for epoch, loss in enumerate(record["losses"], start=1):
            role = identity["role"] + ("_normalized" if record.get("arch", "").endswith(networks.NORMALIZED) else "")
            rows.append({"run": str(Path(path).parent), "role": role,
                         "strategy": identity.get("strategy") if identity["role"] == "finetune" else identity["role"],
                         "source": identity.get("source", identity.get("domain")), "target": identity.get("target"),
                         "budget": identity.get("budget"), "seed": str(identity.get("seed")), "epoch": epoch,
                         "step": epoch * steps, "loss": loss,
                         "loss_terms": " ".join(f"{name}={values[epoch - 1]:.6g}"
                                                for name, values in record.get("loss_terms", {}).items()),
                         "val_sdice": validation.get(epoch, {}).get("sdice", np.nan),
                         "val_dice": validation.get(epoch, {}).get("dice", np.nan)})
    return pd.DataFrame(rows, columns=["run", "role", "strategy", "source", "target", "budget", "seed", "epoch", "step",
                                       "loss", "loss_terms", "val_sdice", "val_dice"])


def convergence_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per role/arm and budget, from ``learning_curves``: runs, epochs, the mean loss of the first epoch and of the
    last fifth of the epochs, its relative change from the fifth before (≈ 0: a plateau), and the last and best mean
    validation surface Dice where the runs validated."""
    rows = []
    for (role, strategy, budget), runs in curves.groupby(["role", "strategy", "budget"], sort=False, dropna=False):
        loss = runs.groupby("epoch").loss.mean()
        fifth = max(1, len(loss) // 5)
        final, before = loss.iloc[-fifth:].mean(), loss.iloc[-2 * fifth:-fifth].mean()
        validation = runs.dropna(subset=["val_sdice"]).groupby("epoch").val_sdice.mean()
        rows.append({"role": role, "strategy": strategy, "budget": budget if isinstance(budget, str) else "",
                     "runs": runs.run.nunique(), "epochs": len(loss), "first_loss": loss.iloc[0], "final_loss": final,
                     "change_over_last_fifth": (final - before) / before if len(loss) >= 2 else np.nan,
                     "final_val_sdice": validation.iloc[-1] if len(validation) else np.nan,
                     "best_val_sdice": validation.max() if len(validation) else np.nan})
    return pd.DataFrame(rows)
