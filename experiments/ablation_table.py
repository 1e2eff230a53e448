"""The ablation table: every cell's mean test metrics, with paired tests against FLAIR alone and early fusion.

Usage: python experiments/ablation_table.py outputs/ablation/<time> [--out table.md]

Reads every job folder under the study folder (``summary.json`` + ``metrics.csv``, the run-folder contract;
the job's identity from its ``config.yaml`` and Hydra's ``.hydra/hydra.yaml``). A cell is (generator variant,
modality set, model, modality dropout); its test rows are keyed by (subject, seed): each seed draws other folds,
and 5-fold cross-validation tests every subject once per seed. Two cells are compared on the keys they share by
the Wilcoxon signed-rank test on Dice (scipy.stats.wilcoxon, two-sided); "FLAIR alone" is the single-track
network on FLAIR, "early fusion" is ``model=unet`` on the same inputs and dropout. Failed jobs are counted.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev

import yaml
from scipy.stats import wilcoxon

Cell = tuple[str, str, str, float]  # variant, modality set, model, modality dropout


def job_identity(job: Path, study: Path) -> tuple[Cell, int]:
    """(cell, seed) of one job folder, from its resolved config and Hydra's record of the group choices."""
    config = yaml.safe_load((job / "config.yaml").read_text())
    choices = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]["choices"]
    variant = job.relative_to(study).parts[0]
    dropout = float(config["model"]["net"].get("modality_dropout", 0.0))
    return (variant, config["modality"]["name"], choices["model"], dropout), int(config["seed"])


def read_study(study: Path) -> tuple[dict[Cell, dict[tuple[str, int], dict[str, float]]], dict[Cell, int]]:
    """``{cell: {(subject, seed): metrics}}`` and ``{cell: failed jobs}``."""
    cells: dict[Cell, dict[tuple[str, int], dict[str, float]]] = defaultdict(dict)
    failed: dict[Cell, int] = defaultdict(int)
    for summary_path in sorted(study.rglob("summary.json")):
        job = summary_path.parent
        if not (job / "config.yaml").is_file() or not (job / ".hydra" / "hydra.yaml").is_file():
            continue  # not a job folder of the study
        cell, seed = job_identity(job, study)
        summary = json.loads(summary_path.read_text())
        if summary.get("status", "ok") != "ok" or not (job / "metrics.csv").is_file():
            failed[cell] += 1
            continue
        with open(job / "metrics.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                cells[cell][(row["subject"], seed)] = {k: float(v) for k, v in row.items() if k not in ("subject", "output")}
    return dict(cells), dict(failed)


def paired(a: dict[tuple[str, int], dict[str, float]], b: dict[tuple[str, int], dict[str, float]]) -> tuple[float, float, int]:
    """(mean Dice difference a - b, two-sided Wilcoxon p, pairs) on the (subject, seed) keys both cells have."""
    keys = sorted(set(a) & set(b))
    diffs = [a[k]["Dc"] - b[k]["Dc"] for k in keys]
    if not diffs:
        return float("nan"), float("nan"), 0
    if all(d == 0 for d in diffs):
        return 0.0, 1.0, len(diffs)
    return mean(diffs), float(wilcoxon(diffs).pvalue), len(diffs)


def _fmt_test(test: tuple[float, float, int]) -> str:
    diff, p, n = test
    return "–" if n == 0 else f"{diff:+.3f} (p={p:.2g}, n={n})"


def table(cells: dict[Cell, dict], failed: dict[Cell, int]) -> str:
    """The Markdown table, one row per cell, sorted by variant, modality set, model, dropout."""
    lines = ["| data | inputs | model | dropout | n | Dice | Re | Pr | vs FLAIR alone | vs early fusion | failed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell in sorted(set(cells) | set(failed)):
        variant, modality, model, dropout = cell
        rows = cells.get(cell, {})
        dice = [r["Dc"] for r in rows.values()]
        flair = cells.get((variant, "flair", "unet", 0.0), {})
        early = cells.get((variant, modality, "unet", dropout), {})
        vs_flair = _fmt_test(paired(rows, flair)) if cell[1:] != ("flair", "unet", 0.0) else "ref."
        vs_early = _fmt_test(paired(rows, early)) if model != "unet" else "ref."
        stats = (f"{mean(dice):.3f} ± {stdev(dice) if len(dice) > 1 else 0:.3f} | {mean(r['Re'] for r in rows.values()):.3f} | "
                 f"{mean(r['Pr'] for r in rows.values()):.3f}") if dice else "– | – | –"
        lines.append(f"| {variant} | {modality} | {model} | {dropout:g} | {len(dice)} | {stats} | {vs_flair} | "
                     f"{vs_early} | {failed.get(cell, 0)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="the study folder experiments/ablation.py wrote")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    cells, failed = read_study(args.study)
    if not cells and not failed:
        print(f"error: no job folders (summary.json + config.yaml) under {args.study}; run the study first",
              file=sys.stderr)
        return 2
    text = table(cells, failed)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
