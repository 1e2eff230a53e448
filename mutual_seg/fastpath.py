"""Speed switches that leave results unchanged (within a stated tolerance): memory layout, compilation, autocast.

- ``channels_last``: NHWC tensors let oneDNN (CPU) and cuDNN (GPU) pick faster convolution kernels; the
  arithmetic is the same, only the summation order of some kernels differs (float32 agreement ~1e-5).
- ``compile``: ``nn.Module.compile`` (in place, so checkpoint keys stay the same) traces the network into
  fused kernels; worth it for long runs, costly (tens of seconds) for short ones.
- ``fold_batchnorm``: whole-volume inference runs an eval copy of the network in which each BatchNorm that
  follows a convolution is merged into that convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``): in eval
  mode BatchNorm is a fixed per-channel affine map, so the merged network computes the same function with one
  full pass over memory less per block (float32 agreement ~1e-6). Training is untouched.
- mixed precision is Lightning's ``trainer.precision`` (``bf16-mixed`` on CPU, ``16-mixed`` on GPU); code
  outside a Trainer (inference, the benchmark) uses :func:`autocast` with the same names.

Defaults live in ``conf/config.yaml`` (``module.fast_path``) and ``conf/trainer`` (``precision``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mutual_seg.errors import ConfigError

_AUTOCAST: dict[str, torch.dtype | None] = {
    "32-true": None, "32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16,
}


def autocast(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """The autocast context Lightning uses for ``trainer.precision`` (a no-op for full precision).

    Raises:
        ConfigError: a precision name other than 32-true, bf16-mixed or 16-mixed.
    """
    if str(precision) not in _AUTOCAST:
        raise ConfigError(f"precision {precision!r} is not supported here; use one of {', '.join(_AUTOCAST)}")
    dtype = _AUTOCAST[str(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


# ``mutual-seg-predict --precision`` short names, and ``auto`` (resolved by :func:`resolve_precision`).
PRECISION_ALIASES: dict[str, str] = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic runs in hardware on ``device`` (only there is bf16 autocast faster).

    CPUs: AMX tiles or AVX-512 BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later); older CPUs
    emulate bf16 and get slower. GPUs: what ``torch.cuda.is_bf16_supported`` says (Ampere and later).
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:  # private helpers (torch >= 2.1); without them, assume emulation
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def resolve_precision(choice: str, device: torch.device) -> str:
    """A precision name of :func:`autocast` from a ``--precision`` choice.

    ``auto`` is ``bf16-mixed`` where bf16 is native (:func:`native_bf16`), ``32-true`` elsewhere;
    ``32``/``bf16``/``16`` are short for ``32-true``/``bf16-mixed``/``16-mixed``.

    Raises:
        ConfigError: an unknown name.
    """
    if choice == "auto":
        return "bf16-mixed" if native_bf16(device) else "32-true"
    name = PRECISION_ALIASES.get(choice, choice)
    autocast(name)  # validates the name
    return name


def resolve_trainer_precision(precision: str, accelerator: str) -> tuple[str, str]:
    """The Lightning precision for ``trainer.precision``, and a sentence saying why.

    ``auto`` (what recipes that want bf16 for speed ask for) is ``bf16-mixed`` only where the training device
    runs bf16 natively (:func:`native_bf16`) and ``32-true`` elsewhere: a CPU without AMX or AVX-512 BF16
    emulates bf16 about 10x slower than float32. Any other value is Lightning's own and passes unchanged.

    Args:
        precision: the ``trainer.precision`` setting.
        accelerator: ``trainer.accelerator`` (``auto``/``gpu``/``cuda`` train on a GPU when there is one).
    """
    if str(precision) != "auto":
        return str(precision), f"precision {precision} (as configured)"
    on_gpu = str(accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    kind = "GPU" if on_gpu else "CPU"
    if native_bf16(device):
        return "bf16-mixed", f"precision bf16-mixed (trainer.precision=auto: this {kind} runs bf16 natively)"
    return "32-true", (f"precision 32-true (trainer.precision=auto: this {kind} has no native bf16, which it "
                       "would emulate several times slower than float32)")


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` with each BatchNorm2d that follows a (transposed) convolution in an
    ``nn.Sequential`` merged into it (the BatchNorm becomes ``nn.Identity``); ``net`` itself is untouched."""
    folded = copy.deepcopy(net).eval()
    for block in folded.modules():
        if not isinstance(block, nn.Sequential):
            continue
        for idx in range(len(block) - 1):
            conv, norm = block[idx], block[idx + 1]
            if (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(norm, nn.BatchNorm2d)
                    and norm.track_running_stats and norm.running_mean is not None):
                block[idx] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                block[idx + 1] = nn.Identity()
    return folded


class FastPath:
    """How a network is laid out in memory, whether it is compiled, and how inference runs it
    (``module.fast_path`` in conf/).

    Args:
        channels_last: keep weights and inputs in NHWC memory format.
        compile: compile the network with ``torch.compile`` (in place).
        fold_batchnorm: whole-volume inference runs a copy with BatchNorm merged into the convolutions
            (:func:`fold_batchnorm`; not with ``compile``, whose graph would be traced again for every copy).
    """

    # The plain path: what a checkpoint older than a switch ran with.
    PLAIN: ClassVar[dict[str, bool]] = {"channels_last": False, "compile": False, "fold_batchnorm": False}

    def __init__(self, channels_last: bool, compile: bool, fold_batchnorm: bool) -> None:
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        self.fold_batchnorm = bool(fold_batchnorm)

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None) -> FastPath:
        """From ``module.fast_path``; a switch missing (a checkpoint older than it) is off, as on the plain path."""
        settings = dict(settings or {})
        unknown = set(settings) - set(cls.PLAIN)
        if unknown:
            raise ConfigError(f"module.fast_path has unknown key(s) {sorted(unknown)}; valid: {', '.join(cls.PLAIN)}")
        return cls(**{**cls.PLAIN, **settings})

    def apply(self, net: nn.Module) -> nn.Module:
        """The network converted to the chosen layout and compiled if asked (same parameters, same keys)."""
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.compile:
            net.compile()
        return net

    def for_inference(self, net: nn.Module) -> nn.Module:
        """The network whole-volume inference should run: ``net`` itself, or its BatchNorm-folded eval copy."""
        if not self.fold_batchnorm or self.compile:
            return net
        folded = fold_batchnorm(net)
        return folded.to(memory_format=torch.channels_last) if self.channels_last else folded

    def prepare(self, x: Tensor) -> Tensor:
        """An input batch [B, C, H, W] in the layout the network expects."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x
