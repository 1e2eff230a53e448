"""The LightningDataModule: subjects -> cached volumes -> patient-level split -> loaders.

Training loaders yield batches of 2D slices; validation and test loaders yield one whole subject at a time, so
that metrics are per subject and 3D. Samplers are built here (the trainer's ``use_distributed_sampler`` is off):
under DDP each validation/test subject goes to exactly one rank, never padded with duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from mutual_seg.data.augment import SliceAugment
from mutual_seg.data.augment_batch import batch_augment
from mutual_seg.data.cache import CachedSubject, VolumeCache
from mutual_seg.data.preprocess import PreprocessSettings
from mutual_seg.data.sampler import EpochSampler
from mutual_seg.data.slices import SliceDataset, VolumeDataset
from mutual_seg.data.splits import Split, make_split
from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError

log = logging.getLogger(__name__)


class SegDataModule(pl.LightningDataModule):
    """Folds, splits and loaders over one data set (all settings come from ``conf/data``).

    Args:
        layout: a layout reader (``mutual_seg.data.layouts``) with ``find(modalities, skip_incomplete)``.
        modalities: input modalities, in the network's order.
        skip_incomplete: skip subjects missing a requested file (warning) instead of failing.
        preprocessing: normalization and label settings (Hydra builds them from ``data.preprocessing``).
        out_channels: number of output maps (= len(preprocessing.label_outputs)).
        cache_dir: where normalized volumes are cached.
        cache_workers: processes used to fill the cache.
        split: ``make_split`` arguments (fold, n_folds, seed, val_fraction, fixed_test).
        slices: ``SliceDataset`` arguments (selection, patch_size, foreground_prob).
        augment: training augmentation, or None.
        augment_on: ``loader`` (per slice, in the loader workers) or ``device`` (per batch, on the training
            device after the transfer: same transforms and distributions, see ``augment_batch``).
        batch_size: training slices per batch.
        num_workers: loader worker processes.
        samples_per_epoch: training slices drawn (with replacement) per epoch; None: each slice once.
        val_slice_step: validate on every n-th axial slice of each subject (1: whole volumes); test always
            uses whole volumes.
    """

    def __init__(
        self,
        layout: Any,
        modalities: Sequence[str],
        skip_incomplete: bool,
        preprocessing: PreprocessSettings | Mapping[str, Any],
        out_channels: int,
        cache_dir: str,
        cache_workers: int,
        split: Mapping[str, Any],
        slices: Mapping[str, Any],
        augment: SliceAugment | None,
        augment_on: str,
        batch_size: int,
        num_workers: int,
        samples_per_epoch: int | None,
        val_slice_step: int,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.modalities = list(modalities)
        self.skip_incomplete = skip_incomplete
        self.preprocessing = PreprocessSettings.from_config(preprocessing)
        self.out_channels = out_channels
        self.cache = VolumeCache(cache_dir, self.preprocessing, num_workers=cache_workers)
        self.split_settings = dict(split)
        self.slice_settings = dict(slices)
        if augment_on not in ("loader", "device"):
            raise ConfigError(f"data.augment_on must be loader or device, got {augment_on!r}")
        self.augment = augment
        self.augment_on = augment_on
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.samples_per_epoch = samples_per_epoch
        self.val_slice_step = val_slice_step
        self.split: Split | None = None
        self._prepared = False
        self.subjects: dict[str, list[CachedSubject]] = {}

    # -- discovery and caching -------------------------------------------------------------------
    def find_subjects(self) -> list[Subject]:
        """Subjects of the data set that have every requested modality (no pixels loaded)."""
        return self.layout.find(self.modalities, skip_incomplete=self.skip_incomplete)

    def prepare_data(self) -> None:
        """Fill the cache once (rank 0), with a progress bar; later calls find everything cached."""
        if not self._prepared:
            self.cache.prepare(self.find_subjects(), self.modalities, progress=True)
            self._prepared = True

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:
            return
        subjects = self.find_subjects()
        self.split = make_split([s.patient_id for s in subjects], **self.split_settings)
        cached = {c.id: c for c in self.cache.prepare(subjects, self.modalities, progress=False)}
        for part in ("train", "val", "test"):
            patients = set(getattr(self.split, part))
            self.subjects[part] = [cached[s.id] for s in subjects if s.patient_id in patients]

    def summary(self) -> str:
        """One paragraph on what the runs will see."""
        if self.split is None:
            self.setup()
        parts = ", ".join(f"{p} {len(self.subjects[p])}" for p in ("train", "val", "test"))
        first = next(s for p in ("train", "val", "test") for s in self.subjects[p])
        # With data.split.fixed_test=all (testing a trained model on another data set) nothing trains.
        slices = len(self.train_dataset()) if self.subjects["train"] else 0
        return (
            f"data {type(self.layout).__name__} at {self.layout.root}: modalities {'+'.join(self.modalities)}; "
            f"subjects {parts} (fold {self.split_settings.get('fold')} of {self.split_settings.get('n_folds')}); "
            f"volume [Z, X, Y] {tuple(first.shape)} at {tuple(round(s, 3) for s in first.spacing)} mm; "
            f"{slices} training slices ({self.slice_settings.get('selection')})"
        )

    # -- datasets and loaders --------------------------------------------------------------------
    def train_dataset(self, augment: bool = True) -> SliceDataset:
        """Training slices; augmented per slice here only with ``augment_on: loader``."""
        per_slice = self.augment if augment and self.augment_on == "loader" else None
        return SliceDataset(self.subjects["train"], self.modalities, augment=per_slice, **self.slice_settings)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With ``augment_on: device``, augment each training batch where it now lies (CPU or GPU)."""
        trainer = getattr(self, "trainer", None)
        if self.augment is not None and self.augment_on == "device" and trainer is not None and trainer.training:
            batch["image"], batch["label"] = batch_augment(self.augment, batch["image"], batch["label"])
        return batch

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        world, rank = self._world()
        # Draws depend only on (seed, epoch), so a resumed run trains on what the uninterrupted one would.
        sampler = EpochSampler(len(dataset), int(self.split_settings.get("seed", 0)), self.samples_per_epoch,
                               num_replicas=world, rank=rank)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          drop_last=len(dataset) > self.batch_size, persistent_workers=self.num_workers > 0)

    def _volume_loader(self, part: str) -> DataLoader:
        step = self.val_slice_step if part == "val" else 1
        dataset = VolumeDataset(self.subjects[part], self.modalities, slice_step=step)
        world, rank = self._world()
        if world > 1 and len(dataset) < world:
            # Every rank must evaluate at least one subject: Lightning's sampler asserts, and a rank without
            # batches would never join the metric sync.
            raise ConfigError(
                f"{len(dataset)} {part} subject(s) cannot be shared by {world} processes (each needs one); "
                f"use fewer devices or more {part} subjects (data.split.val_fraction, n_folds)"
            )
        sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
        # batch_size=None: one whole subject per item, no collation; at most 1 worker keeps memory low.
        return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=min(self.num_workers, 1))

    def val_dataloader(self) -> DataLoader:
        return self._volume_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._volume_loader("test")
