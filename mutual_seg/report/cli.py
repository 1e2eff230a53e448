"""Command line of `mutual-seg-report` / `python -m mutual_seg.report`: parse, hand over, map user errors to exit 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.cli import ArgumentParser, run_main


def build_parser() -> ArgumentParser:
    """The command line of ``mutual-seg-report`` (also parsed by the docs-command test)."""
    parser = ArgumentParser(
        prog="mutual-seg-report",
        description="Turn run folders into the paper's Table 1 and 2 (Markdown + CSV), paired statistics, "
                    "Fig. 5 box plots and Fig. 6/7-style overlays; or, with --ablation, an ablation study's table.")
    parser.add_argument("dir", type=Path, help="a run folder, a multirun folder or a tree of sweeps")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default DIR/report)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="ID",
                        help="subjects left out of Table 2's Average* row (the paper: UCSF-PDGM-0255)")
    parser.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"),
                        help="two modality sets for statistics, Fig. 5 and overlays (e.g. flair flair_t2w); "
                             "default: the two sets when there are exactly two")
    parser.add_argument("--subjects", nargs="+", default=[], metavar="ID", help="subjects for the overlays")
    parser.add_argument("--slices", nargs="+", type=int, default=[], metavar="Z",
                        help="axial slice per --subjects entry (default: where predictions disagree most)")
    parser.add_argument("--overlays", type=int, default=None, metavar="N",
                        help="draw the N subjects where the arms differ most (default 3; 0: no overlays)")
    parser.add_argument("--ablation", action="store_true",
                        help="DIR is an ablation study (make ablation): write OUT/table.md (default DIR/table.md), "
                             "every cell with paired tests against FLAIR alone and early fusion")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier report in the output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """0 when the report is written; 2 and one `error:` line for input the user can fix."""
    return run_main(lambda: _report(argv))


def _report(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.ablation:  # the table alone: none of the figures' heavy imports
        from mutual_seg.report.ablation import write_ablation_table

        print(write_ablation_table(args.dir, args.out, args.overwrite))
        return 0
    from mutual_seg.report.build import (  # after --help: matplotlib/torch load slowly
        N_OVERLAYS,
        make_report,
    )

    make_report(args.dir, args.out, args.exclude, args.compare, args.subjects, args.slices,
                N_OVERLAYS if args.overlays is None else args.overlays, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
