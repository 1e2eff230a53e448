"""Tests for mutual_seg.models: shapes on odd sizes, attention weights, missing modalities, configs."""

from __future__ import annotations

import math
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from mutual_seg.errors import ConfigError
from mutual_seg.models import (
    ConcatFusion,
    MeanFusion,
    MutualAttentionFusion,
    SegNet,
    build_fusion,
    drop_modalities,
    format_summary,
    model_summary,
    select_present,
)
from mutual_seg.models.fusion import GatedFusion, HeMISFusion

FEATURES = [4, 8, 16]
NAMES = ["flair", "t2w", "t1"]
CONF_MODEL = Path(__file__).resolve().parents[2] / "conf" / "model"

FACTORIES = {
    "mutual_modality": partial(
        MutualAttentionFusion, reading="modality", token_scales=[], heads=2, key_channels=None, output="residual", temperature=1.0
    ),
    "mutual_token": partial(
        MutualAttentionFusion, reading="token", token_scales=[1, 2], heads=2, key_channels=8, output="residual", temperature=1.0
    ),
    "concat": partial(ConcatFusion),
    "mean": partial(MeanFusion),
    "hemis": partial(HeMISFusion),
    "gated": partial(GatedFusion),
    "early": None,
}


# conf/model/base.yaml's settings that these tests do not vary (SegNet takes every setting as an argument)
PLAIN = {"modality_dropout": 0.0, "convs_per_stage": 2, "aux_weight": 0.0}


def make_net(kind: str, num: int, **kwargs) -> SegNet:
    torch.manual_seed(0)
    kwargs = {"output_prior": None, **PLAIN, **kwargs}
    return SegNet(NAMES[:num], 2, FEATURES, FACTORIES[kind], early_fusion=kind == "early", **kwargs)


@pytest.mark.parametrize("kind", list(FACTORIES))
@pytest.mark.parametrize("num", [1, 2, 3])
def test_output_shape_odd_sizes(kind: str, num: int) -> None:
    net = make_net(kind, num)
    out = net(torch.randn(2, num, 33, 47))
    assert out.shape == (2, 2, 33, 47)
    assert torch.isfinite(out).all()
    assert net.modalities == tuple(NAMES[:num])
    if kind.startswith("mutual") or kind == "gated":
        # weights kept per scale, cropped to the input's footprint at that scale (the gate has one "head")
        heads = 1 if kind == "gated" else 2
        assert [tuple(a.shape) for a in net.last_attention] == [
            (2, heads, num, 33, 47),
            (2, heads, num, 17, 24),
            (2, heads, num, 9, 12),
        ]
    else:
        assert net.last_attention == [None, None, None]


def test_tracks_keyed_by_modality_in_state_dict() -> None:
    keys = make_net("mean", 2).state_dict().keys()
    assert any(k.startswith("tracks.flair.") for k in keys)
    assert any(k.startswith("tracks.t2w.") for k in keys)


def test_probabilities_are_sigmoid_of_logits() -> None:
    net = make_net("mean", 2).eval()
    x = torch.randn(1, 2, 16, 16)
    probs = net.probabilities(x)
    assert torch.allclose(probs, torch.sigmoid(net(x)))
    assert probs.min() >= 0 and probs.max() <= 1


@pytest.mark.parametrize("reading", ["modality", "token"])
def test_mutual_weights_sum_to_one_over_present(reading: str) -> None:
    torch.manual_seed(0)
    fusion = MutualAttentionFusion(
        8, 3, scale=0, reading=reading, token_scales=[0], heads=2, key_channels=4, output="residual", temperature=1.0
    )
    feats = [torch.randn(2, 8, 5, 7) for _ in range(3)]
    fused, weights = fusion(feats)
    assert fused.shape == (2, 8, 5, 7)
    assert weights.shape == (2, 2, 3, 5, 7)
    assert torch.allclose(weights.sum(dim=2), torch.ones(2, 2, 5, 7), atol=1e-5)
    assert (weights > 0).all()  # a real softmax, not a one-hot

    present = torch.tensor([[True, False, True], [False, True, False]])
    _, weights = fusion(feats, present)
    assert torch.allclose(weights.sum(dim=2), torch.ones(2, 2, 5, 7), atol=1e-5)
    assert (weights[0, :, 1] == 0).all()
    assert (weights[1, :, [0, 2]] == 0).all()
    assert torch.allclose(weights[1, :, 1], torch.ones(2, 5, 7))  # the only present one gets all


def test_mutual_uses_token_reading_only_at_token_scales() -> None:
    make = partial(
        MutualAttentionFusion,
        channels=8,
        num_inputs=2,
        reading="token",
        token_scales=[2],
        heads=1,
        key_channels=None,
        output="residual",
        temperature=1.0,
    )
    assert make(scale=2).reading == "token"
    assert make(scale=0).reading == "modality"


@pytest.mark.parametrize("name", ["mutual", "concat", "mean", "hemis", "gated"])
def test_fusion_ignores_absent_features(name: str) -> None:
    torch.manual_seed(0)
    options = (
        {"reading": "modality", "token_scales": [], "heads": 1, "key_channels": None, "output": "residual", "temperature": 1.0}
        if name == "mutual"
        else {}
    )
    fusion = build_fusion(name, channels=4, num_inputs=2, scale=0, **options).eval()
    feats = [torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)]
    present = torch.tensor([[True, False]])
    a, _ = fusion(feats, present)
    b, _ = fusion([feats[0], torch.full((1, 4, 6, 6), float("nan"))], present)
    assert torch.equal(a, b)
    if name == "mean":
        assert torch.equal(a, feats[0])


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_inference_independent_of_absent_channel(kind: str) -> None:
    net = make_net(kind, 3).eval()
    x = torch.randn(2, 3, 21, 19)
    present = torch.tensor([[True, False, True], [True, True, False]])
    with torch.no_grad():
        ref = net(x, present)
        y = x.clone()
        y[0, 1] = 100 * torch.randn(21, 19)
        y[1, 2] = float("nan")
        assert torch.equal(ref, net(y, present))
        # and the absent channel does matter when it is present (the test can fail)
        assert not torch.allclose(ref, net(y.nan_to_num(), None))
    # a [I] mask (as select_present returns) broadcasts over the batch
    mask = select_present(net.modalities, ["flair", "t1"])
    with torch.no_grad():
        assert torch.equal(net(x, mask), net(x, mask.expand(2, 3)))


def test_drop_modalities_never_drops_all() -> None:
    gen = torch.Generator().manual_seed(0)
    present = torch.ones(500, 3, dtype=torch.bool)
    present[:100, 0] = False
    kept = drop_modalities(present, 0.9, generator=gen)
    assert kept.any(dim=1).all()
    assert not (kept & ~present).any()  # only ever drops
    assert kept.sum() < 0.5 * present.sum()  # p=0.9 did drop a lot


def test_early_fusion_dropout_zeroes_dropped_channels() -> None:
    net = make_net("early", 3, modality_dropout=0.8).train()
    x = torch.randn(16, 3, 12, 12)
    out = net(x)
    keep = net.last_present
    # the same forward with the dropped channels explicitly zeroed gives the same result
    net.modality_dropout = 0.0
    expected = net(torch.where(keep[:, :, None, None], x, torch.zeros_like(x)))
    assert torch.allclose(out, expected, atol=1e-5)


def test_modality_dropout_in_train_mode_only() -> None:
    net = make_net("mutual_modality", 3, modality_dropout=0.8).train()
    net(torch.randn(16, 3, 12, 12))
    assert net.last_present.any(dim=1).all()
    assert not net.last_present.all()  # some tracks were dropped
    net.eval()
    net(torch.randn(16, 3, 12, 12))
    assert net.last_present.all()


@pytest.mark.parametrize("kind", ["mutual_modality", "mutual_token", "concat", "mean", "hemis", "gated"])
def test_gradients_reach_every_track(kind: str) -> None:
    net = make_net(kind, 3).train()
    net(torch.randn(2, 3, 16, 20)).sum().backward()
    for name, track in net.tracks.items():
        grads = [p.grad for p in track.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name
    for param in net.fusions.parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_unknown_names_raise_config_error_listing_valid_ones() -> None:
    with pytest.raises(ConfigError, match="mutual, concat, mean"):
        build_fusion("attention", channels=4, num_inputs=2, scale=0)
    with pytest.raises(ConfigError, match="modality, token"):
        MutualAttentionFusion(4, 2, 0, reading="pixel", token_scales=[], heads=1, key_channels=None, output="residual", temperature=1.0)
    with pytest.raises(ConfigError, match="flair"):
        select_present(["flair", "t2w"], ["flari"])
    with pytest.raises(ConfigError, match="none of"):
        select_present(["flair", "t2w"], ["t1"])
    with pytest.raises(ConfigError, match="token_scales"):
        SegNet(
            ["flair"],
            1,
            FEATURES,
            partial(
                MutualAttentionFusion, reading="token", token_scales=[5], heads=1, key_channels=None, output="residual", temperature=1.0
            ),
            None,
            early_fusion=False,
            **PLAIN,
        )
    with pytest.raises(ConfigError, match="duplicates"):
        SegNet(["flair", "flair"], 1, FEATURES, partial(MeanFusion), None, early_fusion=False, **PLAIN)
    with pytest.raises(ConfigError, match="heads"):
        SegNet(["flair"], 1, [3, 6], FACTORIES["mutual_modality"], None, early_fusion=False, **PLAIN)  # heads=2 does not divide 3
    with pytest.raises(ConfigError, match=r"output_prior must be in \(0, 1\) or null, got 1.5"):
        SegNet(["flair"], 1, FEATURES, partial(MeanFusion), 1.5, early_fusion=False, **PLAIN)


def test_select_present_order_and_extras() -> None:
    mask = select_present(["flair", "t2w", "t1"], ["t1", "flair", "swi"])
    assert mask.tolist() == [True, False, True]


def test_model_summary_counts_and_flops_grow() -> None:
    net = make_net("mutual_token", 2).train()
    small = model_summary(net, 16, 16)
    large = model_summary(net, 32, 32)
    expected = sum(p.numel() for p in net.parameters())
    assert small["parameters"] == {"total": expected, "trainable": expected}
    assert 0 < small["flops_per_slice"] < large["flops_per_slice"]
    assert net.training  # mode restored
    line = format_summary(small)
    assert "GFLOPs/slice at 16x16" in line and "\n" not in line


MODEL_FILES = sorted(p.stem for p in CONF_MODEL.glob("*.yaml") if p.stem != "base")  # base: the shared part


def test_all_model_configs_present() -> None:
    assert {"mutual", "mutual_token", "concat", "mean", "unet", "hemis", "gated"} <= set(MODEL_FILES)


@pytest.mark.parametrize("name", MODEL_FILES)
def test_model_yaml_instantiates(name: str, tmp_path: Path) -> None:
    # A minimal primary config around the real model group, so the group's own defaults lists
    # (mutual_token extends mutual) are resolved exactly as Hydra does in a run.
    shutil.copytree(CONF_MODEL, tmp_path / "model")
    (tmp_path / "config.yaml").write_text(
        "defaults:\n  - model: mutual\n  - _self_\n"
        "modality:\n  names: [flair, t2w]\ndata:\n  out_channels: 1\n"
    )
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={name}"])
    assert set(cfg.model) == {"net"}  # the model group only owns the net node
    net = instantiate(cfg.model.net)
    assert isinstance(net, SegNet)
    assert net.modalities == ("flair", "t2w")
    assert net.early_fusion == (name == "unet")
    out = net(torch.randn(2, 2, 17, 23))
    assert out.shape == (2, 1, 17, 23)
    if name == "mutual_token":
        assert [f.reading for f in net.fusions] == ["modality"] * 3 + ["token"]


def test_mutual_outputs_residual_zero_starts_as_mean_fusion_and_paper_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)]
    options = {"reading": "modality", "token_scales": [], "heads": 1, "key_channels": None, "temperature": 1.0}
    zero = build_fusion("mutual", channels=4, num_inputs=2, scale=0, output="residual_zero", **options)
    fused, _ = zero(feats)
    assert torch.equal(fused, (feats[0] + feats[1]) / 2)  # untrained: exactly mean fusion
    default = build_fusion("mutual", channels=4, num_inputs=2, scale=0, output="residual", **options)
    assert not torch.allclose(default(feats)[0], fused, atol=1e-3)  # the default's random start is not
    paper = build_fusion("mutual", channels=4, num_inputs=2, scale=0, output="paper", **options)
    fused, weights = paper(feats)
    values = [paper.values[i](feats[i]) for i in range(2)]
    expected = weights[:, 0, 0:1] * values[0] + weights[:, 0, 1:2] * values[1]  # sum_i w_i V_i, nothing added
    assert torch.allclose(fused, expected, atol=1e-6)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(default) - count(paper) == 4 * 4 + 4  # the output 1x1 conv is the only difference
    with pytest.raises(ConfigError, match="unknown mutual attention output 'sum'"):
        build_fusion("mutual", channels=4, num_inputs=2, scale=0, output="sum", **options)


@pytest.mark.parametrize("kind", ["early", "mutual_modality"])
def test_output_prior_starts_the_untrained_net_at_that_probability_everywhere(kind: str) -> None:
    """The output bias starts at logit(p): an untrained net predicts about p, not a coin flip per pixel."""
    num = 2
    started = make_net(kind, num, output_prior=0.01).eval()
    assert started.map.bias.detach().allclose(torch.full((2,), math.log(0.01 / 0.99)))
    with torch.no_grad():
        p = torch.sigmoid(started(torch.randn(2, num, 32, 32)))
    assert 0.002 < p.mean() < 0.05 and p.max() < 0.5
    plain = make_net(kind, num).eval()  # output_prior=None: PyTorch's random bias, no such start
    assert not plain.map.bias.detach().allclose(started.map.bias.detach())


def _stacked_reference(fusion: MutualAttentionFusion, features: list[torch.Tensor], mask: torch.Tensor):
    """Section 3.3's modality reading written over a [B, I, C, H, W] stack, term by term (the former code)."""
    stacked = torch.stack(features, dim=1)
    stacked = torch.where(mask[:, :, None, None, None] > 0, stacked, torch.zeros_like(stacked))
    mean = stacked.sum(dim=1) / mask.sum(dim=1)[:, None, None, None]
    q = fusion.query(mean)
    k = torch.stack([proj(stacked[:, i]) for i, proj in enumerate(fusion.keys)], dim=1)
    v = torch.stack([proj(stacked[:, i]) for i, proj in enumerate(fusion.values)], dim=1)
    b, i, ck, h, w = k.shape
    c, nh = v.shape[2], fusion.heads
    logits = (q.view(b, 1, nh, ck // nh, h, w) * k.view(b, i, nh, ck // nh, h, w)).sum(dim=3) / math.sqrt(ck // nh)
    weights = logits.masked_fill(mask[:, :, None, None, None] == 0, float("-inf")).softmax(dim=1)
    attended = (weights.unsqueeze(3) * v.view(b, i, nh, c // nh, h, w)).sum(dim=1).reshape(b, c, h, w)
    out = attended if fusion.out is None else mean + fusion.out(attended)
    return out, weights.transpose(1, 2)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("present", [None, [[True, True, True], [True, False, True]]], ids=["all", "some"])
@pytest.mark.parametrize(("heads", "output"), [(1, "paper"), (2, "residual")])
def test_track_wise_mutual_attention_agrees_with_the_stacked_formula(channels_last, present, heads, output) -> None:
    torch.manual_seed(0)
    fusion = MutualAttentionFusion(8, 3, 0, "modality", [], heads, None, output, 1.0).eval()
    features = [torch.randn(2, 8, 6, 5) for _ in range(3)]
    if channels_last:
        fusion = fusion.to(memory_format=torch.channels_last)
        features = [f.contiguous(memory_format=torch.channels_last) for f in features]
    mask = torch.ones(2, 3) if present is None else torch.tensor(present).float()
    with torch.no_grad():
        want, want_weights = _stacked_reference(fusion, features, mask)
        features[1][mask[:, 1] == 0] = float("nan")  # an absent track must not leak, whatever it holds
        got, got_weights = fusion(features, None if present is None else mask.bool())
    assert got.shape == want.shape == (2, 8, 6, 5) and got_weights.shape == (2, heads, 3, 6, 5)
    assert not got.isnan().any()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_weights, want_weights, rtol=1e-5, atol=1e-6)


# -- the network says what it is ------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "name", "attention"), [
    ("mutual", "mutual_modality", True), ("mutual_token", "mutual_token", True), ("concat", "concat", False),
    ("mean", "mean", False), ("unet", "early", False)])
def test_network_names_its_fusion_as_summaries_always_did(model, name, attention):
    from mutual_seg.config import CONFIG_DIR, register_resolvers
    from mutual_seg.models.network import fusion_name_of

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={model}", "model.net.features=[4,8,16,32]",
                                                        "paths.output_dir=/tmp"])
    net = instantiate(cfg.model.net)
    assert net.fusion_name == name == fusion_name_of(cfg.model.net)  # built or not, one name
    assert net.has_attention is attention


def test_every_fusion_declares_its_name():
    from mutual_seg.models.fusion import FUSIONS, fusion_label

    for key, cls in FUSIONS.items():
        assert isinstance(cls.__dict__.get("name"), str) and isinstance(cls.__dict__.get("has_attention"), bool), key
    nameless = type("NamelessFusion", (torch.nn.Module,), {})
    with pytest.raises(ConfigError, match="NamelessFusion.*class attribute `name`"):
        fusion_label(partial(nameless), {})
