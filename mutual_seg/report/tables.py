"""The paper's tables from run folders: Table 1 (a row per modality set) and Table 2 (per fold and modality set).

Means are over the test subjects of a run (one row of metrics.csv each; a multi-output run counts each output
as a row). Table 2's "Average" is the mean of the fold rows, as the paper's (its Average Dc for single FLAIR,
0.7961, is the mean of its five fold rows); "Average*" is the same with the ``--exclude`` subjects removed from
their folds first. Ac follows eq. 3 over the whole volume; Ac_brain is eq. 3 inside the brain mask.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rich.table import Table

from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.modalities import DISPLAY_NAMES, MODALITIES
from mutual_seg.results import Run

DISTANCES = ("Hd", "HD95", "HD95_max")  # mm, printed with 2 decimals like the paper's Hd


@dataclass(frozen=True)
class ResultTable:
    """A table as plain cells (``name`` is its file stem): ``columns`` names, ``rows`` one tuple of cells (str or float) each."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    note: str = ""

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(["" if _isnan(c) else c for c in row] for row in self.rows)
        return out.getvalue()

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(_fmt(col, c) for col, c in zip(self.columns, row)) + " |" for row in self.rows]
        return "\n".join(lines + ([f"\n{self.note}"] if self.note else [])) + "\n"

    def to_rich(self) -> Table:
        table = Table(title=self.title, caption=self.note or None)
        for col in self.columns:
            table.add_column(col, justify="left" if col in ("Fold", "Modality", "Arm") else "right", no_wrap=True)
        for row in self.rows:
            table.add_row(*(_fmt(col, c) for col, c in zip(self.columns, row)))
        return table


def display_name(modalities: Sequence[str], fallback: str | None = None) -> str:
    """``FLAIR + T2w`` for ``["flair", "t2w"]``."""
    return " + ".join(DISPLAY_NAMES.get(m, m) for m in modalities) or (fallback or "?")


def metric_columns(runs: Iterable[Run]) -> tuple[str, ...]:
    """The metrics of METRIC_NAMES found in the runs' metrics.csv, in that order (older runs lack Ac_brain)."""
    seen = {key for run in runs for row in run.rows for key in row}
    return tuple(m for m in METRIC_NAMES if m in seen)


def mean_rows(rows: Sequence[dict], metrics: Sequence[str]) -> list[float]:
    """Mean of each metric over rows, skipping NaN (a missing value); NaN when none is left."""
    out = []
    for m in metrics:
        values = np.array([float(r.get(m, math.nan)) for r in rows], dtype=np.float64)
        values = values[~np.isnan(values)]
        out.append(float(values.mean()) if values.size else math.nan)
    return out


def table1(runs: Sequence[Run], metrics: Sequence[str]) -> ResultTable:
    """A row per modality set: the mean over every test subject of its runs (the paper: one 25/10 split)."""
    rows = []
    for name, group in by_modality_set(runs):
        pooled = [r for run in group for r in run.rows]
        rows.append((display_name(group[0].modalities, name), len(pooled), *mean_rows(pooled, metrics)))
    return ResultTable("table1", "Table 1. Segmentation accuracy per modality set (mean over test subjects; Hd in mm)",
                       ("Modality", "n", *metrics), rows)


def table2(runs: Sequence[Run], metrics: Sequence[str], exclude: Sequence[str] = ()) -> ResultTable:
    """Per fold and modality set, then the average of the folds, then that average without ``exclude``."""
    sets = by_modality_set(runs)
    folds = sorted({run.fold for run in runs if run.fold is not None})
    rows: list[tuple[object, ...]] = []
    for fold in folds:
        for name, group in sets:
            fold_runs = [run for run in group if run.fold == fold]
            if fold_runs:
                pooled = [r for run in fold_runs for r in run.rows]
                rows.append((f"Fold-{fold + 1}", display_name(group[0].modalities, name), len(pooled),
                             *mean_rows(pooled, metrics)))
    excluded = set(exclude)
    for label, drop in (("Average", set()), ("Average*", excluded)):
        if label == "Average*" and not excluded:
            continue
        for name, group in sets:
            fold_means, n = [], 0
            for fold in folds:
                pooled = [r for run in group if run.fold == fold for r in run.rows if r["subject"] not in drop]
                if pooled:
                    fold_means.append(dict(zip(metrics, mean_rows(pooled, metrics))))
                    n += len(pooled)
            rows.append((label, display_name(group[0].modalities, name), n, *mean_rows(fold_means, metrics)))
    note = ("Average: mean of the fold rows. Fold-k is the test fold k of the cross-validation (fold=k-1)."
            + (f" * Excluding subject ID: {', '.join(sorted(excluded))}." if excluded else ""))
    return ResultTable("table2", "Table 2. Segmentation accuracy per fold and modality set (Hd in mm)",
                       ("Fold", "Modality", "n", *metrics), rows, note)


def stats_table(comparisons: Sequence, name_a: str, name_b: str, note: str) -> ResultTable:
    """The paired statistics as a table: a row per metric."""
    rows = [(c.metric, c.n_pairs, c.mean_a, c.mean_b, c.mean_diff, c.ci_low, c.ci_high, c.p_value)
            for c in comparisons]
    return ResultTable("stats", f"Paired comparison: {name_b} minus {name_a}, per subject",
                       ("Metric", "pairs", f"mean {name_a}", f"mean {name_b}", "mean diff", "95% CI low",
                        "95% CI high", "Wilcoxon p"), rows, note)


def by_modality_set(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped by modality set; single modalities first (the paper's order: single, then dual)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.modality_set or "?", []).append(run)
    order = list(MODALITIES)
    return sorted(groups.items(), key=lambda kv: (len(kv[1][0].modalities), [
        order.index(m) if m in order else len(order) for m in kv[1][0].modalities], kv[0]))


def _isnan(cell: object) -> bool:
    return isinstance(cell, float) and math.isnan(cell)


def _fmt(column: str, cell: object) -> str:
    if not isinstance(cell, float):
        return str(cell)
    if math.isnan(cell):
        return "-"
    if column == "Wilcoxon p":
        return f"{cell:.2g}" if cell < 0.001 else f"{cell:.4f}"
    return f"{cell:.2f}" if column in DISTANCES else f"{cell:.4f}"
