"""Trained models rebuilt from checkpoints alone (``load_module``), and checked to agree when several form an ensemble.

Everything ``predict`` needs comes from the checkpoints: the network (its ``_target_`` config), the
modalities in track order, the preprocessing settings, the threshold, batch size and post-processing.
Several checkpoints (e.g. the five folds) are averaged, so they must share the modalities, the
preprocessing and the output maps; a difference is a one-line error naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mutual_seg.checkpoint.format import differences, load_checkpoint
from mutual_seg.data.preprocess import PreprocessSettings
from mutual_seg.errors import CheckpointError, ConfigError, MutualSegError
from mutual_seg.fastpath import FastPath, autocast
from mutual_seg.inference import InferenceSettings

# Hyper-parameters every member of an ensemble must share (the rest, e.g. fusion or width, may differ).
_SHARED = ("modalities", "preprocessing", "threshold", "min_component_mm3")


@dataclass
class Ensemble:
    """One or more trained networks in eval mode on one device, with what their checkpoints say.

    Attributes:
        nets: the networks (``SegNet``), same modalities and outputs.
        modalities: input modality names, in the networks' track order.
        preprocessing: how inputs were normalized in training.
        threshold, inference_batch_size, min_component_mm3: from the (first) checkpoint.
        largest_component: every checkpoint keeps only the largest component (its setting, or its validation's
            decision under ``auto``); one that keeps them all turns the step off for the ensemble.
        modality_dropout: every member was trained with modality dropout, so a subset may be supplied.
        checkpoints: per checkpoint: path, mutual_seg format/version stamp, network summary.
        prepare: puts a batch in the memory layout the networks were built for (``module.fast_path``).
    """

    nets: list[nn.Module]
    modalities: tuple[str, ...]
    preprocessing: PreprocessSettings
    threshold: float
    inference_batch_size: int
    min_component_mm3: float
    largest_component: bool
    modality_dropout: bool
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    prepare: Callable[[Tensor], Tensor] | None = None  # the input layout of the first net (its fast_path)
    precision: str = "32-true"  # autocast for the forward passes (``fastpath.autocast`` names)

    def use_fast_path(self, precision: str) -> None:
        """Reduced-precision forward passes (``bf16-mixed``, ``16-mixed``) on channels-last networks.

        Probabilities move by about 1e-3, so a voxel right at the threshold may flip: the default
        ``32-true`` is what gives exactly the test step's masks.
        """
        autocast(precision)  # validates the name
        fast = FastPath(channels_last=True, compile=False, fold_batchnorm=True)
        self.nets = [fast.for_inference(fast.apply(net)) for net in self.nets]
        self.prepare, self.precision = fast.prepare, precision

    def settings(self, tta: bool, largest_component: bool | None) -> InferenceSettings:
        """Inference settings: the checkpoints', plus the command's TTA and largest-component choice (None: the
        checkpoints')."""
        largest = self.largest_component if largest_component is None else largest_component
        return InferenceSettings(self.threshold, self.inference_batch_size, self.min_component_mm3, largest, tta)

    @property
    def has_attention(self) -> bool:
        """Whether every network's fusion returns attention weights (mutual attention): ``SegNet.has_attention``."""
        return all(net.has_attention for net in self.nets)


def load_module(path: str | Path, device: torch.device | str = "cpu") -> Any:
    """The ``SegModule`` of one checkpoint, read safely (``weights_only``), its network in eval mode on ``device``.

    The one way to rebuild a trained model: never Lightning's ``load_from_checkpoint``, which unpickles.

    Raises:
        CheckpointError: unreadable or foreign file, or hyper-parameters/weights this version cannot build.
    """
    return _load(path, torch.device(device))[0]


def _load(path: str | Path, device: torch.device) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The module of one checkpoint (see :func:`load_module`), its hyper-parameters and its format stamp."""
    from mutual_seg.lit import (
        SegModule,  # Lightning is heavy, and the module sits above this package: imported once a file is read
    )

    checkpoint = load_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    try:
        module = SegModule(**hparams)
        module.load_state_dict(checkpoint["state_dict"])
        module.on_load_checkpoint(checkpoint)  # what Lightning's loading also restores (the post-processing decision)
    except MutualSegError:
        raise
    except (TypeError, KeyError, RuntimeError, ValueError) as err:
        detail = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be rebuilt by this mutual_seg version ({type(err).__name__}: {detail}); "
            "use the version that trained it"
        ) from None
    if hasattr(module.net, "drop_aux_heads"):
        module.net.drop_aux_heads()  # the track heads train only: predict never runs or holds them
    module.net.to(device).eval()
    return module, hparams, dict(checkpoint["mutual_seg"])


def load_ensemble(paths: list[str | Path], device: torch.device) -> Ensemble:
    """Load every checkpoint and check they can be averaged.

    Raises:
        ConfigError: no checkpoint given. CheckpointError: a bad checkpoint, or two that differ in
        modalities, preprocessing, threshold or post-processing (the fields named).
    """
    if not paths:
        raise ConfigError("no checkpoint given; pass --checkpoint PATH (repeat it for an ensemble)")
    nets, infos, first, prepare = [], [], None, None
    for path in paths:
        module, hparams, mark = _load(path, device)
        net = module.net
        prepare = prepare or module.fast_path.prepare
        if first is None:
            first = hparams
        else:
            diffs = [d for key in _SHARED for d in differences(hparams.get(key), first.get(key), f"{key}.")]
            diffs += differences(net.out_channels, nets[0].out_channels, "out_channels")
            if diffs:
                shown = "; ".join(d.replace("this run", f"{paths[0]}") for d in diffs[:3])
                raise CheckpointError(
                    f"checkpoint {path} cannot be ensembled with {paths[0]}: {shown}; ensemble checkpoints "
                    "trained on the same modalities and preprocessing"
                )
        nets.append(module.fast_path.for_inference(net))
        infos.append({"path": str(Path(path).absolute()), **mark, "fusion": net.fusion_name,
                      "features": list(getattr(net, "features", [])), "largest_component": module.largest_component,
                      "postprocess": module.postprocess})
    assert first is not None
    return Ensemble(
        nets=nets,
        modalities=tuple(first["modalities"]),
        preprocessing=PreprocessSettings.from_config(first["preprocessing"]),
        threshold=float(first["threshold"]),
        inference_batch_size=int(first["inference_batch_size"]),
        min_component_mm3=float(first["min_component_mm3"]),
        largest_component=all(info["largest_component"] for info in infos),
        modality_dropout=all(float(getattr(net, "modality_dropout", 0.0)) > 0 for net in nets),
        checkpoints=infos,
        prepare=prepare,
    )

