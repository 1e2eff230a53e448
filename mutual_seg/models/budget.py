"""Equal parameter budgets: channel widths that give every fusion about the same number of parameters.

An ablation that compares fusions (early fusion, concatenation, mean, mutual attention) or input sets (one
track against two or four) at the same widths mostly compares model sizes: a second encoder track doubles the
encoder, concatenation adds a 1x1 conv per scale, mutual attention adds I + 2 of them. Here each model's
``features`` are scaled (keeping the 1:2:4:8 shape as closely as integer channels allow) until its parameter
count lands on a shared budget.

The ablation's width table (``conf/experiment/ablation.yaml``) is written by this module's command line::

    python -m mutual_seg.models.budget --budget 230000

and ``tests/test_budget.py`` checks that every entry of the table is within ``TOLERANCE`` of the budget.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf

from mutual_seg.errors import ConfigError, MutualSegError

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


def widths_for(table: Mapping[str, Any], model: str, modality: str) -> list[int]:
    """The ``features`` of one study cell from the width table (the ``${budget_widths:...}`` resolver).

    Raises:
        ConfigError: the table has no entry for this model and modality set.
    """
    entry = (table or {}).get(model, {}).get(modality) if isinstance((table or {}).get(model), Mapping) else None
    if entry is None:
        cells = ", ".join(f"{m}/{s}" for m, row in (table or {}).items() for s in row)
        raise ConfigError(
            f"the ablation's width table (ablation.widths) has no entry for model={model} with modality={modality} "
            f"(it has {cells or 'none'}); add it from `python -m mutual_seg.models.budget --budget <n>`"
        )
    return [int(w) for w in entry]


def _compose_net(model: str, modality: str) -> Mapping[str, Any]:
    """The ``model.net`` node of ``experiment=ablation model=<model> modality=<modality>``, resolved."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mutual_seg.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}", f"modality={modality}"])
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    GlobalHydra.instance().clear()
    return net


def width_table(budget: int, cells: Sequence[tuple[str, str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{model: {modality set: {"features": [...], "parameters": n}}}`` for each (model, modality set)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for model, modality in cells:
        features, count = match_budget(_compose_net(model, modality), budget)
        table.setdefault(model, {})[modality] = {"features": features, "parameters": count}
    return table


# The study's cells: one input alone trains the single-track network (early fusion of one channel); two and four
# inputs train every fusion.
FUSION_MODELS = ("unet", "concat", "mean", "mutual", "mutual_token")
CELLS: tuple[tuple[str, str], ...] = (
    ("unet", "flair"),
    ("unet", "t2w"),
    *((model, modality) for modality in ("flair_t2w", "brats4") for model in FUSION_MODELS),
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mutual_seg.models.budget`` (also parsed by the docs-command test)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, required=True, help="target parameter count, e.g. 230000")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the YAML width table for ``conf/experiment/ablation.yaml``."""
    args = build_parser().parse_args(argv)
    try:
        if args.budget < 1000:
            raise ConfigError(f"--budget {args.budget} is too small for any network; use e.g. 230000")
        table = width_table(args.budget, CELLS)
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"  # computed by `python -m mutual_seg.models.budget --budget {args.budget}`")
    print("  widths:")
    for model, row in table.items():
        print(f"    {model}:")
        for modality, entry in row.items():
            pct = 100 * (entry["parameters"] - args.budget) / args.budget
            print(f"      {modality}: {entry['features']}".ljust(44) + f"# {entry['parameters']:,} parameters ({pct:+.1f} %)")
    worst = max(relative_error(e["parameters"], args.budget) for row in table.values() for e in row.values())
    print(f"  # largest deviation from the budget: {100 * worst:.1f} % (tolerance {100 * TOLERANCE:.0f} %)")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
