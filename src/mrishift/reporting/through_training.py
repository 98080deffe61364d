"""Figures of fine-tuning runs through training, from their snapshots (rule snapshots): each block's similarity to
where the run started, the held-out score, and a t-SNE of bottleneck features per step."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mrishift.analysis.model_similarity import stage_blocks
from mrishift.data.splits import budget_order
from mrishift.reporting.plots import label, palette


def similarity_through_training(similarity: pd.DataFrame, measure: str, measure_label: str, arms: list[str],
                                title: str):
    """A panel per budget (rows) and arm (columns): ``measure`` of the last block of each stage with where the run
    started, against the optimizer step; the mean over the arm's analysed pairs and seeds."""
    budgets = budget_order(similarity.budget)
    arms = [arm for arm in arms if arm in set(similarity.strategy)]
    blocks = stage_blocks(list(similarity.drop_duplicates("block").sort_values("depth").block))
    colours = dict(zip(blocks, palette(len(blocks))))
    figure, axes = plt.subplots(len(budgets), len(arms), figsize=(3.6 * len(arms), 3.0 * len(budgets)),
                                sharex=True, sharey=True, squeeze=False)
    for row, budget in zip(axes, budgets):
        for ax, arm in zip(row, arms):
            runs = similarity[(similarity.strategy == arm) & (similarity.budget == budget)]
            ax.set_visible(len(runs) > 0)  # an arm that does not run this budget
            for block in blocks:
                curve = runs[runs.block == block].groupby("step")[measure].mean()
                ax.plot(curve.index, curve.to_numpy(), marker=".", color=colours[block], label=block)
            ax.set_title(f"{label(arm)}, {budget}", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("optimizer step")
    for ax in axes[:, 0]:
        ax.set_ylabel(measure_label, fontsize=8)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1), title="block", title_fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def score_through_training(scores: pd.DataFrame, metric: str, metric_label: str, arms: list[str], title: str):
    """A panel per budget: each arm's mean held-out ``metric`` over its runs against the optimizer step (a note when
    there are no held-out scans)."""
    budgets = budget_order(scores.budget)
    arms = [arm for arm in arms if arm in set(scores.strategy)]
    colours = palette(max(1, len(arms)))
    figure, axes = plt.subplots(1, max(1, len(budgets)), figsize=(4.2 * max(1, len(budgets)), 3.6), sharey=True,
                                squeeze=False)
    if scores.empty:
        axes[0][0].text(0.5, 0.5, "no held-out target scans\n(splits.n_finetune_validation: 0)", ha="center",
                        va="center", transform=axes[0][0].transAxes)
    for ax, budget in zip(axes[0], budgets):
        for colour, arm in zip(colours, arms):
            curve = scores[(scores.strategy == arm) & (scores.budget == budget)].groupby("step")[metric].mean()
            if len(curve):
                ax.plot(curve.index, curve.to_numpy(), marker="o", markersize=3, color=colour, label=label(arm))
        ax.set_title(f"budget {budget}", fontsize=9)
        ax.set_xlabel("optimizer step")
    axes[0][0].set_ylabel(metric_label)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def embedding_through_training(panels: list[tuple[str, int, np.ndarray, list[str]]], title: str):
    """A row per run (its label), a column per step: each panel's 2-D points coloured by group. ``panels``: (run
    label, step, (N, 2) points, N group names)."""
    runs = list(dict.fromkeys(run for run, _, _, _ in panels))
    steps = sorted(dict.fromkeys(step for _, step, _, _ in panels))
    groups = list(dict.fromkeys(group for _, _, _, names in panels for group in names))
    colours = dict(zip(groups, palette(max(1, len(groups)))))
    figure, axes = plt.subplots(len(runs), len(steps), figsize=(2.4 * len(steps), 2.4 * len(runs)), squeeze=False)
    for run, step, points, names in panels:
        ax = axes[runs.index(run)][steps.index(step)]
        for group in groups:
            chosen = np.array([name == group for name in names])
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=colours[group], label=group)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{run}\nstep {step}", fontsize=7)
    handles = dict(zip(*reversed(axes[0][0].get_legend_handles_labels())))
    figure.legend(handles.values(), handles.keys(), fontsize=7, loc="lower center", ncol=len(groups))
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure
