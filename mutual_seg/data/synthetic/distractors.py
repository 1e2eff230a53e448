"""FLAIR-bright regions that are neither tumour nor labelled (paper Fig. 6).

Periventricular caps at the horns of the lateral ventricles (normal-looking on T2w) and a
choroid-plexus blob in the atrium (CSF-like on T2w): what a FLAIR-only model mistakes for tumour.
"""

from __future__ import annotations

import numpy as np

from mutual_seg.data.synthetic.contrasts import Variant
from mutual_seg.data.synthetic.geometry import blob, pick, smooth_field


def add_distractors(rng, fr, brain_mask, vent, pv, axes, vox, v: Variant) -> None:
    """FLAIR-bright, unlabelled look-alikes (paper Fig. 6), into ``fr`` in place."""
    if rng.random() < v.cap_prob:  # periventricular caps, replacing parenchyma
        tau = rng.uniform(0.4, 0.6)  # thickness: where the horn-weighted proximity exceeds tau
        wobble = 1 + 0.25 * smooth_field(rng, axes, 15.0)
        cap = np.clip((pv * wobble - tau) / 0.12, 0, 1) * brain_mask
        fr["cap"] = cap * (fr["gm"] + fr["wm"])
        fr["gm"] *= 1 - cap
        fr["wm"] *= 1 - cap
    if rng.random() < v.choroid_prob:  # choroid-plexus glomus in the atrium, replacing CSF
        c = pick(rng, brain_mask & (vent > 0.6) & (axes[1][None, :, None] < -25))
        if c is not None:
            box = tuple(
                slice(max(0, i - int(8 / w) - 1), i + int(8 / w) + 2) for i, w in zip(c, vox)
            )
            rel = [a[b] - a[i] for a, b, i in zip(axes, box, c)]
            d = np.sqrt(sum(g**2 for g in np.meshgrid(*rel, indexing="ij", sparse=True)))
            glomus = blob(d, rng.uniform(3.0, 5.5), max(1.0, 0.5 * min(vox))) * np.clip(
                vent[box], 0, 1
            )
            fr["choroid"][box] = np.minimum(glomus, fr["csf"][box])
            fr["csf"][box] -= fr["choroid"][box]
