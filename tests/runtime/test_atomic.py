"""Atomic writes: the earlier file survives a failed write, and OS failures become one line naming the path."""

from __future__ import annotations

import errno
import os

import pytest

from mutual_seg.atomic import atomic_write, atomic_write_text, output_error
from mutual_seg.errors import OutputError


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "summary.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_failed_write_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "metrics.csv"
    atomic_write_text(target, "earlier")

    def broken(handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*metrics.csv: the disk is full"):
        atomic_write(target, broken)
    assert target.read_text() == "earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="ro"):
            atomic_write_text(folder / "x.txt", "x")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_output_error_messages(code, words):
    err = output_error("/runs/a/best.ckpt", OSError(code, os.strerror(code)))
    assert "/runs/a/best.ckpt" in str(err) and words in str(err) and "\n" not in str(err)
