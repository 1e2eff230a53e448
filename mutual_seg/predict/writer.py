"""What ``mutual-seg-predict`` writes: NIfTI images in the input's space, and ``predict.json`` for the batch.

Outputs are refused before any work when they exist (unless ``--overwrite``), and each is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mutual_seg.atomic import atomic_write_text
from mutual_seg.errors import OutputError

# Output kind -> file name per subject.
OUTPUTS = {"segmentation": "{id}_seg.nii.gz", "probabilities": "{id}_prob.nii.gz", "attention": "{id}_attention.nii.gz"}
REPORT = "predict.json"


def to_nifti_order(array: np.ndarray, keep_4d: bool) -> np.ndarray:
    """[Z, C, X, Y] -> (X, Y, Z, C), one volume per output or modality; (X, Y, Z) for one output map."""
    out = np.ascontiguousarray(np.transpose(array, (2, 3, 0, 1)))
    return out[..., 0] if out.shape[3] == 1 and not keep_4d else out


def check_outputs(out: Path, subject_ids: Sequence[str], wanted: Sequence[str], overwrite: bool) -> None:
    """Refuse before any work when an output exists (unless ``overwrite``) or the folder is a file."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} is a file, not a folder; choose another --output")
    planned = [out / OUTPUTS[k].format(id=sid) for sid in subject_ids for k in wanted] + [out / REPORT]
    existing = [p for p in planned if p.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputError(f"output {existing[0]} already exists{more}; pass --overwrite to replace, or choose another --output")


def write_report(out: Path, report: dict[str, Any]) -> Path:
    """Write ``predict.json`` (the batch's settings, checkpoints, versions and one row per subject) atomically."""
    return atomic_write_text(out / REPORT, json.dumps(report, indent=2) + "\n")
