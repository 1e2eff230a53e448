"""`python -m mutual_seg.run`: fit on a fold, test the best checkpoint per subject, write the run's results.

Writes into the Hydra job folder: ``checkpoints/`` (best by validation Dice, and last), ``metrics.csv`` (one
row per test subject), ``summary.json`` (mean and standard deviation of each metric) and ``config.yaml`` (the
resolved config). Sweeps are plain Hydra multiruns: ``python -m mutual_seg.run modality=flair,t2w -m``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mutual_seg.config import CONFIG_DIR, check_group_overrides, register_resolvers
from mutual_seg.errors import MutualSegError
from mutual_seg.lit import SegModule, check_checkpoint
from mutual_seg.models.summary import format_summary, model_summary
from mutual_seg.results import print_results, write_results

log = logging.getLogger(__name__)
register_resolvers()


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    """Objects of every child node that has a ``_target_`` (callbacks, loggers)."""
    return [instantiate(child) for child in (node or {}).values() if isinstance(child, DictConfig) and "_target_" in child]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and/or test as the config says; return the test summary (empty if not tested)."""
    pl.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    datamodule = instantiate(cfg.data)
    module: SegModule = instantiate(cfg.module)
    if cfg.ckpt_path:
        check_checkpoint(cfg.ckpt_path, module.hparams)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=_instantiate_all(cfg.get("callbacks")), logger=_instantiate_all(cfg.get("logger")) or False
    )
    if trainer.is_global_zero:
        log.info("model: %s", format_summary(model_summary(module.net)))
        datamodule.prepare_data()  # fills the cache with a progress bar; Lightning's own call is then a no-op
        log.info("%s", datamodule.summary())

    best = cfg.ckpt_path
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        best = best or None
    summary: dict[str, Any] = {}
    if cfg.test:
        trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
        if trainer.is_global_zero:
            extra = {"checkpoint": str(best) if best else None, "modalities": list(cfg.modality.names), "fold": cfg.fold}
            summary = write_results(module.test_rows, out_dir, extra)
            print_results(module.test_rows, summary)
            log.info("results written to %s", out_dir)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except MutualSegError as err:
        # One line and exit code 2 for anything the user can fix; SystemExit passes through Hydra untouched.
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    metrics = summary.get("metrics", {})
    return metrics.get("Dc", {}).get("mean") if metrics else None  # for Hydra sweepers that optimise


def main() -> None:
    """Console entry point: check group choices in one line, then hand over to Hydra."""
    try:
        check_group_overrides(sys.argv[1:])
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
