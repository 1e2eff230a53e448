"""A brain mask estimated from the images, for new patients who come without one (``predict``).

Released data (UCSF-PDGM, BraTS) are skull-stripped: every voxel outside the brain is exactly 0.
So the brain is the union of the non-zero voxels of the supplied sequences, with holes filled
(dark CSF or necrosis can be exactly 0 after noise-free exports) and only the largest 3D connected
component kept (isolated non-zero specks left over by skull stripping are not brain).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from mutual_seg.masks import keep_largest_component


def estimate_brain_mask(images: Sequence[np.ndarray]) -> np.ndarray:
    """Brain mask of skull-stripped volumes.

    Args:
        images: co-registered volumes of one subject, each (X, Y, Z).

    Returns:
        bool (X, Y, Z): non-zero in any image, holes filled, largest component; all False if every
        voxel is zero.
    """
    nonzero = np.logical_or.reduce([np.asarray(image) != 0 for image in images])
    return keep_largest_component(ndimage.binary_fill_holes(nonzero))
