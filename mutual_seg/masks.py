"""Geometry of 3D masks, shared by data/ and inference: connected components and the brain's bounding box.

Post-processing of predicted masks: a 2D network predicts each slice on its own, so a few voxels that look like tumour far from the tumour
survive as specks. They barely move Dice but dominate the Hausdorff distance (a single speck 10 cm away
makes Hd 100 mm). Removing components below a volume in mm^3 is the usual remedy (nnU-Net learns
whether to keep only the largest component); the paper does none, so it is off unless configured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

BOX_MARGIN = 8  # voxels kept around the brain in-plane by whole-volume inference: the receptive field sees background

# ``module.largest_component``: off (the paper), on, or decided on validation (``inference.choose_largest_component``).
LARGEST_COMPONENT_CHOICES: tuple[bool | str, ...] = (False, True, "auto")


def is_largest_component_choice(value: object) -> bool:
    """Whether ``value`` is one of :data:`LARGEST_COMPONENT_CHOICES` by value and type (1 and 0 are not booleans)."""
    return any(type(value) is type(choice) and value == choice for choice in LARGEST_COMPONENT_CHOICES)

# 26-connectivity: voxels touching by a corner belong to the same component.
_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def remove_small_components(mask: np.ndarray, spacing: Sequence[float], min_volume_mm3: float) -> np.ndarray:
    """The mask without its 3D connected components smaller than ``min_volume_mm3``.

    Args:
        mask: [Z, X, Y] boolean prediction of one output map.
        spacing: voxel size in mm along the mask's axes.
        min_volume_mm3: smallest component kept; 0 keeps everything.

    Returns:
        A boolean array of the same shape (the input itself when nothing is removed).
    """
    if mask.ndim != 3 or len(spacing) != 3:
        raise ValueError(f"expected a 3D mask and 3 spacings, got shape {mask.shape} and spacing {tuple(spacing)}")
    if min_volume_mm3 < 0:
        raise ValueError(f"min_volume_mm3 must be >= 0, got {min_volume_mm3}")
    mask = mask.astype(bool, copy=False)
    if min_volume_mm3 == 0 or not mask.any():
        return mask
    labels, count = ndimage.label(mask, structure=_FULL_CONNECTIVITY)
    voxel_mm3 = float(np.prod(spacing))
    sizes_mm3 = np.bincount(labels.ravel(), minlength=count + 1) * voxel_mm3
    keep = sizes_mm3 >= min_volume_mm3
    keep[0] = False  # background
    return keep[labels]


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Only the largest 3D connected component (26-connectivity) of a [Z, X, Y] mask.

    For a single tumour per scan (``mutual-seg-predict --largest-component``); an empty mask stays empty.
    """
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=_FULL_CONNECTIVITY)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # background
    return labels == int(sizes.argmax())


def brain_box(mask: Tensor | None, margin: int = BOX_MARGIN) -> tuple[Tensor, slice, slice] | None:
    """Slices with brain and the in-plane box around the brain of a [Z, X, Y] mask.

    Returns:
        (indices of the slices holding brain, x range, y range widened by ``margin``), or None when
        there is no mask or it is empty (then the whole volume is predicted).
    """
    if mask is None or not bool(mask.any()):
        return None
    mask = mask.bool()
    slices = torch.nonzero(mask.flatten(1).any(dim=1)).flatten()
    ranges = []
    for axis, other in ((1, 2), (2, 1)):
        hits = torch.nonzero(mask.any(dim=other).any(dim=0)).flatten()
        ranges.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, mask.shape[axis])))
    return slices, ranges[0], ranges[1]
