"""Fusions: I modality feature maps at one scale -> one map, behind one interface.

Every fusion is built as ``Fusion(channels, num_inputs, scale, **options)`` (``SegNet`` calls a Hydra
``_partial_`` factory once per scale) and called as ``fusion(features, present)``:

- ``features``: list of I tensors [B, C, H, W], one per modality track, in the network's order.
- ``present``: BoolTensor [B, I] (True = modality available for that sample) or None (all present).
  Absent modalities must not influence the output; at least one must be present per sample.
- returns ``(fused [B, C, H, W], attention or None)``. Mutual attention returns weights
  [B, heads, I, H, W] that sum to 1 over the present modalities (zero on absent ones).

``MutualAttentionFusion`` is the paper's section 3.3; ``ConcatFusion`` and ``MeanFusion`` are the
ablation baselines; ``HeMISFusion`` (mean and variance over the present modalities, Havaei et al. 2016) and
``GatedFusion`` (a learned per-pixel softmax gate, started at an equal split) are the alternatives the
no-harm study weighs against it. All work for any I >= 1. Each class says its name (``name``) and whether
it returns attention weights (``has_attention``), which the network reports for results and ``predict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mutual_seg.errors import ConfigError

READINGS: tuple[str, ...] = ("modality", "token")
# How the mutual block returns its attended features (``output``): "residual" = mean + out(attended);
# "residual_zero" = the same with ``out`` zero-initialized (untrained, the block is exactly mean fusion);
# "paper" = the attended sum alone, as section 3.3 describes it (no output conv, no residual).
OUTPUTS: tuple[str, ...] = ("residual", "residual_zero", "paper")


def _check(features: Sequence[Tensor], present: Tensor | None, num_inputs: int) -> tuple[Tensor, bool]:
    """Validate the call; return ``present`` as a float mask [B, I] (1 = present) and whether every modality is
    present in every sample (decided once per call: reading a GPU tensor's value waits for the GPU)."""
    if len(features) != num_inputs:
        raise ValueError(f"expected {num_inputs} feature maps, got {len(features)}")
    batch = features[0].shape[0]
    if present is None:
        return features[0].new_ones(batch, num_inputs), True
    if present.shape != (batch, num_inputs):
        raise ValueError(
            f"present must have shape {(batch, num_inputs)}, got {tuple(present.shape)}"
        )
    if not bool(present.any(dim=1).all()):
        raise ValueError("every sample needs at least one present modality")
    return present.to(features[0].dtype), bool(present.all())


def _masked_tracks(features: Sequence[Tensor], mask: Tensor, complete: bool) -> list[Tensor]:
    """The I tracks [B, C, H, W], each set to exactly zero in the samples where it is absent.

    ``torch.where`` rather than a product so that NaN/inf in an absent track cannot leak through.
    When every modality is present (inference on complete subjects) the tracks are returned as they
    are: no copy, and no [B, I, C, H, W] stack (a full pass over memory that, in NHWC, costs more than
    the 1x1 convolutions that follow).
    """
    if complete:
        return list(features)
    zero = features[0].new_zeros(())
    return [torch.where(mask[:, i, None, None, None] > 0, f, zero) for i, f in enumerate(features)]


def _masked_mean(tracks: Sequence[Tensor], mask: Tensor, complete: bool) -> Tensor:
    """Mean over the present entries of zero-masked tracks, I x [B, C, H, W] -> [B, C, H, W]."""
    total = tracks[0]
    for track in tracks[1:]:
        total = total + track
    if complete:
        return total / float(len(tracks))
    return total / mask.sum(dim=1)[:, None, None, None]


def _projection(in_channels: int, channels: int) -> nn.Sequential:
    """1x1 conv + BatchNorm + ReLU from ``in_channels`` back to C (concatenation's and HeMIS's output layer)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


class MeanFusion(nn.Module):
    """Average of the present modality features (no parameters).

    Args:
        channels: C (unused; part of the common constructor).
        num_inputs: I, the number of modality tracks.
        scale: scale index (unused).
    """

    name: ClassVar[str] = "mean"
    has_attention: ClassVar[bool] = False

    def __init__(self, channels: int, num_inputs: int, scale: int) -> None:
        super().__init__()
        self.num_inputs = num_inputs

    def forward(self, features: list[Tensor], present: Tensor | None = None) -> tuple[Tensor, None]:
        """Args: I x [B, C, H, W], present [B, I] or None. Returns: ([B, C, H, W], None)."""
        mask, complete = _check(features, present, self.num_inputs)
        return _masked_mean(_masked_tracks(features, mask, complete), mask, complete), None


class ConcatFusion(nn.Module):
    """Concatenate along channels, then 1x1 conv + BatchNorm + ReLU back to C channels.

    Absent modalities are zeroed and the rest rescaled by I / (number present), as inverted
    dropout does, so the 1x1 conv sees inputs of the same magnitude whatever is missing.

    Args:
        channels: C, channels of each input and of the output.
        num_inputs: I, the number of modality tracks.
        scale: scale index (unused).
    """

    name: ClassVar[str] = "concat"
    has_attention: ClassVar[bool] = False

    def __init__(self, channels: int, num_inputs: int, scale: int) -> None:
        super().__init__()
        self.num_inputs = num_inputs
        self.project = _projection(num_inputs * channels, channels)

    def forward(self, features: list[Tensor], present: Tensor | None = None) -> tuple[Tensor, None]:
        """Args: I x [B, C, H, W], present [B, I] or None. Returns: ([B, C, H, W], None)."""
        mask, complete = _check(features, present, self.num_inputs)
        stacked = torch.cat(_masked_tracks(features, mask, complete), dim=1)  # [B, I*C, H, W]
        if not complete:
            rescale = self.num_inputs / mask.sum(dim=1)
            stacked = stacked * rescale[:, None, None, None]
        return self.project(stacked), None


class MutualAttentionFusion(nn.Module):
    """Mutual attention (paper section 3.3): Q from the mean feature, K and V from each modality.

    Q = 1x1 conv of the mean of the present features (the shared context); K_i and V_i = per-modality
    1x1 convs of feature i (unshared, so each modality learns its own key and value). The softmax of
    the scaled Q.K similarity weighs the V_i, which are summed: ``fused = sum_i w_i V_i`` (``output="paper"``,
    the paper's block exactly). ``output="residual"`` adds, beyond the paper, an output 1x1 conv and a residual
    connection to the mean, ``fused = mean + out(sum_i w_i V_i)``; ``"residual_zero"`` starts ``out`` at zero
    (exactly mean fusion untrained). The residual path hands every modality's features to the decoder unweighted,
    so evidence the attention weighs down still counts (``model=mutual_residual``). The no-harm study's rule keeps
    ``paper`` (``conf/model/mutual.yaml``, the default): docs/ablation.md has both.

    Two readings of "softmax of the similarity" (chosen per scale):

    - ``"modality"``: at every pixel, softmax ACROSS MODALITIES of q.k_i / sqrt(d), per head. Cheap
      (linear in H*W), any scale, any I. Weights [B, heads, I, H, W].
    - ``"token"``: softmax ACROSS POSITIONS, multi-head cross-attention where the queries are the
      H*W tokens of the mean map and the keys/values are the I*H*W tokens of all modalities
      (absent modalities' tokens masked). Quadratic in H*W, so it is used only at the scales in
      ``token_scales`` (low resolution) and the modality reading elsewhere. No positional encoding
      is added: zero-padded convolutions already make features position-aware. The attention kept
      for visualization is the share of each query's attention that lands on each modality,
      [B, heads, I, H, W] (sums to 1 over I like the modality reading).

    Args:
        channels: C, channels of each input and of the output.
        num_inputs: I, the number of modality tracks.
        scale: index of this scale (0 = full resolution); decides the reading.
        reading: ``"modality"`` or ``"token"``.
        token_scales: scales that use the token reading when ``reading="token"``.
        heads: attention heads; must divide ``channels`` and ``key_channels``.
        key_channels: channels of Q and K (all heads together); None means ``channels``.
        output: one of :data:`OUTPUTS`.
        temperature: divides the similarity before the softmax, beyond the paper's 1/sqrt(d) (1.0: the paper);
            above 1 the weights are softer, so no modality can be weighed down to nothing.
    """

    name: ClassVar[str] = "mutual"
    has_attention: ClassVar[bool] = True  # forward returns per-modality weights

    def __init__(
        self,
        channels: int,
        num_inputs: int,
        scale: int,
        reading: str,
        token_scales: Sequence[int],
        heads: int,
        key_channels: int | None,
        output: str,
        temperature: float,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"mutual attention temperature must be > 0, got {temperature}; 1.0 is the paper's "
                              "scaling (model.net.fusion.temperature)")
        if output not in OUTPUTS:
            raise ConfigError(f"unknown mutual attention output {output!r}; expected one of {', '.join(OUTPUTS)}")
        if reading not in READINGS:
            raise ConfigError(
                f"unknown mutual attention reading {reading!r}; expected one of {', '.join(READINGS)}"
            )
        key_channels = channels if key_channels is None else int(key_channels)
        if heads < 1 or channels % heads or key_channels % heads:
            raise ConfigError(
                f"mutual attention heads={heads} must divide channels={channels} and "
                f"key_channels={key_channels} at scale {scale}; pick heads dividing every width in "
                "model.net.features"
            )
        self.num_inputs = num_inputs
        self.heads = heads
        self.token_scales = tuple(int(s) for s in token_scales)
        self.reading = "token" if reading == "token" and scale in self.token_scales else "modality"
        self.query = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.keys = nn.ModuleList(
            nn.Conv2d(channels, key_channels, kernel_size=1) for _ in range(num_inputs)
        )
        self.values = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel_size=1) for _ in range(num_inputs)
        )
        self.output = output
        self.temperature = float(temperature)
        self.out = nn.Conv2d(channels, channels, kernel_size=1) if output != "paper" else None
        if output == "residual_zero":
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(
        self, features: list[Tensor], present: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Args: I x [B, C, H, W], present [B, I] or None.

        Returns:
            (fused [B, C, H, W], weights [B, heads, I, H, W] summing to 1 over present modalities).
        """
        mask, complete = _check(features, present, self.num_inputs)
        tracks = _masked_tracks(features, mask, complete)  # I x [B, C, H, W]
        mean = _masked_mean(tracks, mask, complete)  # [B, C, H, W]
        q = self.query(mean)  # [B, Ck, H, W]
        k = [proj(track) for proj, track in zip(self.keys, tracks)]  # I x [B, Ck, H, W]
        v = [proj(track) for proj, track in zip(self.values, tracks)]  # I x [B, C, H, W]
        if self.reading == "modality":
            attended, weights = self._across_modalities(q, k, v, None if complete else mask)
        else:
            attended, weights = self._across_positions(q, torch.stack(k, dim=1), torch.stack(v, dim=1), mask)
        if self.out is None:
            return attended, weights  # the paper's block: the weighted sum of the values
        return mean + self.out(attended), weights

    def _across_modalities(
        self, q: Tensor, k: list[Tensor], v: list[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Per-pixel softmax over modalities (``mask`` None: every modality present). Returns ([B, C, H, W],
        [B, heads, I, H, W]).

        Works on the I tracks one at a time (no [B, I, C, H, W] stack) and keeps the inputs' memory
        layout (NCHW or NHWC), so the elementwise work stays a few passes over [B, C, H, W].
        """
        b, ck, h, w = q.shape
        c, nh = v[0].shape[1], self.heads
        qh = q.view(b, nh, ck // nh, h, w)
        scale = math.sqrt(ck // nh) * self.temperature  # 1.0: the paper's 1/sqrt(d), bit for bit
        logits = torch.stack(
            [(qh * key.view(b, nh, ck // nh, h, w)).sum(dim=2) / scale for key in k], dim=1
        )  # [B, I, nh, H, W]
        if mask is not None:
            logits = logits.masked_fill(mask[:, :, None, None, None] == 0, float("-inf"))
        weights = logits.softmax(dim=1)  # absent modalities get exactly 0
        attended = weights[:, 0, :, None] * v[0].view(b, nh, c // nh, h, w)
        for i in range(1, len(v)):
            attended = attended + weights[:, i, :, None] * v[i].view(b, nh, c // nh, h, w)
        return attended.reshape(b, c, h, w), weights.transpose(1, 2)

    def _across_positions(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Token cross-attention over all modalities' positions. Same returns as above."""
        b, i, ck, h, w = k.shape
        c, nh, n = v.shape[2], self.heads, h * w
        qt = q.view(b, nh, ck // nh, n).transpose(2, 3)  # [B, nh, N, dk]
        # keys/values of modality i occupy tokens i*N .. (i+1)*N-1
        kt = k.view(b, i, nh, ck // nh, n).permute(0, 2, 1, 4, 3).reshape(b, nh, i * n, ck // nh)
        vt = v.view(b, i, nh, c // nh, n).permute(0, 2, 1, 4, 3).reshape(b, nh, i * n, c // nh)
        # Appending a one-hot "which modality" column to V makes the same attention also return,
        # per query, the share of weight on each modality (the visualization), in one call.
        onehot = torch.eye(i, dtype=vt.dtype, device=vt.device).repeat_interleave(n, dim=0)
        vt = torch.cat([vt, onehot.expand(b, nh, i * n, i)], dim=-1)
        key_mask = (mask > 0).repeat_interleave(n, dim=1)[:, None, None, :]  # [B, 1, 1, I*N]
        scale = None if self.temperature == 1.0 else 1.0 / (math.sqrt(ck // nh) * self.temperature)
        out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=key_mask, scale=scale)  # [B, nh, N, dv + I]
        attended = out[..., : c // nh].transpose(2, 3).reshape(b, c, h, w)
        weights = out[..., c // nh :].transpose(2, 3).reshape(b, nh, i, h, w)
        return attended, weights


class HeMISFusion(nn.Module):
    """HeMIS fusion (Havaei et al., MICCAI 2016): the mean and the variance over the present modalities,
    concatenated, then 1x1 conv + BatchNorm + ReLU back to C channels.

    The moments do not depend on the order or the number of modalities present, so a modality that adds little
    changes the fused map only through its deviation from the others (the variance), and one modality alone gives
    variance 0. Unlike mutual attention, nothing has to learn to ignore a misleading track before the decoder
    sees the other one.

    Args:
        channels: C, channels of each input and of the output.
        num_inputs: I, the number of modality tracks.
        scale: scale index (unused).
    """

    name: ClassVar[str] = "hemis"
    has_attention: ClassVar[bool] = False

    def __init__(self, channels: int, num_inputs: int, scale: int) -> None:
        super().__init__()
        self.num_inputs = num_inputs
        self.project = _projection(2 * channels, channels)

    def forward(self, features: list[Tensor], present: Tensor | None = None) -> tuple[Tensor, None]:
        """Args: I x [B, C, H, W], present [B, I] or None. Returns: ([B, C, H, W], None)."""
        mask, complete = _check(features, present, self.num_inputs)
        tracks = _masked_tracks(features, mask, complete)
        mean = _masked_mean(tracks, mask, complete)
        # variance over the present tracks: absent ones are zero-masked, so subtract the mean only where present
        squares = [
            (t - mean) ** 2 if complete else (t - mean) ** 2 * mask[:, i, None, None, None]
            for i, t in enumerate(tracks)
        ]
        variance = _masked_mean(squares, mask, complete)
        return self.project(torch.cat([mean, variance], dim=1)), None


class GatedFusion(nn.Module):
    """A learned per-pixel gate between the modalities: ``fused = sum_i g_i f_i`` with
    ``g = softmax_i(W [f_1, ..., f_I])`` (a 1x1 conv on the concatenated tracks, one logit per modality).

    The gate's conv starts at zero, so the untrained block is exactly mean fusion (an equal split) and each
    modality's share grows only as far as the loss asks for it. Absent modalities get a gate of exactly 0.

    Args:
        channels: C, channels of each input and of the output.
        num_inputs: I, the number of modality tracks.
        scale: scale index (unused).
    """

    name: ClassVar[str] = "gated"
    has_attention: ClassVar[bool] = True  # forward returns the per-modality gate

    def __init__(self, channels: int, num_inputs: int, scale: int) -> None:
        super().__init__()
        self.num_inputs = num_inputs
        self.gate = nn.Conv2d(num_inputs * channels, num_inputs, kernel_size=1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, features: list[Tensor], present: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Args: I x [B, C, H, W], present [B, I] or None.

        Returns:
            (fused [B, C, H, W], gate [B, 1, I, H, W] summing to 1 over the present modalities).
        """
        mask, complete = _check(features, present, self.num_inputs)
        tracks = _masked_tracks(features, mask, complete)
        logits = self.gate(torch.cat(tracks, dim=1))  # [B, I, H, W]
        if not complete:
            logits = logits.masked_fill(mask[:, :, None, None] == 0, float("-inf"))
        gate = logits.softmax(dim=1)
        fused = gate[:, 0:1] * tracks[0]
        for i in range(1, len(tracks)):
            fused = fused + gate[:, i : i + 1] * tracks[i]
        return fused, gate[:, None]


FUSIONS: dict[str, type[nn.Module]] = {
    "mutual": MutualAttentionFusion,
    "concat": ConcatFusion,
    "mean": MeanFusion,
    "hemis": HeMISFusion,
    "gated": GatedFusion,
}


def fusion_label(fusion: Any, options: Mapping[str, Any]) -> str:
    """The short name of a fusion class (or a ``functools.partial`` of one) built with ``options``.

    Its class attribute ``name`` (``mean``, ``concat``, ``mutual``...), followed by ``_<reading>`` when the options
    choose a reading (``mutual_modality``, ``mutual_token``): the name in ``summary.json``, W&B tags and
    ``predict.json``. A new fusion sets ``name`` (and ``has_attention`` when it returns weights).
    """
    cls = getattr(fusion, "func", fusion)
    name = getattr(cls, "name", None)
    if not isinstance(name, str):
        raise ConfigError(f"fusion {getattr(cls, '__name__', cls)!r} has no class attribute `name`; set one "
                          "(e.g. name = \"mean\") in models/fusion.py")
    reading = options.get("reading")
    return f"{name}_{reading}" if reading else name


def build_fusion(
    name: str, channels: int, num_inputs: int, scale: int, **options: Any
) -> nn.Module:
    """Build a fusion by registry name, for use outside Hydra.

    Example::

        fusion = build_fusion("mutual", channels=32, num_inputs=2, scale=0, reading="modality",
                              token_scales=[], heads=1, key_channels=None, output="residual", temperature=1.0)

    Raises:
        ConfigError: ``name`` is not in :data:`FUSIONS`.
    """
    if name not in FUSIONS:
        raise ConfigError(f"unknown fusion {name!r}; expected one of {', '.join(FUSIONS)}")
    return FUSIONS[name](channels=channels, num_inputs=num_inputs, scale=scale, **options)
