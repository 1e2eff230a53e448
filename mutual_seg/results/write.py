"""What a job writes into its run folder at its end: ``metrics.csv``, ``summary.json`` (ok, untested or failed).

``summary.json`` (the run-folder contract): ``status`` ("ok" | "failed"), ``error`` (null | one line), the job's
identity (:func:`job_identity`: task_name, modality_set, modalities, fold, seed, model, fusion, overrides),
``n_subjects``, ``world_size``, ``metrics`` ({metric: {mean, std}}) and ``checkpoint``; a rerun of a failed job adds
``earlier_failure``. A failed job writes its identity, status and error only, and no ``metrics.csv``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mutual_seg.atomic import atomic_write_text
from mutual_seg.metrics import METRIC_NAMES, summarize
from mutual_seg.results.folder import RunFolder


def write_results(rows: Sequence[dict[str, Any]], out_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``metrics.csv`` and ``summary.json`` into ``out_dir``; return the summary."""
    out_dir = Path(out_dir)
    columns = ["subject"] + (["output"] if any("output" in r for r in rows) else []) + list(METRIC_NAMES)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    folder = RunFolder(out_dir)
    atomic_write_text(folder.metrics, text.getvalue())
    summary = {"status": "ok", "error": None, **(extra or {}),
               "n_subjects": len({r["subject"] for r in rows}), "metrics": summarize(list(rows))}
    summary.setdefault("checkpoint", None)
    atomic_write_text(folder.summary, json.dumps(summary, indent=2) + "\n")
    return summary


def write_untested(out_dir: str | Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """``summary.json`` of a job that trained but did not test (``test=false``): status ok, no metrics."""
    summary = {"status": "ok", "error": None, **extra, "n_subjects": 0, "metrics": {}}
    summary.setdefault("checkpoint", None)
    atomic_write_text(RunFolder(out_dir).summary, json.dumps(summary, indent=2) + "\n")
    return summary


def write_failed(out_dir: str | Path, identity: Mapping[str, Any], error: str) -> dict[str, Any]:
    """Write the ``summary.json`` of a job that failed: its identity, status "failed" and the one-line reason."""
    summary = {"status": "failed", "error": " ".join(error.split()), **identity}
    atomic_write_text(RunFolder(out_dir).summary, json.dumps(summary, indent=2) + "\n")
    return summary


def job_identity(cfg: Mapping[str, Any], fusion: str | None) -> dict[str, Any]:
    """What identifies a run in ``summary.json``, sweep tables and W&B: modalities, fold, model, fusion, overrides.

    ``fusion`` is what the network says it is (``SegNet.fusion_name``; ``models.network.fusion_name_of`` for a
    config whose network was not built).
    """
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra_cfg.runtime.choices) if hydra_cfg is not None else {}
    overrides = [str(o) for o in hydra_cfg.overrides.task] if hydra_cfg is not None else []
    return {"task_name": cfg.get("task_name"), "modality_set": cfg["modality"]["name"],
            "modalities": list(cfg["modality"]["names"]), "fold": int(cfg["fold"]), "seed": int(cfg["seed"]),
            "model": choices.get("model"), "fusion": fusion, "overrides": overrides}


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
