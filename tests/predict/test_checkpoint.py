"""Safe checkpoint loading: planted objects refused unread, foreign and older files named, differing fields listed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mutual_seg.checkpoint import (
    CHECKPOINT_FORMAT,
    check_compatible,
    differences,
    load_checkpoint,
    stamp,
)
from mutual_seg.errors import CheckpointError

HPARAMS = {
    "net": {"_target_": "mutual_seg.models.network.SegNet", "modalities": ["flair", "t2w"], "features": [4, 8, 16],
            "fusion": {"_target_": "mutual_seg.models.fusion.MutualAttentionFusion", "_partial_": True}},
    "loss": {"_target_": "mutual_seg.losses.DiceLoss"},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    "modalities": ["flair", "t2w"],
}


class Planted:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def save(path: Path, **extra) -> Path:
    checkpoint = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": dict(HPARAMS)}
    stamp(checkpoint)
    checkpoint.update(extra)
    torch.save(checkpoint, path)
    return path


def test_a_stamped_checkpoint_loads_with_weights_only(tmp_path):
    loaded = load_checkpoint(save(tmp_path / "ok.ckpt"))
    assert loaded["mutual_seg"]["format"] == CHECKPOINT_FORMAT and torch.equal(loaded["state_dict"]["w"], torch.zeros(2))


def test_a_checkpoint_from_before_the_output_setting_reads_as_residual(tmp_path):
    loaded = load_checkpoint(save(tmp_path / "old.ckpt"))  # HPARAMS' fusion has no `output`: written before it
    assert loaded["hyper_parameters"]["net"]["fusion"]["output"] == "residual"
    # nor `output_prior` (the output bias's start): PyTorch's, which the trained weights replace anyway
    assert loaded["hyper_parameters"]["net"]["output_prior"] is None


def test_a_planted_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = save(tmp_path / "evil.ckpt", extra=Planted(marker))
    with pytest.raises(CheckpointError, match="refused unread") as info:
        load_checkpoint(path)
    assert not marker.exists()
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_hyper_parameter_naming_a_foreign_callable_is_refused(tmp_path):
    path = tmp_path / "forged.ckpt"
    checkpoint = {"state_dict": {}, "hyper_parameters": {**HPARAMS, "loss": {"_target_": "os.system", "_args_": ["x"]}}}
    stamp(checkpoint)
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"'os.system' \(loss._target_\)"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b"not a checkpoint at all"), "truncated or not a checkpoint"),
        (lambda p: p.write_bytes(save(p).read_bytes()[:500]), "truncated or not a checkpoint"),
        (lambda p: torch.save({"weights": torch.ones(1)}, p), "not a Lightning checkpoint"),
        (lambda p: torch.save({"state_dict": {}, "hyper_parameters": HPARAMS}, p), r"older mutual_seg \(format 1\)"),
        (lambda p: torch.save({"state_dict": {}, "mutual_seg": {"format": 99, "version": "9.0"}}, p), "format 99"),
    ],
    ids=["garbage", "truncated", "foreign", "older", "newer"],
)
def test_unusable_files_give_one_line_naming_the_file(tmp_path, make, expected):
    path = tmp_path / "model.ckpt"
    make(path)
    with pytest.raises(CheckpointError, match=expected) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_folder_is_reported_as_a_folder_with_the_checkpoints_inside(tmp_path):
    save((tmp_path / "checkpoints").mkdir() or tmp_path / "checkpoints" / "best.ckpt")
    with pytest.raises(CheckpointError, match=r"is a folder, not a file \(it holds checkpoints/best.ckpt\)"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere.ckpt")


def test_a_mismatch_names_the_differing_fields_not_the_whole_configs():
    wanted = {**HPARAMS, "net": {**HPARAMS["net"], "features": [16, 32, 64]}, "modalities": ["flair"]}
    with pytest.raises(CheckpointError) as info:
        check_compatible("a.ckpt", HPARAMS, wanted)
    text = str(info.value)
    assert "net.features: checkpoint [4, 8, 16], this run [16, 32, 64]" in text
    assert "modalities: checkpoint ['flair', 't2w'], this run ['flair']" in text
    assert "MutualAttentionFusion" not in text and len(text) < 400
    assert differences({"a": (1, 2)}, {"a": [1, 2]}) == []  # tuples and lists of a plain dict compare equal
