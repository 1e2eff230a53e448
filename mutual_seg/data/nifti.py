"""NIfTI files in and out: the one place volumes are read (with their checks) and written (atomically).

Reading applies the scale slope (real scans are int16 with ``scl_slope``/``scl_inter``) and turns every way a
file can be broken (missing, truncated, corrupt header, NaN/Inf, not 3D) into one ``DataError`` line naming the
subject and the file. Writing goes through a temporary name beside the destination and a rename
(:mod:`mutual_seg.atomic`), so an interrupted run never leaves a half-written volume and a full disk or a read-only
folder is one ``OutputError`` line.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from mutual_seg.atomic import atomic_path, atomic_write_bytes
from mutual_seg.data.subject import ChannelPath
from mutual_seg.errors import subject_error

# What nibabel, gzip and zlib raise on a truncated or corrupt file (gzip.BadGzipFile is an OSError).
# HeaderDataError: a corrupt header field (e.g. vox_offset 0), found by tests/data/test_fuzz.py
_READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, ImageFileError, HeaderDataError, OSError, ValueError)
PARTIAL = ".partial"  # marks a temporary file being written: `.<name>-<random>.partial.nii.gz`


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


def write_nifti(
    path: str | Path,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    header: nib.Nifti1Header | None = None,
    dtype: Any = None,
    scaled: bool = False,
    description: str | None = None,
) -> Path:
    """Write one volume as NIfTI (``.nii`` or ``.nii.gz``), atomically.

    Args:
        path: the destination; its extension picks plain or gzipped NIfTI.
        array: the voxels, nibabel's (X, Y, Z[, C]) order.
        affine: (4, 4) voxel-to-world matrix.
        header: a reference image's header to keep (orientation, qform/sform codes, units); None: a new header
            in mm with qform and sform set to ``affine`` (code 1, scanner).
        dtype: the type on disk (default: the array's).
        scaled: store floats in an integer ``dtype`` with a computed scale slope and intercept, as scanners do;
            otherwise the values are stored exactly as cast to ``dtype`` (slope 1, intercept 0).
        description: the header's ``descrip`` field (79 bytes at most).

    Returns:
        ``path``.

    Raises:
        OutputError: the folder cannot be created or written (disk full, read-only, permissions).
    """
    path = Path(path)
    if header is not None:
        header = header.copy()
    if not scaled and dtype is not None:
        array = np.asarray(array).astype(dtype, copy=False)
    img = nib.Nifti1Image(array, affine, header)
    if dtype is not None:
        img.set_data_dtype(dtype)
    if header is None:
        img.header.set_xyzt_units("mm", "sec")
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    if not scaled:
        img.header.set_slope_inter(1.0, 0.0)
    if description is not None:
        img.header["descrip"] = description.encode()[:79]
    extension = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    with atomic_path(path, suffix=PARTIAL + extension) as tmp:
        nib.save(img, tmp)
    return path


def write_like(path: Path, data: np.ndarray, reference: nib.Nifti1Image, dtype: type, description: str) -> None:
    """Write ``data`` with the reference image's affine and header (orientation, qform/sform codes), atomically:
    what ``mutual-seg-predict`` writes (gzip level 1 in memory, then one atomic write)."""
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(data.astype(dtype), reference.affine, header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = description.encode()[:79]
    img.header["intent_code"] = 0
    atomic_write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=1))
