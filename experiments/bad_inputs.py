"""Run every bad input the project knows and write the docs' table of what each gets (message, exit code).

    python experiments/bad_inputs.py              # prints the table
    python experiments/bad_inputs.py --write      # rewrites it in docs/troubleshooting.md between the bad-inputs markers

Each case is a real command on a real (tiny, synthetic, then broken) data set in a temporary folder, whose
path the table shows as ``<tmp>``. ``tests/report/test_bad_inputs.py`` checks that the page lists every case and
that the fast cases still print what the table says.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "troubleshooting.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"
TINY = ["trainer=cpu", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "~callbacks.progress_bar",
        "data.num_workers=0", "data.cache_workers=0", "n_folds=2", "model.net.features=[4,8,16]"]


def _nifti(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(change(np.asarray(img.dataobj).astype(np.float32)), img.affine), path)


def _first(root: Path, suffix: str) -> Path:
    return min(root.glob(f"*_nifti/*_{suffix}.nii.gz"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@dataclass
class Case:
    """One bad input: an id, the command's arguments (``{data}``/``{tmp}`` filled in), how to break the set."""

    id: str
    what: str
    command: list[str]
    breaks: Callable[[Path], None] | None = None
    fast: bool = False  # refused before any data is read: cheap enough for the test
    data: bool = True
    extra: list[str] = field(default_factory=list)


RUN = [sys.executable, "-m", "mutual_seg.run"]
CHECK = [sys.executable, "-m", "mutual_seg.data.check"]
PREDICT = [sys.executable, "-m", "mutual_seg.predict"]
CASES = [
    # -- command line (refused before Hydra runs)
    Case("run-fold-abc", "override of the wrong type", [*RUN, "fold=abc"], fast=True, data=False),
    Case("run-seed-abc", "override of the wrong type", [*RUN, "seed=abc"], fast=True, data=False),
    Case("run-batch-0", "impossible value", [*RUN, "data.batch_size=0"], fast=True, data=False),
    Case("run-misspelled-key", "misspelled key", [*RUN, "trainer.max_epoch=1"], fast=True, data=False),
    Case("run-unknown-modality", "unknown group choice", [*RUN, "modality=flair_t2"], fast=True, data=False),
    Case("run-data-base", "not a data set", [*RUN, "data=base"], fast=True, data=False),
    Case("run-existing-folder", "a run folder with results", [*RUN, "hydra.run.dir={tmp}/earlier"], fast=True,
         data=False),
    # -- run switches and missing data
    Case("run-test-untrained", "train=false without a checkpoint", [*RUN, *TINY, "train=false"]),
    Case("run-resume-and-overwrite", "contradicting switches", [*RUN, *TINY, "resume=true", "overwrite=true"]),
    Case("run-missing-checkpoint", "checkpoint that does not exist", [*RUN, *TINY, "train=false",
                                                                        "ckpt_path={tmp}/none.ckpt"]),
    Case("run-no-data", "data folder missing", [*RUN, *TINY, "data.layout.root={tmp}/nowhere"], data=False),
    # -- broken data sets, as `run` sees them
    Case("data-missing-file", "an image file missing", [*RUN, *TINY], lambda r: _first(r, "T2").unlink()),
    Case("data-truncated", "a truncated .nii.gz", [*RUN, *TINY], lambda r: _truncate(_first(r, "FLAIR"))),
    Case("data-nan", "NaN voxels", [*RUN, *TINY],
         lambda r: _nifti(_first(r, "FLAIR"), lambda a: np.where(a == a.max(), np.nan, a))),
    Case("data-4d", "a 4D image", [*RUN, *TINY], lambda r: _nifti(_first(r, "T2"), lambda a: np.stack([a, a], -1))),
    Case("data-shape", "images of different shapes", [*RUN, *TINY], lambda r: _nifti(_first(r, "T2"), lambda a: a[:-2])),
    Case("data-label-values", "unexpected label values", [*RUN, *TINY],
         lambda r: _nifti(_first(r, "tumor_segmentation"), lambda a: np.where(a > 0, 3, a))),
    Case("data-empty-mask", "an empty brain mask", [*RUN, *TINY],
         lambda r: _nifti(_first(r, "brain_parenchyma_segmentation"), lambda a: a * 0)),
    # -- the integrity check
    Case("check-clean", "a clean set", [*CHECK, "{data}"]),
    Case("check-broken", "a set with problems", [*CHECK, "{data}"], lambda r: _first(r, "T2").unlink()),
    Case("check-no-folder", "no such folder", [*CHECK, "{tmp}/nowhere"], data=False),
    Case("check-bad-layout", "unknown layout", [*CHECK, "{tmp}", "--layout", "nope"], fast=True, data=False),
    # -- predict (issue 9's command)
    Case("predict-missing-checkpoint", "checkpoint that does not exist",
         [*PREDICT, "--checkpoint", "{tmp}/none.ckpt", "--input", "{tmp}", "--output", "{tmp}/out"], data=False),
    Case("predict-checkpoint-folder", "a folder as checkpoint",
         [*PREDICT, "--checkpoint", "{tmp}", "--input", "{tmp}", "--output", "{tmp}/out"], data=False),
    Case("predict-no-input", "no input images", [*PREDICT, "--checkpoint", "{tmp}/none.ckpt", "--output", "{tmp}/out"],
         data=False),
]


def make_set(folder: Path) -> Path:
    """A tiny clean synthetic set (4 subjects, 32 x 32 x 16)."""
    from mutual_seg.data.synthetic import generate_dataset

    generate_dataset(folder, n_subjects=4, seed=0, shape=(32, 32, 16), workers=1)
    return folder


def run_case(case: Case, tmp: Path, clean: Path | None) -> tuple[int, str]:
    """Run one case in its own folder under ``tmp``; return (exit code, last line of stderr with ``<tmp>``)."""
    work = tmp / case.id
    work.mkdir()
    data = work / "data"
    if case.data and clean is not None:
        shutil.copytree(clean, data)
        if case.breaks:
            case.breaks(data)
    if case.id == "run-existing-folder":
        (work / "earlier").mkdir()
        (work / "earlier" / "summary.json").write_text('{"status": "ok"}\n')
    command = [a.format(data=data, tmp=work) for a in case.command]
    if command[:3] == RUN and not case.fast:  # nothing is written outside the case's folder
        command += [f"paths.log_dir={work}/logs", f"paths.cache_dir={work}/cache"]
        command += [f"data.layout.root={data}"] if case.data else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    found = done.stdout.strip().splitlines()
    if case.id.startswith("check-") and done.returncode == 1 and found:
        last = found[0]  # the first problem found; the count is on stderr
    return done.returncode, re.sub(r"/\S*?" + re.escape(case.id), "<tmp>", last).replace(sys.executable, "python")


def row(case: Case, code: int, message: str) -> str:
    shown = " ".join(a for a in case.command[3:] if a not in TINY).replace(sys.executable, "python")
    if case.data and case.command[:3] == RUN:
        shown = f"{shown} data.layout.root=<data>".strip()
    verb = {tuple(CHECK): "check", tuple(PREDICT): "predict"}.get(tuple(case.command[:3]), "run")
    cells = [f"`{case.id}`", case.what, f"`{verb} {shown}`".replace("{tmp}", "<tmp>").replace("{data}", "<data>"),
             str(code), message.replace("|", "\\|")]
    return "| " + " | ".join(cells) + " |"


def table(cases: list[Case]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        clean = make_set(tmp / "clean") if any(c.data for c in cases) else None
        rows = [row(c, *run_case(c, tmp, clean)) for c in cases]
    head = ["| case | input | command | exit | what it prints (last line) |", "|---|---|---|---|---|"]
    return "\n".join(head + rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in docs/troubleshooting.md")
    parser.add_argument("--only", metavar="PREFIX", help="run only the cases whose id starts with PREFIX (print)")
    args = parser.parse_args()
    text = table([c for c in CASES if c.id.startswith(args.only or "")])
    if not args.write:
        print(text)
        return 0
    page = PAGE.read_text()
    start, end = page.index(START) + len(START), page.index(END)
    PAGE.write_text(page[:start] + "\n" + text + "\n" + page[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
