"""`make bench`: speed and memory of our models beside MONAI's BasicUNet, the data loader, and cohort scale.

Usage: python benchmarks/bench.py [--quick | --smoke] [--work .cache/bench] [--out benchmarks/results]
    [--results-md benchmarks/RESULTS.md]

Self-contained: it generates its own synthetic data under ``--work`` (reused by later runs), measures every
model in a fresh process (so peak memory is each model's own) and writes ``bench.json`` and ``RESULTS.md``.
``--quick`` (``make bench QUICK=1``) takes fewer steps and repeats; ``--smoke`` shrinks everything (for tests).
The machine may be shared: the load average at start and end is part of the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp as ddp_bench
import loader as loader_bench
import report
from machine import load_average, machine, matmul_peak
from rich.console import Console

from mutual_seg.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
console = Console(stderr=True)

# (row name, model config, modality config): the five models of issue 10, all from conf/.
MODELS = [("single", "unet", "flair"), ("unet", "unet", "flair_t2w"), ("concat", "concat", "flair_t2w"),
          ("mutual", "mutual", "flair_t2w"), ("mutual_token", "mutual_token", "flair_t2w")]
# Rows named "default" run conf/ as shipped (module.fast_path: channels_last, fold_batchnorm; float32); the peer
# gets the same switches (module.fast_path.apply / for_inference), so default-against-default is like with like.
PLAIN = ["module.fast_path.channels_last=false", "module.fast_path.fold_batchnorm=false"]
FAST_PATHS = {  # name -> (module.fast_path overrides, precision as trainer.precision)
    "nchw": (PLAIN, "32-true"),  # the plain path: NCHW tensors, BatchNorm kept at inference
    "bf16": ([], "bf16-mixed"),
    "fp16": ([], "16-mixed"),  # GPUs only (trainer.precision=16-mixed); skipped on the CPU
    # data.slices.brain_crop: training slices are the brain-box window (measured on the bench's data), not 240^2
    "brain_crop": ([], "32-true"),
    "brain_crop+bf16": ([], "bf16-mixed"),
}
CROPPED = {"brain_crop", "brain_crop+bf16"}
MODES = {  # what each mode measures; "full" is the default
    "full": {"slice": 240, "shape": (240, 240, 155), "full_subjects": 6, "train_steps": 5, "train_seconds": 20.0,
             "inference_repeats": 2, "loader_seconds": 15.0, "cohorts": (10, 50, 200), "pool": 20,
             "scale_batches": 100, "matmul_seconds": 5.0, "widths": ("default", "demo"), "fast_paths": tuple(FAST_PATHS)},
    "quick": {"slice": 240, "shape": (240, 240, 155), "full_subjects": 4, "train_steps": 2, "train_seconds": 0.0,
              "inference_repeats": 1, "loader_seconds": 4.0, "cohorts": (10, 50, 200), "pool": 10,
              "scale_batches": 40, "matmul_seconds": 2.0, "widths": ("default", "demo"),
              "fast_paths": ("nchw", "bf16", "brain_crop+bf16")},
    "smoke": {"slice": 96, "shape": (96, 96, 40), "full_subjects": 4, "train_steps": 1, "train_seconds": 0.0,
              "inference_repeats": 1, "loader_seconds": 1.0, "cohorts": (4, 8), "pool": 4,
              "scale_batches": 4, "matmul_seconds": 0.5, "widths": ("demo",), "fast_paths": ("bf16", "brain_crop+bf16")},
}
SMALL_SHAPE = (64, 64, 40)  # the reduced-size subjects of the cohort-scale measurement
LOADER_WORKERS = 2  # loader worker processes in the cohort-scale measurement (conf/data's default)


def widths() -> dict[str, list[int]]:
    """The default network width (conf/model) and the demo's (conf/experiment/demo), read from conf/."""
    from mutual_seg.config import compose

    default = compose(["paths.output_dir=/tmp"]).model.net.features
    demo = compose(["experiment=demo", "paths.output_dir=/tmp"]).model.net.features
    return {"default": list(default), "demo": list(demo)}


def device() -> str:
    """Where the model figures are measured: the first GPU if there is one (RESULTS.md says which), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def ddp_setting(mode: dict[str, Any]) -> tuple[str, str, tuple[int, int], tuple[str, ...]] | None:
    """What the DDP comparison runs (``ddp.ddp_speedup``'s arguments): on a machine with 2 GPUs ``trainer=gpu``
    against ``trainer=ddp``; in the smoke mode the same on the CPU with a tiny net; otherwise nothing (2 processes
    on the CPU cores one process already uses measure nothing)."""
    import torch

    if mode is MODES["smoke"]:
        return "cpu", "ddp_cpu", (1, 3), ("model.net.features=[4,8,16]", "data.num_workers=0", "data.cache_workers=0",
                                          "n_folds=4", "data.split.val_fraction=0.67")
    if torch.cuda.device_count() >= 2:
        return "gpu", "ddp", (20, 120), ()
    return None


def child(script: str, args: list[str], out: Path) -> dict[str, Any]:
    """Run ``benchmarks/<script> args`` in a fresh Python and read the JSON it writes to ``out``."""
    done = subprocess.run([sys.executable, str(HERE / script), *args, str(out)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0][:300]}
    return json.loads(out.read_text())


def run_model(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    spec_file = tmp / "spec.json"
    spec_file.write_text(json.dumps(spec))
    return child("models.py", [str(spec_file)], tmp / "model.json")


def make_data(work: Path, mode: dict[str, Any]) -> tuple[Path, Path]:
    """The benchmark's own data: full-size subjects, and a pool of small ones for the cohort scale."""
    from mutual_seg.data.synthetic import generate_dataset

    # one folder per subject count: the quick and the full mode keep their own sets (the generator refuses to
    # write a set over one made with other arguments)
    size = "full" if mode["shape"] == (240, 240, 155) else "smoke"
    full = work / "data" / f"{size}{mode['full_subjects']}"
    generate_dataset(full, mode["full_subjects"], seed=0, shape=mode["shape"], progress=False)
    pool = work / "data" / f"pool{mode['pool']}"
    generate_dataset(pool, mode["pool"], seed=1, shape=SMALL_SHAPE, progress=False)
    return full, pool


def cohort(pool: Path, n: int, dest: Path) -> Path:
    """A UCSF-PDGM-layout folder of ``n`` subjects whose files link to the pool's (cycling through it).

    Each linked subject has its own id and paths, so it is preprocessed and cached on its own; only the
    pixels repeat, which the loader's memory does not depend on.
    """
    sources = sorted(p for p in pool.iterdir() if p.name.endswith("_nifti"))
    shutil.rmtree(dest, ignore_errors=True)
    for i in range(n):
        src = sources[i % len(sources)]
        old, new = src.name[: -len("_nifti")], f"UCSF-PDGM-{i + 1:04d}"
        folder = dest / f"{new}_nifti"
        folder.mkdir(parents=True)
        for f in src.iterdir():
            (folder / f.name.replace(old, new)).symlink_to(f.resolve())
    return dest


def bench_models(mode: dict[str, Any], subject: dict[str, Any], crop: list[int], tmp: Path, where: str,
                 rows: list[dict[str, Any]], save) -> list[dict[str, Any]]:
    """Every model at each width, the matched peer beside the mutual-attention model, then the fast paths.

    The brain crop (training on ``crop`` = [H, W] windows instead of whole slices) is measured for ours and the
    peer at every width; the other fast paths at the first width. Cropped rows measure training only (whole-
    volume inference crops to the brain box on every path already).

    ``where`` is the device the models run on (:func:`device`, decided once per run). Rows are appended to
    ``rows`` and ``save()`` is called after each, so a run cut short keeps what it measured.
    """
    from models import peer_features

    base = {"slice": mode["slice"], "train_steps": mode["train_steps"], "train_seconds": mode["train_seconds"],
            "inference_repeats": mode["inference_repeats"], "subject": subject, "device": where}
    all_widths = widths()
    for width in mode["widths"]:
        features = all_widths[width]
        for name, model, modality in MODELS:
            spec = {**base, "model": model, "modality": modality, "features": features}
            rows.append({"model": name, "width": width, "features": features, "fast_path": "default",
                         **run_model(spec, tmp)})
            console.log(f"{name} ({width}): {rows[-1]}")
            save()
            if name == "mutual" and "parameters" in rows[-1]:
                peer = peer_features(rows[-1]["parameters"], in_channels=2, out_channels=1)
                rows.append({"model": "monai_basicunet", "width": width, "features": peer, "fast_path": "default",
                             **run_model({**spec, "peer_features": peer}, tmp)})
                console.log(f"peer ({width}): {rows[-1]}")
                save()
    runs = [("brain_crop", width) for width in mode["widths"]]
    runs += [(fast, mode["widths"][0]) for fast in mode["fast_paths"] if fast != "brain_crop"
             and (fast != "fp16" or base["device"] == "cuda")]
    for fast, width in runs:
        overrides, precision = FAST_PATHS[fast]
        peer = next((r["features"] for r in rows if r["model"] == "monai_basicunet" and r["width"] == width), None)
        cropped = {"slice": crop, "subject": None} if fast in CROPPED else {}
        for name, extra in (("mutual", {}), ("monai_basicunet", {"peer_features": peer})):
            if name == "monai_basicunet" and peer is None:
                continue
            spec = {**base, "model": "mutual", "modality": "flair_t2w", "features": all_widths[width],
                    "overrides": overrides, "precision": precision, **cropped, **extra}
            rows.append({"model": name, "width": width, "features": extra.get("peer_features") or all_widths[width],
                         "fast_path": fast, **run_model(spec, tmp)})
            console.log(f"{name} ({width}, {fast}): {rows[-1]}")
            save()
    return rows


def crop_window(full: Path, work: Path) -> dict[str, Any]:
    """The training window of ``data.slices.brain_crop`` on the bench's full-size training subjects (conf/data)."""
    dm = loader_bench.build_datamodule(full, work / "cache_full", workers=0, overrides=("data.slices.brain_crop=true",))
    dm.setup("fit")
    dataset = dm.train_dataset(augment=False)
    whole = list(dm.subjects["train"][0].shape[1:])
    return {"window": list(dataset.crop_size), "slice": whole, "train_subjects": len(dm.subjects["train"]),
            "pixel_share": round(dataset.crop_size[0] * dataset.crop_size[1] / (whole[0] * whole[1]), 3)}


def bench_data(mode: dict[str, Any], full: Path, pool: Path, work: Path, tmp: Path, where: str) -> dict[str, Any]:
    cache = work / "cache_full"
    shutil.rmtree(cache, ignore_errors=True)
    prep = loader_bench.preprocess(full, cache)
    console.log(f"preprocessing: {prep}")
    rates = []
    for workers in (0, 2):
        for augment in ("off", "loader", "device"):
            rates.append(loader_bench.loader_rate(full, cache, workers, augment, mode["loader_seconds"], where))
            console.log(f"loader: {rates[-1]}")
    scale = []
    for n in mode["cohorts"]:
        root = cohort(pool, n, work / "cohorts" / str(n))
        scale_cache = work / "cohort_cache" / str(n)
        shutil.rmtree(scale_cache, ignore_errors=True)
        # the run's loader (conf's open-map cap); then, on the largest cohort, the same with no cap for contrast
        caps = [0, n] if n == max(mode["cohorts"]) else [0]
        for cap in caps:
            args = ["scale", str(root), str(scale_cache), str(mode["scale_batches"]), str(LOADER_WORKERS), str(cap)]
            scale.append({"cohort": n, "uncapped": bool(cap), **child("loader.py", args, tmp / "scale.json")})
            console.log(f"cohort {n}{' (no cap)' if cap else ''}: {scale[-1]}")
    return {"preprocessing": prep, "loader": rates, "scale": scale, "scale_subject_shape": list(SMALL_SHAPE)}


def inference_subject(full: Path, work: Path) -> dict[str, Any]:
    """Paths of one cached full-size subject (the first test subject of fold 0) for the inference figures."""
    dm = loader_bench.build_datamodule(full, work / "cache_full", workers=0)
    dm.setup("test")
    s = dm.subjects["test"][0]
    return {"id": s.id, "images": {m: str(p) for m, p in s.images.items()}, "mask": str(s.mask),
            "spacing": list(s.spacing), "shape": list(s.shape)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer steps and repeats (within 10 min on 2 cores)")
    group.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark itself runs")
    parser.add_argument("--work", type=Path, default=Path(".cache/bench"), help="generated data and caches")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder of bench.json")
    parser.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = MODES[name]
    start = time.perf_counter()
    result: dict[str, Any] = {"mode": name, "machine": machine(), "load_average_start": load_average()}
    console.log(f"bench ({name}) on {result['machine']}, load average {result['load_average_start']}")
    work = args.work.resolve()
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONPATH", str(HERE.parent))
    result["device"] = device()
    # a GPU needs larger products than a CPU to reach its peak
    result["matmul_peak"] = matmul_peak(mode["matmul_seconds"], size=2048 if result["device"] == "cpu" else 8192,
                                        device=result["device"])
    console.log(f"matmul peak: {result['matmul_peak']}")
    full, pool = make_data(work, mode)
    result["data"] = bench_data(mode, full, pool, work, tmp, result["device"])
    result["models"] = []

    def save(complete: bool = False) -> None:
        """Write bench.json and RESULTS.md as they stand (``complete`` false: a partial run, said so)."""
        result["complete"] = complete
        result["load_average_end"] = load_average()
        result["wall_s"] = round(time.perf_counter() - start, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "bench.json", json.dumps(result, indent=2) + "\n")
        atomic_write_text(args.results_md, report.render(result))

    result["data"]["brain_crop"] = crop_window(full, work)
    console.log(f"brain crop: {result['data']['brain_crop']}")
    save()
    bench_models(mode, inference_subject(full, work), result["data"]["brain_crop"]["window"], tmp, result["device"],
                 result["models"], save)
    setting = ddp_setting(mode)
    if setting is not None:
        console.log(f"DDP: {setting[0]} against {setting[1]} ...")
        try:
            result["ddp"] = ddp_bench.ddp_speedup(full, work / "ddp", *setting)
        except RuntimeError as err:
            result["ddp"] = {"error": str(err)}
        console.log(f"DDP: {result['ddp']}")
    save(complete=True)
    console.log(f"wrote {args.out / 'bench.json'} and {args.results_md} in {result['wall_s']} s")
    return result


if __name__ == "__main__":
    main()
