"""Experiment loggers of a job: built from ``cfg.logger`` (several combine), W&B set up per job, finished after it.

A logger config may bring the Lightning callbacks it needs (W&B: ``LearningRateMonitor`` and the overlays of
:mod:`mutual_seg.report.wandb_media`): every ``_target_`` under ``cfg.logger`` is built, loggers go to the
Trainer's ``logger``, callbacks to its ``callbacks``. ``logger=[csv,wandb]`` (or ``logger=many``) combines them.

W&B: one run per job, named ``<modality set>_fold<k>``, grouped by sweep (``<task>_<sweep folder>``: two sweeps of
the same task never merge), tagged with modality set, fold, model and fusion, with the whole resolved config.
``mode: auto`` is online when an API key is found (``WANDB_API_KEY`` or ``wandb login``'s netrc entry), offline
otherwise; the mode goes to ``wandb.init`` only, never into ``os.environ``, so nothing leaks into later jobs.
"""

from __future__ import annotations

import logging
import netrc
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger, WandbLogger

from mutual_seg.errors import ConfigError

log = logging.getLogger(__name__)
WANDB_FACTORY = f"{__name__}.wandb_logger"
_MODES = ("auto", "online", "offline", "disabled")


def build_loggers(cfg: DictConfig, identity: Mapping[str, Any]) -> tuple[list[Logger], list[Callback]]:
    """The loggers and the logger callbacks under ``cfg.logger``, in config order; ``identity``: ``job_identity``."""
    loggers: list[Logger] = []
    callbacks: list[Callback] = []
    for child in (cfg.get("logger") or {}).values():
        if not (isinstance(child, DictConfig) and "_target_" in child):
            continue
        if child._target_ == WANDB_FACTORY:  # needs the whole run config, which instantiate() would try to build
            settings = OmegaConf.to_container(child, resolve=True)
            built = wandb_logger(cfg, identity, **{k: v for k, v in settings.items() if k != "_target_"})
        else:
            built = instantiate(child)
        (loggers if isinstance(built, Logger) else callbacks).append(built)
    return loggers, callbacks


def logged_in(base_url: str | None = None) -> bool:
    """Whether W&B credentials are present (no network call): ``WANDB_API_KEY`` or a netrc entry for the host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(base_url or os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return bool(host) and netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """``auto`` -> ``WANDB_MODE`` if the user set it, else online when logged in, offline otherwise."""
    if mode not in _MODES:
        raise ConfigError(f"logger.wandb.mode={mode!r} is not one of {', '.join(_MODES)}")
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or ("online" if logged_in() else "offline")


def sweep_group(task_name: str, output_dir: str) -> str:
    """``<task>_<sweep folder name>`` in a multirun, ``<task>_<run folder name>`` for a single run."""
    from mutual_seg.runtime.ddp import in_multirun

    folder = HydraConfig.get().sweep.dir if in_multirun() else output_dir
    return f"{task_name}_{Path(str(folder)).name}"


def wandb_logger(run_config: DictConfig, identity: Mapping[str, Any], project: str, entity: str | None, mode: str, init_timeout_s: float,
                 save_dir: str, log_model: bool, tags: list[str] | None = None) -> WandbLogger:
    """Lightning's ``WandbLogger`` for this job: name, group and tags from ``identity`` (``results.job_identity``),
    the resolved config from ``run_config``."""
    import wandb

    who = identity
    mode = resolve_mode(mode)
    name = f"{who['modality_set']}_fold{who['fold']}"
    job_tags = [who["modality_set"], f"fold{who['fold']}", f"model:{who['model']}", f"fusion:{who['fusion']}"]
    if log_model and mode != "online":
        log.warning("logger.wandb.log_model needs an online run (this one is %s): checkpoints stay local", mode)
        log_model = False
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    log.info("W&B run %s (%s) in %s", name, mode, save_dir)
    return WandbLogger(
        project=project, entity=entity, name=name, group=sweep_group(str(who["task_name"]), str(run_config.paths.output_dir)),
        tags=[str(t) for t in [*job_tags, *(tags or [])]], save_dir=save_dir, log_model=log_model,
        config=OmegaConf.to_container(run_config, resolve=True), mode=mode, reinit="finish_previous",
        settings=wandb.Settings(init_timeout=float(init_timeout_s), silent=True),
    )


def finish_loggers() -> None:
    """End the job's W&B run, so that the next job starts its own (Lightning's WandbLogger reuses an active run).

    An offline run says where its folder is and how to upload it.
    """
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return
    offline = run.settings.mode == "offline" or bool(getattr(run.settings, "_offline", False))
    folder = Path(run.dir).parent
    wandb.finish()
    if offline:
        log.info("W&B run saved offline in %s; upload it with: wandb sync %s", folder, shlex.quote(str(folder)))
