"""Equal parameter budgets: the ablation's fusions really are within 5 % of each other (no training)."""

from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mutual_seg.config import CONFIG_DIR, compose, widths_for
from mutual_seg.errors import ConfigError
from mutual_seg.models.budget import CELLS, TOLERANCE, count_parameters, match_budget


def _ablation_net(model: str, modality: str):
    """The network `python -m mutual_seg.run experiment=ablation model=<model> modality=<modality>` builds."""
    cfg = compose(["experiment=ablation", f"model={model}", f"modality={modality}"], hydra=True)
    HydraConfig.instance().set_config(cfg)  # the widths are looked up by the model choice, as in a real run
    net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
    return instantiate(net_cfg), int(cfg.ablation.budget), net_cfg


def test_every_cell_of_the_ablation_is_within_five_percent_of_the_budget():
    counts, widths = {}, set()
    for model, modality in CELLS:
        net, budget, net_cfg = _ablation_net(model, modality)
        widths.add(tuple(net_cfg["features"]))
        assert list(net.modalities) == OmegaConf.to_container(
            OmegaConf.load(CONFIG_DIR / "modality" / f"{modality}.yaml"))["names"]
        counts[(model, modality)] = sum(p.numel() for p in net.parameters())
    for cell, count in counts.items():
        assert abs(count - budget) <= TOLERANCE * budget, (cell, count, budget)
    # the cells differ in structure, so equal counts come from different widths, not from one shared net
    assert len(widths) > 3
    assert max(counts.values()) / min(counts.values()) <= (1 + TOLERANCE) / (1 - TOLERANCE)


def test_at_equal_widths_the_fusions_differ_in_size_which_is_why_widths_are_matched():
    _, _, mutual = _ablation_net("mutual", "brats4")
    _, _, early = _ablation_net("unet", "brats4")
    widths = [8, 16, 32, 64]
    assert count_parameters(mutual, widths) > 2 * count_parameters(early, widths)  # four tracks against one


def test_match_budget_lands_near_the_target_and_keeps_heads_dividing_the_widths():
    _, _, token = _ablation_net("mutual_token", "flair_t2w")
    features, count = match_budget(token, 50_000)
    assert abs(count - 50_000) <= 0.03 * 50_000 and count == count_parameters(token, features)
    assert all(w % token["fusion"]["heads"] == 0 for w in features)
    assert features == sorted(features)  # still widening with depth


def test_a_cell_missing_from_the_width_table_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="no entry for model=mean with modality=t1.*experiments/budget.py"):
        widths_for({"mean": {"flair_t2w": [8, 16, 32, 64]}}, "mean", "t1")
