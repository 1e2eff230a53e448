"""Seconds per full 240 x 240 x 155 subject for `mutual-seg-predict` with the default model.

Times the path ``predict`` takes for one subject (``mutual_seg.predict.batch.predict_subject``): read and
normalize the NIfTI files, predict the brain's slices inside its bounding box, threshold, post-process,
write the segmentation. The network is the default config's (``model=mutual``, ``modality=flair_t2w``)
with untrained weights: speed does not depend on the weights. Writes
``benchmarks/results/predict_speed.{json,md}``; ``make bench`` (issue 10) can call it.

    python benchmarks/predict_speed.py [--data DIR_WITH_UCSF_SUBJECTS] [--repeats 3] [--threads 2] [--precision 32]

``--precision`` takes the command's choices and default (``auto``: bf16 where the CPU has bf16 units);
the results file is named after the precision it resolved to (``predict_speed.json`` for float32,
``predict_speed_bf16-mixed.json``), so ``--precision 32`` and ``--precision bf16`` side by side compare both.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from hydra.utils import instantiate

from mutual_seg.checkpoint import Ensemble
from mutual_seg.config import compose
from mutual_seg.data.preprocess import PreprocessSettings
from mutual_seg.fastpath import native_bf16, resolve_precision
from mutual_seg.predict import DEFAULT_PRECISION, PRECISIONS
from mutual_seg.predict.batch import predict_subject
from mutual_seg.predict.inputs import subject_from_folder
from mutual_seg.runtime.malloc import tune_malloc

RESULTS = Path(__file__).parent / "results"


def default_ensemble(overrides: list[str]) -> Ensemble:
    """The default config's network (untrained) and settings, as a one-member ensemble built as ``load_ensemble``
    builds one from a checkpoint (``module.fast_path``: layout, BatchNorm folded), with the run's malloc settings."""
    cfg = compose(overrides)
    tune_malloc(cfg.malloc)
    module = instantiate(cfg.module, _recursive_=False)
    module.net.eval()
    return Ensemble([module.fast_path.for_inference(module.net)], tuple(cfg.modality.names),
                    instantiate(cfg.data.preprocessing), float(cfg.module.threshold),
                    int(cfg.module.inference_batch_size), float(cfg.module.min_component_mm3), False,
                    prepare=module.fast_path.prepare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a UCSF-PDGM-layout set at full size (default: make one subject)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the documented figure: 2)")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help="as mutual-seg-predict --precision")
    args = parser.parse_args()
    precision = resolve_precision(args.precision, torch.device("cpu"))
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from mutual_seg.data.synthetic import generate_dataset

            data = Path(tmp) / "data"
            generate_dataset(data, n_subjects=1, seed=0, workers=1, progress=False)
        folder = min(p for p in Path(data).iterdir() if p.name.endswith("_nifti"))
        subject = subject_from_folder(folder)
        ensemble = default_ensemble([])
        if precision != "32-true":
            ensemble.use_fast_path(precision)
        assert isinstance(ensemble.preprocessing, PreprocessSettings)
        settings = ensemble.settings(tta=args.tta, largest_component=False)
        times, cpu = [], []
        for i in range(args.repeats + 1):  # the first run warms up (allocator, lazy imports)
            start, start_cpu = time.perf_counter(), time.process_time()
            predict_subject(subject, ensemble, settings, Path(tmp) / f"out{i}", ["segmentation"])
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    result = {
        "seconds_per_subject": round(statistics.median(times[1:]), 2),
        "runs": [round(t, 2) for t in times[1:]],
        # CPU seconds of this process divided by its threads: the wall time it would take on idle cores
        # (on a machine shared with other jobs the wall time above also counts their turns).
        "cpu_seconds_per_thread": round(statistics.median(cpu[1:]) / args.threads, 2),
        "warmup": round(times[0], 2),
        "subject": subject.id,
        "model": "mutual (default), flair_t2w, features " + str(list(ensemble.nets[0].features)),
        "tta": args.tta,
        "precision": precision,
        "precision_choice": args.precision,
        "native_bf16": native_bf16(torch.device("cpu")),
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "date": date.today().isoformat(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "predict_speed" + ("" if precision == "32-true" else f"_{precision}")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(
        "| model | precision | TTA | torch threads | s per 240x240x155 subject (wall, median) | CPU s / thread |\n"
        "|---|---|---|---|---|---|\n"
        f"| {result['model']} | {precision} | {args.tta} | {args.threads} | {result['seconds_per_subject']} | "
        f"{result['cpu_seconds_per_thread']} |\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
