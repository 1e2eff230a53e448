"""``provenance.json`` beside each run's ``config.yaml``: what it takes to trace a result back.

The git commit (and whether the tree had uncommitted changes), the versions of the packages that shape the
numbers, the hardware, and a fingerprint of the data: the subject list of each split part and the cache key,
which changes when any input file (size, mtime) or preprocessing setting changes (``data/cache.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from mutual_seg.atomic import atomic_write_text
from mutual_seg.results import RunFolder

PACKAGES = ("mutual_seg", "torch", "pytorch-lightning", "hydra-core", "omegaconf", "numpy", "scipy", "nibabel",
            "torchmetrics", "medpy", "wandb")
_SOURCE = Path(__file__).resolve().parents[2]


def git_state(folder: Path = _SOURCE) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout the code runs from; nulls for an installed wheel or no git."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when missing)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def hardware() -> dict[str, Any]:
    """CPU, GPU and the numerical libraries that decide what is bit-reproducible."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
        "gpus": gpus, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if gpus else None,
    }


def data_fingerprint(parts: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Subject ids of each split part and one key over their cache entries (the cached files' keyed names).

    Args:
        parts: split part ("train", "val", "test") -> cached subjects (``data.cache.CachedSubject``).
    """
    entries = sorted(
        (s.id, sorted(p.name for p in [*s.images.values(), s.label, s.mask]))
        for subjects in parts.values() for s in subjects
    )
    key = hashlib.sha1(json.dumps(entries).encode()).hexdigest()[:16]
    return {"subjects": {part: [s.id for s in subjects] for part, subjects in parts.items()}, "cache_key": key}


def write_provenance(out_dir: str | Path, data: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``provenance.json`` into ``out_dir`` atomically; return its path."""
    record = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
              "packages": package_versions(), "hardware": hardware(), "data": dict(data), **(extra or {})}
    return atomic_write_text(RunFolder(Path(out_dir)).provenance, json.dumps(record, indent=2) + "\n")
