"""One job of a run or a sweep: its distributed lifecycle, its loggers' end, and what a failure leaves behind.

A job that fails inside a multirun (a bad value for that job, a crash) writes ``summary.json`` with status
"failed" and the one-line reason, and the sweep goes on; the sweep summary callback exits non-zero at the end.
A machine that lacks the requested devices (:class:`DeviceError`) stops the sweep at once: no job could run.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mutual_seg.results import job_identity, write_failed
from mutual_seg.runtime.ddp import DeviceError, ddp_job, in_multirun, is_global_zero
from mutual_seg.runtime.loggers import finish_loggers

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig, train: Callable[[DictConfig], dict[str, Any]]) -> dict[str, Any]:
    """``train(cfg)`` with, afterwards and whatever happened, loggers finished and the DDP state cleared."""
    with ddp_job():
        try:
            return train(cfg)
        finally:
            finish_loggers()


def reason(err: BaseException, user: BaseException | None) -> str:
    """The one-line reason a job failed: the user error's message, else the exception's type and first line."""
    if user is not None:
        return str(user)
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__  # what the _target_ raised, not Hydra's wrapper
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def record_failure(cfg: DictConfig, err: BaseException, user: BaseException | None, fusion: str | None) -> bool:
    """Write the failed job's ``summary.json`` (global rank 0); True when the sweep should go on to its next job.

    ``fusion``: the network's fusion name (``results.job_identity``), None when the config names none buildable.
    """
    line = reason(err, user)
    if is_global_zero():
        try:
            write_failed(Path(cfg.paths.output_dir), job_identity(cfg, fusion), line)
        except Exception as write_err:  # noqa: BLE001 - the original failure is the one to report
            log.error("could not write the failed job's summary.json: %s", write_err)
    if in_multirun() and not isinstance(user, DeviceError):
        print(f"error: job {Path(cfg.paths.output_dir).name} failed: {line}", file=sys.stderr)
        log.error("job failed: %s", line)
        return True
    return False


def sweep_value(summary: dict[str, Any] | None) -> float:
    """What the run returns to Hydra's sweeper (Optuna maximizes it): the best mean validation Dice; NaN if none."""
    value = (summary or {}).get("val_dice")
    return float(value) if value is not None else math.nan
