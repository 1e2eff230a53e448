"""What a W&B dashboard shows beyond scalars: validation overlays every epoch, the per-subject test table.

Every validation epoch, for the first ``n_subjects`` validation subjects of global rank 0 (the same ones each
epoch), on the slice with the largest ground-truth area (fixed), it logs each input modality with the ground truth
and the prediction as W&B segmentation masks, and, for mutual-attention models, each modality's per-pixel
attention weight as an image (``inference.attention_map``: full resolution, mean over heads and scales, the map
``mutual-seg-predict`` exports).
After testing: the per-subject metrics as a W&B table, and their means and standard deviations as summary values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from mutual_seg.inference import attention_map
from mutual_seg.metrics import METRIC_NAMES, summarize


def _wandb_logger(trainer: pl.Trainer) -> WandbLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def _gray(image: np.ndarray) -> np.ndarray:
    """A [H, W] float slice scaled to uint8 (min-max), so every modality is visible whatever its range."""
    low, high = float(image.min()), float(image.max())
    return ((image - low) / (high - low + 1e-8) * 255).astype(np.uint8)


def fixed_slice(label: torch.Tensor) -> int:
    """Index of the slice with the largest ground-truth area in a label volume [Z, O, X, Y] (the middle if none)."""
    area = label.reshape(label.shape[0], -1).sum(dim=1)
    return int(area.argmax()) if bool(area.any()) else label.shape[0] // 2


class WandbMedia(pl.Callback):
    """Overlays of fixed validation slices each epoch and the per-subject test table, on the job's W&B run.

    Args:
        n_subjects: validation subjects (of rank 0) shown each epoch; one slice each.
    """

    def __init__(self, n_subjects: int) -> None:
        self.n_subjects = n_subjects

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        logger = _wandb_logger(trainer)
        if logger is None or not trainer.is_global_zero or batch_idx >= self.n_subjects or trainer.sanity_checking:
            return
        import wandb

        z = fixed_slice(batch["label"])
        image = batch["image"][z : z + 1].to(pl_module.device)  # [1, I, X, Y]
        probs = torch.sigmoid(pl_module(image).float())[0].cpu().numpy()  # [O, X, Y]
        pred = (probs >= pl_module.hparams.threshold).any(axis=0).astype(np.uint8)
        truth = batch["label"][z].cpu().numpy().any(axis=0).astype(np.uint8)
        classes = {0: "background", 1: "tumour"}
        masks = {"ground_truth": {"mask_data": truth, "class_labels": classes},
                 "prediction": {"mask_data": pred, "class_labels": classes}}
        modalities = list(pl_module.hparams.modalities)
        key = f"val_overlay/{batch['id']}_z{z}"
        media = {f"{key}/{m}": wandb.Image(_gray(image[0, j].cpu().numpy()), masks=masks, caption=f"{m}, slice {z}")
                 for j, m in enumerate(modalities)}
        weights = attention_map(pl_module.net, tuple(image.shape[-2:]))  # what mutual-seg-predict exports
        if weights is not None and len(modalities) > 1:
            per_pixel = weights[0].cpu().numpy()  # [I, X, Y], sums to 1 over modalities
            for j, m in enumerate(modalities):
                media[f"{key}/attention_{m}"] = wandb.Image((per_pixel[j] * 255).astype(np.uint8),
                                                            caption=f"attention weight of {m} (0..1)")
        logger.experiment.log({**media, "trainer/global_step": trainer.global_step})

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = _wandb_logger(trainer)
        rows = getattr(pl_module, "test_rows", None)
        if logger is None or not trainer.is_global_zero or not rows:
            return
        import wandb

        columns = [c for c in ("subject", "output", *METRIC_NAMES) if c in rows[0]]
        table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        logger.experiment.log({"test/subjects": table})
        for name, stats in summarize(list(rows)).items():
            logger.experiment.summary[f"test/{name}_mean"] = stats["mean"]
            logger.experiment.summary[f"test/{name}_std"] = stats["std"]
