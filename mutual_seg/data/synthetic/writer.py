"""Writing the set: the UCSF-PDGM files of each subject, the metadata CSV, resume and refusal.

Besides the UCSF-PDGM files the folder holds ``synthetic_dataset.json`` (the arguments), which lets
a re-run with identical arguments resume and anything else be refused. Files are written under a
temporary name and renamed, so an interrupted run leaves no half files.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from mutual_seg.data.nifti import PARTIAL, write_nifti
from mutual_seg.data.synthetic.contrasts import get_variant
from mutual_seg.data.synthetic.metadata import METADATA_COLUMNS, METADATA_CSV, sample_metadata
from mutual_seg.data.synthetic.subject import simulate_subject, subject_seed
from mutual_seg.errors import ConfigError, DataError
from mutual_seg.modalities import (
    MODALITIES,
    UCSF_PDGM_BRAIN,
    UCSF_PDGM_LABEL,
    UCSF_PDGM_PARENCHYMA,
    UCSF_PDGM_SUFFIXES,
)

GENERATOR_VERSION = 2  # 2: edge_level widened to 8-28 % (annotators differ on the infiltrative margin)
MANIFEST = "synthetic_dataset.json"
MASK_SUFFIXES = (UCSF_PDGM_LABEL, UCSF_PDGM_PARENCHYMA, UCSF_PDGM_BRAIN)  # in file order


def subject_id(index: int) -> str:
    """Folder/file id of subject ``index`` (1-based), as the release names them."""
    return f"UCSF-PDGM-{index:04d}"


def subject_files(out: Path, index: int) -> list[Path]:
    """Every file one subject owns: the seven sequences, then label, parenchyma, brain."""
    sid = subject_id(index)
    folder = Path(out) / f"{sid}_nifti"
    names = [UCSF_PDGM_SUFFIXES[m] for m in MODALITIES] + list(MASK_SUFFIXES)
    return [folder / f"{sid}_{name}.nii.gz" for name in names]


def _save(array: np.ndarray, affine: np.ndarray, dtype: type, path: Path) -> None:
    """Write atomically (``data.nifti``: temp name, then rename) so an interrupted run leaves no half files.

    int16 + scale slope like scanner data: nibabel computes slope/intercept from the floats.
    """
    write_nifti(path, array, affine, dtype=dtype, scaled=True)


def _write_subject(out: str, index: int, seed: int, shape: tuple, variant: str) -> int:
    """Simulate subject ``index`` and write the files it is missing; returns ``index``."""
    files = subject_files(Path(out), index)
    missing = [f for f in files if not f.exists()]
    if not missing:
        return index
    sub = simulate_subject(subject_seed(seed, index, variant), shape, variant, index)
    files[0].parent.mkdir(parents=True, exist_ok=True)
    arrays = [(sub.images[m], np.int16) for m in MODALITIES] + [
        (sub.label, np.uint8),
        (sub.parenchyma, np.uint8),
        (sub.brain, np.uint8),
    ]
    for path, (array, dtype) in zip(files, arrays):
        if path in missing:  # never overwrite: existing files came from the same arguments
            _save(array, sub.affine, dtype, path)
    return index


def _write_metadata(out: Path, n_subjects: int, seed: int, variant: str) -> None:
    """The metadata CSV, one row per subject, drawn from each subject's own seed."""
    rows = [
        sample_metadata(subject_seed(seed, i, variant), i, variant)
        for i in range(1, n_subjects + 1)
    ]
    with open(out / METADATA_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _prepare_out(out: Path, manifest: dict, overwrite: bool) -> None:
    """Refuse a folder holding something else; resume one made with the same arguments."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} is a file, not a folder; choose another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        try:
            previous = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            previous = None
        if previous != manifest:
            what = (
                "a synthetic set made with other arguments " + _describe(previous)
                + f", where this generator is version {GENERATOR_VERSION}"
                if isinstance(previous, dict)
                else f"{len(entries)} other entries"
            )
            raise DataError(
                f"output folder {out} is not empty (it holds {what}); choose an empty folder, "
                "re-run with the same arguments to resume, or pass --overwrite to replace it"
            )
    if overwrite:
        _remove_previous(out, manifest)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _describe(manifest: dict) -> str:
    keys = ("subjects", "seed", "shape", "variant", "version")
    return "(" + ", ".join(f"{k}={manifest.get(k)}" for k in keys) + ")"


def _remove_previous(out: Path, manifest: dict) -> None:
    """With --overwrite: delete the files a previous synthetic set wrote there, and only those."""
    try:
        previous = json.loads((out / MANIFEST).read_text())
        n_previous = int(previous["subjects"])
    except (OSError, ValueError, KeyError, TypeError):
        n_previous = 0
    for index in range(1, max(n_previous, manifest["subjects"]) + 1):
        files = subject_files(out, index)
        for f in files:
            f.unlink(missing_ok=True)
        folder = files[0].parent
        if folder.is_dir():
            for tmp in folder.glob(f".*{PARTIAL}.nii.gz"):  # left by a killed run
                tmp.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()


def generate_dataset(
    out: Path | str,
    n_subjects: int,
    seed: int,
    shape: Sequence[int] = (240, 240, 155),
    variant: str = "default",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Write ``n_subjects`` synthetic subjects in the UCSF-PDGM layout under ``out``.

    Args:
        out: folder to create (or resume: same arguments, or replace: ``overwrite``).
        n_subjects: subjects ``UCSF-PDGM-0001`` .. ``UCSF-PDGM-<n>``.
        seed: data set seed; subject i is seeded from (seed, i, variant).
        shape: voxels (X, Y, Z) over the fixed 240 x 240 x 155 mm field of view.
        variant: a ``VARIANTS`` preset (``default``, ``shifted``).
        workers: processes (default min(2, CPU count)); 1 runs in this process.
        overwrite: replace what is in ``out`` instead of refusing a non-empty folder.
        progress: show a rich progress bar.

    Returns:
        The subject ids written (or found complete), in order.

    Raises:
        ConfigError: bad arguments. DataError: ``out`` holds something else.
    """
    out = Path(out)
    get_variant(variant)
    shape = tuple(int(n) for n in shape)
    if isinstance(n_subjects, bool) or int(n_subjects) < 1:
        raise ConfigError(f"--subjects must be at least 1, got {n_subjects}")
    if len(shape) != 3 or min(shape) < 8:
        raise ConfigError(f"--shape needs three sizes of at least 8 voxels, got {list(shape)}")
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    n_subjects = int(n_subjects)
    manifest = {
        "generator": "mutual_seg.data.synthetic",
        "version": GENERATOR_VERSION,
        "subjects": n_subjects,
        "seed": int(seed),
        "shape": list(shape),
        "variant": variant,
    }
    _prepare_out(out, manifest, overwrite)
    _write_metadata(out, n_subjects, int(seed), variant)
    indices = list(range(1, n_subjects + 1))
    from rich.progress import Progress  # lazy: workers never need it

    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task(f"synthetic subjects ({variant})", total=len(indices))
        if workers == 1 or len(indices) == 1:
            for i in indices:
                _write_subject(str(out), i, int(seed), shape, variant)
                bar.advance(task)
        else:
            # spawn: no fork of a process that runs rich's refresh thread
            with ProcessPoolExecutor(
                min(workers, len(indices)), mp_context=get_context("spawn")
            ) as pool:
                jobs = [
                    pool.submit(_write_subject, str(out), i, int(seed), shape, variant)
                    for i in indices
                ]
                for job in as_completed(jobs):
                    job.result()
                    bar.advance(task)
    return [subject_id(i) for i in indices]
