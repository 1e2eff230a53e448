"""Datasets over cached volumes: 2D axial training slices, and whole subjects for validation/test.

Arrays come from the memory-mapped cache (``preprocess.VolumeCache``), slice-first [Z, X, Y], so reading one
axial slice touches one contiguous block. Memory maps are opened lazily in each worker process, and only the
most recently read subjects' stay open: the pages a map has touched count in the process's resident memory
until it is closed, so keeping every subject open would grow a worker's memory with the cohort.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mutual_seg.data.augment import SliceAugment
from mutual_seg.data.cache import CachedSubject
from mutual_seg.errors import ConfigError
from mutual_seg.masks import brain_box

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
        max_open_subjects: memory-mapped subjects kept open per process (least recently read closed first):
            bounds resident memory whatever the cohort size.
        brain_crop: cut every slice to one fixed window [h, w] holding the brain box (the normalization mask
            and the label, widened by ``crop_margin``) of every training subject, so batches still collate;
            each subject's window is centred on its own box (clamped to the slice). Brain and label voxels
            are kept exactly; random patches are then drawn inside the window.
        crop_multiple: the window's sides are rounded up to a multiple of this (the network's downsampling
            factor, so it needs no padding of its own).
        crop_margin: voxels kept around the box in-plane (``conf/data``: as whole-volume inference keeps them).

    Every setting comes from ``conf/data/base.yaml``'s ``slices`` node (no defaults here: one owner).
    """

    def __init__(
        self,
        subjects: Sequence[CachedSubject],
        modalities: Sequence[str],
        augment: SliceAugment | None = None,  # not a setting: the data module passes its own (or none)
        *,
        selection: str,
        patch_size: Sequence[int] | None,
        foreground_prob: float,
        max_open_subjects: int,
        brain_crop: bool,
        crop_multiple: int,
        crop_margin: int,
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
        if int(max_open_subjects) < 1:
            raise ConfigError(f"data.slices.max_open_subjects must be >= 1, got {max_open_subjects}")
        self.max_open_subjects = int(max_open_subjects)
        self._arrays: OrderedDict[int, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = OrderedDict()
        if not self.index:
            raise ConfigError(f"no training slices match selection={selection!r}; use data.slices.selection=all")
        # Brain crop: one window size for the whole set, an origin (top, left) per subject.
        self.crop_size: tuple[int, int] | None = None
        self.crop_origins: list[tuple[int, int]] = []
        if brain_crop:
            self._plan_crop(int(crop_multiple), int(crop_margin))

    def _plan_crop(self, multiple: int, margin: int) -> None:
        """Window size (the largest box, rounded up to ``multiple``) and each subject's window origin."""
        boxes = []
        for subject in self.subjects:
            brain = (np.asarray(subject.load_mask()) > 0) | np.asarray(subject.load_label()).any(axis=1)
            box = brain_box(torch.from_numpy(brain), margin=margin)
            full = subject.shape[1:]
            boxes.append((box[1], box[2]) if box is not None else (slice(0, full[0]), slice(0, full[1])))
        self.crop_size = tuple(-(-max(b[k].stop - b[k].start for b in boxes) // multiple) * multiple
                               for k in (0, 1))
        for subject, box in zip(self.subjects, boxes):
            origin = []
            for k, (size, extent) in enumerate(zip(self.crop_size, subject.shape[1:])):
                # centred on the box; clamped to the slice when it fits (then the box lies inside: the window is
                # at least as large), centred on the slice when it does not (padded both sides)
                start = (box[k].start + box[k].stop) // 2 - size // 2
                origin.append(min(max(start, 0), extent - size) if size <= extent else (extent - size) // 2)
            self.crop_origins.append((origin[0], origin[1]))

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
        state["_arrays"] = OrderedDict()  # memory maps are reopened in each worker
        return state

    def __len__(self) -> int:
        return len(self.index)

    def _open(self, s: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Subject ``s``'s memory maps (images, label, mask), opened on first use; at most ``max_open_subjects``
        stay open (reopening costs about 0.1 ms per file, far less than augmenting a slice)."""
        arrays = self._arrays.get(s)
        if arrays is not None:
            self._arrays.move_to_end(s)
            return arrays
        subject = self.subjects[s]
        images = [np.load(subject.images[m], mmap_mode="r") for m in self.modalities]
        arrays = self._arrays[s] = (images, subject.load_label(), subject.load_mask())
        while len(self._arrays) > self.max_open_subjects:
            self._arrays.popitem(last=False)  # the least recently read subject's maps close with it
        return arrays

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
        brain = np.asarray(mask[z])
        if self.crop_size is not None:
            image, target, brain = window(image, target, brain, self.crop_origins[s], self.crop_size)
        if self.patch_size is not None:
            image, target = self._crop(image, target, brain, foreground, rng)
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
        image, target, _ = window(image, target, mask, (int(cy) - ph // 2, int(cx) - pw // 2), (ph, pw))
        return image, target


def window(image: np.ndarray, target: np.ndarray, mask: np.ndarray, origin: tuple[int, int],
           size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut image [I, H, W], target [O, H, W] and mask [H, W] to rows ``top:top+h``, columns ``left:left+w``.

    Where the window leaves the slice, images are padded with each channel's minimum over the slice (the
    background value after normalization), target and mask with 0, so every origin gives a full window.
    """
    (top, left), (h, w) = origin, size
    height, width = mask.shape
    pad = ((max(-top, 0), max(top + h - height, 0)), (max(-left, 0), max(left + w - width, 0)))
    rows, cols = slice(max(top, 0), min(top + h, height)), slice(max(left, 0), min(left + w, width))
    if not any(pad[0] + pad[1]):
        return image[:, rows, cols], target[:, rows, cols], mask[rows, cols]
    low = image.reshape(image.shape[0], -1).min(axis=1)
    image = np.stack([np.pad(c[rows, cols], pad, constant_values=v) for c, v in zip(image, low)])
    return image, np.pad(target[:, rows, cols], ((0, 0), *pad)), np.pad(mask[rows, cols], pad)


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
