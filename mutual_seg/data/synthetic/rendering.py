"""Rendering: seven MR sequences from tissue fractions.

The jittered contrast table times the fractions, a smooth multiplicative bias field per sequence,
Rician noise, and zero outside the brain (skull-stripped), as released data are.
"""

from __future__ import annotations

import numpy as np

from mutual_seg.data.synthetic.contrasts import INTENSITY, SCANNER_SCALE, TISSUES, Variant
from mutual_seg.data.synthetic.geometry import smooth_field
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
        n = rng.standard_normal((2, idx.size), dtype=np.float32) * np.float32(rng.uniform(*v.noise))
        img = np.zeros(shape, np.float32)
        # Rician: magnitude of a complex signal with Gaussian noise in both channels.
        img.ravel()[idx] = gain * np.sqrt((signal + n[0]) ** 2 + n[1] ** 2)
        images[mod] = img
    return images
