"""New patients for ``predict``: a subject folder, a data-set root, a manifest CSV, or explicit files.

Only paths are found here (no pixels). A subject folder is read by file-name endings from every
layout's table in :mod:`mutual_seg.modalities` (``<id>_FLAIR.nii.gz`` of UCSF-PDGM,
``<id>_flair.nii.gz`` / ``<id>_t2.nii.gz`` of BraTS 2021, ``<id>-t2f.nii.gz`` of BraTS 2023, or the
modality name itself, ``<id>_t2w.nii.gz``); label files are ignored, a parenchyma or brain mask is
used for normalization as in training. A data-set root is a folder of subject folders; a ``.csv``
is a manifest (:class:`mutual_seg.data.layouts.ManifestLayout`, the label column optional).

In a batch a bad subject never stops the others: a subject folder or manifest row with a missing or
ambiguous file, an id that is not a file name, or two subjects whose outputs would get the same name
(``X/`` and ``X_nifti/``, or one id on two manifest rows: both refused, neither overwrites the other)
becomes one ``(id, error line)`` failure and the rest are predicted.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from mutual_seg.data.layouts import ManifestLayout, describe_missing
from mutual_seg.data.layouts.inputs import Failure, format_inputs
from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError, DataError, subject_error
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


def expected_names(modality: str) -> str:
    """The file names that give ``modality`` in a subject folder, for messages: ``<id>_t2.nii.gz or <id>_t2w.nii.gz``."""
    names = [f"<id>_{e}.nii.gz" for e, m in sorted(_ENDINGS.items()) if m == modality]
    return " or ".join(names) + " (any case, _ or -)"


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


def find_inputs(path: str | Path, modalities: Sequence[str]) -> tuple[list[Subject], list[Failure]]:
    """Subjects at ``path`` and the ones that cannot be predicted, each with its one-line error.

    Args:
        path: a subject folder, a folder of subject folders, a manifest ``.csv``, or a path in the nnU-Net,
            Decathlon or BIDS format (:func:`mutual_seg.data.layouts.inputs.format_inputs`).
        modalities: the checkpoint's modalities (a manifest is asked for those it has columns for).

    Returns:
        (subjects sorted by id, [(id or folder name, one-line error)]).

    Raises:
        DataError: the path does not exist, or holds no subject at all.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise DataError(f"input {path} does not exist; pass a subject folder, a data set folder or a manifest .csv")
    found = format_inputs(path)  # nnU-Net imagesTs/, an MSD 4D file or folder, a BIDS subject or root
    if found is not None:
        subjects, failures = found
    elif path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"input {path} is a file; pass a folder, a manifest .csv, or images with --flair/--t2w/...")
        subjects, failures = _from_manifest(path, modalities)
    elif any(_NIFTI.match(p.name) for p in path.iterdir() if p.is_file()):
        subjects, failures = [subject_from_folder(path)], []
    else:
        subjects, failures = _from_root(path)
    kept, clashes = _distinct_outputs(subjects)
    return sorted(kept, key=lambda s: s.id), failures + clashes


def _from_root(path: Path) -> tuple[list[Subject], list[Failure]]:
    """Every subject folder under a data-set root (UCSF-PDGM, BraTS or any folder of subject folders)."""
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
    return subjects, failures


def _from_manifest(path: Path, modalities: Sequence[str]) -> tuple[list[Subject], list[Failure]]:
    """Subjects of a manifest for the checkpoint's modalities it has columns for (label optional); bad rows fail alone."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            columns = {c.strip().lower() for c in next(csv.reader(handle), [])}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest CSV {path} cannot be read ({err}); fix it") from err
    listed = [m for m in modalities if m in columns] or list(modalities)  # none: scan() names the columns
    rows = ManifestLayout(path).scan(listed, require_label=False)
    if not rows:
        raise DataError(f"manifest CSV {path} lists no subjects; add one row per subject")
    subjects, failures = [], []
    for subject, missing in rows:
        if not subject.id:
            first = next(iter(subject.images.values()), None)
            failures.append(("?", f"manifest CSV {path}: a row has an empty id" + (f" (its {listed[0]}: {first})"
                                  if first else "") + "; fill the id or drop the row"))
        elif missing:
            what, where = missing[0]
            more = f" (and {', '.join(w for w, _ in missing[1:])})" if len(missing) > 1 else ""
            failures.append((subject.id, str(subject_error(subject.id, where, describe_missing(what, where) + more,
                                                           f"fix its row in {path} or drop the row"))))
        else:
            subjects.append(subject)
    return subjects, failures


def _distinct_outputs(subjects: list[Subject]) -> tuple[list[Subject], list[Failure]]:
    """Refuse subjects whose outputs (``<id>_seg.nii.gz``) would overwrite another's or land outside the folder.

    Ids are compared case-insensitively: on macOS and Windows ``A_seg`` and ``a_seg`` are one file.
    Every subject of a clashing group is refused (which one is right is not ours to guess), each
    line naming its own file and the other's.
    """
    groups: dict[str, list[Subject]] = defaultdict(list)
    failures = []
    for subject in subjects:
        if _unsafe_id(subject.id):
            failures.append((subject.id, str(subject_error(
                subject.id, _first_file(subject), "the id is not a plain file name (it has a / or \\, or starts "
                "with a dot), so its outputs would be written outside --output", "give the subject a plain id"))))
        else:
            groups[subject.id.casefold()].append(subject)
    kept = []
    for group in groups.values():
        if len(group) == 1:
            kept.append(group[0])
            continue
        for subject in group:
            others = " and ".join(f"{o.id} ({_first_file(o)})" for o in group if o is not subject)
            failures.append((subject.id, str(subject_error(
                subject.id, _first_file(subject), f"same output name {subject.id}_seg.nii.gz as subject {others}, "
                "so neither is predicted", "rename one subject folder, or give each manifest row its own id"))))
    return kept, failures


def _unsafe_id(subject_id: str) -> bool:
    return not subject_id or subject_id.startswith(".") or any(c in subject_id for c in "/\\\0")


def _first_file(subject: Subject) -> Path | None:
    return next(iter(subject.images.values()), None)


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
    if _unsafe_id(subject_id):
        raise ConfigError(f"--id {subject_id!r} is not a plain file name (a / or \\, or a leading dot); "
                          "give a plain id such as patient-01")
    return Subject(subject_id, paths, None, Path(mask).expanduser().absolute() if mask else None)
