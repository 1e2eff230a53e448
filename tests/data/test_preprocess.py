"""Preprocessing (load, checks, eq. 1, labels) and the volume cache, on tiny NIfTI volumes."""

from __future__ import annotations

import gzip
import logging
import os
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mutual_seg.data.cache import CachedSubject, VolumeCache
from mutual_seg.data.nifti import load_volume
from mutual_seg.data.preprocess import (
    PreprocessSettings,
    binarize_label,
    normalize_minmax,
    normalize_zscore,
    preprocess_subject,
    slice_first,
    slice_last,
)
from mutual_seg.data.subject import Subject
from mutual_seg.errors import ConfigError, DataError

SHAPE = (12, 10, 6)  # (X, Y, Z), odd-ish and non-square so transposes show
AFFINE = np.array([[1.5, 0, 0, -9.0], [0, 1.2, 0, -6.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]])
SLOPE, INTER = 0.5, 1.0
SETTINGS = PreprocessSettings("minmax", 0.01, 0.99, [[1, 2, 4]], [0, 1, 2, 4])


def write_nifti(
    path: Path, values: np.ndarray, affine: np.ndarray = AFFINE, scaled: bool = True
) -> Path:
    """Write int16 + scale slope like real scans (values must be INTER + k * SLOPE), or float32."""
    if scaled:
        raw = np.rint((values - INTER) / SLOPE).astype(np.int16)
        img = nib.Nifti1Image(raw, affine)
        img.header.set_slope_inter(SLOPE, INTER)
    else:
        img = nib.Nifti1Image(np.asarray(values, dtype=np.float32), affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.to_filename(str(path))
    return path


def image_values(seed: int) -> np.ndarray:
    """Skull-stripped-looking volume: 0 background, brain values on the slope grid."""
    rng = np.random.default_rng(seed)
    x = INTER + SLOPE * rng.integers(10, 400, size=SHAPE).astype(np.float32)
    x[:2], x[-2:] = 0, 0  # background
    return x


def brain_box() -> np.ndarray:
    m = np.zeros(SHAPE, np.float32)
    m[2:-2, 1:-1, :] = 1
    return m


def parenchyma_box() -> np.ndarray:
    m = np.zeros(SHAPE, np.float32)
    m[3:-3, 2:-2, 1:-1] = 1
    return m


def label_values() -> np.ndarray:
    lab = np.zeros(SHAPE, np.float32)
    lab[4:7, 3:6, 2:4] = 2
    lab[5, 4, 2:4] = 1
    lab[6, 5, 3] = 4
    return lab


def make_subject(
    root: Path, sid: str = "UCSF-PDGM-0004", parenchyma=True, brain=True, seed=0
) -> Subject:
    folder = root / f"{sid}_nifti"
    images = {
        "flair": write_nifti(folder / f"{sid}_FLAIR.nii.gz", image_values(seed)),
        "t2w": write_nifti(folder / f"{sid}_T2.nii.gz", image_values(seed + 1)),
    }
    return Subject(
        id=sid,
        images=images,
        label=write_nifti(folder / f"{sid}_tumor_segmentation.nii.gz", label_values()),
        parenchyma_mask=write_nifti(
            folder / f"{sid}_brain_parenchyma_segmentation.nii.gz", parenchyma_box()
        )
        if parenchyma
        else None,
        brain_mask=write_nifti(folder / f"{sid}_brain_segmentation.nii.gz", brain_box())
        if brain
        else None,
    )


def bump_mtime(path: Path, seconds: int = 1) -> None:
    """Move mtime on: kernel timestamps are coarse (ms), so a quick rewrite could keep it."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def one_line_error(excinfo, *needles: str) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    return text


def make_cache(path: Path, num_workers: int = 0, **overrides) -> VolumeCache:
    settings = PreprocessSettings.from_config(SETTINGS.as_dict() | overrides)
    return VolumeCache(path, settings, num_workers=num_workers)


# ---------------------------------------------------------------- normalization


def test_minmax_is_eq1_inside_mask_and_extrapolates_outside():
    x = np.array([0.0, 10.0, 20.0, 30.0, -10.0])
    mask = np.array([1, 1, 1, 0, 0])
    out = normalize_minmax(x, mask, alpha=0.01, beta=0.99)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.01, 0.5, 0.99, 1.48, -0.48], atol=1e-6)


def test_zscore_uses_mask_statistics():
    x = np.array([1.0, 2.0, 3.0, 100.0])
    out = normalize_zscore(x, np.array([1, 1, 1, 0]))
    std = np.sqrt(2 / 3)
    np.testing.assert_allclose(out, [-1 / std, 0, 1 / std, 98 / std], rtol=1e-5)


@pytest.mark.parametrize("fn", [partial(normalize_minmax, alpha=0.01, beta=0.99), normalize_zscore])
def test_normalize_rejects_empty_mask_and_constant_image(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(np.arange(4.0), np.zeros(4))
    with pytest.raises(ValueError, match="constant"):
        fn(np.array([5.0, 5.0, 7.0]), np.array([1, 1, 0]))


# ---------------------------------------------------------------- loading


def test_load_volume_applies_scale_slope(tmp_path):
    values = image_values(3)
    path = write_nifti(tmp_path / "a.nii.gz", values)
    assert not np.allclose(
        np.asarray(nib.load(path).dataobj.get_unscaled(), np.float32), values
    )  # raw ints differ
    data, affine, zooms = load_volume(path, "S1")
    assert data.dtype == np.float32 and data.shape == SHAPE
    np.testing.assert_array_equal(data, values)
    np.testing.assert_allclose(affine, AFFINE)
    assert zooms == pytest.approx((1.5, 1.2, 2.0))


def test_load_volume_squeezes_trailing_singleton_but_rejects_4d(tmp_path):
    v = image_values(0)
    data, _, _ = load_volume(write_nifti(tmp_path / "s.nii.gz", v[..., None]), "S1")
    assert data.shape == SHAPE
    path = write_nifti(tmp_path / "four.nii.gz", np.stack([v, v], axis=-1))
    with pytest.raises(DataError) as e:
        load_volume(path, "S1")
    one_line_error(e, "subject S1", "four.nii.gz", "expected a 3D volume", "(12, 10, 6, 2)")


def test_load_volume_errors_name_subject_and_file(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", image_values(0))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    no_trailer = tmp_path / "no_trailer.nii.gz"  # header readable, data stream cut short
    no_trailer.write_bytes(good.read_bytes()[:-12])
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(os.urandom(64))
    bad_gzip_body = tmp_path / "garbage_in_gzip.nii.gz"
    bad_gzip_body.write_bytes(gzip.compress(b"not a nifti header" * 30))
    nan = image_values(0)
    nan[5, 5, 3] = np.nan
    inf = image_values(0)
    inf[5, 5, 3] = np.inf
    cases = {
        tmp_path / "missing.nii.gz": "not found",
        truncated: "truncated or corrupt",
        no_trailer: "truncated or corrupt",
        corrupt: "truncated or corrupt",
        bad_gzip_body: "truncated or corrupt",
        write_nifti(tmp_path / "nan.nii.gz", nan, scaled=False): "1 NaN and 0 Inf",
        write_nifti(tmp_path / "inf.nii.gz", inf, scaled=False): "0 NaN and 1 Inf",
    }
    for path, problem in cases.items():
        with pytest.raises(DataError) as e:
            load_volume(path, "UCSF-PDGM-0007")
        one_line_error(e, "subject UCSF-PDGM-0007", path.name, problem)


# ---------------------------------------------------------------- labels


def test_binarize_label_whole_tumour_and_brats_subregions():
    lab = np.array([[0, 1], [2, 4]])
    wt = binarize_label(lab, [[1, 2, 4]], [0, 1, 2, 4])
    assert wt.dtype == np.uint8 and wt.shape == (1, 2, 2)
    np.testing.assert_array_equal(wt[0], lab > 0)
    three = binarize_label(lab.astype(np.float32), [[1, 2, 4], [1, 4], [4]], [0, 1, 2, 4])
    np.testing.assert_array_equal(three[:, 1, 1], [1, 1, 1])  # 4: enhancing, in every region
    np.testing.assert_array_equal(three[:, 1, 0], [1, 0, 0])  # 2: oedema, whole tumour only
    np.testing.assert_array_equal(three[:, 0, 1], [1, 1, 0])  # 1: necrotic core


def test_binarize_label_rejects_unexpected_and_non_integer_values():
    with pytest.raises(DataError) as e:
        binarize_label(
            np.array([0, 1, 3, 7]), [[1]], [0, 1], subject_id="S9", path="/d/S9_seg.nii.gz"
        )
    one_line_error(e, "subject S9", "S9_seg.nii.gz", "[3, 7]", "data.preprocessing.label_allowed")
    with pytest.raises(DataError) as e:
        binarize_label(
            np.array([0.0, 0.5, 1.0]), [[1]], [0, 1], subject_id="S9", path="/d/S9_seg.nii.gz"
        )
    one_line_error(e, "subject S9", "must be integers", "0.5")


def test_settings_validate_config():
    with pytest.raises(ConfigError, match="unknown normalization"):
        PreprocessSettings("histogram", 0.01, 0.99, [[1]], [0, 1])
    with pytest.raises(ConfigError, match="alpha < beta"):
        PreprocessSettings("minmax", 0.99, 0.01, [[1]], [0, 1])
    with pytest.raises(ConfigError, match="not in data.preprocessing.label_allowed"):
        PreprocessSettings("minmax", 0.01, 0.99, [[1, 5]], [0, 1])
    s = PreprocessSettings("minmax", 0.01, 0.99, [[1, 2, 4]], [0, 1, 2, 4])
    assert PreprocessSettings(**s.as_dict()) == s


# ---------------------------------------------------------------- one subject


def test_preprocess_subject_uses_parenchyma_mask(tmp_path, caplog):
    s = make_subject(tmp_path)
    with caplog.at_level(logging.WARNING):
        out = preprocess_subject(s, ["flair", "t2w"], SETTINGS)
    assert not caplog.records and out["mask_source"] == "parenchyma"
    flair = out["images"]["flair"]
    inside = flair[parenchyma_box() > 0]
    assert inside.min() == pytest.approx(0.01) and inside.max() == pytest.approx(0.99)
    assert flair[0, 0, 0] < 0.01  # background follows eq. 1, below alpha
    np.testing.assert_array_equal(out["mask"], parenchyma_box().astype(np.uint8))
    np.testing.assert_array_equal(out["label"][0], label_values() > 0)
    assert out["zooms"] == pytest.approx((1.5, 1.2, 2.0))


def test_mask_fallback_order_warns(tmp_path, caplog):
    brain_only = make_subject(tmp_path, "S-brain", parenchyma=False)
    with caplog.at_level(logging.WARNING):
        out = preprocess_subject(brain_only, ["flair"], SETTINGS)
    assert out["mask_source"] == "brain"
    assert "S-brain" in caplog.text and "brain mask" in caplog.text
    inside = out["images"]["flair"][brain_box() > 0]
    assert inside.min() == pytest.approx(0.01) and inside.max() == pytest.approx(0.99)

    caplog.clear()
    neither = make_subject(tmp_path, "S-none", parenchyma=False, brain=False)
    with caplog.at_level(logging.WARNING):
        out = preprocess_subject(neither, ["flair", "t2w"], SETTINGS)
    assert out["mask_source"] == "nonzero"
    assert "S-none" in caplog.text and "non-zero" in caplog.text
    nz = image_values(0) != 0
    assert out["images"]["flair"][nz].min() == pytest.approx(0.01)
    np.testing.assert_array_equal(out["mask"], (nz | (image_values(1) != 0)).astype(np.uint8))


def test_preprocess_subject_without_label_for_predict(tmp_path):
    s = make_subject(tmp_path)
    s = Subject(id=s.id, images=s.images, parenchyma_mask=s.parenchyma_mask)
    assert preprocess_subject(s, ["flair"], SETTINGS)["label"] is None
    with pytest.raises(DataError, match="no label"):
        preprocess_subject(s, ["flair"], SETTINGS, require_label=True)


def test_shape_and_affine_mismatch_name_the_offending_file(tmp_path):
    s = make_subject(tmp_path)
    write_nifti(s.images["t2w"], np.zeros((12, 10, 5)) + INTER)
    with pytest.raises(DataError) as e:
        preprocess_subject(s, ["flair", "t2w"], SETTINGS)
    one_line_error(
        e, "subject UCSF-PDGM-0004", "_T2.nii.gz", "(12, 10, 5)", "(12, 10, 6)", "resample/register"
    )

    s = make_subject(tmp_path)
    shifted = AFFINE.copy()
    shifted[0, 3] += 0.5
    write_nifti(s.label, label_values(), affine=shifted)
    with pytest.raises(DataError) as e:
        preprocess_subject(s, ["flair"], SETTINGS)
    one_line_error(e, "_tumor_segmentation.nii.gz", "affine", "-8.5", "-9.", "_FLAIR.nii.gz")


def test_empty_mask_unexpected_label_and_constant_image(tmp_path):
    s = make_subject(tmp_path)
    write_nifti(s.parenchyma_mask, np.zeros(SHAPE))
    with pytest.raises(DataError) as e:
        preprocess_subject(s, ["flair"], SETTINGS)
    one_line_error(e, "subject UCSF-PDGM-0004", "_brain_parenchyma_segmentation.nii.gz", "empty")

    s = make_subject(tmp_path)
    lab = label_values()
    lab[0, 0, 0] = 3
    write_nifti(s.label, lab)
    with pytest.raises(DataError) as e:
        preprocess_subject(s, ["flair"], SETTINGS)
    one_line_error(e, "_tumor_segmentation.nii.gz", "unexpected label values [3]")

    s = make_subject(tmp_path)
    write_nifti(s.images["flair"], np.full(SHAPE, 7.0))
    with pytest.raises(DataError) as e:
        preprocess_subject(s, ["flair"], SETTINGS)
    one_line_error(e, "_FLAIR.nii.gz", "constant")


# ---------------------------------------------------------------- cache


def test_cache_layout_is_slice_first_and_matches_nibabel(tmp_path):
    s = make_subject(tmp_path / "data")
    [c] = make_cache(tmp_path / "cache").prepare([s], ["flair", "t2w"], progress=True)
    assert isinstance(c, CachedSubject) and c.id == s.id
    assert c.shape == (6, 12, 10) and c.spacing == pytest.approx((2.0, 1.5, 1.2))
    assert c.spacing_xyz == pytest.approx((1.5, 1.2, 2.0))
    np.testing.assert_allclose(c.affine, AFFINE)
    flair_nib = np.asarray(nib.load(s.images["flair"]).dataobj, np.float32)
    expected = normalize_minmax(flair_nib, parenchyma_box(), 0.01, 0.99)
    cached = np.load(c.images["flair"], mmap_mode="r")
    assert cached.dtype == np.float32 and cached.shape == (6, 12, 10) and cached.flags.c_contiguous
    for z in range(6):
        np.testing.assert_array_equal(cached[z], expected[:, :, z])
    np.testing.assert_array_equal(slice_last(np.asarray(cached)), expected)
    img = c.load_image(["flair", "t2w"])
    assert img.shape == (6, 2, 12, 10)
    np.testing.assert_array_equal(c.image_slice(3, ["t2w", "flair"])[1], expected[:, :, 3])
    label = c.load_label()
    assert label.dtype == np.uint8 and label.shape == (6, 1, 12, 10)
    np.testing.assert_array_equal(label, slice_first((label_values() > 0)[None].astype(np.uint8)))
    mask = c.load_mask()
    assert (
        mask.dtype == np.uint8
        and mask.shape == (6, 12, 10)
        and mask.sum() == parenchyma_box().sum()
    )
    assert c.images["flair"].parent == tmp_path / "cache" / s.id
    assert len(list(c.images["flair"].parent.glob("meta-*.json"))) == 1


def test_cache_hit_does_not_rewrite_and_modalities_share_entries(tmp_path):
    s = make_subject(tmp_path / "data")
    cache = make_cache(tmp_path / "cache")
    [a] = cache.prepare([s], ["flair"], progress=False)
    stamp = a.images["flair"].stat().st_mtime_ns
    [b] = cache.prepare([s], ["flair"], progress=False)
    assert b.images == a.images and b.images["flair"].stat().st_mtime_ns == stamp
    [both] = cache.prepare([s], ["flair", "t2w"], progress=False)
    assert (
        both.images["flair"] == a.images["flair"] and a.images["flair"].stat().st_mtime_ns == stamp
    )
    assert both.label == a.label


def test_cache_invalidated_by_setting_or_rewritten_input(tmp_path):
    s = make_subject(tmp_path / "data")
    [a] = make_cache(tmp_path / "cache").prepare([s], ["flair"], progress=False)
    [b] = make_cache(tmp_path / "cache", alpha=0.1).prepare([s], ["flair"], progress=False)
    assert b.images["flair"] != a.images["flair"] and b.label == a.label
    assert np.load(b.images["flair"])[np.load(b.mask) > 0].min() == pytest.approx(0.1)
    [z] = make_cache(tmp_path / "cache", label_outputs=[[1, 2, 4], [4]]).prepare(
        [s], ["flair"], progress=False
    )
    assert z.label != a.label and z.load_label().shape[1] == 2 and z.images == a.images

    touched = s.images["flair"]
    bump_mtime(touched)  # touch: same bytes, new key, recomputed
    [t] = make_cache(tmp_path / "cache").prepare([s], ["flair"], progress=False)
    assert t.images["flair"] != a.images["flair"]
    np.testing.assert_array_equal(np.load(t.images["flair"]), np.load(a.images["flair"]))

    new_values = image_values(42)
    write_nifti(s.images["flair"], new_values)
    bump_mtime(s.images["flair"], seconds=2)  # past the touch above, even within one tick
    [c] = make_cache(tmp_path / "cache").prepare([s], ["flair"], progress=False)
    assert c.images["flair"] != a.images["flair"]
    expected = slice_first(normalize_minmax(new_values, parenchyma_box(), 0.01, 0.99))
    np.testing.assert_array_equal(np.load(c.images["flair"]), expected)
    assert not np.array_equal(np.load(a.images["flair"]), expected)


def test_failure_leaves_no_entry_and_reports_all_problems(tmp_path):
    good = make_subject(tmp_path / "data", "S-good")
    bad = make_subject(tmp_path / "data", "S-bad")
    write_nifti(bad.images["t2w"], np.zeros((12, 10, 5)) + INTER)  # flair fine, t2w wrong
    worse = make_subject(tmp_path / "data", "S-worse")
    worse.images["flair"].write_bytes(b"garbage")
    cache = make_cache(tmp_path / "cache")
    with pytest.raises(DataError) as e:
        cache.prepare([good, bad, worse], ["flair", "t2w"], progress=False)
    one_line_error(e, "subject S-bad", "_T2.nii.gz", "(and 1 more problems)")
    assert not list(
        (tmp_path / "cache" / "S-bad").glob("*.npy")
    )  # flair was valid, yet not written
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert len(list((tmp_path / "cache" / "S-good").glob("*.npy"))) == 4  # flair, t2w, label, mask


def test_cache_refuses_dir_inside_subject_folder(tmp_path):
    s = make_subject(tmp_path / "data")
    with pytest.raises(DataError) as e:
        make_cache(s.images["flair"].parent / "cache").prepare([s], ["flair"], progress=False)
    one_line_error(e, "subject UCSF-PDGM-0004", "outside the data tree")


def test_cache_warns_once_per_fallback(tmp_path, caplog):
    subjects = [make_subject(tmp_path / "data", f"S{i}", parenchyma=False) for i in range(2)]
    with caplog.at_level(logging.WARNING):
        cached = make_cache(tmp_path / "cache").prepare(subjects, ["flair"], progress=False)
    assert [c.id for c in cached] == ["S0", "S1"]
    [record] = caplog.records
    assert "S0, S1" in record.getMessage() and "brain mask" in record.getMessage()


def test_parallel_matches_serial(tmp_path):
    subjects = [make_subject(tmp_path / "data", f"S{i}", seed=i) for i in range(3)]
    serial = make_cache(tmp_path / "c0").prepare(subjects, ["flair", "t2w"], progress=False)
    parallel = make_cache(tmp_path / "c2", num_workers=2).prepare(
        subjects, ["flair", "t2w"], progress=False
    )
    assert [c.id for c in parallel] == ["S0", "S1", "S2"]
    for a, b in zip(serial, parallel):
        assert a.images["flair"].name == b.images["flair"].name  # same key: cache_dir is not in it
        np.testing.assert_array_equal(a.load_image(), b.load_image())
        np.testing.assert_array_equal(a.load_label(), b.load_label())
        np.testing.assert_array_equal(a.load_mask(), b.load_mask())


def test_settings_built_by_hydra_from_the_yaml_node_key_the_cache(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    base = Path(__file__).parents[2] / "conf" / "data" / "base.yaml"
    pre = OmegaConf.load(base).preprocessing  # ListConfig values, as Hydra passes them
    settings = instantiate(pre)
    assert isinstance(settings, PreprocessSettings) and settings == SETTINGS
    # the checkpoint's plain dict and the YAML node (with _target_) give the same object back
    assert PreprocessSettings.from_config(settings.as_dict()) == PreprocessSettings.from_config(pre) == settings
    vc = VolumeCache(tmp_path / "cache", settings, num_workers=0)
    [c] = vc.prepare([make_subject(tmp_path / "data")], ["flair"], progress=False)
    assert c.load_label().shape[1] == len(pre.label_outputs)


def test_settings_from_a_foreign_dict_name_the_field():
    with pytest.raises(ConfigError, match="missing \\['label_allowed'\\], unknown \\['clip'\\]"):
        PreprocessSettings.from_config({k: v for k, v in SETTINGS.as_dict().items() if k != "label_allowed"} | {"clip": 1})


def test_cache_does_not_import_back_into_preprocess():
    import subprocess
    import sys

    # preprocess alone must import without the cache module (the old loop went through __getattr__)
    code = "import sys, mutual_seg.data.preprocess as p; assert 'mutual_seg.data.cache' not in sys.modules; assert not hasattr(p, 'VolumeCache')"
    subprocess.run([sys.executable, "-c", code], check=True)
