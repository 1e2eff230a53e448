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

from mutual_seg.atomic import atomic_write_text
from mutual_seg.checkpoint import AtomicCheckpointIO, check_checkpoint
from mutual_seg.cli import report, run_main, user_error
from mutual_seg.config import CONFIG_DIR, register_resolvers
from mutual_seg.data.check import check_before_training
from mutual_seg.fastpath import resolve_trainer_precision
from mutual_seg.lit import SegModule
from mutual_seg.models.network import fusion_name_of
from mutual_seg.models.summary import format_summary, model_summary
from mutual_seg.results import (
    RunFolder,
    job_identity,
    print_results,
    read_run,
    write_results,
    write_untested,
)
from mutual_seg.runtime.ddp import check_devices, is_global_zero
from mutual_seg.runtime.guards import check_optim, check_run_switches
from mutual_seg.runtime.job import record_failure, run_job, sweep_value
from mutual_seg.runtime.loggers import build_loggers
from mutual_seg.runtime.malloc import tune_malloc
from mutual_seg.runtime.overrides import check_group_overrides
from mutual_seg.runtime.preflight import MULTIRUN_FLAGS, preflight_config
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
            decided = getattr(pl_module, "postprocess", None)  # largest_component=auto: the tested checkpoint's choice
            extra = {**self.extra, "postprocess": decided} if decided else self.extra
            self.summary = write_results(pl_module.test_rows, self.out_dir, extra)
            print_results(pl_module.test_rows, self.summary)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and/or test as the config says; return the test summary (empty if not tested)."""
    tune_malloc(cfg.get("malloc"))  # before the first tensors; loader workers fork with it
    check_devices(cfg.trainer)
    check_run_switches(cfg)
    check_optim(cfg)  # torch's own refusals (lr=-1), one line naming the key, before data and model
    pl.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    plan = plan_run(out_dir, resume=bool(cfg.get("resume")), overwrite=bool(cfg.get("overwrite")))
    if plan.finished is not None:
        return plan.finished  # resume=true in a multirun: this job finished earlier
    precision, why = resolve_trainer_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    cfg.trainer.precision = precision  # auto becomes what this machine runs fast; config.yaml records the choice
    log.info("%s", why)
    datamodule = instantiate(cfg.data)
    if is_global_zero():  # the data before the model: every problem at once (DDP children find rank 0's verdict)
        check_before_training(datamodule.layout, datamodule.modalities, datamodule.skip_incomplete)
    module: SegModule = instantiate(cfg.module)
    if cfg.ckpt_path:
        check_checkpoint(cfg.ckpt_path, module.hparams)
    writer = _ResultWriter(out_dir)
    identity = job_identity(cfg, module.net.fusion_name)  # the network says what it is
    loggers, logger_callbacks = build_loggers(cfg, identity)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*_instantiate_all(cfg.get("callbacks")), *logger_callbacks, writer, plan.callback],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
    )
    if trainer.is_global_zero:  # known once the Trainer is built: DDP children write nothing
        atomic_write_text(RunFolder(out_dir).config, OmegaConf.to_yaml(cfg, resolve=True))
        log.info("model: %s", format_summary(model_summary(module.net)))
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
    writer.extra = {**identity, "world_size": trainer.world_size, "val_dice": val_dice,
                    "checkpoint": str(best) if best else None,
                    **({"earlier_failure": plan.earlier_failure} if plan.earlier_failure else {})}
    if not cfg.test and trainer.is_global_zero:
        summary = write_untested(out_dir, writer.extra)
    if cfg.test:
        trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        if trainer.is_global_zero:
            # Under ddp_spawn the writer ran in a worker: its summary is only on disk (read by the one reader).
            summary = writer.summary or read_run(out_dir).summary
            log.info("results written to %s", out_dir)
    return summary


def _fusion_or_none(cfg: DictConfig) -> str | None:
    """The config's fusion name for a failed job's summary (None when the config names no buildable fusion)."""
    try:
        return fusion_name_of(cfg.model.net)
    except Exception:  # noqa: BLE001 - the job's own failure is the one to report
        return None


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    try:
        summary = run_job(cfg, train)
    except Exception as err:
        found = user_error(err)
        if record_failure(cfg, err, found, _fusion_or_none(cfg)):  # in a sweep: summary.json says why, the next job runs
            return sweep_value(None)
        if found is None:
            raise
        sys.exit(report(found))  # one line and exit code 2; SystemExit passes through Hydra untouched
    return sweep_value(summary)  # best mean validation Dice, for Hydra sweepers that optimise (Optuna)


def check_data(cfg: DictConfig) -> None:
    """The first job's data set, checked once before Hydra starts any job (a sweep over missing data stops here).

    Raises:
        DataError: the data root is missing, or every problem of the set in one line (``data/check.py``).
    """
    if not (cfg.get("train") or cfg.get("test")):
        return
    layout = instantiate(cfg.data.layout)
    check_before_training(layout, list(cfg.modality.names), bool(cfg.data.get("skip_incomplete", False)))


def _runs_here(cfg: DictConfig) -> bool:
    """Whether Hydra's launcher runs the jobs on this machine (basic, joblib), not on a cluster's nodes (submitit)."""
    target = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    return "submitit" not in target and "slurm" not in target.lower()


def _before_hydra() -> None:
    """Group choices, overrides, the run folder, the optimizer and the data of the (first) job, checked before Hydra
    writes anything; each job checks its own again (``train``), for sweeps over them and for Python callers."""
    check_group_overrides(sys.argv[1:])
    args, cfg = preflight_config(sys.argv[1:])
    if cfg is not None and _runs_here(cfg):  # jobs sent to SLURM check devices and data where they run
        check_devices(cfg.trainer)
        if not any(a in MULTIRUN_FLAGS for a in args):
            check_optim(cfg)  # a sweep's jobs check their own values: one bad value fails its job, not the sweep
        check_data(cfg)
    sys.argv[1:] = args


def main() -> None:
    """Console entry point: every check that needs no job in one line (exit 2), then hand over to Hydra."""
    code = run_main(_before_hydra)
    if code:
        sys.exit(code)
    _hydra_main()


if __name__ == "__main__":
    main()
