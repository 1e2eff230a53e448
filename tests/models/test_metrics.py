import math

import numpy as np
import pytest
import torch
from medpy.metric import binary as mb
from torchmetrics.functional.segmentation import dice_score as tm_dice_score

from mutual_seg import metrics as metrics_module
from mutual_seg.metrics import (
    METRIC_NAMES,
    confusion,
    dice_score,
    directed_surface_distances,
    segmentation_metrics,
    summarize,
)


def _blobs(rng: np.random.Generator, shape: tuple[int, ...], threshold: float) -> np.ndarray:
    """Random blobby mask: smoothed noise above a threshold (several components, odd shapes)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(rng.standard_normal(shape), sigma=1.5) > threshold


def _cube(shape, lo, hi) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


# --- known answers ---------------------------------------------------------------------------


def test_overlap_metrics_known_answers_on_hand_made_masks():
    target = np.zeros((4, 4, 4), dtype=bool)
    pred = np.zeros((4, 4, 4), dtype=bool)
    target[1, 1, 0:4] = True  # 4 voxels
    pred[1, 1, 0:2] = True  # 2 of them ...
    pred[2, 2, 2] = True  # ... plus one false positive
    assert confusion(pred, target) == (2, 1, 59, 2)

    row = segmentation_metrics(pred, target, spacing=(1.0, 1.0, 1.0))
    assert list(row) == list(METRIC_NAMES)
    assert row["Dc"] == pytest.approx(4 / 7)
    assert row["Ac"] == pytest.approx(61 / 64)
    assert row["Re"] == pytest.approx(2 / 4)
    assert row["Pr"] == pytest.approx(2 / 3)
    assert row["IoU"] == pytest.approx(2 / 5)
    assert row["Vs"] == pytest.approx(1 - 1 / 7)
    assert dice_score(pred, target) == pytest.approx(4 / 7)
    assert all(isinstance(v, float) for v in row.values())


def test_hausdorff_is_in_mm_with_anisotropic_spacing():
    target = np.zeros((5, 5, 5), dtype=bool)
    target[2, 2, 2] = True
    along_last = np.roll(target, 1, axis=2)
    along_first = np.roll(target, 1, axis=0)
    spacing = (1.0, 1.0, 3.0)

    row = segmentation_metrics(along_last, target, spacing)
    assert row["Hd"] == pytest.approx(3.0)
    assert row["HD95"] == pytest.approx(3.0)
    assert row["HD95_max"] == pytest.approx(3.0)
    assert segmentation_metrics(along_first, target, spacing)["Hd"] == pytest.approx(1.0)


def test_hausdorff_takes_the_worse_direction():
    # pred = the target point plus a second point 2 voxels away along axis 1 (2 mm voxels):
    # target -> pred is 0 mm, pred -> target is 4 mm, so the symmetric Hd is 4 mm.
    target = np.zeros((3, 7, 3), dtype=bool)
    target[1, 2, 1] = True
    pred = target.copy()
    pred[1, 4, 1] = True
    spacing = (1.0, 2.0, 1.0)
    assert directed_surface_distances(target, pred, spacing).tolist() == [0.0]
    assert sorted(directed_surface_distances(pred, target, spacing).tolist()) == [0.0, 4.0]
    assert segmentation_metrics(pred, target, spacing)["Hd"] == pytest.approx(4.0)


def test_non_binary_labels_count_any_nonzero_as_tumour():
    target = np.zeros((3, 3, 3), dtype=np.uint8)
    target[1, 1, 1] = 2  # e.g. an un-binarized label value
    pred = (target > 0).astype(np.float32)
    row = segmentation_metrics(pred, target, (1, 1, 1))
    assert row["Dc"] == 1.0 and row["Hd"] == 0.0


# --- agreement with reference implementations --------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_medpy_and_torchmetrics_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = (17, 20, 9)
    pred = _blobs(rng, shape, 0.1)
    target = _blobs(rng, shape, 0.0)
    spacing = (0.9, 1.1, 2.5)
    row = segmentation_metrics(pred, target, spacing)

    assert row["Dc"] == pytest.approx(mb.dc(pred, target))
    assert row["IoU"] == pytest.approx(mb.jc(pred, target))
    assert row["Re"] == pytest.approx(mb.recall(pred, target))
    assert row["Pr"] == pytest.approx(mb.precision(pred, target))
    assert row["Hd"] == pytest.approx(mb.hd(pred, target, voxelspacing=spacing))
    assert row["HD95"] == pytest.approx(mb.hd95(pred, target, voxelspacing=spacing))
    # Our directed distances are medpy's: their max is medpy's Hd.
    forward = directed_surface_distances(pred, target, spacing)
    backward = directed_surface_distances(target, pred, spacing)
    assert max(forward.max(), backward.max()) == pytest.approx(row["Hd"])

    p = torch.from_numpy(pred).long()[None]  # [1, D0, D1, D2] class indices
    t = torch.from_numpy(target).long()[None]
    tm = tm_dice_score(p, t, num_classes=2, include_background=False, input_format="index")
    assert row["Dc"] == pytest.approx(float(tm))
    assert dice_score(pred, target) == pytest.approx(float(tm))


def test_cropping_leaves_every_distance_unchanged():
    rng = np.random.default_rng(7)
    shape = (30, 26, 22)
    pred = np.zeros(shape, dtype=bool)
    target = np.zeros(shape, dtype=bool)
    pred[8:20, 6:18, 5:15] = _blobs(rng, (12, 12, 10), -0.2)
    target[9:22, 7:19, 4:16] = _blobs(rng, (13, 12, 12), -0.3)
    pred[0:3, 10:13, 0:4] = True  # touches two array borders: crop must clip, not shift
    spacing = (1.0, 0.7, 2.0)

    cropped = segmentation_metrics(pred, target, spacing)
    forward = directed_surface_distances(pred, target, spacing)
    backward = directed_surface_distances(target, pred, spacing)
    assert cropped["Hd"] == pytest.approx(mb.hd(pred, target, voxelspacing=spacing))
    assert cropped["HD95"] == pytest.approx(mb.hd95(pred, target, voxelspacing=spacing))
    expected_max = max(np.percentile(forward, 95), np.percentile(backward, 95))
    assert cropped["HD95_max"] == pytest.approx(expected_max)
    # ... and the crop really is smaller than the volume, so the test exercises it.
    small, _ = metrics_module._crop_to_joint_bbox(pred, target, 2)
    assert small.size < pred.size


def test_distant_false_positive_blob_hides_in_pooled_hd95_but_not_in_hd95_max():
    shape = (40, 12, 12)
    target = _cube(shape, (2, 2, 2), (10, 10, 10))  # 8^3 cube: 296 surface voxels
    pred = target | _cube(shape, (34, 4, 4), (37, 7, 7))  # + a 3^3 blob (26 surface voxels) far away
    row = segmentation_metrics(pred, target, (1.0, 1.0, 1.0))
    # Pooled: 26 far distances out of 618 (< 5 %) -> 95th percentile is 0.
    assert row["HD95"] == pytest.approx(0.0)
    # pred -> target: 26 of 322 (> 5 %) -> the blob's distance (>= 25 mm) shows.
    assert row["HD95_max"] >= 25.0
    assert row["Hd"] == pytest.approx(row["HD95_max"], rel=0.2)


# --- empty masks -------------------------------------------------------------------------------


def test_both_empty_is_a_perfect_score():
    empty = np.zeros((4, 5, 6), dtype=bool)
    row = segmentation_metrics(empty, empty, (1, 2, 3), brain=~empty)
    assert row == {
        "Dc": 1.0, "Ac": 1.0, "Ac_brain": 1.0, "Re": 1.0, "Pr": 1.0, "IoU": 1.0, "Vs": 1.0,
        "Hd": 0.0, "HD95": 0.0, "HD95_max": 0.0,
    }
    assert dice_score(empty, empty) == 1.0


@pytest.mark.parametrize("which_empty", ["pred", "target"])
def test_one_empty_mask_scores_zero_and_the_image_diagonal(which_empty):
    shape, spacing = (4, 5, 6), (1.0, 2.0, 3.0)
    empty = np.zeros(shape, dtype=bool)
    full = _cube(shape, (1, 1, 1), (3, 3, 3))  # 8 voxels
    pred, target = (empty, full) if which_empty == "pred" else (full, empty)
    row = segmentation_metrics(pred, target, spacing)
    diagonal = math.sqrt(4**2 + 10**2 + 18**2)
    for name in ("Dc", "IoU", "Vs", "Re", "Pr"):
        assert row[name] == 0.0, name
    assert row["Ac"] == pytest.approx((120 - 8) / 120)
    for name in ("Hd", "HD95", "HD95_max"):
        assert row[name] == pytest.approx(diagonal), name
    assert dice_score(pred, target) == 0.0


def test_directed_distances_refuse_empty_masks():
    with pytest.raises(ValueError, match="non-empty"):
        directed_surface_distances(np.zeros((3, 3, 3)), np.ones((3, 3, 3)), (1, 1, 1))


# --- input checks ------------------------------------------------------------------------------


def test_bad_inputs_raise_one_line_value_errors():
    a = np.zeros((3, 3, 3), dtype=bool)
    with pytest.raises(ValueError, match="differs from reference shape"):
        segmentation_metrics(a, np.zeros((3, 3, 4), dtype=bool), (1, 1, 1))
    with pytest.raises(ValueError, match="one positive"):
        segmentation_metrics(a, a, (1, 1))
    with pytest.raises(ValueError, match="one positive"):
        segmentation_metrics(a, a, (1, 0, 1))
    with pytest.raises(ValueError, match="no voxels"):
        confusion(np.zeros((0, 3)), np.zeros((0, 3)))


# --- summarize ---------------------------------------------------------------------------------


def test_summarize_mean_and_sample_std_ignoring_nan_and_extra_keys():
    rows = [
        {"subject": "a", **{n: 0.5 for n in METRIC_NAMES}},
        {"subject": "b", **{n: 0.7 for n in METRIC_NAMES}},
        {"subject": "c", **{n: 0.9 for n in METRIC_NAMES}},
        {"subject": "d", **{n: float("nan") for n in METRIC_NAMES}},
    ]
    summary = summarize(rows)
    assert list(summary) == list(METRIC_NAMES)
    assert summary["Dc"]["mean"] == pytest.approx(0.7)
    assert summary["Dc"]["std"] == pytest.approx(0.2)  # sample std (ddof=1); population would be 0.163
    assert summary["Dc"]["n"] == 3


def test_summarize_single_row_missing_keys_and_no_rows():
    summary = summarize([{"Dc": "0.8", "Hd": 4.0}])  # values as read back from a CSV
    assert summary["Dc"] == {"mean": 0.8, "std": 0.0, "n": 1}
    assert summary["Hd"]["mean"] == 4.0
    assert summary["HD95_max"]["n"] == 0 and math.isnan(summary["HD95_max"]["mean"])
    with pytest.raises(ValueError, match="no rows"):
        summarize([])


def test_ac_brain_is_eq3_counted_inside_the_brain_mask_only():
    # 4x4x4 volume; the brain is the 2x4x4 half z < 2; counts inside it done by hand.
    target = np.zeros((4, 4, 4), dtype=bool)
    pred = np.zeros((4, 4, 4), dtype=bool)
    brain = np.zeros((4, 4, 4), dtype=bool)
    brain[:2] = True  # 32 voxels
    target[1, 1, 0:4] = True  # 4 tumour voxels, all in the brain
    pred[1, 1, 0:2] = True  # TP = 2, FN = 2
    pred[0, 0, 0] = True  # FP inside the brain
    pred[3, 3, 3] = True  # FP outside: counts for Ac, not for Ac_brain
    row = segmentation_metrics(pred, target, spacing=(1.0, 1.0, 1.0), brain=brain)
    assert row["Ac"] == pytest.approx((2 + 64 - 2 - 2 - 2) / 64)  # (TP + TN) / all voxels, eq. 3
    assert row["Ac_brain"] == pytest.approx((32 - 2 - 1) / 32)  # wrong inside the brain: 2 FN + 1 FP
    assert row["Ac_brain"] < row["Ac"]
    # Without a brain mask the column is NaN, and summarize skips it.
    no_brain = segmentation_metrics(pred, target, spacing=(1.0, 1.0, 1.0))
    assert np.isnan(no_brain["Ac_brain"])
    assert summarize([no_brain])["Ac_brain"]["n"] == 0
