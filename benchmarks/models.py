"""Per-model figures: parameters, FLOPs, training throughput, whole-volume inference time, peak memory.

Each model is measured in a fresh process (``python benchmarks/models.py SPEC.json OUT.json``) so that its
peak resident memory is its own. Our networks are built by Hydra from ``conf/`` exactly as a run builds
them; the peer is MONAI's ``BasicUNet`` at a width matched to our model's parameter count, placed inside
the same ``SegModule`` so that both go through the project's one whole-volume inference path.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import current_rss_mb, peak_rss_mb

from mutual_seg.fastpath import autocast
from mutual_seg.runtime.malloc import tune_malloc

BATCH = 8


class PeerNet(nn.Module):
    """MONAI's 2D ``BasicUNet`` behind our network's call signature ``net(x, present=None)``."""

    def __init__(self, in_channels: int, out_channels: int, features: list[int]) -> None:
        super().__init__()
        from monai.networks.nets import BasicUNet

        self.unet = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                              features=tuple(features))
        self.out_channels = out_channels
        self.modalities = tuple(f"input{i}" for i in range(in_channels))

    def forward(self, x: Tensor, present: Tensor | None = None) -> Tensor:
        return self.unet(x)


def peer_features(target_params: int, in_channels: int, out_channels: int) -> list[int]:
    """BasicUNet widths, MONAI's default ratios (32, 32, 64, 128, 256, 32) scaled to ``target_params``."""
    base = (32, 32, 64, 128, 256, 32)

    def params(k: float) -> int:
        feats = [max(2, round(k * f)) for f in base]
        return sum(p.numel() for p in PeerNet(in_channels, out_channels, feats).parameters())

    lo, hi = 0.05, 4.0
    for _ in range(30):  # parameters grow monotonically (about quadratically) with the scale
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if params(mid) < target_params else (lo, mid)
    best = min((lo, hi), key=lambda k: abs(params(k) - target_params))
    return [max(2, round(best * f)) for f in base]


def build_module(spec: dict[str, Any]):
    """The project's SegModule as a run builds it (Hydra compose), with the peer's net swapped in if asked."""
    from hydra.utils import instantiate

    from mutual_seg.config import compose

    overrides = [f"model={spec['model']}", f"modality={spec['modality']}", "paths.output_dir=/tmp",
                 f"model.net.features=[{','.join(map(str, spec['features']))}]"]
    cfg = compose(overrides + list(spec.get("overrides", [])))
    module = instantiate(cfg.module, _recursive_=False)
    if spec.get("peer_features"):
        peer = PeerNet(len(cfg.modality.names), int(cfg.data.out_channels), spec["peer_features"])
        module.net = module.fast_path.apply(peer)  # the same layout switches as ours
    return module, cfg


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read after it measures the work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(module, precision: str, size: tuple[int, int], steps: int, seconds: float,
                     device: torch.device) -> dict[str, Any]:
    """Slices/s of forward + loss + backward + Adam step at batch 8 on [H, W] = ``size`` slices (after warm-up),
    from the median step time.

    The FLOPs of a training step (forward and backward, counted by ``FlopCounterMode``) are counted on one
    slice: they grow linearly with the batch.
    """
    torch.manual_seed(0)
    inputs = len(module.hparams.modalities)
    x = torch.rand(BATCH, inputs, *size).to(device)
    y = (torch.rand(BATCH, module.net.out_channels, *size) > 0.9).float().to(device)
    module.train()
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer

    def step(n: int = BATCH) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device.type):
            loss = module.loss_fn(module(x[:n]), y[:n])
        loss.backward()
        optimizer.step()
        _sync(device)

    flops = count_flops(lambda: step(1))
    step(), step()  # warm-up: oneDNN kernel creation for these shapes, allocator growth, compile, thread pool
    times, start = [], time.perf_counter()
    while len(times) < steps or time.perf_counter() - start < seconds:
        tick = time.perf_counter()
        step()
        times.append(time.perf_counter() - tick)
        if len(times) >= 4 * steps:
            break
    # the median step: a shared machine's occasional stalls move the mean, not the median
    rate = BATCH / statistics.median(times)
    return {"slices_per_s": round(rate, 2), "steps": len(times), "train_flops_per_slice": flops,
            "train_gflops_per_s": round(rate * flops / 1e9, 1),
            "step_s": {"median": round(statistics.median(times), 4), "min": round(min(times), 4),
                       "max": round(max(times), 4)}}


def inference_time(module, subject: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Seconds per whole subject through the project's volume inference (brain-box crop, batches, threshold)."""
    module.eval()
    image, mask, spacing = subject["image"], subject["mask"], subject["spacing"]
    segment = _segmenter(module)
    # warm-up on two middle slices: the first ones may hold a brain box so small that a network with four
    # poolings reaches 1 x 1 (MONAI's instance norm then refuses it)
    mid = slice(image.shape[0] // 2, image.shape[0] // 2 + 2)
    segment(image[mid], spacing, mask[mid])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segment(image, spacing, mask)
        times.append(time.perf_counter() - start)
    return {"s_per_subject": round(min(times), 2), "repeats": repeats, "volume": list(image.shape)}


def _segmenter(module):
    """The project's whole-volume inference as the test step runs it (``SegModule.segment_volume``, which calls
    ``mutual_seg.inference``: brain-box crop, batches, threshold, post-processing)."""
    return lambda image, spacing, mask: module.segment_volume(image, spacing, mask=mask)


def load_subject(subject: dict[str, Any], modalities: list[str]) -> dict[str, Any]:
    """A cached full-size subject (``{"images": {m: npy}, "mask": npy, "spacing": [z, x, y]}``) as slices
    [Z, I, X, Y], its brain mask [Z, X, Y] and spacing, read whole into memory as the test loader does."""
    import numpy as np

    image = np.stack([np.load(subject["images"][m]) for m in modalities], axis=1)
    mask = np.load(subject["mask"]) > 0
    return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask), "spacing": tuple(subject["spacing"])}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Every figure of one model (see the module docstring); ``spec`` names the model and the settings."""
    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    base_rss = current_rss_mb()
    module, cfg = build_module(spec)
    tune_malloc(cfg.malloc)  # as a run does (conf/config.yaml), for ours and the peer alike
    device = torch.device(spec.get("device", "cpu"))  # bench.py: the GPU where there is one
    module.to(device)
    precision = spec.get("precision", "32-true")  # as trainer.precision; the module's fast_path is in overrides
    params = sum(p.numel() for p in module.net.parameters())
    # 240: whole UCSF-PDGM / BraTS axial slices; [H, W]: the brain-box window of data.slices.brain_crop
    size = (spec["slice"], spec["slice"]) if isinstance(spec["slice"], int) else tuple(spec["slice"])
    x = torch.zeros(1, len(cfg.modality.names), *size, device=device)
    module.eval()
    with torch.no_grad():
        flops = count_flops(lambda: module(x))
    result: dict[str, Any] = {"parameters": params, "flops_per_slice": flops, "slice": list(size)}
    result.update(train_throughput(module, precision, size, spec["train_steps"], spec["train_seconds"], device))
    if spec.get("subject"):
        subject = load_subject(spec["subject"], list(cfg.modality.names))
        with autocast(precision, device.type):  # each timed call ends on the CPU (masks), so it waits for the GPU
            result.update(inference_time(module, subject, spec["inference_repeats"]))
    result["device"] = str(device)
    if device.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["rss_after_imports_mb"] = round(base_rss, 1)
    return result


if __name__ == "__main__":
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    out_path.write_text(json.dumps(run(json.loads(spec_path.read_text())), indent=2) + "\n")
