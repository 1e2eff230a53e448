"""Whole-volume inference, shared by validation/test (``lit.py``) and ``mutual-seg-predict``.

One path from a normalized volume to masks, so the test step and the command cannot drift apart:

1. crop to the brain's bounding box (plus an in-plane margin) and keep only slices with brain:
   skull-stripped volumes are mostly background, so this halves the work on 240 x 240 x 155 or more;
2. run the slices in batches through every network of an ensemble (optionally also under in-plane
   flips, flipped back: test-time augmentation), sigmoid, and average the probabilities;
3. threshold, then post-process in 3D (small components, optionally the largest component only).

Optionally the per-pixel mutual-attention weights of each modality come back at full resolution
(:func:`attention_map`), which ``predict`` writes as a 4D NIfTI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mutual_seg.masks import brain_box, keep_largest_component, remove_small_components

# In-plane flips of [B, I, X, Y] slices for test-time augmentation (each is its own inverse).
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-2,), (-1,), (-2, -1))


@dataclass(frozen=True)
class InferenceSettings:
    """How a volume is turned into masks; the checkpoint gives the first three, ``predict`` flags the rest.

    Args:
        threshold: on the (ensemble-averaged) sigmoid probability.
        batch_size: slices per forward pass.
        min_component_mm3: predicted 3D components below this volume are dropped (0: none).
        largest_component: keep only the largest 3D component of each output map.
        tta: also predict the flipped slices and average (4 passes instead of 1).
    """

    threshold: float
    batch_size: int
    min_component_mm3: float
    largest_component: bool
    tta: bool


@dataclass
class VolumePrediction:
    """What :func:`predict_volume` returns; arrays are slice-first like the cache.

    Attributes:
        probabilities: float32 [Z, O, X, Y] in [0, 1] (0 outside the brain box).
        attention: float32 [Z, I, X, Y] summing to 1 over modalities, or None when not asked for.
    """

    probabilities: Tensor
    attention: Tensor | None


def attention_map(net: nn.Module, size: tuple[int, int]) -> Tensor | None:
    """Per-pixel weight of each modality at full resolution, from the net's last forward pass.

    Every fusion scale with weights ([B, heads, I, h, w], see ``models/fusion.py``) is averaged over
    heads, upsampled bilinearly to ``size`` and averaged over scales; bilinear weights and means of
    distributions are distributions again, so the result still sums to 1 over modalities.

    Returns:
        [B, I, H, W] float32, or None when the network's fusion has no attention weights.
    """
    maps = [
        F.interpolate(w.float().mean(dim=1), size=size, mode="bilinear", align_corners=False)
        for w in getattr(net, "last_attention", []) if w is not None
    ]  # fmt: skip
    return torch.stack(maps).mean(dim=0) if maps else None


def _as_is(x: Tensor) -> Tensor:
    return x


def _flip(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    return x.flip(dims) if dims else x


@torch.no_grad()
def _predict_slices(
    nets: Sequence[nn.Module], batch: Tensor, present: Tensor | None, tta: bool, attention: bool,
    prepare: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor | None]:
    """Mean sigmoid [B, O, H, W] (and mean attention [B, I, H, W]) over networks and flips."""
    probs, weights = [], []
    for net in nets:
        for dims in _FLIPS if tta else _FLIPS[:1]:
            logits = net(prepare(_flip(batch, dims)), present)
            probs.append(_flip(torch.sigmoid(logits.float()), dims))
            if attention:
                found = attention_map(net, tuple(batch.shape[-2:]))
                if found is None:
                    raise ValueError(f"{type(net).__name__} has no attention weights to export")
                weights.append(_flip(found, dims))
    mean_probs = torch.stack(probs).mean(dim=0)
    return mean_probs, (torch.stack(weights).mean(dim=0) if attention else None)


def predict_volume(
    nets: Sequence[nn.Module],
    image: Tensor,
    settings: InferenceSettings,
    present: Tensor | None = None,
    mask: Tensor | None = None,
    attention: bool = False,
    prepare: Callable[[Tensor], Tensor] | None = None,
) -> VolumePrediction:
    """Probabilities (and attention) of a whole volume; the networks must already be in eval mode.

    Args:
        nets: one network, or several trained on the same modalities (an ensemble), same device.
        image: [Z, I, X, Y] normalized slices, modalities in the networks' order (any device).
        settings: batch size and TTA are used here.
        present: BoolTensor [I], the modalities supplied (None: all).
        mask: [Z, X, Y] brain mask; only its box and its slices are predicted.
        attention: also return the per-pixel modality weights.
        prepare: puts a batch [B, I, H, W] in the memory layout the networks expect
            (``FastPath.prepare``, e.g. channels_last); None leaves it as it is.

    Returns:
        A :class:`VolumePrediction` on the CPU.
    """
    device = next(nets[0].parameters()).device
    box = brain_box(mask)
    z, x, y = (torch.arange(image.shape[0]), slice(None), slice(None)) if box is None else box
    crop = image[z][:, :, x, y]
    keep = None if present is None else present.to(device)
    probs_out, att_out = [], []
    for start in range(0, crop.shape[0], settings.batch_size):
        batch = crop[start:start + settings.batch_size].to(device)
        probs, weights = _predict_slices(nets, batch, keep, settings.tta, attention, prepare or _as_is)
        probs_out.append(probs.cpu())
        att_out.append(weights.cpu() if weights is not None else None)
    n_out = int(getattr(nets[0], "out_channels", 1))
    full = torch.zeros((image.shape[0], n_out, *image.shape[2:]), dtype=torch.float32)
    if probs_out:
        full[z, :, x, y] = torch.cat(probs_out)
    weights_full = None
    if attention:
        # Outside the predicted box nothing looks at the image: uniform over the supplied modalities.
        supplied = torch.ones(image.shape[1]) if present is None else present.float().cpu()
        uniform = (supplied / supplied.sum())[None, :, None, None]
        weights_full = uniform.expand(image.shape[0], -1, *image.shape[2:]).clone()
        if att_out:
            weights_full[z, :, x, y] = torch.cat(att_out)  # type: ignore[arg-type]
    return VolumePrediction(full, weights_full)


def choose_largest_component(val_dice: float, val_dice_largest: float) -> bool:
    """Whether to keep only the largest component, from the mean validation Dice without and with it.

    One tumour per scan is the prior for the paper's task (a low-grade glioma), so the step is kept unless the
    validation subjects say otherwise, i.e. unless it lowers their Dice (a tie keeps it: then no validation
    subject had a second component to lose). nnU-Net decides the same step on its cross-validation but keeps it
    only on a strict gain; with the few validation subjects of one run a tie is the usual outcome, and the
    prior decides it. Data with several lesions per scan refute the prior on validation, or set ``false``.
    """
    return val_dice_largest >= val_dice


def segment(probabilities: Tensor, spacing: Sequence[float], settings: InferenceSettings) -> np.ndarray:
    """Binary masks [Z, O, X, Y] from probabilities [Z, O, X, Y]: threshold, then 3D post-processing.

    Args:
        probabilities: [Z, O, X, Y] in [0, 1].
        spacing: voxel size in mm in the same (z, x, y) order.
        settings: threshold and post-processing.
    """
    pred = (probabilities >= settings.threshold).cpu().numpy()
    for o in range(pred.shape[1]):
        pred[:, o] = remove_small_components(pred[:, o], spacing, settings.min_component_mm3)
        if settings.largest_component:
            pred[:, o] = keep_largest_component(pred[:, o])
    return pred
