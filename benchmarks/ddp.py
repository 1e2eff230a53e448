"""2-process DDP against one process: training samples/s of ``python -m mutual_seg.run`` as a user runs it.

Each setting runs the real command twice, for ``n1`` and ``n2`` training batches per process (one epoch, no test);
the difference of the two wall times is the time of ``n2 - n1`` training steps, so start-up, caching, validation
and the end of the run cancel out. Samples/s = processes x (n2 - n1) x batch / (t2 - t1).

``bench.py`` calls it on a machine with 2 GPUs (``trainer=gpu`` against ``trainer=ddp``); its smoke mode runs the
same on the CPU (``trainer=cpu`` against ``trainer=ddp_cpu``, gloo) to check the measurement itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MIN_SECONDS = 2.0  # the least difference of the two wall times that is read as training time, not jitter
BATCH = 16  # data.batch_size for both runs, set on the command line so that samples/s needs no config read


def run_seconds(root: Path, work: Path, trainer: str, batches: int, extra: tuple[str, ...] = ()) -> float:
    """Wall seconds of one ``mutual_seg.run`` with ``batches`` training batches per process (one epoch, no test)."""
    name = f"{trainer}_{batches}"
    command = [sys.executable, "-m", "mutual_seg.run", f"trainer={trainer}", f"data.layout.root={root}",
               f"paths.log_dir={work / 'logs'}", f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={work / name}",
               "test=false", "logger=none", "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}",
               f"data.batch_size={BATCH}", "~callbacks.progress_bar", "overwrite=true", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{trainer} with {batches} batches failed: {tail[0][:300]}")
    return seconds


def ddp_speedup(root: Path, work: Path, single: str, ddp: str, batches: tuple[int, int],
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Samples/s of ``trainer=single`` (1 process) and ``trainer=ddp`` (2 processes), and their ratio."""
    n1, n2 = batches
    result: dict[str, Any] = {"batch_per_process": BATCH, "batches": [n1, n2]}
    for key, trainer, processes in (("single", single, 1), ("ddp", ddp, 2)):
        run_seconds(root, work, trainer, n1, extra)  # warm-up: the cache is filled, imports are in the page cache
        t1, t2 = run_seconds(root, work, trainer, n1, extra), run_seconds(root, work, trainer, n2, extra)
        # steps cheaper than the start-up's jitter (the smoke mode's tiny net) leave nothing to measure
        rate = processes * (n2 - n1) * BATCH / (t2 - t1) if t2 - t1 >= MIN_SECONDS else None
        result[key] = {"trainer": trainer, "processes": processes, "seconds": [round(t1, 1), round(t2, 1)],
                       "samples_per_s": round(rate, 1) if rate is not None else None}
    rates = result["single"]["samples_per_s"], result["ddp"]["samples_per_s"]
    result["speedup"] = round(rates[1] / rates[0], 2) if None not in rates else None
    return result
