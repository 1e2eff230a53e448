"""The fast-path switches give the plain path's results within a stated tolerance (mutual_seg/fastpath.py).

Tolerances: channels_last and torch.compile only reorder float32 sums, so outputs agree to 1e-4 (absolute, on
logits of order 1); bf16 autocast rounds activations to 8 mantissa bits, so it is judged where it matters:
the validation Dice must stay within 0.005 of float32.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from mutual_seg.errors import ConfigError
from mutual_seg.fastpath import FastPath, autocast, fold_batchnorm

ATOL = 1e-4


def build(make_cfg, overrides=()):
    cfg = make_cfg(list(overrides))
    torch.manual_seed(0)
    return instantiate(cfg.module, _recursive_=False), cfg


@pytest.mark.parametrize("model", ["mutual", "mutual_token", "concat", "unet"])
def test_channels_last_gives_the_plain_outputs_and_the_same_checkpoint_keys(make_cfg, model):
    extra = ["model.net.fusion.token_scales=[2]"] if model == "mutual_token" else []  # the bottom of [4, 8, 16]
    plain, _ = build(make_cfg, [f"model={model}", *extra, "module.fast_path.channels_last=false"])
    fast, _ = build(make_cfg, [f"model={model}", *extra, "module.fast_path.channels_last=true"])
    fast.load_state_dict(plain.state_dict())
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 2, 40, 36)
    plain.eval(), fast.eval()
    with torch.no_grad():
        expected, got = plain(x), fast(x)
    assert got.shape == expected.shape == (2, 1, 40, 36)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=ATOL)
    # training: the same loss and the same gradients
    plain.train(), fast.train()
    y = (torch.rand(2, 1, 40, 36) > 0.8).float()
    losses = []
    for module in (plain, fast):
        module.zero_grad()
        loss = module.loss_fn(module(x), y)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], atol=ATOL, rtol=ATOL)
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-3, rtol=1e-3, msg=name)


@pytest.mark.slow  # about a minute of training on 2 cores
def test_bf16_validation_dice_stays_within_0005_of_float32(make_cfg):
    """Train briefly in float32, then validate the same weights in float32 and in bf16-mixed (CPU autocast)."""
    module, cfg = build(make_cfg, ["model.net.features=[8,16,32]", "data.batch_size=8", "optim.optimizer.lr=0.003"])
    data = instantiate(cfg.data)
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
               "enable_model_summary": False, "enable_checkpointing": False}
    pl.Trainer(max_epochs=3, limit_train_batches=10, limit_val_batches=0, **options).fit(module, datamodule=data)
    dice = {precision: pl.Trainer(precision=precision, **options).validate(module, datamodule=data, verbose=False)[0]
            ["val/dice"] for precision in ("32-true", "bf16-mixed")}
    assert dice["32-true"] > 0.1, dice  # a model that found tumour (all-zero scores 0): a real comparison
    assert abs(dice["bf16-mixed"] - dice["32-true"]) <= 0.005, dice


def test_autocast_names_follow_lightning_precision():
    with autocast("bf16-mixed"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("32-true"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        autocast("fp8")


def test_unknown_fast_path_key_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"module.fast_path has unknown key\(s\) \['channel_last'\]"):
        FastPath.from_config({"channel_last": True, "compile": False})
    assert not FastPath.from_config(None).channels_last  # checkpoints older than the switches
    older = FastPath.from_config({"channels_last": True, "compile": False})  # saved before fold_batchnorm existed
    assert older.channels_last and not older.fold_batchnorm


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("model", ["mutual", "mutual_token", "concat", "unet"])
def test_folded_batchnorm_gives_the_eval_outputs_and_leaves_the_network_alone(make_cfg, model, channels_last):
    extra = ["model.net.fusion.token_scales=[2]"] if model == "mutual_token" else []
    module, _ = build(make_cfg, [f"model={model}", *extra, f"module.fast_path.channels_last={channels_last}"])
    module.train()
    with torch.no_grad():  # a few training passes move the running statistics away from (0, 1)
        for _ in range(3):
            module(torch.randn(4, 2, 40, 36) * 2 + 1)
    module.eval()
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    folded = module.fast_path.for_inference(module.net)
    assert folded is not module.net and not folded.training
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.net.modules()) > 0
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == 0
    x = module.fast_path.prepare(torch.randn(3, 2, 40, 36))
    with torch.no_grad():
        expected, got = module.net(x), folded(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for key, value in module.net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_fold_batchnorm_off_or_with_compile_runs_the_network_itself():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    assert FastPath(channels_last=False, compile=False, fold_batchnorm=False).for_inference(net) is net
    assert FastPath(channels_last=False, compile=True, fold_batchnorm=True).for_inference(net) is net
    folded = fold_batchnorm(net)
    assert isinstance(folded[1], torch.nn.Identity) and folded[0].bias is not None


@pytest.mark.slow
def test_compiled_network_gives_the_plain_outputs(make_cfg):
    plain, _ = build(make_cfg)
    fast, _ = build(make_cfg, ["module.fast_path.compile=true"])
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 2, 32, 32)
    plain.eval(), fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), atol=ATOL, rtol=ATOL)
