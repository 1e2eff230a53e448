"""Fig. 6/7-style overlays: image(s), ground truth, and the two arms' predictions of one axial slice per subject.

Predictions come from each run's best checkpoint (never retrained): the run's config.yaml rebuilds its data
module (same data set, cache and fold), the subject's whole volume is segmented as the test did
(``SegModule.segment_volume``: brain box, threshold, post-processing), and one slice is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from matplotlib.colors import ListedColormap
from omegaconf import OmegaConf

from mutual_seg.atomic import atomic_path
from mutual_seg.data.slices import VolumeDataset
from mutual_seg.errors import MutualSegError, ResultsError
from mutual_seg.report.figures import DPI, plt
from mutual_seg.report.tables import display_name
from mutual_seg.results import Run

RED = ListedColormap(["red"])  # masks in red over the image, as the paper's figures


@dataclass(frozen=True)
class Case:
    """What one overlay row shows: the images [Z, I, X, Y] of the union of modalities, and masks [Z, X, Y]."""

    subject: str
    modalities: tuple[str, ...]
    image: np.ndarray
    label: np.ndarray
    preds: dict[str, np.ndarray]


def segment_test_subject(run: Run, subject: str) -> tuple[dict, np.ndarray]:
    """The subject's volume item (``VolumeDataset``) and the run's binary prediction [Z, X, Y] (output 0).

    The checkpoint is read by :func:`mutual_seg.checkpoint.load_module` and the volume segmented by the test step's
    own path (``SegModule.segment_volume``: :mod:`mutual_seg.inference`), so the overlay shows what was scored.

    Raises:
        ResultsError: the run has no checkpoint, or its data set / the subject cannot be found now.
    """
    from mutual_seg.checkpoint import (
        load_module,  # torch + Lightning: only the overlays pay for the import
    )

    ckpt = run.checkpoint
    if ckpt is None:
        raise ResultsError(f"run {run.path} has no best checkpoint; overlays need checkpoints/best.ckpt")
    cfg = OmegaConf.create(run.config)
    try:
        datamodule = instantiate(cfg.data)
        datamodule.setup("test")
    except MutualSegError as err:
        raise ResultsError(f"the data of run {run.path} cannot be read now ({err})") from err
    subjects = [s for s in datamodule.subjects["test"] if s.id == subject]
    if not subjects:
        raise ResultsError(f"subject {subject} is not in the test fold of run {run.path}")
    item = VolumeDataset(subjects, list(run.modalities))[0]
    module = load_module(ckpt)  # weights_only: a run folder may come from anyone
    module.eval()
    spacing = tuple(float(s) for s in item["spacing"])
    with torch.no_grad():
        pred = module.segment_volume(item["image"], spacing, mask=item["mask"])
    return item, pred[:, 0]


def default_slice(label: np.ndarray, preds: Sequence[np.ndarray]) -> int:
    """The axial slice through the tumour where the predictions are most wrong (no tumour: over all slices).

    Args:
        label: reference [Z, X, Y].
        preds: the arms' predictions, each [Z, X, Y].
    """
    errors = sum(np.count_nonzero(p != label, axis=(1, 2)) for p in preds)
    tumour = np.count_nonzero(label, axis=(1, 2)) > 0
    if tumour.any():
        errors = np.where(tumour, errors, -1)
    return int(np.argmax(errors))


def overlay_figure(cases: Sequence[Case], slices: Sequence[int], out: Path) -> Path:
    """A row per case: each modality, then ground truth and each arm's prediction in red over the first image."""
    n_images = max(len(c.modalities) for c in cases)
    arms = list(cases[0].preds)
    cols = n_images + 1 + len(arms)
    fig, axes = plt.subplots(len(cases), cols, figsize=(2.4 * cols, 2.6 * len(cases)), dpi=DPI, squeeze=False)
    for row, (case, z) in enumerate(zip(cases, slices)):
        base = case.image[z, 0]
        panels = [(display_name([m]), case.image[z, i], None) for i, m in enumerate(case.modalities)]
        panels += [("", None, None)] * (n_images - len(case.modalities))
        panels += [("ground truth", base, case.label[z])]
        panels += [(arm, base, case.preds[arm][z]) for arm in arms]
        for ax, (title, image, mask) in zip(axes[row], panels):
            ax.axis("off")
            if image is None:
                continue
            ax.imshow(np.rot90(image), cmap="gray")
            if mask is not None:
                shown = np.rot90(mask.astype(bool))
                ax.imshow(np.ma.masked_where(~shown, shown.astype(float)), cmap=RED, vmin=0, vmax=1, alpha=0.55)
            ax.set_title(title, fontsize=8)
        axes[row][0].text(-0.05, 0.5, f"{case.subject}\nslice {z}", transform=axes[row][0].transAxes,
                          rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return out
