"""Cluster launch (SLURM via submitit), hyper-parameter search (Optuna), W&B mode choice and launcher/logger checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from hydra.utils import instantiate
from pytorch_lightning.utilities import rank_zero_only

from mutual_seg.config import CONFIG_DIR, compose, register_resolvers
from mutual_seg.errors import ConfigError
from mutual_seg.runtime.ddp import JobDDPStrategy
from mutual_seg.runtime.overrides import check_group_overrides


def _compose(overrides: list[str]):
    return compose(overrides, hydra=True)


def test_slurm_launcher_composes_with_two_tasks_and_gpus_matching_trainer_ddp():
    cfg = _compose(["hydra/launcher=slurm", "trainer=ddp", "hydra.launcher.partition=gpu",
                    "hydra.launcher.account=my_lab", "hydra.launcher.timeout_min=600"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "mutual_seg.runtime.slurm.SlurmLauncher"  # submitit's, rank 0 alone writing .hydra/
    assert (launcher.partition, launcher.account, launcher.timeout_min) == ("gpu", "my_lab", 600)
    assert launcher.tasks_per_node == launcher.gpus_per_node == cfg.trainer.devices == 2 and launcher.nodes == 1
    assert cfg.trainer.strategy._target_.endswith("JobDDPStrategy")


def test_under_slurm_only_rank_0_writes_hydra_folder_and_log_file(monkeypatch):
    # Hydra's job wrapper of each SLURM task composes its job with these overrides (load_sweep_config, as the
    # submitit launcher does on the node): .hydra/ (output_subdir) and run.log (the file handler) on rank 0 only.
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        SlurmLauncher as SubmititSlurmLauncher,
    )

    from mutual_seg.runtime.slurm import SlurmLauncher, slurm_rank, task_overrides

    register_resolvers()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    master = loader.load_configuration("config", overrides=["hydra/launcher=slurm", "fold=0,1"],
                                       run_mode=RunMode.MULTIRUN)
    jobs = {rank: loader.load_sweep_config(master, task_overrides(["fold=1"], rank)) for rank in (0, 1)}
    assert jobs[0].hydra.output_subdir == ".hydra" and "file" in jobs[0].hydra.job_logging.handlers
    assert jobs[1].hydra.output_subdir is None and list(jobs[1].hydra.job_logging.handlers) == ["console"]
    assert jobs[0].fold == jobs[1].fold == 1  # the same job otherwise
    assert (slurm_rank({"SLURM_PROCID": "1"}), slurm_rank({})) == (1, 0)
    assert issubclass(SlurmLauncher, SubmititSlurmLauncher)


def test_under_slurm_the_trainer_takes_slurms_two_tasks_and_starts_no_process(monkeypatch, tmp_path):
    # What srun sets for task 1 of a 2-task job; the Trainer is trainer=ddp's with the CPU accelerator (no GPU here).
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
             "SLURM_NODEID": "0", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "mutual_seg", "SLURM_NODELIST": "node01"}
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    # Building a rank-1 Trainer sets Lightning's process-wide rank; put it back afterwards for the other tests.
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    cfg = _compose(["hydra/launcher=slurm", "trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true",
                    "logger=none", f"trainer.default_root_dir={tmp_path}"])
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    strategy = trainer.strategy
    assert isinstance(strategy, JobDDPStrategy)
    assert type(strategy.cluster_environment).__name__ == "SLURMEnvironment"
    assert strategy.cluster_environment.creates_processes_externally  # so the launcher starts no child
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank) == (cfg.hydra.launcher.tasks_per_node, 1, 1)
    assert len(strategy.parallel_devices) == cfg.hydra.launcher.gpus_per_node


def test_optuna_runs_two_trials_and_maximizes_the_returned_validation_dice(tiny_data, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mutual_seg.run", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
         f"data.layout.root={tiny_data}", f"paths.log_dir={tmp_path}", f"paths.cache_dir={tmp_path}/cache",
         "trainer=cpu", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "test=false",
         "~callbacks.progress_bar", "data.num_workers=0", "data.cache_workers=0", "n_folds=2",
         "model.net.features=[4,8,16]", "-m"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = tmp_path.glob("train/multiruns/*")
    trials = [json.loads((sweep / f"trial{i}" / "summary.json").read_text()) for i in range(2)]
    assert all(t["status"] == "ok" and 0 <= t["val_dice"] <= 1 for t in trials)
    searched = [{o.split("=")[0] for o in t["overrides"]} for t in trials]
    assert all({"optim.optimizer.lr", "loss", "model"} <= keys for keys in searched)  # the search space
    assert all("model.net.features=[4,8,16]" in t["overrides"] for t in trials)  # fixed on the command line
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(t["val_dice"] for t in trials))
    assert (sweep / "sweep_summary.csv").is_file()


def test_wandb_mode_auto_is_offline_without_credentials_and_leaves_the_environment_alone(monkeypatch, tmp_path):
    from mutual_seg.runtime.loggers import resolve_mode

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    assert resolve_mode("auto") == "offline" and "WANDB_MODE" not in __import__("os").environ
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled" and resolve_mode("offline") == "offline"
    with pytest.raises(ConfigError, match="auto, online, offline, disabled"):
        resolve_mode("sometimes")


@pytest.mark.parametrize(
    ("override", "expected"),
    [("hydra/launcher=slurmm", "valid hydra/launcher choices: basic, joblib, slurm, submitit_local, submitit_slurm"),
     ("logger=[csv,wandbb]", "valid logger choices: csv, many, none, tensorboard, wandb"),
     ("hparams_search=optina", "valid hparams_search choices: optuna")],
)
def test_unknown_launcher_logger_or_search_is_one_line_listing_the_valid_ones(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        check_group_overrides([override])
    check_group_overrides(["logger=[csv,wandb]", "hydra/launcher=slurm", "hparams_search=optuna", "logger=csv,none"])


def test_unknown_launcher_exits_2_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "mutual_seg.run", "hydra/launcher=sge", "-m"],
                            capture_output=True, text=True, timeout=120, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "unknown launcher 'sge'" in lines[0]
