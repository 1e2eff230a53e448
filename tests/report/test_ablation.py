"""The ablation study's pipeline end to end on tiny data: data, the two Hydra multiruns, the paired table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    assert jobs == sorted(f"{cell}_dropout0.0_aux0.0_fold{f}_seed0" for f in (0, 1) for cell in (
        "flair_unet", "flair_t2w_unet", "flair_t2w_mutual", "flair_t2w_mutual-residual_zero"))
    table = (study / "table.md").read_text()
    cell_lines = table.split("\n\n")[0].splitlines()[2:]
    rows = {tuple(c.strip() for c in line.split("|")[2:4]): line for line in cell_lines}
    assert set(rows) == {("flair", "unet"), ("flair_t2w", "unet"), ("flair_t2w", "mutual"),
                         ("flair_t2w", "mutual-residual_zero")}
    # 2 folds x 2 test subjects: each of the 4 subjects tested once; paired against FLAIR alone and early fusion
    mutual = [c.strip() for c in rows[("flair_t2w", "mutual")].split("|")]
    assert mutual[5] == "4" and "n=4" in mutual[9] and "n=4" in mutual[10] and "p=" in mutual[9]
    assert "ref." in rows[("flair", "unet")] and rows[("flair_t2w", "unet")].split("|")[10].strip() == "ref."
    # the only single input is FLAIR, so it is the best single input; the rule ranks the two-input configurations
    assert mutual[11] == mutual[9]
    rule = table.split("## The rule")[1]
    ranked = [line.split("|")[3].strip() for line in rule.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert sorted(ranked) == ["mutual", "mutual-residual_zero", "unet"]
    # the report command owns the table: it refuses to overwrite it by accident, rebuilds it when asked, and names
    # a missing study folder in one line
    from mutual_seg.report.cli import main as report

    assert report([str(study), "--ablation"]) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert report([str(study), "--ablation", "--overwrite"]) == 0 and (study / "table.md").read_text() == table
    assert report([str(tmp_path / "nowhere"), "--ablation"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ablation study folder") and "nowhere" in err and "\n" not in err


@pytest.mark.parametrize("cells", ["quick", "noharm"])
def test_the_quick_grid_is_the_no_harm_grid(cells):
    """--quick: each input alone, mutual with and without track heads, HeMIS with them; --cells noharm adds early
    fusion, HeMIS without heads and gated with them."""
    sys.path.insert(0, str(ROOT / "experiments"))
    from ablation import GENERATOR_SEEDS, parallel, sweeps

    found = set()
    for name, sweep in sweeps(cells, folds=3, seeds="0,1,2"):
        values = {o.split("=", 1)[0]: o.split("=", 1)[1].split(",") for o in sweep}
        assert values["fold"] == ["0", "1", "2"] and values["seed"] == ["0", "1", "2"]
        for model in values["model"]:
            for modality in values["modality"]:
                for aux in values.get("model.net.aux_weight", ["0.0"]):
                    found.add((modality, model, float(aux)))
    common = {("flair", "unet", 0.0), ("t2w", "unet", 0.0), ("flair_t2w", "mutual", 0.0), ("flair_t2w", "mutual", 0.5),
              ("flair_t2w", "hemis", 0.5)}
    more = {("flair_t2w", "unet", 0.0), ("flair_t2w", "hemis", 0.0), ("flair_t2w", "gated", 0.5)}
    assert found == (common if cells == "quick" else common | more)
    assert set(GENERATOR_SEEDS) == {"default", "shifted", "flair3d"}
    # two jobs at a time through Hydra's joblib launcher; one job at a time adds nothing
    assert parallel(1) == [] and "hydra.launcher.n_jobs=2" in parallel(2)


def test_the_rule_ranks_by_the_worst_difference_against_the_best_single_input():
    """Known answer: config A wins big on one generator and loses on the other; B never loses; B ranks first."""
    from mutual_seg.report.ablation import best_single, rule

    def rows(values):
        return {(f"s{i}", 0): {"Dc": v, "Re": v, "Pr": v} for i, v in enumerate(values)}

    cells = {
        ("g1", "flair", "unet", 0.0): rows([0.80, 0.70, 0.60]),
        ("g1", "t2w", "unet", 0.0): rows([0.50, 0.50, 0.50]),
        ("g1", "flair_t2w", "A", 0.0): rows([0.90, 0.80, 0.70]),   # +0.10 against FLAIR
        ("g1", "flair_t2w", "B", 0.0): rows([0.81, 0.71, 0.61]),   # +0.01
        ("g2", "flair", "unet", 0.0): rows([0.40, 0.40, 0.40]),
        ("g2", "t2w", "unet", 0.0): rows([0.60, 0.60, 0.70]),      # T2w is the best single input here
        ("g2", "flair_t2w", "A", 0.0): rows([0.55, 0.55, 0.65]),   # -0.05 against T2w
        ("g2", "flair_t2w", "B", 0.0): rows([0.60, 0.60, 0.70]),   # 0
    }
    assert best_single(cells, "g1")[1] == "flair" and best_single(cells, "g2")[1] == "t2w"
    lines = [line for line in rule(cells).splitlines() if line.startswith(("| 1 ", "| 2 "))]
    first, second = ([c.strip() for c in line.split("|")] for line in lines)
    assert first[3] == "B" and first[7] == "+0.000" and first[5] == "+0.010"
    assert second[3] == "A" and second[7] == "-0.050" and second[6] == "-0.050"


def test_the_evidence_cells_add_hemis_and_the_residual_block():
    """--cells evidence: HeMIS without heads and mutual attention with the residual output (model=mutual_residual)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    from ablation import sweeps

    found = {name: dict(o.split("=", 1) for o in sweep) for name, sweep in sweeps("evidence", 3, "0,1,2")}
    assert set(found) == {"hemis_plain", "residual"}
    assert found["hemis_plain"]["model"] == "hemis" and found["hemis_plain"]["modality"] == "flair_t2w"
    assert "model.net.aux_weight" not in found["hemis_plain"]
    assert found["residual"]["model"] == "mutual_residual"
    rule = [name for name, _ in sweeps("rule", 5, "0,1,2")]  # the GPU's converged grid: every ranked cell at once
    assert rule == ["single", "mutual", "hemis", "hemis_plain", "residual"]


def test_false_positive_blobs_are_found_with_their_tissue():
    """Known answer: a blob in CSF away from the tumour is listed; one touching the tumour and a speck are not."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("attention_check", ROOT / "experiments" / "attention_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = np.zeros((8, 16, 16), bool)
    truth[2:5, 2:6, 2:6] = True
    pred = truth.copy()
    pred[2:5, 6:8, 2:6] = True  # grows out of the tumour: a boundary error, not a blob
    pred[5:7, 10:14, 10:14] = True  # 32 voxels apart from it, 24 in CSF and 8 in normal tissue
    pred[0, 15, 0] = True  # a one-voxel speck
    masks = {r: np.zeros_like(truth) for r in module.REGIONS}
    masks["csf"][5:7, 10:14, 10:13] = True
    masks["normal"][5:7, 10:14, 13:14] = True
    blobs = module.fp_components(pred, truth, masks, min_voxels=2)
    assert [(b["voxels"], b["tissue"], b["tissue_share"], b["centre"]) for b in blobs] == [(32, "csf", 0.75, (5, 11, 11))]


def test_steadiness_reports_the_seed_spread_and_the_collapses_against_flair_alone():
    """Known answer: per-seed means, spread against FLAIR alone's, and the one subject where the dual model's
    precision falls below 0.6 while FLAIR alone's is above 0.8 (a low precision that FLAIR alone shares is not one)."""
    from mutual_seg.report.ablation import collapses, steadiness

    def row(dice, precision):
        return {"Dc": dice, "Re": 0.9, "Pr": precision}

    flair = {("a", 0): row(0.80, 0.90), ("b", 0): row(0.80, 0.50), ("a", 1): row(0.70, 0.90), ("b", 1): row(0.70, 0.85)}
    dual = {("a", 0): row(0.90, 0.95), ("b", 0): row(0.80, 0.40), ("a", 1): row(0.90, 0.90), ("b", 1): row(0.50, 0.55)}
    cells = {("g", "flair", "unet", 0.0): flair, ("g", "flair_t2w", "mutual", 0.0): dual}
    assert collapses(dual, flair) == [("b", 1, 0.55, 0.85)]
    line = [c.strip() for c in next(c for c in steadiness(cells).splitlines() if "| mutual |" in c).split("|")]
    # seed means 0.85 and 0.70 (spread 0.15) against FLAIR's 0.80 and 0.70 (0.10): 1.5x
    assert line[5:9] == ["0.850 0.700", "0.150", "1.5x", "1: b seed 1 (0.55 vs 0.85)"]


def test_a_cell_names_the_attention_temperature_and_output(tmp_path):
    """Two mutual models that differ only in the temperature or the output path are two cells, not one."""
    from types import SimpleNamespace

    from mutual_seg.report.ablation import cell_of

    def run(model, fusion):
        config = {"model": {"net": {"modality_dropout": 0.0, "fusion": fusion}}}
        return SimpleNamespace(config=config, model=model, summary={"fusion": "mutual_modality"},
                               path=tmp_path / "flair3d" / "job", modality_set="flair_t2w")

    assert cell_of(run("mutual", {"output": "paper", "temperature": 1.0}), tmp_path)[2] == "mutual"
    assert cell_of(run("mutual", {"output": "paper", "temperature": 2.0}), tmp_path)[2] == "mutual-T2"
    assert cell_of(run("mutual", {"output": "residual"}), tmp_path)[2] == "mutual-residual"
    assert cell_of(run("mutual_residual", {"output": "residual"}), tmp_path)[2] == "mutual_residual"


def test_retest_postprocess_writes_a_job_the_report_reads_with_the_rules_decision(run, tmp_path):
    """A real trained job re-tested as under ``largest_component=auto``: the report reads the folder as the same
    cell and subjects; the decision follows the rule from its two validation Dice values; and the step only ever
    removes voxels, so no subject's recall rises (when the step is off, the rows are the job's own)."""
    import importlib.util

    from mutual_seg.inference import choose_largest_component
    from mutual_seg.report.ablation import cell_of
    from mutual_seg.results import find_runs, read_run

    spec = importlib.util.spec_from_file_location("retest_postprocess", ROOT / "experiments" / "retest_postprocess.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    study, out = tmp_path / "study", tmp_path / "auto"
    (study / "tiny").mkdir(parents=True)
    (study / "tiny" / "job").symlink_to(run, target_is_directory=True)
    original = find_runs(study)[0]
    decision = module.retest(original, out / "tiny" / "job")
    assert decision["largest_component"] == choose_largest_component(decision["val_dice"], decision["val_dice_largest"])
    retested = read_run(out / "tiny" / "job")
    assert retested.ok and retested.subjects == original.subjects
    assert cell_of(retested, out) == cell_of(original, study)
    assert retested.config["module"]["largest_component"] == "auto"
    for before, after in zip(original.rows, retested.rows):
        if decision["largest_component"]:
            assert after["Re"] <= before["Re"] + 1e-12
        else:
            assert after == before
