"""``module.largest_component``: off, on, or decided on validation (``auto``), carried by the checkpoint to the
test step and to ``predict``; old checkpoints keep every component; a bad value is one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mutual_seg.checkpoint import (
    AtomicCheckpointIO,
    load_checkpoint,
    load_ensemble,
    load_module,
    upgrade,
)
from mutual_seg.errors import ConfigError
from mutual_seg.inference import InferenceSettings, choose_largest_component, segment
from mutual_seg.predict.cli import parse_args
from mutual_seg.results import RunFolder, read_run


def test_the_rule_keeps_the_step_unless_validation_loses_by_it():
    assert choose_largest_component(0.80, 0.85)  # a gain: kept (nnU-Net would keep it too)
    assert choose_largest_component(0.80, 0.80)  # a tie: no validation subject had a second component; the prior
    assert not choose_largest_component(0.80, 0.79)  # a validation subject lost a real second lesion: off


def test_segment_keeps_only_the_largest_component_when_told():
    probs = torch.zeros(6, 1, 12, 12)
    probs[1:4, 0, 1:6, 1:6] = 0.9  # 75 voxels: the tumour
    probs[4:6, 0, 9:11, 9:11] = 0.8  # 8 voxels elsewhere
    settings = {"threshold": 0.5, "batch_size": 4, "min_component_mm3": 0.0, "tta": False}
    both = segment(probs, (1.0, 1.0, 1.0), InferenceSettings(**settings, largest_component=False))
    one = segment(probs, (1.0, 1.0, 1.0), InferenceSettings(**settings, largest_component=True))
    assert both.sum() == 83 and one.sum() == 75 and one[1:4, 0, 1:6, 1:6].all()


def _save(module, path, postprocess=None, drop_key=False):
    hparams = dict(module.hparams)
    if drop_key:
        del hparams["largest_component"]
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": hparams}
    if postprocess is not None:
        checkpoint["postprocess"] = postprocess
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
    return path


def test_the_checkpoint_carries_the_decision_to_predict_and_old_ones_keep_every_component(make_cfg, tmp_path):
    torch.manual_seed(0)
    auto = instantiate(make_cfg(["module.largest_component=auto"]).module, _recursive_=False)
    assert not auto.largest_component  # undecided until a validation has run
    on = {"largest_component": True, "val_dice": 0.8, "val_dice_largest": 0.8, "epoch": 3}
    off = {"largest_component": False, "val_dice": 0.8, "val_dice_largest": 0.7, "epoch": 3}
    loaded = load_module(_save(auto, tmp_path / "on.ckpt", on))
    assert loaded.largest_component and loaded.inference_settings.largest_component and loaded.postprocess == on
    assert not load_module(_save(auto, tmp_path / "off.ckpt", off)).inference_settings.largest_component
    # an ensemble keeps only the largest component when every member does; the command line overrides both ways
    assert load_ensemble([tmp_path / "on.ckpt", tmp_path / "on.ckpt"], torch.device("cpu")).largest_component
    mixed = load_ensemble([tmp_path / "on.ckpt", tmp_path / "off.ckpt"], torch.device("cpu"))
    assert not mixed.largest_component and not mixed.settings(tta=False, largest_component=None).largest_component
    assert mixed.settings(tta=False, largest_component=True).largest_component
    # fixed settings ignore a decision; a checkpoint older than the setting kept every component
    fixed = instantiate(make_cfg(["module.largest_component=true"]).module, _recursive_=False)
    assert load_module(_save(fixed, tmp_path / "fixed.ckpt", off)).largest_component
    old = load_module(_save(auto, tmp_path / "old.ckpt", on, drop_key=True))
    assert old.hparams["largest_component"] is False and not old.largest_component
    hparams: dict = {"threshold": 0.5}
    upgrade(hparams)
    assert hparams["largest_component"] is False


@pytest.mark.parametrize(("flags", "expected"), [((), None), (("--largest-component",), True),
                                                 (("--no-largest-component",), False)])
def test_predict_takes_the_checkpoints_choice_unless_told(tmp_path, flags, expected):
    settings = parse_args(["--checkpoint", "m.ckpt", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                           *flags])
    assert settings.largest_component is expected


def test_a_bad_value_is_a_config_error(make_cfg):
    from mutual_seg.lit import SegModule

    hparams = dict(instantiate(make_cfg().module, _recursive_=False).hparams)
    with pytest.raises(ConfigError, match="module.largest_component must be false, true or auto, got 'sometimes'"):
        SegModule(**{**hparams, "largest_component": "sometimes"})


def test_a_real_run_decides_on_validation_and_tests_with_its_best_checkpoints_choice(make_cfg, caplog):
    """Trained for real (2 epochs): the best checkpoint holds the validation of its epoch, its decision follows the
    rule from the two Dice values, and that Dice is the one the checkpoint was picked by."""
    from mutual_seg.run import train

    cfg = make_cfg(["module.largest_component=auto", "trainer.max_epochs=2"])
    caplog.set_level("INFO", logger="mutual_seg.lit")
    train(cfg)
    best = load_checkpoint(RunFolder(cfg.paths.output_dir).best_checkpoint)
    decided = best["postprocess"]
    assert decided["largest_component"] == choose_largest_component(decided["val_dice"], decided["val_dice_largest"])
    picked = next(v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint"))["best_model_score"]
    assert np.isclose(float(picked), decided["val_dice"], atol=1e-6)
    assert decided["epoch"] == best["epoch"]
    assert load_module(RunFolder(cfg.paths.output_dir).best_checkpoint).largest_component == decided["largest_component"]
    # the test step ran with the best checkpoint's decision: summary.json and the log say which
    assert read_run(cfg.paths.output_dir).summary["postprocess"] == decided
    kept = "only the largest component kept" if decided["largest_component"] else "every component kept"
    assert any(f"largest_component=auto: {kept}" in r.getMessage() for r in caplog.records)
