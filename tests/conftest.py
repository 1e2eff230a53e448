"""Shared fixtures: a tiny synthetic data set in the UCSF-PDGM layout and Hydra configs shrunk to tiny runs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mutual_seg.config import compose

TINY_SHAPE = (48, 48, 24)


@pytest.fixture(autouse=True)
def _root_log_handlers():
    """Each test leaves the root logger's handlers as it found them: a run's Hydra logging setup attaches handlers
    to the stream pytest captured for that test, and a later test would see "--- Logging error ---" lines on its
    own stderr when they write to the closed stream (order-dependent failures of one-line-error tests)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Ten tiny synthetic subjects (48 x 48 x 24 voxels over the usual 240 x 240 x 155 mm field of view)."""
    from mutual_seg.data.synthetic import (
        generate_dataset,  # imported here: only tests that need data pay for it
    )

    root = tmp_path_factory.mktemp("data") / "synthetic"
    generate_dataset(root, n_subjects=10, seed=3, shape=TINY_SHAPE, workers=1)
    return root


def compose_config(overrides: list[str], data_root: Path, out_dir: Path) -> DictConfig:
    """The run config as `python -m mutual_seg.run` composes it, made tiny: CPU, few steps, no logger."""
    cfg = compose(
        [
            "trainer=cpu",
            "logger=none",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.enable_model_summary=false",
            "~callbacks.progress_bar",
            "data.num_workers=0",
            "data.cache_workers=0",
            "data.batch_size=4",
            "model.net.features=[4,8,16]",
            # 2 training steps from the default 1 % output prior predict no tumour at all, and empty masks
            # would make every agreement test (predict vs test step, bf16 vs float32) pass trivially: start
            # these tiny runs at 1/2 instead
            "model.net.output_prior=0.5",
            "n_folds=2",
            *overrides,
        ],
        hydra=True,
    )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.data.layout.root = str(data_root)
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.cache_dir = str(out_dir / "cache")
        del cfg["hydra"]  # a real run's task config has no hydra node either
    return cfg


@pytest.fixture
def make_cfg(tiny_data, tmp_path):
    """``make_cfg([...overrides], out="run")`` -> a composed tiny config writing into ``tmp_path / out``."""
    return lambda overrides=(), out="run": compose_config(list(overrides), tiny_data, tmp_path / out)


@pytest.fixture(scope="session")
def run(tiny_data, tmp_path_factory) -> Path:
    """A run folder (for the predict tests): 1 epoch of 2 batches, tested on fold 0's 5 test subjects (metrics.csv)."""
    from mutual_seg.run import train

    out = tmp_path_factory.mktemp("predict") / "run"
    train(compose_config([], tiny_data, out))
    return out


@pytest.fixture(scope="session")
def variants(run, tmp_path_factory) -> dict[str, Path]:
    """Two more valid checkpoints made from the trained one: other weights, and trained with modality dropout."""
    import torch

    folder = tmp_path_factory.mktemp("ckpts")
    base = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    torch.manual_seed(0)
    other = {**base, "state_dict": {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                                    for k, v in base["state_dict"].items()}}
    torch.save(other, folder / "other.ckpt")
    hparams = {**base["hyper_parameters"], "net": {**base["hyper_parameters"]["net"], "modality_dropout": 0.3}}
    torch.save({**base, "hyper_parameters": hparams}, folder / "dropout.ckpt")
    return {"best": run / "checkpoints" / "best.ckpt", "other": folder / "other.ckpt", "dropout": folder / "dropout.ckpt"}
