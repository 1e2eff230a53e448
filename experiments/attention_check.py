"""Where the trained models go wrong, per tissue: attention on T2w, false positives, calibration, the residual path.

Usage: python experiments/attention_check.py outputs/ablation/<study> [--init]

For every job of an ablation study (``experiments/ablation.py``) on synthetic data, it reloads the best checkpoint,
predicts each of the job's test subjects slice by slice, and regenerates the subject's tissue masks with the
generator's own seed (the data set's ``synthetic_dataset.json``), so it can report per region (tumour, cyst inside
the tumour, CSF = brain outside the parenchyma, FLAIR-bright distractors, normal parenchyma):

- ``p``: the mean predicted tumour probability (1 is right in tumour and cyst, 0 elsewhere);
- ``w_t2w``: for mutual attention, the mean weight on the T2w track at full resolution (scale 0) and at the bottom
  scale: which modality the block trusts where;
- the share of false-positive voxels in each region, and the expected calibration error (10 bins, brain voxels);
- ``|fused - mean| / |mean|`` per scale: how far the mutual block moves away from plain mean fusion
  (``fused = mean + out(attention)``); ``--init`` also prints it for the same network untrained.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

import numpy as np
import torch

from mutual_seg.checkpoint import load_module
from mutual_seg.data.layouts import UCSFPDGMLayout
from mutual_seg.data.preprocess import PreprocessSettings, preprocess_subject, slice_first
from mutual_seg.data.synthetic import MANIFEST, simulate_subject, subject_seed
from mutual_seg.results import Run, RunFolder, find_runs

REGIONS = ("tumour", "cyst", "csf", "distractor", "normal")


def regions(data_root: Path, subject: str) -> dict[str, np.ndarray]:
    """Boolean (Z, X, Y) masks of the subject's tissues, from the generator's seed (not from the files)."""
    manifest = json.loads((data_root / MANIFEST).read_text())
    index = int(subject.rsplit("-", 1)[1])
    sub = simulate_subject(subject_seed(manifest["seed"], index, manifest["variant"]), manifest["shape"],
                           manifest["variant"], index)
    brain, par = sub.brain.astype(bool), sub.parenchyma.astype(bool)
    masks = {"tumour": (sub.label > 0) & ~sub.cyst, "cyst": sub.cyst, "csf": brain & ~par,
             "distractor": sub.distractor, "normal": par & (sub.label == 0) & ~sub.distractor}
    return {k: slice_first(v) for k, v in masks.items()}


def residual_hooks(net: torch.nn.Module, ratios: dict[int, list[float]]) -> list:
    """Forward hooks on the fusions recording |fused - mean| / |mean| per scale."""
    hooks = []
    for s, fusion in enumerate(net.fusions or []):
        def hook(module, args, output, s=s):
            features = args[0]
            avg = torch.stack(features).mean(0)
            ratios[s].append(float((output[0] - avg).norm() / avg.norm().clamp_min(1e-8)))
        hooks.append(fusion.register_forward_hook(hook))
    return hooks


def check_job(job: Run, untrained: bool = False) -> dict:
    """Per-region statistics of one job (``results.Run``: its folder read by the one run-folder reader)."""
    config = job.config
    module = load_module(RunFolder(job.path).best_checkpoint)  # weights_only: a study folder may come from anyone
    net = module.net.eval()
    if untrained:
        for layer in net.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        net.train()  # untrained BatchNorm has no running statistics: normalize with the batch's, as in training
    root = Path(config["data"]["layout"]["root"])
    layout = UCSFPDGMLayout(root, bias_corrected=False, cohort=None, include_followups=True)
    settings = PreprocessSettings(**module.hparams.preprocessing)
    tested = set(job.subjects)
    stats: dict[str, list[float]] = defaultdict(list)
    ratios: dict[int, list[float]] = defaultdict(list)
    hooks = residual_hooks(net, ratios) if not net.early_fusion else []
    for subject in layout.find(module.hparams.modalities):
        if subject.id not in tested:
            continue
        pre = preprocess_subject(subject, module.hparams.modalities, settings, require_label=True)
        image = torch.from_numpy(np.stack([slice_first(pre["images"][m]) for m in module.hparams.modalities], 1))
        masks = regions(root, subject.id)
        probs, w0, wb = [], [], []
        with torch.no_grad():
            for z in range(0, image.shape[0], 16):
                probs.append(torch.sigmoid(net(image[z:z + 16]))[:, 0].numpy())
                if net.last_attention[0] is not None and "t2w" in net.modalities:
                    t2 = net.modalities.index("t2w")
                    w0.append(net.last_attention[0][:, :, t2].mean(1).numpy())
                    bottom = net.last_attention[-1][:, :, t2].mean(1)
                    factor = 2 ** (net.depth - 1)
                    up = bottom.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
                    wb.append(up[:, : image.shape[2], : image.shape[3]].numpy())
        p = np.concatenate(probs)
        truth = slice_first(pre["label"][0]).astype(bool)
        pred = p >= module.hparams.threshold
        fp = pred & ~truth
        for r in REGIONS:
            if masks[r].any():
                stats[f"p {r}"].append(float(p[masks[r]].mean()))
                stats[f"FP share {r}"].append(float((fp & masks[r]).sum() / max(fp.sum(), 1)))
                if w0:
                    stats[f"w_t2w s0 {r}"].append(float(np.concatenate(w0)[masks[r]].mean()))
                    stats[f"w_t2w bottom {r}"].append(float(np.concatenate(wb)[masks[r]].mean()))
        brain = np.logical_or.reduce([masks[r] for r in REGIONS])
        bins = np.minimum((p[brain] * 10).astype(int), 9)
        conf, hit = p[brain], truth[brain]
        ece = sum(abs(conf[bins == b].mean() - hit[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any())
        stats["ECE"].append(float(ece))
    for h in hooks:
        h.remove()
    for s, values in ratios.items():
        stats[f"|fused-mean|/|mean| s{s}"].append(mean(values))
    cell = (str(job.modality_set), str(job.model))
    return {"cell": cell, "stats": {k: mean(v) for k, v in stats.items()}}


def study_jobs(study: Path) -> list[Run]:
    """The tested jobs under ``study`` that kept their best checkpoint (symlinked job folders included)."""
    return [run for run in find_runs(study) if run.ok and RunFolder(run.path).best_checkpoint.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--init", action="store_true", help="also the residual ratio of the untrained networks")
    args = parser.parse_args()
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in study_jobs(args.study):
        for untrained in (False, True) if args.init else (False,):
            result = check_job(job, untrained)
            cell = (*result["cell"], "untrained" if untrained else "trained")
            for k, v in result["stats"].items():
                cells[cell][k].append(v)
    keys = sorted({k for stats in cells.values() for k in stats})
    print("| measure | " + " | ".join("/".join(c) for c in cells) + " |")
    print("|---|" + "---|" * len(cells))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{mean(cells[c][k]):.3f}" if cells[c].get(k) else "–" for c in cells) + " |")


if __name__ == "__main__":
    main()
