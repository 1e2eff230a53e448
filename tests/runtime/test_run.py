"""The entry point end to end on the tiny synthetic set: Hydra compose -> Lightning fit/test -> result files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.run import train


def test_two_step_run_writes_metrics_csv_and_summary_json(make_cfg, tmp_path):
    cfg = make_cfg(["trainer.limit_train_batches=2"])
    summary = train(cfg)
    out = tmp_path / "run"
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["subject", *METRIC_NAMES]
    assert len({r["subject"] for r in rows}) == len(rows) == summary["n_subjects"] == 5  # fold 0 of 2, 10 subjects
    saved = json.loads((out / "summary.json").read_text())
    assert set(saved["metrics"]) == set(METRIC_NAMES)
    assert all({"mean", "std"} <= set(v) for v in saved["metrics"].values())
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "config.yaml").is_file()


def test_checkpoint_alone_rebuilds_the_model_and_its_preprocessing(make_cfg, tmp_path):
    from mutual_seg.checkpoint import load_module

    train(make_cfg(["trainer.limit_train_batches=1", "test=false"]))
    module = load_module(tmp_path / "run" / "checkpoints" / "last.ckpt")  # weights_only: nothing unpickled
    assert module.hparams.modalities == ["flair", "t2w"]
    assert module.hparams.preprocessing["normalization"] == "minmax"
    assert module.net.modalities == ("flair", "t2w")


def test_checkpoint_from_another_modality_set_is_refused(make_cfg, tmp_path):
    from mutual_seg.errors import CheckpointError

    train(make_cfg(["trainer.limit_train_batches=1", "test=false"]))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="modalities"):
        train(make_cfg(["modality=flair", "train=false", f"ckpt_path={ckpt}"], out="test"))


def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mutual_seg.run", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.parametrize(
    ("override", "expected"),
    [("modality=flair_t2", "valid modality choices"), ("model=transformer", "valid model choices")],
)
def test_unknown_group_choice_exits_2_with_one_line(override, expected):
    result = _cli(override)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


@pytest.mark.parametrize(
    ("override", "start", "detail"),
    [
        # raised while Hydra instantiates the network inside the module: Hydra wraps it twice
        ("model.net.fusion.reading=sideways", "error: unknown mutual attention reading 'sideways'", "modality, token"),
        # raised when the module itself is built
        ("module.min_component_mm3=-5", "error: module.min_component_mm3 must be >= 0", "-5"),
    ],
)
def test_bad_setting_raised_while_building_exits_2_with_one_line(tiny_data, tmp_path, override, start, detail):
    result = _cli(override, f"data.layout.root={tiny_data}", f"paths.log_dir={tmp_path}", "logger=none")
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(start) and detail in last


def test_missing_data_directory_exits_2_and_says_how_to_make_the_synthetic_set(tmp_path):
    result = _cli(f"paths.data_dir={tmp_path}/nowhere", f"paths.log_dir={tmp_path}/logs", "logger=none")
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "mutual_seg.data.synthetic" in last


def test_short_training_beats_an_all_zero_prediction_on_held_out_subjects(make_cfg, tmp_path):
    # Every tiny synthetic subject holds a tumour, so predicting nothing scores Dice 0 on each test subject.
    summary = train(make_cfg([
        "trainer.max_epochs=6", "trainer.limit_train_batches=15", "data.batch_size=8",
        "optim.optimizer.lr=0.003", "model.net.features=[8,16,32]", "module.min_component_mm3=200",
    ]))
    with open(tmp_path / "run" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary["n_subjects"] == 5  # fold 0 of 2 over 10 subjects
    assert summary["metrics"]["Dc"]["mean"] > 0.4, summary["metrics"]["Dc"]
    assert all(float(r["Dc"]) > 0.1 for r in rows), [r["Dc"] for r in rows]


def test_multirun_writes_one_result_folder_per_job(tiny_data, tmp_path):
    result = _cli(
        "-m", "modality=flair,flair_t2w", f"data.layout.root={tiny_data}", f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={tmp_path}/cache", "trainer=cpu", "logger=none", "trainer.max_epochs=1",
        "trainer.limit_train_batches=1", "~callbacks.progress_bar", "data.num_workers=0", "data.cache_workers=0",
        "n_folds=2", "model.net.features=[4,8,16]", timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # one folder per job, directly in the sweep folder, named by its overrides (paths left out: no nesting)
    jobs = sorted(p.parent for p in tmp_path.glob("train/multiruns/*/*/summary.json"))
    assert len(jobs) == 2 and "modality=flair," in jobs[0].name + "," and "modality=flair_t2w" in jobs[1].name
    assert not any(str(tiny_data.name) in job.name for job in jobs)
    for job, names in zip(jobs, (["flair"], ["flair", "t2w"])):
        assert json.loads((job / "summary.json").read_text())["modalities"] == names
        assert (job / "metrics.csv").is_file() and (job / "checkpoints" / "best.ckpt").is_file()
