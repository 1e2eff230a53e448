"""Refusals before a run touches anything: inconsistent run switches, and a run folder that holds earlier results.

A run never silently replaces what an earlier run wrote: an existing run folder with results is refused unless
``resume=true`` (continue it, see ``runtime/resume.py``) or ``overwrite=true`` (replace it on purpose).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from mutual_seg.errors import ConfigError, OutputError

log = logging.getLogger(__name__)

# What a run writes into its folder (run-folder contract); any of them means "an earlier run was here".
RESULT_FILES = ("summary.json", "metrics.csv", "provenance.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                "csv/metrics.csv")


def check_run_switches(cfg: DictConfig) -> None:
    """Refuse combinations of ``train``/``test``/``ckpt_path``/``resume``/``overwrite`` that cannot mean anything.

    Raises:
        ConfigError: e.g. ``train=false`` without ``ckpt_path`` (it would test an untrained network).
    """
    resume, overwrite = bool(cfg.get("resume", False)), bool(cfg.get("overwrite", False))
    if not cfg.train and cfg.test and not cfg.ckpt_path:
        raise ConfigError(
            "train=false tests a trained model but no ckpt_path is set; pass ckpt_path=<run folder>/checkpoints/best.ckpt "
            "(or drop train=false to train first)"
        )
    if not cfg.train and not cfg.test:
        raise ConfigError("train=false and test=false leave nothing to do; set train=true or test=true")
    if resume and overwrite:
        raise ConfigError("resume=true continues the earlier run and overwrite=true replaces it; pass only one of them")
    if resume and cfg.ckpt_path:
        raise ConfigError(
            "resume=true continues from the run folder's checkpoints/last.ckpt; drop ckpt_path=... (or drop resume=true "
            "to start a new run from that checkpoint)"
        )
    if resume and not cfg.train:
        raise ConfigError("resume=true continues training, but train=false; drop resume=true")


def earlier_results(folder: str | Path) -> list[Path]:
    """The result files an earlier run left in ``folder`` (empty if none)."""
    folder = Path(folder)
    return [folder / name for name in RESULT_FILES if (folder / name).is_file()]


def guard_run_folder(folder: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse to run into a folder holding earlier results, unless resuming; with ``overwrite`` remove them first.

    Raises:
        OutputError: the folder holds results and neither ``resume=true`` nor ``overwrite=true`` was passed.
    """
    found = earlier_results(folder)
    if not found or resume:
        return
    if not overwrite:
        names = ", ".join(str(p.relative_to(folder)) for p in found)
        raise OutputError(
            f"run folder {folder} already holds an earlier run's results ({names}); pass resume=true to continue it, "
            f"overwrite=true to replace it, or choose another hydra.run.dir"
        )
    for path in found:
        log.warning("overwrite=true: removing %s of the earlier run", path)
        path.unlink()
