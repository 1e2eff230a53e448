"""A study's jobs re-tested as if they had run with ``module.largest_component=auto``, without training again.

Usage: python experiments/retest_postprocess.py STUDY OUT [--only SUBSTRING]
       mutual-seg-report OUT --ablation     # the study's table, rule and steadiness with the step

Under ``auto`` a run scores every validation with and without the largest-component step and its checkpoint
carries the decision (``mutual_seg.lit.SegModule``); val/dice, which picks the best checkpoint, is the same either
way, so a run trained with ``auto`` has the same best checkpoint as one trained without it. For every tested job
under STUDY this loads that checkpoint, validates it on the job's own validation subjects (the slices its run
validated on) through the module's own ``validation_step``, lets ``on_validation_epoch_end`` decide, and tests
the job's test subjects through ``test_step`` with that decision. It writes a job folder at the same relative path
under OUT: ``config.yaml`` (the job's, with ``module.largest_component: auto``), ``metrics.csv`` and
``summary.json`` (the job's identity plus the decision). A job already re-tested is skipped.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tqdm import tqdm

from mutual_seg.atomic import atomic_write_text
from mutual_seg.checkpoint import load_module
from mutual_seg.results import Run, RunFolder, find_runs, write_results

_SUMMARY_ONLY = ("status", "error", "n_subjects", "metrics", "checkpoint")


def retest(run: Run, target: Path) -> dict:
    """Validate, decide and test one job; write its folder at ``target``; return the decision."""
    module = load_module(RunFolder(run.path).best_checkpoint)
    module.hparams.largest_component = "auto"
    config = OmegaConf.create(run.config)
    data = instantiate(config.data)
    data.setup()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer here: the module's logging is idle
        for i, batch in enumerate(data.val_dataloader()):
            module.validation_step(batch, i)
        module.on_validation_epoch_end()
        module.on_test_epoch_start()
        for i, batch in enumerate(data.test_dataloader()):
            module.test_step(batch, i)
    decision = {k: v for k, v in (module.postprocess or {}).items() if k != "epoch"}  # no Trainer: no epoch here
    config.module.largest_component = "auto"
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RunFolder(target).config, OmegaConf.to_yaml(config))
    identity = {k: v for k, v in run.summary.items() if k not in _SUMMARY_ONLY}
    write_results(module.test_rows, target, {**identity, "postprocess": decision, "retested_from": str(run.path)})
    return decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", default="", help="re-test only the jobs whose path contains this")
    args = parser.parse_args()
    torch.set_num_threads(1)
    jobs = [r for r in find_runs(args.study) if r.ok and args.only in str(r.path.relative_to(args.study))
            and RunFolder(r.path).best_checkpoint.is_file()]
    kept = 0
    for run in tqdm(jobs, desc="re-testing"):
        target = args.out / run.path.relative_to(args.study)
        if RunFolder(target).summary.is_file():
            continue
        kept += bool(retest(run, target).get("largest_component"))
    print(f"{len(jobs)} jobs under {args.study}; {kept} of those re-tested now keep only the largest component")


if __name__ == "__main__":
    main()
