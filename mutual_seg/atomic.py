"""Atomic file writes: a temporary name in the destination folder, then ``os.replace``.

Readers (a report, a resumed run, a viewer) never see a half-written file, and a failure leaves the earlier
file intact. A full disk, a read-only folder or a missing permission becomes one ``OutputError`` line that
names the path, instead of a traceback (the command-line entry points turn it into exit code 2).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mutual_seg.errors import OutputError

_HINTS = {
    errno.ENOSPC: "the disk is full; free space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free space or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "permission denied; fix the folder's permissions or write elsewhere",
    errno.EPERM: "operation not permitted; fix the folder's permissions or write elsewhere",
    errno.EFBIG: "the file exceeds the size limit (ulimit -f or the file system's); raise it or write elsewhere",
}


def output_error(path: str | Path, err: OSError) -> OutputError:
    """One-line error for an OS failure while writing ``path``."""
    hint = _HINTS.get(err.errno or -1, f"{err.strerror or type(err).__name__}; check the folder and retry")
    return OutputError(f"cannot write {path}: {hint} (earlier files there are intact)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on failure removed.

    ``suffix`` ends the temporary name, for writers that pick the format by extension (``.partial.nii.gz``).

    Raises:
        OutputError: the folder cannot be created or written (disk full, read-only, permissions).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=suffix)
        os.close(fd)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; results must be readable like any file
    except OSError as err:
        raise output_error(path, err) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise output_error(path, err) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(handle)`` on a binary handle of a temporary file, flush it to disk, then rename onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
