"""The synthetic UCSF-PDGM-layout set: exact files, geometry, determinism and the phenomena."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from mutual_seg.data.synthetic import (
    FOV_MM,
    MANIFEST,
    METADATA_COLUMNS,
    generate_dataset,
    simulate_subject,
    subject_seed,
)
from mutual_seg.data.synthetic.cli import main
from mutual_seg.errors import DataError

TINY = (32, 32, 16)
MEDIUM = (96, 96, 62)  # 2.5 mm: fine enough for tissue statistics, still < 1 s a subject
SEQUENCES = ("T1", "T1c", "T2", "FLAIR", "SWI", "DWI", "ADC")
MASKS = ("tumor_segmentation", "brain_parenchyma_segmentation", "brain_segmentation")


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("synthetic") / "tree"
    ids = generate_dataset(out, n_subjects=3, seed=5, shape=TINY, workers=1, progress=False)
    return out, ids


@pytest.fixture(scope="module")
def medium() -> list:
    # seed 0, subjects 1-4: labels {0,2}, {0,2}, {0,1,2,4} (with cysts), {0,2,4}
    return [
        simulate_subject(subject_seed(0, i, "default"), MEDIUM, "default", i) for i in range(1, 5)
    ]


def _load(path: Path) -> nib.Nifti1Image:
    return nib.load(path)


# ----------------------------------------------------------------------------- files and layout


def test_tree_has_exactly_the_release_files(tiny_tree) -> None:
    out, ids = tiny_tree
    assert ids == ["UCSF-PDGM-0001", "UCSF-PDGM-0002", "UCSF-PDGM-0003"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{i}_nifti" for i in ids] + ["UCSF-PDGM-metadata_v5.csv", MANIFEST]
    )
    for sid in ids:
        expected = {f"{sid}_{s}.nii.gz" for s in SEQUENCES + MASKS}
        assert {p.name for p in (out / f"{sid}_nifti").iterdir()} == expected


def test_metadata_csv_uses_three_digit_ids_and_v5_columns(tiny_tree) -> None:
    out, _ = tiny_tree
    with open(out / "UCSF-PDGM-metadata_v5.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == METADATA_COLUMNS
    assert [r["ID"] for r in rows] == ["UCSF-PDGM-001", "UCSF-PDGM-002", "UCSF-PDGM-003"]
    for row in rows:
        assert row["Final pathologic diagnosis (WHO 2021)"] == "Astrocytoma, IDH-mutant"
        assert row["IDH"] == "mutated"
        assert row["WHO CNS Grade"] in {"2", "3", "4"}
        assert all(value != "" for value in row.values())  # missing values are "unknown"
    assert rows[0]["BraTS21 ID"] == "unknown"


def test_images_are_scaled_int16_and_masks_uint8(tiny_tree) -> None:
    out, ids = tiny_tree
    folder = out / f"{ids[0]}_nifti"
    brain = np.asanyarray(_load(folder / f"{ids[0]}_brain_segmentation.nii.gz").dataobj)
    for seq in SEQUENCES:
        img = _load(folder / f"{ids[0]}_{seq}.nii.gz")
        assert img.get_data_dtype() == np.int16
        assert img.dataobj.slope not in (0.0, 1.0) and np.isfinite(img.dataobj.slope)
        data = np.asanyarray(img.dataobj)
        assert np.all(data[brain == 0] == 0), f"{seq}: background must be exactly zero"
        assert data[brain == 1].mean() > 10 * img.dataobj.slope  # real signal, not rounding
    for mask in MASKS:
        img = _load(folder / f"{ids[0]}_{mask}.nii.gz")
        assert img.get_data_dtype() == np.uint8
        values = set(np.unique(np.asanyarray(img.dataobj)).tolist())
        assert values <= ({0, 1, 2, 4} if mask == "tumor_segmentation" else {0, 1})


def test_geometry_is_shared_lps_and_keeps_the_field_of_view(tiny_tree) -> None:
    out, ids = tiny_tree
    for sid in ids:
        imgs = [_load(p) for p in sorted((out / f"{sid}_nifti").iterdir())]
        for img in imgs:
            assert img.shape == TINY
            np.testing.assert_array_equal(img.affine, imgs[0].affine)
            assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        zooms = np.array(imgs[0].header.get_zooms())
        np.testing.assert_allclose(zooms, [7.5, 7.5, 155 / 16], rtol=1e-6)
        np.testing.assert_allclose(zooms * TINY, FOV_MM, rtol=1e-6)


# ----------------------------------------------------------------------------- determinism, CLI


def test_same_seed_same_arrays_other_seed_differs() -> None:
    a = simulate_subject(subject_seed(1, 2, "default"), TINY)
    b = simulate_subject(subject_seed(1, 2, "default"), TINY)
    c = simulate_subject(subject_seed(2, 2, "default"), TINY)
    for mod in a.images:
        np.testing.assert_array_equal(a.images[mod], b.images[mod])
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.images["flair"], c.images["flair"])
    shifted = simulate_subject(subject_seed(1, 2, "shifted"), TINY, "shifted")
    assert not np.array_equal(a.images["flair"], shifted.images["flair"])


def test_parallel_run_writes_byte_identical_files(tiny_tree, tmp_path) -> None:
    out, ids = tiny_tree
    other = tmp_path / "parallel"
    assert generate_dataset(other, 2, 5, TINY, workers=2, progress=False) == ids[:2]
    for path in sorted(other.rglob("*.nii.gz")):
        assert path.read_bytes() == (out / path.relative_to(other)).read_bytes(), path.name


def test_rerun_with_same_arguments_skips_and_keeps_files(tiny_tree) -> None:
    out, ids = tiny_tree
    files = sorted(out.rglob("*.nii.gz"))
    stamps = [p.stat().st_mtime_ns for p in files]
    assert generate_dataset(out, 3, 5, TINY, workers=1, progress=False) == ids
    assert [p.stat().st_mtime_ns for p in files] == stamps


def test_resume_writes_only_missing_files(tmp_path) -> None:
    out = tmp_path / "resume"
    generate_dataset(out, 1, 9, TINY, workers=1, progress=False)
    flair = out / "UCSF-PDGM-0001_nifti" / "UCSF-PDGM-0001_FLAIR.nii.gz"
    before = flair.read_bytes()
    flair.unlink()
    generate_dataset(out, 1, 9, TINY, workers=1, progress=False)
    assert flair.read_bytes() == before


def test_cli_refuses_a_different_data_set_with_one_line(tiny_tree, capsys) -> None:
    out, _ = tiny_tree
    code = main(["--out", str(out), "--subjects", "3", "--seed", "6", "--shape", *map(str, TINY)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "--overwrite" in err and str(out) in err
    assert json.loads((out / MANIFEST).read_text())["seed"] == 5  # untouched


def test_cli_refuses_a_set_made_by_an_older_generator_and_names_both_versions(tmp_path, capsys) -> None:
    out = tmp_path / "old"
    args = ["--out", str(out), "--subjects", "1", "--shape", *map(str, TINY), "--workers", "1"]
    assert main(args) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "version": manifest["version"] - 1}))
    image = out / "UCSF-PDGM-0001_nifti" / "UCSF-PDGM-0001_FLAIR.nii.gz"
    before = image.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    old, new = manifest["version"] - 1, manifest["version"]
    assert f"version={old}" in err and f"this generator is version {new}" in err and "--overwrite" in err
    assert image.stat().st_mtime_ns == before  # nothing rewritten


def test_non_empty_foreign_folder_is_refused_then_overwritten(tmp_path, capsys) -> None:
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(out, 1, 0, TINY, workers=1, progress=False)
    args = ["--out", str(out), "--subjects", "1", "--shape", *map(str, TINY), "--workers", "1"]
    assert main(args + ["--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # only our own files are replaced
    assert (out / "UCSF-PDGM-0001_nifti" / "UCSF-PDGM-0001_T2.nii.gz").is_file()


def test_overwrite_with_fewer_subjects_removes_the_stale_ones(tmp_path) -> None:
    out = tmp_path / "shrink"
    generate_dataset(out, 2, 0, TINY, workers=1, progress=False)
    generate_dataset(out, 1, 0, TINY, workers=1, overwrite=True, progress=False)
    assert not (out / "UCSF-PDGM-0002_nifti").exists()
    assert (out / "UCSF-PDGM-0001_nifti").is_dir()


@pytest.mark.parametrize(
    "args",
    [
        ["--subjects", "0"],
        ["--subjects", "1", "--variant", "nope"],
        ["--subjects", "1", "--shape", "4", "32", "16"],
        ["--subjects", "x"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args) -> None:
    assert main(["--out", str(tmp_path / "bad"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- phenomena


def _regions(sub):
    brain, par, lab = sub.brain > 0, sub.parenchyma > 0, sub.label > 0
    return brain & ~par, par & ~lab & ~sub.distractor, lab  # CSF, normal parenchyma, tumour


def test_flair_csf_dark_parenchyma_tumour_bright(medium) -> None:
    for sub in medium:
        csf, normal, tumour = _regions(sub)
        flair = sub.images["flair"]
        assert flair[csf].mean() < 0.6 * flair[normal].mean()
        assert flair[tumour].mean() > 1.15 * flair[normal].mean()


def test_t2w_csf_close_to_tumour_and_above_parenchyma(medium) -> None:
    for sub in medium:
        csf, normal, tumour = _regions(sub)
        t2 = sub.images["t2w"]
        assert abs(t2[csf].mean() - t2[tumour].mean()) < 0.2 * t2[tumour].mean()
        assert t2[csf].mean() > 1.2 * t2[normal].mean()
        assert t2[tumour].mean() > 1.2 * t2[normal].mean()


def test_cysts_look_like_csf_but_are_labelled_tumour(medium) -> None:
    with_cyst = [sub for sub in medium if sub.cyst.any()]
    assert with_cyst and len(with_cyst) < len(medium)
    for sub in with_cyst:
        assert np.all(sub.label[sub.cyst] == 1)
        _, normal, _ = _regions(sub)
        assert sub.images["flair"][sub.cyst].mean() < 0.6 * sub.images["flair"][normal].mean()
        assert sub.images["t2w"][sub.cyst].mean() > 1.5 * sub.images["t2w"][normal].mean()


def test_flair_bright_distractors_are_unlabelled(medium) -> None:
    for sub in medium:
        assert sub.distractor.any()
        assert not np.any(sub.label[sub.distractor])
        _, normal, tumour = _regions(sub)
        flair = sub.images["flair"]
        assert flair[sub.distractor].mean() > 1.2 * flair[normal].mean()
        # on T2w the caps stay far below the tumour
        assert sub.images["t2w"][sub.distractor].mean() < sub.images["t2w"][tumour].mean()


def test_label_margin_is_subtle_and_labels_vary(medium) -> None:
    sets = [set(np.unique(sub.label).tolist()) for sub in medium]
    assert {0, 2} in sets and any(4 in s for s in sets) and any(1 in s for s in sets)
    for sub in medium:
        tumour = sub.label > 0
        core = ndi.binary_erosion(tumour, iterations=2)
        rim = tumour & ~ndi.binary_erosion(tumour)
        _, normal, _ = _regions(sub)
        flair, base = sub.images["flair"], sub.images["flair"][normal].mean()
        # the label edge sits where the excess signal is a fraction of the core's
        assert flair[rim].mean() - base < 0.6 * (flair[core].mean() - base)
        volume_cm3 = tumour.sum() * np.prod(np.array(FOV_MM) / MEDIUM) / 1000
        assert 3 < volume_cm3 < 170


def test_masks_nest_and_background_is_zero(medium) -> None:
    for sub in medium:
        assert np.all(sub.brain[sub.parenchyma > 0] == 1)
        assert np.all(sub.parenchyma[sub.label > 0] == 1)
        for img in sub.images.values():
            assert np.all(img[sub.brain == 0] == 0) and np.all(img >= 0)
        # the brain fits the field of view: nothing on the side faces or the top slice
        assert (
            sub.brain[[0, -1]].sum() == sub.brain[:, [0, -1]].sum() == sub.brain[..., -1].sum() == 0
        )
