"""conf/ as a whole: every experiment file composes into a config whose network builds, shared parts stay shared."""

from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mutual_seg.config import CONFIG_DIR, compose, group_options
from mutual_seg.models.network import SegNet


@pytest.mark.slow
@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_file_composes_and_its_network_builds(experiment):
    cfg = compose([f"experiment={experiment}"], hydra=True)
    HydraConfig.instance().set_config(cfg)  # the ablation's widths are looked up by the model choice
    assert cfg.task_name == experiment
    net = instantiate(OmegaConf.to_container(cfg.model.net, resolve=True))
    assert isinstance(net, SegNet) and list(net.modalities) == list(cfg.modality.names)
    OmegaConf.to_container(cfg.data, resolve=True)  # every interpolation of the data node resolves


def test_model_files_share_the_network_block_of_base_yaml():
    base = OmegaConf.load(CONFIG_DIR / "model" / "base.yaml")
    models = group_options("model")
    for name in models:
        own = OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml")
        parents = [d for d in own.get("defaults", []) if d == "base" or d in models]
        assert len(parents) == 1, name  # base.yaml, or one model file built on it (mutual_residual, hemis_heads)
        parent = base.net if parents[0] == "base" else compose([f"model={parents[0]}"]).model.net
        composed = compose([f"model={name}"]).model.net
        for key in base.net:
            if key not in own.get("net", {}):  # what a model file leaves alone comes from its parent
                assert OmegaConf.to_container(composed)[key] == OmegaConf.to_container(parent)[key], (name, key)


def test_the_quick_tables_share_their_budget_and_the_ablation_builds_on_the_demo():
    one, two, demo, ablation = (compose([f"experiment={e}"]) for e in ("table1_quick", "table2_quick", "demo",
                                                                          "ablation"))
    for key in ("data.slices.patch_size", "data.samples_per_epoch", "data.val_slice_step", "model.net.features",
                "optim.optimizer.lr"):
        assert OmegaConf.select(one, key) == OmegaConf.select(two, key), key
    for key in ("data.slices.patch_size", "data.samples_per_epoch", "data.val_slice_step", "trainer.max_epochs",
                "optim.optimizer.lr", "module.min_component_mm3", "data.batch_size"):
        assert OmegaConf.select(ablation, key) == OmegaConf.select(demo, key), key


def test_the_paper_trains_its_block_and_the_demo_the_rules_winner():
    """A plain run and the paper's tables train the paper's block; make demo trains the no-harm study's winner (HeMIS
    with track heads, the largest component decided on validation); the ablation's cells get heads only when they ask;
    model=mutual_residual is the paper's block with the residual output."""
    for overrides in ([], ["experiment=table1"], ["experiment=table2"], ["experiment=table2_quick"]):
        cfg = compose(overrides)
        fusion = cfg.model.net.fusion
        assert fusion.output == "paper" and fusion._target_.endswith("MutualAttentionFusion"), overrides
        assert cfg.model.net.aux_weight == 0.0 and cfg.module.largest_component is False, overrides
    demo = compose(["experiment=demo"])
    assert demo.model.net.fusion._target_.endswith("HeMISFusion") and demo.model.net.aux_weight == 0.5
    assert demo.module.largest_component == "auto"
    assert compose(["experiment=demo", "model=mutual"]).model.net.aux_weight == 0.0  # the paper's block, no heads
    assert compose(["experiment=ablation", "model=mutual"]).model.net.aux_weight == 0.0
    assert compose(["model=hemis_heads"]).model.net.aux_weight == 0.5
    assert compose(["model=mutual_residual"]).model.net.fusion.output == "residual"
