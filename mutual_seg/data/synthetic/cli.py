"""`python -m mutual_seg.data.synthetic` (``mutual-seg-synthetic``): arguments in, one line out."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.cli import ArgumentParser, run_main
from mutual_seg.data.synthetic.contrasts import VARIANTS
from mutual_seg.data.synthetic.writer import generate_dataset


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mutual_seg.data.synthetic`: 0 on success, 2 and one `error:` line otherwise."""
    return run_main(lambda: _generate(argv))


def build_parser() -> ArgumentParser:
    """The command line of ``python -m mutual_seg.data.synthetic`` (also parsed by the docs-command test)."""
    parser = ArgumentParser(
        prog="python -m mutual_seg.data.synthetic",
        description="Write a synthetic astrocytoma data set in the UCSF-PDGM layout.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--subjects", type=int, required=True, help="number of subjects")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(240, 240, 155),
        metavar=("X", "Y", "Z"),
        help="voxels over the fixed 240x240x155 mm field of view",
    )
    parser.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default min(2, CPUs))"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    return parser


def _generate(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    ids = generate_dataset(
        args.out,
        args.subjects,
        args.seed,
        args.shape,
        args.variant,
        args.workers,
        args.overwrite,
        progress=sys.stderr.isatty(),
    )
    print(f"wrote {len(ids)} synthetic subjects ({args.variant}) to {args.out}")
    return 0

