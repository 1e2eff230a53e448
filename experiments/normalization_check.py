"""What sets eq. 1's maximum inside the parenchyma, and how stable the normalized tumour contrast is (no training).

Usage: python experiments/normalization_check.py [--subjects 12] [--shape 96 96 62]

For subjects of the synthetic generator's ``default`` and ``shifted`` variants (simulated in memory with the
generator's own seeds, so the cyst and distractor masks are known), it reports per modality:

- which tissue holds the voxel that sets the parenchyma maximum (tumour, cyst, FLAIR-bright distractor, other);
- the tumour-minus-normal-tissue contrast after normalization (medians), across subjects: mean and coefficient
  of variation (sd / mean), under eq. 1 with the maximum (the paper), eq. 1 with the 99th percentile as the
  upper reference, and a z-score. A model sees one contrast per subject: the less it varies across subjects for
  the same underlying tissue, the less the network must learn to undo the normalization.
"""

from __future__ import annotations

import argparse
from statistics import mean, pstdev

import numpy as np

from mutual_seg.data.preprocess import normalize_minmax, normalize_zscore
from mutual_seg.data.synthetic import simulate_subject, subject_seed

SEEDS = {"default": 0, "shifted": 100}  # the ablation's data sets (experiments/ablation.py)


def minmax_percentile(x: np.ndarray, mask: np.ndarray, upper: float, alpha: float = 0.01, beta: float = 0.99) -> np.ndarray:
    """Eq. 1 with the ``upper`` percentile of the mask instead of its maximum (for comparison)."""
    inside = x[mask.astype(bool)]
    lo, hi = float(inside.min()), float(np.percentile(inside, upper))
    return (x - lo) * (beta - alpha) / (hi - lo) + alpha


def analyse(variant: str, subjects: int, shape: tuple[int, ...]) -> dict:
    where: dict[str, dict[str, int]] = {m: {} for m in ("flair", "t2w")}
    contrast: dict[tuple[str, str], list[float]] = {}
    for i in range(1, subjects + 1):
        sub = simulate_subject(subject_seed(SEEDS[variant], i, variant), shape, variant, i)
        par = sub.parenchyma.astype(bool)
        tumour = (sub.label > 0) & ~sub.cyst
        normal = par & (sub.label == 0) & ~sub.distractor
        for m in ("flair", "t2w"):
            x = sub.images[m]
            at = np.unravel_index(np.argmax(np.where(par, x, -np.inf)), x.shape)
            kind = ("cyst" if sub.cyst[at] else "tumour" if sub.label[at] > 0 else
                    "distractor" if sub.distractor[at] else "normal tissue")
            where[m][kind] = where[m].get(kind, 0) + 1
            for name, norm in (("eq. 1, max", normalize_minmax(x, par)),
                               ("eq. 1, 99th percentile", minmax_percentile(x, par, 99.0)),
                               ("z-score", normalize_zscore(x, par))):
                contrast.setdefault((m, name), []).append(float(np.median(norm[tumour]) - np.median(norm[normal])))
    return {"where": where, "contrast": contrast}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 96, 62))
    args = parser.parse_args()
    print("| data | modality | parenchyma max set by | normalization | tumour - normal contrast: mean | CV |")
    print("|---|---|---|---|---|---|")
    for variant in SEEDS:
        result = analyse(variant, args.subjects, tuple(args.shape))
        for (m, name), values in result["contrast"].items():
            where = ", ".join(f"{k} {v}" for k, v in sorted(result["where"][m].items(), key=lambda kv: -kv[1]))
            print(f"| {variant} | {m} | {where} | {name} | {mean(values):.3f} | {pstdev(values) / abs(mean(values)):.2f} |")


if __name__ == "__main__":
    main()
