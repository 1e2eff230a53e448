"""Fig. 5 of the paper: box plots of the per-subject metrics, one arm against the other (matplotlib, Agg).

The paper draws single modality in orange and dual in blue; arm A (e.g. FLAIR) is orange, arm B blue here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt
import numpy as np

from mutual_seg.atomic import atomic_path

COLORS = ("tab:orange", "tab:blue")
FIG5_SIZE_IN = (15.0, 6.0)
DPI = 100  # FIG5_SIZE_IN * DPI = the PNG's size in pixels


def boxplots(values: dict[str, dict[str, Sequence[float]]], metrics: Sequence[str], out: Path) -> Path:
    """One panel per metric, one box per arm, written as a PNG of ``FIG5_SIZE_IN * DPI`` pixels.

    Args:
        values: ``{arm name: {metric: per-subject values}}``, arms in drawing order (at most two colours
            are the paper's; more arms cycle matplotlib's colours).
        metrics: the metrics to draw, one panel each.
        out: the PNG path.

    Returns:
        ``out``.
    """
    arms = list(values)
    cols = int(np.ceil(len(metrics) / 2))
    fig, axes = plt.subplots(2, cols, figsize=FIG5_SIZE_IN, dpi=DPI, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        data = [np.asarray([v for v in values[arm].get(metric, []) if np.isfinite(v)]) for arm in arms]
        box = ax.boxplot(data, patch_artist=True, widths=0.6)
        ax.set_xticks(range(1, len(arms) + 1), arms, fontsize=8)
        for patch, color in zip(box["boxes"], [*COLORS, *plt.rcParams["axes.prop_cycle"].by_key()["color"]]):
            patch.set_facecolor(color)
            patch.set_alpha(0.7)
        ax.set_title(metric + (" (mm)" if metric.startswith("H") else ""))
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("Per-subject metrics: " + " vs ".join(arms))
    fig.tight_layout()
    # a fixed canvas (no bbox_inches="tight"), so the PNG has the documented size
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return out
