"""Command line of ``mutual-seg-export`` / ``python -m mutual_seg.export``.

    mutual-seg-export nnunet --data ucsf_pdgm data.layout.root=/data/UCSF-PDGM modality=flair_t2w \\
        --out $nnUNet_raw/Dataset501_Glioma
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mutual_seg.cli import ArgumentParser, run_main

NEXT_STEPS = """\
next (nnU-Net v2, with nnUNet_raw, nnUNet_preprocessed and nnUNet_results set):
  nnUNetv2_plan_and_preprocess -d {id} --verify_dataset_integrity
  cp {out}/splits_final.json $nnUNet_preprocessed/{name}/     # our folds
  nnUNetv2_train {id} 2d FOLD                                   # FOLD = 0..{last}; val = our test subjects
  mutual-seg-evaluate --pred $nnUNet_results/{name}/nnUNetTrainer__nnUNetPlans__2d/fold_FOLD/validation \
      --data <the same data= choice and overrides> fold=FOLD --name nnunet_2d --out RUNDIR"""


def build_parser() -> ArgumentParser:
    """The command line (also parsed by the docs-command test)."""
    parser = ArgumentParser(prog="mutual-seg-export", description="Write the data a run reads in another tool's format, "
                                                           "with the project's folds.")
    parser.add_argument("format", choices=["nnunet"], help="nnunet: an nnU-Net v2 raw data set + splits_final.json")
    parser.add_argument("--data", required=True, metavar="CHOICE",
                        help="a data= choice (ucsf_pdgm, brats2021, nnunet, msd, bids, manifest, synthetic...)")
    parser.add_argument("--out", required=True, type=Path, metavar="DatasetNNN_Name", help="the folder to write")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of symlinking them")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="Hydra overrides as for mutual-seg-run (data.layout.root=..., modality=..., n_folds=...)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """0 when the data set is written; 2 and one ``error:`` line for input the user can fix."""
    return run_main(lambda: _export(argv))


def _export(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides may sit between the options
    from mutual_seg.data.compose import build_data, compose_run
    from mutual_seg.export.nnunet import export_nnunet  # after parsing: torch loads slowly

    data = build_data(compose_run(args.data, args.overrides))
    out = args.out.expanduser().absolute()
    export_nnunet(data, out, args.copy, args.overwrite, f"data={args.data} {' '.join(args.overrides)}".strip())
    print(f"wrote {out}")
    number = out.name[len("Dataset"):len("Dataset") + 3]
    print(NEXT_STEPS.format(id=int(number), out=out, name=out.name, last=int(data.split_settings["n_folds"]) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
