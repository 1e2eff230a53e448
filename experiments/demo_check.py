"""Check the demo over several seeds, in distribution and on the `shifted` generator variant.

Usage (from the repository root, after `make demo` has made data/demo):

    python -m mutual_seg.data.synthetic --out data/shifted --subjects 8 --seed 100 --variant shifted
    python -m mutual_seg.run experiment=demo data.layout.root=data/demo seed=0,1,2 -m
    python experiments/demo_check.py outputs/demo/multiruns/<time> --shifted data/shifted

For every job of the sweep it reads the held-out test Dice from summary.json, tests the job's best checkpoint
on every subject of the shifted set (`train=false data.split.fixed_test=all`), and prints a Markdown table.
The seed also draws the fold's subjects, so each seed is tested on other held-out subjects.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from statistics import mean


def _dice(summary_path: Path) -> float:
    return json.loads(summary_path.read_text())["metrics"]["Dc"]["mean"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a demo multirun folder (outputs/demo/multiruns/<time>)")
    parser.add_argument("--shifted", type=Path, default=Path("data/shifted"), help="a data set made with other settings")
    args = parser.parse_args()
    jobs = sorted(p.parent for p in args.sweep.glob("*/summary.json") if (p.parent / "checkpoints" / "best.ckpt").is_file())
    if not jobs:
        print(f"error: no finished demo jobs in {args.sweep}; run the sweep first (see this file's docstring)",
              file=sys.stderr)
        return 2
    rows = []
    for job in jobs:
        out = job / "shifted"
        if not (out / "summary.json").is_file():
            subprocess.run([sys.executable, "-m", "mutual_seg.run", "experiment=demo", "train=false", "logger=none",
                            # quoted: sweep folder names hold '=', which Hydra's override grammar would split on
                            f"ckpt_path='{job / 'checkpoints' / 'best.ckpt'}'", f"data.layout.root='{args.shifted}'",
                            "data.split.fixed_test=all", f"hydra.run.dir='{out}'"], check=True)
        rows.append((job.name, _dice(job / "summary.json"), _dice(out / "summary.json")))
    print("| job | test Dice (held-out, default generator) | Dice on the shifted set |\n|---|---|---|")
    for name, held_out, shifted in rows:
        print(f"| {name} | {held_out:.3f} | {shifted:.3f} |")
    print(f"| mean | {mean(r[1] for r in rows):.3f} | {mean(r[2] for r in rows):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
