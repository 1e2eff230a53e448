"""``mutual-seg-check DATA_DIR``: every problem of a data set at once, one line each naming subject and file.

Usage::

    python -m mutual_seg.data.check data/synthetic                        # UCSF-PDGM layout, all sequences
    python -m mutual_seg.data.check /data/BraTS2021 --layout brats2021 --json problems.json
    python -m mutual_seg.data.check manifest.csv --layout manifest --modalities flair,t2w

Exit code 0: clean; 1: problems found (listed, and written to ``--json``); 2: usage error (bad folder, layout).

Two depths share one walk over the subjects. The *fast* part reads headers only: missing files, unreadable
headers, 4D images, geometry (shape, affine) against the subject's first image, duplicate IDs, metadata rows
without images and images without metadata. ``run`` performs it before training (``check_before_training``).
The *full* part (this command) also reads every voxel, through the same loaders that training uses
(``data/nifti.py`` and ``data/preprocess/``: truncated files, NaN/Inf, label values), and adds empty masks and empty labels, and
tumour voxels outside the brain mask. As in nnU-Net's ``verify_dataset_integrity``, nothing stops at the first.

Each finding has a :class:`Kind`. Metadata rows without a subject folder (a partial download, or train and test
subjects kept in two folders each with the full CSV) are a *warning*, listed once and counted, never a reason to
stop. Without ``--modalities`` the modalities present in the data set are checked, so a subject missing one that
the others have is reported and a modality no subject has is not.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from omegaconf.errors import InterpolationResolutionError
from rich.progress import track

from mutual_seg.cli import ArgumentParser, run_main, user_error
from mutual_seg.data.layouts import (
    LAYOUTS,
    LayoutWarning,
    ManifestLayout,
    UCSFPDGMLayout,
    describe_missing,
)
from mutual_seg.data.nifti import load_volume
from mutual_seg.data.preprocess import binarize_label, check_geometry
from mutual_seg.data.subject import ChannelPath, Subject
from mutual_seg.errors import DataError, subject_error


class Kind(str, Enum):
    """What a finding is about; ``check_before_training`` and the command decide by kind, never by wording."""

    MISSING = "missing"  # a requested file is absent (data.skip_incomplete=true skips such subjects)
    DUPLICATE = "duplicate"  # two subjects with one id
    METADATA = "metadata"  # a subject folder without its metadata row
    UNLISTED = "unlisted"  # metadata rows without a subject folder: a warning
    HEADER = "header"  # unreadable header, or not a 3D volume
    GEOMETRY = "geometry"  # shape or affine differs from the subject's first image
    VOXELS = "voxels"  # unreadable voxels, NaN/Inf, label values, empty label or mask, tumour outside the brain

    @property
    def is_warning(self) -> bool:
        return self is Kind.UNLISTED


@dataclass(frozen=True)
class Problem:
    """One finding: its kind, the subject (or metadata row), the file (if any), and the one-line message."""

    kind: Kind
    subject: str
    file: str | None
    message: str

    @classmethod
    def from_error(cls, kind: Kind, subject: str, file: Path | str | None, err: DataError) -> Problem:
        return cls(kind, subject, None if file is None else str(file), str(err))

    @classmethod
    def new(cls, kind: Kind, subject: str, file: Path | str | None, problem: str, fix: str) -> Problem:
        return cls.from_error(kind, subject, file, subject_error(subject, file, problem, fix))


def _files(subject: Subject) -> list[tuple[str, Path]]:
    named = [(f"{m} image", p) for m, p in subject.images.items()]
    named += [(what, p) for what, p in (("label", subject.label), ("parenchyma mask", subject.parenchyma_mask),
                                        ("brain mask", subject.brain_mask)) if p is not None]
    return named


def _header(subject: Subject, path: Path | ChannelPath) -> tuple[tuple[int, ...], np.ndarray] | Problem:
    """Shape and affine from the header alone (3D, 4D with one volume, or a 4D file's volume), or the problem."""
    try:
        image = nib.load(os.fspath(path))
        shape, affine = tuple(int(n) for n in image.shape), np.asarray(image.affine, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - nibabel raises many types for a bad header; each is the finding
        return Problem.new(Kind.HEADER, subject.id, path, f"cannot read the NIfTI header ({type(err).__name__})",
                           "re-download or re-export the file")
    if isinstance(path, ChannelPath):
        if len(shape) != 4 or path.channel >= shape[3]:
            return Problem.new(Kind.HEADER, subject.id, path, f"expected a 4D image with volume {path.channel}, "
                               f"found shape {shape}", "check the channel names in the data set's dataset.json")
        shape = shape[:3]
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        return Problem.new(Kind.HEADER, subject.id, path, f"expected a 3D volume, found shape {shape}",
                           "split 4D series and point the layout at one 3D volume per modality")
    return shape, affine


def check_subject(subject: Subject, allowed: Sequence[int] | None, deep: bool) -> list[Problem]:
    """Every problem of one subject's present files (headers; with ``deep`` also the voxels)."""
    problems: list[Problem] = []
    reference: tuple[Path, tuple[int, ...], np.ndarray] | None = None
    readable: list[tuple[str, Path]] = []
    for what, path in _files(subject):
        header = _header(subject, path)
        if isinstance(header, Problem):
            problems.append(header)
            continue
        shape, affine = header
        if reference is None:
            reference = (path, shape, affine)
        else:
            try:
                check_geometry(subject.id, path, shape, affine, reference[0], reference[1], reference[2])
            except DataError as err:
                problems.append(Problem.from_error(Kind.GEOMETRY, subject.id, path, err))
                continue
        readable.append((what, path))
    if deep:
        problems += _check_voxels(subject, readable, allowed)
    return problems


def _check_voxels(subject: Subject, files: list[tuple[str, Path]], allowed: Sequence[int] | None) -> list[Problem]:
    problems, label, mask = [], None, None
    for what, path in files:
        try:
            data, _, _ = load_volume(path, subject.id)  # truncated/corrupt, NaN/Inf: the loader's own checks
        except DataError as err:
            problems.append(Problem.from_error(Kind.VOXELS, subject.id, path, err))
            continue
        if what == "label":
            label = (path, data)
            if allowed is not None:
                try:
                    binarize_label(data, [list(allowed)], allowed, subject_id=subject.id, path=path)
                except DataError as err:
                    problems.append(Problem.from_error(Kind.VOXELS, subject.id, path, err))
            if not data.any():
                problems.append(Problem.new(Kind.VOXELS, subject.id, path, "label is empty (no tumour voxel)",
                                            "check that this is the subject's segmentation, or drop the subject"))
        elif what.endswith("mask"):
            if not data.any():
                problems.append(Problem.new(Kind.VOXELS, subject.id, path, f"{what} is empty (all zero)",
                                            "regenerate the mask or remove it from the layout"))
            elif mask is None:
                mask = (path, data != 0)
    if label is not None and mask is not None:
        outside = int(np.count_nonzero((label[1] != 0) & ~mask[1]))
        if outside:
            problems.append(Problem.new(Kind.VOXELS, subject.id, label[0], f"{outside} tumour voxels lie outside the brain mask "
                                        f"{mask[0].name}", "check that label and mask belong to the same subject"))
    return problems


def _id_key(subject_id: str) -> str:
    """IDs that name the same scan: case and leading zeros aside (``UCSF-PDGM-004`` = ``UCSF-PDGM-0004``)."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), subject_id.lower())


def check_set(layout: Any, modalities: Sequence[str], allowed: Sequence[int] | None, deep: bool,
              progress: bool = False) -> list[Problem]:
    """Every problem of a data set: missing files, duplicates, metadata, then each subject's files.

    Raises:
        DataError / ConfigError: nothing to check (no such folder, no subjects, unknown modality).
    """
    scanned = layout.scan(modalities)
    problems: list[Problem] = []
    by_key: dict[str, list[str]] = defaultdict(list)
    for subject, missing in scanned:
        by_key[_id_key(subject.id)].append(subject.id)
        for what, path in missing:
            problems.append(Problem.new(Kind.MISSING, subject.id or "?", path, describe_missing(what, path),
                                        "add the file, drop the modality, or use data.skip_incomplete=true"))
    for ids in by_key.values():
        if len(ids) > 1:
            problems.append(Problem.new(Kind.DUPLICATE, ids[0] or "?", None, f"duplicate ID: listed {len(ids)} times ({', '.join(ids)})",
                                        "keep one entry per subject"))
    if isinstance(layout, UCSFPDGMLayout):
        problems += _check_metadata(layout)
    subjects: Iterable[tuple[Subject, list]] = scanned
    if progress:
        subjects = track(scanned, description="checking subjects", transient=True)
    for subject, _ in subjects:
        problems += check_subject(subject, allowed, deep)
    return problems


def _check_metadata(layout: UCSFPDGMLayout) -> list[Problem]:
    """Folders without a metadata row (a problem where a cohort is selected from the metadata: such a folder
    cannot be placed in or out of it) and rows without a folder (one warning, counted: a partial download or
    a tree holding the train or the test subjects only, each with the full CSV, is fine)."""
    csv_path, no_row, no_folder = layout.metadata_coverage()
    if csv_path is None:
        return []
    problems = []
    if layout.cohort:
        problems = [Problem.new(Kind.METADATA, sid, None, f"no row in the metadata CSV {csv_path.name}, so "
                                "data.layout.cohort cannot tell whether it belongs to the cohort",
                                "add the row, or remove the subject folder") for sid in no_row]
    if no_folder:
        shown = ", ".join(no_folder[:8]) + (f" and {len(no_folder) - 8} more" if len(no_folder) > 8 else "")
        problems.append(Problem(Kind.UNLISTED, no_folder[0], str(csv_path),
                                f"{len(no_folder)} metadata row(s) in {csv_path.name} have no subject folder in "
                                f"{layout.root} ({shown}); they are not used"))
    return problems


def check_before_training(layout: Any, modalities: Sequence[str], skip_incomplete: bool) -> None:
    """The fast part (headers only) before a run trains: stop with the whole list, not only the first problem.

    Raises:
        DataError: one line listing every problem (missing files count only without ``skip_incomplete``).
    """
    problems = check_set(layout, modalities, allowed=None, deep=False)
    for note in (p for p in problems if p.kind.is_warning):
        warnings.warn(note.message, LayoutWarning, stacklevel=2)
    problems = [p for p in problems if not p.kind.is_warning and not (skip_incomplete and p.kind is Kind.MISSING)]
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the data set at {layout.root}: "
                        + " | ".join(p.message for p in problems)
                        + f" (full check: mutual-seg-check {layout.root})")


# -- command line ----------------------------------------------------------------------------------------------
def _layout(kind: str, data: Path) -> Any:
    """The layout reader with its defaults from ``conf/data/<kind>.yaml`` (one owner of those defaults)."""
    from hydra.utils import instantiate

    from mutual_seg.config import compose

    key = "data.layout.csv_path" if kind == "manifest" else "data.layout.root"
    cfg = compose([f"data={kind}", f"{key}='{data}'"])
    try:  # data=nnunet|msd read label values from dataset.json while resolving
        return instantiate(cfg.data.layout), list(cfg.data.preprocessing.label_allowed)
    except InterpolationResolutionError as err:
        found = user_error(err)  # a resolver's own error (no dataset.json ...)
        if found is None:
            raise
        raise found from None


def present_modalities(layout: Any) -> list[str]:
    """The modalities at least one subject has (a manifest: those it has columns for), in the layout's order."""
    candidates = layout.listed_modalities() if isinstance(layout, ManifestLayout) else list(layout.modalities)
    scanned = layout.scan(candidates)
    return [m for m in candidates if any(m in subject.images for subject, _ in scanned)] or candidates


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``mutual-seg-check``; returns the exit code (2 and one ``error:`` line for a user error)."""
    return run_main(lambda: _check(argv))


def build_parser() -> ArgumentParser:
    """The command line of ``mutual-seg-check`` (also parsed by the docs-command test)."""
    parser = ArgumentParser(prog="mutual-seg-check", description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="data folder (manifest: the CSV file)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="ucsf_pdgm")
    parser.add_argument("--modalities", help="comma-separated, e.g. flair,t2w (default: every one the data set has)")
    parser.add_argument("--json", type=Path, help="also write the findings to this JSON file")
    return parser


def _check(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    layout, allowed = _layout(args.layout, args.data)
    modalities = args.modalities.split(",") if args.modalities else present_modalities(layout)
    problems = check_set(layout, modalities, allowed, deep=True, progress=True)
    if args.json:
        from mutual_seg.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps([asdict(p) for p in problems], indent=2) + "\n")
    errors = [p for p in problems if not p.kind.is_warning]
    for problem in problems:
        print(f"warning: {problem.message}" if problem.kind.is_warning else problem.message)
    n_warnings = len(problems) - len(errors)
    print(f"{len(errors)} problem(s){f' and {n_warnings} warning(s)' if n_warnings else ''} in "
          f"{len(layout.scan(modalities))} subject(s) at {args.data} (modalities {','.join(modalities)})",
          file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
