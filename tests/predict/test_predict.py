"""`mutual-seg-predict` end to end on the tiny synthetic set, from one tiny checkpoint trained once per session (``run`` in conftest)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mutual_seg.metrics import segmentation_metrics
from mutual_seg.predict import main


def predict(*args: str | Path) -> int:
    return main([str(a) for a in args])


def subject_dir(tiny_data: Path, sid: str = "UCSF-PDGM-0001") -> Path:
    return tiny_data / f"{sid}_nifti"


def test_round_trip_keeps_the_input_geometry_and_gives_masks_probabilities_and_attention(tiny_data, variants, tmp_path):
    folder = subject_dir(tiny_data)
    assert predict("--checkpoint", variants["best"], "--input", folder, "--output", tmp_path,
                   "--save-probabilities", "--save-attention") == 0
    flair = nib.load(folder / "UCSF-PDGM-0001_FLAIR.nii.gz")
    seg = nib.load(tmp_path / "UCSF-PDGM-0001_seg.nii.gz")
    prob = nib.load(tmp_path / "UCSF-PDGM-0001_prob.nii.gz")
    att = nib.load(tmp_path / "UCSF-PDGM-0001_attention.nii.gz")
    for img in (seg, prob):
        assert img.shape == flair.shape and np.allclose(img.affine, flair.affine)
        assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(flair.affine)
    assert seg.get_data_dtype() == np.uint8 and set(np.unique(np.asanyarray(seg.dataobj))) <= {0, 1}
    p = np.asanyarray(prob.dataobj)
    assert prob.get_data_dtype() == np.float32 and p.min() >= 0 and p.max() <= 1
    np.testing.assert_array_equal(np.asanyarray(seg.dataobj), (p >= 0.5).astype(np.uint8))
    a = np.asanyarray(att.dataobj)
    assert att.shape == (*flair.shape, 2) and np.allclose(a.sum(axis=3), 1, atol=1e-5)
    report = json.loads((tmp_path / "predict.json").read_text())
    [row] = report["subjects"]
    assert row["modalities_used"] == ["flair", "t2w"] and row["attention_order"] == ["flair", "t2w"]
    assert row["mask"]["source"] == "parenchyma" and report["checkpoints"][0]["format"] == 2
    assert {"mutual_seg", "torch", "nibabel"} <= set(report["versions"]) and row["seconds"] > 0


def test_predict_gives_the_masks_of_the_test_step_of_the_run_that_made_the_checkpoint(run, tiny_data, variants, tmp_path):
    with open(run / "metrics.csv") as handle:
        rows = {r["subject"]: r for r in csv.DictReader(handle)}
    root = tmp_path / "test_subjects"
    root.mkdir()
    for sid in rows:
        (root / f"{sid}_nifti").symlink_to(subject_dir(tiny_data, sid))
    assert predict("--checkpoint", variants["best"], "--input", root, "--output", tmp_path / "out",
                   "--precision", "32") == 0  # float32: the test step ran in float32
    for sid, row in rows.items():
        seg = np.asanyarray(nib.load(tmp_path / "out" / f"{sid}_seg.nii.gz").dataobj).astype(bool)
        label_img = nib.load(subject_dir(tiny_data, sid) / f"{sid}_tumor_segmentation.nii.gz")
        label = np.asanyarray(label_img.dataobj) > 0
        spacing = label_img.header.get_zooms()
        ours = segmentation_metrics(np.moveaxis(seg, -1, 0), np.moveaxis(label, -1, 0), (spacing[2], spacing[0], spacing[1]))
        for metric in ("Dc", "Re", "Pr", "Vs"):
            assert float(row[metric]) == pytest.approx(ours[metric], abs=1e-9, nan_ok=True), (sid, metric)


def test_an_ensemble_averages_the_probabilities_of_its_checkpoints(tiny_data, variants, tmp_path):
    folder = subject_dir(tiny_data, "UCSF-PDGM-0002")
    probs = []
    for name in ("best", "other"):
        assert predict("--checkpoint", variants[name], "--input", folder, "--output", tmp_path / name, "--save-probabilities") == 0
        probs.append(np.asanyarray(nib.load(tmp_path / name / "UCSF-PDGM-0002_prob.nii.gz").dataobj))
    assert predict("--checkpoint", variants["best"], "--checkpoint", variants["other"], "--input", folder,
                   "--output", tmp_path / "both", "--save-probabilities") == 0
    both = np.asanyarray(nib.load(tmp_path / "both" / "UCSF-PDGM-0002_prob.nii.gz").dataobj)
    assert not np.allclose(probs[0], probs[1])
    np.testing.assert_allclose(both, (probs[0] + probs[1]) / 2, atol=1e-6)
    assert len(json.loads((tmp_path / "both" / "predict.json").read_text())["checkpoints"]) == 2


def test_tta_and_largest_component_keep_shape_and_range(tiny_data, variants, tmp_path):
    folder = subject_dir(tiny_data, "UCSF-PDGM-0003")
    assert predict("--checkpoint", variants["best"], "--input", folder, "--output", tmp_path, "--tta",
                   "--largest-component", "--save-probabilities") == 0
    prob = np.asanyarray(nib.load(tmp_path / "UCSF-PDGM-0003_prob.nii.gz").dataobj)
    seg = np.asanyarray(nib.load(tmp_path / "UCSF-PDGM-0003_seg.nii.gz").dataobj)
    assert prob.shape == seg.shape == nib.load(folder / "UCSF-PDGM-0003_T2.nii.gz").shape
    assert prob.min() >= 0 and prob.max() <= 1 and set(np.unique(seg)) <= {0, 1}
    assert json.loads((tmp_path / "predict.json").read_text())["inference"]["tta"] is True


def test_explicit_files_without_a_mask_estimate_one_and_say_so(tiny_data, variants, tmp_path, capsys):
    folder = subject_dir(tiny_data, "UCSF-PDGM-0004")
    assert predict("--checkpoint", variants["best"], "--flair", folder / "UCSF-PDGM-0004_FLAIR.nii.gz",
                   "--t2w", folder / "UCSF-PDGM-0004_T2.nii.gz", "--output", tmp_path) == 0
    assert "brain mask estimated" in capsys.readouterr().err
    [row] = json.loads((tmp_path / "predict.json").read_text())["subjects"]
    assert row["id"] == "UCSF-PDGM-0004" and row["mask"] == {"source": "estimated", "path": None}


def test_existing_outputs_are_refused_unless_overwrite(tiny_data, variants, tmp_path, capsys):
    args = ("--checkpoint", variants["best"], "--input", subject_dir(tiny_data), "--output", tmp_path)
    assert predict(*args) == 0
    seg = tmp_path / "UCSF-PDGM-0001_seg.nii.gz"
    before = seg.stat().st_mtime_ns
    capsys.readouterr()
    assert predict(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    assert seg.stat().st_mtime_ns == before
    assert predict(*args, "--overwrite") == 0


@pytest.mark.parametrize(
    ("ckpt", "flags", "code", "expected"),
    [
        ("best", ["--flair"], 2, "needs flair, t2w; it was not trained with modality_dropout"),
        ("dropout", ["--flair"], 0, None),
        ("best", ["--flair", "--t2w", "--t1"], 2, "does not use --t1"),
    ],
    ids=["subset-refused", "subset-with-dropout", "extra-modality"],
)
def test_missing_and_extra_modalities(tiny_data, variants, tmp_path, capsys, ckpt, flags, code, expected):
    folder = subject_dir(tiny_data, "UCSF-PDGM-0005")
    files = {"--flair": "FLAIR", "--t2w": "T2", "--t1": "T1"}
    images = [a for f in flags for a in (f, folder / f"UCSF-PDGM-0005_{files[f]}.nii.gz")]
    assert predict("--checkpoint", variants[ckpt], *images, "--output", tmp_path) == code
    err = capsys.readouterr().err
    if expected:
        assert expected in err and err.startswith("error:")
    else:
        [row] = json.loads((tmp_path / "predict.json").read_text())["subjects"]
        assert row["modalities_used"] == ["flair"] and row["modalities_missing"] == ["t2w"]
        assert "predicted from flair only" in err


def test_a_batch_reports_a_bad_subject_and_goes_on(tiny_data, variants, tmp_path, capsys):
    root = tmp_path / "batch"
    for sid in ("UCSF-PDGM-0006", "UCSF-PDGM-0007"):
        shutil.copytree(subject_dir(tiny_data, sid), root / f"{sid}_nifti")
    (root / "UCSF-PDGM-0006_nifti" / "UCSF-PDGM-0006_T2.nii.gz").unlink()
    assert predict("--checkpoint", variants["best"], "--input", root, "--output", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "UCSF-PDGM-0006" in err and "no t2w image" in err and "1 of 2 subject(s) failed" in err
    assert (tmp_path / "out" / "UCSF-PDGM-0007_seg.nii.gz").is_file()
    report = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert [f["id"] for f in report["failures"]] == ["UCSF-PDGM-0006"]


def _planted(path: Path, marker: Path, base: Path) -> None:
    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    checkpoint = torch.load(base, weights_only=True)
    checkpoint["hyper_parameters"]["extra"] = Planted()
    torch.save(checkpoint, path)


@pytest.mark.parametrize("case", ["planted", "truncated", "folder", "missing", "no-subject", "geometry"])
def test_bad_input_is_one_line_naming_the_file_and_exit_2(tiny_data, variants, tmp_path, capsys, case):
    ckpt, folder = variants["best"], subject_dir(tiny_data, "UCSF-PDGM-0008")
    inputs: list = ["--input", folder]
    if case == "planted":
        ckpt = tmp_path / "evil.ckpt"
        _planted(ckpt, tmp_path / "pwned", variants["best"])
    elif case == "truncated":
        ckpt = tmp_path / "cut.ckpt"
        ckpt.write_bytes(variants["best"].read_bytes()[:4000])
    elif case == "folder":
        ckpt = variants["best"].parents[1]
    elif case == "missing":
        ckpt = tmp_path / "nowhere.ckpt"
    elif case == "no-subject":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        inputs = ["--input", tmp_path / "empty"]
    else:  # a T2 on another grid than the FLAIR
        flair = nib.load(folder / "UCSF-PDGM-0008_FLAIR.nii.gz")
        small = nib.Nifti1Image(np.ones((10, 10, 10), np.float32), flair.affine)
        nib.save(small, tmp_path / "t2.nii.gz")
        inputs = ["--flair", folder / "UCSF-PDGM-0008_FLAIR.nii.gz", "--t2w", tmp_path / "t2.nii.gz"]
    assert predict("--checkpoint", ckpt, *inputs, "--output", tmp_path / "out") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    named = {"no-subject": tmp_path / "empty", "geometry": tmp_path / "t2.nii.gz"}.get(case, ckpt)
    assert lines[0].startswith("error:") and str(named) in lines[0], lines
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out" / "UCSF-PDGM-0008_seg.nii.gz").exists()


def test_a_manifest_csv_without_labels_is_an_input(tiny_data, variants, tmp_path):
    folder = subject_dir(tiny_data, "UCSF-PDGM-0009")
    manifest = tmp_path / "new_patients.csv"
    manifest.write_text("id,flair,t2w,mask\n"
                        f"patient-a,{folder}/UCSF-PDGM-0009_FLAIR.nii.gz,{folder}/UCSF-PDGM-0009_T2.nii.gz,"
                        f"{folder}/UCSF-PDGM-0009_brain_parenchyma_segmentation.nii.gz\n")
    assert predict("--checkpoint", variants["best"], "--input", manifest, "--output", tmp_path / "out") == 0
    [row] = json.loads((tmp_path / "out" / "predict.json").read_text())["subjects"]
    assert row["id"] == "patient-a" and row["mask"]["source"] == "parenchyma"
    assert (tmp_path / "out" / "patient-a_seg.nii.gz").is_file()


def test_bf16_fast_path_stays_close_to_full_precision(tiny_data, variants, tmp_path):
    folder = subject_dir(tiny_data, "UCSF-PDGM-0010")
    probs = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / precision
        assert predict("--checkpoint", variants["best"], "--input", folder, "--output", out, "--save-probabilities",
                       "--precision", precision) == 0
        probs[precision] = np.asanyarray(nib.load(out / "UCSF-PDGM-0010_prob.nii.gz").dataobj)
        assert json.loads((out / "predict.json").read_text())["precision"] == precision
    np.testing.assert_allclose(probs["bf16-mixed"], probs["32-true"], atol=2e-2)
