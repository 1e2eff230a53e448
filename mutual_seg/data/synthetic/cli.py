"""`python -m mutual_seg.data.synthetic` (``mutual-seg-synthetic``): arguments in, one line out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.data.synthetic.contrasts import VARIANTS
from mutual_seg.data.synthetic.writer import generate_dataset
from mutual_seg.errors import ConfigError, MutualSegError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like our other errors
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mutual_seg.data.synthetic`` (also parsed by the docs-command test)."""
    parser = _Parser(
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


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mutual_seg.data.synthetic`: 0 on success, 2 and one `error:` line otherwise."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(ids)} synthetic subjects ({args.variant}) to {args.out}")
    return 0

