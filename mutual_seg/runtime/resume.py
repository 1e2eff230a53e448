"""``resume=true``: continue a killed run from its ``checkpoints/last.ckpt`` in the same run folder.

A resumed run reaches the same final metrics as an uninterrupted one (CPU, same seed) because
(1) the training draws depend only on (seed, epoch) (``data/sampler.py``), (2) every RNG state (Python, NumPy,
torch, CUDA) is saved in each checkpoint and restored with it, and (3) the CSV logger keeps the earlier epochs'
rows, which Lightning's own logger deletes on restart. In a multirun, finished jobs (``summary.json`` with
status ``ok``) are skipped and unfinished ones continue.
"""

from __future__ import annotations

import glob
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

from mutual_seg.errors import ResultsError
from mutual_seg.results import RunFolder, read_run

log = logging.getLogger(__name__)
RNG_KEY = "mutual_seg_rng_states"


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The run folder's ``checkpoints/last.ckpt``, if there is one."""
    path = RunFolder(Path(run_dir)).last_checkpoint
    return path if path.is_file() else None


def finished_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The saved summary of a job that finished, else None; the folder is read by ``results.read_run``.

    Finished: tested (``metrics.csv`` written) or trained with ``test=false`` (empty ``metrics``). A summary
    that lists metrics without its ``metrics.csv`` lost a file: the job runs again.
    """
    try:
        run = read_run(run_dir)
    except ResultsError:
        return None  # not a run folder yet, or a file that cannot be parsed: run the job again
    if run.ok or (run.status == "untested" and run.summary.get("metrics") == {}):
        return {**run.summary, "error": None}
    return None


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA RNG states, as types a ``weights_only`` checkpoint load accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in states["python"]))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumeState(pl.Callback):
    """Saves every RNG state in each checkpoint and restores it; on resume keeps the CSV log's earlier rows.

    Args:
        csv_rows: rows of the killed run's ``csv/metrics.csv`` (read before Lightning's logger deletes it).
    """

    def __init__(self, csv_rows: list[dict[str, str]] | None = None) -> None:
        self.csv_rows = csv_rows or []

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if RNG_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_KEY])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.csv_rows:
            return
        start = trainer.current_epoch  # the first epoch this process trains; earlier ones come from the file
        kept = [row for row in self.csv_rows if row.get("epoch", "") != "" and float(row["epoch"]) < start]
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger) and trainer.is_global_zero:
                writer = logger.experiment
                writer.metrics = [{k: v for k, v in row.items() if v != ""} for row in kept] + writer.metrics
                writer.save()
        self.csv_rows = []


def locate_run_dir(cfg: DictConfig, multirun: bool) -> Path | None:
    """For ``resume=true`` without an explicit folder: the newest earlier run (or sweep) folder of this command.

    Run folders end in a timestamp (``conf/hydra/default.yaml``); the same command with the timestamp as a
    wildcard finds the earlier ones.
    """
    node = "sweep" if multirun else "run"
    raw = OmegaConf.to_container(cfg.hydra[node], resolve=False)["dir"]
    if "${now:" not in raw:
        return None  # an explicit folder: it is used as it is
    pattern_cfg = cfg.copy()
    with open_dict(pattern_cfg):
        pattern_cfg.hydra[node].dir = re.sub(r"\$\{now:[^}]*\}", "*", raw)
    pattern = str(pattern_cfg.hydra[node].dir)
    found = sorted(glob.glob(glob.escape(pattern).replace("[*]", "*")), key=os.path.getmtime)
    return Path(found[-1]) if found else None


@dataclass
class RunPlan:
    """How a run starts in its folder: fresh, resumed from ``ckpt_path``, or already ``finished``."""

    callback: ResumeState
    ckpt_path: Path | None = None
    finished: dict[str, Any] | None = None
    earlier_failure: str | None = None  # a failed job rerun in its folder: why it failed (kept in the new summary)


def plan_run(run_dir: str | Path, resume: bool, overwrite: bool) -> RunPlan:
    """Refuse a folder with earlier results (unless resuming or overwriting), and find what to resume from.

    A folder holding only a failed job's ``summary.json`` is a job to rerun: its reason is logged and carried into
    the new summary (``earlier_failure``), and the stale summary is removed, so a rerun killed in turn reads as
    unfinished, not as the old failure.

    Raises:
        OutputError: the folder holds an earlier run's results and neither switch was passed.
    """
    folder = RunFolder(Path(run_dir))
    earlier_failure = None
    if getattr(rank_zero_only, "rank", 0) == 0:  # DDP processes started later find rank 0's files: not a refusal
        failed = folder.failed_only() if not resume else None
        folder.guard(resume, overwrite)
        if failed is not None and folder.summary.is_file():
            earlier_failure = str(failed.get("error") or "unknown reason")
            log.warning("%s held a failed job (%s); running it again", run_dir, earlier_failure)
            folder.summary.unlink()
    if not resume:
        return RunPlan(ResumeState(), earlier_failure=earlier_failure)
    finished = finished_summary(run_dir)
    if finished is not None:
        log.info("resume=true: %s finished earlier (summary.json status ok); skipping it", run_dir)
        return RunPlan(ResumeState(), finished=finished)
    ckpt = last_checkpoint(run_dir)
    if ckpt is None:
        log.info("resume=true: no checkpoints/last.ckpt in %s; starting from scratch", run_dir)
        return RunPlan(ResumeState())
    log.info("resume=true: continuing %s from %s", run_dir, ckpt)
    return RunPlan(ResumeState(folder.read_csv_log()), ckpt_path=ckpt)
