"""Refusals of the run: one line, exit 2, nothing earlier lost (issue 11, holes)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mutual_seg.config import compose, group_options
from mutual_seg.errors import ConfigError, OutputError
from mutual_seg.metrics import METRIC_NAMES
from mutual_seg.results import write_results, write_untested
from mutual_seg.run import main, train
from mutual_seg.runtime.resume import finished_summary


def _main(capsys, monkeypatch, *args: str) -> str:
    """``python -m mutual_seg.run ARGS`` in this process: its exit code must be 2; returns stderr."""
    monkeypatch.setattr(sys, "argv", ["mutual_seg.run", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fold=abc"], "fold=abc: fold expects an integer, got 'abc'; e.g. fold=0"),
        (["seed=abc"], "seed=abc: seed expects an integer, got 'abc'"),
        (["data.batch_size=0"], "data.batch_size=0: data.batch_size expects an integer >= 1, got 0"),
        (["trainer.max_epoch=1"], "unknown config key 'trainer.max_epoch' in 'trainer.max_epoch=1'; nearest valid key: trainer.max_epochs"),
        (["data.split.val_fracton=0.2"], "nearest valid key: data.split.val_fraction"),
        (["train=maybe"], "train=maybe: train expects true or false"),
        (["-m", "modality=flair,t2w", "fold=0,x"], "fold=0,x: fold expects an integer, got 'x'"),
        (["data=base"], "unknown data set 'base'"),
        (["fold=[1"], "cannot parse the command line"),
        (["fold=null"], "fold=null: fold expects an integer, got None"),
    ],
)
def test_bad_override_is_one_line_naming_the_key(capsys, monkeypatch, args, expected):
    err = _main(capsys, monkeypatch, *args)
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


def test_error_raised_inside_a_config_resolver_is_one_line(capsys, monkeypatch, tmp_path, tiny_data):
    # OmegaConf wraps the ${budget_widths:...} resolver's ConfigError without `from`: still one line, exit 2
    err = _main(capsys, monkeypatch, "experiment=ablation", "model=unet", "modality=t1", "logger=none",
                f"data.layout.root={tiny_data}", f"hydra.run.dir={tmp_path / 'run'}")
    assert err.count("\n") == 1 and "width table (ablation.widths) has no entry for model=unet with modality=t1" in err
    assert "InterpolationResolutionError" not in err


def test_an_output_prior_outside_0_1_is_one_line(capsys, monkeypatch, tmp_path, tiny_data):  # data first
    err = _main(capsys, monkeypatch, "model.net.output_prior=1.5", "logger=none", f"data.layout.root={tiny_data}",
                f"hydra.run.dir={tmp_path / 'run'}")
    assert err.count("\n") == 1 and "model.net.output_prior must be in (0, 1) or null, got 1.5" in err, err


@pytest.mark.parametrize(("override", "expected"), [
    ("model.net.fusion.temperature=0", "mutual attention temperature must be > 0, got 0"),
    ("model.net.aux_weight=-1", "model.net.aux_weight must be >= 0 (0: no track heads), got -1"),
    ("module.largest_component=sometimes", "module.largest_component expects one of false, true, auto, got 'sometimes'"),
    ("module.largest_component=1", "module.largest_component expects one of false, true, auto, got 1"),
])
def test_a_bad_fusion_setting_is_one_line(capsys, monkeypatch, tmp_path, tiny_data, override, expected):  # data first
    err = _main(capsys, monkeypatch, override, "logger=none", f"data.layout.root={tiny_data}",
                f"hydra.run.dir={tmp_path / 'run'}")
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


def test_a_bad_malloc_setting_is_one_line(capsys, monkeypatch, tmp_path, tiny_data):  # data first
    err = _main(capsys, monkeypatch, "malloc.top_pad_mb=-1", "logger=none", f"data.layout.root={tiny_data}",
                f"hydra.run.dir={tmp_path / 'run'}")
    assert err.count("\n") == 1 and "malloc.top_pad_mb must be a positive whole number of MiB, got -1" in err, err


def test_data_base_is_not_offered_as_a_choice():
    assert "base" not in group_options("data") and "synthetic" in group_options("data")


def test_cli_refusal_exits_2_with_one_line_end_to_end():
    result = subprocess.run([sys.executable, "-m", "mutual_seg.run", "trainer.max_epoch=1"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert "trainer.max_epochs" in result.stderr


def test_train_false_without_checkpoint_is_refused(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="train=false .* no ckpt_path"):
        train(make_cfg(["train=false"]))
    assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [(["resume=true", "overwrite=true"], "pass only one"), (["resume=true", "ckpt_path=x.ckpt"], "drop ckpt_path"),
     (["train=false", "test=false"], "nothing to do")],
)
def test_contradicting_switches_are_refused(make_cfg, overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        train(make_cfg(overrides))


def test_existing_run_folder_is_refused_before_hydra_touches_it(capsys, monkeypatch, tmp_path):
    run_dir = tmp_path / "earlier"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"status": "ok"}\n')
    err = _main(capsys, monkeypatch, f"hydra.run.dir={run_dir}")
    assert f"run folder {run_dir} already holds an earlier run's results (summary.json)" in err
    assert "resume=true" in err and "overwrite=true" in err
    assert sorted(p.name for p in run_dir.iterdir()) == ["summary.json"]  # Hydra wrote nothing there
    assert (run_dir / "summary.json").read_text() == '{"status": "ok"}\n'


def test_second_run_into_the_same_folder_is_refused_and_overwrite_replaces(make_cfg, tmp_path):
    cfg = make_cfg(["trainer.limit_train_batches=1", "test=false"])
    train(cfg)
    out = tmp_path / "run"
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(OutputError, match="already holds an earlier run's results"):
        train(make_cfg(["trainer.limit_train_batches=1", "test=false"]))
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before
    train(make_cfg(["trainer.limit_train_batches=1", "test=false", "seed=7", "overwrite=true"]))
    assert (out / "checkpoints" / "last.ckpt").read_bytes() != before
    assert OmegaConf.load(out / "config.yaml").seed == 7
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no best-v1


# -- every config key named in a message exists --------------------------------------------------------------
_KEY = re.compile(r"(?<![\w./-])((?:data|model|module|trainer|optim|loss|modality|paths|callbacks|logger)"
                  r"\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _literals() -> list[tuple[str, str]]:
    """(file, text) of every string literal in the package, docstrings left out: where messages are written."""
    found = []
    for path in Path("mutual_seg").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr)}
        found += [(str(path), node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]
    return found


def _named_keys() -> dict[str, set[str]]:
    """Config keys (``data.split.fixed_test`` ...) named in the package's messages."""
    found: dict[str, set[str]] = {}
    for path, text in _literals():
        for key in _KEY.findall(text):
            found.setdefault(key, set()).add(path)
    return found


@cache
def _composed(group: str, choice: str):
    return compose([f"{group}={choice}"] if choice else [], hydra=True)


def test_every_config_key_named_in_a_message_exists():
    keys = _named_keys()
    assert "data.preprocessing.label_allowed" in keys and "data.split.fixed_test" in keys  # the scan sees hints
    missing = []
    for key, files in sorted(keys.items()):
        group = key.split(".")[0]
        choices = [""] + (group_options(group) if (Path("conf") / group).is_dir() else [])
        if not any(OmegaConf.select(_composed(group, c), key, default="<missing>", throw_on_resolution_failure=False)
                   != "<missing>" for c in choices):
            missing.append(f"{key} ({', '.join(sorted(files))})")
    assert not missing, missing


def test_no_message_names_the_old_wrong_keys():
    wrong = [(path, text) for path, text in _literals()
             if "data.label." in text or re.search(r"(?<![\w.])split\.(fixed_test|val_fraction)", text)]
    assert not wrong, wrong


def test_resume_skips_a_job_that_finished_earlier(make_cfg, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    rows = [{"subject": "S1", **{m: 0.5 for m in METRIC_NAMES}}]
    summary = write_results(rows, out, {"fold": 0})
    assert train(make_cfg(["resume=true"])) == summary  # finished earlier: skipped, nothing rewritten
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "summary.json"]


def test_resume_reruns_a_job_whose_metrics_csv_was_lost(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    write_results([{"subject": "S1", **{m: 0.5 for m in METRIC_NAMES}}], out)
    assert finished_summary(out) is not None
    (out / "metrics.csv").unlink()
    assert finished_summary(out) is None
    write_untested(out, {"fold": 0})  # test=false: finished without metrics
    assert finished_summary(out)["metrics"] == {}


def test_valid_overrides_pass_the_check():
    from mutual_seg.runtime.preflight import preflight

    args = ["-m", "experiment=ablation", "data.slices.patch_size=null", "data.augment=null", "optim.scheduler=null",
            "modality=glob(*)", "fold=range(0,2)", "data.split.fixed_test=all", "+trainer.fast_dev_run=true",
            "~callbacks.progress_bar", "model.net.features=[4,8,16]", "trainer.max_epochs=3", "optim.optimizer.lr=1e-3"]
    assert preflight(args) == args


# -- what torch refuses, and data that cannot be read, stop the command before any job (issue 18) ---------------
def test_a_value_torch_refuses_is_one_line_naming_the_key(capsys, monkeypatch, tmp_path, tiny_data):
    run_dir = tmp_path / "run"
    err = _main(capsys, monkeypatch, "optim.optimizer.lr=-1", f"data.layout.root={tiny_data}", f"hydra.run.dir={run_dir}")
    assert err == "error: optim.optimizer.lr=-1: Invalid learning rate: -1; change that setting\n", err
    assert not run_dir.exists()  # refused before Hydra made the run folder


def test_a_value_torch_refuses_in_one_job_of_a_sweep_names_the_key(make_cfg):
    with pytest.raises(ConfigError, match=r"^optim.optimizer.lr=-0.5: Invalid learning rate"):
        train(make_cfg(["optim.optimizer.lr=-0.5"]))  # the job checks its own values (sweeps, Python callers)
    with pytest.raises(ConfigError, match=r"^optim.scheduler.foo=2: .*unexpected keyword argument 'foo'"):
        train(make_cfg(["optim=adam_cosine", "+optim.scheduler.foo=2"]))


def test_a_sweep_without_data_says_so_once_before_the_first_job(capsys, monkeypatch, tmp_path):
    sweep = tmp_path / "sweep"
    err = _main(capsys, monkeypatch, "-m", "modality=flair,t2w", f"data.layout.root={tmp_path / 'none'}",
                f"hydra.sweep.dir={sweep}")
    assert err.count("\n") == 1 and f"data root {tmp_path / 'none'} does not exist" in err, err
    assert not sweep.exists()  # no job started: no folder, no network built


def test_a_sweep_without_data_prints_nothing_else(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mutual_seg.run", "-m", "modality=flair,t2w",
                           f"data.layout.root={tmp_path / 'none'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1 and "does not exist" in done.stderr, done.stderr
