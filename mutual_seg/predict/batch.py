"""The work behind ``mutual-seg-predict``: checkpoints + subjects -> NIfTI files and ``predict.json``.

Each subject is preprocessed by the very function training used (:func:`preprocess_subject`, with the
checkpoint's settings), predicted by :func:`mutual_seg.inference.predict_volume` (as the test step
does) and written beside the others with the reference image's affine and header, atomically.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mutual_seg import __version__
from mutual_seg.checkpoint import Ensemble, load_ensemble
from mutual_seg.config import CONFIG_DIR
from mutual_seg.data.nifti import write_like
from mutual_seg.data.preprocess import choose_mask, preprocess_subject, slice_first
from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError, MutualSegError, subject_error
from mutual_seg.fastpath import autocast, resolve_precision
from mutual_seg.inference import InferenceSettings, predict_volume, segment
from mutual_seg.predict.inputs import expected_names, find_inputs, subject_from_files
from mutual_seg.predict.settings import PredictSettings
from mutual_seg.predict.writer import (
    OUTPUTS,
    check_outputs,
    to_nifti_order,
    write_report,
)
from mutual_seg.runtime.malloc import tune_malloc

MASK_ESTIMATE = "union of the non-zero voxels of the supplied images, holes filled, largest 3D component"


def predict(request: PredictSettings) -> dict[str, Any]:
    """Segment every subject ``request`` (the command line, typed) names; returns the report written to ``predict.json``.

    Raises:
        MutualSegError: anything that stops the whole batch (bad checkpoint, no subject, existing outputs).
    """
    tune_malloc(OmegaConf.load(CONFIG_DIR / "config.yaml").get("malloc"))  # the run's settings (conf/config.yaml)
    device = _device(request.device)
    ensemble = load_ensemble(list(request.checkpoints), device)
    precision = resolve_precision(request.precision, device)
    if precision != "32-true":
        ensemble.use_fast_path(precision)
    if request.save_attention and not ensemble.has_attention:
        fusions = ", ".join(f"{c['path']}: {c['fusion']}" for c in ensemble.checkpoints)
        raise ConfigError(f"--save-attention needs mutual-attention checkpoints ({fusions}); drop the flag")
    if request.images:
        extra = [m for m in request.images if m not in ensemble.modalities]
        if extra:
            raise ConfigError(f"the checkpoint does not use --{', --'.join(extra)} (its modalities: "
                              f"{', '.join(ensemble.modalities)}); drop those images")
        subjects, failures = [subject_from_files(request.images, request.mask, request.subject_id)], []
    else:
        subjects, failures = find_inputs(request.input, ensemble.modalities)
    wanted = [k for k in OUTPUTS if k == "segmentation" or getattr(request, f"save_{k}")]
    check_outputs(Path(request.output), [s.id for s in subjects], wanted, request.overwrite)
    settings = ensemble.settings(tta=request.tta, largest_component=request.largest_component)
    rows: list[dict[str, Any]] = []
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("predicting", total=len(subjects))
        for subject in subjects:
            bar.update(task, description=f"predicting {subject.id}")
            try:
                rows.append(predict_subject(subject, ensemble, settings, Path(request.output), wanted))
                if rows[-1]["notes"]:
                    console.print(f"{subject.id}: {'; '.join(rows[-1]['notes'])}", soft_wrap=True, highlight=False)
            except MutualSegError as err:
                failures.append((subject.id, str(err)))
            bar.advance(task)
    report = {
        "command": list(request.command),
        "checkpoints": ensemble.checkpoints,
        "modalities": list(ensemble.modalities),
        "modality_dropout": ensemble.modality_dropout,
        "preprocessing": ensemble.preprocessing.as_dict(),
        "inference": asdict(settings),
        "mask_estimation": MASK_ESTIMATE,
        "device": str(device),
        "precision": ensemble.precision,
        "precision_choice": request.precision,
        "versions": _versions(),
        "subjects": rows,
        "failures": [{"id": sid, "error": message} for sid, message in failures],
    }
    write_report(Path(request.output), report)
    report["failures"] = failures
    return report


def predict_subject(
    subject: Subject, ensemble: Ensemble, settings: InferenceSettings, out: Path, wanted: list[str]
) -> dict[str, Any]:
    """Preprocess, predict and write one subject; returns its ``predict.json`` row.

    Raises:
        MutualSegError: a missing modality the checkpoint needs, unreadable or mismatched files.
    """
    start = time.perf_counter()
    used = [m for m in ensemble.modalities if m in subject.images]
    missing = [m for m in ensemble.modalities if m not in subject.images]
    if missing and not (ensemble.modality_dropout and used):
        why = "" if ensemble.modality_dropout else "; it was not trained with modality_dropout, so every one is needed"
        where = next(iter(subject.images.values())).parent  # the subject folder (or the explicit files' folder)
        names = "; ".join(f"{m}: {expected_names(m)}" for m in missing)
        raise subject_error(subject.id, where, f"no {', '.join(missing)} image ({names}): the checkpoint needs "
                            f"{', '.join(ensemble.modalities)}{why}", "add the missing image(s)")
    has_mask = subject.parenchyma_mask is not None or subject.brain_mask is not None
    mask_choice = choose_mask(subject, warn=False) if has_mask else ("estimated", None)
    pre = preprocess_subject(subject, used, ensemble.preprocessing, require_label=False, mask_choice=mask_choice)
    stack = np.zeros((len(ensemble.modalities), *pre["mask"].shape), dtype=np.float32)  # absent tracks: zeros
    for i, m in enumerate(ensemble.modalities):
        if m in pre["images"]:
            stack[i] = pre["images"][m]
    present = torch.tensor([m in used for m in ensemble.modalities])
    device_type = next(ensemble.nets[0].parameters()).device.type
    with autocast(ensemble.precision, device_type):
        result = predict_volume(ensemble.nets, torch.from_numpy(slice_first(stack)), settings,
                                present=present if missing else None,
                                mask=torch.from_numpy(slice_first(pre["mask"]) > 0), attention="attention" in wanted,
                                prepare=ensemble.prepare)
    x, y, z = pre["zooms"]
    seg = segment(result.probabilities, (z, x, y), settings)  # [Z, O, X, Y]
    reference = nib.load(os.fspath(subject.images[used[0]]))  # a 4D file's header: nibabel sets the 3D dims
    files = {k: out / OUTPUTS[k].format(id=subject.id) for k in wanted}
    arrays = {"segmentation": (seg, np.uint8), "probabilities": (result.probabilities.numpy(), np.float32)}
    if result.attention is not None:
        keep = [ensemble.modalities.index(m) for m in used]
        arrays["attention"] = (result.attention[:, keep].numpy(), np.float32)
    for kind, path in files.items():
        array, dtype = arrays[kind]
        write_like(path, to_nifti_order(array, kind == "attention"), reference, dtype, f"mutual_seg {kind}")
    notes = []
    if mask_choice[0] == "estimated":
        notes.append("no mask file: brain mask estimated from the images")
    if missing:
        notes.append(f"predicted from {', '.join(used)} only (no {', '.join(missing)}; trained with modality dropout)")
    return {
        "id": subject.id,
        "inputs": {m: str(subject.images[m]) for m in used},
        "modalities_used": used,
        "modalities_missing": missing,
        "mask": {"source": pre["mask_source"], "path": str(mask_choice[1]) if mask_choice[1] else None},
        "attention_order": used if "attention" in wanted else None,
        "outputs": {k: str(p) for k, p in files.items()},
        "tumour_voxels": int(seg.sum()),
        "seconds": round(time.perf_counter() - start, 3),
        "notes": notes,
    }


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but torch sees no GPU; use --device cpu or auto")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def _versions() -> dict[str, str]:
    return {"mutual_seg": __version__, "torch": torch.__version__, "nibabel": nib.__version__,
            "numpy": np.__version__, "python": platform.python_version()}
