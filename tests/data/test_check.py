"""``mutual-seg-check``: every problem of a broken copy of the tiny set, one line each; the run's fast part."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from mutual_seg.data.check import main
from mutual_seg.data.layouts import LayoutWarning
from mutual_seg.errors import DataError
from mutual_seg.run import train

S = "UCSF-PDGM-{:04d}"


def _path(root, n, suffix):
    return root / f"{S.format(n)}_nifti" / f"{S.format(n)}_{suffix}.nii.gz"


def _rewrite(path, change):
    img = nib.load(path)
    data = change(np.asarray(img.dataobj).astype(np.float32))
    nib.save(nib.Nifti1Image(data, img.affine), path)


@pytest.fixture(scope="module")
def broken(tiny_data, tmp_path_factory):
    """A copy of the tiny set with one problem of each kind; returns (root, expected (subject, text) pairs)."""
    root = tmp_path_factory.mktemp("broken") / "set"
    shutil.copytree(tiny_data, root)
    ids = sorted(p.name.removesuffix("_nifti") for p in root.glob("*_nifti"))
    n = [int(i.split("-")[-1]) for i in ids]
    _path(root, n[0], "T2").unlink()
    data = _path(root, n[1], "FLAIR").read_bytes()
    _path(root, n[1], "FLAIR").write_bytes(data[: len(data) // 2])
    _rewrite(_path(root, n[2], "tumor_segmentation"), lambda a: np.where(a > 0, 3, a))  # 3 is not a label value
    _rewrite(_path(root, n[3], "T1"), lambda a: np.where(a == a.max(), np.nan, a))
    _rewrite(_path(root, n[4], "DWI"), lambda a: np.stack([a, a], axis=-1))  # 4D
    _rewrite(_path(root, n[5], "T1c"), lambda a: a[:-2])  # shape differs
    _rewrite(_path(root, n[6], "brain_parenchyma_segmentation"), lambda a: a * 0)
    label = _path(root, n[7], "tumor_segmentation")
    _rewrite(label, lambda a: np.where(np.arange(a.shape[0])[:, None, None] == 0, 1, a))  # tumour on the edge
    _rewrite(_path(root, n[8], "tumor_segmentation"), lambda a: a * 0)
    dup = root / f"UCSF-PDGM-{n[9]:03d}_nifti"  # the same patient with a 3-digit ID
    shutil.copytree(root / f"{ids[9]}_nifti", dup)
    for f in dup.iterdir():
        f.rename(dup / f.name.replace(ids[9], dup.name.removesuffix("_nifti")))
    csv = next(root.glob("UCSF-PDGM-metadata*.csv"))
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1].replace(lines[1].split(",")[0], "UCSF-PDGM-999")]) + "\n")
    expected = [
        (ids[0], "t2w image not found"), (ids[1], "truncated or corrupt"), (ids[2], "unexpected label values [3]"),
        (ids[3], "NaN"), (ids[4], "expected a 3D volume"), (ids[5], "differs from expected"),
        (ids[6], "parenchyma mask is empty"), (ids[7], "outside the brain mask"), (ids[8], "label is empty"),
        (ids[9], "duplicate ID"),
    ]
    return root, expected


def test_check_lists_every_problem_once_per_line(broken, tmp_path, capsys):
    root, expected = broken
    assert main([str(root), "--json", str(tmp_path / "found.json")]) == 1
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    for subject, text in expected:
        assert any(line.startswith(f"subject {subject}") and text in line for line in lines), (subject, text, lines)
    # a metadata row without a subject folder: one warning line, counted apart from the problems
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == 1 and "1 metadata row(s)" in warned[0] and "UCSF-PDGM-999" in warned[0]
    assert "problem(s) and 1 warning(s)" in out.err
    found = json.loads((tmp_path / "found.json").read_text())
    assert [f["message"] for f in found] == [line.removeprefix("warning: ") for line in lines]
    assert all(f["subject"] for f in found)
    kinds = {f["subject"]: f["kind"] for f in found}
    assert kinds[expected[0][0]] == "missing" and kinds["UCSF-PDGM-999"] == "unlisted"


def test_clean_set_exits_0_and_usage_errors_exit_2(tiny_data, tmp_path, capsys):
    assert main([str(tiny_data)]) == 0
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    result = subprocess.run([sys.executable, "-m", "mutual_seg.data.check", str(tiny_data), "--layout", "nope"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_run_stops_before_training_with_every_header_problem(broken, make_cfg, tmp_path):
    root, expected = broken
    cfg = make_cfg(["modality=all"])
    cfg.data.layout.root = str(root)
    with pytest.raises(DataError) as err, pytest.warns(LayoutWarning, match="UCSF-PDGM-999"):
        train(cfg)
    message = str(err.value)
    assert "\n" not in message and message.startswith("4 problem(s) in the data set")  # headers only
    for subject, text in [expected[i] for i in (0, 4, 5, 9)]:
        assert subject in message and text in message
    assert "UCSF-PDGM-999" not in message  # a metadata row without a folder is a warning, not a reason to stop
    assert not os.path.exists(tmp_path / "run" / "cache")  # stopped before caching anything


def test_partial_tree_with_the_full_metadata_csv_trains_and_checks_clean(tiny_data, tmp_path, capsys):
    """Train and test subjects kept in two folders, each with the full CSV: rows without a folder only warn."""
    root = tmp_path / "half"
    shutil.copytree(tiny_data, root)
    for folder in sorted(root.glob("*_nifti"))[5:]:
        shutil.rmtree(folder)
    assert main([str(root)]) == 0
    out = capsys.readouterr()
    assert out.out.count("warning:") == 1 and "5 metadata row(s)" in out.out
    assert "0 problem(s) and 1 warning(s) in 5 subject(s)" in out.err


def test_without_modalities_the_ones_present_are_checked(tiny_data, tmp_path, capsys):
    """No subject has ADC: clean. One subject lacks the T1 the others have: that subject is reported."""
    root = tmp_path / "no_adc"
    shutil.copytree(tiny_data, root)
    for path in root.glob("*_nifti/*_ADC.nii.gz"):
        path.unlink()
    assert main([str(root)]) == 0
    assert "modalities t1,t1c,t2w,flair,swi,dwi)" in capsys.readouterr().err
    victim = sorted(root.glob("*_nifti/*_T1.nii.gz"))[2]
    victim.unlink()
    assert main([str(root)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and victim.name.removesuffix("_T1.nii.gz") in lines[0] and "t1 image not found" in lines[0]


def test_a_folder_without_metadata_row_is_a_problem_only_where_a_cohort_selects(tiny_data, tmp_path):
    from mutual_seg.data.check import Kind, check_set
    from mutual_seg.data.layouts import UCSFPDGMLayout

    root = tmp_path / "no_row"
    shutil.copytree(tiny_data, root)
    csv = next(root.glob("UCSF-PDGM-metadata*.csv"))
    lines = csv.read_text().splitlines()
    dropped = lines[3].split(",")[0]
    csv.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    plain = check_set(UCSFPDGMLayout(root, False, None, True), ["flair"], None, deep=False)
    assert plain == []  # the metadata only informs: nothing is chosen from it
    with pytest.warns(LayoutWarning, match="no row"):
        cohort = check_set(UCSFPDGMLayout(root, False, {"ID": "UCSF-PDGM-*"}, True), ["flair"], None, deep=False)
    [problem] = cohort
    assert problem.kind is Kind.METADATA and int(problem.subject.split("-")[-1]) == int(dropped.split("-")[-1])
    assert "cohort cannot tell whether it belongs" in problem.message
