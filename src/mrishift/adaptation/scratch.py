"""Reference arms that start from random initialisation instead of a source model: DART 2020's preliminary
experiments ("we trained the model from scratch on joint data from the source and the target domains … [and] on
data from the target domain only"), which tell whether fine-tuning helps at all.

A strategy with ``from_scratch = True`` never reads a source model: its runs start from the network as seeded by the
run's identity (as a source model's does) and train with the *source* recipe (``training.source``: its epochs, lr
and schedule), because a fresh network needs a source run's length to converge; the fine-tuning recipe's 20 epochs
at lr 1e-3 are tuned for a network that already segments. Their scores are rows of role ``finetune`` like any arm's,
so gap closed, winners and every table take them; the analyses of where fine-tuning moved a source model
(``weight_change``, ``similarity``) leave them out.
"""

from __future__ import annotations

from mrishift.adaptation.strategies import Strategy, mixed_batch, register


@register("scratch_target")
class ScratchTarget(Strategy):
    """Every layer trained from random initialisation on the budget's target slices only."""

    from_scratch = True


@register("scratch_joint")
class ScratchJoint(Strategy):
    """Every layer trained from random initialisation on the union of the source's training slices and the budget's
    target slices, every slice equally likely (the paper's "joint data"; no oversampling of the target, which it does
    not describe): each batch's number of target slices is binomial with the target's share of the union."""

    from_scratch = True
    uses_source_data = True

    def batch(self, epoch, target, source=None):
        if source is None:
            raise ValueError(f"strategy {self.name!r} trains on source and target slices: no source sampler given")
        size = target.batch_size
        n_target = int(target.rng.binomial(size, len(target.pool) / (len(target.pool) + len(source.pool))))
        return mixed_batch(target, source, n_target, size)
