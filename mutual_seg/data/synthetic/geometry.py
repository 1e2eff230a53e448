"""Geometry of the synthetic set: the fixed field of view, its affine, and smooth random fields.

A 240 x 240 x 155 mm field of view in LPS orientation (``aff2axcodes`` = L, P, S); the shape
changes the voxel count, not the field of view, so tiny test trees are small brains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FOV_MM = (240.0, 240.0, 155.0)
# World (MNI mm) point at the centre of the field of view: the brain's centre in x/y, and in z
# high enough that the vertex keeps a few mm of margin; the lowest brainstem is cut, as in BraTS.
FOV_CENTRE = (0.0, -17.0, 13.5)
# Global scaling pivots near the top of the brain, so the vertex stays inside the field of view.
SCALE_CENTRE = np.array([0.0, -17.0, 20.0])


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



def blob(d_mm: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """Soft ball: fraction 1 inside, 0 outside, linear over ``edge`` mm (partial volume)."""
    return np.clip((radius - d_mm) / edge + 0.5, 0.0, 1.0)


def pick(rng: np.random.Generator, mask: np.ndarray, weight: np.ndarray | None = None):
    """A random voxel index of ``mask`` (optionally weighted), or None if the mask is empty."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    if weight is None:
        return np.unravel_index(rng.choice(idx), mask.shape)
    w = weight.ravel()[idx].astype(np.float64)  # choice() wants p summing to 1 in float64
    return np.unravel_index(rng.choice(idx, p=w / w.sum()), mask.shape)

