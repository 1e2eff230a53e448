"""`mutual-seg-predict` over data-set roots: a bad or clashing subject fails alone, the others are written.

Real NIfTI files of the tiny synthetic set, laid out as UCSF-PDGM, BraTS 2021, BraTS 2023 and a manifest CSV.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mutual_seg.modalities import BRATS2021_SUFFIXES, BRATS2023_SUFFIXES
from mutual_seg.predict import main

GOOD, BAD = "UCSF-PDGM-0006", "UCSF-PDGM-0007"


def _source(tiny_data: Path, sid: str, seq: str) -> Path:
    return tiny_data / f"{sid}_nifti" / f"{sid}_{seq}.nii.gz"


def _layout(kind: str, tiny_data: Path, root: Path) -> tuple[dict[str, str], Path, Path]:
    """Two subjects (GOOD, BAD) in layout ``kind`` under ``root``, BAD without its T2.

    Returns:
        (our id -> the id predict gives it, the --input path, the T2 file BAD lacks).
    """
    root.mkdir(parents=True)
    if kind == "ucsf":
        for sid in (GOOD, BAD):
            shutil.copytree(tiny_data / f"{sid}_nifti", root / f"{sid}_nifti")
        ids, missing = {GOOD: GOOD, BAD: BAD}, root / f"{BAD}_nifti" / f"{BAD}_T2.nii.gz"
        missing.unlink()
        return ids, root, missing
    if kind == "manifest":
        lines = ["id,flair,t2w"]
        for sid in (GOOD, BAD):
            t2 = _source(tiny_data, sid, "T2") if sid == GOOD else root / "gone_T2.nii.gz"
            lines.append(f"{sid},{_source(tiny_data, sid, 'FLAIR')},{t2}")
        (root / "patients.csv").write_text("\n".join(lines) + "\n")
        return {GOOD: GOOD, BAD: BAD}, root / "patients.csv", root / "gone_T2.nii.gz"
    suffixes, sep, names = {
        "brats2021": (BRATS2021_SUFFIXES, "_", ("BraTS2021_00006", "BraTS2021_00007")),
        "brats2023": (BRATS2023_SUFFIXES, "-", ("BraTS-GLI-00006-000", "BraTS-GLI-00007-000")),
    }[kind]
    missing = root / names[1] / f"{names[1]}{sep}{suffixes['t2w']}.nii.gz"
    for sid, name in zip((GOOD, BAD), names, strict=True):
        (root / name).mkdir()
        for modality, seq in (("flair", "FLAIR"), ("t2w", "T2")):
            target = root / name / f"{name}{sep}{suffixes[modality]}.nii.gz"
            if target != missing:
                shutil.copy(_source(tiny_data, sid, seq), target)
    return dict(zip((GOOD, BAD), names, strict=True)), root, missing


@pytest.mark.parametrize("kind", ["ucsf", "brats2021", "brats2023", "manifest"])
def test_a_subject_missing_a_file_fails_alone_in_every_layout(kind, tiny_data, variants, tmp_path, capsys):
    ids, inputs, missing = _layout(kind, tiny_data, tmp_path / "in")
    out = tmp_path / "out"
    assert main(["--checkpoint", str(variants["best"]), "--input", str(inputs), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    [line] = [e for e in err if ids[BAD] in e]
    where = missing if kind == "manifest" else missing.parent  # a folder names the folder and the expected names
    assert line.startswith(f"error: subject {ids[BAD]}, file {where}:") and "t2" in line and "; " in line, line
    assert err[-1].startswith("1 of 2 subject(s) failed")
    assert (out / f"{ids[GOOD]}_seg.nii.gz").is_file() and not (out / f"{ids[BAD]}_seg.nii.gz").exists()
    report = json.loads((out / "predict.json").read_text())
    assert [f["id"] for f in report["failures"]] == [ids[BAD]] and [s["id"] for s in report["subjects"]] == [ids[GOOD]]


@pytest.mark.parametrize("kind", ["folders", "manifest", "case"])
def test_subjects_whose_outputs_would_collide_are_both_refused(kind, tiny_data, variants, tmp_path, capsys):
    """``X/`` and ``X_nifti/`` (or one id on two manifest rows) both refused, naming both files; the rest goes on."""
    root = tmp_path / "in"
    root.mkdir()
    first = _source(tiny_data, "UCSF-PDGM-0001", "FLAIR")
    if kind == "manifest":
        rows = [f"{sid},{_source(tiny_data, src, 'FLAIR')},{_source(tiny_data, src, 'T2')}"
                for sid, src in (("twin", "UCSF-PDGM-0001"), ("twin", "UCSF-PDGM-0002"), (GOOD, GOOD))]
        (root / "m.csv").write_text("id,flair,t2w\n" + "\n".join(rows) + "\n")
        inputs, second = root / "m.csv", _source(tiny_data, "UCSF-PDGM-0002", "FLAIR")
    else:
        other = "UCSF-PDGM-0001" if kind == "folders" else "ucsf-pdgm-0001_nifti"  # X_nifti/ beside X/, or case only
        shutil.copytree(tiny_data / "UCSF-PDGM-0001_nifti", root / "UCSF-PDGM-0001_nifti")
        shutil.copytree(tiny_data / "UCSF-PDGM-0002_nifti", root / other)
        shutil.copytree(tiny_data / f"{GOOD}_nifti", root / f"{GOOD}_nifti")
        first = root / "UCSF-PDGM-0001_nifti" / "UCSF-PDGM-0001_FLAIR.nii.gz"
        second = root / other / "UCSF-PDGM-0002_FLAIR.nii.gz"
        inputs = root
    out = tmp_path / "out"
    assert main(["--checkpoint", str(variants["best"]), "--input", str(inputs), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    clashes = [e for e in err if "same output name" in e]
    assert len(clashes) == 2 and all(str(first.parent) in e and str(second.parent) in e for e in clashes), err
    assert err[-1].startswith("2 of 3 subject(s) failed")
    assert sorted(p.name for p in out.glob("*_seg.nii.gz")) == [f"{GOOD}_seg.nii.gz"]


def test_a_manifest_id_that_is_not_a_file_name_is_refused(tiny_data, variants, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    manifest = tmp_path / "in" / "m.csv"
    flair, t2 = _source(tiny_data, GOOD, "FLAIR"), _source(tiny_data, GOOD, "T2")
    manifest.write_text(f"id,flair,t2w\n../escaped,{flair},{t2}\n{GOOD},{flair},{t2}\n")
    out = tmp_path / "out"
    assert main(["--checkpoint", str(variants["best"]), "--input", str(manifest), "--output", str(out)]) == 2
    [line] = [e for e in capsys.readouterr().err.splitlines() if "escaped" in e]
    assert line.startswith("error: subject ../escaped, file") and "not a plain file name" in line
    assert not list(tmp_path.glob("escaped*")) and (out / f"{GOOD}_seg.nii.gz").is_file()
