"""A trained model on disk, in one place: written, stamped, read safely, checked and rebuilt.

- :mod:`~mutual_seg.checkpoint.format`: the format stamp and its upgrades, ``torch.load(weights_only=True)`` with
  one-line refusals, and the compatibility check of a checkpoint with a run (``ckpt_path=``).
- :mod:`~mutual_seg.checkpoint.io`: Lightning's ``CheckpointIO`` that writes checkpoints atomically.
- :mod:`~mutual_seg.checkpoint.ensemble`: ``load_module(path)`` (a ``SegModule``) and ``load_ensemble(paths)``.

Nothing else in the project reads a ``.ckpt`` (no ``SegModule.load_from_checkpoint``: it unpickles).
"""

from mutual_seg.checkpoint.ensemble import Ensemble, load_ensemble, load_module
from mutual_seg.checkpoint.format import (
    CHECKPOINT_FORMAT,
    FORMAT_KEY,
    check_checkpoint,
    check_compatible,
    differences,
    load_checkpoint,
    stamp,
    upgrade,
)
from mutual_seg.checkpoint.io import AtomicCheckpointIO

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_KEY",
    "AtomicCheckpointIO",
    "Ensemble",
    "check_checkpoint",
    "check_compatible",
    "differences",
    "load_checkpoint",
    "load_ensemble",
    "load_module",
    "stamp",
    "upgrade",
]
