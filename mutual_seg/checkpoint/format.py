"""Checkpoint files: the format stamp and its upgrades, safe reading, and the compatibility check with a run.

A ``.ckpt`` is a pickle, and unpickling runs code: a checkpoint someone sent you must never be
loaded with ``weights_only=False``. Everything here loads with ``torch.load(weights_only=True)``,
which rebuilds only tensors, plain containers and numbers, plus the types in :data:`SAFE_GLOBALS`.
A mutual_seg checkpoint holds nothing else: Lightning's keys (``state_dict``, ``loops``,
``callbacks``, ``optimizer_states``, ``lr_schedulers``, ``hyper_parameters``: dicts, lists,
numbers, strings and tensors) and our stamp ``checkpoint["mutual_seg"] = {"format", "version"}``.

The hyper-parameters name classes to build (``_target_``); a forged checkpoint could name any
callable, so only the project's networks and losses and torch's optimizers are accepted.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import torch

from mutual_seg import __version__
from mutual_seg.config import to_plain
from mutual_seg.errors import CheckpointError

FORMAT_KEY = "mutual_seg"
# 1: checkpoints without the stamp (before safe loading); 2: stamped, preprocessing as a settings dict.
CHECKPOINT_FORMAT = 2
# Types beyond torch's weights-only defaults that a mutual_seg checkpoint may hold. Lightning's own
# state is plain; numpy scalars appear when a callback logs a numpy value as its best score.
SAFE_GLOBALS: list[Any] = []
# ``_target_`` prefixes a checkpoint may ask Hydra to build.
ALLOWED_TARGETS = ("mutual_seg.models.", "mutual_seg.losses.", "torch.optim.")
_FIX = "pass a .ckpt written by mutual_seg's training (checkpoints/best.ckpt of a run folder)"


def stamp(checkpoint: dict[str, Any]) -> None:
    """Mark a checkpoint being saved as this project's, in the current format (``on_save_checkpoint``)."""
    checkpoint[FORMAT_KEY] = {"format": CHECKPOINT_FORMAT, "version": __version__}


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded without unpickling arbitrary objects, after checking its format.

    Raises:
        CheckpointError: a folder, missing, truncated or not a checkpoint, a planted object, another
            program's checkpoint or another format, or hyper-parameters naming foreign classes.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.relative_to(path) for p in path.rglob("*.ckpt"))[:3]
        hint = f" (it holds {', '.join(map(str, inside))})" if inside else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a file{hint}; {_FIX}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; {_FIX}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one lost its directory
        raise CheckpointError(f"checkpoint {path} cannot be read (no zip archive): truncated or not a checkpoint; {_FIX}")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([^ \n]+)", str(err))
        what = found.group(1) if found else str(err).strip().splitlines()[0][:120]
        raise CheckpointError(
            f"checkpoint {path} holds an object that is not weights or settings ({what}); it was refused "
            f"unread, since unpickling it could run code; {_FIX}"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile) as err:
        detail = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({detail}): truncated or not a checkpoint; {_FIX}"
        ) from None
    check_format(checkpoint, path)
    upgrade(checkpoint["hyper_parameters"])
    return checkpoint


def upgrade(hparams: Any) -> None:
    """Fill settings added within format 2 with the value that reproduces what older checkpoints did.

    ``net.fusion.output`` (mutual attention's output path) came after the first format-2 checkpoints, which all
    computed ``mean + out(attended)``: ``residual``. ``net.output_prior`` (the output bias's start) came later
    still; a checkpoint's trained weights replace any start, so None (PyTorch's) only completes the arguments.
    ``net.aux_weight`` (per-track auxiliary heads) came after that: older networks had no heads, 0.
    ``net.fusion.temperature`` (mutual attention's) came next: 1.0, the paper's scaling.
    ``largest_component`` (the module's post-processing) came last: older runs kept every component, False.
    """
    if isinstance(hparams, MutableMapping):
        hparams.setdefault("largest_component", False)
    net = hparams.get("net") if isinstance(hparams, Mapping) else None
    if isinstance(net, MutableMapping) and str(net.get("_target_", "")).endswith("SegNet"):
        net.setdefault("output_prior", None)
        net.setdefault("aux_weight", 0.0)
    loss = hparams.get("loss") if isinstance(hparams, Mapping) else None
    if isinstance(loss, MutableMapping) and str(loss.get("_target_", "")).endswith(("DiceLoss", "DiceBCELoss")):
        loss.setdefault("batch_dice", True)  # conf/loss gained the key in issue 18; the code's default was True
        if str(loss["_target_"]).endswith("DiceBCELoss"):
            loss.setdefault("pos_weight", None)
    fusion = net.get("fusion") if isinstance(net, Mapping) else None
    if isinstance(fusion, MutableMapping) and str(fusion.get("_target_", "")).endswith("MutualAttentionFusion"):
        fusion.setdefault("output", "residual")
        fusion.setdefault("temperature", 1.0)  # the attention's temperature came later; 1.0 is what they computed


def check_format(checkpoint: Any, path: str | Path) -> None:
    """Refuse what is not a mutual_seg checkpoint of this format, naming what it is instead."""
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict); {_FIX}")
    mark = checkpoint.get(FORMAT_KEY)
    if not isinstance(mark, Mapping):
        what = "an older mutual_seg (format 1)" if "hyper_parameters" in checkpoint else "another program"
        raise CheckpointError(
            f"checkpoint {path} was written by {what}, without mutual_seg's format stamp; this version "
            f"reads format {CHECKPOINT_FORMAT}; retrain with this version or use the version that wrote it"
        )
    if mark.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has mutual_seg checkpoint format {mark.get('format')} (version "
            f"{mark.get('version')}), this version {__version__} reads format {CHECKPOINT_FORMAT}; "
            "use the mutual_seg version that wrote it, or retrain"
        )
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"checkpoint {path} has no hyper-parameters to rebuild the model from; {_FIX}")
    for key, target in _targets(hparams):
        if not isinstance(target, str) or not target.startswith(ALLOWED_TARGETS):
            raise CheckpointError(
                f"checkpoint {path} asks to build {target!r} ({key}), which is not a mutual_seg network, "
                f"loss or torch optimizer; refused; {_FIX}"
            )


def _targets(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every ``_target_`` in nested hyper-parameters, with its dotted key."""
    found = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{prefix}{key}"
            if key == "_target_":
                found.append((where, value))
            else:
                found += _targets(value, where + ".")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _targets(value, f"{prefix}{i}.")
    return found


def differences(found: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two nested configs differ, with both values (``net.features: [4, 8] vs [16, 32]``)."""
    if isinstance(found, Mapping) and isinstance(wanted, Mapping):
        out = []
        for key in sorted(set(found) | set(wanted), key=str):
            missing = "(absent)"
            out += differences(found.get(key, missing), wanted.get(key, missing), f"{prefix}{key}.")
        return out
    if isinstance(found, (list, tuple)) and isinstance(wanted, (list, tuple)):
        found, wanted = list(found), list(wanted)
    return [] if found == wanted else [f"{prefix.rstrip('.')}: checkpoint {found}, this run {wanted}"]


def check_compatible(path: str | Path, hparams: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose modalities, network or preprocessing differ from the run's, naming the fields.

    Raises:
        CheckpointError: listing up to four differing fields (dotted keys) and the fix.
    """
    diffs = []
    for key in ("modalities", "net", "preprocessing"):
        diffs += differences(hparams.get(key), expected.get(key), f"{key}.")
    if diffs:
        more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
        raise CheckpointError(
            f"checkpoint {path} does not fit this run: {'; '.join(diffs[:4])}{more}; use the config it was "
            "trained with (its run folder's config.yaml, e.g. modality=...) or another checkpoint"
        )


def check_checkpoint(path: str | Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters of a checkpoint (loaded safely), after checking they match the ones the run expects.

    Raises:
        CheckpointError: a folder, missing, unreadable or foreign file, or the differing fields named.
    """
    hparams = dict(load_checkpoint(path)["hyper_parameters"])
    check_compatible(path, hparams, {k: to_plain(expected.get(k)) for k in ("modalities", "net", "preprocessing")})
    return hparams
