"""Per-subject 3D segmentation metrics of the paper (section 3.5, eq. 2-8), distances in mm.

Every metric is computed on one subject's whole binary volume (never per slice), from the
confusion counts TP, FP, TN, FN:

    Dc  = 2TP / (FP + 2TP + FN)                      (eq. 2)
    Ac  = (TP + TN) / (TP + FP + TN + FN)            (eq. 3)
    Ac_brain = eq. 3 counted inside the brain mask only (not in the paper; see below)
    Re  = TP / (TP + FN)                             (eq. 4)
    Pr  = TP / (TP + FP)                             (eq. 5)
    IoU = TP / (TP + FP + FN)                        (eq. 6)
    Vs  = 1 - |FN - FP| / (2TP + FP + FN)            (eq. 7)
    Hd  = symmetric Hausdorff distance in mm          (eq. 8, ``medpy.metric.binary.hd``)

and two 95th-percentile Hausdorff variants, because the literature uses both and they can differ
by centimetres on the same prediction:

    HD95      ``medpy.metric.binary.hd95``: POOLS the surface distances of both directions, then
              takes the 95th percentile. A small distant false-positive blob adds few distances
              to the pool, so it is mostly ignored.
    HD95_max  max of the two DIRECTED 95th percentiles (MONAI ``compute_hausdorff_distance(...,
              percentile=95)`` / BraTS convention). The same blob can dominate the direction
              prediction -> reference, so HD95_max reports it.

Why ``Ac_brain``: over a whole 240x240x155 volume TN is ~99 % of the voxels, so eq. 3 gives about 0.99
for any decent mask, and nearly as much for an empty one when the tumour is small; it hardly tells
models apart. Counting only the voxels
inside the brain mask (where a tumour can be) keeps eq. 3 but removes the skull-stripped background.
Without a brain mask ``Ac_brain`` is NaN (skipped by ``summarize``).

Surfaces are ``mask XOR binary_erosion(mask)`` with 1-connectivity (``generate_binary_structure
(ndim, 1)``, medpy's default) and distances come from ``distance_transform_edt`` with the voxel
spacing, so anisotropic voxels are measured in mm. Both masks are first cropped to their joint
bounding box plus a margin: every distance is unchanged and medpy runs in milliseconds instead of
seconds on a 240x240x155 volume (unless a false positive lies far from the tumour: then the box,
and the time, grow back towards the whole volume, about 1-2 s).

Empty masks (medpy raises on them, so the convention is ours). The rule: a ratio whose denominator
is zero is 1 when BOTH masks are empty (nothing to find, nothing wrongly found) and 0 otherwise;
a distance to an empty mask is the image diagonal in mm, ``sqrt(sum((shape * spacing) ** 2))``,
the largest distance possible inside the image.

    ==========================  ====  ====  ====  ====  ====  =====  ===========================
    case                        Dc    IoU   Vs    Re    Pr    Ac     Hd, HD95, HD95_max
    ==========================  ====  ====  ====  ====  ====  =====  ===========================
    both empty                  1     1     1     1     1     1      0
    prediction empty only       0     0     0     0     0     eq. 3  diagonal
    reference empty only        0     0     0     0     0     eq. 3  diagonal
    ==========================  ====  ====  ====  ====  ====  =====  ===========================

(With one mask empty TP = 0, so every ratio with a non-zero denominator is 0 by its formula
anyway; the table only fixes the 0/0 cases: Pr with an empty prediction, Re with an empty
reference.)

Example::

    row = segmentation_metrics(pred, label, spacing=(3.0, 1.0, 1.0))  # one subject, (z, x, y) mm
    summary = summarize(rows)  # {"Dc": {"mean": ..., "std": ..., "n": ...}, ...}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from medpy.metric.binary import hd, hd95
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

METRIC_NAMES: tuple[str, ...] = ("Dc", "Ac", "Ac_brain", "Re", "Pr", "IoU", "Vs", "Hd", "HD95", "HD95_max")

# The crop is exact even without a margin (see _crop_to_joint_bbox); two background voxels cost
# almost nothing and keep every object off the crop edge, so nobody has to re-derive that proof.
_CROP_MARGIN = 2


def confusion(pred: np.ndarray, target: np.ndarray) -> tuple[int, int, int, int]:
    """Count the voxel-wise confusion of a binary prediction against the reference.

    Args:
        pred: Predicted mask, any shape; non-zero means tumour.
        target: Reference mask, same shape as ``pred``; non-zero means tumour.

    Returns:
        ``(tp, fp, tn, fn)`` as Python ints.
    """
    pred, target = _as_bool_pair(pred, target)
    tp = int(np.count_nonzero(pred & target))
    n_pred = int(np.count_nonzero(pred))
    n_target = int(np.count_nonzero(target))
    fp = n_pred - tp
    fn = n_target - tp
    tn = pred.size - tp - fp - fn
    return tp, fp, tn, fn


def dice_score(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice coefficient (eq. 2) of two masks, 1.0 when both are empty; cheap enough for validation.

    Args:
        pred: Predicted mask, any shape; non-zero means tumour.
        target: Reference mask, same shape.

    Returns:
        Dice in [0, 1].
    """
    pred, target = _as_bool_pair(pred, target)
    total = np.count_nonzero(pred) + np.count_nonzero(target)
    if total == 0:
        return 1.0
    return 2.0 * np.count_nonzero(pred & target) / total


def segmentation_metrics(
    pred: np.ndarray, target: np.ndarray, spacing: Sequence[float], brain: np.ndarray | None = None
) -> dict[str, float]:
    """All metrics of one subject: overlap ratios (eq. 2-7) and Hausdorff distances in mm (eq. 8).

    Args:
        pred: Predicted mask [D0, D1, D2] (any ndim works); non-zero means tumour.
        target: Reference mask, same shape as ``pred``.
        spacing: Voxel size in mm along each axis of the arrays (e.g. from the NIfTI header's
            zooms, in array-axis order), one positive value per dimension.

    Returns:
        ``{name: value}`` for every name in ``METRIC_NAMES``, as Python floats; empty masks follow
        the table in the module docstring.

    Raises:
        ValueError: shapes differ, the volume is empty, or ``spacing`` does not give one positive
            value per axis.
    """
    pred, target = _as_bool_pair(pred, target)
    spacing_arr = _check_spacing(spacing, pred.ndim)
    tp, fp, tn, fn = confusion(pred, target)
    both_empty = tp + fp + fn == 0

    def ratio(num: float, den: float) -> float:
        # Only 0/0 needs a convention: 1 if there is nothing to find and nothing was found, else 0.
        if den == 0:
            return 1.0 if both_empty else 0.0
        return num / den

    row = {
        "Dc": ratio(2 * tp, fp + 2 * tp + fn),
        "Ac": ratio(tp + tn, tp + fp + tn + fn),
        "Ac_brain": brain_accuracy(pred, target, brain) if brain is not None else math.nan,
        "Re": ratio(tp, tp + fn),
        "Pr": ratio(tp, tp + fp),
        "IoU": ratio(tp, tp + fp + fn),
        "Vs": 1.0 - abs(fn - fp) / (2 * tp + fp + fn) if not both_empty else 1.0,
    }
    row.update(_distances(pred, target, spacing_arr, both_empty))
    return row


def brain_accuracy(pred: np.ndarray, target: np.ndarray, brain: np.ndarray) -> float:
    """Eq. 3 counted over the voxels inside ``brain`` only: (TP + TN) / voxels in the brain.

    Args:
        pred: Predicted mask [D0, D1, D2]; non-zero means tumour.
        target: Reference mask, same shape.
        brain: Brain mask, same shape; non-zero means brain.

    Returns:
        The accuracy in [0, 1]; NaN when the brain mask is empty (no voxel to count).
    """
    pred, target = _as_bool_pair(pred, target)
    brain, _ = _as_bool_pair(brain, pred)
    n = int(np.count_nonzero(brain))
    if n == 0:
        return math.nan
    return int(np.count_nonzero((pred == target) & brain)) / n


def directed_surface_distances(
    source: np.ndarray, reference: np.ndarray, spacing: Sequence[float]
) -> np.ndarray:
    """Distance in mm from every surface voxel of ``source`` to the nearest surface voxel of ``reference``.

    Same surfaces and distance transform as medpy (1-connectivity), so ``max`` of both directions
    is medpy's ``hd``.

    Args:
        source: Non-empty mask [D0, D1, D2].
        reference: Non-empty mask, same shape.
        spacing: Voxel size in mm per axis.

    Returns:
        1D float array, one distance per surface voxel of ``source``.

    Raises:
        ValueError: a mask is empty (the distance is undefined), or shapes/spacing are invalid.
    """
    source, reference = _as_bool_pair(source, reference)
    spacing_arr = _check_spacing(spacing, source.ndim)
    if not source.any() or not reference.any():
        raise ValueError(
            "directed_surface_distances needs two non-empty masks; "
            "use segmentation_metrics, which handles empty masks"
        )
    footprint = generate_binary_structure(source.ndim, 1)
    source_surface = source ^ binary_erosion(source, structure=footprint)
    reference_surface = reference ^ binary_erosion(reference, structure=footprint)
    # The EDT measures the distance to the nearest zero, so the reference surface must be the zeros.
    dist = distance_transform_edt(~reference_surface, sampling=spacing_arr)
    return dist[source_surface]


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric over subjects, ignoring NaN and missing values.

    The std is the SAMPLE standard deviation (ddof=1), as papers report it for a cohort; it is 0.0
    for a single value. Keys of a row that are not in ``METRIC_NAMES`` (e.g. ``subject``) are
    ignored, and a metric missing from a row (an older ``metrics.csv``) counts as NaN.

    Args:
        rows: One dict per subject, as returned by ``segmentation_metrics`` (or read back from
            ``metrics.csv``, values as numbers or numeric strings).

    Returns:
        ``{name: {"mean": m, "std": s, "n": count}}`` for every name in ``METRIC_NAMES``, where
        ``n`` is the number of finite values used; mean and std are NaN when ``n == 0``.

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("summarize got no rows: there are no per-subject metrics to summarize")
    summary: dict[str, dict[str, float]] = {}
    for name in METRIC_NAMES:
        values = np.array([float(row.get(name, math.nan)) for row in rows], dtype=np.float64)
        values = values[~np.isnan(values)]
        n = int(values.size)
        if n == 0:
            mean, std = math.nan, math.nan
        else:
            mean = float(values.mean())
            std = float(values.std(ddof=1)) if n > 1 else 0.0
        summary[name] = {"mean": mean, "std": std, "n": n}
    return summary


def _distances(
    pred: np.ndarray, target: np.ndarray, spacing: np.ndarray, both_empty: bool
) -> dict[str, float]:
    """Hd, HD95 (pooled, medpy) and HD95_max (max of directed) in mm, with the empty-mask rule."""
    if both_empty:
        return {"Hd": 0.0, "HD95": 0.0, "HD95_max": 0.0}
    if not pred.any() or not target.any():
        diagonal = float(np.sqrt(np.sum((np.asarray(pred.shape) * spacing) ** 2)))
        return {"Hd": diagonal, "HD95": diagonal, "HD95_max": diagonal}
    pred, target = _crop_to_joint_bbox(pred, target, _CROP_MARGIN)
    forward = directed_surface_distances(pred, target, spacing)
    backward = directed_surface_distances(target, pred, spacing)
    return {
        "Hd": float(hd(pred, target, voxelspacing=spacing)),
        "HD95": float(hd95(pred, target, voxelspacing=spacing)),
        "HD95_max": float(max(np.percentile(forward, 95), np.percentile(backward, 95))),
    }


def _crop_to_joint_bbox(
    a: np.ndarray, b: np.ndarray, margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crop two masks to the bounding box of their union plus ``margin`` voxels (clipped to the array).

    Distances are unchanged: every surface voxel stays inside, the EDT between voxels inside does
    not depend on the array around them, and the erosion is the same (a voxel on a face of the
    joint box already had a background neighbour outside it, so it was a surface voxel before).
    """
    coords = np.nonzero(a | b)
    box = tuple(
        slice(max(int(c.min()) - margin, 0), min(int(c.max()) + margin + 1, size))
        for c, size in zip(coords, a.shape)
    )
    return a[box], b[box]


def _as_bool_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two masks of equal, non-empty shape and return them as bool arrays."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from reference shape {target.shape}; "
            "resample the prediction onto the label grid before computing metrics"
        )
    if pred.size == 0:
        raise ValueError(f"masks of shape {pred.shape} hold no voxels; pass a non-empty volume")
    return pred.astype(bool, copy=False), target.astype(bool, copy=False)


def _check_spacing(spacing: Sequence[float], ndim: int) -> np.ndarray:
    """Return the spacing as a float array, one positive finite value per axis."""
    arr = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if arr.size != ndim or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(
            f"spacing {tuple(np.asarray(spacing).reshape(-1).tolist())} must give one positive "
            f"voxel size in mm per axis of the {ndim}D masks; pass e.g. the NIfTI header zooms"
        )
    return arr
