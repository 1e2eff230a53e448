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
from omegaconf.errors import InterpolationResolutionError

from mutual_seg.config import CONFIG_DIR, check_group_overrides, register_resolvers
from mutual_seg.data.check import check_before_training
from mutual_seg.errors import MutualSegError
from mutual_seg.fastpath import resolve_trainer_precision
from mutual_seg.lit import SegModule, check_checkpoint
from mutual_seg.models.summary import format_summary, model_summary
from mutual_seg.results import job_identity, print_results, read_run, write_results, write_untested
from mutual_seg.runtime.atomic import atomic_write_text
from mutual_seg.runtime.checkpoint_io import AtomicCheckpointIO
from mutual_seg.runtime.ddp import check_devices
from mutual_seg.runtime.guards import check_run_switches
from mutual_seg.runtime.job import record_failure, run_job, sweep_value
from mutual_seg.runtime.loggers import build_loggers
from mutual_seg.runtime.malloc import tune_malloc
from mutual_seg.runtime.preflight import preflight
from mutual_seg.runtime.provenance import data_fingerprint, write_provenance
from mutual_seg.runtime.resume import plan_run

log = logging.getLogger(__name__)
register_resolvers()


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    """Objects of every child node that has a ``_target_`` (callbacks, loggers)."""
    return [instantiate(child) for child in (node or {}).values() if isinstance(child, DictConfig) and "_target_" in child]


class _ResultWriter(pl.Callback):
    """Writes ``metrics.csv``/``summary.json`` on global rank 0 as soon as testing ends.

    Under ``ddp_spawn`` testing runs in worker processes whose module state (the gathered test rows) never
    returns to the main process, so the files must be written where the rows are: here, not after ``test()``.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.extra: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.summary = write_results(pl_module.test_rows, self.out_dir, self.extra)
            print_results(pl_module.test_rows, self.summary)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and/or test as the config says; return the test summary (empty if not tested)."""
    tune_malloc(cfg.get("malloc"))  # before the first tensors; loader workers fork with it
    check_devices(cfg.trainer)
    check_run_switches(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    plan = plan_run(out_dir, resume=bool(cfg.get("resume")), overwrite=bool(cfg.get("overwrite")))
    if plan.finished is not None:
        return plan.finished  # resume=true in a multirun: this job finished earlier
    precision, why = resolve_trainer_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    cfg.trainer.precision = precision  # auto becomes what this machine runs fast; config.yaml records the choice
    log.info("%s", why)
    datamodule = instantiate(cfg.data)
    module: SegModule = instantiate(cfg.module)
    if cfg.ckpt_path:
        check_checkpoint(cfg.ckpt_path, module.hparams)
    writer = _ResultWriter(out_dir)
    loggers, logger_callbacks = build_loggers(cfg)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*_instantiate_all(cfg.get("callbacks")), *logger_callbacks, writer, plan.callback],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
    )
    if trainer.is_global_zero:  # known once the Trainer is built: DDP children write nothing
        atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        log.info("model: %s", format_summary(model_summary(module.net)))
        check_before_training(datamodule.layout, datamodule.modalities, datamodule.skip_incomplete)  # every problem at once
        datamodule.prepare_data()  # fills the cache with a progress bar; Lightning's own call is then a no-op
        log.info("%s", datamodule.summary())
        write_provenance(out_dir, data_fingerprint(datamodule.subjects))

    best, val_dice = cfg.ckpt_path, None
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=plan.ckpt_path or cfg.ckpt_path,
                    weights_only=True)  # never unpickle objects
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        best = best or None
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        val_dice = float(score) if score is not None else None
    summary: dict[str, Any] = {"val_dice": val_dice}
    writer.extra = {**job_identity(cfg), "world_size": trainer.world_size, "val_dice": val_dice,
                    "checkpoint": str(best) if best else None}
    if not cfg.test and trainer.is_global_zero:
        summary = write_untested(out_dir, writer.extra)
    if cfg.test:
        trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        if trainer.is_global_zero:
            # Under ddp_spawn the writer ran in a worker: its summary is only on disk (read by the one reader).
            summary = writer.summary or read_run(out_dir).summary
            log.info("results written to %s", out_dir)
    return summary


def user_error(err: BaseException) -> MutualSegError | None:
    """The ``MutualSegError`` behind ``err``, if any.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException`` (once per nesting level, e.g.
    the network inside the LightningModule, each ``raise ... from``), so a user error raised while building an
    object sits in the ``__cause__`` chain. (Not ``__context__``: a bug hit while handling a user error is a bug.)
    The one exception is OmegaConf's ``InterpolationResolutionError``, which wraps an error raised by a resolver
    (e.g. ``${budget_widths:...}``) without ``from``: there the resolver's error is the ``__context__``.
    """
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, MutualSegError):
        seen = seen.__context__ if isinstance(seen, InterpolationResolutionError) else seen.__cause__
    return seen


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    try:
        summary = run_job(cfg, train)
    except Exception as err:
        found = user_error(err)
        if record_failure(cfg, err, found):  # in a sweep: summary.json says why, the next job runs
            return sweep_value(None)
        if found is None:
            raise
        # One line and exit code 2 for anything the user can fix; SystemExit passes through Hydra untouched.
        print(f"error: {found}", file=sys.stderr)
        sys.exit(2)
    return sweep_value(summary)  # best mean validation Dice, for Hydra sweepers that optimise (Optuna)


def main() -> None:
    """Console entry point: check group choices in one line, then hand over to Hydra."""
    try:
        check_group_overrides(sys.argv[1:])
        sys.argv[1:] = preflight(sys.argv[1:])
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
