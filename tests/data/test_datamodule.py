"""SegDataModule, SliceDataset, VolumeDataset and SliceAugment on the tiny synthetic set, built from the Hydra config.

The data module of each modality set is built and set up once per module (module-scoped fixtures sharing one cache
folder), so that the whole file stays fast.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_SHAPE, compose_config
from hydra.utils import instantiate

from mutual_seg.data.augment import SliceAugment
from mutual_seg.data.datamodule import SegDataModule
from mutual_seg.data.slices import SliceDataset
from mutual_seg.errors import ConfigError

X, Y, Z = TINY_SHAPE
SPACING_ZXY = (155.0 / Z, 240.0 / X, 240.0 / Y)  # the synthetic field of view is 240 x 240 x 155 mm


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datamodule")


def _datamodule(overrides: list[str], data_root: Path, out_dir: Path) -> SegDataModule:
    cfg = compose_config(["fold=0", *overrides], data_root, out_dir)  # every module shares out_dir/cache
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def dm(tiny_data, out_dir) -> SegDataModule:
    """FLAIR + T2w, fold 0 of 2 (conftest's tiny config)."""
    return _datamodule(["modality=flair_t2w"], tiny_data, out_dir)


@pytest.fixture(scope="module")
def flair_dm(dm, tiny_data, out_dir) -> tuple[SegDataModule, dict[Path, int]]:
    """FLAIR alone, built after ``dm`` in the same cache; also the mtimes of dm's FLAIR files beforehand."""
    before = {c.images["flair"]: c.images["flair"].stat().st_mtime_ns for part in dm.subjects.values() for c in part}
    return _datamodule(["modality=flair"], tiny_data, out_dir), before


def _ids(dm: SegDataModule, part: str) -> list[str]:
    return [c.id for c in dm.subjects[part]]


def _slice_dataset(dm: SegDataModule, **settings) -> SliceDataset:
    """conf/data's slice settings, with ``settings`` replacing some."""
    return SliceDataset(dm.subjects["train"], dm.modalities, **{**dm.slice_settings, **settings})


# -- split and loaders -----------------------------------------------------------------------------------------------
def test_setup_gives_disjoint_parts_covering_every_subject(dm, tiny_data):
    train, val, test = (set(_ids(dm, p)) for p in ("train", "val", "test"))
    everyone = {s.id for s in dm.find_subjects()}
    assert len(everyone) == 10
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == everyone
    # the parts follow the split's patients (one scan per patient in this set)
    assert sorted(test) == sorted(dm.split.test)


def test_train_batches_are_float_slices_with_binary_labels(dm):
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 2, X, Y) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (4, 1, X, Y) and batch["label"].dtype == torch.float32
    assert set(batch["label"].unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(batch["image"]).all()


def test_samples_per_epoch_sets_the_epoch_length(tiny_data, out_dir, dm):
    dm8 = _datamodule(["data.samples_per_epoch=8"], tiny_data, out_dir)
    assert len(dm8.train_dataloader()) == 2  # 8 slices in batches of 4
    assert len(dm.train_dataloader()) == len(dm.train_dataset()) // 4  # default: every slice once, last batch dropped


@pytest.mark.parametrize("part", ["val", "test"])
def test_volume_items_are_whole_subjects_with_geometry(dm, part):
    loader = dm.val_dataloader() if part == "val" else dm.test_dataloader()
    items = list(loader)
    assert [item["id"] for item in items] == _ids(dm, part)
    for item in items:
        assert item["image"].shape == (Z, 2, X, Y) and item["image"].dtype == torch.float32
        assert item["label"].shape == (Z, 1, X, Y)
        assert set(item["label"].unique().tolist()) <= {0, 1}
        assert item["mask"].shape == (Z, X, Y) and item["mask"].dtype == torch.bool and item["mask"].any()
        assert item["spacing"].tolist() == pytest.approx(SPACING_ZXY, rel=1e-5)
        affine = item["affine"].numpy()
        assert affine.shape == (4, 4)
        # the affine is in NIfTI (x, y, z) order: its voxel sizes are the spacing reordered
        z, x, y = SPACING_ZXY
        assert np.abs(np.diag(affine)[:3]) == pytest.approx((x, y, z), rel=1e-5)


def test_val_slice_step_halves_validation_but_not_test(tiny_data, out_dir, dm):
    dm2 = _datamodule(["data.val_slice_step=2"], tiny_data, out_dir)
    val = next(iter(dm2.val_dataloader()))
    test = next(iter(dm2.test_dataloader()))
    assert val["image"].shape[0] == Z // 2 and test["image"].shape[0] == Z
    # every second slice, from the first: image, label and mask stay aligned
    subject = dm2.subjects["val"][0]
    assert np.array_equal(val["label"].numpy(), subject.load_label()[::2])
    assert np.array_equal(val["mask"].numpy(), subject.load_mask()[::2] > 0)
    assert np.array_equal(val["image"][:, 1].numpy(), np.load(subject.images["t2w"])[::2])
    # the kept slices lie twice as far apart, so volumes in mm^3 (post-processing) stay right
    z, x, y = SPACING_ZXY
    assert val["spacing"].tolist() == pytest.approx((2 * z, x, y), rel=1e-5)
    assert test["spacing"].tolist() == pytest.approx(SPACING_ZXY, rel=1e-5)


def test_summary_of_a_test_only_split_counts_no_training_slices(tiny_data, out_dir):
    # split.fixed_test=all tests a trained model on every subject of another data set: nothing trains
    dm_all = _datamodule(["data.split.fixed_test=all"], tiny_data, out_dir)
    assert not dm_all.subjects["train"] and len(dm_all.subjects["test"]) == 10
    assert "subjects train 0, val 0, test 10" in dm_all.summary() and "0 training slices" in dm_all.summary()


# -- slice selection and patches -------------------------------------------------------------------------------------
def test_slice_selections_are_nested_and_tumour_slices_hold_tumour(dm):
    index = {sel: set(_slice_dataset(dm, selection=sel).index) for sel in ("tumour", "brain", "all")}
    assert index["tumour"] < index["brain"] <= index["all"]
    assert len(index["all"]) == Z * len(dm.subjects["train"])
    for s, z in index["tumour"]:
        assert dm.subjects["train"][s].load_label()[z].any()
    for s, z in index["all"] - index["brain"]:  # left out of "brain": no brain in the slice
        assert not dm.subjects["train"][s].load_mask()[z].any()
    tumour = _slice_dataset(dm, selection="tumour")
    assert all(tumour[i]["label"].sum() > 0 for i in range(len(tumour)))


def test_unknown_selection_is_a_config_error(dm):
    with pytest.raises(ConfigError, match="selection"):
        _slice_dataset(dm, selection="lesion")


def test_patches_have_the_requested_size_and_foreground_crops_hold_tumour(dm):
    ph, pw = 15, 20  # odd and non-square: catches H/W swaps and off-by-one crops
    dataset = _slice_dataset(dm, selection="tumour", patch_size=[ph, pw], foreground_prob=1.0)
    torch.manual_seed(0)
    items = [dataset[i] for i in range(len(dataset))]
    assert all(item["image"].shape == (2, ph, pw) and item["label"].shape == (1, ph, pw) for item in items)
    with_tumour = [bool(item["label"].any()) for item in items]
    assert np.mean(with_tumour) >= 0.9
    # a foreground crop is centred on a tumour pixel
    assert all(item["label"][0, ph // 2, pw // 2] == 1 for item in items)


# -- augmentation ----------------------------------------------------------------------------------------------------
def test_augmented_slices_keep_shapes_dtypes_and_binary_labels(dm):
    dataset = _slice_dataset(dm, augment=dm.augment)
    plain = _slice_dataset(dm)
    torch.manual_seed(1)
    changed = 0
    for i in range(0, len(dataset), 4):
        item = dataset[i]
        assert item["image"].shape == (2, X, Y) and item["image"].dtype == torch.float32
        assert item["label"].shape == (1, X, Y) and item["label"].dtype == torch.float32
        assert set(item["label"].unique().tolist()) <= {0.0, 1.0}
        assert torch.isfinite(item["image"]).all()
        changed += not torch.equal(item["image"], plain[i]["image"])
    assert changed > 0  # the augmentation did something


def test_augmentation_is_deterministic_for_a_seed(dm):
    item = _slice_dataset(dm)[5]
    image, label = item["image"].numpy(), item["label"].numpy().astype(np.uint8)
    a = dm.augment(image, label, np.random.default_rng(7))
    b = dm.augment(image, label, np.random.default_rng(7))
    c = dm.augment(image, label, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # the dataset derives each item's generator from torch's seed and the index
    dataset = _slice_dataset(dm, augment=dm.augment)
    torch.manual_seed(3)
    first = dataset[5]
    torch.manual_seed(3)
    assert torch.equal(dataset[5]["image"], first["image"]) and torch.equal(dataset[5]["label"], first["label"])


def _spatial_only(flip_prob: float, affine_prob: float, rotate_degrees: float = 0.0) -> SliceAugment:
    return SliceAugment(
        flip_prob=flip_prob, rotate_degrees=rotate_degrees, scale_range=[1.0, 1.0], affine_prob=affine_prob,
        gamma_range=[1.0, 1.0], intensity_scale=0.0, intensity_shift=0.0, noise_std=0.0, bias_field=0.0,
        intensity_prob=0.0,
    )


def _asymmetric_example() -> tuple[np.ndarray, np.ndarray]:
    """Two channels [2, 24, 30] bright on an off-centre L shape, and the L as label [1, 24, 30]."""
    label = np.zeros((1, 24, 30), dtype=np.uint8)
    label[0, 3:12, 4:8] = 1
    label[0, 9:12, 8:16] = 1
    image = np.stack([label[0] * 1.0, label[0] * 0.8]).astype(np.float32)
    return image, label


def test_flips_move_image_and_label_together():
    image, label = _asymmetric_example()
    both = _spatial_only(flip_prob=1.0, affine_prob=0.0)
    out_image, out_label = both(image, label, np.random.default_rng(0))
    assert np.array_equal(out_label, label[:, ::-1, ::-1])
    assert np.array_equal(out_image, image[:, ::-1, ::-1])
    seen = set()
    for seed in range(12):  # random flips: whatever is drawn, the label stays on the bright pixels
        out_image, out_label = _spatial_only(flip_prob=0.5, affine_prob=0.0)(image, label, np.random.default_rng(seed))
        assert out_image.shape == image.shape and out_label.shape == label.shape and out_label.dtype == np.uint8
        assert np.array_equal(out_label[0] == 1, out_image[0] > 0.5)
        assert np.array_equal(out_label[0] == 1, out_image[1] > 0.4)
        seen.add(out_label.tobytes())
    assert len(seen) == 4  # all four flip combinations occurred, each a different label


def test_rotation_keeps_the_label_on_the_bright_pixels():
    image, label = _asymmetric_example()
    out_image, out_label = _spatial_only(flip_prob=0.0, affine_prob=1.0, rotate_degrees=15.0)(
        image, label, np.random.default_rng(4)
    )
    assert not np.array_equal(out_label, label)  # it did rotate
    assert set(np.unique(out_label)) <= {0, 1}
    bright, labelled = out_image[0] > 0.5, out_label[0] == 1
    iou = (bright & labelled).sum() / (bright | labelled).sum()
    assert iou > 0.7


# -- modality sets and the cache -------------------------------------------------------------------------------------
def test_single_modality_gives_one_input_channel(flair_dm):
    dm1, _ = flair_dm
    assert next(iter(dm1.train_dataloader()))["image"].shape == (4, 1, X, Y)
    assert next(iter(dm1.test_dataloader()))["image"].shape == (Z, 1, X, Y)


def test_flair_run_reuses_the_flair_files_of_the_flair_t2w_run(dm, flair_dm):
    dm1, before = flair_dm
    assert _ids(dm1, "test") == _ids(dm, "test")  # the split does not depend on the modality set
    pairs = {c.id: c for part in dm.subjects.values() for c in part}
    for part in dm1.subjects.values():
        for cached in part:
            flair = cached.images["flair"]
            assert flair == pairs[cached.id].images["flair"]
            assert flair.stat().st_mtime_ns == before[flair]  # not rewritten
            assert len(list(flair.parent.glob("flair-*.npy"))) == 1
            assert cached.label == pairs[cached.id].label and cached.mask == pairs[cached.id].mask


# -- distributed loaders (ranks as the trainer reports them) ---------------------------------------------------------
def _as_rank(dm: SegDataModule, world: int, rank: int) -> SegDataModule:
    dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)  # what _world() reads from a DDP trainer
    return dm


def test_each_test_subject_goes_to_exactly_one_rank(tiny_data, out_dir):
    dm = _datamodule([], tiny_data, out_dir)
    per_rank = [[item["id"] for item in _as_rank(dm, 2, rank).test_dataloader()] for rank in (0, 1)]
    assert sorted(per_rank[0] + per_rank[1]) == _ids(dm, "test")  # no subject twice, none padded in
    assert per_rank[0] and per_rank[1]


def test_fewer_validation_subjects_than_ranks_is_a_config_error(tiny_data, out_dir):
    dm = _as_rank(_datamodule([], tiny_data, out_dir), 2, 1)
    assert len(dm.subjects["val"]) == 1
    with pytest.raises(ConfigError, match="1 val subject.*2 processes"):
        dm.val_dataloader()
