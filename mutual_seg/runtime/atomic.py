"""Old path of :mod:`mutual_seg.atomic` (moved below ``results`` and ``runtime``, which both write files)."""

from mutual_seg.atomic import (
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    output_error,
)

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "atomic_write_text", "output_error"]
