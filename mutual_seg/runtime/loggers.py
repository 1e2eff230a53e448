"""Experiment loggers of a job: built from ``cfg.logger`` (any number combined), finished after every job."""

from __future__ import annotations

import sys
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def build_loggers(cfg: DictConfig) -> list[Any]:
    """Every logger under ``cfg.logger`` (``logger=many`` or ``logger=[csv,wandb]`` combine several)."""
    node = cfg.get("logger") or {}
    return [instantiate(child) for child in node.values() if isinstance(child, DictConfig) and "_target_" in child]


def finish_loggers() -> None:
    """End the job's W&B run, so that the next job of the sweep starts its own (WandbLogger reuses an active run)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
