"""Run folders -> the paper's tables, the paired statistics and the figures, written to one folder.

``make_report`` is what ``mutual-seg-report`` does; it reads runs only through ``mutual_seg.results``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from mutual_seg.atomic import atomic_write_text
from mutual_seg.errors import MutualSegError, OutputError, ResultsError
from mutual_seg.report import figures, overlays, stats, tables
from mutual_seg.results import Run, describe_layout, find_runs

N_OVERLAYS = 3  # subjects drawn by default: where the two arms differ most in Dice


@dataclass
class Report:
    """What a report found and wrote."""

    layout: str
    runs: list[Run]
    not_finished: list[Run]
    tables: list[tables.ResultTable] = field(default_factory=list)
    comparisons: list[stats.PairedComparison] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def select_runs(root: Path) -> tuple[list[Run], list[Run], str]:
    """The finished runs of one task under ``root``, the failed/unfinished ones, and what ``root`` is.

    Raises:
        ResultsError: no run, no finished run, runs of several tasks, or two runs of one modality set and fold.
    """
    runs = find_runs(root)
    if not runs:
        raise ResultsError(f"found no run under {root} (no folder with summary.json or config.yaml); expected a "
                           "run, a multirun or a tree of sweeps written by python -m mutual_seg.run")
    ok = [r for r in runs if r.ok]
    bad = [r for r in runs if not r.ok]
    if not ok:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in bad).items()))
        raise ResultsError(f"found {len(runs)} run(s) under {root}, none finished ({counts}); expected at least one "
                           f"run with metrics.csv; e.g. {bad[0].path}: {bad[0].error or 'no summary.json'}")
    tasks = Counter(r.task_name or "?" for r in ok)
    if len(tasks) > 1:
        found = ", ".join(f"{t}: {n} run(s)" for t, n in sorted(tasks.items()))
        raise ResultsError(f"found runs of {len(tasks)} tasks under {root} ({found}); expected one task per "
                           "report; pass the folder of one task's sweep")
    seen: dict[tuple, Run] = {}
    for run in ok:
        key = (run.modality_set, run.fold)
        if key in seen:
            raise ResultsError(f"found two runs of {run.label()} ({seen[key].path} and {run.path}); expected one "
                               "per modality set and fold; pass one sweep folder or move one away")
        seen[key] = run
    return ok, [r for r in bad if (r.task_name or "?") in tasks or r.task_name is None], describe_layout(root, runs)


def paired_values(runs: Sequence[Run], name_a: str, name_b: str, metrics: Sequence[str]
                  ) -> tuple[dict[str, tuple[list[float], list[float]]], list[str], int, int]:
    """Per metric, the values of arm A and B over the subjects (and outputs) tested in both, in the same order.

    Returns:
        ``({metric: (a, b)}, paired subject keys, n only in A, n only in B)``.
    """
    arms = [{(r["subject"], r.get("output", 0)): r for run in runs if run.modality_set == name for r in run.rows}
            for name in (name_a, name_b)]
    shared = sorted(set(arms[0]) & set(arms[1]))
    values = {m: ([float(arms[0][k][m]) for k in shared], [float(arms[1][k][m]) for k in shared]) for m in metrics}
    return values, [k[0] for k in shared], len(set(arms[0]) - set(arms[1])), len(set(arms[1]) - set(arms[0]))


def make_report(root: str | Path, out: str | Path | None = None, exclude: Sequence[str] = (),
                compare: Sequence[str] | None = None, subjects: Sequence[str] = (), slices: Sequence[int] = (),
                n_overlays: int = N_OVERLAYS, overwrite: bool = False, console: Console | None = None) -> Report:
    """Read every run under ``root``; write tables (Markdown + CSV), statistics and figures to ``out``.

    Args:
        root: a run folder, a multirun folder or a tree of sweeps.
        out: output folder (default ``root/report``); refused when it holds files, unless ``overwrite``.
        exclude: subject ids left out of Table 2's "Average*" row (the paper: UCSF-PDGM-0255).
        compare: two modality-set names (``flair flair_t2w``) for the paired statistics, Fig. 5 and the
            overlays; default: the two sets when there are exactly two.
        subjects: subjects for the overlays (default: the ``n_overlays`` where the arms' Dice differ most).
        slices: axial slice per subject in ``subjects`` (default: where the predictions disagree most).
        n_overlays: how many subjects to draw by default; 0 draws none.
        overwrite: replace the files of an earlier report in ``out``.
        console: where the tables are printed.

    Raises:
        ResultsError: bad input (see ``select_runs``; unknown ``--compare`` names).
        OutputError: ``out`` holds files and ``overwrite`` is false, or cannot be written.
    """
    root = Path(root)
    console = console or Console(width=max(Console().width, 150))
    runs, not_finished, layout = select_runs(root)
    out = Path(out) if out is not None else root / "report"
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out} already holds a report; pass --overwrite to replace it or --out <another folder>")
    report = Report(layout, runs, not_finished)
    metrics = tables.metric_columns(runs)
    known = {r["subject"] for run in runs for r in run.rows}
    for subject in exclude:
        if subject not in known:
            report.warnings.append(f"--exclude {subject}: no such subject in the runs' metrics.csv; nothing excluded for it")
    report.tables.append(tables.table1(runs, metrics))
    if len({run.fold for run in runs}) > 1 or len({run.modality_set for run in runs}) == 2:  # folds, or single vs dual
        report.tables.append(tables.table2(runs, metrics, [s for s in exclude if s in known]))
    arms = _arms(runs, compare)
    if arms:
        _compare(report, runs, arms, metrics, out, subjects, slices, n_overlays)
    _write(report, root, out)
    _print(report, console)
    return report


def _arms(runs: Sequence[Run], compare: Sequence[str] | None) -> tuple[str, str] | None:
    names = [name for name, _ in tables.by_modality_set(runs)]
    if compare:
        missing = [c for c in compare if c not in names]
        if len(compare) != 2 or missing:
            raise ResultsError(f"--compare needs two modality sets of these runs, got {' '.join(compare)}; "
                               f"found {', '.join(names)}")
        return compare[0], compare[1]
    return (names[0], names[1]) if len(names) == 2 else None


def _compare(report: Report, runs: Sequence[Run], arms: tuple[str, str], metrics: Sequence[str], out: Path,
             subjects: Sequence[str], slices: Sequence[int], n_overlays: int) -> None:
    """Paired statistics, Fig. 5 and the overlays for arms A and B."""
    name_a, name_b = arms
    values, shared, only_a, only_b = paired_values(runs, name_a, name_b, metrics)
    report.comparisons = [stats.paired_comparison(m, *values[m]) for m in metrics]
    note = (f"{len(shared)} subject(s) tested in both arms; left out: {only_a} only in {name_a}, {only_b} only in "
            f"{name_b}. Wilcoxon signed-rank (two-sided, scipy.stats.wilcoxon); 95% CI of the mean difference: "
            f"bootstrap BCa, {stats.N_RESAMPLES} resamples (scipy.stats.bootstrap).")
    report.tables.append(tables.stats_table(report.comparisons, name_a, name_b, note))
    per_arm = {name: {m: [r[m] for run in runs if run.modality_set == name for r in run.rows] for m in metrics}
               for name in arms}
    shown = [m for m in metrics if m != "HD95_max"]
    report.files.append(figures.boxplots(per_arm, shown, out / "fig5_boxplots.png"))
    if n_overlays <= 0 and not subjects:
        return
    if not subjects:
        dice = values.get("Dc", ([], []))
        order = np.argsort(-np.abs(np.asarray(dice[1]) - np.asarray(dice[0])), kind="stable")
        subjects = list(dict.fromkeys(shared[i] for i in order))[:n_overlays]
    _overlays(report, runs, arms, subjects, slices, out)


def _overlays(report: Report, runs: Sequence[Run], arms: tuple[str, str], subjects: Sequence[str],
              slices: Sequence[int], out: Path) -> None:
    cases, chosen = [], []
    for i, subject in enumerate(track(subjects, description="overlays (predicting from best checkpoints)")):
        arm_runs = [next((run for run in runs if run.modality_set == arm and subject in run.subjects), None)
                    for arm in arms]
        if None in arm_runs:
            report.warnings.append(f"overlay of {subject}: not tested in both {arms[0]} and {arms[1]}; skipped")
            continue
        try:
            items, preds = zip(*(overlays.segment_test_subject(run, subject) for run in arm_runs))
        except MutualSegError as err:
            report.warnings.append(f"overlay of {subject} skipped: {err}")
            continue
        wider = int(len(arm_runs[1].modalities) > len(arm_runs[0].modalities))  # show the images of the wider arm
        both, mods = items[wider], tuple(arm_runs[wider].modalities)
        label = both["label"].numpy()[:, 0].astype(bool)
        names = [tables.display_name(run.modalities, arm) for run, arm in zip(arm_runs, arms)]
        case = overlays.Case(subject, mods, both["image"].numpy(), label, dict(zip(names, preds)))
        cases.append(case)
        chosen.append(slices[i] if i < len(slices) else overlays.default_slice(label, preds))
    if cases:
        report.files.append(overlays.overlay_figure(cases, chosen, out / "fig6_overlays.png"))


def _write(report: Report, root: Path, out: Path) -> None:
    parts = [f"# Report of {root}\n", f"Found {report.layout}; {len(report.runs)} finished run(s) in the tables.\n"]
    for table in report.tables:
        report.files.append(atomic_write_text(out / f"{table.name}.csv", table.to_csv()))
        report.files.append(atomic_write_text(out / f"{table.name}.md", table.to_markdown()))
        parts.append(table.to_markdown())
    if report.not_finished:
        parts.append("**Jobs not in the tables**\n\n| job | status | error |\n|---|---|---|")
        parts += [f"| {r.path} | {r.status} | {r.error or ''} |" for r in report.not_finished]
        parts.append("")
    parts += [f"![{p.stem}]({p.name})\n" for p in report.files if p.suffix == ".png"]
    parts += [f"- warning: {w}" for w in report.warnings]
    report.files.append(atomic_write_text(out / "report.md", "\n".join(parts) + "\n"))


def _print(report: Report, console: Console) -> None:
    console.print(f"Found {report.layout}; {len(report.runs)} finished run(s).")
    for table in report.tables:
        console.print(table.to_rich())
    for run in report.not_finished:
        console.print(f"[red]{run.status}[/red]: {run.path}" + (f": {run.error}" if run.error else ""))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"written to {report.files[-1].parent}: " + ", ".join(p.name for p in report.files))
