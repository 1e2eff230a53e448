"""`mutual-seg-evaluate`: anyone's masks (nnU-Net, MONAI, a clinician) scored with the test step's own metrics.

    mutual-seg-evaluate --pred nnunet_pred/ --data nnunet data.layout.root=Dataset501_Glioma fold=0 \\
        --out runs/nnunet/fold0 --name nnunet

For each subject of the chosen part of the fold (``--subjects test``: the fold's test subjects, as a run tests
them; ``all``: every subject) the mask ``<id>.nii.gz`` (nnU-Net) or ``<id>_seg.nii.gz`` (mutual-seg-predict) in
``--pred`` is compared with the reference exactly as ``SegModule.test_step`` compares a prediction: the cached
binary label, the normalization mask (for Ac_brain) and the spacing in (z, x, y), through
:func:`mutual_seg.metrics.segmentation_metrics`. ``metrics.csv`` and ``summary.json`` are written by
:func:`mutual_seg.results.write_results`, so ``mutual-seg-report`` reads the folder as a run whose modality set is
``--name``, and pairs it with our runs of the same fold (``--compare flair_t2w nnunet``). A mask holding label
values (nnU-Net's) is turned into the run's outputs with ``data.preprocessing.label_outputs``; a 0/1 mask is the
one output as it is; a 4D mask holds one volume per output. A mask on another grid than the reference image is
refused in one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mutual_seg.cli import ArgumentParser, run_main
from mutual_seg.errors import MutualSegError

PRED_NAMES = ("{id}.nii.gz", "{id}_seg.nii.gz", "{id}.nii")  # nnU-Net / MONAI, mutual-seg-predict, uncompressed


def build_parser() -> ArgumentParser:
    """The command line (also parsed by the docs-command test)."""
    parser = ArgumentParser(prog="mutual-seg-evaluate", description="Score predicted masks with the test step's metrics "
                                                             "and write a run folder the report reads.")
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR",
                        help="folder of masks: <id>.nii.gz (nnU-Net) or <id>_seg.nii.gz (mutual-seg-predict)")
    parser.add_argument("--data", required=True, metavar="CHOICE", help="the data= choice holding the references")
    parser.add_argument("--out", required=True, type=Path, metavar="RUNDIR", help="run folder to write")
    parser.add_argument("--name", default=None,
                        help="the arm's name in reports (its modality set; default: the --pred folder's name)")
    parser.add_argument("--subjects", choices=("test", "all"), default="test",
                        help="test (default): the fold's test subjects, as a run tests them; all: every subject")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier evaluation")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="Hydra overrides as for mutual-seg-run (data.layout.root=..., fold=..., n_folds=...)")
    return parser


def prediction_file(folder: Path, subject_id: str) -> Path | None:
    """The subject's mask in ``folder`` under any of ``PRED_NAMES``, or None."""
    return next((folder / n.format(id=subject_id) for n in PRED_NAMES if (folder / n.format(id=subject_id)).is_file()),
                None)


def load_prediction(path: Path, subject: Any, reference: Path, settings: Any) -> Any:
    """The mask at ``path`` as the test step's ``pred``: bool [Z, O, X, Y] on the cached subject's grid.

    Raises:
        DataError: unreadable, on another grid than the reference image, or label values the data set lacks.
    """
    import nibabel as nib
    import numpy as np

    from mutual_seg.data.nifti import load_volume
    from mutual_seg.data.preprocess import binarize_label, check_geometry, slice_first
    from mutual_seg.errors import subject_error

    n_out = len(settings.label_outputs)
    z, x, y = subject.shape
    header = nib.load(os.fspath(path))
    four_d = len(header.shape) == 4 and header.shape[3] == n_out and n_out > 1
    shape = tuple(header.shape[:3]) if four_d else tuple(header.shape)
    check_geometry(subject.id, path, shape, np.asarray(header.affine, dtype=np.float64), reference, (x, y, z),
                   subject.affine)
    if four_d:
        stack = np.asarray(header.dataobj, dtype=np.float32)
        masks = np.moveaxis(stack != 0, -1, 0)  # [O, X, Y, Z]
    else:
        values, _, _ = load_volume(path, subject.id)
        if n_out == 1 and set(np.unique(values).tolist()) <= {0.0, 1.0}:
            masks = (values != 0)[None]
        else:
            try:
                masks = binarize_label(values, settings.label_outputs, settings.label_allowed,
                                       subject_id=subject.id, path=path).astype(bool)
            except MutualSegError as err:
                raise subject_error(subject.id, path, f"predicted mask: {str(err).split(': ', 1)[-1]}",
                                    "predict the data set's label values, or one 0/1 mask per output") from None
    return slice_first(masks)  # [Z, O, X, Y]


def evaluate(pred_dir: Path, data_choice: str, overrides: Sequence[str], out: Path, name: str | None,
             part: str, overwrite: bool) -> dict[str, Any]:
    """Score every subject of ``part`` and write ``metrics.csv`` and ``summary.json`` into ``out``.

    Raises:
        DataError: a subject without a mask, a mask on another grid; ConfigError: bad overrides;
        OutputError: ``out`` holds results and ``overwrite`` is false.
    """
    from rich.progress import track

    from mutual_seg.data.compose import build_data, compose_run
    from mutual_seg.errors import DataError, OutputError
    from mutual_seg.metrics import segmentation_metrics
    from mutual_seg.results import print_results, write_results

    pred_dir = pred_dir.expanduser().absolute()
    if not pred_dir.is_dir():
        raise DataError(f"--pred {pred_dir} is not a folder; pass the folder holding the predicted masks")
    if (out / "summary.json").exists() and not overwrite:
        raise OutputError(f"{out / 'summary.json'} already exists; pass --overwrite to replace it, or another --out")
    cfg = compose_run(data_choice, overrides)
    data = build_data(cfg)
    data.setup()
    cached = data.subjects["test"] if part == "test" else [s for p in ("train", "val", "test") for s in data.subjects[p]]
    sources = {s.id: s for s in data.find_subjects()}
    files = {s.id: prediction_file(pred_dir, s.id) for s in cached}
    absent = sorted(sid for sid, f in files.items() if f is None)
    if absent:
        raise DataError(f"--pred {pred_dir} has no mask for {len(absent)} of {len(cached)} {part} subject(s) "
                        f"({', '.join(absent[:8])}{' ...' if len(absent) > 8 else ''}); expected <id>.nii.gz or <id>_seg.nii.gz for each")
    rows: list[dict[str, Any]] = []
    for subject in track(cached, description=f"evaluating {len(cached)} subjects", transient=True):
        reference = Path(os.fspath(sources[subject.id].images[data.modalities[0]]))
        pred = load_prediction(files[subject.id], subject, reference, data.preprocessing)
        target = subject.load_label(mmap=False).astype(bool)
        brain = subject.load_mask(mmap=False) > 0
        spacing = tuple(float(s) for s in subject.spacing)
        for o in range(pred.shape[1]):  # as SegModule.test_step
            row: dict[str, Any] = {"subject": subject.id}
            if pred.shape[1] > 1:
                row["output"] = o
            row.update(segmentation_metrics(pred[:, o], target[:, o], spacing, brain=brain))
            rows.append(row)
    rows.sort(key=lambda r: (r["subject"], r.get("output", 0)))
    identity = {"task_name": cfg.get("task_name"), "modality_set": name or pred_dir.name, "modalities": [],
                "fold": int(cfg.fold), "seed": int(cfg.seed), "model": name or pred_dir.name, "fusion": None,
                "overrides": [f"data={data_choice}", *overrides], "predictions": str(pred_dir),
                "evaluated_subjects": part}
    out.mkdir(parents=True, exist_ok=True)
    summary = write_results(rows, out, identity)
    print_results(rows, summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """0 when the run folder is written; 2 and one ``error:`` line for input the user can fix."""
    return run_main(lambda: _evaluate(argv))


def _evaluate(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides may sit between the options
    evaluate(args.pred, args.data, args.overrides, args.out.expanduser().absolute(), args.name, args.subjects,
             args.overwrite)
    print(f"wrote {args.out / 'metrics.csv'} and summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
