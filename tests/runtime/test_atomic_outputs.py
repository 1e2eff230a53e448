"""Checkpoints and result files survive real write failures: full disk, read-only folder, file-size limit.

The failures are the operating system's own: a tiny tmpfs (needs root to mount; skipped otherwise), the same
remounted read-only, and RLIMIT_FSIZE (works for any user). Each gives one OutputError line naming the path,
and the earlier file is intact.
"""

from __future__ import annotations

import resource
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from mutual_seg.checkpoint import AtomicCheckpointIO
from mutual_seg.errors import OutputError
from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.results import write_results
from mutual_seg.run import train

BIG = {"state_dict": {"w": torch.zeros(200_000)}}  # 800 kB: more than the tmpfs holds


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 kB tmpfs mounted at ``tmp_path / "fs"``."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _earlier(folder: Path) -> Path:
    path = folder / "best.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 3}, path)
    return path


def _intact(path: Path) -> None:
    assert torch.load(path, weights_only=True) == {"epoch": 3}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_full_disk_keeps_the_earlier_checkpoint(tiny_fs):
    path = _earlier(tiny_fs)
    with pytest.raises(OutputError, match=rf"cannot write {path}: the disk is full; .* \(earlier files there are intact\)"):
        AtomicCheckpointIO().save_checkpoint(BIG, path)
    _intact(path)


def test_read_only_folder_keeps_the_earlier_checkpoint(tiny_fs):
    path = _earlier(tiny_fs)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(OutputError, match=rf"cannot write {path}: the file system is read-only"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 4}, path)
    _intact(path)


def test_file_size_limit_keeps_the_earlier_checkpoint(tmp_path):
    path = _earlier(tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(OutputError, match=rf"cannot write {path}: the file exceeds the size limit"):
            AtomicCheckpointIO().save_checkpoint(BIG, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    _intact(path)


def test_result_files_on_a_read_only_folder_keep_the_earlier_ones(tiny_fs):
    rows = [{"subject": "a", **dict.fromkeys(METRIC_NAMES, 0.5)}]
    write_results(rows, tiny_fs)
    before = {p.name: p.read_bytes() for p in tiny_fs.iterdir()}
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(OutputError, match="read-only"):
        write_results(rows * 2, tiny_fs)
    assert {p.name: p.read_bytes() for p in tiny_fs.iterdir()} == before


def test_training_onto_a_full_disk_stops_with_one_line_naming_the_checkpoint(make_cfg, tiny_fs):
    (tiny_fs / "filler").write_bytes(b"\0" * 200_000)  # what is left is less than one checkpoint
    cfg = make_cfg(["trainer.limit_train_batches=1", "test=false", f"callbacks.model_checkpoint.dirpath={tiny_fs}"])
    with pytest.raises(OutputError, match=rf"cannot write {tiny_fs}/(best|last)\.ckpt: the disk is full") as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"]  # no truncated checkpoint
