"""``mutual-seg-export nnunet`` (our folds in splits_final.json) and ``mutual-seg-evaluate`` (the test step's metrics)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from formats_data import write_msd
from hydra.utils import instantiate

from mutual_seg.data.compose import compose_run
from mutual_seg.evaluate import main as evaluate
from mutual_seg.export.cli import main as export
from mutual_seg.predict import main as predict


def _data_args(tiny_data, tmp_path) -> list[str]:
    return [f"data.layout.root={tiny_data}", "n_folds=2", f"paths.cache_dir={tmp_path / 'cache'}"]


def test_export_writes_nnunet_raw_with_our_folds(tiny_data, tmp_path, capsys):
    out = tmp_path / "Dataset501_Tiny"
    assert export(["nnunet", "--data", "synthetic", "--out", str(out), *_data_args(tiny_data, tmp_path)]) == 0
    assert "nnUNetv2_train 501 2d FOLD" in capsys.readouterr().out
    info = json.loads((out / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "flair", "1": "t2w"} and info["labels"] == {"background": 0, "tumour": 1}
    assert info["numTraining"] == 10 and info["file_ending"] == ".nii.gz"
    image = out / "imagesTr" / "UCSF-PDGM-0003_0001.nii.gz"
    assert image.is_symlink() and image.resolve() == tiny_data / "UCSF-PDGM-0003_nifti" / "UCSF-PDGM-0003_T2.nii.gz"
    label = np.asanyarray(nib.load(out / "labelsTr" / "UCSF-PDGM-0003.nii.gz").dataobj)
    source = np.asanyarray(nib.load(tiny_data / "UCSF-PDGM-0003_nifti" / "UCSF-PDGM-0003_tumor_segmentation.nii.gz").dataobj)
    assert label.dtype == np.uint8 and np.array_equal(label, (source > 0).astype(np.uint8))
    # splits_final.json = the folds our runs use: nnU-Net trains on our training subjects, validates on our test ones
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 2
    for fold, split in enumerate(splits):
        data = instantiate(compose_run("synthetic", [*_data_args(tiny_data, tmp_path), f"fold={fold}"]).data)
        data.setup()
        assert split == {"train": sorted(s.id for s in data.subjects["train"]),
                         "val": sorted(s.id for s in data.subjects["test"])}
    # our own nnunet reader reads the export back
    back = instantiate(compose_run("nnunet", [f"data.layout.root={out}"]).data.layout)
    assert back.modalities == ("flair", "t2w") and len(back.find(["flair", "t2w"])) == 10


def test_export_writes_a_4d_files_volume_and_refuses_bad_names_and_overwrites(tiny_data, tmp_path, capsys):
    task = write_msd(tiny_data, tmp_path / "Task01_Tiny")
    out = tmp_path / "Dataset502_FromMSD"
    args = ["nnunet", "--data", "msd", f"data.layout.root={task}", "modality=t2w", "n_folds=2", "--copy", "--out"]
    assert export([*args, str(out)]) == 0
    written = nib.load(out / "imagesTr" / "UCSF-PDGM-0002_0000.nii.gz")
    stack = nib.load(task / "imagesTr" / "UCSF-PDGM-0002.nii.gz")
    assert written.shape == (48, 48, 24) and not (out / "imagesTr" / "UCSF-PDGM-0002_0000.nii.gz").is_symlink()
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(stack.dataobj)[..., 3])
    capsys.readouterr()
    assert export([*args, str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert export([*args, str(tmp_path / "tiny")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DatasetNNN_Name" in err


@pytest.mark.slow
def test_nnunet_accepts_the_export(tiny_data, tmp_path):
    """nnU-Net's own dataset integrity check (needs the optional extra: pip install --no-deps nnunetv2 ...)."""
    pytest.importorskip("nnunetv2")
    raw = tmp_path / "raw"
    assert export(["nnunet", "--data", "synthetic", "--out", str(raw / "Dataset503_Tiny"),
                   *_data_args(tiny_data, tmp_path)]) == 0
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(tmp_path / "pre"),
           "nnUNet_results": str(tmp_path / "res")}
    command = [os.path.join(os.path.dirname(sys.executable), "nnUNetv2_extract_fingerprint"), "-d", "503",
               "--verify_dataset_integrity", "-np", "1"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "your dataset is most likely OK" in result.stdout


def test_evaluate_reproduces_the_test_step_and_pairs_in_the_report(run, tiny_data, variants, tmp_path, capsys):
    """Masks written by mutual-seg-predict, scored by mutual-seg-evaluate: metrics.csv byte for byte the run's."""
    from mutual_seg.report.build import make_report

    tested = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for sid in tested:
        (inputs / f"{sid}_nifti").symlink_to(tiny_data / f"{sid}_nifti")
    assert predict(["--checkpoint", str(variants["best"]), "--input", str(inputs), "--output", str(tmp_path / "pred"),
                    "--precision", "32"]) == 0
    arms = tmp_path / "arms"
    assert evaluate(["--pred", str(tmp_path / "pred"), "--data", "synthetic", "--out", str(arms / "ours_again"),
                     "--name", "predicted", *_data_args(tiny_data, tmp_path)]) == 0
    assert (arms / "ours_again" / "metrics.csv").read_text() == (run / "metrics.csv").read_text()
    summary = json.loads((arms / "ours_again" / "summary.json").read_text())
    assert summary["modality_set"] == "predicted" and summary["fold"] == 0 and summary["n_subjects"] == len(tested)
    shutil.copytree(run, arms / "run", ignore=shutil.ignore_patterns("checkpoints", "cache"))
    report = make_report(arms, tmp_path / "report", n_overlays=0)
    [dice] = [c for c in report.comparisons if c.metric == "Dc"]
    assert dice.n_pairs == len(tested)  # every test subject paired between the run and the evaluated masks
    capsys.readouterr()
    # a mask on another grid than the reference image: one line naming subject and file
    bad = tmp_path / "pred" / f"{tested[0]}_seg.nii.gz"
    image = nib.load(bad)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj)[:, :, :-1], image.affine), bad)
    assert evaluate(["--pred", str(tmp_path / "pred"), "--data", "synthetic", "--out", str(tmp_path / "e2"),
                     *_data_args(tiny_data, tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: subject {tested[0]}, file {bad}: shape (48, 48, 23) differs")
    bad.unlink()
    assert evaluate(["--pred", str(tmp_path / "pred"), "--data", "synthetic", "--out", str(tmp_path / "e3"),
                     *_data_args(tiny_data, tmp_path)]) == 2
    assert f"no mask for 1 of {len(tested)} test subject(s) ({tested[0]})" in capsys.readouterr().err


def test_evaluate_reads_label_valued_masks_the_reference_itself_scores_perfectly(tiny_data, tmp_path, capsys):
    """nnU-Net-style masks (the data set's label values, <id>.nii.gz): the references themselves give Dc = 1."""
    pred = tmp_path / "labels_as_masks"
    pred.mkdir()
    for folder in sorted(tiny_data.glob("*_nifti")):
        sid = folder.name.removesuffix("_nifti")
        (pred / f"{sid}.nii.gz").symlink_to(folder / f"{sid}_tumor_segmentation.nii.gz")
    assert evaluate(["--pred", str(pred), "--data", "synthetic", "--out", str(tmp_path / "eval"), "--subjects", "all",
                     *_data_args(tiny_data, tmp_path)]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["n_subjects"] == 10 and summary["metrics"]["Dc"]["mean"] == 1.0 and summary["metrics"]["Dc"]["std"] == 0.0
    assert summary["modality_set"] == "labels_as_masks" and summary["evaluated_subjects"] == "all"


@pytest.mark.parametrize("module", ["mutual_seg.export", "mutual_seg.evaluate"])
def test_python_m_entry_points_give_one_error_line_and_exit_2(module):
    result = subprocess.run([sys.executable, "-m", module, "nnunet"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
