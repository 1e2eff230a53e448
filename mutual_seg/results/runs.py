"""Run folders read back: one job (:func:`read_run`), or every job under a folder (:func:`find_runs`, :func:`sweep_jobs`).

The one reader of run folders: report/, runtime/ and experiments/ use it. A run folder holds summary.json (written
at the end of testing, or by a failed job) and/or config.yaml (written when the job starts). Hydra's own
``.hydra/config.yaml`` sits one level down and is not mistaken for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mutual_seg.errors import ResultsError
from mutual_seg.results.folder import RunFolder


@dataclass(frozen=True)
class Run:
    """One job folder read back.

    ``status`` is "ok" (tested: metrics.csv is there), "failed" (summary.json says so; ``error`` gives the
    line), "untested" (summary.json but no metrics.csv, e.g. ``test=false``) or "unfinished" (config.yaml but
    no summary.json: the job was killed or is still running).
    ``rows`` are metrics.csv's rows: ``subject`` (str), ``output`` (int, multi-output runs only), then one
    float per metric column.
    """

    path: Path
    status: str
    error: str | None
    task_name: str | None
    modality_set: str | None
    modalities: tuple[str, ...]
    fold: int | None
    seed: int | None
    model: str | None
    summary: dict[str, Any]
    config: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def checkpoint(self) -> Path | None:
        """The best checkpoint the run tested (summary.json), else ``checkpoints/best.ckpt`` if present."""
        named = self.summary.get("checkpoint")
        for candidate in ([Path(named)] if named else []) + [RunFolder(self.path).best_checkpoint]:
            if not candidate.is_absolute() and not candidate.is_file():
                candidate = self.path / candidate
            if candidate.is_file():
                return candidate
        return None

    @property
    def subjects(self) -> list[str]:
        return [str(r["subject"]) for r in self.rows]

    def label(self) -> str:
        """``<modality set> fold <k>`` for messages and tables."""
        return f"{self.modality_set} fold {self.fold}"


def read_run(path: str | Path) -> Run:
    """Read one job folder: summary.json, metrics.csv and config.yaml.

    The modality set, modalities and fold come from summary.json, else from config.yaml
    (``modality.name``, ``modality.names``, ``fold``), so folders of older versions still read; the model (the
    ``model=`` choice) from summary.json, else from Hydra's record of the job (``.hydra/hydra.yaml``).

    Raises:
        ResultsError: the folder holds neither file, or a file cannot be parsed.
    """
    folder = RunFolder(Path(path))
    path = folder.path
    if not folder.is_run():
        raise ResultsError(f"{path} is not a run folder: it has neither summary.json nor config.yaml; "
                           "pass a folder written by python -m mutual_seg.run")
    summary = folder.read_summary()
    config = folder.read_config()
    modality = config.get("modality") or {}
    modalities = tuple(summary.get("modalities") or modality.get("names") or ())
    fold = summary.get("fold", config.get("fold"))
    if not summary:
        status = "unfinished"
    else:
        status = "failed" if summary.get("status") == "failed" else "ok"
    rows = folder.read_metrics() if status == "ok" else []
    if status == "ok" and not rows:  # trained with test=false (write_untested), or metrics.csv was lost
        status, summary = "untested", {**summary, "error": summary.get("error") or "no metrics.csv (not tested)"}
    return Run(
        path=path,
        status=status,
        error=summary.get("error") if status != "ok" else None,
        task_name=summary.get("task_name", config.get("task_name")),
        modality_set=summary.get("modality_set") or modality.get("name") or ("_".join(modalities) or None),
        modalities=modalities,
        fold=None if fold is None else int(fold),
        seed=summary.get("seed", config.get("seed")),
        model=summary.get("model") or folder.hydra_choices().get("model"),
        summary=summary,
        config=config,
        rows=rows,
    )


def find_runs(root: str | Path) -> list[Run]:
    """Every run under ``root``: a run folder itself, a multirun folder, or a tree of several sweeps.

    The search stops at a run folder (its subfolders are its own: checkpoints, a test on another data
    set, ...). Runs come sorted by task, modality set, fold and path.

    Raises:
        ResultsError: ``root`` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root} is not a folder; pass a run folder, a multirun folder or a tree of them")
    found: list[Path] = []

    def walk(folder: Path) -> None:
        if RunFolder(folder).is_run():
            found.append(folder)
            return
        for child in sorted(folder.iterdir()):  # is_dir() follows symlinked job folders
            if child.is_dir() and not child.name.startswith("."):
                walk(child)

    walk(root)
    runs = [read_run(p) for p in found]
    return sorted(runs, key=lambda r: (r.task_name or "", r.modality_set or "", r.fold if r.fold is not None else -1,
                                       str(r.path)))


def describe_layout(root: str | Path, runs: Sequence[Run]) -> str:
    """What ``root`` is, in words: a single run, a multirun folder, or a tree of N sweeps."""
    root = Path(root)
    if len(runs) == 1 and runs[0].path == root:
        return "a single run"
    sweeps = {p.parent for p in (r.path for r in runs) if (p.parent / "multirun.yaml").is_file()}
    if (root / "multirun.yaml").is_file():
        return f"a multirun folder of {len(runs)} job(s)"
    if sweeps:
        return f"a tree of {len(sweeps)} sweep(s), {len(runs)} run(s) in all"
    return f"a tree of {len(runs)} run(s)"


def sweep_jobs(sweep_dir: str | Path) -> list[Path]:
    """The job folders of a multirun folder (those Hydra made: each holds ``.hydra/``), in job order."""
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and RunFolder(p).is_sweep_job()]
    return sorted(jobs, key=_job_number)


def _job_number(job: Path) -> tuple[int, str]:
    """Hydra's job number (``hydra.job.num``) of a job folder, for ordering; folder name as a tie-break."""
    num = RunFolder(job).job_number()
    return (1 << 30 if num is None else num), job.name
