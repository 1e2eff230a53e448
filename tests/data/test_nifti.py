"""data/nifti.py: the one reader and writer of NIfTI files (checks on read, atomic writes)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mutual_seg.data.nifti import load_volume, write_nifti
from mutual_seg.errors import DataError, OutputError

AFFINE = np.array([[1.5, 0, 0, -9.0], [0, 1.2, 0, -6.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]])


def test_a_written_volume_reads_back_with_its_affine_and_spacing(tmp_path):
    data = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    path = write_nifti(tmp_path / "sub" / "a.nii.gz", data, AFFINE, dtype=np.float32)
    read, affine, zooms = load_volume(path, "s1")
    assert np.array_equal(read, data) and np.allclose(affine, AFFINE) and np.allclose(zooms, (1.5, 1.2, 2.0))
    assert [p.name for p in path.parent.iterdir()] == ["a.nii.gz"]  # no temporary file left beside it


def test_scaled_storage_is_integer_on_disk_like_a_scanner_and_reads_back_scaled(tmp_path):
    data = np.linspace(0, 1000.5, 60, dtype=np.float32).reshape(4, 5, 3)
    path = write_nifti(tmp_path / "t1.nii.gz", data, AFFINE, dtype=np.int16, scaled=True)
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.int16 and img.dataobj.slope != 1.0
    assert np.allclose(load_volume(path, "s1")[0], data, atol=0.05)


def test_exact_storage_keeps_a_reference_header_and_casts(tmp_path):
    reference = nib.Nifti1Image(np.zeros((4, 5, 3), np.float32), AFFINE)
    reference.set_qform(AFFINE, code=2)
    mask = np.zeros((4, 5, 3), np.float32)
    mask[1:3, 2:4, 1] = 1
    path = write_nifti(tmp_path / "seg.nii.gz", mask, AFFINE, header=reference.header, dtype=np.uint8,
                       description="mutual_seg segmentation")
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.uint8 and int(img.header["qform_code"]) == 2
    assert img.header["descrip"].tobytes().startswith(b"mutual_seg segmentation")
    assert np.array_equal(np.asarray(img.dataobj), mask.astype(np.uint8))


def test_a_failed_write_leaves_the_earlier_file_and_no_partial_one(tmp_path, monkeypatch):
    path = write_nifti(tmp_path / "a.nii.gz", np.ones((2, 2, 2), np.float32), AFFINE)
    before = path.read_bytes()

    def broken(img, filename):
        Path(filename).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", broken)
    with pytest.raises(OutputError, match="disk is full"):
        write_nifti(path, np.zeros((2, 2, 2), np.float32), AFFINE)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.nii.gz"]


def test_a_missing_or_truncated_file_is_one_data_error_naming_subject_and_file(tmp_path):
    with pytest.raises(DataError, match="s7.*missing.nii.gz.*file not found"):
        load_volume(tmp_path / "missing.nii.gz", "s7")
    path = write_nifti(tmp_path / "a.nii.gz", np.ones((8, 8, 8), np.float32), AFFINE)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="s7.*truncated or corrupt"):
        load_volume(path, "s7")
