"""SliceDataset's bounds and fast path: a capped number of open memory maps, and the brain-box crop of training
slices (same brain and label voxels as whole slices, fewer pixels)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import compose_config
from hydra.utils import instantiate

from mutual_seg.data.slices import SliceDataset
from mutual_seg.errors import ConfigError


@pytest.fixture(scope="module")
def dm(tiny_data, tmp_path_factory):
    cfg = compose_config(["fold=0", "modality=flair_t2w"], tiny_data, tmp_path_factory.mktemp("slices"))
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm


def dataset(dm, **settings) -> SliceDataset:
    """Training slices with conf/data's settings, ``settings`` replacing some."""
    return SliceDataset(dm.subjects["train"], dm.modalities, **{**dm.slice_settings, **settings})


def interleaved_keys(ds: SliceDataset, n: int = 40) -> list[tuple[int, int]]:
    """Sampler-style keys that jump between subjects (each read evicts under a cap of 1) and come back."""
    rng = np.random.default_rng(0)
    return [(int(i), int(e)) for i, e in zip(rng.integers(0, len(ds), n), rng.integers(0, 2**32, n))]


def test_capped_memory_maps_give_the_same_items_and_stay_capped(dm):
    capped, uncapped = dataset(dm, max_open_subjects=1), dataset(dm, max_open_subjects=10_000)
    keys = interleaved_keys(capped)
    assert len({capped.index[i][0] for i, _ in keys}) >= 3  # several subjects: the cap really evicts
    for key in keys + keys[:5]:  # re-reading evicted subjects reopens them
        a, b = capped[key], uncapped[key]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert len(capped._arrays) == 1
    assert len(uncapped._arrays) == len({uncapped.index[i][0] for i, _ in keys})
    # a pickled copy (spawned workers, ddp_spawn) starts with no maps open and keeps the cap
    copy = pickle.loads(pickle.dumps(capped))
    assert not copy._arrays
    for key in keys[:6]:
        assert torch.equal(copy[key]["image"], uncapped[key]["image"]) and len(copy._arrays) == 1
    with pytest.raises(ConfigError, match="max_open_subjects must be >= 1"):
        dataset(dm, max_open_subjects=0)


@pytest.mark.parametrize("margin", [1, 8])
def test_brain_crop_keeps_every_brain_and_label_voxel_exactly(dm, margin):
    """Against whole slices on the same keys: the crop is the whole slice's window, bit for bit, and no brain or
    label voxel lies outside it (tolerance 0). Margin 1 makes the window smaller than the 48 x 48 slice."""
    plain = dataset(dm, foreground_prob=0.5)
    crop = dataset(dm, foreground_prob=0.5, brain_crop=True, crop_margin=margin, crop_multiple=8)
    h, w = crop.crop_size
    assert h % 8 == 0 and w % 8 == 0
    if margin == 1:
        assert h * w < 48 * 48  # the tiny set's brain does not fill the slice: fewer pixels per step
    seen_label = 0
    for key in interleaved_keys(crop, 60):
        full, cut = plain[key], crop[key]
        s = crop.index[key[0]][0]
        top, left = crop.crop_origins[s]
        assert cut["image"].shape == (2, h, w) and cut["label"].shape == (1, h, w)
        assert torch.equal(cut["image"], full["image"][:, top:top + h, left:left + w])
        assert torch.equal(cut["label"], full["label"][:, top:top + h, left:left + w])
        assert cut["label"].sum() == full["label"].sum()  # no label voxel outside the window
        seen_label += int(full["label"].sum())
        # no brain voxel outside the window, on every slice of the subject
        mask = np.asarray(dm.subjects["train"][s].load_mask()) > 0
        assert mask[:, top:top + h, left:left + w].sum() == mask.sum()
    assert seen_label > 0  # tumour slices were among the keys


def test_patches_are_drawn_inside_the_brain_window(dm):
    crop = dataset(dm, brain_crop=True, crop_margin=1, crop_multiple=8, patch_size=[16, 12], foreground_prob=0.0)
    plain = dataset(dm, brain_crop=True, crop_margin=1, crop_multiple=8, foreground_prob=0.0)
    for key in interleaved_keys(crop, 20):
        patch, window = crop[key]["image"], plain[key]["image"]
        assert patch.shape == (2, 16, 12)
        # every patch pixel is a pixel of the subject's window or the background value it is padded with
        values = set(window.flatten().tolist()) | set(window.amin(dim=(1, 2)).tolist())
        assert set(patch.flatten().tolist()) <= values


def test_train_loader_batches_crops_of_one_size(tiny_data, tmp_path):
    cfg = compose_config(["fold=0", "modality=flair_t2w", "data.slices.brain_crop=true",
                          "model.net.features=[4,8,16,32]"], tiny_data, tmp_path)
    crop_dm = instantiate(cfg.data)
    crop_dm.setup("fit")
    batch = next(iter(crop_dm.train_dataloader()))
    ds = crop_dm.train_dataset()
    assert cfg.data.slices.crop_multiple == 8  # 2^(depth - 1) of the network in conf
    assert batch["image"].shape[2:] == ds.crop_size and all(n % 8 == 0 for n in ds.crop_size)
