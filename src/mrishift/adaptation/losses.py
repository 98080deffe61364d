"""The segmentation loss every strategy builds on: binary cross-entropy with logits, over the labelled voxels."""

from __future__ import annotations

import torch
from torch.nn import functional as F

IGNORE = -1.0  # a mask value for voxels without a label (3D patches reaching past a budget's labelled slices)


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean BCE with logits. Slices (4-d batches) are labelled everywhere: the plain mean, exactly as before 3D
    networks existed. Patches (5-d) may hold ``IGNORE`` voxels, which are left out of the mean — a few labelled
    slices train a 3D network as sparse annotation (Çiçek et al. 2016); a patch without any label adds nothing."""
    if masks.dim() < 5:
        return F.binary_cross_entropy_with_logits(logits, masks)
    labelled = masks != IGNORE
    losses = F.binary_cross_entropy_with_logits(logits, masks.clamp(min=0), reduction="none")
    return (losses * labelled).sum() / labelled.sum().clamp(min=1)
