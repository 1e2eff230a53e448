"""The command line of ``mutual-seg-predict``, turned into typed settings.

    python -m mutual_seg.predict --checkpoint run/checkpoints/best.ckpt --input PATIENT_DIR --output OUT
    python -m mutual_seg.predict --checkpoint f0.ckpt --checkpoint f1.ckpt --flair F.nii.gz --t2w T.nii.gz --output OUT

Per subject it writes ``<id>_seg.nii.gz`` (uint8, the input's affine, shape and header), optionally
``<id>_prob.nii.gz`` (float32) and ``<id>_attention.nii.gz`` (4D, one volume per modality), and one
``predict.json`` for the batch. Bad input is one ``error:`` line and exit code 2; in a batch a bad
subject is reported and the others go on, the failures listed at the end (exit code 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.cli import ArgumentParser, run_main
from mutual_seg.errors import ConfigError
from mutual_seg.modalities import DESCRIPTIONS, MODALITIES
from mutual_seg.predict.settings import DEFAULT_PRECISION, PRECISIONS, PredictSettings


def parse_args(argv: Sequence[str] | None) -> PredictSettings:
    """The command line as :class:`PredictSettings`; the ``--<modality>`` flags come from :mod:`mutual_seg.modalities`.

    Raises:
        ConfigError: a usage error, or ``--input`` and explicit images both given (or neither).
    """
    parser = ArgumentParser(prog="mutual-seg-predict", description="Segment new patients with trained mutual_seg checkpoints.")
    parser.add_argument("--checkpoint", action="append", required=True, type=Path, metavar="CKPT",
                        help="a .ckpt from a training run; repeat for an ensemble (probabilities averaged)")
    parser.add_argument("--input", type=Path, metavar="PATH",
                        help="a subject folder, a folder of subject folders (UCSF-PDGM, BraTS), a manifest .csv, an "
                             "nnU-Net imagesTs/ folder, a Decathlon 4D file or folder, or a BIDS subject (sub-XX/)")
    for name in MODALITIES:
        parser.add_argument(f"--{name}", type=Path, metavar="NIFTI", help=f"{DESCRIPTIONS[name]} image (instead of --input)")
    parser.add_argument("--mask", type=Path, metavar="NIFTI",
                        help="with explicit images: the normalization (parenchyma/brain) mask; default: estimated")
    parser.add_argument("--id", dest="subject_id", metavar="ID", help="with explicit images: the subject id for file names")
    parser.add_argument("--output", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--save-probabilities", action="store_true", help="also write <id>_prob.nii.gz (float32)")
    parser.add_argument("--save-attention", action="store_true",
                        help="also write <id>_attention.nii.gz: per-voxel weight of each modality (4D, sums to 1)")
    parser.add_argument("--tta", action="store_true", help="average in-plane flips (4x the compute)")
    parser.add_argument("--largest-component", action=argparse.BooleanOptionalAction, default=None,
                        help="keep only the largest 3D component (--no-largest-component: keep all); default: "
                             "what the checkpoint says (module.largest_component, decided on validation under auto)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: a GPU when there is one")
    parser.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS,
                        help="32 (default): float32, exactly the masks of the run's test step; bf16: about 2x faster "
                             "on CPUs with AMX/AVX-512 BF16, probabilities within ~1e-3; auto: bf16 where the CPU or "
                             "GPU has bf16 units, float32 elsewhere")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    explicit = {m: getattr(args, m) for m in MODALITIES if getattr(args, m) is not None}
    if (args.input is None) == (not explicit):
        raise ConfigError("give either --input PATH or the images (--flair F --t2w T ...), not both and not neither")
    if (args.mask or args.subject_id) and not explicit:
        raise ConfigError("--mask and --id go with explicit images (--flair F ...); a folder brings its own masks")
    return PredictSettings(
        checkpoints=tuple(args.checkpoint), output=args.output, input=args.input, images=explicit, mask=args.mask,
        subject_id=args.subject_id, save_probabilities=args.save_probabilities, save_attention=args.save_attention,
        tta=args.tta, largest_component=args.largest_component, device=args.device, precision=args.precision,
        overwrite=args.overwrite, command=("mutual-seg-predict", *argv),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: 0 when every subject was segmented, 2 with ``error:`` lines otherwise."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return run_main(lambda: _predict(parse_args(argv)))


def _predict(settings: PredictSettings) -> int:
    from mutual_seg.predict.batch import (
        predict,  # torch and Lightning load only for a valid command line
    )

    report = predict(settings)
    for subject_id, message in report["failures"]:
        print(f"error: {message}" if subject_id in message else f"error: subject {subject_id}: {message}", file=sys.stderr)
    done = len(report["subjects"])
    if report["failures"]:
        print(f"{len(report['failures'])} of {done + len(report['failures'])} subject(s) failed (listed above); "
              f"{done} written to {settings.output}", file=sys.stderr)
        return 2
    print(f"segmented {done} subject(s) into {settings.output}")
    return 0
