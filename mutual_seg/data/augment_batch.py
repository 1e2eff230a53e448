"""The training augmentation applied to a whole batch on the training device (``data.augment_on: device``).

Same transforms and same distributions as :class:`~mutual_seg.data.augment.SliceAugment`: the per-slice
parameters come from its ``draw`` (one numpy generator per batch, seeded from torch's generator, so
``seed_everything`` makes runs repeatable); only the application is batched in torch: flips with
``torch.where``, rotation + zoom with ``affine_grid``/``grid_sample`` (bilinear with border clamping for images,
like ``ndimage.affine_transform(order=1, mode="nearest")``; nearest with zeros for labels), then gamma, bias field,
scale/shift and Gaussian noise per modality. The loader then only reads slices, and a GPU is kept fed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mutual_seg.data.augment import SliceAugment, SliceDraw, log_bias_field


def _affine_theta(params: list[SliceDraw], height: int, width: int, device: torch.device) -> Tensor:
    """``affine_grid`` matrices [B, 2, 3] reproducing ``SliceAugment``'s rotation about the slice centre.

    In index space (row, col) the input read for output o is ``R (o - c) + c`` with ``R = rot(angle) / zoom``;
    with ``align_corners=True`` normalized coordinates are ``(i - c) / c``, so the matrix is ``D^-1 R D`` with
    ``D = diag(c_row, c_col)``, written in ``grid_sample``'s (x = col, y = row) order.
    """
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    theta = torch.zeros(len(params), 2, 3, dtype=torch.float64)
    for b, p in enumerate(params):
        angle, zoom = p.affine if p.affine is not None else (0.0, 1.0)
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        # rows of R in (row, col) order: [cos, -sin], [sin, cos]
        theta[b, 0, 0] = cos                # x_in from x: R[col, col]
        theta[b, 0, 1] = sin * cy / cx      # x_in from y: R[col, row] * cy / cx
        theta[b, 1, 0] = -sin * cx / cy     # y_in from x: R[row, col] * cx / cy
        theta[b, 1, 1] = cos                # y_in from y: R[row, row]
    return theta.to(device=device, dtype=torch.float32)


def _bias_fields(augment: SliceAugment, coeffs: Tensor, height: int, width: int) -> Tensor:
    """Fields [B, I, H, W] from coefficients [B, I, 5], as ``SliceAugment.bias`` (normalized, exponentiated)."""
    y = torch.linspace(-1, 1, height, device=coeffs.device, dtype=torch.float64)[:, None]
    x = torch.linspace(-1, 1, width, device=coeffs.device, dtype=torch.float64)[None, :]
    log_field = log_bias_field(coeffs.double()[..., None, None].unbind(2), y, x)  # each coefficient [B, I, 1, 1]
    peak = log_field.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return torch.exp(log_field * augment.bias_field / peak).float()


def batch_augment(
    augment: SliceAugment, image: Tensor, label: Tensor, params: list[SliceDraw] | None = None,
    generator: np.random.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Augment a batch where it lies (CPU or GPU).

    Args:
        augment: the per-slice augmentation whose settings and draws are used.
        image: [B, I, H, W] float.
        label: [B, O, H, W] (float or integer maps).
        params: per-slice parameters from ``augment.draw`` (drawn here when None).
        generator: numpy generator for the draws (default: seeded from torch's global generator).

    Returns:
        (image [B, I, H, W], label [B, O, H, W]), augmented, same dtypes and device.
    """
    b, i, h, w = image.shape
    if params is None:
        rng = generator or np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        params = [augment.draw(rng, i) for _ in range(b)]
    device, label_dtype = image.device, label.dtype
    image, label = image.float(), label.float()
    for dim, k in ((2, 0), (3, 1)):
        flip = torch.tensor([p.flip[k] for p in params], device=device)[:, None, None, None]
        image, label = torch.where(flip, image.flip(dim), image), torch.where(flip, label.flip(dim), label)
    moved = [n for n, p in enumerate(params) if p.affine is not None]
    if moved:
        idx = torch.tensor(moved, device=device)
        grid = F.affine_grid(_affine_theta([params[n] for n in moved], h, w, device), [len(moved), i, h, w],
                             align_corners=True)
        image = image.index_copy(0, idx, F.grid_sample(image[idx], grid, mode="bilinear", padding_mode="border",
                                                       align_corners=True))
        label = label.index_copy(0, idx, F.grid_sample(label[idx], grid, mode="nearest", padding_mode="zeros",
                                                       align_corners=True))
    return _intensity(augment, image, params), label.to(label_dtype)


def _intensity(augment: SliceAugment, image: Tensor, params: list[SliceDraw]) -> Tensor:
    """Gamma, bias field, scale/shift and noise per slice and modality, each where it was drawn."""
    h, w = image.shape[2:]
    device = image.device

    def table(key: str, fill: Any, pick=lambda v: v) -> tuple[Tensor, Tensor]:
        values = [[pick(getattr(c, key)) if getattr(c, key) is not None else fill for c in p.channels] for p in params]
        drawn = [[getattr(c, key) is not None for c in p.channels] for p in params]
        return (torch.tensor(np.asarray(values, dtype=np.float64), device=device),
                torch.tensor(drawn, device=device)[:, :, None, None])

    gamma, on = table("gamma", 1.0)
    lo = image.amin(dim=(2, 3), keepdim=True)
    hi = image.amax(dim=(2, 3), keepdim=True)
    span = (hi - lo).clamp_min(1e-12)
    gamma_image = lo + span * ((image - lo) / span).clamp_min(0) ** gamma.float()[:, :, None, None]
    image = torch.where(on & (hi > lo), gamma_image, image)
    coeffs, on = table("bias", [0.0] * 5, pick=list)
    if bool(on.any()):
        image = torch.where(on, image * _bias_fields(augment, coeffs, h, w), image)
    scale, on = table("scale", [1.0, 0.0], pick=list)
    image = torch.where(on, image * scale[..., 0, None, None].float() + scale[..., 1, None, None].float(), image)
    std, on = table("noise", 0.0)
    if bool(on.any()):
        image = torch.where(on, image + torch.randn_like(image) * std.float()[:, :, None, None], image)
    return image
