"""The tumour model: a diffuse, lobulated mass grown along white matter, with cysts and enhancement.

The abnormal signal fades outwards and the label's outer boundary (label 2) sits where only
``edge_level`` (8-28 %, drawn per subject: annotators differ in how much of the faint infiltrative
margin they include) of the full tumour contrast is left, then fades to normal. Some tumours hold
CSF-like cysts (T2w bright, FLAIR dark) that the label counts as tumour (label 1, paper Fig. 7);
some have a small enhancing focus on T1c (label 4).
"""

from __future__ import annotations

import math

import numpy as np

from mutual_seg.data.synthetic.contrasts import Variant
from mutual_seg.data.synthetic.geometry import blob, pick, smooth_field


def tumour_seed(rng, fr, brain_mask, axes):
    """A voxel in cerebral white matter, away from the midline (where astrocytomas mostly arise)."""
    wx, wy, wz = (a.reshape([-1 if k == d else 1 for k in range(3)]) for d, a in enumerate(axes))
    # cerebral hemispheres only: no brainstem, no cerebellum
    allowed = brain_mask & (fr["gm"] + fr["wm"] > 0.8) & (wz > -20) & ~((wy < -55) & (wz < 5))
    lateral = np.where(np.abs(wx) > 12, 1.0, 0.15)
    return pick(rng, allowed, fr["wm"] ** 2 * lateral + 0.02)


def add_tumour(rng, fr, brain_mask, vent, axes, vox, v: Variant, grade: int):
    """Grow a diffuse tumour (with cysts / enhancing focus) into the fractions ``fr`` in place.

    The shape is a noisy, white-matter-stretched ellipsoid in a normalized radius ``r``
    (label boundary at r = 1), rescaled so the label volume matches the drawn volume.

    Returns:
        label (X, Y, Z) uint8 in {0, 1, 2, 4}, and the boolean cyst mask.
    """
    shape = brain_mask.shape
    label, cyst_mask = np.zeros(shape, np.uint8), np.zeros(shape, bool)
    seed = tumour_seed(rng, fr, brain_mask, axes)
    if seed is None:
        return label, cyst_mask
    volume = math.exp(rng.uniform(*np.log(v.tumour_volume_cm3))) * 1000.0  # mm^3
    radius = (3 * volume / (4 * math.pi)) ** (1 / 3)
    aspect = rng.uniform(*v.tumour_aspect, 3)
    aspect /= np.prod(aspect) ** (1 / 3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    m = (np.diag(1 / (radius * aspect)) @ q).astype(np.float32)
    reach = 2.0 * radius * aspect.max() + 2 * max(vox)  # r0 < 2 fits; the tumour ends by ~1.7
    box = tuple(
        slice(max(0, i - int(reach / w)), min(n, i + int(reach / w) + 1))
        for i, w, n in zip(seed, vox, shape)
    )
    rel = [
        ((np.arange(b.start, b.stop) - i) * w).astype(np.float32) for b, i, w in zip(box, seed, vox)
    ]
    grids = np.meshgrid(*rel, indexing="ij", sparse=True)
    r0 = np.sqrt(sum(sum(m[k, d] * grids[d] for d in range(3)) ** 2 for k in range(3)))
    # lobes at two scales: big bulges and a finer irregular margin
    lob = np.clip(
        0.8 * smooth_field(rng, rel, max(0.5 * radius, 4.0))
        + 0.6 * smooth_field(rng, rel, max(0.2 * radius, 3.0)),
        -2.5,
        2.5,
    )
    gm, wm, csf, cap = (fr[t][box] for t in ("gm", "wm", "csf", "cap"))
    r = r0 * (1 - v.wm_preference * (wm - 0.5)) + rng.uniform(*v.lobulation) * lob
    r = np.maximum(r, (r0 - 0.9) * 2.5)  # one main mass: no far satellites, nothing past r0 ~ 1.7
    # Rescale so that the label (r < 1 in parenchyma) has the drawn volume.
    vals = r[(gm + wm + cap) > 0.5]
    k = int(volume / np.prod(vox))
    t = float(np.partition(vals, k)[k]) if k < vals.size else float(vals.max(initial=1.0))
    r /= np.clip(t, 0.5, 1.6)
    # Signal profile: full inside r_in, edge_level at the label boundary r = 1, 0 at r_out.
    r_in, r_out = 0.45, 1.3
    gamma = math.log(rng.uniform(*v.edge_level)) / math.log((r_out - 1) / (r_out - r_in))
    s = np.clip((r_out - r) / (r_out - r_in), 0, 1) ** gamma
    s = np.clip(s * (1 + 0.12 * smooth_field(rng, rel, 6.0)), 0, 1)  # heterogeneous signal
    # Tumour replaces parenchyma (and caps), and effaces sulcal, not ventricular, CSF (mass effect).
    efface = 0.8 * s * (1 - np.clip(vent[box], 0, 1))
    fr["tumour"][box] = s * (gm + wm + cap) + efface * csf
    for name in ("gm", "wm", "cap"):
        fr[name][box] *= 1 - s
    fr["csf"][box] *= 1 - efface
    edge = max(1.0, 0.5 * min(vox))  # partial-volume ramp of small structures, mm

    def ball(centre, radius_mm, wobble=0.0):
        d = np.sqrt(sum((g - g.ravel()[i]) ** 2 for g, i in zip(grids, centre)))
        return blob(d * (1 + wobble * lob), radius_mm, edge)

    cyst = np.zeros_like(r)
    if rng.random() < v.cyst_prob:  # CSF-like cysts in the core, labelled tumour (Fig. 7)
        for _ in range(int(rng.integers(1, 4))):
            c = pick(rng, r < 0.45)
            if c is not None:
                cyst = np.maximum(cyst, ball(c, max(radius * rng.uniform(0.15, 0.35), 2.5), 0.15))
    enh = np.zeros_like(r)
    if rng.random() < v.enhancing_prob[grade - 2]:
        c = pick(rng, (r < 0.6) & (cyst < 0.5))
        if c is not None:
            enh = ball(c, rng.uniform(2.0, 6.0)) * (1 - cyst)
    b = fr["brain"][box]
    for extra, name in ((cyst, "cyst"), (enh, "enhancing")):
        for other in ("csf", "gm", "wm", "tumour", "cap", "choroid"):
            fr[other][box] *= 1 - extra
        fr[name][box] = extra * b
    csf_space = (fr["csf"][box] + fr["choroid"][box]) / np.maximum(b, 1e-6)
    inside = brain_mask[box] & (((r < 1) & (csf_space < 0.5)) | (cyst > 0.5))
    lab = np.where(inside, 2, 0).astype(np.uint8)
    lab[inside & (cyst > 0.5)] = 1
    lab[inside & (enh > 0.5)] = 4
    label[box] = lab
    cyst_mask[box] = inside & (cyst > 0.5)
    return label, cyst_mask

