"""Batched on-device augmentation equals the per-slice one: same transforms on the same draws, same distributions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mutual_seg.data.augment import SliceAugment
from mutual_seg.data.augment_batch import batch_augment


def make(noise: float = 0.0, affine_prob: float = 0.7, intensity_prob: float = 0.7) -> SliceAugment:
    return SliceAugment(flip_prob=0.5, rotate_degrees=15.0, scale_range=[0.85, 1.15], affine_prob=affine_prob,
                        gamma_range=[0.7, 1.5], intensity_scale=0.15, intensity_shift=0.1, noise_std=noise,
                        bias_field=0.5, intensity_prob=intensity_prob)


def slices(b: int = 12, h: int = 37, w: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Smooth images [B, 2, H, W] (a blurred random field plus a disc) and disc labels [B, 1, H, W]."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    images, labels = [], []
    for _ in range(b):
        cy, cx, r = rng.uniform(10, 27), rng.uniform(8, 22), rng.uniform(4, 9)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2)
        images.append(np.stack([disc * 0.8 + rng.random((h, w)) * 0.2 for _ in range(2)]).astype(np.float32))
        labels.append(disc[None].astype(np.uint8))
    return np.stack(images), np.stack(labels)


def test_batched_equals_per_slice_on_the_same_draws():
    augment = make()
    images, labels = slices()
    rng = np.random.default_rng(5)
    params = [augment.draw(rng, 2) for _ in images]
    assert sum(p["affine"] is not None for p in params) >= 4  # rotations and zooms are exercised
    expected = [augment.apply(i, lab, p) for i, lab, p in zip(images, labels, params)]
    got_image, got_label = batch_augment(augment, torch.from_numpy(images), torch.from_numpy(labels).float(), params)
    want_image = np.stack([e[0] for e in expected])
    want_label = np.stack([e[1] for e in expected])
    np.testing.assert_allclose(got_image.numpy(), want_image, atol=2e-4, rtol=1e-4)
    # nearest-neighbour labels may round a coordinate lying exactly half-way differently
    assert (got_label.numpy().astype(np.uint8) != want_label).mean() < 0.005
    assert got_label.dtype == torch.float32


def test_noise_has_the_drawn_strength():
    augment = make(noise=0.06, affine_prob=0.0, intensity_prob=1.0)
    augment.flip_prob, augment.bias_field, augment.gamma_range = 0.0, 0.0, (1.0, 1.0)
    augment.intensity_scale = augment.intensity_shift = 0.0
    image = torch.zeros(64, 1, 48, 48)
    params = [augment.draw(np.random.default_rng(i), 1) for i in range(64)]
    torch.manual_seed(0)
    out, _ = batch_augment(augment, image, torch.zeros(64, 1, 48, 48), params)
    drawn = torch.tensor([p["channels"][0]["noise"] for p in params])
    measured = out.flatten(1).std(dim=1)
    torch.testing.assert_close(measured, drawn.float(), atol=0.004, rtol=0.05)


def test_draws_follow_the_per_slice_distribution():
    """The batched path draws with SliceAugment.draw: rates of each transform match their probabilities."""
    augment = make(noise=0.06)
    out, _ = batch_augment(augment, torch.rand(400, 2, 8, 8), torch.zeros(400, 1, 8, 8),
                           generator=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    draws = [augment.draw(rng, 2) for _ in range(2000)]
    assert abs(np.mean([d["affine"] is not None for d in draws]) - 0.7) < 0.04
    assert abs(np.mean([d["flip"][0] for d in draws]) - 0.5) < 0.04
    assert out.shape == (400, 2, 8, 8) and torch.isfinite(out).all()


def test_device_augmentation_trains_and_bad_choice_is_refused(make_cfg):
    from mutual_seg.run import train

    cfg = make_cfg(["data.augment_on=device", "test=false", "trainer.limit_val_batches=1"])
    train(cfg)  # a real Trainer: training batches go through SegDataModule.on_after_batch_transfer
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert dm.augment is not None and dm.train_dataset().augment is None  # the loader no longer augments
    batch = {"image": torch.rand(8, 2, 24, 24), "label": torch.zeros(8, 1, 24, 24)}
    dm.trainer = SimpleNamespace(training=False)  # validation batches pass unchanged
    assert dm.on_after_batch_transfer(dict(batch), 0)["image"] is batch["image"]
    dm.trainer = SimpleNamespace(training=True)
    assert not torch.equal(dm.on_after_batch_transfer(dict(batch), 0)["image"], batch["image"])
    with pytest.raises(Exception, match="data.augment_on must be loader or device, got 'gpu'"):
        instantiate(make_cfg(["data.augment_on=gpu"]).data)
