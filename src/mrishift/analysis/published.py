"""The seed papers' published numbers, as data: each table as printed, with where it stands in its paper.

The tables live beside this module (``published/*.tsv``, package data), transcribed from the paper texts in
``../shared/papers/`` and checked against a second, independent transcription. Only the CC359 studies publish numbers
our study regenerates cell for cell (DART 2020's Table 1; the gradient-transfer study's Tables 2 and 3); the other
papers report on other data sets, so their claims, not their numbers, are compared (``mrishift.analysis.paper_view``),
and their tables are here as printed (the FCN study's Tables II–VIII, the 3D-CNN study's Tables 1–2; the test-time study
prints its numbers in an image the text lacks): ``row, column, value, std`` (std empty where none is printed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import pandas as pd

FOLDER = resources.files("mrishift.analysis") / "published"


@dataclass(frozen=True)
class Table:
    name: str  # the file's stem
    paper: str  # a key of PAPERS
    where: str  # where it stands in the paper
    caption: str  # the paper's caption, shortened
    scale: float  # published value × scale = our unit (surface Dice as a fraction)
    shape: tuple[int, int]  # (rows, columns) as printed, what the file must hold


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    text: str  # the paper's file in ../shared/papers/
    arms: dict[str, str]  # our arm (a strategy class's name) -> the paper's label
    budgets: dict[str, str] = field(default_factory=dict)  # the paper's budget label -> ours (splits.budgets)
    tables: tuple[str, ...] = ()


PAPERS = {
    "dart2020": Paper(
        "dart2020", "Shirokikh et al., First U-Net layers contain more domain specific information than the last ones "
        "(DART 2020)", "first-unet-layers-domain-shift.txt",
        {"ft_all": "FTA", "ft_first": "FTF", "ft_last": "FTL"}, tables=("dart2020_table1",)),
    "gradient_transfer": Paper(
        "gradient_transfer", "The gradient-transfer study (MMTL / OCTL), CC359 skull stripping",
        "gradient-transfer-mmtl-octl.txt",
        {"ft_all": "FTA", "ft_first": "FTF", "l2sp": "L2SP", "spottune": "ST", "octl": "OCTL", "mmtl": "MMTL"},
        # "90, 270, 540 and 1080 slices … (by including 1, 1, 2 and 4 patients out of 45)" of ~270 slices each:
        # 90 = every 3rd slice of one scan, 270 = one scan, 540 = two, 1080 = four
        {"90": "every3", "270": "1scan", "540": "2scans", "1080": "4scans"},
        tables=("mmtl_table2", "mmtl_table3")),
    "fcn_transfer": Paper("fcn_transfer", "Transfer learning for FCN segmentation (other data sets)",
                          "transfer-learning-fcn-segmentation.txt", {},
                          tables=tuple(f"fcn_table{n}" for n in range(2, 9))),
    "test_time_bn": Paper("test_time_bn", "Test-time adaptation of BN statistics (brain tumours, other data)",
                          "test-time-adaptation-bn-statistics.txt", {}),
    "cnn3d_depth_width": Paper("cnn3d_depth_width", "Transferable 3D-CNNs: depth and width (AD detection, other data)",
                               "transferable-3d-cnn-brain-mri.txt", {}, tables=("cnn3d_table1", "cnn3d_table2")),
}

TABLES = {table.name: table for table in [
    Table("dart2020_table1", "dart2020", "Table 1",
          "Cross-domain model transfer without fine-tuning: surface Dice (std); columns = source domain the model is "
          "trained on, rows = target domain it is tested on; diagonal = oracle (3-fold CV)", 1.0, (6, 6)),
    Table("mmtl_table2", "gradient_transfer", "Table 2 (and Sec. 3.1's 'no fine-tuning' / 'all training data')",
          "sDice (%) mean ± std over 3 seeds of the mean over all 30 source→target pairs, SGD (top) and Adam (bottom), "
          "per number of target slices", 0.01, (8, 6)),
    Table("mmtl_table3", "gradient_transfer", "Table 3",
          "sDice (%) on the source site of the model fine-tuned on the target site, mean over all 30 pairs "
          "(optimizer not stated)", 0.01, (4, 6)),
    # Other data sets, as printed (mean and std over the test images), for reading beside our claims' evidence
    Table("fcn_table2", "fcn_transfer", "Table II", "Liver CT: random initialisation (R.I.) vs transfer (T.L.) from "
          "liver MRI, by training-set size: DSC, HD95 (mm), ASSD (mm)", 1.0, (4, 3)),
    Table("fcn_table3", "fcn_transfer", "Table III", "Cortical plate, younger and older fetuses: R.I. vs T.L. from "
          "newborns, by training-set size: DSC, HD95 (mm) as printed (its 0.80–1.20 mm look like ASSD; the text "
          "cannot settle it)", 1.0, (8, 2)),
    Table("fcn_table4", "fcn_transfer", "Table IV", "Pancreas CT: R.I. vs T.L. from the other four CT data sets, by "
          "training-set size: DSC, HD95 (mm), ASSD (mm)", 1.0, (4, 3)),
    Table("fcn_table5", "fcn_transfer", "Table V", "TSC lesions: R.I. vs T.L. from BraTS, by training-set size: DSC, "
          "F1", 1.0, (4, 2)),
    Table("fcn_table6", "fcn_transfer", "Table VI", "TSC, center 5: R.I. vs T.L. from the other centers: DSC, F1 (no "
          "std printed)", 1.0, (3, 2)),
    Table("fcn_table7", "fcn_transfer", "Table VII", "Similarity of representations (RSIM) per layer between pairs of "
          "networks: R.I.–R.I., T.L.–T.L., R.I.–T.L.", 1.0, (3, 6)),
    Table("fcn_table8", "fcn_transfer", "Table VIII", "Feature reuse per layer in four transfer experiments (no std "
          "printed)", 1.0, (4, 6)),
    Table("cnn3d_table1", "cnn3d_depth_width", "Table 1", "AD detection on three target domains, models trained on "
          "ADNI-1, by network depth: AUC, ACC, BAC, SEN, SPE (%)", 1.0, (12, 5)),
    Table("cnn3d_table2", "cnn3d_depth_width", "Table 2", "AD detection on three target domains, models trained on "
          "ADNI-1, by network width: AUC, ACC, BAC, SEN, SPE (%)", 1.0, (12, 5)),
]}


def load(name: str) -> pd.DataFrame:
    """A published table in long form, as printed (values in the paper's unit: see ``TABLES[name].scale``)."""
    if name not in TABLES:
        raise KeyError(f"no published table {name!r}; known: {sorted(TABLES)}")
    with resources.as_file(FOLDER / f"{name}.tsv") as path:
        return pd.read_csv(path, sep="\t", dtype={"slices": str}, keep_default_na=False, na_values=[""])


def paper(key: str | None) -> Paper | None:
    if key is None:
        return None
    if key not in PAPERS:
        raise KeyError(f"no paper {key!r}; known: {sorted(PAPERS)}")
    return PAPERS[key]
