"""The reader of run folders: a single run, a multirun folder, a tree of sweeps, failed and unfinished jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mutual_seg.errors import ResultsError
from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.results import describe_layout, find_runs, read_run, write_results


def write_run(folder: Path, modality_set: str, fold: int, rows: list[dict] | None, task: str = "table2",
              error: str | None = None) -> Path:
    """A job folder as `python -m mutual_seg.run` writes it (rows None: a failed job, no metrics.csv)."""
    modalities = modality_set.split("_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(
        f"task_name: {task}\nfold: {fold}\nseed: 42\nmodality:\n  name: {modality_set}\n  names: {modalities}\n"
        "model:\n  net:\n    early_fusion: false\n    fusion:\n      _target_: mutual_seg.models.fusion.MutualAttentionFusion\n")
    identity = {"task_name": task, "modality_set": modality_set, "modalities": modalities, "fold": fold}
    if rows is None:
        (folder / "summary.json").write_text(json.dumps({"status": "failed", "error": error, **identity}))
    else:
        write_results(rows, folder, {"status": "ok", **identity})
    return folder


def rows_for(subjects: list[str], value: float) -> list[dict]:
    return [{"subject": s, **{m: value + i / 100 for m in METRIC_NAMES}} for i, s in enumerate(subjects)]


def test_read_run_gives_rows_identity_and_model(tmp_path):
    run = read_run(write_run(tmp_path / "job", "flair_t2w", 3, rows_for(["A", "B"], 0.5)))
    assert run.ok and run.status == "ok" and run.error is None
    assert (run.task_name, run.modality_set, run.modalities, run.fold) == ("table2", "flair_t2w", ("flair", "t2w"), 3)
    assert run.model is None  # summary.json has no model here, nor is there Hydra's record
    (run.path / ".hydra").mkdir()
    (run.path / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      model: mutual\n")
    assert read_run(run.path).model == "mutual"  # the model= choice, from Hydra's record of the job
    assert run.subjects == ["A", "B"]
    assert run.rows[1]["Dc"] == pytest.approx(0.51) and isinstance(run.rows[1]["Hd"], float)
    assert run.checkpoint is None


def test_modality_and_fold_fall_back_to_config_yaml(tmp_path):
    folder = write_run(tmp_path / "old", "flair", 2, rows_for(["A"], 0.5))
    (folder / "summary.json").write_text(json.dumps({"n_subjects": 1, "metrics": {}}))  # an older summary
    run = read_run(folder)
    assert (run.modality_set, run.modalities, run.fold, run.task_name) == ("flair", ("flair",), 2, "table2")


def test_find_runs_single_multirun_and_tree_with_failed_and_unfinished(tmp_path):
    single = write_run(tmp_path / "single", "flair", 0, rows_for(["A"], 0.5))
    assert [r.path for r in find_runs(single)] == [single]
    assert describe_layout(single, find_runs(single)) == "a single run"

    tree = tmp_path / "tree"
    for sweep, sets in (("s1", ["flair"]), ("s2", ["flair_t2w"])):
        (tree / sweep).mkdir(parents=True)
        (tree / sweep / "multirun.yaml").write_text("{}\n")
        for s in sets:
            for fold in (0, 1):
                write_run(tree / sweep / f"modality={s},fold={fold}", s, fold, rows_for(["A"], 0.5))
    write_run(tree / "s2" / "modality=flair_t2w,fold=2", "flair_t2w", 2, None, error="RuntimeError: out of memory")
    unfinished = tree / "s2" / "modality=flair_t2w,fold=3"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("task_name: table2\nfold: 3\nmodality:\n  name: flair_t2w\n  names: [flair, t2w]\n")
    # a test-only run inside a job folder belongs to that job: the search stops at run folders
    write_run(tree / "s1" / "modality=flair,fold=0" / "shifted", "flair", 0, rows_for(["Z"], 0.1))

    multirun = find_runs(tree / "s1")
    assert [(r.modality_set, r.fold) for r in multirun] == [("flair", 0), ("flair", 1)]
    assert describe_layout(tree / "s1", multirun) == "a multirun folder of 2 job(s)"
    runs = find_runs(tree)
    assert describe_layout(tree, runs) == "a tree of 2 sweep(s), 6 run(s) in all"
    status = {(r.modality_set, r.fold): (r.status, r.error) for r in runs}
    assert status[("flair_t2w", 2)] == ("failed", "RuntimeError: out of memory")
    assert status[("flair_t2w", 3)] == ("unfinished", None)
    assert sum(r.ok for r in runs) == 4


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(ResultsError, match="not a run folder"):
        read_run(tmp_path)
    with pytest.raises(ResultsError, match="is not a folder"):
        find_runs(tmp_path / "missing")
    folder = write_run(tmp_path / "bad", "flair", 0, rows_for(["A"], 0.5))
    (folder / "summary.json").write_text("{not json")
    with pytest.raises(ResultsError, match="summary.json cannot be read as JSON"):
        read_run(folder)


def test_symlinked_job_folders_are_found_by_the_reader_and_by_attention_check(tmp_path):
    import importlib.util

    from mutual_seg.results import RunFolder

    elsewhere = write_run(tmp_path / "disk2" / "job0", "flair_t2w", 0, rows_for(["A"], 0.5))
    RunFolder(elsewhere).checkpoints.mkdir()
    RunFolder(elsewhere).best_checkpoint.write_bytes(b"")
    study = tmp_path / "study" / "default"
    study.mkdir(parents=True)
    (study / "job0").symlink_to(elsewhere, target_is_directory=True)  # a job folder moved to another disk
    write_run(study / "job1", "flair", 0, rows_for(["A"], 0.4))  # no checkpoint kept: not checked
    assert [r.path.name for r in find_runs(tmp_path / "study")] == ["job1", "job0"]
    spec = importlib.util.spec_from_file_location("attention_check", Path(__file__).parents[2] / "experiments" /
                                                  "attention_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [r.path for r in module.study_jobs(tmp_path / "study")] == [study / "job0"]
