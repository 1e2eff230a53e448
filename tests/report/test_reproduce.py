"""`make reproduce-table2 QUICK=1` end to end on tiny data: synthetic set, Hydra multirun, report with figures."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from mutual_seg.results import find_runs

ROOT = Path(__file__).resolve().parents[2]

# The same target, made smaller: 6 tiny subjects, 2 folds, a tiny net, 2 training batches.
TINY = ("trainer=cpu logger=none trainer.max_epochs=1 trainer.limit_train_batches=2 trainer.enable_model_summary=false "
        "data.num_workers=0 data.cache_workers=0 data.batch_size=4 data.slices.patch_size=null "
        "'model.net.features=[4,8,16]' n_folds=2 fold=0,1")


def test_make_reproduce_table2_quick_runs_sweep_and_report(tmp_path):
    data, out, cache = tmp_path / "data", tmp_path / "out", tmp_path / "cache"
    result = subprocess.run(
        ["make", "--no-print-directory", "reproduce-table2", "QUICK=1", f"DATA={data}", "SUBJECTS=6",
         "SYNTH_ARGS=--shape 48 48 24", f"REPRO_OUT={out}", f"ARGS={TINY} paths.cache_dir={cache}"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep,) = (out / "table2_quick").iterdir()
    runs = find_runs(sweep)
    assert [(r.status, r.modality_set, r.fold) for r in runs] == [
        ("ok", "flair", 0), ("ok", "flair", 1), ("ok", "flair_t2w", 0), ("ok", "flair_t2w", 1)]
    assert all(r.checkpoint is not None and r.task_name == "table2_quick" for r in runs)
    report = sweep / "report"
    with open(report / "table2.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["Fold"], r["Modality"]) for r in rows] == [
        ("Fold-1", "FLAIR"), ("Fold-1", "FLAIR + T2w"), ("Fold-2", "FLAIR"), ("Fold-2", "FLAIR + T2w"),
        ("Average", "FLAIR"), ("Average", "FLAIR + T2w")]
    assert sum(int(r["n"]) for r in rows[:4]) == 12  # 6 subjects, each tested once per modality set
    assert all(0.0 <= float(r["Ac_brain"]) <= 1.0 for r in rows)
    # the overlays were predicted from the runs' best checkpoints, without training again
    for name in ("fig5_boxplots.png", "fig6_overlays.png"):
        assert (report / name).stat().st_size > 5_000
    assert "Table 2" in result.stdout and "Paired comparison" in result.stdout
