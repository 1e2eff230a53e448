"""Data figures: loader slices/s from the cache (with and without augmentation), preprocessing time and cache
size per subject, and the loader's resident memory against cohort size.

Memory is measured in a fresh process per cohort (``python benchmarks/loader.py scale ROOT CACHE OUT``) so that
each figure is that cohort's own: the cache is memory-mapped, so a larger cohort should not need more memory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import children_pids, children_rss_mb, current_rss_mb, peak_rss_mb


def build_datamodule(root: Path, cache: Path, workers: int, overrides: tuple[str, ...] = ()):
    """The run's data module (Hydra compose of conf/), on ``root`` with its cache in ``cache``."""
    from hydra.utils import instantiate

    from mutual_seg.config import compose

    cfg = compose([f"data.layout.root={root}", f"paths.cache_dir={cache}", f"data.num_workers={workers}",
                   "data.cache_workers=0", "paths.output_dir=/tmp", "n_folds=2", *overrides])
    return instantiate(cfg.data)


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def preprocess(root: Path, cache: Path) -> dict[str, Any]:
    """Fill a fresh cache for ``root`` in this process; seconds and bytes per subject."""
    dm = build_datamodule(root, cache, workers=0)
    n = len(dm.find_subjects())
    start = time.perf_counter()
    dm.cache.prepare(dm.find_subjects(), dm.modalities, progress=False)
    elapsed = time.perf_counter() - start
    return {"subjects": n, "s_per_subject": round(elapsed / n, 3), "cache_mb_per_subject": round(dir_size(cache) / n / 2**20, 2)}


def loader_rate(root: Path, cache: Path, workers: int, augment: str, seconds: float,
                device: str = "cpu") -> dict[str, Any]:
    """Training slices/s of the run's loader (batch and selection from conf/data) over about ``seconds``.

    ``augment``: ``off``; ``loader`` (per slice in the workers, ``data.augment_on: loader``); or ``device``
    (``data.augment_on: device``: the loader only reads, and each batch is moved to ``device`` and augmented
    there, as the data module's ``on_after_batch_transfer`` does on the training device).
    """
    from mutual_seg.data.augment_batch import batch_augment

    dm = build_datamodule(root, cache, workers, overrides=(f"data.augment_on={'device' if augment == 'device' else 'loader'}",))
    dm.setup("fit")
    loader = torch.utils.data.DataLoader(dm.train_dataset(augment=augment != "off"), batch_size=dm.batch_size,
                                         shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # warm-up: workers start, memory maps open
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        if augment == "device":
            image, label = batch["image"].to(device), batch["label"].to(device)
            batch["image"], batch["label"] = batch_augment(dm.augment, image, label)
        count += batch["image"].shape[0]
    if device != "cpu":
        torch.cuda.synchronize()
    rate = count / (time.perf_counter() - start)
    shape = list(batch["image"].shape[1:])
    return {"workers": workers, "augment": augment, "slices_per_s": round(rate, 1), "slices": count,
            "slice_shape": shape, "batch_size": dm.batch_size, "device": device if augment == "device" else "cpu"}


def scale(root: Path, cache: Path, batches: int, workers: int = 2, max_open: int | None = None) -> dict[str, Any]:
    """Resident memory of a training loader (this process and its ``workers``) after reading ``batches`` batches
    drawn across the whole cohort, as the run's loader reads them (conf/data: batch, selection, open-map cap;
    ``max_open`` replaces the cap, e.g. a cap above the cohort size to show memory without one).

    Memory-mapped pages a process has touched count in its resident memory (RSS) while the map is open, so
    the figure is the sum of the RSS of this process and of each worker, taken while the workers are alive.
    """
    base = current_rss_mb()
    prep = preprocess(root, cache)
    cap = (f"data.slices.max_open_subjects={max_open}",) if max_open else ()
    dm = build_datamodule(root, cache, workers=workers, overrides=cap)
    dm.setup("fit")
    before = current_rss_mb()
    dataset = dm.train_dataset(augment=False)
    # a fixed random order over every training slice: the subjects read are known, the run is repeatable
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: batches * dm.batch_size]
    loader = torch.utils.data.DataLoader(dataset, batch_size=dm.batch_size, sampler=order.tolist(),
                                         num_workers=workers, persistent_workers=workers > 0)
    seen = 0
    earlier = children_pids()  # not the loader's: only its own workers are counted
    it = iter(loader)
    for batch in it:
        seen += batch["image"].shape[0]
    own, children = current_rss_mb(), children_rss_mb(exclude=earlier)
    del it, loader  # the workers end
    subjects_read = len({dataset.index[int(i)][0] for i in order})
    return {"subjects": prep["subjects"], "train_subjects": len(dm.subjects["train"]),
            "subjects_read": subjects_read, "slices_read": seen, "workers": workers,
            "max_open_subjects": dataset.max_open_subjects,
            "rss_after_imports_mb": round(base, 1), "rss_before_loading_mb": round(before, 1),
            "rss_after_loading_mb": round(own, 1), "workers_rss_mb": [round(c, 1) for c in children],
            "loader_rss_mb": round(own + sum(children), 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "preprocess_s_per_subject": prep["s_per_subject"], "cache_mb_per_subject": prep["cache_mb_per_subject"]}


if __name__ == "__main__":  # python benchmarks/loader.py scale ROOT CACHE BATCHES WORKERS MAX_OPEN|0 OUT
    if sys.argv[1] == "scale":
        root, cache, batches, workers, max_open = (Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]),
                                                   int(sys.argv[5]), int(sys.argv[6]))
        out = Path(sys.argv[7])
        out.write_text(json.dumps(scale(root, cache, batches, workers, max_open or None), indent=2) + "\n")
