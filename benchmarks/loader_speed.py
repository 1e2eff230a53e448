"""Loader throughput from the volume cache: training slices per second, with and without augmentation.

Usage: python benchmarks/loader_speed.py [--data data/synthetic] [--seconds 20] [--workers 0 2]
Writes benchmarks/results/loader_speed.json and .md, stating the hardware with each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from mutual_seg.config import CONFIG_DIR, register_resolvers


def hardware() -> str:
    """A short description of where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}"


def build_datamodule(data_root: Path, cache_dir: Path, workers: int):
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"data.layout.root={data_root}", f"paths.cache_dir={cache_dir}",
                                           f"data.num_workers={workers}", "paths.output_dir=/tmp", "n_folds=2"])
    return instantiate(cfg.data)


def measure(loader, seconds: float) -> tuple[float, int]:
    """Slices per second over about ``seconds`` of iteration (after one warm-up batch)."""
    it = iter(loader)
    next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/mutual_seg"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    for workers in args.workers:
        dm = build_datamodule(args.data.resolve(), args.cache.resolve(), workers)
        dm.prepare_data()
        dm.setup("fit")
        for augment in (False, True):
            loader = torch.utils.data.DataLoader(dm.train_dataset(augment=augment), batch_size=dm.batch_size,
                                                 shuffle=True, num_workers=workers)
            rate, n = measure(loader, args.seconds)
            shape = tuple(dm.train_dataset(augment=False)[0]["image"].shape)
            rows.append({"workers": workers, "augment": augment, "slices_per_s": round(rate, 1), "slices": n,
                         "slice_shape": list(shape), "batch_size": dm.batch_size})
            print(rows[-1])
    result = {"benchmark": "loader_speed", "hardware": hardware(), "data": str(args.data), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loader_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Loader throughput from the cache ({result['hardware']}; data {args.data})", "",
             "| workers | augmentation | slices/s | slice [I, H, W] | batch |", "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {'on' if r['augment'] else 'off'} | {r['slices_per_s']} | {r['slice_shape']} | "
              f"{r['batch_size']} |" for r in rows]
    (args.out / "loader_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
