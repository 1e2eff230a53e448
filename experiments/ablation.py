"""The ablation study (`make ablation`): inputs x fusions x modality dropout x track heads, on three generators.

Usage (from the repository root; `make ablation` and `make ablation QUICK=1` call this):

    python experiments/ablation.py                # the full grid, 5 folds x 3 seeds (days of CPU; hours on a GPU)
    python experiments/ablation.py --quick        # 5 cells (FLAIR, T2w, mutual with and without track heads, HeMIS
                                                  # with them) on small data with short training, 3 folds x 3 seeds
                                                  # x 3 generators = 135 jobs, 2 at a time (about 50 min on 2 cores)
    python experiments/ablation.py --quick --cells evidence   # HeMIS without heads, the block + mean (mutual_residual)
    python experiments/ablation.py --quick --cells noharm   # 8 cells: + early fusion, HeMIS without heads, gated
    python experiments/ablation.py --cells core   # only FLAIR, FLAIR+T2w x {early fusion, mutual}

Steps, each a plain command that can be rerun by hand:

1. make the three data sets with the synthetic generator (data/synthetic/contrasts.py): ``default`` (FLAIR-bright
   caps and choroid plexus that T2w tells apart), ``shifted`` (other contrasts and tumour model, T2w-bright CSF and
   cysts, FLAIR-bright caps brighter than the tumour) and ``flair3d`` (a 3D FLAIR that is already strong beside a
   thick-slice, noisy T2w whose tumour is darker than CSF). The study trains AND tests on each set's own subjects
   (k-fold cross-validation), so "does T2w help" is asked of data whose T2w/FLAIR relation differs;
2. for each data set, Hydra multiruns of ``python -m mutual_seg.run experiment=ablation``: one input alone (the
   single-track network) and two or four inputs x fusions x modality dropout x track heads, every model at the
   same parameter budget (conf/experiment/ablation.yaml's width table) and training recipe;
3. the table with paired tests against FLAIR alone, early fusion and the best single input, and the rule that
   picks the default (``mutual-seg-report --ablation``, mutual_seg/report/ablation.py).

The seed also draws the folds, so each seed tests every subject once: pairs are (subject, seed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

SINGLE = ("flair", "t2w")
MULTI = ("flair_t2w", "brats4")
FUSIONS = ("unet", "concat", "mean", "mutual", "mutual_token")
DROPOUT = ("0.0", "0.25")
NO_AUX = ("0.0",)
# name, models, modality sets, dropouts, per-track auxiliary loss weights (model.net.aux_weight)
Sweep = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
FOUR: list[Sweep] = [("four", ("unet", "mutual"), ("brats4",), ("0.0",), NO_AUX)]  # T1, T1c, T2w, FLAIR: early vs mutual
# The no-harm grid (README, "The ablation study"): each input alone, early fusion, and the contenders for the
# default, with and without per-track auxiliary heads at one weight fixed in advance (0.5, not tuned).
NO_HARM: list[Sweep] = [
    ("single", ("unet",), SINGLE, ("0.0",), NO_AUX),
    ("early", ("unet",), ("flair_t2w",), ("0.0",), NO_AUX),
    ("tracks", ("mutual", "hemis"), ("flair_t2w",), ("0.0",), ("0.0", "0.5")),
    ("gated", ("gated",), ("flair_t2w",), ("0.0",), ("0.5",)),
]
# --quick's share of it (5 cells): each input alone, today's mutual model, and mutual and HeMIS with track heads
QUICK_CELLS: list[Sweep] = [
    ("single", ("unet",), SINGLE, ("0.0",), NO_AUX),
    ("mutual", ("mutual",), ("flair_t2w",), ("0.0",), ("0.0", "0.5")),
    ("hemis", ("hemis",), ("flair_t2w",), ("0.0",), ("0.5",)),
]
# Two contenders that keep every modality's evidence in the fused map whatever the attention says (the converged
# flair3d models over-segment where the block puts 0.25 of its weight on a T2w that reads "normal"): HeMIS without
# heads, and mutual attention with the residual output (mean + out(attended), model=mutual_residual at its own
# equal-parameter width; ``--outputs residual`` runs the same block at mutual's width, 3 % more parameters). (Gated fusion is a
# softmax gate like the block, so it can drop T2w the same way; it is in ``noharm``.)
EVIDENCE: list[Sweep] = [("hemis_plain", ("hemis",), ("flair_t2w",), ("0.0",), NO_AUX),
                         ("residual", ("mutual_residual",), ("flair_t2w",), ("0.0",), NO_AUX)]
CELLS: dict[str, list[Sweep]] = {
    # the whole grid: single inputs, and every fusion x two and four inputs x modality dropout (16 cells + 2)
    "all": [("single", ("unet",), SINGLE, ("0.0",), NO_AUX), ("multi", FUSIONS, MULTI, DROPOUT, NO_AUX)],
    # --quick's default: 5 cells x 3 folds x 3 seeds x 3 generators = 135 jobs of 30-50 s each on one thread of a CPU
    # without native bf16 (two at a time): about 50 min on 2 cores
    "quick": QUICK_CELLS,
    "noharm": NO_HARM,
    # HeMIS without heads and the default: 2 cells, 54 jobs
    "evidence": EVIDENCE,
    # every cell the no-harm rule ranks (quick + evidence): the converged grid on a GPU is this at full size
    "rule": [*QUICK_CELLS, *EVIDENCE],
    # the 2026-11-27 quick grid: each input alone, every fusion on FLAIR+T2w, modality dropout and all four inputs
    # each crossed with early fusion and mutual attention (11 cells)
    "fusions": [("single", ("unet",), SINGLE, ("0.0",), NO_AUX),
                ("fusions", (*FUSIONS, "hemis", "gated"), ("flair_t2w",), ("0.0",), NO_AUX),
                ("dropout", ("unet", "mutual"), ("flair_t2w",), ("0.25",), NO_AUX), *FOUR],
    # only the four-input cells
    "four": FOUR,
    # the core question only: FLAIR alone, FLAIR+T2w x {early fusion, mutual}
    "core": [("single", ("unet",), ("flair",), ("0.0",), NO_AUX),
             ("multi", ("unet", "mutual"), ("flair_t2w",), ("0.0",), NO_AUX)],
    # every single-input and two-input cell, no four-input ones: 12 cells
    "two": [("single", ("unet",), SINGLE, ("0.0",), NO_AUX), ("multi", FUSIONS, ("flair_t2w",), DROPOUT, NO_AUX)],
}
# Data of the full study: 35 subjects per generator (the paper's astrocytoma subset), full size, 5 folds.
FULL = {"subjects": 35, "shape": (240, 240, 155), "jobs": 1, "folds": 5, "overrides": []}
# --quick: 2.5 mm voxels, 48-pixel patches, 160 steps of batch 8 (the demo recipe takes 700 steps of 16 at 128
# pixels), 3 folds (each seed still tests every subject once), two jobs at a time with a thread each. Precision
# auto: bf16 only on a CPU that runs it natively. The models are far from converged, so the table answers
# "what helps early in training"; the converged check is the demo recipe over seeds (README).
QUICK = {
    "subjects": 15,
    "shape": (96, 96, 62),
    "jobs": 2,
    "folds": 3,
    "overrides": [
        "data.slices.patch_size=[48,48]",
        "data.samples_per_epoch=320",
        "data.batch_size=8",
        "data.val_slice_step=4",
        "trainer.max_epochs=4",
        "trainer.precision=auto",  # bf16 only where the CPU runs it natively (float32 elsewhere: 10x faster there)
        "module.min_component_mm3=0",
        "~callbacks.progress_bar",
    ],
}
GENERATOR_SEEDS = {"default": 0, "shifted": 100, "flair3d": 200}  # generator variant -> data set seed


def run(command: list[str]) -> None:
    """Run one step, echoing it; stop the study on the first failure (each step's own error is on screen)."""
    print("+ " + " ".join(command), flush=True)
    done = subprocess.run(command, check=False)
    if done.returncode:
        raise SystemExit(done.returncode)


def make_data(root: Path, variant: str, subjects: int, shape: tuple[int, ...]) -> Path:
    """Generate (or resume, or find complete) one generator variant's set under ``root/<variant>``."""
    out = root / variant
    run([sys.executable, "-m", "mutual_seg.data.synthetic", "--out", str(out), "--subjects", str(subjects),
         "--seed", str(GENERATOR_SEEDS[variant]), "--variant", variant, "--shape", *map(str, shape)])
    return out


def sweeps(cells: str, folds: int, seeds: str, outputs: str = "") -> list[tuple[str, list[str]]]:
    """The study's multiruns as (name, Hydra sweep overrides).

    ``outputs``: mutual attention's other output paths to add (``residual_zero,paper``; models/fusion.py), as
    one more sweep of ``model=mutual`` on the multi-input sets without modality dropout.
    """
    common = [f"n_folds={folds}", "fold=" + ",".join(map(str, range(folds))), f"seed={seeds}"]
    out = []
    for name, models, sets, dropouts, auxes in CELLS[cells]:
        sweep = ["model=" + ",".join(models), "modality=" + ",".join(sets)]
        if name != "single":  # one input: dropping it is never allowed, so the setting stays at 0
            sweep.append("model.net.modality_dropout=" + ",".join(dropouts))
        if auxes != NO_AUX:
            sweep.append("model.net.aux_weight=" + ",".join(auxes))
        out.append((name, [*sweep, *common]))
    multi = sorted({s for name, _, sets, _, _ in CELLS[cells] if name != "single" for s in sets})
    if multi and outputs:
        subdir = "${modality.name}_mutual-${model.net.fusion.output}_dropout0.0_aux0.0_fold${fold}_seed${seed}"
        out.append(("outputs", ["model=mutual", "modality=" + ",".join(multi), "model.net.fusion.output=" + outputs,
                                *common, f"hydra.sweep.subdir={subdir}"]))
    return out


def parallel(jobs: int) -> list[str]:
    """Overrides that run ``jobs`` sweep jobs at a time on this machine (Hydra's joblib launcher).

    joblib gives each worker ``cores // jobs`` threads; its workers cannot start processes of their own, so the
    data loader and the cache work in the job's process (cheap at the quick study's sizes).
    """
    if jobs <= 1:
        return []
    return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", "data.num_workers=0", "data.cache_workers=0"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, short training (2 CPU cores, ~1 hour)")
    parser.add_argument("--cells", choices=sorted(CELLS), help="which part of the grid (default all; --quick: quick)")
    parser.add_argument("--variants", default="default,shifted,flair3d", help="generator variants, comma-separated")
    parser.add_argument("--folds", type=int, help="cross-validation folds (default 5; --quick 3)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--outputs", default="", help="mutual attention's other output paths to add, e.g. "
                        "residual_zero,paper (model.net.fusion.output; the table names them mutual-<output>); they run "
                        "at model=mutual's widths, so residual outputs have about 3 %% more parameters (equal "
                        "parameters: the mutual_residual cell of --cells evidence)")
    parser.add_argument("--jobs", type=int, help="sweep jobs at a time on this machine (default 1; --quick 2: "
                        "single-thread jobs on 2 cores); keep 1 on a GPU")
    parser.add_argument("--subjects", type=int, help="subjects per generator (default: 35, --quick 15)")
    parser.add_argument("--shape", type=int, nargs=3, help="voxels per volume (default 240 240 155, --quick 96 96 62)")
    parser.add_argument("--data", type=Path, default=Path("data/ablation"), help="where the data sets go")
    parser.add_argument("--out", type=Path, help="study folder (default outputs/ablation/<time>)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job, e.g. trainer=gpu")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    subjects = args.subjects or preset["subjects"]
    shape = tuple(args.shape or preset["shape"])
    jobs = args.jobs or preset["jobs"]
    folds = args.folds or preset["folds"]
    out = args.out or Path("outputs/ablation") / time.strftime("%Y-%m-%d_%H-%M-%S")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in GENERATOR_SEEDS]
    if unknown:
        print(f"error: unknown generator variant(s) {unknown}; use {', '.join(GENERATOR_SEEDS)}", file=sys.stderr)
        return 2
    shape_tag = "x".join(map(str, shape))
    for variant in variants:
        data = make_data(args.data / f"{shape_tag}_{subjects}", variant, subjects, shape)
        for name, sweep in sweeps(args.cells or ("quick" if args.quick else "all"), folds, args.seeds, args.outputs):
            run([sys.executable, "-m", "mutual_seg.run", "-m", "experiment=ablation", f"data.layout.root={data}",
                 "logger=none", *preset["overrides"], *parallel(jobs), *args.overrides, *sweep,
                 f"hydra.sweep.dir={out / variant / name}"])
    # the study's own table: rewritten whenever the study runs again (resumed or extended)
    run([sys.executable, "-m", "mutual_seg.report", str(out), "--ablation", "--overwrite"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
