"""nnU-Net raw, Decathlon (4D) and BIDS data read where they are: readers, labels, bad input, check, train/test/predict."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from formats_data import write_bids, write_msd, write_nnunet
from omegaconf import OmegaConf

from mutual_seg.data.check import main as check
from mutual_seg.data.layouts import BIDSLayout, MSDLayout, NNUNetLayout, UCSFPDGMLayout
from mutual_seg.data.layouts.dataset_json import dataset_labels, read_dataset_json
from mutual_seg.data.preprocess import PreprocessSettings, preprocess_subject
from mutual_seg.data.subject import ChannelPath
from mutual_seg.errors import ConfigError, DataError
from mutual_seg.modalities import modality_of_channel
from mutual_seg.predict import main as predict
from mutual_seg.run import train

SETTINGS = PreprocessSettings("minmax", 0.01, 0.99, [[1, 2, 3, 4]], [0, 1, 2, 3, 4])
BIDS_PATTERNS = ("derivatives/*/{subject}/{session}anat/{prefix}*_dseg.nii.gz",
                 "derivatives/*/{subject}/{session}anat/{prefix}*_desc-brain_mask.nii.gz", None, "ce")


@pytest.fixture(scope="module")
def formats(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    return {"nnunet": write_nnunet(tiny_data, root / "Dataset001_Tiny"), "msd": write_msd(tiny_data, root / "Task01_Tiny"),
            "bids": write_bids(tiny_data, root / "bids")}


def test_channel_names_map_to_modalities_in_every_usual_spelling():
    for names, modality in [(("FLAIR", "T2-FLAIR", "t2_flair", "T2F"), "flair"), (("T2", "T2w", "t2w"), "t2w"),
                            (("T1", "T1w", "T1n"), "t1"), (("T1ce", "T1c", "T1Gd", "t1gd", "T1w-CE"), "t1c")]:
        assert {modality_of_channel(n) for n in names} == {modality}, names
    assert modality_of_channel("CBV") is None and modality_of_channel("CBV", {"cbv": "dwi"}) == "dwi"


def test_readers_find_the_cases_where_they_are(formats, tiny_data):
    nn = NNUNetLayout(formats["nnunet"], "imagesTr", "labelsTr", {})
    assert nn.modalities == ("flair", "t2w")
    cases = nn.find(["t2w"])
    assert len(cases) == 8 and cases[0].images["t2w"].name.endswith("_0001.nii.gz")
    assert [s.id for s in NNUNetLayout(formats["nnunet"], "imagesTs", "labelsTs", {}).find(["flair"])] == [
        "UCSF-PDGM-0009", "UCSF-PDGM-0010"]
    msd = MSDLayout(formats["msd"], "imagesTr", "labelsTr", {})
    assert msd.modalities == ("flair", "t1", "t1c", "t2w")
    [first, *_] = msd.find(["t2w", "flair"])
    assert first.images == {"t2w": ChannelPath(formats["msd"] / "imagesTr" / f"{first.id}.nii.gz", 3),
                            "flair": ChannelPath(formats["msd"] / "imagesTr" / f"{first.id}.nii.gz", 0)}
    sessions = BIDSLayout(formats["bids"], *BIDS_PATTERNS).find(["flair", "t1c"])
    assert len(sessions) == 11 and sessions[-1].id == "sub-10_ses-02" and sessions[-1].patient_id == "sub-10"
    assert sessions[0].images["t1c"].name == "sub-01_ce-gadolinium_T1w.nii.gz" and sessions[0].brain_mask is not None


def test_a_4d_volume_preprocesses_exactly_as_the_same_3d_file(formats, tiny_data):
    """The cache stores one volume per modality: volume 3 of an MSD case is the subject's T2w, voxel for voxel."""
    [msd] = [s for s in MSDLayout(formats["msd"], "imagesTr", "labelsTr", {}).find(["t2w"]) if s.id == "UCSF-PDGM-0003"]
    [ucsf] = [s for s in UCSFPDGMLayout(tiny_data, False, None, True).find(["t2w"]) if s.id == "UCSF-PDGM-0003"]
    ucsf = type(ucsf)(ucsf.id, ucsf.images, ucsf.label)  # the same non-zero normalization mask as the MSD case
    ours, theirs = (preprocess_subject(s, ["t2w"], SETTINGS, require_label=True) for s in (msd, ucsf))
    np.testing.assert_array_equal(ours["images"]["t2w"], theirs["images"]["t2w"])
    np.testing.assert_array_equal(ours["label"], theirs["label"])


def test_labels_come_from_dataset_json_region_based_entries_too(formats, tmp_path):
    assert dataset_labels(str(formats["nnunet"]), "allowed") == [0, 1, 2, 4]
    assert dataset_labels(str(formats["msd"]), "outputs") == [[1, 2, 3]]
    regions = tmp_path / "Dataset002_Regions"
    regions.mkdir()
    (regions / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "FLAIR"}, "file_ending": ".nii.gz", "regions_class_order": [1, 2, 3],
        "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3, "ignore": 4}}))
    info = read_dataset_json(regions, "nnU-Net raw")
    assert info.allowed == [0, 1, 2, 3, 4] and info.whole_tumour == [1, 2, 3]  # the ignore label is never tumour


def test_data_choices_compose_with_the_data_sets_labels(formats, make_cfg, tmp_path):
    from conftest import compose_config

    cfg = compose_config(["data=msd"], formats["msd"], tmp_path / "run")
    assert OmegaConf.to_container(cfg.data.preprocessing, resolve=True)["label_allowed"] == [0, 1, 2, 3]
    assert cfg.module.preprocessing.label_outputs == [[1, 2, 3]] and cfg.data.out_channels == 1
    cfg = compose_config(["data=msd", "data.preprocessing.label_outputs=[[1,2,3],[2,3],[3]]"], formats["msd"],
                         tmp_path / "run")
    assert cfg.data.out_channels == 3  # regions picked by label_outputs


def test_unknown_channel_name_is_one_line_with_the_mapping_to_add(formats, tmp_path, capsys):
    root = tmp_path / "Dataset003_Odd"
    shutil.copytree(formats["nnunet"], root, symlinks=True)
    info = json.loads((root / "dataset.json").read_text())
    info["channel_names"]["1"] = "T2 SPACE"
    (root / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match=r"channel 1 'T2 SPACE' is not a modality name .*channel_map"):
        NNUNetLayout(root, "imagesTr", "labelsTr", {}).find(["flair"])
    assert NNUNetLayout(root, "imagesTr", "labelsTr", {"T2 SPACE": "t2w"}).modalities == ("flair", "t2w")
    assert check([str(root), "--layout", "nnunet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: nnU-Net raw") and "'T2 SPACE'" in err


def test_missing_and_mismatched_files_name_case_and_file(formats, tmp_path, capsys):
    root = tmp_path / "Task02_Broken"
    shutil.copytree(formats["msd"], root)
    (root / "imagesTr" / "UCSF-PDGM-0002.nii.gz").unlink()
    label = root / "labelsTr" / "UCSF-PDGM-0004.nii.gz"
    image = nib.load(label)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:-2], image.affine), label)  # another grid
    assert check([str(root), "--layout", "msd", "--modalities", "flair"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("subject UCSF-PDGM-0002, file ") and "UCSF-PDGM-0002.nii.gz (4D, volume 0)" in lines[0]
    assert "flair image not found" in lines[0]
    assert lines[1].startswith(f"subject UCSF-PDGM-0004, file {label}: shape (46, 48, 24) differs")
    with pytest.raises(DataError, match=r"^subject UCSF-PDGM-0002, file .*UCSF-PDGM-0002.nii.gz \(4D, volume 0\): "):
        MSDLayout(root, "imagesTr", "labelsTr", {}).find(["flair"])


@pytest.mark.parametrize("kind", ["nnunet", "msd", "bids"])
def test_each_format_checks_clean(kind, formats, capsys):
    assert check([str(formats[kind]), "--layout", kind]) == 0
    assert "0 problem(s) in" in capsys.readouterr().err


# MSD (4D volumes through the cache and predict) runs in `make test`; the 3D formats in `make test-all`.
@pytest.mark.parametrize("kind", [pytest.param("nnunet", marks=pytest.mark.slow), "msd",
                                  pytest.param("bids", marks=pytest.mark.slow)])
def test_each_format_trains_tests_and_predicts(kind, formats, tmp_path):
    """A tiny real run trains and tests on the format; predict reads the format's own inputs."""
    from conftest import compose_config

    out = tmp_path / "run"
    train(compose_config([f"data={kind}", "trainer.limit_train_batches=1"], formats[kind], out))
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("subject,Dc") and len(rows) > 2
    inputs = {"nnunet": formats["nnunet"] / "imagesTs",
              "msd": formats["msd"] / "imagesTr" / "UCSF-PDGM-0005.nii.gz",
              "bids": formats["bids"] / "sub-10"}[kind]
    expected = {"nnunet": ["UCSF-PDGM-0009", "UCSF-PDGM-0010"], "msd": ["UCSF-PDGM-0005"],
                "bids": ["sub-10_ses-01", "sub-10_ses-02"]}[kind]
    assert predict(["--checkpoint", str(out / "checkpoints" / "best.ckpt"), "--input", str(inputs),
                    "--output", str(tmp_path / "pred")]) == 0
    report = json.loads((tmp_path / "pred" / "predict.json").read_text())
    assert [s["id"] for s in report["subjects"]] == expected
    seg = nib.load(tmp_path / "pred" / f"{expected[0]}_seg.nii.gz")
    assert seg.shape == (48, 48, 24) and seg.get_data_dtype() == np.uint8


@pytest.mark.parametrize("kind", ["nnunet", "msd", "bids"])
def test_a_wrong_root_is_one_line_and_exit_2(kind, tmp_path, capsys):
    assert check([str(tmp_path / "nowhere"), "--layout", kind]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "data.layout.root" in err
