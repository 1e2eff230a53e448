"""Model size and cost in one dict, for logs, reports and benchmarks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def model_summary(net: nn.Module, height: int = 240, width: int = 240) -> dict[str, Any]:
    """Count parameters and the FLOPs of one forward pass on a single slice.

    FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products
    and attention; elementwise ops are not counted), in eval mode so BatchNorm and modality
    dropout behave as at inference. The network's training mode is restored afterwards.

    Args:
        net: a network taking [1, I, H, W] with I = ``len(net.modalities)`` (e.g. ``SegNet``).
        height: slice height (240 = UCSF-PDGM / BraTS axial slices).
        width: slice width.

    Returns:
        ``{"parameters": {"total": int, "trainable": int}, "flops_per_slice": int,
        "input_size": [height, width]}``.
    """
    total = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    first = next(net.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.zeros(1, len(net.modalities), height, width, device=device)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        net.train(was_training)
    return {
        "parameters": {"total": total, "trainable": trainable},
        "flops_per_slice": int(counter.get_total_flops()),
        "input_size": [height, width],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """One log line, e.g. ``params 1.93M (trainable 1.93M), 2.41 GFLOPs/slice at 240x240``."""
    params = summary["parameters"]
    h, w = summary["input_size"]
    return (
        f"params {params['total'] / 1e6:.2f}M (trainable {params['trainable'] / 1e6:.2f}M), "
        f"{summary['flops_per_slice'] / 1e9:.2f} GFLOPs/slice at {h}x{w}"
    )
