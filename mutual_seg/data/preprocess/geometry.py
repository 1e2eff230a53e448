"""Geometry of a subject's volumes: every file on the reference grid, and the cache's slice-first order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mutual_seg.errors import subject_error

AFFINE_ATOL = 1e-3  # mm; registered UCSF-PDGM/BraTS volumes agree far better than this


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


def slice_first(array: np.ndarray) -> np.ndarray:
    """Move the last (z) axis to the front: (X, Y, Z) -> (Z, X, Y), (O, X, Y, Z) -> (Z, O, X, Y).

    The cache stores volumes slice-first so that one axial slice is one contiguous block.
    """
    return np.ascontiguousarray(np.moveaxis(array, -1, 0))


def slice_last(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`slice_first`: (Z, X, Y) -> (X, Y, Z), e.g. to write predictions with the original affine."""
    return np.ascontiguousarray(np.moveaxis(array, 0, -1))
