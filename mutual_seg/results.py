"""Per-run result files that reports read: ``metrics.csv`` (one row per test subject) and ``summary.json``.

``summary.json`` (the run-folder contract): ``status`` ("ok" | "failed"), ``error`` (null | one line), the job's
identity (``job_identity``: task_name, modality_set, modalities, fold, seed, model, fusion, overrides),
``n_subjects``, ``world_size``, ``metrics`` ({metric: {mean, std}}) and ``checkpoint``. A failed job writes its
identity, status and error only, and no ``metrics.csv``.
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

from mutual_seg.metrics import METRIC_NAMES, summarize
from mutual_seg.runtime.atomic import atomic_write_text


def write_results(rows: Sequence[dict[str, Any]], out_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``metrics.csv`` and ``summary.json`` into ``out_dir``; return the summary."""
    out_dir = Path(out_dir)
    columns = ["subject"] + (["output"] if any("output" in r for r in rows) else []) + list(METRIC_NAMES)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "metrics.csv", text.getvalue())
    summary = {"status": "ok", "error": None, **(extra or {}),
               "n_subjects": len({r["subject"] for r in rows}), "metrics": summarize(list(rows))}
    summary.setdefault("checkpoint", None)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def write_untested(out_dir: str | Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """``summary.json`` of a job that trained but did not test (``test=false``): status ok, no metrics."""
    summary = {"status": "ok", "error": None, **extra, "n_subjects": 0, "metrics": {}}
    summary.setdefault("checkpoint", None)
    atomic_write_text(Path(out_dir) / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def write_failed(out_dir: str | Path, identity: Mapping[str, Any], error: str) -> dict[str, Any]:
    """Write the ``summary.json`` of a job that failed: its identity, status "failed" and the one-line reason."""
    summary = {"status": "failed", "error": " ".join(error.split()), **identity}
    atomic_write_text(Path(out_dir) / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def fusion_name(net: Mapping[str, Any]) -> str:
    """Short name of a network config's fusion: early | concat | mean | mutual_modality | mutual_token ..."""
    fusion = net.get("fusion")
    if net.get("early_fusion") or not fusion:
        return "early"
    name = str(fusion.get("_target_", "")).rsplit(".", 1)[-1].removesuffix("Fusion")
    name = "mutual" if name == "MutualAttention" else name.lower()
    return f"{name}_{fusion['reading']}" if fusion.get("reading") else name


def job_identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a run in ``summary.json``, sweep tables and W&B: modalities, fold, model, fusion, overrides."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra_cfg.runtime.choices) if hydra_cfg is not None else {}
    overrides = [str(o) for o in hydra_cfg.overrides.task] if hydra_cfg is not None else []
    return {"task_name": cfg.get("task_name"), "modality_set": cfg["modality"]["name"],
            "modalities": list(cfg["modality"]["names"]), "fold": int(cfg["fold"]), "seed": int(cfg["seed"]),
            "model": choices.get("model"), "fusion": fusion_name(cfg["model"]["net"]), "overrides": overrides}


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


# -- reading run folders back


def read_summary(folder: str | Path) -> dict[str, Any]:
    """A run folder's ``summary.json``; a folder without one (a job killed before it ended) reads as failed."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        return {"status": "failed", "error": f"no summary.json in {folder} (the job did not finish)"}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return {"status": "failed", "error": f"unreadable {path} ({type(err).__name__})"}


def sweep_jobs(sweep_dir: str | Path) -> list[Path]:
    """The job folders of a multirun folder (those Hydra made: each holds ``.hydra/``), in job order."""
    jobs = [p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=_job_number)


def _job_number(job: Path) -> tuple[int, str]:
    """Hydra's job number (``hydra.job.num``) of a job folder, for ordering; folder name as a tie-break."""
    from omegaconf import OmegaConf

    try:
        return int(OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.job.num), job.name
    except (OSError, ValueError, TypeError, AttributeError):
        return 1 << 30, job.name
