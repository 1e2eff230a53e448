"""The run folder, in one place: its file names (:class:`RunFolder`), the result files a job writes there
(``metrics.csv``, one row per test subject, and ``summary.json``) and reading them back (:func:`read_run`,
:func:`find_runs`). Nothing else in the project spells a run folder's file names; this module does that one job.

``summary.json`` (the run-folder contract): ``status`` ("ok" | "failed"), ``error`` (null | one line), the job's
identity (``job_identity``: task_name, modality_set, modalities, fold, seed, model, fusion, overrides),
``n_subjects``, ``world_size``, ``metrics`` ({metric: {mean, std}}) and ``checkpoint``. A failed job writes its
identity, status and error only, and no ``metrics.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from mutual_seg.atomic import atomic_write_text
from mutual_seg.errors import OutputError, ResultsError
from mutual_seg.metrics import METRIC_NAMES, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFolder:
    """The files of one job folder (``hydra.run.dir``, or one job of a sweep), by name: the only place they are spelt.

    ``summary.json`` and ``metrics.csv`` at the end of testing (``summary.json`` alone for a failed job),
    ``config.yaml`` (the resolved config) and ``provenance.json`` when the job starts, ``checkpoints/{best,last}.ckpt``
    and the Lightning CSV log ``csv/metrics.csv`` while it trains, Hydra's ``.hydra/`` and ``run.log``.
    """

    path: Path

    # What a run writes into its folder; any of them means "an earlier run was here" (the guard's list).
    RESULT_FILES: ClassVar[tuple[str, ...]] = ("summary.json", "metrics.csv", "provenance.json", "checkpoints/last.ckpt",
                                               "checkpoints/best.ckpt", "csv/metrics.csv")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    summary = property(lambda self: self.path / "summary.json", doc="``summary.json``")
    metrics = property(lambda self: self.path / "metrics.csv", doc="``metrics.csv``")
    config = property(lambda self: self.path / "config.yaml", doc="``config.yaml``, the resolved config")
    provenance = property(lambda self: self.path / "provenance.json", doc="``provenance.json``")
    checkpoints = property(lambda self: self.path / "checkpoints", doc="``checkpoints/``")
    best_checkpoint = property(lambda self: self.checkpoints / "best.ckpt", doc="``checkpoints/best.ckpt``")
    last_checkpoint = property(lambda self: self.checkpoints / "last.ckpt", doc="``checkpoints/last.ckpt``")
    csv_log = property(lambda self: self.path / "csv" / "metrics.csv", doc="Lightning's CSV log")
    hydra_dir = property(lambda self: self.path / ".hydra", doc="Hydra's own record of the job")

    def is_run(self) -> bool:
        """Whether the folder is a job folder: it holds ``summary.json`` or ``config.yaml``."""
        return self.summary.is_file() or self.config.is_file()

    def is_sweep_job(self) -> bool:
        """Whether Hydra made this folder as a job of a multirun (it holds ``.hydra/overrides.yaml``)."""
        return (self.hydra_dir / "overrides.yaml").is_file()

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` as a dict ({} when absent)."""
        return _read_json(self.summary) if self.summary.is_file() else {}

    def read_config(self) -> dict[str, Any]:
        """``config.yaml`` as plain containers, unresolved ({} when absent)."""
        return _read_yaml(self.config) if self.config.is_file() else {}

    def read_metrics(self) -> list[dict[str, Any]]:
        """``metrics.csv``'s rows, numbers as floats (``output`` as int); [] when absent."""
        return _read_metrics(self.metrics)

    def read_csv_log(self) -> list[dict[str, str]]:
        """Rows of Lightning's CSV log (``csv/metrics.csv``), as strings; [] when absent."""
        if not self.csv_log.is_file():
            return []
        with open(self.csv_log, newline="") as handle:
            return list(csv.DictReader(handle))

    def hydra_choices(self) -> dict[str, Any]:
        """Hydra's config-group choices of the job (``.hydra/hydra.yaml``: ``model``, ``modality``...); {} if unknown."""
        data = self._hydra_yaml()
        choices = ((data.get("hydra") or {}).get("runtime") or {}).get("choices")
        return dict(choices) if isinstance(choices, Mapping) else {}

    def job_number(self) -> int | None:
        """Hydra's ``hydra.job.num`` of a sweep job (its order in the sweep); None if unknown."""
        num = ((self._hydra_yaml().get("hydra") or {}).get("job") or {}).get("num")
        try:
            return int(num)
        except (TypeError, ValueError):
            return None

    def _hydra_yaml(self) -> dict[str, Any]:
        try:
            return _read_yaml(self.hydra_dir / "hydra.yaml") if (self.hydra_dir / "hydra.yaml").is_file() else {}
        except ResultsError:
            return {}

    def earlier_results(self) -> list[Path]:
        """The result files an earlier run left here (empty if none)."""
        return [self.path / name for name in self.RESULT_FILES if (self.path / name).is_file()]

    def failed_only(self) -> dict[str, Any] | None:
        """The summary of a failed job when that summary is the folder's only result (rerunning it is safe), else None."""
        if [p.name for p in self.earlier_results()] != ["summary.json"]:
            return None
        try:
            summary = self.read_summary()
        except ResultsError:
            return None
        return summary if summary.get("status") == "failed" else None

    def guard(self, resume: bool, overwrite: bool, remove: bool = True) -> None:
        """Refuse to run into a folder holding earlier results, unless resuming; with ``overwrite`` remove them first.

        A folder whose only result is a failed job's ``summary.json`` is a job to rerun: accepted (the run's
        ``plan_run`` keeps the failure's record). ``remove=False`` only checks (before Hydra writes anything).

        Raises:
            OutputError: the folder holds results and neither ``resume=true`` nor ``overwrite=true`` was passed.
        """
        found = self.earlier_results()
        if not found or resume or (not overwrite and self.failed_only() is not None):
            return
        if not overwrite:
            names = ", ".join(str(p.relative_to(self.path)) for p in found)
            raise OutputError(
                f"run folder {self.path} already holds an earlier run's results ({names}); pass resume=true to "
                f"continue it, overwrite=true to replace it, or choose another hydra.run.dir"
            )
        for path in found if remove else ():
            log.warning("overwrite=true: removing %s of the earlier run", path)
            path.unlink()


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


# -- reading run folders back -------------------------------------------------------------------
# The one reader of run folders: report/ and experiments/ use it. A run folder holds summary.json (written at the
# end of testing, or by a failed job) and/or config.yaml (written when the job starts). Hydra's own
# `.hydra/config.yaml` sits one level down and is not mistaken for it.


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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultsError(f"{path} cannot be read as JSON ({err}); rerun the job or delete its folder") from err
    if not isinstance(data, dict):
        raise ResultsError(f"{path} holds a {type(data).__name__}, expected an object; rerun the job")
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # OmegaConf raises several yaml/grammar errors
        raise ResultsError(f"{path} cannot be read as YAML ({type(err).__name__}); rerun the job") from err
    return data if isinstance(data, dict) else {}


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.csv rows with numbers as floats (``output`` as int); [] when the file is absent."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "subject" not in reader.fieldnames:
                raise ResultsError(f"{path} has no 'subject' column; expected the header metrics.py writes")
            rows = []
            for line, raw in enumerate(reader, start=2):
                row: dict[str, Any] = {"subject": raw["subject"]}
                for key, value in raw.items():
                    if key == "subject" or key is None:
                        continue
                    try:
                        row[key] = int(value) if key == "output" else float(value) if value not in ("", None) else math.nan
                    except ValueError as err:
                        raise ResultsError(f"{path}, line {line}: {key}={value!r} is not a number") from err
                rows.append(row)
    except OSError as err:
        raise ResultsError(f"{path} cannot be read ({err})") from err
    return rows


def sweep_jobs(sweep_dir: str | Path) -> list[Path]:
    """The job folders of a multirun folder (those Hydra made: each holds ``.hydra/``), in job order."""
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and RunFolder(p).is_sweep_job()]
    return sorted(jobs, key=_job_number)


def _job_number(job: Path) -> tuple[int, str]:
    """Hydra's job number (``hydra.job.num``) of a job folder, for ordering; folder name as a tie-break."""
    num = RunFolder(job).job_number()
    return (1 << 30 if num is None else num), job.name
