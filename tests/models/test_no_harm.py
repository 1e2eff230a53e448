"""Issue 17's mechanisms: HeMIS and gated fusions, per-track auxiliary heads, precision by hardware, flair3d."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mutual_seg import fastpath
from mutual_seg.checkpoint import upgrade
from mutual_seg.errors import ConfigError
from mutual_seg.models.fusion import GatedFusion, HeMISFusion, MeanFusion
from mutual_seg.models.network import SegNet

FEATURES = [4, 8, 16]


def feats(n: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, 6, 5, generator=g) for _ in range(n)]


def test_the_untrained_gate_is_an_equal_split_that_is_mean_fusion():
    gated, mean = GatedFusion(4, 3, 0), MeanFusion(4, 3, 0)
    x = feats(3)
    fused, gate = gated(x)
    assert gate.shape == (2, 1, 3, 6, 5) and torch.allclose(gate, torch.full_like(gate, 1 / 3))
    assert torch.allclose(fused, mean(x)[0], atol=1e-6)
    present = torch.tensor([[True, False, True], [False, True, False]])
    fused, gate = gated(x, present)
    assert torch.equal(gate[1, 0, 1], torch.ones(6, 5)) and gate[0, 0, 1].abs().max() == 0
    assert torch.allclose(fused, mean(x, present)[0], atol=1e-6)


def test_hemis_is_symmetric_in_the_modalities_and_sees_no_variance_in_one():
    torch.manual_seed(0)
    fusion = HeMISFusion(4, 2, 0).eval()
    a, b = feats(2)
    out_ab, _ = fusion([a, b])
    out_ba, _ = fusion([b, a])
    assert torch.allclose(out_ab, out_ba, atol=1e-6)
    # one modality present: mean = the track, variance = 0, i.e. the projection of [track, 0]
    alone, _ = fusion([a, b], torch.tensor([[True, False], [True, False]]))
    expected = fusion.project(torch.cat([a, torch.zeros_like(a)], dim=1))
    assert torch.allclose(alone, expected, atol=1e-6)
    # and the variance it uses is the population variance of the two tracks
    var = ((a - (a + b) / 2) ** 2 + (b - (a + b) / 2) ** 2) / 2
    assert torch.allclose(out_ab, fusion.project(torch.cat([(a + b) / 2, var], dim=1)), atol=1e-5)


def aux_net(weight: float = 0.5) -> SegNet:
    torch.manual_seed(0)
    return SegNet(["flair", "t2w"], 2, FEATURES, partial(HeMISFusion), output_prior=0.01, modality_dropout=0.0, early_fusion=False,
                  convs_per_stage=2, aux_weight=weight)


def test_track_heads_give_one_map_per_track_and_train():
    net = aux_net().train()
    logits, aux = net(torch.randn(3, 2, 17, 22), with_aux=True)
    assert logits.shape == (3, 2, 17, 22) and [a.shape for a in aux] == [(3, 2, 17, 22)] * 2
    # each head starts at the output prior at full resolution (the coarser scales add zero bias)
    assert torch.allclose(net.track_heads["flair"].maps[0].bias, torch.logit(torch.tensor(0.01)).expand(2))
    (logits.sum() + sum(a.sum() for a in aux)).backward()
    for name, head in net.track_heads.items():
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters()), name


def test_track_heads_never_change_inference_and_drop_away():
    net = aux_net().eval()
    x = torch.randn(2, 2, 16, 16)
    before = net(x)
    with torch.no_grad():
        for p in net.track_heads.parameters():
            p.add_(1.0)
    assert torch.equal(net(x), before)  # inference never runs the heads
    plain = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("track_heads"))
    net.drop_aux_heads()
    assert net.track_heads is None and sum(p.numel() for p in net.parameters()) == plain
    assert torch.equal(net(x), before)
    with pytest.raises(ValueError, match="track heads"):
        net(x, with_aux=True)


def test_track_head_settings_that_cannot_work_are_config_errors():
    with pytest.raises(ConfigError, match="aux_weight must be >= 0"):
        aux_net(-0.1)
    with pytest.raises(ConfigError, match="early fusion"):
        SegNet(["flair", "t2w"], 1, FEATURES, None, output_prior=None, modality_dropout=0.0, early_fusion=True,
               convs_per_stage=2, aux_weight=0.5)
    assert aux_net(0.0).track_heads is None  # 0: the paper's network, no heads


def test_an_old_checkpoints_network_has_no_track_heads():
    hparams = {"net": {"_target_": "mutual_seg.models.network.SegNet", "modalities": ["flair"], "out_channels": 1,
                       "features": FEATURES, "fusion": None, "early_fusion": True, "modality_dropout": 0.0,
                       "convs_per_stage": 2}}
    upgrade(hparams)
    assert hparams["net"]["aux_weight"] == 0.0 and hparams["net"]["output_prior"] is None
    assert instantiate(hparams["net"]).track_heads is None


def test_the_training_step_adds_the_weighted_track_losses(make_cfg):
    torch.manual_seed(0)
    cfg = make_cfg(["model=hemis", "model.net.aux_weight=0.5"])
    module = instantiate(cfg.module, _recursive_=False).train()
    batch = {"image": torch.randn(2, 2, 16, 16), "label": (torch.rand(2, 1, 16, 16) > 0.7).float()}
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value.detach()))
    loss = module.training_step(batch, 0)
    logits, aux = module.net(batch["image"], None, with_aux=True)
    main = module.loss_fn(logits, batch["label"])
    expected = main + 0.5 * torch.stack([module.loss_fn(a, batch["label"]) for a in aux]).mean()
    assert torch.allclose(loss, expected, atol=1e-6) and "train/aux_loss" in logged


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")],
                         ids=["cpu-with-amx", "cpu-avx2-only"])
def test_precision_auto_takes_bf16_only_where_the_device_runs_it_natively(monkeypatch, native, expected):
    monkeypatch.setattr(fastpath, "native_bf16", lambda device: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    precision, why = fastpath.resolve_trainer_precision("auto", "auto")
    assert precision == expected and expected in why and "CPU" in why
    # what a user names explicitly passes unchanged
    assert fastpath.resolve_trainer_precision("bf16-mixed", "cpu")[0] == "bf16-mixed"


@pytest.mark.parametrize("native", [True, False], ids=["cpu-with-amx", "cpu-avx2-only"])
def test_a_run_with_precision_auto_records_and_logs_its_choice(monkeypatch, make_cfg, caplog, native):
    """The real run path (train) with the capability check mocked: config.yaml records the choice, the log says it."""
    import logging

    from omegaconf import OmegaConf

    from mutual_seg.run import train

    monkeypatch.setattr(fastpath, "native_bf16", lambda device: native)
    cfg = make_cfg(["trainer.precision=auto", "test=false", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"])
    with caplog.at_level(logging.INFO):
        train(cfg)
    expected = "bf16-mixed" if native else "32-true"
    saved = OmegaConf.load(f"{cfg.paths.output_dir}/config.yaml")
    assert saved.trainer.precision == expected
    assert any(f"precision {expected} (trainer.precision=auto" in r.getMessage() for r in caplog.records)


def test_thick_slices_blur_through_the_plane_with_the_slice_profile():
    """Known answer: a single bright axial plane becomes a Gaussian along z with FWHM = the slice thickness."""
    from mutual_seg.data.synthetic.rendering import _thick_slices

    brain = np.ones((3, 3, 155), np.uint8)  # 155 slices over the 155 mm field of view: 1 mm apart
    idx = np.flatnonzero(brain)
    signal = np.zeros(brain.shape, np.float32)
    signal[:, :, 77] = 1.0
    out = _thick_slices(signal.ravel()[idx], idx, brain, 5.0).reshape(brain.shape)[1, 1]
    above_half = np.flatnonzero(out >= out.max() / 2)
    assert out.argmax() == 77 and abs(out.sum() - 1.0) < 1e-4  # centred, and no signal lost
    assert 4 <= above_half.size <= 6  # FWHM 5 mm on a 1 mm grid
    # inside a brain that ends, the normalized convolution keeps a flat signal flat (no dark edge)
    half = np.zeros_like(brain)
    half[:, :, :80] = 1
    idx = np.flatnonzero(half)
    flat = _thick_slices(np.ones(idx.size, np.float32), idx, half, 5.0)
    assert np.allclose(flat, 1.0, atol=1e-5)


def test_flair3d_is_a_strong_flair_beside_a_misleading_t2w():
    from mutual_seg.data.synthetic import VARIANTS, simulate_subject

    v = VARIANTS["flair3d"]
    assert v.slice_thickness_mm == {"t2w": 5.0} and v.noise_gain == {"t2w": 2.0}
    shape = (48, 48, 40)
    sub = simulate_subject(3, shape, "flair3d")
    again = simulate_subject(3, shape, "flair3d")
    assert all(np.array_equal(sub.images[m], again.images[m]) for m in sub.images)  # seeded: reproducible
    # FLAIR: tumour well above parenchyma, CSF nulled; T2w: tumour darker than CSF
    tumour, brain = sub.label > 0, sub.brain.astype(bool)
    csf = brain & ~sub.parenchyma.astype(bool) & ~tumour
    healthy = sub.parenchyma.astype(bool) & ~tumour & ~sub.distractor
    flair, t2 = sub.images["flair"], sub.images["t2w"]
    assert np.median(flair[tumour]) > 1.5 * np.median(flair[healthy]) > 3 * np.median(flair[csf])
    assert np.median(t2[tumour]) < np.median(t2[csf])


def test_a_model_trained_with_track_heads_predicts_without_them(make_cfg, tmp_path):
    """The checkpoint holds the heads (they trained); the owner of trained models drops them on load."""
    from mutual_seg.checkpoint import AtomicCheckpointIO, load_module

    torch.manual_seed(0)
    cfg = make_cfg(["model=hemis", "model.net.aux_weight=0.5"])
    module = instantiate(cfg.module, _recursive_=False).eval()
    assert any(name.startswith("net.track_heads") for name in module.state_dict())
    path = tmp_path / "heads.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
                                         path)
    loaded = load_module(path)
    assert loaded.hparams["net"]["aux_weight"] == 0.5 and loaded.net.track_heads is None
    assert not any("track_heads" in name for name, _ in loaded.net.named_parameters())
    x = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), module.net(x), atol=1e-6)


def test_the_attention_temperature_softens_the_weights_and_old_checkpoints_get_the_papers():
    """Known answer: at temperature T the log-ratio of the two modalities' weights is the paper's divided by T (same
    parameters); 1.0 gives the paper's block bit for bit; <= 0 is refused; an old checkpoint's fusion gets 1.0."""
    from mutual_seg.checkpoint.format import upgrade
    from mutual_seg.models.fusion import build_fusion

    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)]
    options = {"reading": "modality", "token_scales": [], "heads": 1, "key_channels": None, "output": "paper"}
    paper = build_fusion("mutual", channels=4, num_inputs=2, scale=0, temperature=1.0, **options)
    soft = build_fusion("mutual", channels=4, num_inputs=2, scale=0, temperature=2.0, **options)
    soft.load_state_dict(paper.state_dict())
    (_, w1), (_, w2) = paper(feats), soft(feats)
    ratio = lambda w: torch.log(w[:, 0, 0] / w[:, 0, 1])
    assert torch.allclose(ratio(w2), ratio(w1) / 2, atol=1e-5)
    assert (w2 - 0.5).abs().max() < (w1 - 0.5).abs().max()  # softer: closer to an equal split
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        build_fusion("mutual", channels=4, num_inputs=2, scale=0, temperature=0.0, **options)
    hparams = {"net": {"_target_": "mutual_seg.models.network.SegNet",
                       "fusion": {"_target_": "mutual_seg.models.fusion.MutualAttentionFusion", "_partial_": True}}}
    upgrade(hparams)
    assert hparams["net"]["fusion"]["temperature"] == 1.0 and hparams["net"]["fusion"]["output"] == "residual"
