"""Where the figures were measured, how busy the machine was, and its measured matrix-multiply peak.

The CPU may be shared with other work, so the load average is recorded at the start and at the end of a
run: a figure measured under load is a lower bound, and the reader can see how much load there was.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (runnable processes; above the core count means contention)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """CPU model, cores this process may use, torch threads and versions, date (UTC), GPU name or None."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": usable,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident memory now, in MB (from /proc/self/statm; the peak where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def children_pids(pid: int | None = None) -> frozenset[int]:
    """Ids of the direct children of ``pid`` (default: this process) now, found by their parent id in
    /proc/<child>/stat; empty where /proc is unavailable."""
    pid = os.getpid() if pid is None else pid
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name (field 2) may hold spaces: the parent id is the second field after its ')'
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return frozenset(found)


def children_rss_mb(pid: int | None = None, exclude: frozenset[int] = frozenset()) -> list[float]:
    """Resident memory in MB of each direct child of ``pid`` (default: this process), e.g. loader workers, from
    /proc/<child>/status (VmRSS). ``exclude``: child ids to leave out (children that were there before, e.g.
    another library's helper process when the measurement runs inside a larger program)."""
    sizes = []
    for child in sorted(children_pids(pid) - exclude):
        try:
            status = (Path("/proc") / str(child) / "status").read_text().splitlines()
            sizes.append(int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024)
        except (OSError, ValueError, IndexError, StopIteration):
            continue  # the process ended meanwhile
    return sizes


def matmul_peak(seconds: float, size: int = 2048, device: str = "cpu") -> dict[str, Any]:
    """Float32 matrix-multiply rate, the best of repeated [size, size] products over about ``seconds``.

    This is the ceiling the network's convolutions (lowered to matrix products) can approach on this
    machine with this torch build, measured in the same run so that load affects both alike.

    Returns:
        ``{"gflops": best GFLOP/s, "size": size, "dtype": "float32", "repeats": n}``.
    """
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)  # warm-up (thread pool, caches)
    best, repeats, start = 0.0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or repeats < 3:
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 / (time.perf_counter() - t0) / 1e9)
        repeats += 1
    return {"gflops": round(best, 1), "size": size, "dtype": "float32", "repeats": repeats}
