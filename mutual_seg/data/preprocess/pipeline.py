"""One subject from NIfTI files to checked, normalized arrays (no disk writes).

Everything here is pure so that ``predict`` can preprocess a new patient exactly as training did;
:mod:`mutual_seg.data.cache` (which imports this package, never the reverse) stores the results as
memory-mappable ``.npy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from mutual_seg.data.brain_mask import estimate_brain_mask
from mutual_seg.data.nifti import load_volume
from mutual_seg.data.preprocess.geometry import check_geometry
from mutual_seg.data.preprocess.labels import binarize_label
from mutual_seg.data.preprocess.mask import choose_mask
from mutual_seg.data.preprocess.normalize import normalize_minmax, normalize_zscore
from mutual_seg.data.preprocess.settings import PreprocessSettings
from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError, subject_error


class Preprocessed(TypedDict):
    """Output of :func:`preprocess_subject`; arrays keep nibabel's (X, Y, Z) order."""

    images: dict[str, np.ndarray]  # modality -> float32 (X, Y, Z), normalized
    label: np.ndarray | None  # uint8 (O, X, Y, Z), or None when the subject has no label
    mask: (
        np.ndarray
    )  # uint8 (X, Y, Z): the mask normalization used (union over modalities for "nonzero")
    mask_source: str  # "parenchyma" | "brain" | "nonzero" | "estimated"
    affine: np.ndarray  # (4, 4) float64, of the reference (first) modality
    zooms: tuple[float, float, float]  # voxel size in mm, (x, y, z)

def preprocess_subject(
    subject: Subject,
    modalities: Sequence[str],
    settings: PreprocessSettings,
    require_label: bool = False,
    *,
    mask_choice: tuple[str, Path | None] | None = None,
) -> Preprocessed:
    """Load, check and normalize one subject (no disk writes).

    Every volume is loaded and checked against the first modality's shape and affine before
    anything is returned, so callers can write results knowing the whole subject is valid.

    Args:
        subject: file paths of one scan.
        modalities: modality names to load, e.g. ``["flair", "t2w"]``; the first is the geometry reference.
        settings: normalization and label settings.
        require_label: raise if the subject has no label (training/testing); ``predict`` passes False.
        mask_choice: precomputed :func:`choose_mask` result (the cache passes it to avoid repeated warnings),
            or ``("estimated", None)``: normalize inside a brain mask estimated from the images
            (:func:`mutual_seg.data.brain_mask.estimate_brain_mask`; ``predict`` without a mask file).

    Returns:
        A :class:`Preprocessed` dict; arrays in nibabel (X, Y, Z) order.

    Raises:
        DataError: any missing, unreadable or inconsistent input (one line naming subject and file).
    """
    if not modalities:
        raise ConfigError("no modalities requested; set the modality group (e.g. modality=flair)")
    missing = [m for m in modalities if m not in subject.images]
    if missing:
        raise subject_error(
            subject.id,
            None,
            f"no image for modalities {missing} (found {sorted(subject.images)})",
            "pick available modalities or check the layout's file names",
        )
    source, mask_path = mask_choice if mask_choice is not None else choose_mask(subject)

    ref_path = Path(subject.images[modalities[0]])
    raw: dict[str, np.ndarray] = {}
    affine, zooms = np.eye(4), (1.0, 1.0, 1.0)
    for i, m in enumerate(modalities):
        path = subject.images[m]  # a Path, or a ChannelPath (one volume of a 4D file)
        data, aff, zm = load_volume(path, subject.id)
        if i == 0:
            affine, zooms = aff, zm
        else:
            check_geometry(
                subject.id, path, data.shape, aff, ref_path, raw[modalities[0]].shape, affine
            )
        raw[m] = data
    shape = raw[modalities[0]].shape

    label = None
    if subject.label is None:
        if require_label:
            raise subject_error(
                subject.id,
                None,
                "no label file",
                "check the layout's label file name, or drop the subject",
            )
    else:
        lab, aff, _ = load_volume(subject.label, subject.id)
        check_geometry(subject.id, Path(subject.label), lab.shape, aff, ref_path, shape, affine)
        label = binarize_label(
            lab,
            settings.label_outputs,
            settings.label_allowed,
            subject_id=subject.id,
            path=subject.label,
        )

    if mask_path is not None:
        m_data, aff, _ = load_volume(mask_path, subject.id)
        check_geometry(subject.id, mask_path, m_data.shape, aff, ref_path, shape, affine)
        shared_mask = m_data != 0
        if not shared_mask.any():
            raise subject_error(
                subject.id,
                mask_path,
                f"{source} mask is empty (all zero)",
                "regenerate the mask or remove it from the layout",
            )
        masks = {m: shared_mask for m in modalities}
    elif source == "estimated":  # predict without a mask file: the brain estimated from the images
        shared_mask = estimate_brain_mask(list(raw.values()))
        if not shared_mask.any():
            raise subject_error(subject.id, ref_path, "every image is all zero", "check the input images")
        masks = {m: shared_mask for m in modalities}
    else:
        masks = {m: raw[m] != 0 for m in modalities}
        shared_mask = np.logical_or.reduce(list(masks.values()))

    images: dict[str, np.ndarray] = {}
    for m in modalities:
        path = subject.images[m]  # named in errors: a file, or a 4D file's volume
        if mask_path is None and not masks[m].any():
            raise subject_error(
                subject.id,
                path,
                "image is all zero, so there is no non-zero mask to normalize in",
                "provide a brain or parenchyma mask, or fix the image",
            )
        try:
            if settings.normalization == "minmax":
                images[m] = normalize_minmax(raw[m], masks[m], settings.alpha, settings.beta)
            else:
                images[m] = normalize_zscore(raw[m], masks[m])
        except ValueError as err:
            where = (
                f"{source} mask {mask_path.name}"
                if mask_path is not None
                else "the estimated brain mask" if source == "estimated" else "its non-zero voxels"
            )
            raise subject_error(
                subject.id,
                path,
                f"{err} ({where})",
                "check the image and the mask; a constant image cannot be normalized",
            ) from None
    return Preprocessed(
        images=images,
        label=label,
        mask=shared_mask.astype(np.uint8),
        mask_source=source,
        affine=affine,
        zooms=zooms,
    )
