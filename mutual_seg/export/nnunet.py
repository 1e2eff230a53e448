"""A run's data as an nnU-Net raw data set, with ``splits_final.json`` holding the project's own folds.

``DatasetNNN_Name/imagesTr/<subject>_<XXXX>.nii.gz`` (channel XXXX = the run's XXXX-th modality, symlinks to
the files where they are, or copies; one volume of a 4D file is always written out), ``labelsTr/<subject>.nii.gz``
(the run's task: ``data.preprocessing.label_outputs`` made binary with the same code as the cache, so nnU-Net
learns exactly what our networks learn), ``dataset.json``, and ``splits_final.json``: for every fold, nnU-Net's
``train`` = the subjects our fold trains on, ``val`` = our fold's test subjects (same seed, same patients).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from rich.progress import track

from mutual_seg.atomic import atomic_write_text
from mutual_seg.data.datamodule import SegDataModule
from mutual_seg.data.nifti import load_volume, write_nifti
from mutual_seg.data.preprocess import binarize_label
from mutual_seg.data.splits import make_split
from mutual_seg.data.subject import ChannelPath, Subject
from mutual_seg.errors import ConfigError, OutputError

DATASET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_-]+$")
ENDING = ".nii.gz"


def nnunet_folds(subjects: list[Subject], split: dict[str, Any]) -> list[dict[str, list[str]]]:
    """``splits_final.json``: per fold, ``train`` = our fold's training subjects, ``val`` = its test subjects.

    Our validation subjects (checkpoint selection) are in neither: nnU-Net trains on exactly what we train on.
    ``split`` holds ``data.split`` (n_folds, seed, val_fraction, fixed_test; its fold is ignored).
    """
    settings = {k: v for k, v in split.items() if k != "fold"}
    folds = [0] if settings.get("fixed_test") is not None else range(int(settings["n_folds"]))
    out = []
    for fold in folds:
        parts = make_split([s.patient_id for s in subjects], fold=fold, **settings)
        out.append({"train": sorted(s.id for s in subjects if s.patient_id in set(parts.train)),
                    "val": sorted(s.id for s in subjects if s.patient_id in set(parts.test))})
    return out


def export_nnunet(data: SegDataModule, out: Path, copy: bool, overwrite: bool, source: str) -> dict[str, Any]:
    """Write ``out`` (a ``DatasetNNN_Name`` folder) from the run's data module; return what ``dataset.json`` says.

    Raises:
        ConfigError: a folder name nnU-Net refuses, or several output maps (export one region at a time).
        OutputError: ``out`` already holds a data set and ``overwrite`` is false.
        DataError: a subject's file is missing or unreadable (one line naming it).
    """
    if not DATASET_NAME.match(out.name):
        raise ConfigError(f"--out {out}: nnU-Net needs a folder named DatasetNNN_Name (three digits, e.g. "
                          "Dataset501_Glioma); rename it")
    settings = data.preprocessing
    if len(settings.label_outputs) != 1:
        raise ConfigError(f"data.preprocessing.label_outputs has {len(settings.label_outputs)} outputs; export one "
                          "at a time (e.g. data.preprocessing.label_outputs=[[1,2,4]]): nnU-Net then learns that map")
    existing = [p for p in (out / "imagesTr", out / "labelsTr", out / "dataset.json") if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} already exists; pass --overwrite to replace the export, or choose "
                          "another --out")
    subjects = data.find_subjects()
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for subject in track(subjects, description=f"exporting {len(subjects)} subjects", transient=True):
        for index, modality in enumerate(data.modalities):
            _image(subject, subject.images[modality], out / "imagesTr" / f"{subject.id}_{index:04d}{ENDING}", copy)
        _label(subject, settings.label_outputs[0], settings.label_allowed, out / "labelsTr" / f"{subject.id}{ENDING}")
    info = {
        "channel_names": {str(i): m for i, m in enumerate(data.modalities)},
        "labels": {"background": 0, "tumour": 1},
        "numTraining": len(subjects),
        "file_ending": ENDING,
        "description": f"exported by mutual-seg-export from {source}: label 1 = values "
                       f"{list(settings.label_outputs[0])} of the source labels",
    }
    atomic_write_text(out / "dataset.json", json.dumps(info, indent=2) + "\n")
    atomic_write_text(out / "splits_final.json", json.dumps(nnunet_folds(subjects, data.split_settings), indent=2) + "\n")
    return info


def _image(subject: Subject, source: Path | ChannelPath, target: Path, copy: bool) -> None:
    """A symlink to the source (absolute), a copy, or (one volume of a 4D file, or a .nii) the volume written."""
    if target.is_symlink() or target.exists():
        target.unlink()
    if isinstance(source, ChannelPath) or not str(source).endswith(ENDING):
        data, affine, _ = load_volume(source, subject.id)
        write_nifti(target, data, affine)
    elif copy:
        shutil.copyfile(source, target)
    else:
        os.symlink(Path(source).absolute(), target)


def _label(subject: Subject, output: tuple[int, ...], allowed: tuple[int, ...], target: Path) -> None:
    """The run's binary target (0/1, uint8) with the source label's affine and header."""
    assert subject.label is not None  # find() requires labels
    values, _, _ = load_volume(subject.label, subject.id)
    binary = binarize_label(values, [output], allowed, subject_id=subject.id, path=subject.label)[0]
    source = nib.load(os.fspath(subject.label))
    if target.is_symlink():
        target.unlink()  # never write through a link into the source data set
    write_nifti(target, binary, source.affine, header=source.header, dtype=np.uint8)
