"""The four building blocks of the paper's network (Seshimo & Rashed 2024, section 3.2).

Paper mapping:

- ``ConvMod``: 3x3 convolution, BatchNorm, ReLU (exactly the paper's ConvMod).
- ``EncMod``: the paper's EncMod is one ConvMod then a 2x2 max-pool; here a stage runs
  ``convs_per_stage`` ConvMods before the pool (2 by default, the U-Net habit, which gives each scale
  a receptive field that grows by more than one pixel per stage); ``convs_per_stage=1`` is the
  paper's literal module.
- ``DecMod``: transposed convolution (k=2, s=2), BatchNorm, ReLU, then ConvMod(s) over the
  concatenation with the skip connection.
- ``Map``: 1x1 convolution to the O output maps. The paper ends with a sigmoid; here the network
  returns LOGITS so that the loss can use the numerically stable ``BCEWithLogits`` form, and
  :func:`probabilities` applies the sigmoid for callers that want maps in [0, 1].
- ``TrackHead`` (beyond the paper): a light head per encoder track for auxiliary supervision in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mutual_seg.errors import ConfigError


class ConvMod(nn.Sequential):
    """3x3 convolution (same padding), BatchNorm2d, ReLU.

    The convolution has no bias because BatchNorm's shift would cancel it.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def _conv_stack(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """``convs`` ConvMods, the first changing the channel count."""
    if convs < 1:
        raise ValueError(f"convs_per_stage must be >= 1, got {convs}")
    layers = [ConvMod(in_channels, out_channels)]
    layers += [ConvMod(out_channels, out_channels) for _ in range(convs - 1)]
    return nn.Sequential(*layers)


class EncMod(nn.Module):
    """One encoder stage: ConvMod(s), then a 2x2 max-pool.

    Returns both the pre-pool features (for the fusion and skip connection at this scale) and the
    pooled ones (input of the next stage).

    Args:
        in_channels: channels of the input.
        out_channels: channels produced by the convolutions.
        convs_per_stage: ConvMods before the pool (1 = the paper's EncMod, 2 = U-Net style).
        pool: False for the bottom stage, which has no next stage to feed.
    """

    def __init__(
        self, in_channels: int, out_channels: int, convs_per_stage: int, pool: bool = True
    ) -> None:
        super().__init__()
        self.convs = _conv_stack(in_channels, out_channels, convs_per_stage)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if pool else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Args: x [B, C_in, H, W] with even H, W if pooling.

        Returns:
            (features [B, C_out, H, W], pooled [B, C_out, H/2, W/2] or None at the bottom).
        """
        features = self.convs(x)
        return features, (self.pool(features) if self.pool is not None else None)


class DecMod(nn.Module):
    """One decoder stage: upsample x2 (ConvTranspose2d, BN, ReLU), concatenate the skip, ConvMod(s).

    Args:
        in_channels: channels of the coarser input.
        skip_channels: channels of the skip connection at the finer scale.
        out_channels: channels of the output.
        convs_per_stage: ConvMods after the concatenation.
    """

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, convs_per_stage: int
    ) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.convs = _conv_stack(out_channels + skip_channels, out_channels, convs_per_stage)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Args: x [B, C_in, H, W], skip [B, C_skip, 2H, 2W]. Returns: [B, C_out, 2H, 2W]."""
        return self.convs(torch.cat([self.up(x), skip], dim=1))


class Map(nn.Conv2d):
    """1x1 convolution to the output maps; returns logits (apply :func:`probabilities` for [0, 1]).

    Args:
        in_channels: channels of the last decoder stage.
        out_channels: O, the number of segmentation maps.
        prior: None keeps PyTorch's random bias; a probability p starts the bias at log(p / (1 - p)), so the
            untrained network predicts about p everywhere. With a Dice loss a start near "tumour everywhere"
            learns slowly (the gradient per background pixel shrinks with the predicted volume); a small prior
            (the share of tumour pixels) starts from "nothing" instead, as RetinaNet's prior initialization does.
    """

    def __init__(self, in_channels: int, out_channels: int, prior: float | None) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)
        if prior is not None:
            if not 0.0 < prior < 1.0:
                raise ConfigError(f"model.net.output_prior must be in (0, 1) or null, got {prior}")
            nn.init.constant_(self.bias, math.log(prior / (1.0 - prior)))


class TrackHead(nn.Module):
    """A light segmentation head on one encoder track's multi-scale features, for auxiliary supervision.

    Each scale's features go through a 1x1 conv to O logits, are upsampled (bilinear) to full resolution and
    summed: the track segments with its whole receptive field for about ``sum(features) * O`` parameters. The
    heads only train (SegNet's ``aux_weight``); inference never runs them.

    Args:
        features: the track's channels per scale.
        out_channels: O.
        prior: the output prior (as :class:`Map`), applied to the full-resolution scale's bias.
    """

    def __init__(self, features: Sequence[int], out_channels: int, prior: float | None) -> None:
        super().__init__()
        self.maps = nn.ModuleList(
            Map(c, out_channels, prior if s == 0 else None) for s, c in enumerate(features)
        )
        for m in list(self.maps)[1:]:
            nn.init.zeros_(m.bias)

    def forward(self, scales: Sequence[Tensor]) -> Tensor:
        """Args: per-scale features [B, features[s], H / 2^s, W / 2^s]. Returns logits [B, O, H, W]."""
        size = scales[0].shape[-2:]
        out = self.maps[0](scales[0])
        for head, x in zip(list(self.maps)[1:], scales[1:]):
            out = out + F.interpolate(head(x), size=size, mode="bilinear", align_corners=False)
        return out


def probabilities(logits: Tensor) -> Tensor:
    """The paper's final sigmoid: logits [B, O, H, W] -> per-pixel probabilities [B, O, H, W]."""
    return torch.sigmoid(logits)
