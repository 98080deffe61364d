"""The study's three figures, each saved as PNG (report, README) and PDF (papers)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from mrishift.analysis.loss_predictor import ALL_TARGETS  # noqa: E402
from mrishift.data.cc359 import DOMAINS  # noqa: E402
from mrishift.data.splits import ZERO_BUDGET, budget_order  # noqa: E402
from mrishift.io import atomic_path  # noqa: E402

STRATEGY_LABELS = {"ft_all": "fine-tune all layers", "ft_first": "fine-tune first layers",
                   "ft_last": "fine-tune last layers"}


def label(strategy: str) -> str:
    return STRATEGY_LABELS.get(strategy, strategy)


def budget_labels(budgets: list[str]) -> list[str]:
    """Axis labels of budgets: 0 says it is the test-time (no-label) column."""
    return ["0\n(test-time)" if b == ZERO_BUDGET else b for b in budgets]


def palette(n: int):
    """n distinguishable colours: seaborn's default ten, more from the husl circle (never a repeated colour)."""
    return sns.color_palette(n_colors=n) if n <= 10 else sns.color_palette("husl", n)


def save(figure, *paths: str | Path) -> None:
    """The figure in each path's format (by suffix: .png for the report and README, .pdf for papers), atomically."""
    for path in paths:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close(figure)


def sdice_matrix_figure(mean: pd.DataFrame, std: pd.DataFrame, metric_label: str, title: str,
                        low: pd.DataFrame | None = None, high: pd.DataFrame | None = None):
    """Annotated heatmap: rows target, columns source, diagonal (outlined) = oracle; each cell's mean with its
    bootstrap interval (``low``/``high``) when given, else ± its std."""
    names = [DOMAINS[d].short for d in mean.index]
    if low is not None:
        low, high = low.reindex_like(mean), high.reindex_like(mean)
        annotations = np.array([[f"{m:.2f}\n[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else f"{m:.2f}"
                                 for m, lo, hi in zip(*rows)] for rows in zip(mean.values, low.values, high.values)])
    else:
        annotations = np.array([[f"{m:.2f}\n±{s:.2f}" if pd.notna(s) else f"{m:.2f}" for m, s in zip(mr, sr)]
                                for mr, sr in zip(mean.values, std.values)])
    figure, ax = plt.subplots(figsize=(1.3 * len(names) + 2.5, 0.9 * len(names) + 1.5))
    sns.heatmap(mean.values, annot=annotations, fmt="", cmap="viridis", vmin=0, vmax=1, square=True, ax=ax,
                xticklabels=names, yticklabels=names, cbar_kws={"label": metric_label}, annot_kws={"fontsize": 7})
    for i in range(len(names)):
        ax.add_patch(plt.Rectangle((i, i), 1, 1, fill=False, edgecolor="white", linewidth=2.5))
    ax.set_xlabel("source domain (model trained on)")
    ax.set_ylabel("target domain (scans tested on)")
    ax.set_title(title)
    return figure


def gap_closed_figure(per_pair: pd.DataFrame, strategies: list[str], title: str,
                      intervals: pd.DataFrame | None = None):
    """Per budget: the distribution of per-pair gap closed (violins) and its mean per strategy (points joined by
    lines), with its bootstrap interval as an error bar when ``intervals`` (bootstrap.gap_closed_intervals) is given."""
    data = per_pair.assign(strategy=per_pair.strategy.map(label))
    order, hue_order = budget_order(per_pair.budget), [label(s) for s in strategies]
    colours = palette(len(hue_order))
    figure, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(order)), 4.5))
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    sns.violinplot(data=data, x="budget", y="gap_closed", hue="strategy", order=order, hue_order=hue_order,
                   inner=None, cut=0, density_norm="width", linewidth=0.5, alpha=0.35, ax=ax, legend=False,
                   palette=colours)
    means = per_pair.groupby(["strategy", "budget"]).gap_closed.mean()
    ends = intervals.set_index(["strategy", "budget"]) if intervals is not None else None
    width = 0.8 / len(strategies)  # the violins' dodge: each strategy at the centre of its violin
    for i, strategy in enumerate(strategies):
        budgets = [b for b in order if pd.notna(means.get((strategy, b), np.nan))]
        if not budgets:
            continue
        x = np.array([order.index(b) for b in budgets]) - 0.4 + width * (i + 0.5)
        y = np.array([means[(strategy, b)] for b in budgets])
        error = None
        if ends is not None:
            low = np.array([ends.low.get((strategy, b), np.nan) for b in budgets])
            high = np.array([ends.high.get((strategy, b), np.nan) for b in budgets])
            error = np.nan_to_num(np.vstack([y - low, high - y]))
        ax.errorbar(x, y, yerr=error, color=colours[i], marker="o", markersize=5, linewidth=1.2, capsize=2,
                    label=label(strategy))
    ax.set_xticks(range(len(order)), budget_labels(order))
    ax.set_xlabel("target-data budget (least → most)")
    ax.set_ylabel("gap closed (0 = no adaptation, 1 = oracle)")
    ax.set_title(title)
    ax.legend(title="mean over pairs" + ("\n(bootstrap interval)" if ends is not None else ""), loc="upper left",
              bbox_to_anchor=(1.01, 1), fontsize=8)
    return figure


def forgetting_figure(per_pair: pd.DataFrame, strategies: list[str], metric_label: str, title: str):
    """Per budget: each fine-tuned model's change of ``metric_label`` on its source domain's held-out scans (after −
    before fine-tuning; points = pairs and seeds) and each arm's mean (a bar)."""
    data = per_pair.assign(strategy=per_pair.strategy.map(label))
    order = budget_order(per_pair.budget)
    hue_order = [label(s) for s in strategies if s in set(per_pair.strategy)]
    colours = palette(max(1, len(hue_order)))
    figure, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(order)), 4.5))
    ax.axhline(0, color="grey", linewidth=0.8)
    sns.barplot(data=data, x="budget", y="change", hue="strategy", order=order, hue_order=hue_order, errorbar=None,
                alpha=0.35, palette=colours, ax=ax, legend=False)
    sns.stripplot(data=data, x="budget", y="change", hue="strategy", order=order, hue_order=hue_order, dodge=True,
                  size=3, palette=colours, ax=ax)
    ax.set_xticks(range(len(order)), budget_labels(order))
    ax.set_xlabel("target-data budget (least → most)")
    ax.set_ylabel(f"change of {metric_label}\non the source's held-out scans (after − before)")
    ax.set_title(title)
    ax.legend(title="arm (bar: mean; points: pairs)", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return figure


def size_effects_figure(table: pd.DataFrame, strategies: list[str], title: str):
    """Rows: budgets; columns: gap closed against width (variants at their architecture's own levels) and against
    resolution levels (variants at the study's width); a colour per arm, a line style per family
    (``stats.gap_closed_by_size``'s table)."""
    budgets = budget_order(table.budget)
    arms = [s for s in strategies if s in set(table.strategy)]
    colours = dict(zip(arms, palette(max(1, len(arms)))))
    families = list(dict.fromkeys(table.family))
    styles = dict(zip(families, ["-", "--", ":", "-."] * len(families)))
    figure, axes = plt.subplots(len(budgets), 2, figsize=(10, 3.2 * len(budgets)), squeeze=False, sharey="row")
    for row, budget in zip(axes, budgets):
        for ax, axis in zip(row, ("width", "levels")):
            shown = table[(table.budget == budget) & table[f"on_{axis}_axis"]]
            for (family, arm), line in shown.groupby(["family", "strategy"], sort=False):
                line = line.sort_values(axis)
                ax.plot(line[axis], line.gap_closed, styles[family], marker="o", color=colours[arm],
                        label=f"{label(arm)} ({family})" if len(families) > 1 else label(arm))
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_xlabel("channel-width multiplier" if axis == "width" else "resolution levels (depth)")
            ax.set_title(f"budget {budget}", fontsize=9)
            if axis == "width":
                ax.set_xscale("log", base=2)
        row[0].set_ylabel("gap closed (mean over pairs)")
    handles = {}
    for ax in axes.flat:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.suptitle(title)
    return figure


def winners_figure(winners: pd.DataFrame, strategies: list[str], significance: float, title: str):
    """Per budget, pairs won by each strategy; significant wins solid, others hatched and pale."""
    order = budget_order(winners.budget)
    counts = winners.groupby(["budget", "winner", "significant"]).size()
    colours = palette(len(strategies))
    width = 0.8 / len(strategies)
    figure, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(order)), 4.5))
    x = np.arange(len(order))
    for i, strategy in enumerate(strategies):
        significant = np.array([counts.get((b, strategy, True), 0) for b in order])
        other = np.array([counts.get((b, strategy, False), 0) for b in order])
        position = x - 0.4 + width * (i + 0.5)
        ax.bar(position, significant, width, color=colours[i], label=f"{label(strategy)}: p < {significance:g}")
        ax.bar(position, other, width, bottom=significant, color=colours[i], alpha=0.35, hatch="//",
               edgecolor=colours[i], label=f"{label(strategy)}: not significant")
    ax.set_xticks(x, budget_labels(order))
    ax.set_xlabel("target-data budget (least → most)")
    n_pairs = winners.groupby("budget").size().max()
    ax.set_ylabel(f"pairs won (of {n_pairs})")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(0, -0.18))
    return figure


def batchnorm_figure(per_pair: pd.DataFrame, bn_pairs: list[tuple[str, str]], statistics_arms: list[str], title: str,
                     intervals: pd.DataFrame | None = None):
    """Gap closed per budget (mean over pairs, with its bootstrap interval from ``intervals`` when given, else ± its
    standard error) of each arm under both BatchNorm modes — frozen layers' statistics following the target (solid)
    or kept from the source (dashed) — and of statistics-only arms (dotted): what the statistics alone do, and what
    the weights add."""
    drawn = per_pair[per_pair.strategy.isin([arm for pair in bn_pairs for arm in pair] + statistics_arms)]
    order = budget_order((drawn if len(drawn) else per_pair).budget)  # not budget 0: no arm here runs at it
    x = np.arange(len(order))
    colours = palette(max(1, len(bn_pairs)))
    figure, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(order)), 4.5))
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    lines = [(arm, colours[i], style, f"{arm} (frozen BN: {mode})")
             for i, pair in enumerate(bn_pairs) for arm, style, mode in zip(pair, ("-", "--"), ("train", "eval"))]
    lines += [(arm, "black", ":", f"{arm} (statistics only)") for arm in statistics_arms]
    for k, (arm, colour, style, name) in enumerate(lines):
        values = per_pair[per_pair.strategy == arm].groupby("budget").gap_closed
        mean = values.mean().reindex(order)
        if intervals is not None:
            ends = intervals[intervals.strategy == arm].set_index("budget").reindex(order)
            error = np.nan_to_num(np.vstack([mean - ends.low, ends.high - mean]))
        else:
            error = values.sem().reindex(order)
        ax.errorbar(x + 0.04 * (k - len(lines) / 2), mean, yerr=error, color=colour, linestyle=style, marker="o",
                    capsize=3, label=name)
    if not lines:
        ax.text(0.5, 0.5, "this study has no arms that differ only in their BatchNorm mode", ha="center",
                transform=ax.transAxes)
    ax.set_xticks(x, order)
    ax.set_xlabel("target-data budget (least → most)")
    ax.set_ylabel("gap closed (mean over pairs, " + ("bootstrap interval)" if intervals is not None else "± s.e.)"))
    ax.set_title(title)
    if lines:
        ax.legend(fontsize=7, loc="best")
    return figure


def block_profile_figure(changes: pd.DataFrame, value: str, value_label: str, strategies: list[str], title: str):
    """Per budget (a panel each): ``value`` of each block, input to output, per arm — the mean over its fine-tuned
    models (pairs, seeds) and their interquartile band. ``changes``: a row per model and block (block, depth,
    strategy, budget, value)."""
    budgets = budget_order(changes.budget)
    blocks = changes.drop_duplicates("depth").sort_values("depth").block.tolist()
    arms = [s for s in strategies if s in set(changes.strategy)]
    colours = palette(max(1, len(arms)))
    figure, axes = plt.subplots(1, len(budgets), figsize=(max(6.0, 0.22 * len(blocks)) * len(budgets), 4.2),
                                sharey=True, squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        for colour, arm in zip(colours, arms):
            by_depth = changes[(changes.strategy == arm) & (changes.budget == budget)].groupby("depth")[value]
            if by_depth.ngroups == 0:
                continue
            depth = by_depth.mean().index
            ax.fill_between(depth, by_depth.quantile(0.25), by_depth.quantile(0.75), color=colour, alpha=0.2,
                            linewidth=0)
            ax.plot(depth, by_depth.mean(), color=colour, marker=".", linewidth=1.2, label=label(arm))
        ax.set_xticks(range(len(blocks)), blocks, rotation=90, fontsize=6)
        ax.set_title(f"budget {budget}", fontsize=9)
        ax.set_xlabel("block (input → output)")
    axes[0][0].set_ylabel(value_label)
    handles = {}  # every arm once, whichever panels it ran in
    for ax in axes[0]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.suptitle(title)
    return figure


def convergence_figure(curves: pd.DataFrame, title: str):
    """Training curves from the run records vs optimizer step (mean and ± sd band over runs): source and oracle loss
    and validation surface Dice, then the fine-tuning loss of each arm, one panel per budget."""
    finetune = curves[curves.role == "finetune"]
    budgets = budget_order(finetune.budget.dropna()) if len(finetune) else []
    figure, axes = plt.subplots(1, 2 + len(budgets), figsize=(4.2 * (2 + len(budgets)), 3.8), squeeze=False)
    axes = axes[0]
    references = curves[curves.role.isin(["source", "oracle", "source_normalized"])]
    sns.lineplot(data=references, x="step", y="loss", hue="role", errorbar="sd", ax=axes[0])
    axes[0].set_title("source / oracle: training loss")
    validated = references.dropna(subset=["val_sdice"])
    if len(validated):
        sns.lineplot(data=validated, x="step", y="val_sdice", hue="role", errorbar="sd", marker="o", ax=axes[1])
    axes[1].set_title("source / oracle: validation surface Dice")
    for ax, budget in zip(axes[2:], budgets):
        sns.lineplot(data=finetune[finetune.budget == budget], x="step", y="loss", hue="strategy", errorbar="sd",
                     ax=ax)
        ax.set_title(f"fine-tuning loss, budget {budget}")
        ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("optimizer step")
    axes[0].set_yscale("log")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def loss_predictor_figure(rows: pd.DataFrame, correlations: pd.DataFrame, metric_label: str, title: str):
    """One panel per test-time arm: each adapted scan's loss at the source model (before adapting) against the
    unadapted source model's ``metric_label``, coloured by target domain, with Spearman's ρ over all the arm's scans
    and its interval (``loss_predictor.correlations``)."""
    arms = list(dict.fromkeys(rows.strategy))
    figure, axes = plt.subplots(1, max(1, len(arms)), figsize=(4.6 * max(1, len(arms)), 4.2), squeeze=False)
    targets = [d for d in DOMAINS if d in set(rows.target)]
    colours = dict(zip(targets, palette(max(1, len(targets)))))
    for ax, arm in zip(axes[0], arms):
        of_arm = rows[rows.strategy == arm]
        for target in targets:
            points = of_arm[of_arm.target == target]
            ax.scatter(points.loss_before, points.unadapted, s=14, color=colours[target], label=DOMAINS[target].short)
        pooled = correlations[(correlations.strategy == arm) & (correlations.target == ALL_TARGETS)].iloc[0]
        ax.set_title(f"{label(arm)}\nSpearman ρ = {pooled.rho:.2f} [{pooled.low:.2f}, {pooled.high:.2f}], "
                     f"n = {pooled.n}", fontsize=9)
        ax.set_xlabel("loss before adapting (at the source model)")
        ax.set_ylabel(f"{metric_label} without adaptation")
    axes[0][-1].legend(title="target", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    figure.suptitle(title)
    return figure


def first_layer_figure(rows: list[tuple[str, np.ndarray]], title: str, symmetric: bool):
    """One row per model (``rows``: label, (count, h, w) images), one column per channel; every image of a column on
    one colour scale (``symmetric``: centred on 0, for filters), so a column shows how one filter or feature map moved
    from model to model."""
    count = rows[0][1].shape[0]
    figure, axes = plt.subplots(len(rows), count, figsize=(0.9 * count + 2.2, 0.95 * len(rows) + 0.6),
                                squeeze=False, layout="constrained")
    for column in range(count):
        values = np.stack([images[column] for _, images in rows])
        high = float(np.abs(values).max()) if symmetric else float(values.max())
        low = -high if symmetric else float(values.min())
        for row, (_, images) in enumerate(rows):
            ax = axes[row][column]
            ax.imshow(images[column].T, cmap="RdBu_r" if symmetric else "gray", vmin=low, vmax=high or 1,
                      origin="lower", interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
    for row, (text, _) in enumerate(rows):
        axes[row][0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=7)
    figure.suptitle(title, fontsize=9)
    return figure
