"""Layout readers on tiny trees of real (4x4x2) NIfTI files: names, metadata, cohorts, errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mutual_seg.data.layouts import (
    LAYOUTS,
    BIDSLayout,
    BraTS2021Layout,
    BraTS2023Layout,
    LayoutWarning,
    ManifestLayout,
    MSDLayout,
    NNUNetLayout,
    UCSFPDGMLayout,
)
from mutual_seg.errors import ConfigError, DataError
from mutual_seg.modalities import MODALITIES, check_modalities

DIAGNOSIS = "Final pathologic diagnosis (WHO 2021)"
SEQS = ("T1", "T1c", "T2", "FLAIR", "SWI", "DWI", "ADC")


@pytest.fixture(scope="module")
def nifti_bytes(tmp_path_factory) -> Path:
    """One real tiny NIfTI, copied wherever a file is needed (readers never open it anyway)."""
    path = tmp_path_factory.mktemp("template") / "zeros.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), path)
    return path


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


@pytest.fixture
def ucsf(tmp_path: Path, nifti_bytes: Path) -> Path:
    """UCSF-PDGM tree: 4 patients + 1 follow-up + 1 folder absent from the CSV, with distractors."""
    root = tmp_path / "ucsf"

    def subject(sid: str, bias: tuple[str, ...] = ("T2", "FLAIR"), brain_mask: bool = True) -> None:
        folder = root / f"{sid}_nifti"
        folder.mkdir(parents=True)
        names = [f"{sid}_{s}.nii.gz" for s in SEQS] + [f"{sid}_{s}_bias.nii.gz" for s in bias]
        names += [f"{sid}_tumor_segmentation.nii.gz", f"{sid}_brain_parenchyma_segmentation.nii.gz"]
        names += [f"{sid}_brain_segmentation.nii.gz"] if brain_mask else []
        # Distractors the reader must ignore.
        names += [f"{sid}_ASL.nii.gz", f"{sid}_DTI_eddy_FA.nii.gz", f"{sid}_DTI_eddy_L1.nii.gz"]
        for name in names:
            shutil.copyfile(nifti_bytes, folder / name)

    subject("UCSF-PDGM-0004", bias=("T1", "T2", "FLAIR"))
    subject("UCSF-PDGM-0005", brain_mask=False)
    subject("UCSF-PDGM-0010", bias=("T1", "T2", "FLAIR"))
    subject("UCSF-PDGM-0011")  # no CSV row
    subject("UCSF-PDGM-0429", bias=("T1", "T2", "FLAIR"))
    subject("UCSF-PDGM-0429_FU003d", bias=("T1", "T2", "FLAIR"))
    (root / "notes").mkdir()
    (root / "UCSF-PDGM-0004_extra").mkdir()
    (root / "README.txt").write_text("not a subject")
    header = ["ID", "Age at MRI", "WHO CNS Grade", DIAGNOSIS, "Sex", "MGMT status", "1p/19q", "IDH"]
    unknown = ["unknown"] * 4
    # The older v2 table disagrees with v5 on purpose: values show which one was read.
    v2 = [[f"UCSF-PDGM-{n:03d}", "1", "4", "Glioblastoma", *unknown] for n in (4, 5, 10, 429)]
    _write_csv(root / "UCSF-PDGM-metadata_v2.csv", header, v2)
    v5 = [
        ["UCSF-PDGM-004", "40", "2", "Astrocytoma, IDH-mutant", *unknown],
        ["UCSF-PDGM-005", "66", "4", "Glioblastoma, IDH-wildtype", *unknown],
        ["UCSF-PDGM-010", "35", "3", "Astrocytoma, IDH-mutant", *unknown],
        ["UCSF-PDGM-429", "29", "2", "Astrocytoma, IDH-mutant", *unknown],
    ]
    _write_csv(root / "UCSF-PDGM-metadata_v5.csv", header, v5)
    return root


def _ucsf(root: Path, bias: bool = False, cohort=None, followups: bool = True) -> UCSFPDGMLayout:
    return UCSFPDGMLayout(root, bias_corrected=bias, cohort=cohort, include_followups=followups)


# ------------------------------------------------------------------------------------------ UCSF


def test_ucsf_finds_subjects_files_and_v5_metadata_by_3_digit_id(ucsf: Path) -> None:
    subjects = _ucsf(ucsf).find(["flair", "t2w"])
    ids = [s.id for s in subjects]
    assert ids == ["UCSF-PDGM-0004", "UCSF-PDGM-0005", "UCSF-PDGM-0010", "UCSF-PDGM-0011",
                   "UCSF-PDGM-0429", "UCSF-PDGM-0429_FU003d"]  # fmt: skip
    s4 = subjects[0]
    folder = ucsf / "UCSF-PDGM-0004_nifti"
    assert s4.images == {"flair": folder / "UCSF-PDGM-0004_FLAIR.nii.gz",
                         "t2w": folder / "UCSF-PDGM-0004_T2.nii.gz"}  # fmt: skip
    assert s4.label == folder / "UCSF-PDGM-0004_tumor_segmentation.nii.gz"
    assert s4.parenchyma_mask == folder / "UCSF-PDGM-0004_brain_parenchyma_segmentation.nii.gz"
    assert s4.brain_mask == folder / "UCSF-PDGM-0004_brain_segmentation.nii.gz"
    assert subjects[1].brain_mask is None  # optional mask absent
    # v5 (not v2) matched through the 3-digit CSV id.
    assert s4.metadata[DIAGNOSIS] == "Astrocytoma, IDH-mutant"
    assert s4.metadata["Age at MRI"] == "40"
    assert subjects[3].metadata == {}  # folder without a CSV row is kept when no cohort is set


def test_ucsf_followup_kept_with_patient_or_dropped(ucsf: Path) -> None:
    by_id = {s.id: s for s in _ucsf(ucsf).find(["flair"])}
    followup = by_id["UCSF-PDGM-0429_FU003d"]
    assert followup.patient_id == "UCSF-PDGM-0429"
    assert followup.metadata == by_id["UCSF-PDGM-0429"].metadata
    assert followup.images["flair"].name == "UCSF-PDGM-0429_FU003d_FLAIR.nii.gz"
    kept = [s.id for s in _ucsf(ucsf, followups=False).find(["flair"])]
    assert "UCSF-PDGM-0429_FU003d" not in kept and "UCSF-PDGM-0429" in kept


def test_ucsf_all_modalities_map_to_sequences_and_distractors_are_ignored(ucsf: Path) -> None:
    s4 = _ucsf(ucsf).find(list(MODALITIES))[0]
    assert list(s4.images) == list(MODALITIES)
    assert [p.name.removeprefix("UCSF-PDGM-0004_") for p in s4.images.values()] == [
        f"{seq}.nii.gz" for seq in SEQS
    ]


def test_ucsf_prefers_bias_variant_and_falls_back_with_warning(ucsf: Path) -> None:
    with pytest.warns(LayoutWarning, match=r"bias-corrected T1 .*2 of 6.*UCSF-PDGM-0005"):
        subjects = _ucsf(ucsf, bias=True).find(["flair", "t1"])
    by_id = {s.id: s for s in subjects}
    assert by_id["UCSF-PDGM-0004"].images["flair"].name == "UCSF-PDGM-0004_FLAIR_bias.nii.gz"
    assert by_id["UCSF-PDGM-0004"].images["t1"].name == "UCSF-PDGM-0004_T1_bias.nii.gz"
    assert by_id["UCSF-PDGM-0005"].images["t1"].name == "UCSF-PDGM-0005_T1.nii.gz"


def test_ucsf_v2_csv_is_used_when_alone(ucsf: Path) -> None:
    (ucsf / "UCSF-PDGM-metadata_v5.csv").unlink()
    s4 = _ucsf(ucsf).find(["flair"])[0]
    assert s4.metadata[DIAGNOSIS] == "Glioblastoma"


def test_ucsf_cohort_selects_astrocytomas_with_followup(ucsf: Path) -> None:
    layout = _ucsf(ucsf, cohort={DIAGNOSIS: "astrocytoma*"})  # case-insensitive wildcard
    with pytest.warns(LayoutWarning, match=r"1 subject folder\(s\) have no row.*UCSF-PDGM-0011"):
        ids = [s.id for s in layout.find(["flair", "t2w"])]
    assert ids == ["UCSF-PDGM-0004", "UCSF-PDGM-0010", "UCSF-PDGM-0429", "UCSF-PDGM-0429_FU003d"]


def test_ucsf_cohort_columns_combine_and_values_accept_lists_and_numbers(ucsf: Path) -> None:
    grade2 = _ucsf(ucsf, cohort={DIAGNOSIS: "Astrocytoma*", "WHO CNS Grade": 2}, followups=False)
    either = _ucsf(ucsf, cohort={"who cns grade": ["3", "4"]})  # column name case-insensitive
    with pytest.warns(LayoutWarning):
        by_grade = [s.id for s in grade2.find(["flair"])]
    with pytest.warns(LayoutWarning):
        by_list = [s.id for s in either.find(["flair"])]
    assert by_grade == ["UCSF-PDGM-0004", "UCSF-PDGM-0429"]
    assert by_list == ["UCSF-PDGM-0005", "UCSF-PDGM-0010"]


def test_ucsf_cohort_on_missing_column_names_column_and_csv(ucsf: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        _ucsf(ucsf, cohort={"Tumour type": "Astrocytoma*"}).find(["flair"])
    text = _one_line(excinfo)
    assert "'Tumour type'" in text and "UCSF-PDGM-metadata_v5.csv" in text
    assert DIAGNOSIS in text  # lists the columns it has


def test_ucsf_cohort_without_csv_or_without_match_is_an_error(ucsf: Path) -> None:
    with pytest.raises(DataError) as excinfo, pytest.warns(LayoutWarning):
        _ucsf(ucsf, cohort={DIAGNOSIS: "Ependymoma*"}).find(["flair"])
    assert "Astrocytoma, IDH-mutant" in _one_line(excinfo)  # shows the values that exist
    for table in ucsf.glob("*.csv"):
        table.unlink()
    with pytest.raises(DataError) as excinfo:
        _ucsf(ucsf, cohort={DIAGNOSIS: "Astrocytoma*"}).find(["flair"])
    assert "UCSF-PDGM-metadata*.csv" in _one_line(excinfo)


def test_ucsf_missing_modality_names_subject_and_file(ucsf: Path) -> None:
    missing = ucsf / "UCSF-PDGM-0005_nifti" / "UCSF-PDGM-0005_FLAIR.nii.gz"
    missing.unlink()
    with pytest.raises(DataError) as excinfo:
        _ucsf(ucsf).find(["flair", "t2w"])
    text = _one_line(excinfo)
    assert "UCSF-PDGM-0005" in text and str(missing) in text and "skip_incomplete" in text


def test_ucsf_skip_incomplete_warns_and_drops_subject(ucsf: Path) -> None:
    (ucsf / "UCSF-PDGM-0005_nifti" / "UCSF-PDGM-0005_tumor_segmentation.nii.gz").unlink()
    with pytest.warns(LayoutWarning, match=r"skipping 1 of 6.*UCSF-PDGM-0005 \(no label\)"):
        ids = [s.id for s in _ucsf(ucsf).find(["flair"], skip_incomplete=True)]
    assert "UCSF-PDGM-0005" not in ids and len(ids) == 5


def test_nothing_left_after_skipping_is_an_error(tmp_path: Path, nifti_bytes: Path) -> None:
    folder = tmp_path / "BraTS2021_00001"
    folder.mkdir()
    shutil.copyfile(nifti_bytes, folder / "BraTS2021_00001_flair.nii.gz")  # no seg: validation set
    with pytest.raises(DataError) as excinfo, pytest.warns(LayoutWarning):
        BraTS2021Layout(tmp_path).find(["flair"], skip_incomplete=True)
    assert "nothing is left" in _one_line(excinfo)


# --------------------------------------------------------------------------------- common errors


@pytest.mark.parametrize(
    "layout",
    [
        lambda root: _ucsf(root),
        BraTS2021Layout,
        BraTS2023Layout,
        lambda root: ManifestLayout(root / "subjects.csv"),
    ],
)
def test_missing_root_says_how_to_make_the_synthetic_set(tmp_path: Path, layout) -> None:
    with pytest.raises(DataError) as excinfo:
        layout(tmp_path / "absent").find(["flair"])
    text = _one_line(excinfo)
    assert "python -m mutual_seg.data.synthetic" in text and "absent" in text


def test_empty_root_is_an_error_and_nested_root_is_suggested(ucsf: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as excinfo:
        _ucsf(empty).find(["flair"])
    assert "no subject folders like UCSF-PDGM-0004_nifti" in _one_line(excinfo)
    with pytest.raises(DataError) as excinfo:
        _ucsf(tmp_path).find(["flair"])  # the data sits one level down, in ucsf/
    assert f"data.layout.root={ucsf}" in _one_line(excinfo)


def test_unknown_or_unavailable_modality_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _ucsf(tmp_path / "never-scanned").find(["FLAIR"])  # config checked before the disk
    text = _one_line(excinfo)
    assert "did you mean 'flair'" in text and "t1, t1c, t2w, flair, swi, dwi, adc" in text
    with pytest.raises(ConfigError, match="did you mean 't1c'"):
        check_modalities(["t1ce"])
    with pytest.raises(ConfigError) as excinfo:
        BraTS2023Layout(tmp_path).find(["flair", "swi"])
    assert "BraTS 2023" in _one_line(excinfo) and "t1, t1c, t2w, flair" in str(excinfo.value)
    with pytest.raises(ConfigError):
        check_modalities(["flair", "flair"])
    with pytest.raises(ConfigError):
        check_modalities("flair")  # a string is not a list of names
    with pytest.raises(ConfigError):
        check_modalities([])


# ----------------------------------------------------------------------------------------- BraTS


def test_brats2021_names_are_mapped(tmp_path: Path, nifti_bytes: Path) -> None:
    for sid in ("BraTS2021_00002", "BraTS2021_00000"):
        (tmp_path / sid).mkdir()
        for suffix in ("flair", "t1", "t1ce", "t2", "seg"):
            shutil.copyfile(nifti_bytes, tmp_path / sid / f"{sid}_{suffix}.nii.gz")
    (tmp_path / "BraTS2021_Training_Data.tar").write_text("ignored")
    subjects = BraTS2021Layout(tmp_path).find(["t1c", "t2w", "flair", "t1"])
    assert [s.id for s in subjects] == ["BraTS2021_00000", "BraTS2021_00002"]
    s = subjects[0]
    assert {m: p.name for m, p in s.images.items()} == {
        "t1c": "BraTS2021_00000_t1ce.nii.gz",
        "t2w": "BraTS2021_00000_t2.nii.gz",
        "flair": "BraTS2021_00000_flair.nii.gz",
        "t1": "BraTS2021_00000_t1.nii.gz",
    }
    assert s.label.name == "BraTS2021_00000_seg.nii.gz"
    assert s.parenchyma_mask is None and s.brain_mask is None and s.patient_id == s.id


def test_brats2023_names_and_patient_from_timepoint(tmp_path: Path, nifti_bytes: Path) -> None:
    for sid in ("BraTS-GLI-00005-001", "BraTS-GLI-00005-000", "BraTS-GLI-00007-000"):
        (tmp_path / sid).mkdir()
        for suffix in ("t2f", "t1n", "t1c", "t2w", "seg"):
            shutil.copyfile(nifti_bytes, tmp_path / sid / f"{sid}-{suffix}.nii.gz")
    (tmp_path / "BraTS-MEN-00001-000").mkdir()  # another sub-challenge: not read
    subjects = BraTS2023Layout(tmp_path).find(["flair", "t1"])
    assert [s.id for s in subjects] == [
        "BraTS-GLI-00005-000", "BraTS-GLI-00005-001", "BraTS-GLI-00007-000"
    ]  # fmt: skip
    assert [s.patient_id for s in subjects] == ["BraTS-GLI-00005"] * 2 + ["BraTS-GLI-00007"]
    assert subjects[0].images["flair"].name == "BraTS-GLI-00005-000-t2f.nii.gz"
    assert subjects[0].images["t1"].name == "BraTS-GLI-00005-000-t1n.nii.gz"
    assert subjects[0].label.name == "BraTS-GLI-00005-000-seg.nii.gz"
    (tmp_path / "BraTS-GLI-00007-000" / "BraTS-GLI-00007-000-t2f.nii.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        BraTS2023Layout(tmp_path).find(["flair"])
    assert "BraTS-GLI-00007-000-t2f.nii.gz" in _one_line(excinfo)


def test_registry() -> None:
    assert LAYOUTS == {"ucsf_pdgm": UCSFPDGMLayout, "brats2021": BraTS2021Layout,
                       "brats2023": BraTS2023Layout, "manifest": ManifestLayout, "nnunet": NNUNetLayout,
                       "msd": MSDLayout, "bids": BIDSLayout}  # fmt: skip


def test_hydra_builds_ucsf_layout_from_yaml_nodes(ucsf: Path) -> None:
    node = OmegaConf.create(
        {
            "_target_": "mutual_seg.data.layouts.UCSFPDGMLayout",
            "root": str(ucsf),
            "bias_corrected": False,
            "cohort": {DIAGNOSIS: ["Astrocytoma*"]},
            "include_followups": False,
        }
    )
    layout = instantiate(node)
    assert layout.root == ucsf
    with pytest.warns(LayoutWarning):
        subjects = layout.find(OmegaConf.create(["t2w"]))
    assert [s.id for s in subjects] == ["UCSF-PDGM-0004", "UCSF-PDGM-0010", "UCSF-PDGM-0429"]


# -------------------------------------------------------------------------------------- manifest


@pytest.fixture
def manifest(tmp_path: Path, nifti_bytes: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a_flair", "a_t2", "a_seg", "a_mask", "b_flair", "b_t2", "b_seg"):
        shutil.copyfile(nifti_bytes, data / f"{name}.nii.gz")
    # Upper-case headers on purpose (matched case-insensitively); b's flair path is absolute.
    header = ["ID", "FLAIR", "t2w", "label", "mask", "patient_id", "diagnosis"]
    a = ["a", "data/a_flair.nii.gz", "data/a_t2.nii.gz", "data/a_seg.nii.gz", "data/a_mask.nii.gz"]
    b = ["b", str(data / "b_flair.nii.gz"), "data/b_t2.nii.gz", "data/b_seg.nii.gz", ""]
    return _write_csv(
        tmp_path / "subjects.csv", header, [b + ["", "GBM"], a + ["p1", "astrocytoma"]]
    )


def test_manifest_resolves_relative_paths_against_csv_folder(manifest: Path) -> None:
    layout = ManifestLayout(manifest)
    assert layout.root == manifest.parent
    a, b = layout.find(["flair", "t2w"])
    data = manifest.parent / "data"
    assert (a.id, b.id) == ("a", "b")
    assert a.images == {"flair": data / "a_flair.nii.gz", "t2w": data / "a_t2.nii.gz"}
    assert a.label == data / "a_seg.nii.gz" and a.parenchyma_mask == data / "a_mask.nii.gz"
    assert (a.patient_id, b.patient_id) == ("p1", "b")
    assert b.parenchyma_mask is None and b.images["flair"] == data / "b_flair.nii.gz"
    assert a.metadata == {"diagnosis": "astrocytoma"}


def test_manifest_root_argument_and_errors(manifest: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    shutil.move(manifest.parent / "data", moved / "data")
    with pytest.raises(DataError) as excinfo:
        ManifestLayout(manifest).find(["flair"])
    assert "subject a" in _one_line(excinfo) and "a_flair.nii.gz" in str(excinfo.value)
    with pytest.raises(DataError) as excinfo:  # b's absolute flair path no longer exists either
        ManifestLayout(manifest, root=str(moved)).find(["flair"])
    assert "subject b" in _one_line(excinfo)
    assert [s.id for s in ManifestLayout(manifest, root=moved).find(["t2w"])] == ["a", "b"]
    with pytest.raises(DataError) as excinfo:
        ManifestLayout(manifest, root=moved).find(["t1"])
    text = _one_line(excinfo)
    assert str(manifest) in text and "no column t1" in text and "flair, t2w, label" in text


def test_manifest_empty_cell_and_duplicate_id_are_errors(tmp_path: Path, nifti_bytes: Path) -> None:
    shutil.copyfile(nifti_bytes, tmp_path / "seg.nii.gz")
    table = tmp_path / "m.csv"
    table.write_text("id,flair,label\nx,,seg.nii.gz\n")
    with pytest.raises(DataError) as excinfo:
        ManifestLayout(table).find(["flair"])
    assert _one_line(excinfo).startswith("subject x: flair image not given (empty cell)")
    table.write_text("id,flair,label\nx,seg.nii.gz,seg.nii.gz\n\ny,seg.nii.gz,seg.nii.gz\nx,a,b\n")
    with pytest.raises(DataError) as excinfo:
        ManifestLayout(table).find(["flair"])
    assert "row 5: id x is listed twice" in _one_line(excinfo)  # blank line counted


def test_ucsf_debug_log_names_the_csv_chosen(ucsf: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="mutual_seg.data.layouts"):
        _ucsf(ucsf).find(["flair"])
    assert "using UCSF-PDGM-metadata_v5.csv" in caplog.text and "metadata_v2.csv" in caplog.text


def test_relative_root_gives_absolute_paths(ucsf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ucsf.parent)
    layout = _ucsf(Path("ucsf"))
    monkeypatch.chdir(ucsf)  # a later working-directory change (Hydra's chdir) breaks nothing
    s4 = layout.find(["flair"])[0]
    assert s4.images["flair"].is_absolute() and s4.images["flair"].is_file()
