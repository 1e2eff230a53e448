"""The LightningModule: Dice loss and Adam on 2D slices; whole-volume validation and test per subject.

Its hyper-parameters are plain dicts of the resolved config (net, loss, optimizer, scheduler, modalities,
preprocessing), so a checkpoint alone rebuilds the network and tells ``predict`` how to preprocess a new patient.
Whole-volume validation and test call :mod:`mutual_seg.inference`, as ``predict`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from torchmetrics import MeanMetric

from mutual_seg.config import to_plain
from mutual_seg.data.preprocess import PreprocessSettings
from mutual_seg.errors import ConfigError
from mutual_seg.fastpath import FastPath
from mutual_seg.inference import (
    InferenceSettings,
    choose_largest_component,
    predict_volume,
    segment,
)
from mutual_seg.masks import is_largest_component_choice, keep_largest_component
from mutual_seg.metrics import dice_score, segmentation_metrics

log = logging.getLogger(__name__)


class SegModule(pl.LightningModule):
    """Segmentation training/evaluation around a ``SegNet``.

    Args:
        net: config of the network (``_target_`` + kwargs), built here.
        loss: config of the loss (``mutual_seg.losses``).
        optimizer: config of a ``_partial_`` optimizer, completed with the parameters here.
        scheduler: config of a ``_partial_`` LR scheduler, or None.
        modalities: input modality names, in the network's order.
        preprocessing: normalization and label settings the data were prepared with (the ``data.preprocessing``
            node, or the settings themselves); saved in the checkpoint as a plain dict.
        threshold: on the sigmoid output, for masks.
        inference_batch_size: slices per forward pass when predicting whole volumes.
        min_component_mm3: predicted 3D components smaller than this are removed (0: none, as in the paper).
        largest_component: keep only the largest 3D component of each output: False (the paper), True, or
            ``"auto"``: kept unless it lowers the validation Dice of the saved epoch (nnU-Net decides the same
            step on its cross-validation; :func:`mutual_seg.inference.choose_largest_component`). The choice
            travels in the checkpoint (``checkpoint["postprocess"]``), so the test step and ``predict`` apply it.
        fast_path: ``FastPath`` switches (channels_last, compile, fold_batchnorm); None or a missing switch,
            as in checkpoints older than them, is the plain path.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None,
        modalities: Sequence[str],
        preprocessing: PreprocessSettings | Mapping[str, Any],
        threshold: float,
        inference_batch_size: int,
        min_component_mm3: float,
        largest_component: bool | str,
        fast_path: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if min_component_mm3 < 0:
            raise ConfigError(f"module.min_component_mm3 must be >= 0 (0 keeps every component), got {min_component_mm3}")
        if not is_largest_component_choice(largest_component):
            raise ConfigError(f"module.largest_component must be false, true or auto, got {largest_component!r}")
        settings = PreprocessSettings.from_config(preprocessing)  # typed; stored as its plain dict
        hparams = {"net": net, "loss": loss, "optimizer": optimizer, "scheduler": scheduler, "modalities": modalities,
                   "preprocessing": settings.as_dict(), "threshold": threshold,
                   "inference_batch_size": inference_batch_size, "min_component_mm3": min_component_mm3,
                   "largest_component": largest_component, "fast_path": fast_path}
        self.save_hyperparameters({k: to_plain(v) for k, v in hparams.items()})
        self.preprocessing = settings
        self.fast_path = FastPath.from_config(self.hparams.fast_path)
        self.net = self.fast_path.apply(instantiate(self.hparams.net))
        self.loss_fn = instantiate(self.hparams.loss)
        self.val_dice = MeanMetric()  # torchmetrics: synced across DDP ranks, one value per subject
        self.val_dice_largest = MeanMetric()  # the same masks with only their largest component (``auto`` only)
        # largest_component=auto: {"largest_component": bool, "val_dice": x, "val_dice_largest": y, "epoch": e}
        # of the last validation, saved with each checkpoint and read back from it (None: not decided yet).
        self.postprocess: dict[str, Any] | None = None
        self.test_dice = MeanMetric()
        self.test_rows: list[dict[str, Any]] = []

    def forward(self, image: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, O, H, W] for slices [B, I, H, W]."""
        return self.net(self.fast_path.prepare(image), present)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss of the fused output; with track heads (``model.net.aux_weight > 0``) plus the weight times the
        mean of the tracks' own losses (auxiliary supervision: every track must segment on its own)."""
        size = batch["image"].shape[0]
        aux_weight = float(getattr(self.net, "aux_weight", 0.0))
        if aux_weight > 0 and getattr(self.net, "track_heads", None) is not None:
            logits, aux = self.net(self.fast_path.prepare(batch["image"]), None, with_aux=True)
            main = self.loss_fn(logits, batch["label"])
            aux_loss = torch.stack([self.loss_fn(a, batch["label"]) for a in aux]).mean()
            loss = main + aux_weight * aux_loss
            self.log("train/aux_loss", aux_loss, on_step=False, on_epoch=True, batch_size=size)
        else:
            loss = self.loss_fn(self(batch["image"]), batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # -- whole volumes (mutual_seg.inference, shared with predict) --------------------------------
    @property
    def auto_largest(self) -> bool:
        """Whether the largest-component step is decided on validation (``largest_component: auto``)."""
        return self.hparams.largest_component == "auto"

    @property
    def largest_component(self) -> bool:
        """Whether masks keep only their largest component: the setting, or under ``auto`` the checkpoint's
        decision (off until a validation has decided it)."""
        if self.auto_largest:
            return bool(self.postprocess and self.postprocess["largest_component"])
        return bool(self.hparams.largest_component)

    @property
    def inference_settings(self) -> InferenceSettings:
        """The checkpoint's threshold, batch size and post-processing; no TTA (the paper's test)."""
        return self._settings(self.largest_component)

    def _settings(self, largest_component: bool) -> InferenceSettings:
        return InferenceSettings(
            threshold=float(self.hparams.threshold),
            batch_size=int(self.hparams.inference_batch_size),
            min_component_mm3=float(self.hparams.min_component_mm3),
            largest_component=largest_component,
            tta=False,
        )

    def segment_volume(self, image: torch.Tensor, spacing: Sequence[float], mask: torch.Tensor | None = None,
                       settings: InferenceSettings | None = None) -> np.ndarray:
        """Binary masks [Z, O, X, Y] of a volume given as slices [Z, I, X, Y] (as the test step; for reports);
        ``settings``: other post-processing than the checkpoint's."""
        settings = settings or self.inference_settings
        net = self.fast_path.for_inference(self.net)  # a BatchNorm-folded copy (module.fast_path.fold_batchnorm)
        probs = predict_volume([net], image, settings, mask=mask, prepare=self.fast_path.prepare).probabilities
        return segment(probs, spacing, settings)

    def _masks(self, batch: dict[str, Any], settings: InferenceSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
        spacing = tuple(float(s) for s in batch["spacing"])
        pred = self.segment_volume(batch["image"], spacing, mask=batch.get("mask"), settings=settings)
        return pred, batch["label"].cpu().numpy().astype(bool)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Under auto, val/dice (which picks the best checkpoint) is that of the masks without the step.
        pred, target = self._masks(batch, self._settings(False) if self.auto_largest else None)
        dice = np.mean([dice_score(pred[:, o], target[:, o]) for o in range(pred.shape[1])])
        self.val_dice.update(torch.tensor(dice, dtype=torch.float32, device=self.device))
        self.log("val/dice", self.val_dice, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        if self.auto_largest:
            largest = np.mean([dice_score(keep_largest_component(pred[:, o]), target[:, o])
                               for o in range(pred.shape[1])])
            self.val_dice_largest.update(torch.tensor(largest, dtype=torch.float32, device=self.device))

    def on_validation_epoch_end(self) -> None:
        """Under ``auto``: decide the largest-component step on this validation (every rank the same, synced)."""
        if not self.auto_largest or self.val_dice_largest.update_count == 0:
            return
        base, largest = float(self.val_dice.compute()), float(self.val_dice_largest.compute())
        self.val_dice_largest.reset()
        keep = choose_largest_component(base, largest)
        self.postprocess = {"largest_component": keep, "val_dice": base, "val_dice_largest": largest,
                            "epoch": int(self.current_epoch)}
        self.log("val/dice_largest", largest, on_step=False, on_epoch=True, batch_size=1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.postprocess is not None:
            checkpoint["postprocess"] = dict(self.postprocess)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also called by ``checkpoint.load_module``: the saved epoch's post-processing decision."""
        found = checkpoint.get("postprocess")
        self.postprocess = dict(found) if isinstance(found, dict) else None

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
        if self.auto_largest:  # the run's log says what the tested checkpoint decided
            found = self.postprocess
            log.info("largest_component=auto: %s", "no validation decided it, every component kept" if not found else
                     f"{'only the largest component kept' if found['largest_component'] else 'every component kept'} "
                     f"(validation Dice {found['val_dice_largest']:.4f} with the step, {found['val_dice']:.4f} without)")

    def on_test_epoch_end(self) -> None:
        # Each rank tested different subjects: gather every row on every rank (each subject once).
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[list[dict[str, Any]]] = [[] for _ in range(dist.get_world_size())]
            dist.all_gather_object(gathered, self.test_rows)
            self.test_rows = [row for rows in gathered for row in rows]
        self.test_rows.sort(key=lambda r: (r["subject"], r.get("output", 0)))

