"""The LightningModule: Dice loss and Adam on 2D slices; whole-volume validation and test per subject.

Its hyper-parameters are plain dicts of the resolved config (net, loss, optimizer, scheduler, modalities,
preprocessing), so a checkpoint alone rebuilds the network and tells ``predict`` how to preprocess a new patient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torchmetrics import MeanMetric

from mutual_seg.errors import CheckpointError, ConfigError
from mutual_seg.fastpath import FastPath
from mutual_seg.metrics import dice_score, segmentation_metrics
from mutual_seg.postprocess import remove_small_components


def to_plain(value: Any) -> Any:
    """Resolved plain Python containers (checkpoints must not depend on a live OmegaConf tree)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


class SegModule(pl.LightningModule):
    """Segmentation training/evaluation around a ``SegNet``.

    Args:
        net: config of the network (``_target_`` + kwargs), built here.
        loss: config of the loss (``mutual_seg.losses``).
        optimizer: config of a ``_partial_`` optimizer, completed with the parameters here.
        scheduler: config of a ``_partial_`` LR scheduler, or None.
        modalities: input modality names, in the network's order.
        preprocessing: normalization and label settings the data were prepared with.
        threshold: on the sigmoid output, for masks.
        inference_batch_size: slices per forward pass when predicting whole volumes.
        min_component_mm3: predicted 3D components smaller than this are removed (0: none, as in the paper).
        fast_path: ``FastPath`` switches (channels_last, compile); None, as in checkpoints older than
            them, is the plain path.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None,
        modalities: Sequence[str],
        preprocessing: Mapping[str, Any],
        threshold: float,
        inference_batch_size: int,
        min_component_mm3: float,
        fast_path: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if min_component_mm3 < 0:
            raise ConfigError(f"module.min_component_mm3 must be >= 0 (0 keeps every component), got {min_component_mm3}")
        hparams = {"net": net, "loss": loss, "optimizer": optimizer, "scheduler": scheduler, "modalities": modalities,
                   "preprocessing": preprocessing, "threshold": threshold,
                   "inference_batch_size": inference_batch_size, "min_component_mm3": min_component_mm3,
                   "fast_path": fast_path}
        self.save_hyperparameters({k: to_plain(v) for k, v in hparams.items()})
        self.fast_path = FastPath.from_config(self.hparams.fast_path)
        self.net = self.fast_path.apply(instantiate(self.hparams.net))
        self.loss_fn = instantiate(self.hparams.loss)
        self.val_dice = MeanMetric()  # torchmetrics: synced across DDP ranks, one value per subject
        self.test_dice = MeanMetric()
        self.test_rows: list[dict[str, Any]] = []

    def forward(self, image: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, O, H, W] for slices [B, I, H, W]."""
        return self.net(self.fast_path.prepare(image), present)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self(batch["image"]), batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # -- whole volumes ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_volume(
        self, image: torch.Tensor, present: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Sigmoid probabilities [Z, O, X, Y] of a volume given as slices [Z, I, X, Y].

        With a brain ``mask`` [Z, X, Y], only its bounding box (plus a margin) is predicted and the rest is 0:
        skull-stripped volumes are mostly background, so this saves half the work or more on 240 x 240 x 155.
        """
        box = _bounding_box(mask, margin=8) if mask is not None else None
        crop = image if box is None else image[box]
        chunks = []
        for start in range(0, crop.shape[0], self.hparams.inference_batch_size):
            batch = crop[start:start + self.hparams.inference_batch_size].to(self.device)
            keep = None if present is None else present.to(self.device).expand(batch.shape[0], -1)
            chunks.append(torch.sigmoid(self(batch, keep).float()).cpu())
        probs = torch.cat(chunks) if chunks else crop.new_zeros((0, self.net.out_channels, *crop.shape[2:]))
        if box is None:
            return probs
        full = torch.zeros((image.shape[0], probs.shape[1], *image.shape[2:]), dtype=probs.dtype)
        full[box] = probs
        return full

    def segment_volume(self, image: torch.Tensor, spacing: Sequence[float], mask: torch.Tensor | None = None) -> np.ndarray:
        """Binary masks [Z, O, X, Y] of a volume given as slices [Z, I, X, Y]: threshold, then post-processing."""
        pred = (self.predict_volume(image, mask=mask) >= self.hparams.threshold).numpy()
        for o in range(pred.shape[1]):
            pred[:, o] = remove_small_components(pred[:, o], spacing, self.hparams.min_component_mm3)
        return pred

    def _masks(self, batch: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        spacing = tuple(float(s) for s in batch["spacing"])
        pred = self.segment_volume(batch["image"], spacing, mask=batch.get("mask"))
        return pred, batch["label"].cpu().numpy().astype(bool)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred, target = self._masks(batch)
        dice = np.mean([dice_score(pred[:, o], target[:, o]) for o in range(pred.shape[1])])
        self.val_dice.update(torch.tensor(dice, dtype=torch.float32, device=self.device))
        self.log("val/dice", self.val_dice, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred, target = self._masks(batch)
        spacing = tuple(float(s) for s in batch["spacing"])
        brain = batch["mask"].cpu().numpy() if "mask" in batch else None  # for Ac_brain (eq. 3 inside the brain)
        dices = []
        for o in range(pred.shape[1]):
            row: dict[str, Any] = {"subject": batch["id"]}
            if pred.shape[1] > 1:
                row["output"] = o
            row.update(segmentation_metrics(pred[:, o], target[:, o], spacing, brain=brain))
            self.test_rows.append(row)
            dices.append(row["Dc"])
        self.test_dice.update(torch.tensor(float(np.mean(dices)), device=self.device))
        self.log("test/dice", self.test_dice, on_step=False, on_epoch=True, batch_size=1)

    def on_test_epoch_start(self) -> None:
        self.test_rows = []

    def on_test_epoch_end(self) -> None:
        # Each rank tested different subjects: gather every row on every rank (each subject once).
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[list[dict[str, Any]]] = [[] for _ in range(dist.get_world_size())]
            dist.all_gather_object(gathered, self.test_rows)
            self.test_rows = [row for rows in gathered for row in rows]
        self.test_rows.sort(key=lambda r: (r["subject"], r.get("output", 0)))


def _bounding_box(mask: torch.Tensor, margin: int) -> tuple[slice, slice, slice, slice] | None:
    """Index of the [Z, :, X, Y] box around a [Z, X, Y] mask, widened in-plane by ``margin``; None if empty."""
    if not bool(mask.any()):
        return None
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = torch.nonzero(mask.any(dim=other[1]).any(dim=other[0])).flatten()
        pad = 0 if axis == 0 else margin
        bounds.append(slice(max(int(hits[0]) - pad, 0), min(int(hits[-1]) + 1 + pad, mask.shape[axis])))
    return bounds[0], slice(None), bounds[1], bounds[2]


def check_checkpoint(path: str | Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters of a checkpoint, after checking they match the ones the run expects.

    Raises:
        CheckpointError: missing or unreadable file, or a mismatch in modalities, network or preprocessing.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass ckpt_path=<path to a .ckpt file>")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        hparams = dict(checkpoint["hyper_parameters"])
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}); pass a .ckpt written by mutual_seg") from err
    for key in ("modalities", "net", "preprocessing"):
        found, wanted = hparams.get(key), to_plain(expected.get(key))
        if key == "modalities":
            found, wanted = list(found or []), list(wanted or [])
        if found != wanted:
            raise CheckpointError(
                f"checkpoint {path} was trained with {key}={found}, this run asks for {key}={wanted}; "
                f"use a matching config (e.g. modality=...) or another checkpoint"
            )
    return hparams
