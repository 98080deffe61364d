"""A study as its paper defines it: the paper's arms, its gap closed over every pair, its sign test, absolute-score
tables, and its published numbers beside ours.

Our own views (every arm, the BatchNorm comparison, gap closed over the pairs with a gap of at least
``evaluation.min_gap``) stay in ``mrishift.analysis.stats``; this module is the paper's reading of the same scores:

- gap closed ("DR") of every pair, as the paper averages all 30: a pair whose oracle − baseline gap is small or
  negative is kept and flagged (``small_gap``), never dropped;
- winners among the paper's arms only (DART 2020's Fig. 3: FTA / FTF / FTL, counts summing to the pairs), the sign
  test on the per-scan gap closed (its "relative improvements … for every single test image"), a win significant only
  when most scans favour the winner;
- intervals that resample what varies: source domains, target domains and seeds, independently (a crossed
  bootstrap) — the 30 pairs are not independent (each source model serves five pairs, each target's scans and oracle
  five more), so resampling pairs as if they were would understate the spread. The test scans inside a pair are not
  resampled: the interval conditions on them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrishift.analysis import published, stats
from mrishift.analysis.stats import mean_std
from mrishift.data.splits import budget_order
from mrishift.seeding import seed_hash

METRIC_LABELS = {"sdice": "surface Dice", "dice": "Dice", "hd95_mm": "HD95 (mm)", "assd_mm": "ASSD (mm)"}


def metric_words(metric: str, tolerance_mm: float) -> str:
    """A metric as captions name it: surface Dice with its tolerance, the others by their label."""
    return METRIC_LABELS[metric] + (f" at {tolerance_mm:g} mm" if metric == "sdice" else "")

BASELINE_ROW, ORACLE_ROW = "no adaptation (baseline)", "oracle (target's own 3-fold CV)"


def per_pair(per_scan: pd.DataFrame, arms: list[str], metric: str, min_gap: float) -> pd.DataFrame:
    """Gap closed of every (pair, budget, arm, seed) of the paper's arms from the pair means, the paper's definition
    (any non-zero gap, a negative one included); ``small_gap`` flags the pairs whose gap is below ``min_gap`` (our
    own view leaves them out)."""
    rows = stats.per_pair_gap_closed(per_scan[per_scan.strategy.isin(arms)], metric, None)
    rows["small_gap"] = (rows.oracle - rows.baseline) < min_gap
    return rows


def crossed_interval(values: pd.DataFrame, samples: int, seed: int, level: float, name: str) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (columns seed, source, target, value: one per pair and seed)
    with seeds, source domains and target domains each resampled with replacement, independently; a replicate's
    mean is over the drawn (seed, source, target) cells that exist (a pair drawn twice counts twice)."""
    values = values.dropna(subset=["value"])
    if values.empty:
        return np.nan, np.nan
    seeds, sources, targets = (sorted(values[key].unique()) for key in ("seed", "source", "target"))
    cube = np.full((len(seeds), len(sources), len(targets)), np.nan)
    cube[values.seed.map(seeds.index), values.source.map(sources.index), values.target.map(targets.index)] = values.value
    rng = np.random.default_rng(seed_hash(seed, "crossed", name))
    means = np.empty(samples)
    for replicate in range(samples):
        drawn = cube[np.ix_(rng.integers(0, len(seeds), len(seeds)), rng.integers(0, len(sources), len(sources)),
                            rng.integers(0, len(targets), len(targets)))]
        means[replicate] = np.nanmean(drawn) if np.isfinite(drawn).any() else np.nan
    tail = (1 - level) / 2 * 100
    finite = means[np.isfinite(means)]
    return tuple(float(x) for x in np.percentile(finite, [tail, 100 - tail])) if finite.size else (np.nan, np.nan)


def _grid(cells: pd.DataFrame, rows: list[str], name: str, bootstrap: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Row × budget table of the mean over pairs per seed, then its mean (std over seeds; with one seed, std over
    pairs) [crossed interval]: (numbers, formatted, intervals as strategy/budget/low/high rows). ``cells``: columns
    row, budget, seed, source, target, value."""
    columns = budget_order(cells.budget)
    by_seed = cells.groupby(["row", "budget", "seed"]).value.mean()
    several_seeds = cells.seed.nunique() > 1
    spread = by_seed.groupby(["row", "budget"]).std() if several_seeds else cells.groupby(["row", "budget"]).value.std()
    mean = by_seed.groupby(["row", "budget"]).mean()
    low, high = {}, {}
    for (row, budget), cell in cells.groupby(["row", "budget"]):
        low[row, budget], high[row, budget] = crossed_interval(
            cell, bootstrap["samples"], bootstrap["seed"], bootstrap["level"], f"{name}/{row}/{budget}")

    def grid(series) -> pd.DataFrame:
        return pd.Series(series).unstack().reindex(index=rows, columns=columns) if len(series) else \
            pd.DataFrame(index=rows, columns=columns, dtype=float)

    numbers = grid(mean)
    intervals = pd.DataFrame([(row, budget, low[row, budget], high[row, budget]) for row, budget in low],
                             columns=["strategy", "budget", "low", "high"])
    return numbers, mean_std(numbers, grid(spread), grid(low), grid(high), digits=3 if name == "sdice" else 2), intervals


def spread_words(cells: pd.DataFrame, bootstrap: dict) -> str:
    """What a table's std and interval are over, for its caption."""
    seeds, sources, targets = (cells[key].nunique() for key in ("seed", "source", "target"))
    spread = f"std over the {seeds} seeds' means" if seeds > 1 else "std over pairs (one seed)"
    return (f"mean over pairs ({spread}) [{bootstrap['level']:.0%} crossed-bootstrap interval: {seeds} seed(s), "
            f"{sources} source and {targets} target domain(s) resampled independently, {bootstrap['samples']} "
            "replicates; conditional on each pair's test scans]")


def gap_closed_table(pairs: pd.DataFrame, arms: list[str], bootstrap: dict):
    """The paper's Fig. 2 in numbers: gap closed of each paper arm × budget over every pair."""
    cells = pairs.rename(columns={"strategy": "row", "gap_closed": "value"})
    return (*_grid(cells, arms, "gap_closed", bootstrap), spread_words(cells, bootstrap))


def score_cells(per_scan: pd.DataFrame, arms: list[str], metric: str) -> pd.DataFrame:
    """Per (row, budget, seed, pair): the mean ``metric`` over the pair's test scans — each paper arm's, and the
    baseline's and oracle's on the same scans (rows BASELINE_ROW, ORACLE_ROW)."""
    keys = ["budget", "seed", "source", "target"]
    arm_cells = per_scan[per_scan.strategy.isin(arms)].groupby(["strategy", *keys])[metric].mean()
    arm_cells = arm_cells.rename("value").reset_index().rename(columns={"strategy": "row"})
    scans = per_scan[per_scan.strategy.isin(arms)].drop_duplicates([*keys, "case"])
    references = [scans.groupby(keys)[column].mean().rename("value").reset_index().assign(row=row)
                  for column, row in (("baseline", BASELINE_ROW), ("oracle", ORACLE_ROW))]
    return pd.concat([arm_cells, *references], ignore_index=True)


def with_reference_scores(per_scan: pd.DataFrame, scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``per_scan`` (sDice-based) with its baseline and oracle columns in ``metric`` instead."""
    if metric == "sdice":
        return per_scan
    references = stats.reference_scores(scores, metric)
    return per_scan.drop(columns=["baseline", "oracle"]).merge(references, on=["source", "seed", "case"], how="left")


def score_table(per_scan: pd.DataFrame, arms: list[str], metric: str, bootstrap: dict):
    """The gradient-transfer study's Table 2 layout: the absolute ``metric`` of each paper arm × budget, mean over
    pairs (std) [interval], with the baseline's and the oracle's on the same test scans."""
    cells = score_cells(per_scan, arms, metric)
    return (*_grid(cells, [*arms, BASELINE_ROW, ORACLE_ROW], metric, bootstrap), spread_words(cells, bootstrap))


def winner_counts(winners: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """DART 2020's Fig. 3 in numbers: per budget, the pairs each arm won, significantly or not (sums to the pairs)."""
    if winners.empty:  # no pair and budget ran two of the paper's arms
        return pd.DataFrame(columns=["budget", "winner", "wins", "significant"])
    counts = winners.groupby(["budget", "winner"]).significant.agg(wins="size", significant="sum").reset_index()
    full = pd.MultiIndex.from_product([budget_order(winners.budget), arms], names=["budget", "winner"])
    return counts.set_index(["budget", "winner"]).reindex(full, fill_value=0).reset_index()


# ---- the published numbers beside ours --------------------------------------------------------------------------

def comparable_variant(variants: dict[str, dict], optimizer: str = "sgd", arch: str | None = None) -> str | None:
    """The study's variant a paper's numbers describe: no augmentation, whole source training, the study's own size,
    this optimizer, the paper's architecture when the study has it (else its first)."""
    plain = [name for name, spec in variants.items() if spec["augment_p"] == 0 and spec["source_strategy"] == "ft_all"
             and spec["optimizer"] == optimizer and name == spec["family"]]  # family == name: the study's own size
    preferred = [name for name in plain if variants[name]["arch"] == arch]
    return (preferred or plain or [None])[0]


def row(claim_or_cell: str, paper_value, ours, interval=(np.nan, np.nan), difference=np.nan, note: str = "",
        where: str = "", variant: str | None = None) -> dict:
    """One line of paper vs ours; ``variant``: the study's model variant its numbers come from."""
    return {"what": claim_or_cell, "where": where, "paper": paper_value, "ours": ours, "low": interval[0],
            "high": interval[1], "difference": difference, "note": note, "variant": variant}


def _fmt(value, digits=2) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else (
        f"{value:.{digits}f}" if isinstance(value, (float, np.floating)) else str(value))


def _pairs_of(per_scan: pd.DataFrame, arm: str) -> set[tuple[str, str]]:
    ran = per_scan[per_scan.strategy == arm]
    return set(zip(ran.source, ran.target))


# DART 2020's preliminary arms: (label in our rows, what the model was trained on)
SCRATCH_ARMS = {"scratch_target": ("scratch (target)", "the target's budget only"),
                "scratch_joint": ("scratch (joint)", "source and target data jointly")}


def dart2020_rows(scores: pd.DataFrame, per_scan: pd.DataFrame, arms: list[str], significance: float,
                  bootstrap: dict, variant: str) -> list[dict]:
    """Table 1's 36 cells and the paper's three claims, against this study's ``variant``."""
    from mrishift.analysis import bootstrap as resampling

    rows = []
    table = published.load("dart2020_table1")
    mean, _ = stats.sdice_matrix(scores)
    low, high = resampling.sdice_matrix_intervals(scores, bootstrap["samples"], bootstrap["seed"], bootstrap["level"])
    for cell in table.itertuples():
        ours = mean.loc[cell.target, cell.source] if cell.target in mean.index and cell.source in mean.columns \
            else np.nan
        interval = (low.loc[cell.target, cell.source], high.loc[cell.target, cell.source]) if pd.notna(ours) \
            else (np.nan, np.nan)
        rows.append(row(f"sDice {cell.source} model on {cell.target}" + (" (oracle)" if cell.source == cell.target
                                                                          else ""),
                        f"{cell.value:.2f} ({cell.std:.2f})", ours, interval, ours - cell.value, where="Table 1",
                        note="" if pd.notna(ours) else "not in this study (data.domains)"))
    off = table[table.source != table.target].merge(table[table.source == table.target][["target", "value"]],
                                                    on="target", suffixes=("", "_oracle"))
    ours_off = [(t, s) for t in mean.index for s in mean.columns if t != s and pd.notna(mean.loc[t, s])]
    below = sum(mean.loc[t, s] < mean.loc[t, t] for t, s in ours_off)
    rows.append(row("every source model scores below the target's oracle (domain shift)",
                    f"{(off.value < off.value_oracle).sum()} of {len(off)} cells",
                    f"{below} of {len(ours_off)} cells", where="Table 1"))
    labels = {**published.PAPERS["dart2020"].arms, **{arm: label for arm, (label, _) in SCRATCH_ARMS.items()}}
    claims = [("ft_first", "ft_last", "fine-tuning the first layers beats the last layers", "yes (Sec. 4, Conclusion)",
               "Sec. 4"),
              ("ft_first", "ft_all", "with scarce target data, fine-tuning the first layers beats fine-tuning all "
                                     "layers", "yes at the scarcest budgets (Fig. 2–3)", "Sec. 4")]
    # Its preliminary experiments (Sec. 3), compared wherever this study runs them beside FTA (not among its arms)
    run = set(per_scan.strategy)
    claims += [("ft_all", arm, f"fine-tuning all layers beats training from scratch on {data}",
                "yes: 'extremely poor results' (preliminary; no numbers)", "Sec. 3")
               for arm, (_, data) in SCRATCH_ARMS.items() if {arm, "ft_all"} <= run]
    for better, worse, claim, published_answer, where in claims:
        if not {better, worse} - set(SCRATCH_ARMS) <= set(arms):  # a scratch claim is listed only where it ran
            rows.append(row(claim, published_answer, "not run", note=f"needs arms {better} and {worse} in "
                                                                       "study.arms", where=where))
            continue
        both = _pairs_of(per_scan, better) & _pairs_of(per_scan, worse)  # a reference arm may run on fewer pairs
        tests = stats.compare_arms(per_scan, better, worse, significance, min_gap=None, pairs=both,
                                   tested="gap_closed")
        for budget in budget_order(tests.budget):
            at = tests[tests.budget == budget]
            won, lost = (at.better == better).sum(), (at.better == worse).sum()
            sig_won, sig_lost = (at.significant & (at.better == better)).sum(), (at.significant & (at.better == worse)).sum()
            verdict = "yes" if won > lost else "no" if won < lost else "tie"
            rows.append(row(f"{claim} — at {budget}", published_answer,
                            f"{verdict}: {labels[better]} better in {won} of {len(at)} pairs ({sig_won} significant), "
                            f"{labels[worse]} in {lost} ({sig_lost} significant)",
                            difference=float((at.gap_closed_a - at.gap_closed_b).mean()),
                            note="difference: mean gap closed over pairs; sign test on per-scan gap closed, "
                                 f"p < {significance:g}, direction checked", where=where))
    return [dict(r, variant=variant) for r in rows]


def gradient_transfer_rows(per_scan_by_variant: dict[str, tuple], bootstrap: dict) -> list[dict]:
    """Table 2 (SGD and Adam, every arm and budget, no fine-tuning, all target data), Table 3 (forgetting) and the
    paper's claims, each against the study's variant of that optimizer (a missing variant: 'not run').
    ``per_scan_by_variant``: optimizer -> (variant name, its per-scan gap-closed rows, its scores)."""
    paper = published.PAPERS["gradient_transfer"]
    ours_arm = {label: arm for arm, label in paper.arms.items()}
    rows = []
    table = published.load("mmtl_table2")
    best = {}
    for optimizer, printed in table.groupby("optimizer", sort=False):
        variant = per_scan_by_variant.get(optimizer)
        cells = score_cells(variant[1], list(variant[1].strategy.unique()), "sdice") if variant else None
        for cell in printed.itertuples():
            if cell.arm in ours_arm:
                key, budget = ours_arm[cell.arm], paper.budgets.get(cell.slices)
            else:
                key, budget = (BASELINE_ROW if cell.arm == "no fine-tuning" else ORACLE_ROW), None
            ours, interval = np.nan, (np.nan, np.nan)
            if cells is not None:
                chosen = cells[(cells.row == key) & ((cells.budget == budget) if budget else True)]
                if budget is None:  # the references: the same on every budget's test scans; the first budget's
                    chosen = chosen[chosen.budget == budget_order(chosen.budget)[0]] if len(chosen) else chosen
                if len(chosen):
                    ours = 100 * chosen.groupby("seed").value.mean().mean()
                    interval = tuple(100 * x for x in crossed_interval(
                        chosen, bootstrap["samples"], bootstrap["seed"], bootstrap["level"], f"mmtl/{key}/{budget}"))
            what = f"{optimizer.upper()} {cell.arm}" + (f" at {cell.slices} slices ({budget})" if budget else "")
            note = "" if cells is not None else f"no {optimizer} variant in this study"
            if cell.arm == "all target data":
                note = note or "ours: the 3-fold CV oracle on the pairs' test scans (the paper trains on all target data)"
            rows.append(row(what, f"{cell.value:.2f}" + (f" ± {cell.std:.2f}" if pd.notna(cell.std) else ""), ours,
                            interval, ours - cell.value, note, cell.where, variant[0] if variant else None))
            if budget:
                best.setdefault((optimizer, cell.slices), {})[cell.arm] = (cell.value, ours)
    for (optimizer, slices), arms in best.items():
        paper_best = max(arms, key=lambda a: arms[a][0])
        ran = {a: v[1] for a, v in arms.items() if pd.notna(v[1])}
        ours_best = max(ran, key=ran.get) if ran else "not run"
        rows.append(row(f"best arm, {optimizer.upper()} at {slices} slices (the paper: 'MMTL maximized the metric')",
                        paper_best, f"{ours_best} (of {len(ran)} arms run)", where="Table 2",
                        variant=(per_scan_by_variant.get(optimizer) or [None])[0]))
    forgetting = published.load("mmtl_table3")
    variant = per_scan_by_variant.get("sgd")
    after = None
    if variant and (variant[2].role == "forgetting").any():
        after = stats.forgetting_per_pair(variant[2])
    for cell in forgetting.itertuples():
        ours = np.nan
        if after is not None and cell.arm == "source model":
            ours = 100 * after.drop_duplicates(["source", "seed"]).before.mean()
        elif after is not None and cell.arm in ours_arm:
            chosen = after[(after.strategy == ours_arm[cell.arm]) & (after.budget == paper.budgets[cell.slices])]
            ours = 100 * chosen.after.mean() if len(chosen) else np.nan
        rows.append(row(f"on the source site: {cell.arm}" + ("" if cell.arm == "source model"
                                                               else f" fine-tuned on {cell.slices} slices"),
                        f"{cell.value:.2f}", ours, difference=ours - cell.value,
                        note="ours: the SGD variant, source domain's held-out scans", where=cell.where,
                        variant=variant[0] if variant else None))
    return rows


def paper_vs_ours(paper_key: str, scores: pd.DataFrame, variants: dict[str, dict], arms: list[str],
                  significance: float, bootstrap: dict, synthetic: bool) -> tuple[pd.DataFrame, str]:
    """The comparison rows of one paper's study, and a note on what the comparison can show."""
    paper = published.paper(paper_key)
    note = ("The embedded default is a synthetic CC359 built from one head at a coarse grid: its absolute numbers "
            "are not comparable with the paper's; compare the claims (directions and counts)." if synthetic else
            "Real CC359: absolute numbers are comparable where the recipe matches (docs/deviations.md).")
    if paper.key == "dart2020":
        variant = comparable_variant(variants, "sgd", "unet2d_residual")
        if variant is None:
            return pd.DataFrame([row("DART 2020", "", "not run", note="no plain SGD variant")]), note
        own = scores[scores.variant == variant]
        per_scan = stats.per_scan_gap_closed(own)
        rows = dart2020_rows(own, per_scan, arms, significance, bootstrap, variant)
    elif paper.key == "gradient_transfer":
        chosen = {optimizer: comparable_variant(variants, optimizer) for optimizer in ("sgd", "adam")}
        per_scan = {optimizer: (v, stats.per_scan_gap_closed(scores[scores.variant == v]), scores[scores.variant == v])
                    for optimizer, v in chosen.items() if v is not None}
        rows = gradient_transfer_rows(per_scan, bootstrap)
    else:
        rows = [row(paper.title, "other data set", "no cell-for-cell numbers",
                    note="its claims are read from this study's tables and figures (config header)")]
        rows += [row(published.TABLES[name].caption, f"{len(published.load(name))} cells as printed: "
                     f"src/mrishift/analysis/published/{name}.tsv", "— (another data set)",
                     where=published.TABLES[name].where) for name in paper.tables]
    return pd.DataFrame(rows), note


def no_paper() -> tuple[pd.DataFrame, str]:
    return (pd.DataFrame([row("no paper", "", "", note="set study.paper to compare")]),
            "This config names no paper (study.paper): our own views only.")


def markdown(table: pd.DataFrame, title: str, note: str) -> str:
    lines = [f"## {title}", "", note, "", "| what | where | paper | ours [95% interval] | ours − paper | note |",
             "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ours = _fmt(r.ours, 3) if isinstance(r.ours, (float, np.floating)) else str(r.ours)
        if pd.notna(r.low):
            ours += f" [{r.low:.3f}, {r.high:.3f}]" if abs(r.high) < 2 else f" [{r.low:.2f}, {r.high:.2f}]"
        lines.append(f"| {r.what} | {r.where} | {r.paper} | {ours} | {_fmt(r.difference, 3)} | {r.note} |")
    return "\n".join(lines) + "\n"
