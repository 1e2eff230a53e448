"""The anatomy template: the MNI152 2009 maps nilearn ships (1 mm, no download), with derived maps.

Besides brain/GM/WM, the lateral ventricles and a periventricular-cap weight are derived once per
process; :func:`template` blurs them to a target voxel size so coarse grids get partial volume too.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage as ndi


@functools.lru_cache(maxsize=1)
def mni() -> dict[str, np.ndarray]:
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
def template(voxel_mm: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Template maps blurred to the target voxel size, so coarse grids get partial volume too."""
    maps = mni()
    # Gaussian with the variance of a voxel-sized box minus that of the 1 mm template voxel.
    sigma = [math.sqrt(max(v * v - 1.0, 0.0) / 12.0) for v in voxel_mm]
    if max(sigma) < 0.3:
        return maps
    out = dict(maps)
    for key in ("brain", "gm", "wm", "vent", "pv"):
        out[key] = ndi.gaussian_filter(maps[key], sigma, truncate=3.0)
    return out
