"""Refusals before a run touches anything: run switches that contradict each other, optimizer settings torch refuses.

The run folder's own guard (an earlier run's results are refused unless ``resume=true`` or ``overwrite=true``) is
``results.RunFolder.guard``, the one owner of the folder's file names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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



# torch's words for an optimizer's arguments in its ValueErrors ("Invalid learning rate: -1.0").
_ARGUMENT_WORDS = {"lr": "learning rate", "eps": "epsilon", "betas": "beta", "weight_decay": "weight_decay",
                   "momentum": "momentum", "T_max": "t_max", "eta_min": "eta_min"}


def check_optim(cfg: DictConfig) -> None:
    """Build the optimizer and scheduler ``optim`` names on a stand-in parameter, before any data or model.

    torch checks their values only when Lightning builds them, after the data and the model, and then raises a
    bare ``ValueError`` deep in a traceback; here that is one line naming the key (``optim.optimizer.lr``).

    Raises:
        ConfigError: the setting torch refused, its value and torch's reason.
    """
    import torch
    from hydra.utils import instantiate

    optim = cfg.get("optim")
    if not optim or not optim.get("optimizer"):
        return
    optimizer = _build("optim.optimizer", optim.optimizer, lambda f: f(params=[torch.nn.Parameter(torch.zeros(1))]),
                       instantiate)
    if optim.get("scheduler"):
        _build("optim.scheduler", optim.scheduler, lambda f: f(optimizer=optimizer), instantiate)


def _build(key: str, node: DictConfig, call: Callable[[Any], Any], instantiate: Callable[[Any], Any]) -> Any:
    try:
        return call(instantiate(node))
    except (ValueError, TypeError) as err:
        raise ConfigError(_setting_error(key, node, err)) from err
    except Exception as err:  # Hydra's InstantiationException around a bad _target_ or argument
        cause = err.__cause__
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(_setting_error(key, node, cause)) from err
        raise


def _setting_error(key: str, node: DictConfig, err: BaseException) -> str:
    """``optim.optimizer.lr=-1.0: Invalid learning rate: -1.0; ...``: the setting named from torch's message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    lower = text.lower()
    names = [k for k in node if k not in ("_target_", "_partial_")
             and (f"'{k}'" in text or _ARGUMENT_WORDS.get(str(k), str(k)).lower() in lower)]
    if names:
        setting = ", ".join(f"{key}.{k}={node[k]}" for k in names)
        return f"{setting}: {text}; change {'that setting' if len(names) == 1 else 'those settings'}"
    return f"{key} ({node.get('_target_')}): {text}; check its settings under {key}"
