"""Intensity normalization inside a mask, applied to the whole volume.

Normalization follows the paper's eq. 1 (Seshimo & Rashed 2024, sec. 3.4):
``x_hat = alpha + (x - x_min) (beta - alpha) / (x_max - x_min)`` with the minimum and maximum
taken inside the brain parenchyma and the map applied to the whole volume; z-score for comparison.
"""

from __future__ import annotations

import numpy as np


def normalize_minmax(x: np.ndarray, mask: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Paper eq. 1: map the mask's [min, max] linearly onto [alpha, beta], applied to the whole volume.

    Voxels outside the mask are NOT clipped or zeroed: they follow the same linear map, so
    background (x = 0 in skull-stripped scans) lands at or below alpha and bright tumour outside
    the parenchyma may exceed beta. One affine map per volume keeps contrasts intact for the net.

    Args:
        x: image of any shape, e.g. (X, Y, Z).
        mask: same shape, non-zero inside the region whose min/max define the map.
        alpha: value the mask minimum maps to.
        beta: value the mask maximum maps to.

    Returns:
        float32 array shaped like ``x``.

    Raises:
        ValueError: empty mask, or a constant image inside the mask (callers add the subject).
    """
    inside = _inside(x, mask)
    lo, hi = float(inside.min()), float(inside.max())
    if hi == lo:
        raise ValueError(f"image is constant ({lo:g}) inside the normalization mask")
    scale = (beta - alpha) / (hi - lo)
    return ((x.astype(np.float32) - np.float32(lo)) * np.float32(scale) + np.float32(alpha)).astype(
        np.float32
    )


def normalize_zscore(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Z-score with mean and standard deviation taken inside the mask, applied to the whole volume.

    Args:
        x: image of any shape, e.g. (X, Y, Z).
        mask: same shape, non-zero inside the reference region.

    Returns:
        float32 array shaped like ``x`` (mask mean 0, std 1).

    Raises:
        ValueError: empty mask, or a constant image inside the mask.
    """
    inside = _inside(x, mask).astype(np.float64)
    mean, std = float(inside.mean()), float(inside.std())
    if std == 0.0:
        raise ValueError(f"image is constant ({mean:g}) inside the normalization mask")
    return ((x.astype(np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def _inside(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if x.shape != mask.shape:
        raise ValueError(f"image shape {x.shape} and mask shape {mask.shape} differ")
    inside = x[mask.astype(bool)]
    if inside.size == 0:
        raise ValueError("normalization mask is empty")
    return inside
