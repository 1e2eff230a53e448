"""Refusals before a run touches anything: run switches that contradict each other.

The run folder's own guard (an earlier run's results are refused unless ``resume=true`` or ``overwrite=true``) is
``results.RunFolder.guard``, the one owner of the folder's file names.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mutual_seg.errors import ConfigError


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

