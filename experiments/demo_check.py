"""Check the demo over several seeds, in distribution and on the `shifted` generator variant.

Usage (from the repository root, after `make demo` has made data/demo):

    python -m mutual_seg.data.synthetic --out data/shifted --subjects 8 --seed 100 --variant shifted
    python -m mutual_seg.run experiment=demo data.layout.root=data/demo seed=0,1,2 -m
    python experiments/demo_check.py outputs/demo/multiruns/<time> --shifted data/shifted

For every finished job of the sweep (read with ``mutual_seg.results``, the one reader of run folders) it takes
the held-out test Dice, tests the job's best checkpoint
on every subject of the shifted set (`train=false data.split.fixed_test=all`), and prints a Markdown table.
The seed also draws the fold's subjects, so each seed is tested on other held-out subjects.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from statistics import mean

from mutual_seg.results import Run, find_runs, read_run


def _dice(run: Run) -> float:
    return mean(r["Dc"] for r in run.rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a demo multirun folder (outputs/demo/multiruns/<time>)")
    parser.add_argument("--shifted", type=Path, default=Path("data/shifted"), help="a data set made with other settings")
    args = parser.parse_args()
    jobs = [run for run in find_runs(args.sweep) if run.ok and run.checkpoint is not None]
    for run in find_runs(args.sweep):
        if not run.ok:
            print(f"{run.status}: {run.path}" + (f": {run.error}" if run.error else ""), file=sys.stderr)
    if not jobs:
        print(f"error: no finished demo jobs in {args.sweep}; run the sweep first (see this file's docstring)",
              file=sys.stderr)
        return 2
    rows = []
    for job in jobs:
        out = job.path / "shifted"
        if not (out / "summary.json").is_file():
            subprocess.run([sys.executable, "-m", "mutual_seg.run", "experiment=demo", "train=false", "logger=none",
                            # quoted: sweep folder names hold '=', which Hydra's override grammar would split on
                            f"ckpt_path='{job.checkpoint}'", f"data.layout.root='{args.shifted}'",
                            "data.split.fixed_test=all", f"hydra.run.dir='{out}'"], check=True)
        rows.append((job.path.name, _dice(job), _dice(read_run(out))))
    print("| job | test Dice (held-out, default generator) | Dice on the shifted set |\n|---|---|---|")
    for name, held_out, shifted in rows:
        print(f"| {name} | {held_out:.3f} | {shifted:.3f} |")
    print(f"| mean | {mean(r[1] for r in rows):.3f} | {mean(r[2] for r in rows):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
