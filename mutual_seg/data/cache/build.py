"""Preprocess one subject and write its cache entries (in a worker process or in this one).

Every ``.npy`` entry is written atomically, the ``meta-<key>.json`` last: its presence means the entry is whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mutual_seg.atomic import atomic_write, atomic_write_bytes
from mutual_seg.data.cache.entry import CachedSubject
from mutual_seg.data.cache.plan import CACHE_VERSION, CachePlan
from mutual_seg.data.preprocess import PreprocessSettings, preprocess_subject, slice_first
from mutual_seg.data.subject import Subject
from mutual_seg.errors import DataError


def build_subject(
    subject: Subject, modalities: list[str], settings: PreprocessSettings, plan: CachePlan
) -> tuple[CachedSubject | None, str | None]:
    """Preprocess and write one subject; returns (entry, None) or (None, one-line error). Runs in workers."""
    try:
        pre = preprocess_subject(
            subject, modalities, settings, require_label=True, mask_choice=plan.mask_choice
        )
    except DataError as err:
        return None, str(err)
    files = plan.entries
    plan.meta.parent.mkdir(parents=True, exist_ok=True)
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
        "files": {name: p.name for name, p in files.items()},
        "sources": {m: str(Path(subject.images[m]).absolute()) for m in modalities}
        | {
            "label": str(Path(subject.label).absolute()),  # type: ignore[arg-type]
            "mask": str(plan.mask_path.absolute()) if plan.mask_path else None,
        },
        "settings": settings.as_dict(),
        "cache_version": CACHE_VERSION,
    }
    _atomic_write(plan.meta, json.dumps(meta, indent=1).encode())
    return read_meta(subject, plan, meta), None


def read_meta(subject: Subject, plan: CachePlan, meta: dict | None = None) -> CachedSubject:
    if meta is None:
        meta = json.loads(plan.meta.read_text())
    return CachedSubject(
        id=subject.id,
        patient_id=subject.patient_id,
        images=dict(plan.images),
        label=plan.label,
        mask=plan.mask,
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
