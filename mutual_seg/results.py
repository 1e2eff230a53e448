"""Per-run result files that reports read: ``metrics.csv`` (one row per test subject) and ``summary.json``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mutual_seg.metrics import METRIC_NAMES, summarize
from mutual_seg.runtime.atomic import atomic_write_text


def write_results(rows: Sequence[dict[str, Any]], out_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``metrics.csv`` and ``summary.json`` into ``out_dir``; return the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["subject"] + (["output"] if any("output" in r for r in rows) else []) + list(METRIC_NAMES)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    summary = {"n_subjects": len({r["subject"] for r in rows}), "metrics": summarize(list(rows)), **(extra or {})}
    # atomic: a reader (or a resumed multirun deciding what finished) never sees half a file
    atomic_write_text(out_dir / "metrics.csv", table.getvalue())
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def print_results(rows: Sequence[dict[str, Any]], summary: dict[str, Any], console: Console | None = None) -> None:
    """The per-subject table and the means, as the demo shows them."""
    table = Table(title="Test subjects (Hd, HD95 in mm)")
    table.add_column("subject", no_wrap=True)
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(str(row["subject"]), *(f"{row[n]:.3f}" if n not in ("Hd", "HD95", "HD95_max") else f"{row[n]:.1f}" for n in METRIC_NAMES))
    stats = summary["metrics"]
    table.add_section()
    table.add_row("mean", *(f"{stats[n]['mean']:.3f}" for n in METRIC_NAMES))
    table.add_row("std", *(f"{stats[n]['std']:.3f}" for n in METRIC_NAMES))
    (console or Console(width=max(Console().width, 140))).print(table)
