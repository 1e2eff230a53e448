"""``dataset.json`` of nnU-Net raw data sets and Decathlon tasks: channel names -> modalities, label values.

nnU-Net v2 writes ``channel_names`` ({"0": "FLAIR", ...}) and ``labels`` as name -> value, a region being a list
of values ({"background": 0, "whole tumor": [1, 2, 3], ...}); the Decathlon (and nnU-Net v1) write ``modality``
and ``labels`` as value -> name ({"0": "background", "1": "edema", ...}). Both are read here, once, for the
``nnunet`` and ``msd`` readers and for the ``${dataset_labels:...}`` resolver of their conf files, so the label
settings of a run come from the data set itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from mutual_seg.errors import ConfigError, DataError
from mutual_seg.modalities import MODALITIES, modality_of_channel

IGNORE_LABEL = "ignore"  # nnU-Net v2's label for unannotated voxels: allowed in files, never tumour


@dataclass(frozen=True)
class DatasetJson:
    """What the readers need from a ``dataset.json``.

    Attributes:
        channels: channel index -> name as written (``{0: "FLAIR", 1: "T1w"}``).
        labels: label name -> its values (one value, or several for an nnU-Net region).
        file_ending: ``.nii.gz`` unless the file says otherwise (nnU-Net ``file_ending``).
    """

    path: Path
    channels: dict[int, str]
    labels: dict[str, tuple[int, ...]]
    file_ending: str

    @property
    def allowed(self) -> list[int]:
        """Every value a label file may hold (background included)."""
        return sorted({0, *(v for values in self.labels.values() for v in values)})

    @property
    def whole_tumour(self) -> list[int]:
        """Every non-background value (nnU-Net's ``ignore`` label aside): the whole tumour, as the other readers."""
        return sorted({v for name, values in self.labels.items() if name.lower() != IGNORE_LABEL
                       for v in values if v != 0})

    def modalities(self, channel_map: Mapping[str, str | None] | None, layout: str) -> dict[str, int]:
        """Our modality -> channel index, in channel order.

        Raises:
            ConfigError: a channel name no table knows (naming the mapping to add), or two channels of one modality.
        """
        extra = {str(k): v for k, v in (channel_map or {}).items()}
        by_modality: dict[str, int] = {}
        for index, name in sorted(self.channels.items()):
            if name in extra and extra[name] is None:
                continue  # mapped to null: a channel the runs never read
            modality = modality_of_channel(name, {k: v for k, v in extra.items() if v is not None})
            if modality is None or modality not in MODALITIES:
                raise ConfigError(
                    f"{layout} {self.path}: channel {index} {name!r} is not a modality name mutual_seg knows; "
                    f"map it, e.g. data.layout.channel_map=\"{{'{name}': flair}}\" (modalities: "
                    f"{', '.join(MODALITIES)}; null leaves the channel out)")
            if modality in by_modality:
                raise ConfigError(
                    f"{layout} {self.path}: channels {by_modality[modality]} "
                    f"({self.channels[by_modality[modality]]!r}) and {index} ({name!r}) are both {modality}; "
                    f"map one of them elsewhere with data.layout.channel_map")
            by_modality[modality] = index
        return by_modality


def read_dataset_json(root: str | Path, layout: str) -> DatasetJson:
    """The ``dataset.json`` in ``root``.

    Raises:
        DataError: no folder, no file, not JSON, or no channel names / labels.
    """
    folder = Path(root).expanduser().absolute()
    if not folder.is_dir():
        raise DataError(f"{layout}: {folder} is not a folder; point data.layout.root at the data set folder "
                        "(the one holding dataset.json)")
    path = folder / "dataset.json"
    if not path.is_file():
        raise DataError(f"{layout}: no dataset.json in {folder}; point data.layout.root at the data set folder "
                        "(the one holding dataset.json, imagesTr/ and labelsTr/)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{layout}: {path} cannot be read ({err}); fix the file") from err
    channels = raw.get("channel_names") or raw.get("modality") if isinstance(raw, dict) else None
    if not isinstance(channels, dict) or not channels:
        raise DataError(f"{layout}: {path} has no channel_names (nnU-Net) or modality (Decathlon) entry; add it, "
                        'e.g. "channel_names": {"0": "FLAIR", "1": "T2w"}')
    try:
        indexed = {int(k): str(v) for k, v in channels.items()}
        labels = _labels(raw.get("labels"))
    except (TypeError, ValueError) as err:
        raise DataError(f"{layout}: {path} has malformed channel names or labels ({err}); fix the file") from err
    if not labels:
        raise DataError(f"{layout}: {path} has no labels entry; add it, e.g. "
                        '"labels": {"background": 0, "tumour": 1}')
    return DatasetJson(path, indexed, labels, str(raw.get("file_ending", ".nii.gz")))


def _labels(raw: object) -> dict[str, tuple[int, ...]]:
    """Name -> values from either spelling: {"edema": 1, "region": [1, 2]} or {"1": "edema"}."""
    if not isinstance(raw, dict):
        return {}
    if all(isinstance(v, str) for v in raw.values()):  # Decathlon / nnU-Net v1: value -> name
        return {str(name): (int(value),) for value, name in raw.items()}
    return {str(name): tuple(int(v) for v in (value if isinstance(value, Sequence) else [value]))
            for name, value in raw.items()}


def dataset_labels(root: str, which: str) -> list:
    """The ``${dataset_labels:ROOT,allowed|outputs}`` resolver: label settings read from ROOT/dataset.json.

    ``allowed``: every value a label file may hold; ``outputs``: one output, the whole tumour. Other outputs
    (regions) are chosen with ``data.preprocessing.label_outputs=[[1,2,3],[2,3],[3]]``.
    """
    info = read_dataset_json(root, "nnU-Net/MSD data set")
    if which == "allowed":
        return info.allowed
    if which == "outputs":
        return [info.whole_tumour]
    raise ConfigError(f"${{dataset_labels:...,{which}}}: expected allowed or outputs")


def register_resolver() -> None:
    """``${dataset_labels:ROOT,WHICH}`` for conf/data/nnunet.yaml and msd.yaml (label values from dataset.json).

    Registered when the layouts are imported, which every command reading a ``data=`` choice does; the config
    module below the data layer knows nothing of data set formats.
    """
    if not OmegaConf.has_resolver("dataset_labels"):
        OmegaConf.register_new_resolver("dataset_labels", lambda root, which: OmegaConf.create(dataset_labels(root, which)))


register_resolver()
