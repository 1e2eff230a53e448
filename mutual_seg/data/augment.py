"""On-the-fly augmentation of 2D training slices.

Spatial (flips, small rotation/scaling) keeps the model from learning one head position; intensity (gamma,
scale/shift, smooth bias field, noise), drawn per modality, keeps it from learning one scanner's contrast: the
model must generalize to data with other contrasts than the set it was tuned on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass
class ChannelDraw:
    """One modality's intensity parameters; None: that transform was not drawn for it.

    Attributes:
        gamma: exponent applied to the modality rescaled to [0, 1].
        bias: 5 coefficients of the log bias field (x, y, xy, x^2, y^2), each in [-1, 1].
        scale: (factor, shift) of the linear intensity change.
        noise: standard deviation of the added Gaussian noise.
        noise_field: the noise itself, [H, W] float32 (per-slice path; the batched path draws it on the device).
    """

    gamma: float | None = None
    bias: np.ndarray | None = None
    scale: tuple[float, float] | None = None
    noise: float | None = None
    noise_field: np.ndarray | None = None


@dataclass
class SliceDraw:
    """The random parameters of one slice's augmentation (:meth:`SliceAugment.draw`).

    Attributes:
        flip: mirror along (H, W).
        affine: (angle in radians, zoom) of the rotation about the slice centre, or None.
        channels: one :class:`ChannelDraw` per modality.
    """

    flip: tuple[bool, bool]
    affine: tuple[float, float] | None
    channels: list[ChannelDraw]


def log_bias_field(coeffs: Sequence[Any], y: Any, x: Any) -> Any:
    """The log of the smooth bias field: a second-order polynomial in normalized coordinates (the one formula
    of both augmentation paths, numpy per slice and torch per batch).

    Written per row, (c1 y + c4 y^2) + (c0 + c2 y) x + c3 x^2: three [H, W] operations instead of a [5, H, W]
    product (the field was half of a slice's augmentation time).

    Args:
        coeffs: (c0, ..., c4) for x, y, xy, x^2, y^2: floats, or arrays broadcasting against y and x
            (e.g. [B, I, 1, 1] for a batch).
        y: row coordinates in [-1, 1], [H, 1]; x: column coordinates in [-1, 1], [1, W] (numpy or torch).

    Returns:
        The log field, [..., H, W]; exponentiate it after scaling its peak to the field's amplitude.
    """
    c0, c1, c2, c3, c4 = coeffs
    return (c1 * y + c4 * y * y) + (c0 + c2 * y) * x + c3 * x * x


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
        return self.apply(image, label, self.draw(rng, image.shape[0], image.shape[1:]))

    def draw(self, rng: np.random.Generator, channels: int, shape: tuple[int, ...] | None = None) -> SliceDraw:
        """The random parameters of one slice's augmentation, in the order the draws were always made.

        Args:
            rng: random generator.
            channels: I, the number of modalities (intensity transforms are drawn per modality).
            shape: (H, W) to draw the noise field here (the per-slice path); None leaves noise fields to the
                caller (the batched path draws them on the training device), drawing only their strength.

        Returns:
            The flips, the affine transform and each modality's intensity parameters.
        """
        flip = (bool(rng.random() < self.flip_prob), bool(rng.random() < self.flip_prob))
        affine = None
        if rng.random() < self.affine_prob:
            affine = (float(np.deg2rad(rng.uniform(-self.rotate_degrees, self.rotate_degrees))),
                      float(rng.uniform(*self.scale_range)))
        p = self.intensity_prob
        per_channel = []
        for _ in range(channels):
            c = ChannelDraw()
            if rng.random() < p:
                c.gamma = float(rng.uniform(*self.gamma_range))
            if rng.random() < p and self.bias_field > 0:
                c.bias = rng.uniform(-1, 1, size=5)
            if rng.random() < p:
                c.scale = (1 + float(rng.uniform(-self.intensity_scale, self.intensity_scale)),
                           float(rng.uniform(-self.intensity_shift, self.intensity_shift)))
            if rng.random() < p and self.noise_std > 0:
                c.noise = float(rng.uniform(0, self.noise_std))
                if shape is not None:
                    c.noise_field = rng.normal(0.0, c.noise, tuple(shape)).astype(np.float32)
            per_channel.append(c)
        return SliceDraw(flip=flip, affine=affine, channels=per_channel)

    def apply(self, image: np.ndarray, label: np.ndarray, params: SliceDraw) -> tuple[np.ndarray, np.ndarray]:
        """Apply drawn parameters (:meth:`draw`) to one slice: image [I, H, W] float32, label [O, H, W]."""
        image, label = self._spatial(image, label, params)
        image = np.stack([self._intensity(channel, c) for channel, c in zip(image, params.channels)])
        return image.astype(np.float32, copy=False), label

    def _spatial(self, image: np.ndarray, label: np.ndarray, params: SliceDraw):
        for axis, flip in zip((1, 2), params.flip):
            if flip:
                image, label = np.flip(image, axis), np.flip(label, axis)
        if params.affine is not None:
            angle, zoom = params.affine
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
            centre = (np.array(image.shape[1:]) - 1) / 2.0
            offset = centre - rotation @ centre  # rotate about the slice centre
            image = np.stack([ndimage.affine_transform(c, rotation, offset, order=1, mode="nearest") for c in image])
            label = np.stack([ndimage.affine_transform(c, rotation, offset, order=0, mode="constant") for c in label])
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _intensity(self, channel: np.ndarray, c: ChannelDraw) -> np.ndarray:
        channel = channel.astype(np.float32, copy=True)
        if c.gamma is not None:
            lo, hi = float(channel.min()), float(channel.max())
            if hi > lo:
                channel = lo + (hi - lo) * ((channel - lo) / (hi - lo)) ** c.gamma
        if c.bias is not None:
            channel *= self.bias(channel.shape, c.bias)
        if c.scale is not None:
            channel = channel * c.scale[0] + c.scale[1]
        if c.noise_field is not None:
            channel = channel + c.noise_field
        return channel

    def bias(self, shape: tuple[int, int], coeffs: np.ndarray) -> np.ndarray:
        """The smooth multiplicative field [H, W] of 5 polynomial coefficients (x, y, xy, x^2, y^2)."""
        # log_bias_field exponentiated: smooth and always positive; in float32 here.
        y = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
        x = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
        log_field = log_bias_field([float(c) for c in coeffs], y, x)
        log_field *= np.float32(self.bias_field / max(float(np.abs(log_field).max()), 1e-6))
        return np.exp(log_field, out=log_field)
