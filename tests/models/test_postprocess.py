"""Removal of small predicted components: sizes in mm^3 with anisotropic voxels, 26-connectivity, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mutual_seg.masks import remove_small_components
from mutual_seg.metrics import segmentation_metrics


def _two_blobs() -> np.ndarray:
    mask = np.zeros((10, 20, 20), dtype=bool)
    mask[2:6, 2:8, 2:8] = True  # 144 voxels: the tumour
    mask[8, 15, 15] = mask[9, 16, 16] = True  # 2 voxels touching by a corner only: one speck
    return mask


def test_specks_below_the_volume_go_and_the_tumour_stays():
    mask = _two_blobs()
    out = remove_small_components(mask, (1.0, 1.0, 1.0), min_volume_mm3=3.0)
    assert out.sum() == 144 and out[2:6, 2:8, 2:8].all()
    # the speck's two voxels touch only by a corner: with 26-connectivity they are one 2 mm^3 component
    assert remove_small_components(mask, (1.0, 1.0, 1.0), min_volume_mm3=2.0).sum() == 146


def test_volume_threshold_uses_the_voxel_spacing():
    mask = _two_blobs()
    # 3 mm slices: the speck is 2 voxels * 3 mm^3 = 6 mm^3 and survives a 5 mm^3 threshold
    assert remove_small_components(mask, (3.0, 1.0, 1.0), min_volume_mm3=5.0).sum() == 146
    assert remove_small_components(mask, (3.0, 1.0, 1.0), min_volume_mm3=7.0).sum() == 144
    # the tumour itself (144 * 3 = 432 mm^3) goes when the threshold is above it
    assert not remove_small_components(mask, (3.0, 1.0, 1.0), min_volume_mm3=433.0).any()


def test_zero_keeps_everything_and_empty_stays_empty():
    mask = _two_blobs()
    assert np.array_equal(remove_small_components(mask, (1, 1, 1), 0.0), mask)
    assert not remove_small_components(np.zeros((4, 4, 4), bool), (1, 1, 1), 10.0).any()


def test_removing_a_distant_speck_fixes_the_hausdorff_distance():
    mask = _two_blobs()
    reference = np.zeros_like(mask)
    reference[2:6, 2:8, 2:8] = True
    before = segmentation_metrics(mask, reference, (1.0, 1.0, 1.0))
    after = segmentation_metrics(remove_small_components(mask, (1.0, 1.0, 1.0), 3.0), reference, (1.0, 1.0, 1.0))
    assert before["Hd"] > 10 and after["Hd"] == 0.0 and after["Dc"] == 1.0


@pytest.mark.parametrize(("shape", "spacing", "volume"), [((4, 4), (1, 1, 1), 1.0), ((4, 4, 4), (1, 1), 1.0),
                                                           ((4, 4, 4), (1, 1, 1), -1.0)])
def test_bad_arguments_raise(shape, spacing, volume):
    with pytest.raises(ValueError):
        remove_small_components(np.ones(shape, bool), spacing, volume)
