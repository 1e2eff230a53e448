"""SegNet: I modality encoder tracks -> a fusion at every scale -> one decoder -> O logit maps.

The paper's Figure 2 (Seshimo & Rashed 2024, section 3.2): each input modality has its own encoder
track (weights not shared); at every scale the tracks' features are fused (mutual attention in the
paper) and the fused map feeds the skip connection, and at the bottom, the decoder. With one
modality it is the single-input network of the paper's Table 1.

Beyond the paper, the network tolerates missing modalities: ``present`` tells the fusions which
tracks to ignore, and ``modality_dropout`` trains for it by dropping whole tracks per sample. With
``aux_weight > 0`` every encoder track also gets a light segmentation head (auxiliary supervision, as
missing-modality models such as RFNet and mmFormer regularise their encoders), so that each track learns to
segment on its own and the fusion cannot lean on one track while another learns nothing useful; the heads
train only (``forward(..., with_aux=True)``) and :meth:`SegNet.drop_aux_heads` removes them for inference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mutual_seg.errors import ConfigError
from mutual_seg.modalities import MODALITIES
from mutual_seg.models.blocks import DecMod, EncMod, Map, TrackHead, probabilities
from mutual_seg.models.fusion import fusion_label


class Encoder(nn.Module):
    """One encoder track: ``len(features)`` stages, each halving the resolution but the last.

    Args:
        in_channels: input channels (1 per modality track; I for early fusion).
        features: channels per scale, e.g. (16, 32, 64, 128).
        convs_per_stage: ConvMods per stage.
    """

    def __init__(self, in_channels: int, features: Sequence[int], convs_per_stage: int) -> None:
        super().__init__()
        widths = [in_channels, *features]
        self.stages = nn.ModuleList(
            EncMod(widths[s], widths[s + 1], convs_per_stage, pool=s < len(features) - 1)
            for s in range(len(features))
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """Args: x [B, C_in, H, W], H and W multiples of 2^(depth-1).

        Returns:
            Per-scale features, scale s being [B, features[s], H / 2^s, W / 2^s].
        """
        out = []
        for stage in self.stages:
            skip, x = stage(x)
            out.append(skip)
        return out


def drop_modalities(present: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Modality dropout: drop each present modality with probability p, never all of a sample's.

    Args:
        present: BoolTensor [B, I], the modalities available per sample.
        p: drop probability per modality and sample.
        generator: optional RNG for reproducibility.

    Returns:
        BoolTensor [B, I], a subset of ``present`` with at least one True per row (a sample whose
        draw dropped everything keeps one of its present modalities, chosen uniformly).
    """
    keep = torch.rand(present.shape, generator=generator, device=present.device) >= p
    keep &= present
    empty = ~keep.any(dim=1)
    if bool(empty.any()):
        rescue = torch.multinomial(present[empty].float(), 1, generator=generator).squeeze(1)
        keep[empty.nonzero().squeeze(1), rescue] = True
    return keep


def select_present(trained: Sequence[str], available: Sequence[str]) -> Tensor:
    """Which of a network's trained modalities a caller can supply, as a ``present`` mask.

    Args:
        trained: the network's modalities (``SegNet.modalities``), in order.
        available: modality names the caller has images for; extra known names are ignored.

    Returns:
        BoolTensor [I] in the order of ``trained``; ``SegNet.forward`` broadcasts it over the batch.

    Raises:
        ConfigError: a name is unknown (a typo), or none of the trained modalities is available.
    """
    known = set(MODALITIES) | set(trained)
    unknown = [name for name in available if name not in known]
    if unknown:
        raise ConfigError(
            f"unknown modality name(s) {', '.join(map(repr, unknown))}; expected names from "
            f"{', '.join(sorted(known))}"
        )
    mask = torch.tensor([name in set(available) for name in trained], dtype=torch.bool)
    if not bool(mask.any()):
        raise ConfigError(
            f"none of the network's modalities ({', '.join(trained)}) is available (got "
            f"{', '.join(available) or 'none'}); supply at least one of them"
        )
    return mask


class SegNet(nn.Module):
    """Multimodal 2D segmentation network (paper section 3.2) returning LOGITS.

    The forward pass returns logits so that training can use ``BCEWithLogitsLoss`` (stable); the
    paper's final sigmoid is :meth:`probabilities`.

    Args:
        modalities: names of the I input modalities, in channel order (e.g. ``["flair", "t2w"]``);
            they key the encoder tracks, so checkpoints say which track is which.
        out_channels: O, the number of output maps.
        features: channels per scale; depth = ``len(features)`` scales, ``depth - 1`` poolings.
        fusion: factory called as ``fusion(channels=C, num_inputs=I, scale=s)`` for each scale
            (a Hydra ``_partial_`` node); ignored (may be None) with ``early_fusion``.
        output_prior: None, or the probability the untrained network predicts everywhere (the output
            bias's start; :class:`~mutual_seg.models.blocks.Map`).
        modality_dropout: in training, probability of dropping each modality track per sample
            (never all); 0 reproduces the paper.
        early_fusion: True for the baseline U-Net with one encoder over the I stacked channels and
            no fusion modules.
        convs_per_stage: ConvMods per encoder/decoder stage (1 = the paper's modules literally).
        aux_weight: weight of the per-track auxiliary losses in training (0: no track heads, the paper);
            the LightningModule reads it, the network only builds the heads.

    Example::

        from functools import partial
        from mutual_seg.models.fusion import MeanFusion
        net = SegNet(["flair", "t2w"], 1, [16, 32, 64, 128], partial(MeanFusion), output_prior=0.01,
                     modality_dropout=0.0, early_fusion=False, convs_per_stage=2, aux_weight=0.0)  # conf/model/base.yaml
        logits = net(torch.randn(2, 2, 240, 240))  # [2, 1, 240, 240]
    """

    def __init__(
        self,
        modalities: Sequence[str],
        out_channels: int,
        features: Sequence[int],
        fusion: Callable[..., nn.Module] | None,
        output_prior: float | None,
        modality_dropout: float,
        early_fusion: bool,
        convs_per_stage: int,
        aux_weight: float,
    ) -> None:
        super().__init__()
        self.modalities: tuple[str, ...] = tuple(str(m) for m in modalities)
        features = [int(f) for f in features]
        _validate(self.modalities, features, modality_dropout, convs_per_stage)
        if fusion is None and not early_fusion:
            raise ConfigError("model.net.fusion is null; set a fusion node or early_fusion: true")
        self.out_channels = int(out_channels)
        self.features = tuple(features)
        self.modality_dropout = float(modality_dropout)
        self.early_fusion = bool(early_fusion)
        # What the network is, said once (summary.json, W&B tags, predict.json, the ablation table read it).
        self._fusion_name = "early" if self.early_fusion else fusion_label(fusion, getattr(fusion, "keywords", {}))
        num_inputs = len(self.modalities)
        if self.early_fusion:
            self.encoder = Encoder(num_inputs, features, convs_per_stage)
            self.fusions = None
        else:
            self.tracks = nn.ModuleDict(
                {m: Encoder(1, features, convs_per_stage) for m in self.modalities}
            )
            self.fusions = nn.ModuleList(
                fusion(channels=c, num_inputs=num_inputs, scale=s) for s, c in enumerate(features)
            )
            _check_token_scales(self.fusions, len(features))
        if aux_weight < 0:
            raise ConfigError(f"model.net.aux_weight must be >= 0 (0: no track heads), got {aux_weight}")
        if aux_weight > 0 and self.early_fusion:
            raise ConfigError("model.net.aux_weight > 0 needs separate encoder tracks; early fusion has one encoder")
        self.aux_weight = float(aux_weight)
        self.track_heads: nn.ModuleDict | None = (
            nn.ModuleDict({m: TrackHead(features, out_channels, output_prior) for m in self.modalities})
            if self.aux_weight > 0 else None
        )
        self.decoder = nn.ModuleList(
            DecMod(features[s + 1], features[s], features[s], convs_per_stage)
            for s in reversed(range(len(features) - 1))
        )
        self.map = Map(features[0], out_channels, output_prior)
        # Attention weights of the last forward, per scale (None for fusions without weights);
        # detached and cropped to the input's footprint at that scale, for visualization.
        self.last_attention: list[Tensor | None] = [None] * len(features)
        # The present mask actually used by the last forward (after modality dropout), [B, I].
        self.last_present: Tensor | None = None

    @property
    def fusion_name(self) -> str:
        """Short name of the fusion: ``early`` (one encoder), else the fusion class's ``name`` (``mean``, ``concat``,
        ``mutual_modality``, ``mutual_token`` ...; :func:`~mutual_seg.models.fusion.fusion_label`)."""
        return self._fusion_name

    @property
    def has_attention(self) -> bool:
        """Whether the fusions return per-modality attention weights (``last_attention``; mutual attention)."""
        return self.fusions is not None and bool(getattr(type(self.fusions[0]), "has_attention", False))

    @property
    def depth(self) -> int:
        """Number of scales (len(features))."""
        return len(self.features)

    def drop_aux_heads(self) -> SegNet:
        """Remove the training-only track heads (inference and ``predict`` never run them); returns self."""
        self.track_heads = None
        return self

    def forward(
        self, x: Tensor, present: Tensor | None = None, with_aux: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Segment a batch of slices.

        Args:
            x: [B, I, H, W], modalities in the order of ``self.modalities``; any H, W.
            present: BoolTensor [B, I] or [I] (True = available) or None (all). Absent channels may
                hold anything (e.g. zeros); they do not influence the output.
            with_aux: also return each track head's logits (training with ``aux_weight > 0``).

        Returns:
            Logits [B, O, H, W]; with ``with_aux``, (logits, I x [B, O, H, W] track logits in the order of
            ``self.modalities``).
        """
        b, i, h, w = x.shape
        if i != len(self.modalities):
            raise ValueError(
                f"expected {len(self.modalities)} input channels ({', '.join(self.modalities)}), "
                f"got {i}"
            )
        present = self._present(present, b, x.device)
        if self.training and self.modality_dropout > 0:
            dropped = drop_modalities(present, self.modality_dropout)
        else:
            dropped = present
        self.last_present = dropped.detach()
        # Absent inputs are zeroed so that NaN/inf there cannot propagate. With separate tracks,
        # a track dropped by modality dropout keeps its real input (the fusion ignores it) so its
        # BatchNorm statistics stay those of real data; early fusion has no fusion to ignore
        # it, so there the dropped channel itself is zeroed.
        keep = dropped if self.early_fusion else present
        x_in = torch.where(keep[:, :, None, None], x, torch.zeros_like(x))
        present = dropped

        # Pooling an odd size drops a row/column, so pad to a multiple of 2^(depth-1) and crop
        # back at the end (as MONAI's BasicUNet explains); replicate avoids an artificial edge.
        multiple = 2 ** (self.depth - 1)
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        if pad_h or pad_w:
            x_in = F.pad(x_in, (0, pad_w, 0, pad_h), mode="replicate")

        skips, tracks = self._encode_and_fuse(x_in, present, (h, w))
        y = skips[-1]
        for stage, skip in zip(self.decoder, reversed(skips[:-1])):
            y = stage(y, skip)
        logits = self.map(y)[:, :, :h, :w]
        if not with_aux:
            return logits
        if self.track_heads is None:
            raise ValueError("with_aux=True needs track heads (model.net.aux_weight > 0, not dropped)")
        aux = [self.track_heads[m](tracks[m])[:, :, :h, :w] for m in self.modalities]
        return logits, aux

    def probabilities(self, x: Tensor, present: Tensor | None = None) -> Tensor:
        """Forward pass then the paper's sigmoid: [B, I, H, W] -> probabilities [B, O, H, W]."""
        return probabilities(self(x, present))

    def _present(self, present: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """Normalize ``present`` to a BoolTensor [B, I] and reject samples with nothing present."""
        num = len(self.modalities)
        if present is None:
            return torch.ones(batch, num, dtype=torch.bool, device=device)
        present = present.to(device=device, dtype=torch.bool)
        if present.dim() == 1:
            present = present.expand(batch, num)
        if present.shape != (batch, num):
            raise ValueError(
                f"present must be [{batch}, {num}] or [{num}], got {list(present.shape)}"
            )
        if not bool(present.any(dim=1).all()):
            raise ValueError("present has a sample with no modality; at least one is needed")
        return present

    def _encode_and_fuse(
        self, x: Tensor, present: Tensor, size: tuple[int, int]
    ) -> tuple[list[Tensor], dict[str, list[Tensor]]]:
        """Run the encoder(s) and the fusions. Returns fused per-scale maps [B, features[s], ...] and the
        computed tracks' own per-scale features by modality (empty for early fusion)."""
        if self.early_fusion:
            self.last_attention = [None] * self.depth
            return self.encoder(x), {}
        # At inference a track absent from the whole batch is not computed (saves its cost). In
        # training every track runs so that every parameter takes part (DDP expects that).
        computed = {
            m: self.tracks[m](x[:, j : j + 1])
            for j, m in enumerate(self.modalities)
            if self.training or bool(present[:, j].any())
        }
        reference = next(iter(computed.values()))
        # Fusions mask absent tracks anyway; zeros stand in for the ones not computed.
        per_track = [
            computed[m] if m in computed else [torch.zeros_like(f) for f in reference]
            for m in self.modalities
        ]
        fused, attention = [], []
        for s, fusion in enumerate(self.fusions):
            out, weights = fusion([track[s] for track in per_track], present)
            fused.append(out)
            if weights is not None:
                rows, cols = -(-size[0] // 2**s), -(-size[1] // 2**s)  # ceil: the input's footprint
                weights = weights.detach()[..., :rows, :cols]
            attention.append(weights)
        self.last_attention = attention
        return fused, computed


def _validate(
    modalities: tuple[str, ...], features: list[int], modality_dropout: float, convs: int
) -> None:
    """Reject configurations that would fail later with an obscure shape error."""
    if not modalities:
        raise ConfigError("model.net.modalities is empty; list at least one modality name")
    if len(set(modalities)) != len(modalities):
        raise ConfigError(
            f"model.net.modalities has duplicates: {list(modalities)}; list each once"
        )
    bad = [m for m in modalities if not m or "." in m]
    if bad:
        raise ConfigError(f"modality names {bad} are invalid; use names without dots, e.g. 'flair'")
    if not features or any(f < 1 for f in features):
        raise ConfigError(f"model.net.features must be positive channel counts, got {features}")
    if not 0.0 <= modality_dropout < 1.0:
        raise ConfigError(f"model.net.modality_dropout must be in [0, 1), got {modality_dropout}")
    if convs < 1:
        raise ConfigError(f"model.net.convs_per_stage must be >= 1, got {convs}")


def _check_token_scales(fusions: nn.ModuleList, depth: int) -> None:
    """A token scale beyond the network's depth is almost surely a config mistake: say so."""
    for fusion in fusions:
        beyond = [s for s in getattr(fusion, "token_scales", ()) if not 0 <= s < depth]
        if beyond:
            raise ConfigError(
                f"model.net.fusion.token_scales {beyond} outside scales 0..{depth - 1} of this "
                f"network (len(features) = {depth}); e.g. token_scales: [{depth - 1}] for the bottom"
            )


def fusion_name_of(net: Mapping[str, Any]) -> str:
    """:attr:`SegNet.fusion_name` of a network config (``model.net``) without building it (e.g. for a failed job)."""
    from hydra.utils import get_class

    fusion = net.get("fusion")
    if net.get("early_fusion") or not fusion:
        return "early"
    return fusion_label(get_class(str(fusion["_target_"])), fusion)
