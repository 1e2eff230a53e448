"""A cached subject: its memory-mappable ``.npy`` volumes, read back slice-first, and its geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class CachedSubject:
    """One cached subject: paths to its ``.npy`` volumes plus the geometry needed to write back NIfTI.

    Attributes:
        spacing: voxel size in mm in cached array order (z, x, y).
        affine: original (4, 4) NIfTI affine of the reference modality.
        shape: cached volume shape (Z, X, Y).
    """

    id: str
    patient_id: str
    images: dict[str, Path]
    label: Path
    mask: Path
    spacing: tuple[float, float, float]
    affine: np.ndarray
    shape: tuple[int, int, int]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        """Voxel size in the original NIfTI order (x, y, z)."""
        z, x, y = self.spacing
        return (x, y, z)

    def load_image(self, modalities: Sequence[str] | None = None, mmap: bool = True) -> np.ndarray:
        """Stack modalities into float32 [Z, I, X, Y] (a copy; use :meth:`image_slice` for one slice)."""
        names = list(modalities) if modalities is not None else list(self.images)
        return np.stack([self._open(self.images[m], mmap) for m in names], axis=1)

    def image_slice(self, z: int, modalities: Sequence[str] | None = None) -> np.ndarray:
        """Read one axial slice as float32 [I, X, Y], touching only that slice's bytes."""
        names = list(modalities) if modalities is not None else list(self.images)
        return np.stack([np.load(self.images[m], mmap_mode="r")[z] for m in names])

    def load_label(self, mmap: bool = True) -> np.ndarray:
        """Binary label channels, uint8 [Z, O, X, Y]."""
        return self._open(self.label, mmap)

    def load_mask(self, mmap: bool = True) -> np.ndarray:
        """Normalization mask, uint8 [Z, X, Y] (e.g. to pick slices that contain brain)."""
        return self._open(self.mask, mmap)

    @staticmethod
    def _open(path: Path, mmap: bool) -> np.ndarray:
        return np.load(path, mmap_mode="r" if mmap else None)
