"""A sweep in which jobs fail goes on, says why per job, summarizes itself and exits non-zero at the end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from omegaconf import OmegaConf

from mutual_seg.config import CONFIG_DIR, folder_name
from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.runtime.sweep import _varying

TINY = ["trainer=cpu", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "~callbacks.progress_bar",
        "data.num_workers=0", "data.cache_workers=0", "n_folds=2", "model.net.features=[4,8,16]"]


def test_failed_jobs_do_not_stop_the_sweep_and_the_summary_lists_every_job(tiny_data, tmp_path):
    # job 0: Adam refuses lr < 0 (the job's own check names the key), job 1: fine
    result = subprocess.run(
        [sys.executable, "-m", "mutual_seg.run", "optim.optimizer.lr=-1,0.001",
         f"data.layout.root={tiny_data}", f"paths.log_dir={tmp_path}", f"paths.cache_dir={tmp_path}/cache", *TINY,
         "-m"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 of 2 jobs failed" in result.stderr.strip().splitlines()[-1]
    sweep = next(tmp_path.glob("train/multiruns/*"))
    with open(sweep / "sweep_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["overrides"] for r in rows] == ["optim.optimizer.lr=-1", "optim.optimizer.lr=0.001"]
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert rows[0]["error"] == "optim.optimizer.lr=-1: Invalid learning rate: -1; change that setting"
    assert rows[0]["Dc_mean"] == "" and 0 <= float(rows[1]["Dc_mean"]) <= 1
    assert {f"{n}_{s}" for n in METRIC_NAMES for s in ("mean", "std")} <= set(rows[0])
    jobs = sorted((p.parent for p in sweep.glob("*/summary.json")), key=lambda p: [r["job"] for r in rows].index(p.name))
    failed = json.loads((jobs[0] / "summary.json").read_text())
    assert (failed["status"], failed["fold"], failed["modalities"], failed["model"]) == ("failed", 0, ["flair", "t2w"], "mutual")
    assert "optim.optimizer.lr=-1" in failed["overrides"] and "metrics" not in failed
    assert not (jobs[0] / "metrics.csv").exists() and (jobs[1] / "metrics.csv").is_file()
    markdown = (sweep / "sweep_summary.md").read_text()
    assert markdown.count("\n| ") == 3 and "failed: optim.optimizer.lr=-1: Invalid learning rate: -1; change that setting |" in markdown
    assert "Sweep summary" in result.stdout  # the rich table


def test_summary_overrides_keep_only_what_tells_jobs_apart():
    assert _varying([["a=1", "b=2", "c=3"], ["a=1", "b=3", "c=3"]]) == [["b=2"], ["b=3"]]
    assert _varying([["a=1"]]) == [["a=1"]]


def test_failure_reason_is_one_line():
    from mutual_seg.errors import ConfigError
    from mutual_seg.runtime.job import reason

    user = ConfigError("unknown thing 'x'; valid: a, b")
    assert reason(RuntimeError("wrapped"), user) == "unknown thing 'x'; valid: a, b"
    assert reason(ValueError("first line\nsecond line"), None) == "ValueError: first line"
    assert reason(KeyError(), None) == "KeyError"


def test_long_override_lists_get_a_folder_name_under_the_file_system_limit(tmp_path):
    short = "fold=0,modality=flair"
    assert folder_name(short) == short  # ordinary names stay readable and parseable
    long_a, long_b = "fold=0,+note=" + "é" * 200, "fold=1,+note=" + "é" * 200  # multi-byte: the limit is bytes
    name_a, name_b = folder_name(long_a), folder_name(long_b)
    assert len(name_a.encode()) <= 200 and name_a != name_b and name_a == folder_name(long_a)  # unique, stable
    (tmp_path / name_a).mkdir()  # the file system accepts it
    # and the sweep's job folders use it
    hydra_conf = OmegaConf.load(CONFIG_DIR / "hydra" / "default.yaml")
    assert OmegaConf.to_container(hydra_conf.sweep)["subdir"] == "${folder_name:${hydra.job.override_dirname}}"
