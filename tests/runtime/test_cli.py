"""The one convention of every console script: a user error is one `error:` line and exit code 2 (mutual_seg/cli.py)."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mutual_seg.cli import run_main, user_error
from mutual_seg.data.check import main as check_main
from mutual_seg.data.synthetic.cli import main as synthetic_main
from mutual_seg.errors import ConfigError, DataError
from mutual_seg.predict import main as predict_main
from mutual_seg.report.cli import main as report_main


@pytest.mark.parametrize(("main", "argv", "expected"), [
    (predict_main, ["--checkpoint", "x.ckpt"], "the following arguments are required: --output"),
    (report_main, ["runs", "--overlays", "many"], "argument --overlays: invalid int value: 'many'"),
    (check_main, ["data", "--layout", "nope"], "argument --layout: invalid choice: 'nope'"),
    (synthetic_main, ["--out", "x"], "the following arguments are required: --subjects"),
])
def test_every_console_script_answers_a_usage_error_in_one_line(main, argv, expected, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and expected in captured.err, captured.err
    assert captured.out == ""


def test_run_main_passes_codes_through_and_keeps_bugs_loud(capsys):
    assert run_main(lambda: None) == 0 and run_main(lambda: 3) == 3

    def user() -> int:
        raise DataError("subject A, file a.nii.gz: truncated; re-export it")

    assert run_main(user) == 2
    assert capsys.readouterr().err == "error: subject A, file a.nii.gz: truncated; re-export it\n"
    with pytest.raises(ZeroDivisionError):
        run_main(lambda: 1 // 0)  # a bug keeps its traceback


def test_a_value_error_raised_while_hydra_builds_a_node_names_its_key():
    cfg = OmegaConf.create({"optim": {"sched": {"_target_": "torch.optim.lr_scheduler.StepLR", "optimizer": {
        "_target_": "torch.optim.SGD", "params": [], "lr": -2.0}, "step_size": 1}}})
    with pytest.raises(Exception) as caught:
        instantiate(cfg.optim.sched)
    found = user_error(caught.value)
    assert isinstance(found, ConfigError) and str(found).startswith("optim.sched.optimizer: ") and "-2.0" in str(found)
    assert user_error(RuntimeError("a bug")) is None
