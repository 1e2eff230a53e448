"""Resume after a real SIGKILL, reproducible runs, and provenance.json (issue 11, parts 2 and 3)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mutual_seg.errors import OutputError
from mutual_seg.run import train

TINY = ["trainer=cpu", "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
        "trainer.enable_model_summary=false", "~callbacks.progress_bar", "data.num_workers=0", "data.cache_workers=0",
        "data.batch_size=4", "n_folds=2", "model.net.features=[4,8,16]"]


def _command(tiny_data: Path, tmp_path: Path, *extra: str) -> list[str]:
    flags = [e for e in extra if e.startswith("-")]  # Hydra's -m comes before the overrides
    return [sys.executable, "-m", "mutual_seg.run", *flags, *TINY, f"data.layout.root={tiny_data}",
            f"paths.cache_dir={tmp_path}/cache", *(e for e in extra if not e.startswith("-"))]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _kill_when(path_glob: str, root: Path, command: list[str]) -> None:
    """Start ``command``; SIGKILL it (and its children) as soon as a file matching ``path_glob`` appears."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600
    while not list(root.glob(path_glob)):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


@pytest.mark.slow  # three CLI runs, about 60 s on 2 idle cores (3 min on a loaded machine)
def test_killed_multirun_resumes_to_the_same_metrics_and_skips_finished_jobs(tiny_data, tmp_path):
    # A two-job sweep killed once job fold=1 saved its first epoch; the same command + resume=true finishes it.
    sweep = _command(tiny_data, tmp_path, "-m", "fold=0,1", f"paths.log_dir={tmp_path}/logs")
    _kill_when("logs/train/multiruns/*/*fold=1*/checkpoints/last.ckpt", tmp_path, sweep)
    (job0,) = tmp_path.glob("logs/train/multiruns/*/*fold=0*")  # job folders are named by their overrides
    (job1,) = tmp_path.glob("logs/train/multiruns/*/*fold=1*")
    assert (job0 / "summary.json").is_file() and not (job1 / "summary.json").exists()
    finished = {p: p.stat().st_mtime_ns for p in job0.rglob("*")
                if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"}  # Hydra appends to its log
    killed_log = _rows(job1 / "csv" / "metrics.csv")

    resumed = _run([*sweep, "resume=true"])
    assert f"continuing {job1}" in resumed.stdout + resumed.stderr
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # the finished job was skipped, untouched
    assert len(list(tmp_path.glob("logs/train/multiruns/*"))) == 1  # no second sweep folder

    # The same job, never interrupted: identical per-subject test metrics.
    whole = tmp_path / "whole"
    _run(_command(tiny_data, tmp_path, "fold=1", f"hydra.run.dir={whole}"))
    assert (job1 / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    # The CSV log kept the epoch before the kill; it has every epoch once, like the uninterrupted run's.
    log = _rows(job1 / "csv" / "metrics.csv")
    val = [(r["epoch"], r["val/dice"]) for r in log if r.get("val/dice")]
    assert val == [(r["epoch"], r["val/dice"]) for r in _rows(whole / "csv" / "metrics.csv") if r.get("val/dice")]
    assert [r["epoch"] for r in killed_log if r.get("val/dice")] == ["0"] and len(val) == 2


def test_same_config_and_seed_give_identical_results_and_provenance(make_cfg, tmp_path):
    overrides = ["trainer.limit_train_batches=2", "data.augment.affine_prob=1.0"]
    train(make_cfg(overrides, out="a"))
    train(make_cfg(overrides, out="b"))
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()

    provenance = json.loads((a / "provenance.json").read_text())
    assert len(provenance["git"]["commit"]) == 40 and isinstance(provenance["git"]["dirty"], bool)
    assert provenance["packages"]["torch"] and provenance["packages"]["pytorch-lightning"]
    assert provenance["hardware"]["cpu_count"] >= 1
    subjects = provenance["data"]["subjects"]
    assert sorted(subjects["test"]) == sorted(r["subject"] for r in _rows(a / "metrics.csv"))
    assert not set(subjects["train"]) & set(subjects["test"]) and len(provenance["data"]["cache_key"]) == 16
    assert json.loads((b / "provenance.json").read_text())["data"] == provenance["data"]


def test_resumed_run_reaches_the_same_metrics_as_an_uninterrupted_one(make_cfg, tmp_path, caplog):
    # In process (the SIGKILL version above is slow): stop after epoch 0 without testing, then resume=true.
    tiny = ["trainer.max_epochs=2", "trainer.limit_train_batches=2", "logger=csv"]
    train(make_cfg(tiny, out="whole"))
    train(make_cfg([*tiny, "trainer.max_epochs=1", "test=false"], out="cut"))
    (tmp_path / "cut" / "summary.json").unlink()  # as if killed after epoch 0: last.ckpt, no summary
    with caplog.at_level("INFO", logger="mutual_seg.runtime.resume"):
        train(make_cfg([*tiny, "resume=true"], out="cut"))
    assert f"continuing {tmp_path / 'cut'} from {tmp_path / 'cut' / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert (tmp_path / "cut" / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()
    val = [[(r["epoch"], r["val/dice"]) for r in _rows(tmp_path / run / "csv" / "metrics.csv") if r.get("val/dice")]
           for run in ("whole", "cut")]
    assert val[0] == val[1] and len(val[0]) == 2  # the CSV log kept epoch 0


# -- a failed job's folder is a job to rerun (issue 18) -------------------------------------------------------------
def test_a_folder_holding_only_a_failed_summary_is_rerun_without_overwrite(make_cfg, tmp_path):
    from mutual_seg.results import RunFolder, write_failed
    from mutual_seg.runtime.preflight import preflight

    out = tmp_path / "run"
    out.mkdir()
    write_failed(out, {"fold": 0}, "DataError: subject X, file x.nii.gz: truncated; re-export it")
    assert preflight([f"hydra.run.dir={out}"]) == [f"hydra.run.dir={out}"]  # not refused before Hydra
    summary = train(make_cfg(["trainer.limit_train_batches=1", "test=false"]))
    assert summary["status"] == "ok" and summary["error"] is None
    saved = json.loads(RunFolder(out).summary.read_text())
    assert saved["status"] == "ok" and saved["earlier_failure"].startswith("DataError: subject X")
    with pytest.raises(OutputError, match="already holds an earlier run's results"):  # a finished run is guarded
        train(make_cfg(["trainer.limit_train_batches=1", "test=false"]))


def test_a_failed_job_that_left_checkpoints_is_still_guarded(tmp_path):
    from mutual_seg.results import RunFolder, write_failed

    folder = RunFolder(tmp_path)
    write_failed(tmp_path, {"fold": 0}, "killed in epoch 3")
    folder.checkpoints.mkdir()
    folder.last_checkpoint.write_bytes(b"weights")
    with pytest.raises(OutputError, match=r"checkpoints/last.ckpt"):
        folder.guard(resume=False, overwrite=False)
    assert folder.last_checkpoint.read_bytes() == b"weights"
