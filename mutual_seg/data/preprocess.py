"""Load, validate and normalize one subject: NIfTI files in, checked float32/uint8 arrays out.

Everything here is pure (no disk writes) so that ``predict`` can preprocess a new patient exactly
as training did; :mod:`mutual_seg.data.cache` (which imports this module, never the reverse)
stores the results as memory-mappable ``.npy``. :class:`PreprocessSettings` is built once by Hydra
from ``data.preprocessing``, keys the cache, and is saved in every checkpoint for ``predict``.

Normalization follows the paper's eq. 1 (Seshimo & Rashed 2024, sec. 3.4):
``x_hat = alpha + (x - x_min) (beta - alpha) / (x_max - x_min)`` with the minimum and maximum
taken inside the brain parenchyma and the map applied to the whole volume.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypedDict

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from mutual_seg.data.brain_mask import estimate_brain_mask
from mutual_seg.data.subject import ChannelPath, Subject
from mutual_seg.errors import ConfigError, subject_error

log = logging.getLogger(__name__)

NORMALIZATIONS: tuple[str, ...] = ("minmax", "zscore")
MASK_SOURCES: tuple[str, ...] = ("parenchyma", "brain", "nonzero", "estimated")
AFFINE_ATOL = 1e-3  # mm; registered UCSF-PDGM/BraTS volumes agree far better than this

# What nibabel, gzip and zlib raise on a truncated or corrupt file (gzip.BadGzipFile is an OSError).
# HeaderDataError: a corrupt header field (e.g. vox_offset 0), found by tests/test_fuzz.py
_READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, ImageFileError, HeaderDataError, OSError, ValueError)


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything preprocessing depends on besides the files; stored in checkpoints for ``predict``.

    Args:
        normalization: ``"minmax"`` (paper eq. 1) or ``"zscore"`` (for comparison).
        alpha: lower bound of eq. 1 (value of the mask minimum).
        beta: upper bound of eq. 1 (value of the mask maximum).
        label_outputs: one list of label values per output channel (O lists).
        label_allowed: every value a label file may contain; anything else is a data error.
    """

    normalization: str
    alpha: float
    beta: float
    label_outputs: tuple[tuple[int, ...], ...]
    label_allowed: tuple[int, ...]

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig objects; freeze them into plain hashable, JSON-able tuples.
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "beta", float(self.beta))
        object.__setattr__(
            self, "label_outputs", tuple(tuple(int(v) for v in o) for o in self.label_outputs)
        )
        object.__setattr__(self, "label_allowed", tuple(int(v) for v in self.label_allowed))
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown normalization {self.normalization!r}; expected one of {list(NORMALIZATIONS)}"
            )
        if not self.alpha < self.beta:
            raise ConfigError(
                f"normalization bounds need alpha < beta, found alpha={self.alpha}, beta={self.beta}"
            )
        if not self.label_outputs or any(len(o) == 0 for o in self.label_outputs):
            raise ConfigError(
                f"data.preprocessing.label_outputs must be a non-empty list of non-empty value lists, found {self.label_outputs}"
            )
        unknown = sorted({v for o in self.label_outputs for v in o} - set(self.label_allowed))
        if unknown:
            raise ConfigError(
                f"data.preprocessing.label_outputs uses values {unknown} that are not in data.preprocessing.label_allowed "
                f"{list(self.label_allowed)}; add them to label_allowed or drop them from label_outputs"
            )

    def as_dict(self) -> dict:
        """Plain JSON-able dict (for checkpoints and cache keys); :meth:`from_config` inverts it."""
        d = asdict(self)
        d["label_outputs"] = [list(o) for o in self.label_outputs]
        d["label_allowed"] = list(self.label_allowed)
        return d

    @classmethod
    def from_config(cls, node: PreprocessSettings | Mapping[str, Any]) -> PreprocessSettings:
        """The settings of a ``data.preprocessing`` node, a checkpoint's plain dict, or themselves.

        Hydra keys such as ``_target_`` are ignored; a missing or unknown field is a ConfigError
        naming it (e.g. a checkpoint written by another version).
        """
        if isinstance(node, cls):
            return node
        given = {str(k): v for k, v in node.items() if not str(k).startswith("_")}
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in given]
        unknown = sorted(set(given) - set(names))
        if missing or unknown:
            raise ConfigError(
                f"preprocessing settings: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}; "
                f"expected exactly {names}"
            )
        return cls(**given)


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


def load_volume(
    path: str | Path | ChannelPath, subject_id: str
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Read one 3D NIfTI volume (or one volume of a 4D file) with its scale slope applied.

    Real scans are int16 with ``scl_slope``/``scl_inter``; reading the raw integers would silently
    change every intensity, so the scaled float32 data is returned.

    Args:
        path: ``.nii`` or ``.nii.gz`` file, or a :class:`ChannelPath` (volume ``channel`` of a 4D file, MSD).
        subject_id: named in error messages.

    Returns:
        ``(data, affine, zooms)``: float32 (X, Y, Z), float64 (4, 4), voxel size in mm (x, y, z).

    Raises:
        DataError: missing, truncated or corrupt file; NaN/Inf voxels; not 3D (or no such volume in a 4D file).
    """
    channel = path.channel if isinstance(path, ChannelPath) else None
    file = Path(path)
    if not isinstance(path, ChannelPath):
        path = file
    if not file.is_file():
        raise subject_error(
            subject_id,
            path,
            "file not found",
            "check the data root and the layout, or restore the file",
        )
    try:
        img = nib.load(str(file))
        if channel is not None and not (len(img.shape) == 4 and 0 <= channel < img.shape[3]):
            raise subject_error(subject_id, path, f"expected a 4D image with volume {channel}, found shape "
                                f"{tuple(img.shape)}", "check the channel names in the data set's dataset.json")
        # Reading the data (not only the header) is what exposes a truncated gzip stream.
        data = np.asarray(img.dataobj if channel is None else img.dataobj[..., channel], dtype=np.float32)
    except _READ_ERRORS as err:
        detail = str(err).replace(f'"{file}"', file.name).replace(str(file), file.name)
        problem = (
            f"cannot read NIfTI ({type(err).__name__}: {detail}); the file is truncated or corrupt"
        )
        raise subject_error(
            subject_id, path, problem, "re-download or re-export the file"
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]  # some exporters write 3D volumes as (X, Y, Z, 1)
    if data.ndim != 3:
        raise subject_error(
            subject_id,
            path,
            f"expected a 3D volume, found shape {data.shape}",
            "split 4D series and point the layout at one 3D volume per modality",
        )
    finite = np.isfinite(data)
    if not finite.all():
        n_nan, n_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
        raise subject_error(
            subject_id,
            path,
            f"{n_nan} NaN and {n_inf} Inf voxels",
            "re-export the volume without NaN/Inf (e.g. set them to 0)",
        )
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data, np.asarray(img.affine, dtype=np.float64), zooms  # type: ignore[return-value]


def check_geometry(
    subject_id: str,
    path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    reference_path: Path,
    reference_shape: tuple[int, ...],
    reference_affine: np.ndarray,
) -> None:
    """Raise a DataError unless a volume has the reference volume's shape and affine (atol 1e-3)."""
    fix = f"resample/register it to the reference image {reference_path.name}"
    if tuple(shape) != tuple(reference_shape):
        raise subject_error(
            subject_id,
            path,
            f"shape {tuple(shape)} differs from expected {tuple(reference_shape)}",
            fix,
        )
    if not np.allclose(affine, reference_affine, atol=AFFINE_ATOL):
        found = np.array2string(affine, precision=3, separator=",").replace("\n", "")
        expected = np.array2string(reference_affine, precision=3, separator=",").replace("\n", "")
        raise subject_error(
            subject_id, path, f"affine {found} differs from expected {expected}", fix
        )


def binarize_label(
    label: np.ndarray,
    outputs: Sequence[Sequence[int]],
    allowed: Sequence[int],
    *,
    subject_id: str = "?",
    path: str | Path | None = None,
) -> np.ndarray:
    """Turn an integer label map into O binary channels, channel o = ``isin(label, outputs[o])``.

    The default config (``outputs [[1, 2, 4]]``) gives whole tumour = label > 0; BraTS sub-regions
    are e.g. ``[[1, 2, 4], [1, 4], [4]]`` (whole tumour, tumour core, enhancing).

    Args:
        label: label map of any shape, e.g. (X, Y, Z); float input must hold integer values.
        outputs: O lists of label values, one per output channel.
        allowed: every value the label may contain.
        subject_id: named in error messages.
        path: label file, named in error messages.

    Returns:
        uint8 array (O, *label.shape) of 0/1.

    Raises:
        DataError: non-integer values, or values outside ``allowed``.
    """
    rounded = np.rint(label)
    if not np.array_equal(rounded, label):
        bad = np.unique(label[rounded != label])[:5]
        raise subject_error(
            subject_id,
            path,
            f"label values must be integers, found {bad.tolist()}",
            "point the layout at the segmentation file (not a probability map)",
        )
    values = np.unique(rounded).astype(np.int64)
    unexpected = sorted(set(values.tolist()) - {int(a) for a in allowed})
    if unexpected:
        raise subject_error(
            subject_id,
            path,
            f"unexpected label values {unexpected} (allowed {sorted(int(a) for a in allowed)})",
            "set data.preprocessing.label_allowed (and data.preprocessing.label_outputs) to match the data set",
        )
    ints = rounded.astype(np.int64)
    return np.stack([np.isin(ints, np.asarray(list(o), dtype=np.int64)) for o in outputs]).astype(
        np.uint8
    )


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


def choose_mask(subject: Subject, warn: bool = True) -> tuple[str, Path | None]:
    """Pick the normalization mask: parenchyma, else brain mask, else each image's non-zero voxels.

    Only paths are inspected, so the choice (part of the cache key) costs no I/O. A fallback is
    logged because it changes the normalization the paper describes. A mask file counts by its
    non-zero voxels, so multi-label parenchyma segmentations (CSF/GM/WM) work as they are.

    Returns:
        ``(source, path)`` with source in ``MASK_SOURCES``; path is None for ``"nonzero"``.
    """
    if subject.parenchyma_mask is not None:
        return "parenchyma", Path(subject.parenchyma_mask)
    if subject.brain_mask is not None:
        if warn:
            log.warning(
                "subject %s: no parenchyma mask, normalizing inside the brain mask %s",
                subject.id,
                subject.brain_mask,
            )
        return "brain", Path(subject.brain_mask)
    if warn:
        log.warning(
            "subject %s: no parenchyma or brain mask, normalizing inside the non-zero voxels of each image",
            subject.id,
        )
    return "nonzero", None


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
        path = Path(subject.images[m])
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


def slice_first(array: np.ndarray) -> np.ndarray:
    """Move the last (z) axis to the front: (X, Y, Z) -> (Z, X, Y), (O, X, Y, Z) -> (Z, O, X, Y).

    The cache stores volumes slice-first so that one axial slice is one contiguous block.
    """
    return np.ascontiguousarray(np.moveaxis(array, -1, 0))


def slice_last(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`slice_first`: (Z, X, Y) -> (X, Y, Z), e.g. to write predictions with the original affine."""
    return np.ascontiguousarray(np.moveaxis(array, 0, -1))
