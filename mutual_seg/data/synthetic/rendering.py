"""Rendering: seven MR sequences from tissue fractions.

The jittered contrast table times the fractions, a smooth multiplicative bias field per sequence,
Rician noise, and zero outside the brain (skull-stripped), as released data are. A variant may
acquire a sequence in thick slices (``slice_thickness_mm``: the signal is blurred along z before the
noise, as a 2D acquisition reconstructed on the 3D grid is) or noisier (``noise_gain``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mutual_seg.data.synthetic.contrasts import INTENSITY, SCANNER_SCALE, TISSUES, Variant
from mutual_seg.data.synthetic.geometry import FOV_MM, smooth_field
from mutual_seg.modalities import MODALITIES


def render(rng, fr, brain_mask, axes, v: Variant) -> dict[str, np.ndarray]:
    """Seven sequences from tissue fractions: jittered table, bias, Rician noise, zero outside."""
    shape = brain_mask.shape
    idx = np.flatnonzero(brain_mask)
    frac = np.stack([fr[t].ravel()[idx] for t in TISSUES])  # (tissues, brain voxels)
    images = {}
    for mod in MODALITIES:
        table = np.array(
            [v.intensity_override.get((mod, t), x) for t, x in zip(TISSUES, INTENSITY[mod])],
            np.float32,
        )
        table *= np.exp(rng.normal(0, v.contrast_jitter, len(TISSUES))).astype(np.float32)
        table[TISSUES.index("wm")] = 1.0  # white matter is the reference
        gain = SCANNER_SCALE[mod] * (1.0 if mod == "adc" else rng.uniform(0.7, 1.3))
        bias = np.exp(rng.uniform(*v.bias) * smooth_field(rng, axes, 80.0)).ravel()[idx]
        signal = (table @ frac) * bias
        if mod in v.slice_thickness_mm:
            signal = _thick_slices(signal, idx, brain_mask, v.slice_thickness_mm[mod])
        sigma = rng.uniform(*v.noise) * v.noise_gain.get(mod, 1.0)
        n = rng.standard_normal((2, idx.size), dtype=np.float32) * np.float32(sigma)
        img = np.zeros(shape, np.float32)
        # Rician: magnitude of a complex signal with Gaussian noise in both channels.
        img.ravel()[idx] = gain * np.sqrt((signal + n[0]) ** 2 + n[1] ** 2)
        images[mod] = img
    return images


def _thick_slices(signal: np.ndarray, idx: np.ndarray, brain_mask: np.ndarray, thickness_mm: float) -> np.ndarray:
    """Brain-voxel signal blurred along z by a slice profile of FWHM ``thickness_mm`` (normalized
    convolution inside the brain, so the brain's edge does not darken). Returns the brain voxels again."""
    vox_z = FOV_MM[2] / brain_mask.shape[2]
    sigma = thickness_mm / 2.3548 / vox_z  # FWHM -> Gaussian sd, in voxels
    full = np.zeros(brain_mask.shape, np.float32)
    full.ravel()[idx] = signal
    weight = gaussian_filter1d(brain_mask.astype(np.float32), sigma, axis=2)
    blurred = gaussian_filter1d(full, sigma, axis=2) / np.maximum(weight, 1e-6)
    return blurred.ravel()[idx].astype(np.float32)
