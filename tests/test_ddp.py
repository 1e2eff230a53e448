"""A real two-process DDP run on CPU (gloo, ``trainer=ddp_cpu``, i.e. ``ddp_spawn``) through ``run.train``.

Under ``ddp_spawn`` fitting and testing happen in worker processes and the module in this process never sees the
test rows, so everything is checked on the files rank 0 wrote: ``metrics.csv``/``summary.json`` and the CSV
logger's ``csv/metrics.csv`` (where the synced ``test/dice`` lands).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import compose_config
from hydra.utils import instantiate

from mutual_seg.run import train

# Two validation subjects (one per rank) out of fold 0 of 2 on the ten tiny subjects: 5 test, 2 val, 3 train.
DDP_OVERRIDES = ["trainer=ddp_cpu", "logger=csv", "trainer.limit_train_batches=1", "data.split.val_fraction=0.3"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ddp_run(tiny_data, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    """One DDP fit (one step) + test; returns its folder, train()'s summary and the fold's test subject ids."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    cfg = compose_config(DDP_OVERRIDES, tiny_data, out)
    datamodule = instantiate(cfg.data)
    datamodule.setup()  # in this process: only to know the fold's test subjects
    expected = sorted(c.id for c in datamodule.subjects["test"])
    summary = train(cfg)
    return out, summary, expected


def test_ddp_cpu_config_is_two_processes_with_spawn(tmp_path):
    cfg = compose_config(DDP_OVERRIDES, tmp_path / "data", tmp_path / "run")
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy) == ("cpu", 2, "ddp_spawn")


def test_every_test_subject_appears_exactly_once(ddp_run):
    out, summary, expected = ddp_run
    rows = _rows(out / "metrics.csv")
    assert sorted(r["subject"] for r in rows) == expected  # 5 subjects on 2 ranks: 3 + 2, none padded or lost
    assert summary["n_subjects"] == len(expected) == json.loads((out / "summary.json").read_text())["n_subjects"]
    assert Path(summary["checkpoint"]).name == "best.ckpt"  # the best path came back from the fit workers


def test_logged_test_dice_is_the_mean_of_the_per_subject_dice(ddp_run):
    out, summary, _ = ddp_run
    dices = [float(r["Dc"]) for r in _rows(out / "metrics.csv")]
    logged = [float(r["test/dice"]) for r in _rows(out / "csv" / "metrics.csv") if r.get("test/dice")]
    assert len(logged) == 1
    mean = sum(dices) / len(dices)
    assert logged[0] == pytest.approx(mean, abs=1e-6)  # synced over both ranks, not one rank's share
    assert summary["metrics"]["Dc"]["mean"] == pytest.approx(mean, abs=1e-12)
    assert len(set(dices)) > 1  # the comparison is not between constants


def test_single_process_run_gives_the_same_per_subject_metrics(ddp_run, tiny_data, tmp_path):
    out, summary, _ = ddp_run
    single = tmp_path / "single"
    cfg = compose_config(["train=false", f"ckpt_path={summary['checkpoint']}", "data.split.val_fraction=0.3"],
                         tiny_data, single)
    cfg.paths.cache_dir = str(out / "cache")  # the DDP run's cache: nothing to preprocess again
    train(cfg)
    ddp_rows, single_rows = _rows(out / "metrics.csv"), _rows(single / "metrics.csv")
    assert [r["subject"] for r in ddp_rows] == [r["subject"] for r in single_rows]
    for a, b in zip(ddp_rows, single_rows):
        for name in a:
            if name != "subject":
                assert float(a[name]) == pytest.approx(float(b[name]), rel=1e-6, abs=1e-9), (a["subject"], name)
