"""On-the-fly augmentation of 2D training slices.

Spatial (flips, small rotation/scaling) keeps the model from learning one head position; intensity (gamma,
scale/shift, smooth bias field, noise), drawn per modality, keeps it from learning one scanner's contrast: the
model must generalize to data with other contrasts than the set it was tuned on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


class SliceAugment:
    """Random spatial and intensity transforms of one slice (numpy in, numpy out).

    Args:
        flip_prob: chance of mirroring each in-plane axis.
        rotate_degrees: maximum absolute in-plane rotation.
        scale_range: (min, max) isotropic zoom.
        affine_prob: chance of applying rotation + zoom.
        gamma_range: (min, max) gamma applied to each modality rescaled to [0, 1].
        intensity_scale: maximum relative multiplicative change per modality.
        intensity_shift: maximum additive change per modality.
        noise_std: maximum standard deviation of added Gaussian noise.
        bias_field: maximum amplitude of a smooth multiplicative field (log-domain polynomial).
        intensity_prob: chance of each intensity transform, per modality.
    """

    def __init__(
        self,
        flip_prob: float,
        rotate_degrees: float,
        scale_range: Sequence[float],
        affine_prob: float,
        gamma_range: Sequence[float],
        intensity_scale: float,
        intensity_shift: float,
        noise_std: float,
        bias_field: float,
        intensity_prob: float,
    ) -> None:
        self.flip_prob = flip_prob
        self.rotate_degrees = rotate_degrees
        self.scale_range = tuple(scale_range)
        self.affine_prob = affine_prob
        self.gamma_range = tuple(gamma_range)
        self.intensity_scale = intensity_scale
        self.intensity_shift = intensity_shift
        self.noise_std = noise_std
        self.bias_field = bias_field
        self.intensity_prob = intensity_prob

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one slice.

        Args:
            image: [I, H, W] float32 normalized modalities.
            label: [O, H, W] uint8 maps.
            rng: the worker's random generator.

        Returns:
            The augmented (image, label), same shapes and dtypes.
        """
        image, label = self._spatial(image, label, rng)
        image = np.stack([self._intensity(channel, rng) for channel in image])
        return image.astype(np.float32, copy=False), label

    def _spatial(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        for axis in (1, 2):
            if rng.random() < self.flip_prob:
                image, label = np.flip(image, axis), np.flip(label, axis)
        if rng.random() < self.affine_prob:
            angle = np.deg2rad(rng.uniform(-self.rotate_degrees, self.rotate_degrees))
            zoom = rng.uniform(*self.scale_range)
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
            centre = (np.array(image.shape[1:]) - 1) / 2.0
            offset = centre - rotation @ centre  # rotate about the slice centre
            image = np.stack([ndimage.affine_transform(c, rotation, offset, order=1, mode="nearest") for c in image])
            label = np.stack([ndimage.affine_transform(c, rotation, offset, order=0, mode="constant") for c in label])
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _intensity(self, channel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.intensity_prob
        channel = channel.astype(np.float32, copy=True)
        if rng.random() < p:
            lo, hi = float(channel.min()), float(channel.max())
            if hi > lo:
                gamma = rng.uniform(*self.gamma_range)
                channel = lo + (hi - lo) * ((channel - lo) / (hi - lo)) ** gamma
        if rng.random() < p and self.bias_field > 0:
            channel *= self._bias(channel.shape, rng)
        if rng.random() < p:
            channel = channel * (1 + rng.uniform(-self.intensity_scale, self.intensity_scale))
            channel = channel + rng.uniform(-self.intensity_shift, self.intensity_shift)
        if rng.random() < p and self.noise_std > 0:
            channel = channel + rng.normal(0.0, rng.uniform(0, self.noise_std), channel.shape).astype(np.float32)
        return channel

    def _bias(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        # A second-order polynomial in normalized coordinates, exponentiated: smooth and always positive.
        y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
        terms = np.stack([x, y, x * y, x**2, y**2])
        coeffs = rng.uniform(-1, 1, size=5)[:, None, None]
        log_field = (coeffs * terms).sum(0)
        log_field *= self.bias_field / max(np.abs(log_field).max(), 1e-6)
        return np.exp(log_field).astype(np.float32)
