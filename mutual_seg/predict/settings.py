"""What one ``mutual-seg-predict`` command asks for, typed: the command line (``cli``) builds it, the batch
(``batch``) takes it. Its own module so that neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# --precision: the choices and the default (the one place; benchmarks/predict_speed.py reads it too).
PRECISIONS = ("auto", "32", "bf16", "32-true", "bf16-mixed", "16-mixed")
DEFAULT_PRECISION = "32"  # auto becomes the default once its Dice against float32 is measured (README)


@dataclass(frozen=True)
class PredictSettings:
    """What one ``mutual-seg-predict`` command asks for (``parse_args``); ``predict.batch.predict`` takes it.

    Attributes:
        checkpoints: one ``.ckpt`` per ensemble member (probabilities averaged).
        output: the output folder.
        input: a subject folder, a folder of subject folders, or a manifest ``.csv``; None with ``images``.
        images: explicit images by modality name (``--flair F ...``); empty with ``input``.
        mask, subject_id: with explicit images, the normalization mask and the id used in file names.
        save_probabilities, save_attention: also write ``<id>_prob.nii.gz`` / ``<id>_attention.nii.gz``.
        tta: in-plane flip averaging. largest_component: keep only the largest 3D component (True), keep all
            (False), or what the checkpoints say (None).
        device: ``auto`` | ``cpu`` | ``cuda``. precision: one of :data:`PRECISIONS`.
        overwrite: replace existing outputs. command: the arguments as given (recorded in ``predict.json``).
    """

    checkpoints: tuple[Path, ...]
    output: Path
    input: Path | None = None
    images: dict[str, Path] = field(default_factory=dict)
    mask: Path | None = None
    subject_id: str | None = None
    save_probabilities: bool = False
    save_attention: bool = False
    tta: bool = False
    largest_component: bool | None = None
    device: str = "auto"
    precision: str = DEFAULT_PRECISION
    overwrite: bool = False
    command: tuple[str, ...] = ()
