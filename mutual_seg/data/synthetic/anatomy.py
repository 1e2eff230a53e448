"""One random anatomy: the template deformed (rotation, scaling, smooth warp) onto the target grid.

Returns tissue fractions (partial volume) rather than labels, so that rendering gets realistic
boundaries at any voxel size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from mutual_seg.data.synthetic.contrasts import Variant
from mutual_seg.data.synthetic.geometry import SCALE_CENTRE, grid_affine, smooth_field
from mutual_seg.data.synthetic.template import mni, template


def deform(rng: np.random.Generator, shape: tuple[int, int, int], variant: Variant):
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
    tmpl = mni()["affine"]
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



def anatomy(rng: np.random.Generator, shape: tuple, vox: tuple, v: Variant):
    """Deformed template: tissue fractions ``fr`` (X, Y, Z each), brain mask, ventricle and
    periventricular maps, and the world (mm) coordinates of the grid axes."""
    tmpl = template(tuple(round(x, 3) for x in vox))
    coords, axes = deform(rng, shape, v)
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

