"""Property-based fuzzing (hypothesis) of NIfTI loading and the layout readers: only the project's errors escape.

Corrupted headers, truncated files, odd dtypes and shapes, garbage metadata/manifest CSVs: each either loads
correctly or stops with a ``MutualSegError`` (one line); nothing else (no nibabel/numpy/zlib exception) escapes.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutual_seg.data.check import check_subject
from mutual_seg.data.layouts import ManifestLayout, UCSFPDGMLayout
from mutual_seg.data.nifti import load_volume
from mutual_seg.data.subject import Subject
from mutual_seg.errors import MutualSegError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.float32, np.float64, np.complex64]


@st.composite
def nifti_bytes(draw) -> tuple[bytes, str]:
    """A small NIfTI file (as bytes, with its suffix), then possibly truncated or with header bytes overwritten."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=5)))
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(st.sampled_from(["zeros", "ramp", "nan", "inf"]))
    data = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    if values == "zeros":
        data *= 0
    elif values in ("nan", "inf") and np.issubdtype(dtype, np.floating):
        data.flat[0] = np.nan if values == "nan" else np.inf
    image = nib.Nifti1Image(data.astype(dtype), np.diag([1.0, 1.0, 1.0, 1.0]), dtype=dtype)
    if draw(st.booleans()):
        image.header.set_slope_inter(draw(st.sampled_from([0.5, 2.0, -3.0])), 1.0)
    suffix = draw(st.sampled_from([".nii", ".nii.gz"]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        nib.save(image, path)
        raw = bytearray(path.read_bytes())
    damage = draw(st.sampled_from(["none", "truncate", "header", "garbage"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif damage == "header":
        # overwrite a few header bytes (dims, datatype, vox_offset, magic...) after decompressing
        import gzip
        plain = bytearray(gzip.decompress(raw)) if suffix == ".nii.gz" else raw
        for _ in range(draw(st.integers(1, 4))):
            plain[draw(st.integers(0, 351))] = draw(st.integers(0, 255))
        raw = bytearray(gzip.compress(bytes(plain))) if suffix == ".nii.gz" else plain
    elif damage == "garbage":
        raw = bytearray(draw(st.binary(max_size=600)))
    return bytes(raw), suffix


@FUZZ
@given(nifti_bytes())
def test_loading_any_file_gives_a_volume_or_a_clear_error(tmp_path_factory, case):
    raw, suffix = case
    path = tmp_path_factory.mktemp("nii") / f"s1_FLAIR{suffix}"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data, affine, zooms = load_volume(path, "s1")
        except MutualSegError as err:
            assert "\n" not in str(err) and "s1" in str(err)
        else:
            assert data.ndim == 3 and data.dtype == np.float32 and np.isfinite(data).all()
            assert affine.shape == (4, 4) and len(zooms) == 3
        # the integrity check reads the same file: it reports, it never raises
        problems = check_subject(Subject("s1", {"flair": path}), allowed=None, deep=True)
    assert all("\n" not in p.message and p.message.startswith("subject s1") for p in problems)


CSV_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.lists(st.sampled_from(["ID", "id", "flair", "label", "UCSF-PDGM-0001", "UCSF-PDGM-01", "a.nii.gz",
                                       "", ",", "\"", "mask", "patient_id", "x"]), max_size=5), max_size=6)
    .map(lambda rows: "\n".join(",".join(r) for r in rows)),
)


@FUZZ
@given(text=CSV_TEXT, folders=st.lists(st.sampled_from(["UCSF-PDGM-0001_nifti", "UCSF-PDGM-01_nifti",
                                                        "UCSF-PDGM-0002_FU1_nifti", "other"]), max_size=3, unique=True))
def test_layout_readers_on_garbage_find_subjects_or_say_why(tmp_path_factory, text, folders):
    root = tmp_path_factory.mktemp("layout")
    for name in folders:
        (root / name).mkdir()
        if name != "other":
            (root / name / f"{name.removesuffix('_nifti')}_FLAIR.nii.gz").write_bytes(b"not a nifti")
    (root / "UCSF-PDGM-metadata_v2.csv").write_text(text)
    (root / "manifest.csv").write_text(text)
    layouts = [UCSFPDGMLayout(root, bias_corrected=False, cohort=None, include_followups=True),
               ManifestLayout(root / "manifest.csv")]
    for layout in layouts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                subjects = layout.find(["flair"], skip_incomplete=True)
            except MutualSegError as err:
                assert "\n" not in str(err)
            else:
                assert all("flair" in s.images for s in subjects)


def test_too_low_vox_offset_found_by_fuzzing_is_a_clear_error(tmp_path):
    # nibabel raises HeaderDataError (not an OSError/ValueError) for it: it once escaped as a traceback.
    path = tmp_path / "s1_FLAIR.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    raw[108:112] = np.float32(100).tobytes()  # vox_offset inside the header
    path.write_bytes(bytes(raw))
    try:
        load_volume(path, "s1")
    except MutualSegError as err:
        assert "cannot read NIfTI (HeaderDataError" in str(err) and str(path) in str(err)
    else:
        raise AssertionError("a zero vox_offset was read as a volume")
