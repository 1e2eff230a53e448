"""Cache keys and file names of one subject, from file stats and settings alone (no pixels read).

Each key is a 16-hex sha1 of what that entry depends on (input paths, sizes, mtimes, settings,
``CACHE_VERSION``), so touching a file or changing a setting yields a new key, and runs with
``flair``, ``t2w`` and ``flair+t2w`` share the per-modality entries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mutual_seg.data.preprocess import PreprocessSettings, choose_mask
from mutual_seg.data.subject import ChannelPath, Subject

CACHE_VERSION = 1  # bump when the preprocessing code changes what it writes


@dataclass(frozen=True)
class CachePlan:
    """Where one subject's cache entries go: decided from file stats and settings alone (no pixels read).

    Attributes:
        modalities: the requested modalities, in the network's order.
        mask_source: which mask normalization uses (``preprocess.MASK_SOURCES``).
        mask_path: that mask's file, or None (non-zero voxels).
        images: modality -> its ``.npy`` entry; label, mask: the other ``.npy`` entries; meta: the ``.json``
            written last (its presence means the entry is complete).
    """

    modalities: list[str]
    mask_source: str
    mask_path: Path | None
    images: dict[str, Path]
    label: Path
    mask: Path
    meta: Path

    @property
    def mask_choice(self) -> tuple[str, Path | None]:
        """``(source, path)`` as ``preprocess.choose_mask`` returns it."""
        return self.mask_source, self.mask_path

    @property
    def entries(self) -> dict[str, Path]:
        """The ``.npy`` entries by name: each modality, then ``label`` and ``mask``."""
        return {**self.images, "label": self.label, "mask": self.mask}

    @property
    def paths(self) -> list[Path]:
        """Every file of the entry, ``meta`` last."""
        return [*self.entries.values(), self.meta]


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


def plan_subject(cache_dir: Path, settings: PreprocessSettings, subject: Subject, modalities: list[str]) -> CachePlan:
    """Keys and file paths of one subject's entries, from file stats and settings only (no I/O on pixels)."""
    # prepare() warns once for all subjects rather than once per subject
    source, mask_path = choose_mask(subject, warn=False)
    s = settings
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
    folder = cache_dir / subject.id
    return CachePlan(
        modalities=list(modalities),
        mask_source=source,
        mask_path=mask_path,
        images={m: folder / f"{m}-{keys[m]}.npy" for m in modalities},
        label=folder / f"label-{keys['label']}.npy",
        mask=folder / f"mask-{keys['mask']}.npy",
        meta=folder / f"meta-{keys['meta']}.json",
    )
