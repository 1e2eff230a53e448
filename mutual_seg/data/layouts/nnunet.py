"""nnU-Net raw data sets: ``DatasetNNN_Name/{dataset.json, imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz}``.

Channels become modalities through ``dataset.json``'s ``channel_names`` (``FLAIR``, ``T2w``, ``t1gd``...: the
table in :mod:`mutual_seg.modalities`, plus ``data.layout.channel_map``); files are read where they are.
``images=imagesTs`` (with ``labels=labelsTs`` where such labels exist, else null) reads the test images.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mutual_seg.data.layouts.base import (
    _Found,
    _keep_complete,
    _label_optional,
    _probe,
    _require_dir,
)
from mutual_seg.data.layouts.dataset_json import DatasetJson, read_dataset_json
from mutual_seg.data.subject import ChannelPath, Subject
from mutual_seg.errors import DataError
from mutual_seg.modalities import check_modalities


class _DatasetJsonLayout:
    """Shared by the nnU-Net and Decathlon readers: a ``dataset.json``, an images folder, a labels folder."""

    name = "data set"

    def __init__(self, root: str | Path, images: str, labels: str | None,
                 channel_map: Mapping[str, str | None] | None) -> None:
        # Absolute, so that subject paths survive a working-directory change (Hydra's chdir).
        self._root = Path(root).expanduser().absolute()
        self.images_dir = str(images)
        self.labels_dir = None if labels in (None, "") else str(labels)
        self.channel_map = dict(channel_map or {})

    @property
    def root(self) -> Path:
        """The data set folder (holding ``dataset.json``)."""
        return self._root

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, images={self.images_dir!r})"

    def info(self) -> DatasetJson:
        return read_dataset_json(self.root, self.name)

    @property
    def channels(self) -> dict[str, int]:
        """Modality -> channel index, in channel order."""
        return self.info().modalities(self.channel_map, self.name)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this data set has, in channel order."""
        return tuple(self.channels)

    def find(self, modalities: Sequence[str], skip_incomplete: bool = False,
             require_label: bool = True) -> list[Subject]:
        """Every case with the requested modalities (and a label); same contract as the other readers."""
        found = self._scan(modalities, require_label)
        return _keep_complete(_label_optional(found, require_label), skip_incomplete, self.name)

    def scan(self, modalities: Sequence[str], require_label: bool = True
             ) -> list[tuple[Subject, list[tuple[str, Path | None]]]]:
        """Every case with the files found and (what, expected path) of each one missing."""
        return [(f.subject, f.missing) for f in _label_optional(self._scan(modalities, require_label), require_label)]

    def _scan(self, modalities: Sequence[str], require_label: bool) -> list[_Found]:
        info = self.info()
        channels = info.modalities(self.channel_map, self.name)
        wanted = check_modalities(modalities, tuple(channels), self.name)
        folder = _require_dir(self.root / self.images_dir, self.name)
        cases = self._cases(folder, info.file_ending)
        if not cases:
            raise DataError(f"{self.name}: no case in {folder} (expected {self._example(info.file_ending)}); "
                            "point data.layout.root at the data set folder")
        labels = self.root / self.labels_dir if self.labels_dir else None
        if labels is not None and labels.is_dir():  # a label without its images is a case with missing images
            ending = info.file_ending
            cases = sorted({*cases, *(p.name[: -len(ending)] for p in labels.iterdir()
                                      if p.name.endswith(ending) and not p.name.startswith("."))})
        if require_label and labels is None:
            raise DataError(f"{self.name}: data.layout.labels is null, but a run needs labels; set it "
                            "(e.g. labelsTr) or test with labels")
        return [_probe(case, self._images(folder, case, info.file_ending, {m: channels[m] for m in wanted}),
                       labels / f"{case}{info.file_ending}" if labels else None) for case in cases]

    def _cases(self, folder: Path, ending: str) -> list[str]:
        raise NotImplementedError

    def _images(self, folder: Path, case: str, ending: str, channels: dict[str, int]
                ) -> dict[str, Path | ChannelPath | None]:
        raise NotImplementedError

    def _example(self, ending: str) -> str:
        raise NotImplementedError


class NNUNetLayout(_DatasetJsonLayout):
    """nnU-Net raw format: one 3D file per case and channel, ``<case>_<XXXX><file_ending>``.

    Args:
        root: the ``DatasetNNN_Name`` folder.
        images: ``imagesTr`` (train and test our folds) or ``imagesTs``.
        labels: ``labelsTr``, or null for images without labels.
        channel_map: channel name -> modality for names the table lacks (null: leave the channel out).
    """

    name = "nnU-Net raw"

    def _cases(self, folder: Path, ending: str) -> list[str]:
        pattern = re.compile(rf"^(?P<case>[^.].*)_(?P<channel>\d{{4}}){re.escape(ending)}$")
        return sorted({m["case"] for p in folder.iterdir() if (m := pattern.match(p.name))})

    def _images(self, folder: Path, case: str, ending: str, channels: dict[str, int]
                ) -> dict[str, Path | ChannelPath | None]:
        return {m: folder / f"{case}_{index:04d}{ending}" for m, index in channels.items()}

    def _example(self, ending: str) -> str:
        return f"<case>_0000{ending}"
