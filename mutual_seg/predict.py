"""`mutual-seg-predict`: segment new patients from checkpoints alone, NIfTI in, NIfTI out.

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

from mutual_seg.errors import ConfigError, MutualSegError
from mutual_seg.modalities import DESCRIPTIONS, MODALITIES

log = logging.getLogger(__name__)

# --precision: the choices and the default (the one place; benchmarks/predict_speed.py reads it too).
PRECISIONS = ("auto", "32", "bf16", "32-true", "bf16-mixed", "16-mixed")
DEFAULT_PRECISION = "32"  # auto becomes the default once its Dice against float32 is measured (docs/performance.md)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like our other errors
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line; the ``--<modality>`` flags come from :mod:`mutual_seg.modalities`."""
    parser = _Parser(prog="mutual-seg-predict", description="Segment new patients with trained mutual_seg checkpoints.")
    parser.add_argument("--checkpoint", action="append", required=True, type=Path, metavar="CKPT",
                        help="a .ckpt from a training run; repeat for an ensemble (probabilities averaged)")
    parser.add_argument("--input", type=Path, metavar="PATH",
                        help="a subject folder, a folder of subject folders (UCSF-PDGM, BraTS), or a manifest .csv")
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
    parser.add_argument("--largest-component", action="store_true", help="keep only the largest 3D component")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: a GPU when there is one")
    parser.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS,
                        help="32 (default): float32, exactly the masks of the run's test step; bf16: about 2x faster "
                             "on CPUs with AMX/AVX-512 BF16, probabilities within ~1e-3; auto: bf16 where the CPU or "
                             "GPU has bf16 units, float32 elsewhere")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the command line: images come either from ``--input`` or from per-modality flags."""
    args = build_parser().parse_args(argv)
    explicit = {m: getattr(args, m) for m in MODALITIES if getattr(args, m) is not None}
    if (args.input is None) == (not explicit):
        raise ConfigError("give either --input PATH or the images (--flair F --t2w T ...), not both and not neither")
    if (args.mask or args.subject_id) and not explicit:
        raise ConfigError("--mask and --id go with explicit images (--flair F ...); a folder brings its own masks")
    args.images = explicit
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: 0 when every subject was segmented, 2 with ``error:`` lines otherwise."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        args = parse_args(argv)
        from mutual_seg.prediction import (
            predict,  # torch and Lightning load only for a valid command line
        )

        report = predict(args)
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for subject_id, message in report["failures"]:
        print(f"error: {message}" if subject_id in message else f"error: subject {subject_id}: {message}", file=sys.stderr)
    done = len(report["subjects"])
    if report["failures"]:
        print(f"{len(report['failures'])} of {done + len(report['failures'])} subject(s) failed (listed above); "
              f"{done} written to {args.output}", file=sys.stderr)
        return 2
    print(f"segmented {done} subject(s) into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
