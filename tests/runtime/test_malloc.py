"""mutual_seg/runtime/malloc.py: the settings reach glibc, bad settings are one clear error, off is off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mutual_seg.errors import ConfigError
from mutual_seg.runtime.malloc import _glibc, tune_malloc

ON = {"keep_freed_memory": True, "mmap_threshold_mb": 32, "trim_threshold_mb": 2047, "top_pad_mb": 64}

# A child process allocates four 24 MiB blocks (as a training step holds several activations) and frees them, again
# and again. glibc's defaults give the freed heap back to the kernel once more than about twice the largest block
# is free, so every round faults its pages in afresh (one minor fault per 4 KiB page); with the settings it is kept.
CHILD = """
import resource, sys
import numpy as np
from mutual_seg.runtime.malloc import tune_malloc
applied = tune_malloc({settings})
def round_():
    blocks = [np.ones(3 << 20) for _ in range(4)]  # 4 x 24 MiB
    del blocks
for _ in range(3):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round_()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(settings) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(settings=settings)], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(_glibc() is None, reason="not glibc: nothing to tune")
def test_kept_memory_removes_the_page_faults_of_repeated_large_blocks():
    applied, kept = _faults(ON)
    off, fresh = _faults({**ON, "keep_freed_memory": False})
    assert applied == "True" and off == "False"
    assert fresh > 10_000, fresh  # glibc 2.36 here: about 2,000 fresh pages (8 MiB) per round
    assert kept < 500, (kept, fresh)  # none here


@pytest.mark.parametrize(("settings", "message"), [
    ({**ON, "top_pad": 1}, r"malloc has unknown key\(s\) \['top_pad'\]"),
    ({**ON, "mmap_threshold_mb": 0}, r"malloc.mmap_threshold_mb must be a positive whole number of MiB, got 0"),
    ({**ON, "trim_threshold_mb": "big"}, r"malloc.trim_threshold_mb must be .* got 'big'"),
])
def test_bad_settings_are_one_clear_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        tune_malloc(settings)


def test_switched_off_or_absent_does_nothing():
    assert tune_malloc(None) is False
    assert tune_malloc({"keep_freed_memory": False}) is False
