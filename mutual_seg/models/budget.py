"""Equal parameter budgets: channel widths that give every fusion about the same number of parameters.

An ablation that compares fusions (early fusion, concatenation, mean, mutual attention) or input sets (one
track against two or four) at the same widths mostly compares model sizes: a second encoder track doubles the
encoder, concatenation adds a 1x1 conv per scale, mutual attention adds I + 2 of them. Here each model's
``features`` are scaled (keeping the 1:2:4:8 shape as closely as integer channels allow) until its parameter
count lands on a shared budget.

The ablation's width table (``conf/experiment/ablation.yaml``) is printed by the experiment script::

    python experiments/budget.py --budget 230000      # old name: python -m mutual_seg.models.budget

``config.widths_for`` reads the table back during a run, and ``tests/models/test_budget.py`` checks that every entry of
the table is within ``TOLERANCE`` of the budget.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf

from mutual_seg.config import compose

TOLERANCE = 0.05  # the most a model may differ from the budget, relative
SHAPE = (1, 2, 4, 8)  # relative widths per scale, as the default features [16, 32, 64, 128]


def count_parameters(net_cfg: Mapping[str, Any], features: Sequence[int] | None = None) -> int:
    """Parameters of the network a ``model.net`` config builds (optionally with other ``features``).

    Args:
        net_cfg: a resolved ``model.net`` node (``_target_`` SegNet, modalities, fusion, ...).
        features: widths to use instead of the config's.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(dict(net_cfg)), resolve=True))
    if features is not None:
        cfg.features = [int(f) for f in features]
    net = instantiate(cfg)
    return sum(p.numel() for p in net.parameters())


def _multiple(net_cfg: Mapping[str, Any]) -> int:
    """Widths must be multiples of the attention heads (every head gets whole channels)."""
    fusion = net_cfg.get("fusion") or {}
    return int(fusion.get("heads", 1) or 1) if not net_cfg.get("early_fusion") else 1


def _widths(scale: float, depth: int, multiple: int) -> list[int]:
    return [max(multiple, multiple * round(scale * SHAPE[s % len(SHAPE)] / multiple)) for s in range(depth)]


def match_budget(net_cfg: Mapping[str, Any], budget: int, depth: int | None = None) -> tuple[list[int], int]:
    """Widths whose network has the parameter count closest to ``budget``.

    Bisection on a width scale (parameters grow monotonically with it), then a local search that moves the two
    deepest widths (which hold most parameters) by a few steps, so the count lands within a percent or two.

    Args:
        net_cfg: a resolved ``model.net`` node; its modalities and fusion decide the count.
        budget: the target number of parameters.
        depth: number of scales (default: the config's ``len(features)``).

    Returns:
        (features, parameter count).
    """
    depth = int(depth or len(net_cfg["features"]))
    multiple = _multiple(net_cfg)
    lo, hi = 0.25, 64.0
    while hi - lo > 0.01:
        mid = (lo + hi) / 2
        if count_parameters(net_cfg, _widths(mid, depth, multiple)) < budget:
            lo = mid
        else:
            hi = mid
    candidates: list[tuple[float, float, list[int], int]] = []  # (error, shape deviation, widths, count)
    for scale in (lo, hi):
        base = _widths(scale, depth, multiple)
        ideal = [scale * SHAPE[s % len(SHAPE)] for s in range(depth)]
        for d1 in range(-3, 4):
            for d2 in range(-2, 3) if depth > 1 else (0,):
                widths = list(base)
                widths[-1] = max(multiple, widths[-1] + d1 * multiple)
                if depth > 1:
                    widths[-2] = max(multiple, widths[-2] + d2 * multiple)
                count = count_parameters(net_cfg, widths)
                deviation = sum(abs(w - i) / i for w, i in zip(widths, ideal))
                candidates.append((relative_error(count, budget), deviation, widths, count))
    # Within a percent of the budget, prefer the widths closest to the 1:2:4:8 shape.
    good = [c for c in candidates if c[0] <= 0.01] or [min(candidates)]
    _, _, widths, count = min(good, key=lambda c: (c[1], c[0]))
    return widths, count


def relative_error(count: int, budget: int) -> float:
    """|count - budget| / budget."""
    return abs(count - budget) / budget


def _compose_net(model: str, modality: str) -> Mapping[str, Any]:
    """The ``model.net`` node of ``experiment=ablation model=<model> modality=<modality>``, resolved."""
    return OmegaConf.to_container(compose([f"model={model}", f"modality={modality}"]).model.net, resolve=True)


def width_table(budget: int, cells: Sequence[tuple[str, str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{model: {modality set: {"features": [...], "parameters": n}}}`` for each (model, modality set)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for model, modality in cells:
        features, count = match_budget(_compose_net(model, modality), budget)
        table.setdefault(model, {})[modality] = {"features": features, "parameters": count}
    return table


# The study's cells: one input alone trains the single-track network (early fusion of one channel); two and four
# inputs train every fusion.
FUSION_MODELS = ("unet", "concat", "mean", "mutual", "mutual_residual", "mutual_token", "hemis", "gated")
CELLS: tuple[tuple[str, str], ...] = (
    ("unet", "flair"),
    ("unet", "t2w"),
    *((model, modality) for modality in ("flair_t2w", "brats4") for model in FUSION_MODELS),
)


if __name__ == "__main__":  # the old command, an alias of the experiment script in a checkout
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "experiments" / "budget.py"
    if not script.is_file():
        sys.exit("error: the width table is printed by experiments/budget.py, which only a checkout of mutual_seg has")
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")
