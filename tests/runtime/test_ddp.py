"""DDP inside a Hydra multirun, as a user types it: ``python -m mutual_seg.run fold=0,1 trainer=ddp_cpu ... -m``.

``trainer=ddp_cpu`` uses the same strategy and launcher as ``trainer=ddp`` (two processes, gloo on CPU): rank 0
relaunches rank 1 into exactly its job. One real two-job sweep (module fixture, with CSV and W&B offline combined)
feeds every check, so the suite pays for DDP and W&B once: each job's files, each test subject once across the two
ranks, the synced logged Dice, no process left behind, the same per-subject metrics as a single-process test of the
same checkpoint, and one W&B run per job holding only that job's config, scalars, overlays and test table.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_config
from hydra.utils import instantiate

from mutual_seg.run import train
from mutual_seg.runtime.ddp import DIST_ENV_VARS, JobDDPStrategy, ddp_job, job_command

# Two validation subjects (one per rank) out of each fold of 2 on the ten tiny subjects: 5 test, 2 val, 3 train.
TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "~callbacks.progress_bar", "data.num_workers=0",
        "data.cache_workers=0", "n_folds=2", "model.net.features=[4,8,16]", "data.split.val_fraction=0.3",
        "trainer.enable_model_summary=false", "model.net.output_prior=0.5"]  # as conftest's tiny runs


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (the sweep's unique folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def ddp_sweep(tiny_data, tmp_path_factory) -> tuple[Path, list[Path], subprocess.CompletedProcess]:
    """The two-job DDP sweep (``-m`` last); returns its log folder, the job folders (fold 0, 1) and the process."""
    logs = tmp_path_factory.mktemp("ddp_sweep")
    # No W&B credentials (a fresh HOME, no WANDB_API_KEY): logger.wandb.mode=auto must choose offline, no network.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"HOME": str(logs / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "mutual_seg.run", "fold=0,1", "trainer=ddp_cpu", "logger=[csv,wandb]",
         f"data.layout.root={tiny_data}", f"paths.log_dir={logs}", f"paths.cache_dir={logs}/cache", *TINY, "-m"],
        capture_output=True, text=True, timeout=600, check=False, env=env)
    jobs = sorted(p.parent for p in logs.glob("train/multiruns/*/*/summary.json"))
    return logs, jobs, result


def _fold_test_ids(tiny_data: Path, tmp_path: Path, fold: int) -> list[str]:
    cfg = compose_config([f"fold={fold}", "data.split.val_fraction=0.3"], tiny_data, tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    return sorted(c.id for c in datamodule.subjects["test"])


def test_ddp_and_ddp_cpu_use_the_project_strategy(tmp_path):
    for choice, accelerator in (("ddp", "gpu"), ("ddp_cpu", "cpu")):
        cfg = compose_config([f"trainer={choice}"], tmp_path / "data", tmp_path / "run")
        assert (cfg.trainer.accelerator, cfg.trainer.devices) == (accelerator, 2)
        assert cfg.trainer.strategy._target_ == f"{JobDDPStrategy.__module__}.{JobDDPStrategy.__name__}"


def test_each_job_of_the_sweep_tests_each_subject_once_on_two_ranks(ddp_sweep, tiny_data, tmp_path):
    _logs, jobs, result = ddp_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(jobs) == 2 and result.stderr.count("MEMBER: 2/2") == 2  # rank 1 joined in each job
    for fold, job in enumerate(jobs):
        summary = json.loads((job / "summary.json").read_text())
        assert (summary["status"], summary["fold"], summary["world_size"]) == ("ok", fold, 2)
        # 5 test subjects on 2 ranks: 3 + 2, none padded (a duplicate would show) or lost
        assert sorted(r["subject"] for r in _rows(job / "metrics.csv")) == _fold_test_ids(tiny_data, tmp_path, fold)
        assert (job / "config.yaml").is_file() and (job / "checkpoints" / "best.ckpt").is_file()
        assert sorted(p.name for p in job.glob("*.log")) == ["run.log"]  # rank 1 wrote no log file
    assert (jobs[0].parent / "sweep_summary.csv").is_file()


def test_logged_test_dice_is_the_mean_over_both_ranks(ddp_sweep):
    _, jobs, _ = ddp_sweep
    for job in jobs:
        dices = [float(r["Dc"]) for r in _rows(job / "metrics.csv")]
        logged = [float(r["test/dice"]) for r in _rows(job / "csv" / "metrics.csv") if r.get("test/dice")]
        assert len(logged) == 1 and logged[0] == pytest.approx(sum(dices) / len(dices), abs=1e-6)


def test_no_rank_process_is_left_after_the_sweep(ddp_sweep):
    logs, _, _ = ddp_sweep
    assert _processes_mentioning(str(logs)) == []


def test_single_process_run_gives_the_same_per_subject_metrics(ddp_sweep, tiny_data, tmp_path):
    logs, jobs, _ = ddp_sweep
    ckpt = json.loads((jobs[0] / "summary.json").read_text())["checkpoint"]
    single = tmp_path / "single"
    cfg = compose_config(["train=false", f"ckpt_path='{ckpt}'", "data.split.val_fraction=0.3"], tiny_data, single)
    cfg.paths.cache_dir = str(logs / "cache")  # the sweep's cache: nothing to preprocess again
    train(cfg)
    ddp_rows, single_rows = _rows(jobs[0] / "metrics.csv"), _rows(single / "metrics.csv")
    assert [r["subject"] for r in ddp_rows] == [r["subject"] for r in single_rows]
    for a, b in zip(ddp_rows, single_rows):
        for name in a:
            if name != "subject":
                assert float(a[name]) == pytest.approx(float(b[name]), rel=1e-6, abs=1e-9), (a["subject"], name)


def test_each_job_has_its_own_offline_wandb_run_with_its_config_overlays_and_table(ddp_sweep):
    _, jobs, result = ddp_sweep
    runs = [sorted(job.glob("wandb/offline-run-*")) for job in jobs]
    assert [len(r) for r in runs] == [1, 1] and runs[0][0].name != runs[1][0].name
    assert (result.stdout + result.stderr).count("wandb sync ") >= 2  # each job says where its offline run is and how to upload it
    for fold, (run,) in enumerate(runs):
        (record,) = run.glob("*.wandb")
        data = record.read_bytes()
        # its own name and tags; the other job's never (job 2 did not log into job 1's run, nor the reverse)
        assert f"flair_t2w_fold{fold}".encode() in data and f"fold{1 - fold}".encode() not in data
        for key in (b"mutual_seg.lit.SegModule", b"train/loss_epoch", b"val/dice", b"lr-Adam", b"test/Dc_mean",
                    b"model:mutual", b"fusion:mutual_modality"):
            assert key in data, key  # whole config, scalars, learning rate, test means, tags
        images = {p.name.rsplit("_", 2)[0] for p in (run / "files" / "media" / "images").glob("val_overlay/*/*.png")}
        assert images == {"flair", "t2w", "attention_flair", "attention_t2w"}
        assert len(list((run / "files" / "media" / "images" / "mask").rglob("*.mask.png"))) >= 4  # truth + prediction
        (table,) = (run / "files" / "media" / "table" / "test").glob("subjects_*.table.json")
        content = json.loads(table.read_text())
        assert content["columns"][0] == "subject" and len(content["data"]) == 5


class _Overrides:
    def __init__(self, task, hydra):
        self.task, self.hydra = task, hydra


class _HydraCfg:  # the three fields job_command reads from HydraConfig.get()
    def __init__(self, task, hydra, output_dir):
        self.overrides = _Overrides(task, hydra)
        self.runtime = type("R", (), {"output_dir": output_dir})()


def test_rank_command_replays_only_its_own_job_in_run_mode():
    folder = '/out/multiruns/t/fold=1,modality=flair,name="x"'
    cfg = _HydraCfg(["fold=1", "modality=flair"], ["hydra.mode=MULTIRUN", "hydra.sweep.dir=/s", "hydra.verbose=true",
                                                   "hydra/launcher=slurm"], folder)
    command = job_command(1, cfg)
    args = command[3:]  # python -m mutual_seg.run (pytest's __main__ has no spec: the script path instead)
    if command[1] != "-m":
        args = command[2:]
    assert "-m" not in args and "--multirun" not in args
    assert args[:3] == ["fold=1", "modality=flair", "hydra.verbose=true"]
    assert not any(a.startswith(("hydra.mode", "hydra.sweep", "hydra/launcher")) for a in args)
    assert 'hydra.run.dir="/out/multiruns/t/fold=1,modality=flair,name=\\"x\\""' in args
    assert "hydra.output_subdir=null" in args and "hydra/job_logging=stdout" in args
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(args)  # Hydra reads it back as one string, no sweep
    assert not any(o.is_sweep_override() for o in parsed)
    assert [o.value() for o in parsed if o.key_or_group == "hydra.run.dir"] == [folder]


def test_job_end_clears_what_a_launcher_left_in_the_environment(monkeypatch):
    for key in DIST_ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")  # set before the job (e.g. by the user): kept
    with ddp_job():
        os.environ.update(LOCAL_RANK="0", MASTER_PORT="12345", WORLD_SIZE="2", NODE_RANK="0", MASTER_ADDR="127.0.0.1")
    assert [k for k in DIST_ENV_VARS if k in os.environ] == ["MASTER_ADDR"] and os.environ["MASTER_ADDR"] == "10.0.0.1"
    with pytest.raises(RuntimeError), ddp_job():
        os.environ["LOCAL_RANK"] = "0"
        raise RuntimeError("a crash mid-job")
    assert "LOCAL_RANK" not in os.environ


def test_ddp_on_a_machine_without_two_gpus_exits_2_with_one_line(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has 2 GPUs")
    result = subprocess.run([sys.executable, "-m", "mutual_seg.run", "trainer=ddp", f"paths.log_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()
    assert len(last) == 1 and "trainer=ddp_cpu" in last[0] and "trainer.devices=" in last[0], last
    assert f"this machine has {torch.cuda.device_count()}" in last[0]
