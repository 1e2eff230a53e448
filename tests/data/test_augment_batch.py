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
    assert sum(p.affine is not None for p in params) >= 4  # rotations and zooms are exercised
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
    drawn = torch.tensor([p.channels[0].noise for p in params])
    measured = out.flatten(1).std(dim=1)
    torch.testing.assert_close(measured, drawn.float(), atol=0.004, rtol=0.05)


def test_draws_follow_the_per_slice_distribution():
    """The batched path draws with SliceAugment.draw: rates of each transform match their probabilities."""
    augment = make(noise=0.06)
    out, _ = batch_augment(augment, torch.rand(400, 2, 8, 8), torch.zeros(400, 1, 8, 8),
                           generator=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    draws = [augment.draw(rng, 2) for _ in range(2000)]
    assert abs(np.mean([d.affine is not None for d in draws]) - 0.7) < 0.04
    assert abs(np.mean([d.flip[0] for d in draws]) - 0.5) < 0.04
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


def test_loader_and_device_paths_give_the_same_output_distribution():
    """Independent draws through each path (the loader's per-slice ``SliceAugment`` with its own generators; the
    batched path with torch noise): the outputs' statistics agree within Monte-Carlo error.

    Catches what same-draw comparisons cannot: the noise field drawn on the device, and the batch's draw sequence
    (which skips the per-slice noise fields). The image is an off-centre L and flips are rare (0.2), so a flip,
    rotation or noise difference moves the quadrant means or the spread. Tolerances: about 4 standard errors.
    """
    augment = make(noise=0.06)
    augment.flip_prob = 0.2
    image, label = _l_shape()
    n = 600
    loader = [augment(image, label, np.random.default_rng([11, k])) for k in range(n)]
    loader_image = np.stack([o[0] for o in loader])
    loader_label = np.stack([o[1] for o in loader]).astype(np.float32)
    torch.manual_seed(0)
    device_image, device_label = batch_augment(
        augment, torch.from_numpy(np.repeat(image[None], n, 0)), torch.from_numpy(np.repeat(label[None], n, 0)).float(),
        generator=np.random.default_rng(12))
    device_image, device_label = device_image.numpy(), device_label.numpy()

    def quadrants(x: np.ndarray) -> np.ndarray:  # [N, C, H, W] -> the mean of each channel's 4 quadrants
        h, w = x.shape[2] // 2, x.shape[3] // 2
        return np.array([x[:, :, r:r + h, c:c + w].mean(axis=(0, 2, 3)) for r in (0, h) for c in (0, w)])

    np.testing.assert_allclose(quadrants(device_image), quadrants(loader_image), atol=0.03)
    np.testing.assert_allclose(quadrants(device_label), quadrants(loader_label), atol=0.03)
    spread = [x.reshape(n, 2, -1).std(axis=2).mean(axis=0) for x in (loader_image, device_image)]
    np.testing.assert_allclose(spread[1], spread[0], atol=0.015)
    # the noise itself: high-frequency energy (differences of neighbours) has the same mean
    rough = [np.abs(np.diff(x, axis=3)).mean() for x in (loader_image, device_image)]
    assert abs(rough[1] - rough[0]) < 0.1 * rough[0]


def _l_shape(h: int = 24, w: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Two modalities [2, H, W] bright on an off-centre L (in the top-left quadrant), and the L as label [1, H, W]."""
    label = np.zeros((1, h, w), dtype=np.uint8)
    label[0, 2:11, 3:7] = 1
    label[0, 8:11, 7:14] = 1
    image = np.stack([0.1 + label[0] * 0.8, 0.3 + label[0] * 0.5]).astype(np.float32)
    return image, label
