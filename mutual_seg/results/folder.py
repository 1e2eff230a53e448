"""The run folder's file names and its guard (:class:`RunFolder`), and the parsers of its files.

Nothing else in the project spells a run folder's file names: writers (``results.write``, the run, provenance),
readers (``results.runs``, resume, reports, experiments) and the guard against overwriting an earlier run go
through :class:`RunFolder`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import OmegaConf

from mutual_seg.errors import OutputError, ResultsError

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

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def config(self) -> Path:
        """The resolved config of the job (Hydra's own ``.hydra/config.yaml`` is not it)."""
        return self.path / "config.yaml"

    @property
    def provenance(self) -> Path:
        return self.path / "provenance.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def csv_log(self) -> Path:
        """Lightning's CSV log of the training epochs."""
        return self.path / "csv" / "metrics.csv"

    @property
    def hydra_dir(self) -> Path:
        """Hydra's own record of the job (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``)."""
        return self.path / ".hydra"

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
