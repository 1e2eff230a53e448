"""The ablation study's pipeline end to end on tiny data: data, the two Hydra multiruns, the paired table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer=cpu", "data.num_workers=0", "data.cache_workers=0", "trainer.max_epochs=1",
        "trainer.limit_train_batches=1", "data.slices.patch_size=null", "data.val_slice_step=8"]


def test_the_study_runs_end_to_end_and_tables_paired_tests(tmp_path, capsys):
    study = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "ablation.py"), "--quick", "--cells", "core", "--jobs", "2", "--variants",
         "shifted", "--folds", "2", "--seeds", "0", "--outputs", "residual_zero", "--subjects", "4", "--shape", "32", "32", "16",
         "--data", str(tmp_path / "data"), "--out", str(study), f"paths.cache_dir={tmp_path}/cache", *TINY],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # every cell x fold x seed has its own job folder with the run-folder contract's files
    jobs = sorted(p.parent.name for p in study.glob("shifted/*/*/metrics.csv"))
    assert jobs == sorted(f"{cell}_dropout0.0_fold{f}_seed0" for f in (0, 1) for cell in (
        "flair_unet", "flair_t2w_unet", "flair_t2w_mutual", "flair_t2w_mutual-residual_zero"))
    table = (study / "table.md").read_text()
    rows = {tuple(c.strip() for c in line.split("|")[2:4]): line for line in table.splitlines()[2:]}
    assert set(rows) == {("flair", "unet"), ("flair_t2w", "unet"), ("flair_t2w", "mutual"),
                         ("flair_t2w", "mutual-residual_zero")}
    # 2 folds x 2 test subjects: each of the 4 subjects tested once; paired against FLAIR alone and early fusion
    mutual = [c.strip() for c in rows[("flair_t2w", "mutual")].split("|")]
    assert mutual[5] == "4" and "n=4" in mutual[9] and "n=4" in mutual[10] and "p=" in mutual[9]
    assert "ref." in rows[("flair", "unet")] and rows[("flair_t2w", "unet")].split("|")[10].strip() == "ref."
    # the report command owns the table: it refuses to overwrite it by accident, rebuilds it when asked, and names
    # a missing study folder in one line
    from mutual_seg.report.cli import main as report

    assert report([str(study), "--ablation"]) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert report([str(study), "--ablation", "--overwrite"]) == 0 and (study / "table.md").read_text() == table
    assert report([str(tmp_path / "nowhere"), "--ablation"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ablation study folder") and "nowhere" in err and "\n" not in err


def test_the_quick_grid_covers_every_factor_of_the_study():
    """--quick's fractional design: each input alone, every fusion on FLAIR+T2w, dropout and four inputs x
    {early fusion, mutual}."""
    sys.path.insert(0, str(ROOT / "experiments"))
    from ablation import FUSIONS, parallel, sweeps

    cells = set()
    for name, sweep in sweeps("quick", folds=5, seeds="0,1,2"):
        values = {o.split("=", 1)[0]: o.split("=", 1)[1].split(",") for o in sweep}
        assert values["fold"] == ["0", "1", "2", "3", "4"] and values["seed"] == ["0", "1", "2"]
        for model in values["model"]:
            for modality in values["modality"]:
                for dropout in values.get("model.net.modality_dropout", ["0.0"]):
                    cells.add((modality, model, float(dropout)))
    assert {c for c in cells if c[0] in ("flair", "t2w")} == {("flair", "unet", 0.0), ("t2w", "unet", 0.0)}
    assert {c[1] for c in cells if c[0] == "flair_t2w" and c[2] == 0.0} == set(FUSIONS)
    assert {c[1] for c in cells if c[2] == 0.25} == {"unet", "mutual"}
    assert {c for c in cells if c[0] == "brats4"} == {("brats4", "unet", 0.0), ("brats4", "mutual", 0.0)}
    assert len(cells) == 11
    # two jobs at a time through Hydra's joblib launcher; one job at a time adds nothing
    assert parallel(1) == [] and "hydra.launcher.n_jobs=2" in parallel(2)
