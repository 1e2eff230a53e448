"""Speed switches that leave results unchanged (within a stated tolerance): memory layout, compilation, autocast.

- ``channels_last``: NHWC tensors let oneDNN (CPU) and cuDNN (GPU) pick faster convolution kernels; the
  arithmetic is the same, only the summation order of some kernels differs (float32 agreement ~1e-5).
- ``compile``: ``nn.Module.compile`` (in place, so checkpoint keys stay the same) traces the network into
  fused kernels; worth it for long runs, costly (tens of seconds) for short ones.
- mixed precision is Lightning's ``trainer.precision`` (``bf16-mixed`` on CPU, ``16-mixed`` on GPU); code
  outside a Trainer (inference, the benchmark) uses :func:`autocast` with the same names.

Defaults live in ``conf/config.yaml`` (``module.fast_path``) and ``conf/trainer`` (``precision``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

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


class FastPath:
    """How a network is laid out in memory and whether it is compiled (``module.fast_path`` in conf/).

    Args:
        channels_last: keep weights and inputs in NHWC memory format.
        compile: compile the network with ``torch.compile`` (in place).
    """

    def __init__(self, channels_last: bool, compile: bool) -> None:
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None) -> FastPath:
        """From ``module.fast_path``; None (a checkpoint older than these switches) is the plain path."""
        if settings is None:
            return cls(channels_last=False, compile=False)
        unknown = set(settings) - {"channels_last", "compile"}
        if unknown:
            raise ConfigError(f"module.fast_path has unknown key(s) {sorted(unknown)}; valid: channels_last, compile")
        return cls(**settings)

    def apply(self, net: nn.Module) -> nn.Module:
        """The network converted to the chosen layout and compiled if asked (same parameters, same keys)."""
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.compile:
            net.compile()
        return net

    def prepare(self, x: Tensor) -> Tensor:
        """An input batch [B, C, H, W] in the layout the network expects."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x
