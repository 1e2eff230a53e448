"""One summary per sweep: a Hydra callback writes ``sweep_summary.csv``/``.md`` in the multirun folder and prints it.

A row per job: the overrides that tell the jobs apart, modalities, fold, status (and the error of a failed job),
mean and standard deviation of every metric. Job folders are read through ``results`` (the one reader of run
folders). When a job failed, the sweep exits with code 1 after the summary, so scripts and CI notice.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from mutual_seg.atomic import atomic_write_text
from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.results import ResultsError, Run, read_run, sweep_jobs

log = logging.getLogger(__name__)
_FIXED = ("job", "overrides", "modalities", "fold", "status")


def _varying(overrides: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each job's overrides that not every job shares (all of them when there is a single job)."""
    if len(overrides) < 2:
        return [list(o) for o in overrides]
    shared = set.intersection(*(set(o) for o in overrides))
    return [[item for item in o if item not in shared] for o in overrides]


def sweep_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """A row per job folder of ``sweep_dir``: identity, status, error, ``<metric>_mean``/``<metric>_std``.

    Status is ``results.read_run``'s: ok, failed, untested (``test=false``) or unfinished (killed before its end).
    """
    runs = []
    for job in sweep_jobs(sweep_dir):
        try:
            runs.append(read_run(job))
        except ResultsError:  # Hydra made the folder, the job wrote nothing: it died before training started
            runs.append(None)
    varying = _varying([(run.summary.get("overrides") or []) if run else [] for run in runs])
    rows = []
    for job, run, overrides in zip(sweep_jobs(sweep_dir), runs, varying):
        summary = run.summary if run else {}
        row: dict[str, Any] = {"job": job.name, "overrides": " ".join(overrides),
                               "modalities": "+".join(run.modalities if run else ()),
                               "fold": run.fold if run else None, "status": run.status if run else "unfinished",
                               "error": _error(run)}
        stats = summary.get("metrics") or {}
        for name in METRIC_NAMES:
            row[f"{name}_mean"] = stats.get(name, {}).get("mean")
            row[f"{name}_std"] = stats.get(name, {}).get("std")
        rows.append(row)
    return rows


def _error(run: Run | None) -> str:
    if run is None:
        return "the job wrote nothing"
    if run.status == "unfinished":
        return "no summary.json: the job was killed or is still running"
    return run.error or ""


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def write_sweep_summary(sweep_dir: str | Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """``sweep_summary.csv`` (every column) and ``sweep_summary.md`` (overrides, status, mean ± std per metric)."""
    sweep_dir = Path(sweep_dir)
    columns = [*_FIXED, "error", *(f"{n}_{s}" for n in METRIC_NAMES for s in ("mean", "std"))]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_text(sweep_dir / "sweep_summary.csv", text.getvalue())
    header = ["overrides", "modalities", "fold", "status", *METRIC_NAMES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["overrides"] or row["job"], row["modalities"], _cell(row["fold"]),
                 row["status"] + (f": {row['error']}" if row["error"] else "")]
        cells += [_pm(row, n) for n in METRIC_NAMES]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    md_path = atomic_write_text(sweep_dir / "sweep_summary.md", f"# Sweep {sweep_dir.name}\n\n" + "\n".join(lines) + "\n")
    return csv_path, md_path


def _pm(row: dict[str, Any], name: str) -> str:
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    digits = 1 if name in ("Hd", "HD95", "HD95_max") else 3
    return "" if mean is None else f"{mean:.{digits}f}±{std:.{digits}f}"


def print_sweep_summary(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    """The sweep summary as a rich table (mean ± std per metric)."""
    table = Table(title="Sweep summary (mean ± std over test subjects; Hd, HD95 in mm)")
    for name in ("overrides", "modalities", "fold", "status", *METRIC_NAMES):
        table.add_column(name, justify="right" if name in METRIC_NAMES else "left")
    for row in rows:
        status = row["status"] if row["status"] == "ok" else f"[red]{row['status']}[/red]: {row['error']}"
        status = status if row["status"] != "untested" else "untested"
        table.add_row(row["overrides"] or row["job"], row["modalities"], _cell(row["fold"]), status,
                      *(_pm(row, n) for n in METRIC_NAMES))
    (console or Console(width=max(Console().width, 160))).print(table)


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/hydra/default.yaml): the sweep summary at the end of a multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = sweep_rows(sweep_dir)
        if not rows:
            return
        csv_path, md_path = write_sweep_summary(sweep_dir, rows)
        print_sweep_summary(rows)
        log.info("sweep summary: %s, %s", csv_path, md_path)
        failed = [row["job"] for row in rows if row["status"] in ("failed", "unfinished")]
        if failed:
            print(f"error: {len(failed)} of {len(rows)} jobs failed (see {md_path}): {', '.join(failed)}",
                  file=sys.stderr)
            sys.exit(1)
