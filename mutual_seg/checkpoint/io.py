"""Lightning ``CheckpointIO`` that writes checkpoints atomically in their own folder.

Lightning's default writes the checkpoint into the destination through a buffer, so a full disk leaves a truncated
``best.ckpt`` and a long traceback. Here the bytes go to a temporary name beside the destination and are renamed
over it only when complete (``mutual_seg/atomic.py``): the earlier checkpoint stays intact, and a full disk, a
read-only folder or a missing permission stops the run with one ``OutputError`` line naming the path (exit 2).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from mutual_seg.atomic import atomic_write_bytes, output_error
from mutual_seg.checkpoint.format import stamp


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with an atomic, error-mapped save; loading and removal are Lightning's."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        if "state_dict" in checkpoint:  # a model's checkpoint: stamped so that predict and ckpt_path know its format
            stamp(checkpoint)
        # Serialized in memory first: torch's zip writer turns a failing write into an unrelated RuntimeError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getbuffer())

    def remove_checkpoint(self, path: str | Path) -> None:
        try:
            super().remove_checkpoint(path)
        except OSError as err:
            raise output_error(path, err) from err
