"""Keep freed tensor memory in the process instead of handing it back to the kernel (glibc ``mallopt``).

Why: a CPU training step allocates and frees activations of tens of MB each. glibc's malloc serves blocks that
large from fresh ``mmap`` pages (or trims its heap once they are freed), so the next step pays a page fault per
4 KiB page while the kernel zeroes them: on 2 cores that was about a fifth of a 240 x 240 training step of the
dual model (``sys`` time; docs/performance.md). PyTorch's CPU tuning guide answers the same with jemalloc or
tcmalloc; three ``mallopt`` settings get most of it without another library:

- ``M_MMAP_THRESHOLD``: blocks up to this size come from the heap, not from fresh ``mmap`` pages (glibc caps
  it at 32 MiB on 64-bit systems; larger blocks stay on ``mmap``);
- ``M_TRIM_THRESHOLD``: free memory at the top of the heap is handed back only beyond this;
- ``M_TOP_PAD``: the heap grows by this much more than asked, so it grows less often.

Results do not change (allocation only); the price is that resident memory stays near its peak. Settings live
in conf/config.yaml (``malloc``); ``mutual-seg-predict`` reads the same node.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Mapping
from typing import Any

from mutual_seg.errors import ConfigError

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MIB = 1 << 20
_KEYS = ("keep_freed_memory", "mmap_threshold_mb", "trim_threshold_mb", "top_pad_mb")


def _glibc() -> Any | None:
    """The C library if it is glibc (it has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl and macOS lack it)
        return libc
    except (OSError, AttributeError):
        return None


def tune_malloc(settings: Mapping[str, Any] | None) -> bool:
    """Apply ``settings`` (the ``malloc`` node of conf/config.yaml) to this process and its forked children.

    Returns:
        True if the settings were applied; False if switched off, or where the C library is not glibc
        (macOS, musl, Windows: nothing to tune there, the run goes on as it is).

    Raises:
        ConfigError: an unknown key or a size that is not a positive number of MiB.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(_KEYS))
    if unknown:
        raise ConfigError(f"malloc has unknown key(s) {unknown}; valid: {', '.join(_KEYS)}")
    if not settings.get("keep_freed_memory", False):
        return False
    sizes = {}
    for key in _KEYS[1:]:
        value = settings.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"malloc.{key} must be a positive whole number of MiB, got {value!r}")
        sizes[key] = value * _MIB
    libc = _glibc()
    if libc is None:
        return False
    applied = [libc.mallopt(_M_MMAP_THRESHOLD, min(sizes["mmap_threshold_mb"], 32 * _MIB)),
               libc.mallopt(_M_TRIM_THRESHOLD, min(sizes["trim_threshold_mb"], 2**31 - 1)),
               libc.mallopt(_M_TOP_PAD, min(sizes["top_pad_mb"], 2**31 - 1))]
    if not all(applied):
        log.warning("glibc refused some malloc settings (%s); running with its defaults for those", applied)
    return all(applied)
