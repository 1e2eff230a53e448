"""New patients for ``predict``: a subject folder, a data-set root, a manifest CSV, or explicit files.

Only paths are found here (no pixels). A subject folder is read by file-name endings from every
layout's table in :mod:`mutual_seg.modalities` (``<id>_FLAIR.nii.gz`` of UCSF-PDGM,
``<id>_flair.nii.gz`` / ``<id>_t2.nii.gz`` of BraTS 2021, ``<id>-t2f.nii.gz`` of BraTS 2023, or the
modality name itself, ``<id>_t2w.nii.gz``); label files are ignored, a parenchyma or brain mask is
used for normalization as in training. A data-set root is a folder of subject folders; a ``.csv``
is a manifest (:class:`mutual_seg.data.layouts.ManifestLayout`, the label column optional).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mutual_seg.data.layouts import ManifestLayout
from mutual_seg.data.subject import Subject
from mutual_seg.errors import DataError, subject_error
from mutual_seg.modalities import (
    BRATS2021_SUFFIXES,
    BRATS2023_SUFFIXES,
    BRATS_LABEL,
    MODALITIES,
    UCSF_PDGM_BRAIN,
    UCSF_PDGM_LABEL,
    UCSF_PDGM_PARENCHYMA,
    UCSF_PDGM_SUFFIXES,
)

_NIFTI = re.compile(r"^(?P<stem>[^.].*)\.nii(\.gz)?$")
# Lower-case file-name ending (after the last _ or -) -> modality, from every layout's table.
_ENDINGS: dict[str, str] = {
    **{m: m for m in MODALITIES},
    **{s.lower(): m for table in (UCSF_PDGM_SUFFIXES, BRATS2021_SUFFIXES, BRATS2023_SUFFIXES) for m, s in table.items()},
}


def subject_from_folder(folder: Path) -> Subject:
    """The images and masks of one subject folder, recognised by their file-name endings.

    Raises:
        DataError: two images of one modality (naming both files), or no image at all.
    """
    sid = folder.name.removesuffix("_nifti")
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        found = _NIFTI.match(path.name)
        if not found or not path.is_file():
            continue
        stem = found["stem"].lower()
        if stem.endswith((UCSF_PDGM_LABEL.lower(), f"_{BRATS_LABEL}", f"-{BRATS_LABEL}")):
            continue  # a label: predict never reads it
        if stem.endswith(UCSF_PDGM_PARENCHYMA.lower()):
            masks["parenchyma"] = path
            continue
        if stem.endswith(UCSF_PDGM_BRAIN.lower()):
            masks["brain"] = path
            continue
        modality = _ENDINGS.get(re.split(r"[_-]", stem)[-1])
        if modality is None:
            continue  # another sequence (DTI, ASL, a bias-corrected copy): not an input of ours
        if modality in images:
            raise subject_error(sid, path, f"two {modality} images ({images[modality].name} and {path.name})",
                                "keep one image per modality in the folder, or pass the files explicitly")
        images[modality] = path
    if not images:
        endings = ", ".join(f"_{s}" for s in UCSF_PDGM_SUFFIXES.values())
        raise DataError(f"input folder {folder} holds no image named like <id>{{{endings}}}.nii.gz "
                        "(or the BraTS names); point --input at a subject folder or a data set")
    return Subject(sid, images, None, masks.get("parenchyma"), masks.get("brain"))


def find_inputs(path: str | Path, modalities: Sequence[str]) -> tuple[list[Subject], list[tuple[str, str]]]:
    """Subjects at ``path`` and, for a data-set root, the subject folders that could not be read.

    Args:
        path: a subject folder, a folder of subject folders, or a manifest ``.csv``.
        modalities: the checkpoint's modalities (a manifest is asked for those it has columns for).

    Returns:
        (subjects sorted by id, [(folder name, one-line error)]).

    Raises:
        DataError: the path does not exist, or holds no subject at all.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise DataError(f"input {path} does not exist; pass a subject folder, a data set folder or a manifest .csv")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"input {path} is a file; pass a folder, a manifest .csv, or images with --flair/--t2w/...")
        return _from_manifest(path, modalities), []
    if any(_NIFTI.match(p.name) for p in path.iterdir() if p.is_file()):
        return [subject_from_folder(path)], []
    subjects, failures = [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not any(_NIFTI.match(p.name) for p in folder.iterdir()):
            continue
        try:
            subjects.append(subject_from_folder(folder))
        except DataError as err:
            failures.append((folder.name, str(err)))
    if not subjects and not failures:
        raise DataError(f"input folder {path} holds no subject (no .nii.gz images in it or in its subfolders); "
                        "point --input at a subject folder or a data set")
    return sorted(subjects, key=lambda s: s.id), failures


def _from_manifest(path: Path, modalities: Sequence[str]) -> list[Subject]:
    """Subjects of a manifest, for the checkpoint's modalities it has columns for (label optional)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            columns = {c.strip().lower() for c in next(csv.reader(handle), [])}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest CSV {path} cannot be read ({err}); fix it") from err
    listed = [m for m in modalities if m in columns] or list(modalities)  # none: find() names the columns
    return ManifestLayout(path).find(listed, require_label=False)


def subject_from_files(images: Mapping[str, str | Path], mask: str | Path | None, subject_id: str | None) -> Subject:
    """A subject from explicit ``--flair F --t2w T [--mask M]`` files; the mask is the normalization mask.

    The id defaults to the first image's name without ``.nii.gz`` and its modality ending.
    """
    paths = {m: Path(p).expanduser().absolute() for m, p in images.items()}
    if subject_id is None:
        stem = _NIFTI.match(next(iter(paths.values())).name)
        name = stem["stem"] if stem else next(iter(paths.values())).stem
        parts = re.split(r"([_-])", name)
        subject_id = "".join(parts[:-2]) if len(parts) > 2 and parts[-1].lower() in _ENDINGS else name
    return Subject(subject_id, paths, None, Path(mask).expanduser().absolute() if mask else None)
