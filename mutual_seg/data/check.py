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
(``data/preprocess.py``: truncated files, NaN/Inf, label values), and adds empty masks and empty labels, and
tumour voxels outside the brain mask. As in nnU-Net's ``verify_dataset_integrity``, nothing stops at the first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from rich.progress import track

from mutual_seg.data.layouts import LAYOUTS, UCSFPDGMLayout, describe_missing
from mutual_seg.data.preprocess import binarize_label, check_geometry, load_volume
from mutual_seg.data.subject import Subject
from mutual_seg.errors import DataError, MutualSegError, subject_error


@dataclass(frozen=True)
class Problem:
    """One finding: the subject (or metadata row), the file (if any), and the one-line message."""

    subject: str
    file: str | None
    message: str

    @classmethod
    def from_error(cls, subject: str, file: Path | str | None, err: DataError) -> Problem:
        return cls(subject, None if file is None else str(file), str(err))

    @classmethod
    def new(cls, subject: str, file: Path | str | None, problem: str, fix: str) -> Problem:
        return cls.from_error(subject, file, subject_error(subject, file, problem, fix))


def _files(subject: Subject) -> list[tuple[str, Path]]:
    named = [(f"{m} image", p) for m, p in subject.images.items()]
    named += [(what, p) for what, p in (("label", subject.label), ("parenchyma mask", subject.parenchyma_mask),
                                        ("brain mask", subject.brain_mask)) if p is not None]
    return named


def _header(subject: Subject, path: Path) -> tuple[tuple[int, ...], np.ndarray] | Problem:
    """Shape and affine from the header alone (3D, or 4D with one volume), or the problem."""
    try:
        image = nib.load(str(path))
        shape, affine = tuple(int(n) for n in image.shape), np.asarray(image.affine, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - nibabel raises many types for a bad header; each is the finding
        return Problem.new(subject.id, path, f"cannot read the NIfTI header ({type(err).__name__})",
                           "re-download or re-export the file")
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        return Problem.new(subject.id, path, f"expected a 3D volume, found shape {shape}",
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
                problems.append(Problem.from_error(subject.id, path, err))
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
            problems.append(Problem.from_error(subject.id, path, err))
            continue
        if what == "label":
            label = (path, data)
            if allowed is not None:
                try:
                    binarize_label(data, [list(allowed)], allowed, subject_id=subject.id, path=path)
                except DataError as err:
                    problems.append(Problem.from_error(subject.id, path, err))
            if not data.any():
                problems.append(Problem.new(subject.id, path, "label is empty (no tumour voxel)",
                                            "check that this is the subject's segmentation, or drop the subject"))
        elif what.endswith("mask"):
            if not data.any():
                problems.append(Problem.new(subject.id, path, f"{what} is empty (all zero)",
                                            "regenerate the mask or remove it from the layout"))
            elif mask is None:
                mask = (path, data != 0)
    if label is not None and mask is not None:
        outside = int(np.count_nonzero((label[1] != 0) & ~mask[1]))
        if outside:
            problems.append(Problem.new(subject.id, label[0], f"{outside} tumour voxels lie outside the brain mask "
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
            problems.append(Problem.new(subject.id or "?", path, describe_missing(what, path),
                                        "add the file, drop the modality, or use data.skip_incomplete=true"))
    for ids in by_key.values():
        if len(ids) > 1:
            problems.append(Problem.new(ids[0] or "?", None, f"duplicate ID: listed {len(ids)} times ({', '.join(ids)})",
                                        "keep one entry per subject"))
    if isinstance(layout, UCSFPDGMLayout):
        problems += _check_metadata(layout, [s for s, _ in scanned])
    subjects: Iterable[tuple[Subject, list]] = scanned
    if progress:
        subjects = track(scanned, description="checking subjects", transient=True)
    for subject, _ in subjects:
        problems += check_subject(subject, allowed, deep)
    return problems


def _check_metadata(layout: UCSFPDGMLayout, subjects: list[Subject]) -> list[Problem]:
    csv_path, rows = layout.metadata()
    if csv_path is None:
        return []
    numbers = {int(m.group(1)): s.id for s in subjects if (m := re.search(r"(\d+)$", s.patient_id))}
    problems = [Problem.new(sid, None, f"no row in the metadata CSV {csv_path.name}",
                            "add the row, or remove the subject folder") for n, sid in numbers.items() if n not in rows]
    problems += [Problem.new(row.get("ID", str(n)), csv_path, "metadata row has no subject folder",
                             "add the subject's images, or remove the row") for n, row in rows.items() if n not in numbers]
    return problems


def check_before_training(layout: Any, modalities: Sequence[str], skip_incomplete: bool) -> None:
    """The fast part (headers only) before a run trains: stop with the whole list, not only the first problem.

    Raises:
        DataError: one line listing every problem (missing files count only without ``skip_incomplete``).
    """
    problems = check_set(layout, modalities, allowed=None, deep=False)
    if skip_incomplete:
        problems = [p for p in problems if "not found" not in p.message and "not given" not in p.message]
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the data set at {layout.root}: "
                        + " | ".join(p.message for p in problems)
                        + f" (full check: mutual-seg-check {layout.root})")


# -- command line ----------------------------------------------------------------------------------------------
def _layout(kind: str, data: Path) -> Any:
    """The layout reader with its defaults from ``conf/data/<kind>.yaml`` (one owner of those defaults)."""
    from hydra.utils import instantiate

    from mutual_seg.runtime.overrides import compose_config

    key = "data.layout.csv_path" if kind == "manifest" else "data.layout.root"
    cfg = compose_config([f"data={kind}", f"{key}='{data}'"])
    return instantiate(cfg.data.layout), list(cfg.data.preprocessing.label_allowed)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``mutual-seg-check`` (also parsed by the docs-command test)."""
    parser = argparse.ArgumentParser(prog="mutual-seg-check", description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="data folder (manifest: the CSV file)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="ucsf_pdgm")
    parser.add_argument("--modalities", help="comma-separated, e.g. flair,t2w (default: every one the layout has)")
    parser.add_argument("--json", type=Path, help="also write the findings to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``mutual-seg-check``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        layout, allowed = _layout(args.layout, args.data)
        modalities = args.modalities.split(",") if args.modalities else list(layout.modalities)
        if args.layout == "manifest" and not args.modalities:
            modalities = [m for m in modalities if m in layout._read()[0]]
        problems = check_set(layout, modalities, allowed, deep=True, progress=True)
        if args.json:
            from mutual_seg.runtime.atomic import atomic_write_text

            atomic_write_text(args.json, json.dumps([asdict(p) for p in problems], indent=2) + "\n")
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem.message)
    print(f"{len(problems)} problem(s) in {len(layout.scan(modalities))} subject(s) at {args.data}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
