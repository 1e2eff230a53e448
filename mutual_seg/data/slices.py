"""Datasets over cached volumes: 2D axial training slices, and whole subjects for validation/test.

Arrays come from the memory-mapped cache (``preprocess.VolumeCache``), slice-first [Z, X, Y], so reading one
axial slice touches one contiguous block. Memory maps are opened lazily in each worker process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mutual_seg.data.augment import SliceAugment
from mutual_seg.data.cache import CachedSubject
from mutual_seg.errors import ConfigError

SELECTIONS = ("brain", "tumour", "all")


def occupied_slices(volume: np.ndarray) -> np.ndarray:
    """Indices of the axial slices (first axis) that hold any non-zero voxel."""
    return np.flatnonzero(volume.reshape(volume.shape[0], -1).any(axis=1))


class SliceDataset(Dataset):
    """Axial training slices: ``{"image": [I, H, W] float32, "label": [O, H, W] float32}``.

    Args:
        subjects: cached subjects to draw slices from.
        modalities: input modalities, in the network's order.
        selection: ``brain`` (slices holding brain, the default), ``tumour`` (slices holding tumour) or ``all``.
        patch_size: optional (H, W) random crop, centred on a random brain pixel, or on a tumour pixel
            when the sample is a foreground one (see ``foreground_prob``).
        foreground_prob: chance that a sample is swapped for a random tumour slice of the same subject
            (and, with patches, centred on tumour): nnU-Net-style oversampling of the rare class, which
            otherwise sits in a small share of the brain slices.
        augment: optional on-the-fly augmentation.
    """

    def __init__(
        self,
        subjects: Sequence[CachedSubject],
        modalities: Sequence[str],
        selection: str = "brain",
        patch_size: Sequence[int] | None = None,
        foreground_prob: float = 0.33,
        augment: SliceAugment | None = None,
    ) -> None:
        if selection not in SELECTIONS:
            raise ConfigError(f"unknown slice selection {selection!r}; valid: {', '.join(SELECTIONS)}")
        self.subjects = list(subjects)
        self.modalities = list(modalities)
        self.patch_size = tuple(patch_size) if patch_size else None
        self.foreground_prob = foreground_prob
        self.augment = augment
        # Slices holding tumour, per subject: for foreground oversampling and the ``tumour`` selection.
        needed = foreground_prob > 0 or selection == "tumour"
        self.tumour_slices = [occupied_slices(s.load_label()) if needed else np.array([], dtype=np.int64)
                              for s in self.subjects]
        self.index = self._build_index(selection)
        self._arrays: dict[int, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}
        if not self.index:
            raise ConfigError(f"no training slices match selection={selection!r}; use data.slices.selection=all")

    def _build_index(self, selection: str) -> list[tuple[int, int]]:
        index = []
        for s, subject in enumerate(self.subjects):
            if selection == "all":
                keep = np.arange(subject.shape[0])
            elif selection == "brain":
                keep = occupied_slices(subject.load_mask())
            else:
                keep = self.tumour_slices[s]
            index.extend((s, int(z)) for z in keep)
        return index

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memory maps are reopened in each worker
        return state

    def __len__(self) -> int:
        return len(self.index)

    def _open(self, s: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        if s not in self._arrays:
            subject = self.subjects[s]
            images = [np.load(subject.images[m], mmap_mode="r") for m in self.modalities]
            self._arrays[s] = (images, subject.load_label(), subject.load_mask())
        return self._arrays[s]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        # ``EpochSampler`` keys carry the item's seed (a function of the run's seed and epoch only).
        i, entropy = key if isinstance(key, tuple) else (key, torch.initial_seed() % 2**32)
        s, z = self.index[i]
        rng = np.random.default_rng([entropy, i])
        foreground = rng.random() < self.foreground_prob and self.tumour_slices[s].size > 0
        if foreground:
            z = int(rng.choice(self.tumour_slices[s]))
        images, label, mask = self._open(s)
        image = np.stack([np.asarray(volume[z], dtype=np.float32) for volume in images])  # [I, X, Y]
        target = np.array(label[z])  # [O, X, Y], a writable copy of the memory map
        if self.patch_size is not None:
            image, target = self._crop(image, target, np.asarray(mask[z]), foreground, rng)
        if self.augment is not None:
            image, target = self.augment(image, target, rng)
        return {"image": torch.from_numpy(np.ascontiguousarray(image)),
                "label": torch.from_numpy(np.ascontiguousarray(target)).float()}

    def _crop(self, image: np.ndarray, target: np.ndarray, mask: np.ndarray, foreground: bool,
              rng: np.random.Generator):
        ph, pw = self.patch_size
        candidates = np.flatnonzero(target.any(axis=0)) if foreground else np.array([])
        if candidates.size == 0:
            candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            cy, cx = image.shape[1] // 2, image.shape[2] // 2
        else:
            cy, cx = np.unravel_index(rng.choice(candidates), mask.shape)
        # Pad by half a patch on each side so every centre gives a full crop; pad images with their minimum
        # (the background value after normalization) and labels with 0.
        py, px = ph // 2 + 1, pw // 2 + 1
        image = np.stack([np.pad(c, ((py, py), (px, px)), constant_values=c.min()) for c in image])
        target = np.pad(target, ((0, 0), (py, py), (px, px)))
        y0, x0 = cy + py - ph // 2, cx + px - pw // 2
        return image[:, y0:y0 + ph, x0:x0 + pw], target[:, y0:y0 + ph, x0:x0 + pw]


class VolumeDataset(Dataset):
    """Whole subjects for validation, test and prediction (3D metrics need the whole volume).

    Items: ``image`` [Z, I, X, Y] float32, ``label`` [Z, O, X, Y] uint8, ``mask`` [Z, X, Y] bool (the
    normalization mask: where the brain is), ``spacing`` (z, x, y) in mm (z times ``slice_step``),
    ``affine`` (4, 4) of the source NIfTI, ``id`` the subject id. Use with ``batch_size=None``.
    """

    def __init__(self, subjects: Sequence[CachedSubject], modalities: Sequence[str], slice_step: int = 1) -> None:
        self.subjects = list(subjects)
        self.modalities = list(modalities)
        self.slice_step = slice_step  # >1 keeps every n-th slice: a cheaper proxy, for validation only

    def __len__(self) -> int:
        return len(self.subjects)

    def __getitem__(self, i: int) -> dict[str, Any]:
        subject = self.subjects[i]
        step = slice(None, None, self.slice_step)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(subject.load_image(self.modalities)[step], dtype=np.float32)),
            # np.array copies: a tensor over the read-only memory map would be unwritable (and share the file)
            "label": torch.from_numpy(np.array(subject.load_label()[step], order="C")),
            "mask": torch.from_numpy(np.ascontiguousarray(subject.load_mask()[step]) > 0),
            # every n-th slice: the kept slices lie n times further apart (volumes in mm^3 stay right)
            "spacing": torch.tensor(subject.spacing, dtype=torch.float64) * torch.tensor([self.slice_step, 1.0, 1.0]),
            "affine": torch.from_numpy(np.asarray(subject.affine, dtype=np.float64)),
            "id": subject.id,
        }
