"""Where the trained models go wrong, per tissue: attention on T2w, false positives, calibration, the residual path.

Usage: python experiments/attention_check.py outputs/ablation/<study> [--init]
       python experiments/attention_check.py <sweep folder> --components   # each false-positive blob, per subject

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

``--components`` answers "why does this one subject over-segment": for every job and test subject, each connected
false-positive blob of at least ``--min-voxels`` voxels, with the tissue it lies in, the block's weight on T2w
there and the mean normalised intensity of each input in it (against that tissue's mean).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

import numpy as np
import torch
from scipy import ndimage

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


def predict_subjects(job: Run, untrained: bool = False, ratios: dict[int, list[float]] | None = None):
    """Yield (subject id, probabilities [Z, X, Y], truth, T2w weight at scale 0 or None, bottom-scale T2w weight or
    None, images [Z, I, X, Y], tissue masks, the model's threshold) for each of the job's test subjects, from its
    best checkpoint. ``ratios``: collect the fusions' |fused - mean| / |mean| per scale into it."""
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
    hooks = residual_hooks(net, ratios) if ratios is not None and not net.early_fusion else []
    for subject in layout.find(module.hparams.modalities):
        if subject.id not in tested:
            continue
        pre = preprocess_subject(subject, module.hparams.modalities, settings, require_label=True)
        image = torch.from_numpy(np.stack([slice_first(pre["images"][m]) for m in module.hparams.modalities], 1))
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
        truth = slice_first(pre["label"][0]).astype(bool)
        yield (subject.id, np.concatenate(probs), truth, np.concatenate(w0) if w0 else None,
               np.concatenate(wb) if wb else None, image.numpy(), regions(root, subject.id), module.hparams.threshold)
    for h in hooks:
        h.remove()


def check_job(job: Run, untrained: bool = False) -> dict:
    """Per-region statistics of one job (``results.Run``: its folder read by the one run-folder reader)."""
    stats: dict[str, list[float]] = defaultdict(list)
    ratios: dict[int, list[float]] = defaultdict(list)
    for _, p, truth, w0, wb, _, masks, threshold in predict_subjects(job, untrained, ratios):
        pred = p >= threshold
        fp = pred & ~truth
        for r in REGIONS:
            if masks[r].any():
                stats[f"p {r}"].append(float(p[masks[r]].mean()))
                stats[f"FP share {r}"].append(float((fp & masks[r]).sum() / max(fp.sum(), 1)))
                if w0 is not None:
                    stats[f"w_t2w s0 {r}"].append(float(w0[masks[r]].mean()))
                    stats[f"w_t2w bottom {r}"].append(float(wb[masks[r]].mean()))
        brain = np.logical_or.reduce([masks[r] for r in REGIONS])
        bins = np.minimum((p[brain] * 10).astype(int), 9)
        conf, hit = p[brain], truth[brain]
        ece = sum(abs(conf[bins == b].mean() - hit[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any())
        stats["ECE"].append(float(ece))
    for s, values in ratios.items():
        stats[f"|fused-mean|/|mean| s{s}"].append(mean(values))
    cell = (str(job.modality_set), str(job.model))
    return {"cell": cell, "stats": {k: mean(v) for k, v in stats.items()}}


def fp_components(pred: np.ndarray, truth: np.ndarray, masks: dict[str, np.ndarray], min_voxels: int) -> list[dict]:
    """The connected blobs of ``pred`` (bool [Z, X, Y]) that touch no ``truth`` voxel, largest first: each with its
    size, centre (voxel index) and the share of it in each tissue of ``masks``. Blobs under ``min_voxels`` are left
    out (the run's own post-processing drops specks)."""
    labels, n = ndimage.label(pred)
    blobs = []
    for c in range(1, n + 1):
        blob = labels == c
        size = int(blob.sum())
        if size < min_voxels or (blob & truth).any():
            continue
        tissue = {r: float((blob & masks[r]).sum() / size) for r in REGIONS}
        blobs.append({"mask": blob, "voxels": size, "centre": tuple(int(v) for v in np.argwhere(blob).mean(0)),
                      "tissue": max(tissue, key=tissue.get), "tissue_share": max(tissue.values())})
    return sorted(blobs, key=lambda b: -b["voxels"])


def print_components(jobs: list[Run], min_voxels: int) -> None:
    """One table row per false-positive blob of every job's test subjects (see the module docstring)."""
    print("| job | subject | Dice | precision | blob voxels | tissue (share) | w_t2w | inputs in blob (tissue mean) |")
    print("|---|---|---|---|---|---|---|---|")
    for job in jobs:
        mods = list(job.config["modality"]["names"])
        for sid, p, truth, w0, _, image, masks, threshold in predict_subjects(job):
            pred = p >= threshold
            tp = float((pred & truth).sum())
            dice, precision = 2 * tp / max(pred.sum() + truth.sum(), 1), tp / max(pred.sum(), 1)
            for blob in fp_components(pred, truth, masks, min_voxels):
                m, t = blob["mask"], masks[blob["tissue"]]
                inputs = ", ".join(f"{name} {image[:, i][m].mean():.2f} ({image[:, i][t].mean():.2f})"
                                   for i, name in enumerate(mods))
                w = f"{w0[m].mean():.2f}" if w0 is not None else "–"
                print(f"| {job.path.name} | {sid} | {dice:.3f} | {precision:.2f} | {blob['voxels']} | "
                      f"{blob['tissue']} ({blob['tissue_share']:.2f}) | {w} | {inputs} |")


def study_jobs(study: Path) -> list[Run]:
    """The tested jobs under ``study`` that kept their best checkpoint (symlinked job folders included)."""
    return [run for run in find_runs(study) if run.ok and RunFolder(run.path).best_checkpoint.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--init", action="store_true", help="also the residual ratio of the untrained networks")
    parser.add_argument("--components", action="store_true", help="list each false-positive blob per subject")
    parser.add_argument("--min-voxels", type=int, default=200, help="smallest blob --components lists")
    args = parser.parse_args()
    if args.components:
        print_components(study_jobs(args.study), args.min_voxels)
        return
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
