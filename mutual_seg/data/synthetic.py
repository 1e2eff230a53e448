"""Synthetic astrocytoma data set written in the exact UCSF-PDGM layout, read by the real reader.

The real UCSF-PDGM release needs a data-use agreement, so every demo and test runs on this set. Each
subject is the MNI152 2009 template (the 1 mm T1/GM/WM/brain maps nilearn ships, no download) put
through a random smooth deformation, given a diffuse tumour, and rendered as seven sequences with
a tissue contrast model. The model is built to show what the paper discusses, so that comparing
modalities means something:

* tumours are lobulated (a noisy ellipsoid grown preferentially along white matter) and diffuse:
  the abnormal signal fades outwards and the label's outer boundary (label 2) sits where only
  ``edge_level`` (8-28 %, drawn per subject: annotators differ in how much of the faint
  infiltrative margin they include) of the full tumour contrast is left, then fades to normal;
* CSF is bright on T2w but dark on FLAIR;
* some tumours hold CSF-like cysts (T2w bright, FLAIR dark) that the label counts as tumour
  (label 1, paper Fig. 7); some have a small enhancing focus on T1c (label 4);
* FLAIR-bright regions that are not tumour and not labelled (paper Fig. 6): periventricular caps
  at the horns of the lateral ventricles (normal-looking on T2w) and a choroid-plexus blob in the
  atrium (CSF-like on T2w);
* partial volume (tissue fractions; the template is blurred to the target voxel size), a smooth
  multiplicative bias field per sequence, Rician noise, and zero outside the brain (skull-stripped).

Intensity table (``default`` variant, relative to white matter = 1; ADC in units of
1e-6 mm^2/s after scaling by 700; other sequences get a random scanner gain)::

    tissue        T1    T1c   T2w   FLAIR  SWI   DWI   ADC
    csf           0.30  0.30  2.30  0.12   1.15  0.30  4.30
    grey matter   0.70  0.72  1.25  1.18   0.88  1.10  1.15
    white matter  1.00  1.00  1.00  1.00   1.00  1.00  1.00
    tumour        0.62  0.64  2.20  1.95   1.02  1.15  1.90
    cyst          0.33  0.33  2.30  0.22   1.12  0.35  4.00
    enhancing     0.66  1.70  1.70  1.70   0.75  1.40  1.20
    pv. cap       0.92  0.92  1.12  1.80   1.00  1.05  1.25
    choroid pl.   0.60  1.30  2.05  1.65   0.65  0.55  2.30

Per subject every entry is jittered (log-normal, ``contrast_jitter``), and noise, bias strength,
tumour size/shape/location, cyst/enhancement/distractor presence are drawn from the variant's
ranges. ``--variant shifted`` changes contrast ratios, tumour statistics, distractor frequencies
and noise/bias levels, to check generalisation on data made with settings nobody tuned on.

Geometry: a 240 x 240 x 155 mm field of view in LPS orientation (``aff2axcodes`` = L, P, S);
``--shape`` changes the voxel count, not the field of view, so tiny test trees are small brains.
Subject ``i`` is seeded from ``(seed, i, variant)``, so output is byte-identical whatever the
number of workers. Besides the UCSF-PDGM files the folder holds ``synthetic_dataset.json`` (the
arguments), which lets a re-run with identical arguments resume and anything else be refused.

Usage::

    python -m mutual_seg.data.synthetic --out data/synthetic --subjects 35 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from mutual_seg.data.subject import MODALITIES
from mutual_seg.errors import ConfigError, DataError, MutualSegError

FOV_MM = (240.0, 240.0, 155.0)
# World (MNI mm) point at the centre of the field of view: the brain's centre in x/y, and in z
# high enough that the vertex keeps a few mm of margin; the lowest brainstem is cut, as in BraTS.
FOV_CENTRE = (0.0, -17.0, 13.5)
# Global scaling pivots near the top of the brain, so the vertex stays inside the field of view.
SCALE_CENTRE = np.array([0.0, -17.0, 20.0])
GENERATOR_VERSION = 2  # 2: edge_level widened to 8-28 % (annotators differ on the infiltrative margin)
MANIFEST = "synthetic_dataset.json"
METADATA_CSV = "UCSF-PDGM-metadata_v5.csv"
SEQUENCE_SUFFIX = {
    "t1": "T1",
    "t1c": "T1c",
    "t2w": "T2",
    "flair": "FLAIR",
    "swi": "SWI",
    "dwi": "DWI",
    "adc": "ADC",
}
MASK_SUFFIXES = ("tumor_segmentation", "brain_parenchyma_segmentation", "brain_segmentation")
METADATA_COLUMNS = (
    "ID",
    "Sex",
    "Age at MRI",
    "WHO CNS Grade",
    "Final pathologic diagnosis (WHO 2021)",
    "MGMT status",
    "MGMT index",
    "1p/19q",
    "IDH",
    "1-dead 0-alive",
    "OS",
    "EOR",
    "Biopsy prior to imaging",
    "BraTS21 ID",
    "BraTS21 Segmentation Cohort",
    "BraTS21 MGMT Cohort",
)
# fmt: off
TISSUES = ("csf", "gm", "wm", "tumour", "cyst", "enhancing", "cap", "choroid")
# Rows follow MODALITIES (t1, t1c, t2w, flair, swi, dwi, adc); columns follow TISSUES.
INTENSITY = {
    "t1":    (0.30, 0.70, 1.00, 0.62, 0.33, 0.66, 0.92, 0.60),
    "t1c":   (0.30, 0.72, 1.00, 0.64, 0.33, 1.70, 0.92, 1.30),
    "t2w":   (2.30, 1.25, 1.00, 2.20, 2.30, 1.70, 1.12, 2.05),
    "flair": (0.12, 1.18, 1.00, 1.95, 0.22, 1.70, 1.80, 1.65),
    "swi":   (1.15, 0.88, 1.00, 1.02, 1.12, 0.75, 1.00, 0.65),
    "dwi":   (0.30, 1.10, 1.00, 1.15, 0.35, 1.40, 1.05, 0.55),
    "adc":   (4.30, 1.15, 1.00, 1.90, 4.00, 1.20, 1.25, 2.30),
}
SCANNER_SCALE = {"t1": 900.0, "t1c": 900.0, "t2w": 500.0, "flair": 600.0,
                 "swi": 400.0, "dwi": 300.0, "adc": 700.0}
# fmt: on


@dataclass(frozen=True)
class Variant:
    """Ranges the per-subject parameters are drawn from; ``(lo, hi)`` means uniform."""

    contrast_jitter: float = 0.08  # log-normal sd per (sequence, tissue)
    intensity_override: dict = field(default_factory=dict)  # {(modality, tissue): value}
    tumour_volume_cm3: tuple = (5.0, 150.0)  # log-uniform, at the label boundary (approx.)
    tumour_aspect: tuple = (0.75, 1.35)
    lobulation: tuple = (0.15, 0.40)  # smooth-noise amplitude on the normalized radius
    wm_preference: float = 0.2  # growth along white matter
    edge_level: tuple = (0.08, 0.28)  # share of tumour contrast left at the label edge
    grade_probs: tuple = (0.5, 0.3, 0.2)  # WHO grades 2, 3, 4
    enhancing_prob: tuple = (0.15, 0.35, 0.8)  # per grade
    cyst_prob: float = 0.4
    cap_prob: float = 0.75
    choroid_prob: float = 0.6
    noise: tuple = (0.02, 0.05)  # Rician sigma relative to white matter
    bias: tuple = (0.05, 0.15)  # sd of the log bias field
    deformation_mm: float = 3.0
    scale: tuple = (0.92, 1.05)
    rotation_deg: float = 4.0


VARIANTS: dict[str, Variant] = {
    "default": Variant(),
    "shifted": Variant(
        contrast_jitter=0.14,
        intensity_override={
            ("flair", "tumour"): 1.75,
            ("t2w", "tumour"): 2.0,
            ("flair", "csf"): 0.2,
            ("flair", "cap"): 1.9,
            ("t1", "tumour"): 0.75,
            ("flair", "cyst"): 0.35,
        },
        tumour_volume_cm3=(3.0, 100.0),
        tumour_aspect=(0.6, 1.6),
        lobulation=(0.3, 0.55),
        wm_preference=0.35,
        edge_level=(0.08, 0.18),
        grade_probs=(0.35, 0.35, 0.3),
        enhancing_prob=(0.25, 0.5, 0.9),
        cyst_prob=0.6,
        cap_prob=0.95,
        choroid_prob=0.85,
        noise=(0.04, 0.08),
        bias=(0.15, 0.28),
        deformation_mm=5.0,
        scale=(0.9, 1.04),
        rotation_deg=6.0,
    ),
}


@dataclass
class SimulatedSubject:
    """One simulated scan, before writing. Arrays are (X, Y, Z) in the LPS grid of ``affine``.

    ``images`` maps modality names (``MODALITIES``) to float32 intensities; ``label`` holds
    {0, 1, 2, 4}; ``parenchyma``/``brain`` are the 0/1 masks; ``cyst``/``distractor`` are boolean
    masks of the CSF-like cysts (labelled 1) and the FLAIR-bright non-tumour regions (label 0).
    """

    images: dict[str, np.ndarray]
    label: np.ndarray
    parenchyma: np.ndarray
    brain: np.ndarray
    cyst: np.ndarray
    distractor: np.ndarray
    affine: np.ndarray
    metadata: dict[str, str]


# ----------------------------------------------------------------------------- geometry, fields


def grid_affine(shape: Sequence[int]) -> np.ndarray:
    """Voxel -> world (mm) affine: LPS axes, the fixed 240 x 240 x 155 mm field of view."""
    vox = [f / n for f, n in zip(FOV_MM, shape)]
    affine = np.diag([-vox[0], -vox[1], vox[2], 1.0])
    half = [(n - 1) / 2 * v for n, v in zip(shape, vox)]
    affine[:3, 3] = [FOV_CENTRE[0] + half[0], FOV_CENTRE[1] + half[1], FOV_CENTRE[2] - half[2]]
    return affine


def _basis(points: np.ndarray, spacing: float) -> np.ndarray:
    """Gaussian bumps every ``spacing`` mm over ``points``, rows scaled so fields have unit sd."""
    centres = np.arange(points.min() - spacing, points.max() + 1.5 * spacing, spacing)
    b = np.exp(-0.5 * ((points[:, None] - centres[None, :]) / spacing) ** 2)
    return (b / np.sqrt((b**2).sum(1, keepdims=True))).astype(np.float32)


def smooth_field(
    rng: np.random.Generator, axes_mm: Sequence[np.ndarray], spacing: float
) -> np.ndarray:
    """Random smooth field (unit sd, correlation length ~``spacing`` mm) on a separable grid.

    A tensor product of 1-D bases (a free-form-deformation-like spline) costs a few flops per
    voxel, unlike upsampling noise with ``ndimage.zoom``.
    """
    bases = [_basis(np.asarray(a, dtype=np.float64), spacing) for a in axes_mm]
    coef = rng.standard_normal([b.shape[1] for b in bases]).astype(np.float32)
    out = np.tensordot(bases[0], coef, axes=(1, 0))  # (X, b, c)
    out = np.tensordot(out, bases[1], axes=(1, 1))  # (X, c, Y)
    out = np.tensordot(out, bases[2], axes=(1, 1))  # (X, Y, Z)
    return out


# ----------------------------------------------------------------------------- template


@functools.lru_cache(maxsize=1)
def _mni() -> dict[str, np.ndarray]:
    """MNI152 2009 maps at 1 mm (197 x 233 x 189), loaded once per process, plus derived maps."""
    from nilearn import datasets  # heavy import, only needed here

    brain = np.asanyarray(datasets.load_mni152_brain_mask(resolution=1).dataobj).astype(np.float32)
    gm_img = datasets.load_mni152_gm_template(resolution=1)
    gm = np.asanyarray(gm_img.dataobj).astype(np.float32) * brain
    wm = np.asanyarray(datasets.load_mni152_wm_template(resolution=1).dataobj).astype(np.float32)
    wm *= brain
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    # Ventricles: the largest CSF component in the deep central box (the lateral ventricles).
    inv = np.linalg.inv(gm_img.affine)
    lo = np.floor(inv[:3, :3] @ [-32, -52, -14] + inv[:3, 3]).astype(int)
    hi = np.ceil(inv[:3, :3] @ [32, 37, 40] + inv[:3, 3]).astype(int)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    comp, _ = ndi.label(csf[box] > 0.5)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    vent = np.zeros_like(brain)
    vent[box] = comp == sizes.argmax()
    # Periventricular-cap weight: 1 at the wall of the frontal and occipital horns (where caps
    # occur), fading over 9 mm, plus a faint lining along the whole wall.
    pad = tuple(slice(max(s.start - 12, 0), s.stop + 12) for s in box)
    dist = ndi.distance_transform_edt(vent[pad] == 0)
    y_mm = (np.arange(brain.shape[1]) * gm_img.affine[1, 1] + gm_img.affine[1, 3])[pad[1]]
    horn = 1 / (1 + np.exp(-(y_mm - 16) / 3)) + 1 / (1 + np.exp((y_mm + 36) / 3))
    near = np.maximum(
        horn[None, :, None] * np.clip(1 - dist / 9, 0, 1), 0.5 * np.clip(1 - dist / 3, 0, 1)
    )
    pv = np.zeros_like(brain)
    pv[pad] = near * (vent[pad] == 0)
    pv *= (gm + wm) > 0.3
    return {"affine": gm_img.affine, "brain": brain, "gm": gm, "wm": wm, "vent": vent, "pv": pv}


@functools.lru_cache(maxsize=2)
def _template(voxel_mm: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Template maps blurred to the target voxel size, so coarse grids get partial volume too."""
    maps = _mni()
    # Gaussian with the variance of a voxel-sized box minus that of the 1 mm template voxel.
    sigma = [math.sqrt(max(v * v - 1.0, 0.0) / 12.0) for v in voxel_mm]
    if max(sigma) < 0.3:
        return maps
    out = dict(maps)
    for key in ("brain", "gm", "wm", "vent", "pv"):
        out[key] = ndi.gaussian_filter(maps[key], sigma, truncate=3.0)
    return out


def _deform(rng: np.random.Generator, shape: tuple[int, int, int], variant: Variant):
    """Target voxel -> template voxel coordinates (3, X, Y, Z) for one random subject anatomy."""
    affine = grid_affine(shape)
    axes = [
        (affine[d, d] * np.arange(n) + affine[d, 3]).astype(np.float32) for d, n in enumerate(shape)
    ]
    angles = np.deg2rad(rng.uniform(-1, 1, 3) * variant.rotation_deg)
    rot = np.eye(3)
    for ax, a in enumerate(angles):
        c, s = math.cos(a), math.sin(a)
        r = np.eye(3)
        i, j = [k for k in range(3) if k != ax]
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    scale = rng.uniform(*variant.scale, 3) * rng.uniform(0.97, 1.03)  # size, then shape
    shift = rng.uniform(-3, 3, 3)
    lin = np.diag(1 / scale) @ rot.T  # world -> template, inverse of (rot @ diag(scale))
    tmpl = _mni()["affine"]
    tinv = np.linalg.inv(tmpl)
    m = (tinv[:3, :3] @ lin).astype(np.float32)
    off = tinv[:3, :3] @ (SCALE_CENTRE - lin @ (SCALE_CENTRE + shift)) + tinv[:3, 3]
    coords = np.empty((3, *shape), dtype=np.float32)
    for d in range(3):
        coords[d] = m[d, 0] * axes[0][:, None, None] + m[d, 1] * axes[1][None, :, None]
        coords[d] += m[d, 2] * axes[2][None, None, :] + np.float32(off[d])
    for e in range(3):  # displacement in world mm, then into template voxels
        disp = smooth_field(rng, axes, 40.0) * np.float32(variant.deformation_mm)
        for d in range(3):
            if tinv[d, e] != 0:
                coords[d] += np.float32(tinv[d, e]) * disp
    return coords, axes


# ----------------------------------------------------------------------------- subject


def subject_seed(seed: int, index: int, variant: str) -> tuple[int, int, int]:
    """Entropy for subject ``index``: independent of worker order; variants get new anatomy."""
    return (int(seed), int(index), zlib.crc32(variant.encode()))


def _variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def sample_metadata(
    rng_seed: Sequence[int], index: int, variant: str = "default"
) -> dict[str, str]:
    """The metadata CSV row of one subject (an IDH-mutant astrocytoma, as in the paper's cohort)."""
    v = _variant(variant)
    rng = np.random.default_rng(np.random.SeedSequence([*rng_seed, 0]))
    grade = int(rng.choice([2, 3, 4], p=np.array(v.grade_probs) / sum(v.grade_probs)))
    dead = bool(rng.random() < 0.1 + 0.15 * (grade - 2))
    mgmt = str(rng.choice(["positive", "negative", "unknown"], p=[0.7, 0.15, 0.15]))
    return {
        "ID": f"UCSF-PDGM-{index:03d}",  # the real CSV writes 3 digits where folders use 4
        "Sex": str(rng.choice(["M", "F"])),
        "Age at MRI": str(int(np.clip(rng.normal(38, 12), 18, 80))),
        "WHO CNS Grade": str(grade),
        "Final pathologic diagnosis (WHO 2021)": "Astrocytoma, IDH-mutant",
        "MGMT status": mgmt,
        "MGMT index": str(int(rng.integers(0, 18))) if mgmt != "unknown" else "unknown",
        "1p/19q": "intact" if rng.random() < 0.8 else "unknown",
        "IDH": "mutated",
        "1-dead 0-alive": str(int(dead)),
        "OS": str(int(rng.integers(100, 2500))) if rng.random() < 0.9 else "unknown",
        "EOR": str(rng.choice(["GTR", "STR", "biopsy", "unknown"], p=[0.35, 0.4, 0.1, 0.15])),
        "Biopsy prior to imaging": "Yes" if rng.random() < 0.15 else "No",
        "BraTS21 ID": "unknown",
        "BraTS21 Segmentation Cohort": "unknown",
        "BraTS21 MGMT Cohort": "unknown",
    }


def _blob(d_mm: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """Soft ball: fraction 1 inside, 0 outside, linear over ``edge`` mm (partial volume)."""
    return np.clip((radius - d_mm) / edge + 0.5, 0.0, 1.0)


def _pick(rng: np.random.Generator, mask: np.ndarray, weight: np.ndarray | None = None):
    """A random voxel index of ``mask`` (optionally weighted), or None if the mask is empty."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    if weight is None:
        return np.unravel_index(rng.choice(idx), mask.shape)
    w = weight.ravel()[idx].astype(np.float64)  # choice() wants p summing to 1 in float64
    return np.unravel_index(rng.choice(idx, p=w / w.sum()), mask.shape)


def _tumour_seed(rng, fr, brain_mask, axes):
    """A voxel in cerebral white matter, away from the midline (where astrocytomas mostly arise)."""
    wx, wy, wz = (a.reshape([-1 if k == d else 1 for k in range(3)]) for d, a in enumerate(axes))
    # cerebral hemispheres only: no brainstem, no cerebellum
    allowed = brain_mask & (fr["gm"] + fr["wm"] > 0.8) & (wz > -20) & ~((wy < -55) & (wz < 5))
    lateral = np.where(np.abs(wx) > 12, 1.0, 0.15)
    return _pick(rng, allowed, fr["wm"] ** 2 * lateral + 0.02)


def _add_tumour(rng, fr, brain_mask, vent, axes, vox, v: Variant, grade: int):
    """Grow a diffuse tumour (with cysts / enhancing focus) into the fractions ``fr`` in place.

    The shape is a noisy, white-matter-stretched ellipsoid in a normalized radius ``r``
    (label boundary at r = 1), rescaled so the label volume matches the drawn volume.

    Returns:
        label (X, Y, Z) uint8 in {0, 1, 2, 4}, and the boolean cyst mask.
    """
    shape = brain_mask.shape
    label, cyst_mask = np.zeros(shape, np.uint8), np.zeros(shape, bool)
    seed = _tumour_seed(rng, fr, brain_mask, axes)
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
        return _blob(d * (1 + wobble * lob), radius_mm, edge)

    cyst = np.zeros_like(r)
    if rng.random() < v.cyst_prob:  # CSF-like cysts in the core, labelled tumour (Fig. 7)
        for _ in range(int(rng.integers(1, 4))):
            c = _pick(rng, r < 0.45)
            if c is not None:
                cyst = np.maximum(cyst, ball(c, max(radius * rng.uniform(0.15, 0.35), 2.5), 0.15))
    enh = np.zeros_like(r)
    if rng.random() < v.enhancing_prob[grade - 2]:
        c = _pick(rng, (r < 0.6) & (cyst < 0.5))
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


def _anatomy(rng: np.random.Generator, shape: tuple, vox: tuple, v: Variant):
    """Deformed template: tissue fractions ``fr`` (X, Y, Z each), brain mask, ventricle and
    periventricular maps, and the world (mm) coordinates of the grid axes."""
    tmpl = _template(tuple(round(x, 3) for x in vox))
    coords, axes = _deform(rng, shape, v)
    brain = np.empty(shape, np.float32)
    for x in range(shape[0]):  # slab by slab: map_coordinates copies coordinates to float64
        ndi.map_coordinates(tmpl["brain"], coords[:, x], brain[x], order=1, prefilter=False)
    np.clip(brain, 0, 1, out=brain)
    brain_mask = brain > 0.5
    brain *= brain_mask
    inside = coords[:, brain_mask]  # only inside the brain: ~20 % of the grid at full size
    del coords
    gm, wm, vent, pv = (np.zeros(shape, np.float32) for _ in range(4))
    for key, out in (("gm", gm), ("wm", wm), ("vent", vent), ("pv", pv)):
        out[brain_mask] = ndi.map_coordinates(tmpl[key], inside, order=1, prefilter=False)
    del inside
    scale = np.minimum(brain / np.maximum(gm + wm, 1e-6), 1.0)  # fractions never exceed the brain
    gm *= scale
    wm *= scale
    fr = {t: np.zeros(shape, np.float32) for t in ("tumour", "cyst", "enhancing", "cap", "choroid")}
    fr.update(gm=gm, wm=wm, brain=brain, csf=np.clip(brain - gm - wm, 0, 1))
    return fr, brain_mask, vent, pv, axes


def _add_distractors(rng, fr, brain_mask, vent, pv, axes, vox, v: Variant) -> None:
    """FLAIR-bright, unlabelled look-alikes (paper Fig. 6), into ``fr`` in place."""
    if rng.random() < v.cap_prob:  # periventricular caps, replacing parenchyma
        tau = rng.uniform(0.4, 0.6)  # thickness: where the horn-weighted proximity exceeds tau
        wobble = 1 + 0.25 * smooth_field(rng, axes, 15.0)
        cap = np.clip((pv * wobble - tau) / 0.12, 0, 1) * brain_mask
        fr["cap"] = cap * (fr["gm"] + fr["wm"])
        fr["gm"] *= 1 - cap
        fr["wm"] *= 1 - cap
    if rng.random() < v.choroid_prob:  # choroid-plexus glomus in the atrium, replacing CSF
        c = _pick(rng, brain_mask & (vent > 0.6) & (axes[1][None, :, None] < -25))
        if c is not None:
            box = tuple(
                slice(max(0, i - int(8 / w) - 1), i + int(8 / w) + 2) for i, w in zip(c, vox)
            )
            rel = [a[b] - a[i] for a, b, i in zip(axes, box, c)]
            d = np.sqrt(sum(g**2 for g in np.meshgrid(*rel, indexing="ij", sparse=True)))
            blob = _blob(d, rng.uniform(3.0, 5.5), max(1.0, 0.5 * min(vox))) * np.clip(
                vent[box], 0, 1
            )
            fr["choroid"][box] = np.minimum(blob, fr["csf"][box])
            fr["csf"][box] -= fr["choroid"][box]


def _render(rng, fr, brain_mask, axes, v: Variant) -> dict[str, np.ndarray]:
    """Seven sequences from tissue fractions: jittered table, bias, Rician noise, zero outside."""
    shape = brain_mask.shape
    idx = np.flatnonzero(brain_mask)
    frac = np.stack([fr[t].ravel()[idx] for t in TISSUES])  # (tissues, brain voxels)
    images = {}
    for mod in MODALITIES:
        table = np.array(
            [v.intensity_override.get((mod, t), x) for t, x in zip(TISSUES, INTENSITY[mod])],
            np.float32,
        )
        table *= np.exp(rng.normal(0, v.contrast_jitter, len(TISSUES))).astype(np.float32)
        table[TISSUES.index("wm")] = 1.0  # white matter is the reference
        gain = SCANNER_SCALE[mod] * (1.0 if mod == "adc" else rng.uniform(0.7, 1.3))
        bias = np.exp(rng.uniform(*v.bias) * smooth_field(rng, axes, 80.0)).ravel()[idx]
        signal = (table @ frac) * bias
        n = rng.standard_normal((2, idx.size), dtype=np.float32) * np.float32(rng.uniform(*v.noise))
        img = np.zeros(shape, np.float32)
        # Rician: magnitude of a complex signal with Gaussian noise in both channels.
        img.ravel()[idx] = gain * np.sqrt((signal + n[0]) ** 2 + n[1] ** 2)
        images[mod] = img
    return images


def simulate_subject(
    rng_seed: int | Sequence[int],
    shape: Sequence[int] = (240, 240, 155),
    variant: str = "default",
    index: int = 1,
) -> SimulatedSubject:
    """Simulate one subject in memory (no files): anatomy, distractors, tumour, seven sequences.

    Args:
        rng_seed: entropy for ``numpy.random.SeedSequence`` (``subject_seed(seed, i, variant)``).
        shape: voxels (X, Y, Z) over the fixed 240 x 240 x 155 mm field of view.
        variant: a ``VARIANTS`` preset name.
        index: subject number, only for the metadata ``ID``.

    Returns:
        A ``SimulatedSubject`` whose arrays all have shape ``shape``.
    """
    v = _variant(variant)
    shape = tuple(int(n) for n in shape)
    seed = (
        [int(rng_seed)] if isinstance(rng_seed, (int, np.integer)) else [int(x) for x in rng_seed]
    )
    meta = sample_metadata(seed, index, variant)
    rng = np.random.default_rng(np.random.SeedSequence([*seed, 1]))
    vox = tuple(f / n for f, n in zip(FOV_MM, shape))
    fr, brain_mask, vent, pv, axes = _anatomy(rng, shape, vox, v)
    # Distractors first, so that a tumour reaching them replaces them.
    _add_distractors(rng, fr, brain_mask, vent, pv, axes, vox, v)
    del pv
    label, cyst = _add_tumour(rng, fr, brain_mask, vent, axes, vox, v, int(meta["WHO CNS Grade"]))
    del vent
    b = np.maximum(fr["brain"], 1e-6)
    tissue = sum(fr[t] for t in ("gm", "wm", "tumour", "cyst", "enhancing", "cap"))
    parenchyma = brain_mask & ((tissue >= 0.5 * b) | (label > 0))
    distractor = brain_mask & (label == 0) & ((fr["cap"] > 0.4 * b) | (fr["choroid"] > 0.4 * b))
    del tissue, b
    return SimulatedSubject(
        images=_render(rng, fr, brain_mask, axes, v),
        label=label,
        parenchyma=parenchyma.astype(np.uint8),
        brain=brain_mask.astype(np.uint8),
        cyst=cyst,
        distractor=distractor,
        affine=grid_affine(shape),
        metadata=meta,
    )


# ----------------------------------------------------------------------------- files


def subject_id(index: int) -> str:
    """Folder/file id of subject ``index`` (1-based), as the release names them."""
    return f"UCSF-PDGM-{index:04d}"


def subject_files(out: Path, index: int) -> list[Path]:
    """Every file one subject owns: the seven sequences, then label, parenchyma, brain."""
    sid = subject_id(index)
    folder = Path(out) / f"{sid}_nifti"
    names = [SEQUENCE_SUFFIX[m] for m in MODALITIES] + list(MASK_SUFFIXES)
    return [folder / f"{sid}_{name}.nii.gz" for name in names]


def _save(array: np.ndarray, affine: np.ndarray, dtype: type, path: Path) -> None:
    """Write atomically (temp name, then rename) so an interrupted run leaves no half files."""
    img = nib.Nifti1Image(array, affine)
    # int16 + scale slope like scanner data: nibabel computes slope/intercept from the floats.
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    tmp = path.with_name(f".{path.name[:-7]}.partial.nii.gz")
    nib.save(img, tmp)
    os.replace(tmp, path)


def _write_subject(out: str, index: int, seed: int, shape: tuple, variant: str) -> int:
    """Simulate subject ``index`` and write the files it is missing; returns ``index``."""
    files = subject_files(Path(out), index)
    missing = [f for f in files if not f.exists()]
    if not missing:
        return index
    sub = simulate_subject(subject_seed(seed, index, variant), shape, variant, index)
    files[0].parent.mkdir(parents=True, exist_ok=True)
    arrays = [(sub.images[m], np.int16) for m in MODALITIES] + [
        (sub.label, np.uint8),
        (sub.parenchyma, np.uint8),
        (sub.brain, np.uint8),
    ]
    for path, (array, dtype) in zip(files, arrays):
        if path in missing:  # never overwrite: existing files came from the same arguments
            _save(array, sub.affine, dtype, path)
    return index


def _write_metadata(out: Path, n_subjects: int, seed: int, variant: str) -> None:
    rows = [
        sample_metadata(subject_seed(seed, i, variant), i, variant)
        for i in range(1, n_subjects + 1)
    ]
    with open(out / METADATA_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _prepare_out(out: Path, manifest: dict, overwrite: bool) -> None:
    """Refuse a folder holding something else; resume one made with the same arguments."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} is a file, not a folder; choose another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        try:
            previous = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            previous = None
        if previous != manifest:
            what = (
                "a synthetic set made with other arguments " + _describe(previous)
                + f", where this generator is version {GENERATOR_VERSION}"
                if isinstance(previous, dict)
                else f"{len(entries)} other entries"
            )
            raise DataError(
                f"output folder {out} is not empty (it holds {what}); choose an empty folder, "
                "re-run with the same arguments to resume, or pass --overwrite to replace it"
            )
    if overwrite:
        _remove_previous(out, manifest)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _describe(manifest: dict) -> str:
    keys = ("subjects", "seed", "shape", "variant", "version")
    return "(" + ", ".join(f"{k}={manifest.get(k)}" for k in keys) + ")"


def _remove_previous(out: Path, manifest: dict) -> None:
    """With --overwrite: delete the files a previous synthetic set wrote there, and only those."""
    try:
        previous = json.loads((out / MANIFEST).read_text())
        n_previous = int(previous["subjects"])
    except (OSError, ValueError, KeyError, TypeError):
        n_previous = 0
    for index in range(1, max(n_previous, manifest["subjects"]) + 1):
        files = subject_files(out, index)
        for f in files:
            f.unlink(missing_ok=True)
        folder = files[0].parent
        if folder.is_dir():
            for tmp in folder.glob(".*.partial.nii.gz"):
                tmp.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()


def generate_dataset(
    out: Path | str,
    n_subjects: int,
    seed: int,
    shape: Sequence[int] = (240, 240, 155),
    variant: str = "default",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Write ``n_subjects`` synthetic subjects in the UCSF-PDGM layout under ``out``.

    Args:
        out: folder to create (or resume: same arguments, or replace: ``overwrite``).
        n_subjects: subjects ``UCSF-PDGM-0001`` .. ``UCSF-PDGM-<n>``.
        seed: data set seed; subject i is seeded from (seed, i, variant).
        shape: voxels (X, Y, Z) over the fixed 240 x 240 x 155 mm field of view.
        variant: a ``VARIANTS`` preset (``default``, ``shifted``).
        workers: processes (default min(2, CPU count)); 1 runs in this process.
        overwrite: replace what is in ``out`` instead of refusing a non-empty folder.
        progress: show a rich progress bar.

    Returns:
        The subject ids written (or found complete), in order.

    Raises:
        ConfigError: bad arguments. DataError: ``out`` holds something else.
    """
    out = Path(out)
    _variant(variant)
    shape = tuple(int(n) for n in shape)
    if isinstance(n_subjects, bool) or int(n_subjects) < 1:
        raise ConfigError(f"--subjects must be at least 1, got {n_subjects}")
    if len(shape) != 3 or min(shape) < 8:
        raise ConfigError(f"--shape needs three sizes of at least 8 voxels, got {list(shape)}")
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    n_subjects = int(n_subjects)
    manifest = {
        "generator": "mutual_seg.data.synthetic",
        "version": GENERATOR_VERSION,
        "subjects": n_subjects,
        "seed": int(seed),
        "shape": list(shape),
        "variant": variant,
    }
    _prepare_out(out, manifest, overwrite)
    _write_metadata(out, n_subjects, int(seed), variant)
    indices = list(range(1, n_subjects + 1))
    from rich.progress import Progress  # lazy: workers never need it

    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task(f"synthetic subjects ({variant})", total=len(indices))
        if workers == 1 or len(indices) == 1:
            for i in indices:
                _write_subject(str(out), i, int(seed), shape, variant)
                bar.advance(task)
        else:
            # spawn: no fork of a process that runs rich's refresh thread
            with ProcessPoolExecutor(
                min(workers, len(indices)), mp_context=get_context("spawn")
            ) as pool:
                jobs = [
                    pool.submit(_write_subject, str(out), i, int(seed), shape, variant)
                    for i in indices
                ]
                for job in as_completed(jobs):
                    job.result()
                    bar.advance(task)
    return [subject_id(i) for i in indices]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like our other errors
        raise ConfigError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mutual_seg.data.synthetic`: 0 on success, 2 and one `error:` line otherwise."""
    parser = _Parser(
        prog="python -m mutual_seg.data.synthetic",
        description="Write a synthetic astrocytoma data set in the UCSF-PDGM layout.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--subjects", type=int, required=True, help="number of subjects")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(240, 240, 155),
        metavar=("X", "Y", "Z"),
        help="voxels over the fixed 240x240x155 mm field of view",
    )
    parser.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default min(2, CPUs))"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    try:
        args = parser.parse_args(argv)
        ids = generate_dataset(
            args.out,
            args.subjects,
            args.seed,
            args.shape,
            args.variant,
            args.workers,
            args.overwrite,
            progress=sys.stderr.isatty(),
        )
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(ids)} synthetic subjects ({args.variant}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
