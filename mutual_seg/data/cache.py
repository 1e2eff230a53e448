"""Volume cache: preprocessed subjects as memory-mappable, slice-first ``.npy`` files.

Training reads slices from here and never touches ``.nii.gz``. On disk, per subject::

    <cache_dir>/<subject_id>/<modality>-<key>.npy   float32 (Z, X, Y)   normalized image
    <cache_dir>/<subject_id>/label-<key>.npy        uint8 (Z, O, X, Y)  binary label channels
    <cache_dir>/<subject_id>/mask-<key>.npy         uint8 (Z, X, Y)     normalization mask
    <cache_dir>/<subject_id>/meta-<key>.json        spacing, affine, shape, source files (written last)

Each key is a 16-hex sha1 of what that entry depends on (input paths, sizes, mtimes, settings,
``CACHE_VERSION``), so touching a file or changing a setting yields a new key, and runs with
``flair``, ``t2w`` and ``flair+t2w`` share the per-modality entries. Old keys are never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress

from mutual_seg.data.preprocess import (
    PreprocessSettings,
    choose_mask,
    preprocess_subject,
    slice_first,
)
from mutual_seg.data.subject import ChannelPath, Subject
from mutual_seg.errors import ConfigError, DataError, subject_error
from mutual_seg.runtime.atomic import atomic_write, atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the preprocessing code changes what it writes


@dataclass
class CachedSubject:
    """One cached subject: paths to its ``.npy`` volumes plus the geometry needed to write back NIfTI.

    Attributes:
        spacing: voxel size in mm in cached array order (z, x, y).
        affine: original (4, 4) NIfTI affine of the reference modality.
        shape: cached volume shape (Z, X, Y).
    """

    id: str
    patient_id: str
    images: dict[str, Path]
    label: Path
    mask: Path
    spacing: tuple[float, float, float]
    affine: np.ndarray
    shape: tuple[int, int, int]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        """Voxel size in the original NIfTI order (x, y, z)."""
        z, x, y = self.spacing
        return (x, y, z)

    def load_image(self, modalities: Sequence[str] | None = None, mmap: bool = True) -> np.ndarray:
        """Stack modalities into float32 [Z, I, X, Y] (a copy; use :meth:`image_slice` for one slice)."""
        names = list(modalities) if modalities is not None else list(self.images)
        return np.stack([self._open(self.images[m], mmap) for m in names], axis=1)

    def image_slice(self, z: int, modalities: Sequence[str] | None = None) -> np.ndarray:
        """Read one axial slice as float32 [I, X, Y], touching only that slice's bytes."""
        names = list(modalities) if modalities is not None else list(self.images)
        return np.stack([np.load(self.images[m], mmap_mode="r")[z] for m in names])

    def load_label(self, mmap: bool = True) -> np.ndarray:
        """Binary label channels, uint8 [Z, O, X, Y]."""
        return self._open(self.label, mmap)

    def load_mask(self, mmap: bool = True) -> np.ndarray:
        """Normalization mask, uint8 [Z, X, Y] (e.g. to pick slices that contain brain)."""
        return self._open(self.mask, mmap)

    @staticmethod
    def _open(path: Path, mmap: bool) -> np.ndarray:
        return np.load(path, mmap_mode="r" if mmap else None)


def _hash(parts: dict) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _fingerprint(path: Path | ChannelPath) -> list:
    """(absolute path, size, mtime_ns[, volume of a 4D file]): changes whenever a file is rewritten or touched."""
    volume = [path.channel] if isinstance(path, ChannelPath) else []
    path = Path(path).absolute()
    try:
        st = path.stat()
    except OSError:
        return [str(path), -1, -1, *volume]  # missing: preprocessing will report it properly
    return [str(path), st.st_size, st.st_mtime_ns, *volume]


class VolumeCache:
    """Preprocess subjects once and cache them as slice-first ``.npy`` files.

    Args:
        cache_dir: cache root; must not lie inside a subject's data folder.
        settings: normalization and label settings (part of every entry's key).
        num_workers: processes for :meth:`prepare`; 0 or 1 runs in this process.
    """

    def __init__(self, cache_dir: str | Path, settings: PreprocessSettings, num_workers: int) -> None:
        self.cache_dir = Path(cache_dir).absolute()
        if not isinstance(settings, PreprocessSettings):
            raise TypeError(f"settings must be PreprocessSettings, got {type(settings).__name__}")
        self.settings = settings
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers must be >= 0, found {num_workers}")
        self.num_workers = int(num_workers)

    def prepare(
        self, subjects: Sequence[Subject], modalities: Sequence[str], progress: bool = True
    ) -> list[CachedSubject]:
        """Make sure every subject is cached for ``modalities``; return them in input order.

        Cached subjects are recognized by their keyed files and skipped without loading anything.
        All subjects are attempted before failing, then one DataError reports the first problem
        and how many more there were. A failing subject leaves no entry for its keys.

        Raises:
            DataError: any subject's input is missing or invalid, or the cache lies inside the data.
        """
        modalities = list(modalities)
        if not modalities:
            raise ConfigError(
                "no modalities requested; set the modality group (e.g. modality=flair)"
            )
        for s in subjects:
            self._check_location(s)
        plans = [self._plan(s, modalities) for s in subjects]
        _warn_fallbacks(subjects, plans)
        results: list[CachedSubject | None] = [None] * len(subjects)
        todo = []
        for i, plan in enumerate(plans):
            if all(p.exists() for p in plan["paths"]):
                results[i] = _read_meta(subjects[i], plan)
            else:
                todo.append(i)

        errors: list[str] = []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"caching {len(todo)} of {len(subjects)} subjects", total=len(todo))
            if self.num_workers > 1 and len(todo) > 1:
                with ProcessPoolExecutor(max_workers=min(self.num_workers, len(todo))) as pool:
                    futures = {
                        pool.submit(_build, subjects[i], modalities, self.settings, plans[i]): i
                        for i in todo
                    }
                    for fut in as_completed(futures):
                        results[futures[fut]], err = fut.result()
                        errors += [err] if err else []
                        bar.advance(task)
            else:
                for i in todo:
                    results[i], err = _build(subjects[i], modalities, self.settings, plans[i])
                    errors += [err] if err else []
                    bar.advance(task)
        log.info(
            "volume cache %s: %d subjects, %d newly preprocessed, %d failed",
            self.cache_dir,
            len(subjects),
            len(todo) - len(errors),
            len(errors),
        )
        if errors:
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise DataError(errors[0] + more)
        return [r for r in results if r is not None]

    def _check_location(self, subject: Subject) -> None:
        """Refuse a cache inside a subject's folder: the cache must never write next to raw data."""
        if subject.id in ("", ".", "..") or "/" in subject.id or "\\" in subject.id:
            raise subject_error(
                subject.id,
                None,
                "the subject id cannot be used as a cache folder name",
                "give subjects ids without path separators",
            )
        files = [
            *subject.images.values(),
            subject.label,
            subject.parenchyma_mask,
            subject.brain_mask,
        ]
        for f in files:
            if f is None:
                continue
            folder = Path(f).resolve().parent  # resolve: a symlinked cache must not sneak in
            cache = self.cache_dir.resolve()
            if cache == folder or folder in cache.parents:
                raise subject_error(
                    subject.id,
                    f,
                    f"cache_dir {self.cache_dir} lies inside the subject's data folder {folder}",
                    "set the cache directory outside the data tree (e.g. paths.cache_dir)",
                )

    def _plan(self, subject: Subject, modalities: list[str]) -> dict:
        """Keys and file paths of one subject's entries, from file stats and settings only (no I/O on pixels)."""
        # prepare() warns once for all subjects rather than once per subject
        source, mask_path = choose_mask(subject, warn=False)
        s = self.settings
        if mask_path is not None:
            mask_dep = {"source": source, "file": _fingerprint(mask_path)}
        else:  # the union of non-zero voxels depends on every requested image
            mask_dep = {
                "source": source,
                "files": [
                    _fingerprint(subject.images[m])
                    for m in sorted(set(modalities))
                    if m in subject.images
                ],
            }
        keys: dict[str, str] = {}
        for m in modalities:
            # with "nonzero" an image is normalized inside its own non-zero voxels only
            own = mask_dep if mask_path is not None else {"source": source}
            keys[m] = _hash(
                {
                    "v": CACHE_VERSION,
                    "kind": "image",
                    "file": _fingerprint(subject.images[m]) if m in subject.images else None,
                    "mask": own,
                    "normalization": s.normalization,
                    "alpha": s.alpha,
                    "beta": s.beta,
                }
            )
        keys["label"] = _hash(
            {
                "v": CACHE_VERSION,
                "kind": "label",
                "file": _fingerprint(subject.label) if subject.label else None,
                "outputs": [list(o) for o in s.label_outputs],
                "allowed": list(s.label_allowed),
            }
        )
        keys["mask"] = _hash({"v": CACHE_VERSION, "kind": "mask", "mask": mask_dep})
        keys["meta"] = _hash(
            {"v": CACHE_VERSION, "kind": "meta", "modalities": modalities, "entries": dict(keys)}
        )
        folder = self.cache_dir / subject.id
        files = {name: folder / f"{name}-{key}.npy" for name, key in keys.items() if name != "meta"}
        files["meta"] = folder / f"meta-{keys['meta']}.json"
        return {
            "modalities": modalities,
            "mask_choice": (source, mask_path),
            "files": files,
            "paths": list(files.values()),
        }


def _warn_fallbacks(subjects: Sequence[Subject], plans: list[dict]) -> None:
    """One warning per mask fallback, naming the subjects, instead of one line per subject."""
    fallbacks = (
        ("brain", "no parenchyma mask", "the brain mask"),
        ("nonzero", "no parenchyma or brain mask", "the non-zero voxels of each image"),
    )
    for source, missing, what in fallbacks:
        ids = [s.id for s, p in zip(subjects, plans) if p["mask_choice"][0] == source]
        if ids:
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            log.warning(
                "%s for %d subject(s) (%s): normalizing inside %s", missing, len(ids), shown, what
            )


def _build(
    subject: Subject, modalities: list[str], settings: PreprocessSettings, plan: dict
) -> tuple[CachedSubject | None, str | None]:
    """Preprocess and write one subject; returns (entry, None) or (None, one-line error). Runs in workers."""
    try:
        pre = preprocess_subject(
            subject, modalities, settings, require_label=True, mask_choice=plan["mask_choice"]
        )
    except DataError as err:
        return None, str(err)
    files = plan["files"]
    files["meta"].parent.mkdir(parents=True, exist_ok=True)
    arrays = {m: pre["images"][m] for m in modalities} | {
        "label": pre["label"],
        "mask": pre["mask"],
    }
    for name, array in arrays.items():
        if not files[name].exists():  # shared entries written by an earlier run are identical
            _atomic_save(files[name], slice_first(array))
    x, y, z = pre["zooms"]
    shape = pre["mask"].shape
    meta = {
        "subject": subject.id,
        "patient_id": subject.patient_id,
        "metadata": dict(subject.metadata),
        "modalities": modalities,
        "mask_source": pre["mask_source"],
        "spacing_zxy": [z, x, y],
        "shape_zxy": [shape[2], shape[0], shape[1]],
        "affine": pre["affine"].tolist(),
        "label_channels": int(pre["label"].shape[0]),  # type: ignore[union-attr]
        "files": {name: p.name for name, p in files.items() if name != "meta"},
        "sources": {m: str(Path(subject.images[m]).absolute()) for m in modalities}
        | {
            "label": str(Path(subject.label).absolute()),  # type: ignore[arg-type]
            "mask": str(plan["mask_choice"][1].absolute()) if plan["mask_choice"][1] else None,
        },
        "settings": settings.as_dict(),
        "cache_version": CACHE_VERSION,
    }
    _atomic_write(files["meta"], json.dumps(meta, indent=1).encode())
    return _read_meta(subject, plan, meta), None


def _read_meta(subject: Subject, plan: dict, meta: dict | None = None) -> CachedSubject:
    files = plan["files"]
    if meta is None:
        meta = json.loads(files["meta"].read_text())
    return CachedSubject(
        id=subject.id,
        patient_id=subject.patient_id,
        images={m: files[m] for m in plan["modalities"]},
        label=files["label"],
        mask=files["mask"],
        spacing=tuple(float(v) for v in meta["spacing_zxy"]),  # type: ignore[arg-type]
        affine=np.asarray(meta["affine"], dtype=np.float64),
        shape=tuple(int(v) for v in meta["shape_zxy"]),  # type: ignore[arg-type]
        metadata=dict(subject.metadata),
    )


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file in the same folder: readers never see a partial file."""
    atomic_write(path, lambda handle: np.save(handle, array))


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)
