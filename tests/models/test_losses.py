import math

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from mutual_seg.errors import ConfigError
from mutual_seg.losses import DiceBCELoss, DiceLoss

BIG = 30.0  # sigmoid(30) == 1 and sigmoid(-30) == 0 to float32 precision


def _two_slices() -> torch.Tensor:
    """Target [2, 1, 4, 4]: a 2x2 tumour (4 pixels) on slice 0, slice 1 empty."""
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 1:3, 1:3] = 1
    return target


# --- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_dice", [True, False])
def test_perfect_prediction_gives_zero_loss(batch_dice):
    target = _two_slices()
    logits = (2 * target - 1) * BIG
    assert DiceLoss(smooth=1.0, batch_dice=batch_dice)(logits, target).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_zero_logits_known_answer_batch_and_per_slice():
    # p = 0.5 everywhere. Whole batch: 32 pixels, sum p = 16, target sum 4, intersection 2:
    # Dice = (2*2 + 1) / (16 + 4 + 1) = 5/21.
    target = _two_slices()
    logits = torch.zeros_like(target)
    assert DiceLoss(smooth=1.0, batch_dice=True)(logits, target).item() == pytest.approx(1 - 5 / 21)
    # Per slice: tumour slice (4 + 1) / (8 + 4 + 1) = 5/13, empty slice 1 / (8 + 1) = 1/9.
    per_slice = DiceLoss(smooth=1.0, batch_dice=False)(logits, target).item()
    assert per_slice == pytest.approx(1 - (5 / 13 + 1 / 9) / 2)


def test_mean_over_channels():
    # Channel 0 perfect (Dice 1); channel 1 predicts the complement of its target:
    # intersection 0, sum p = 28, sum t = 4 -> Dice = 1 / (28 + 4 + 1) = 1/33.
    target = torch.cat([_two_slices(), _two_slices()], dim=1)  # [2, 2, 4, 4]
    logits = (2 * target - 1) * BIG
    logits[:, 1] = -logits[:, 1]
    loss = DiceLoss(smooth=1.0, batch_dice=True)(logits, target).item()
    assert loss == pytest.approx(1 - (1 + 1 / 33) / 2, abs=1e-6)


def test_per_slice_dice_rewards_predicting_nothing_but_batch_dice_does_not():
    # 8 slices of 4x4, one holds a 4-pixel tumour. "nothing" predicts all background;
    # "useful" finds the tumour exactly but adds one false-positive pixel to each empty slice.
    target = torch.zeros(8, 1, 4, 4)
    target[0, 0, 1:3, 1:3] = 1
    nothing = torch.full_like(target, -BIG)
    useful = (2 * target - 1) * BIG
    useful[1:, 0, 0, 0] = BIG
    per_slice = DiceLoss(smooth=1.0, batch_dice=False)
    batch = DiceLoss(smooth=1.0, batch_dice=True)
    # Per slice: nothing = 1 - (7 * 1 + 1/5) / 8 = 0.1; useful = 1 - (7 * 1/2 + 1) / 8 = 0.4375.
    assert per_slice(nothing, target).item() == pytest.approx(0.1, abs=1e-6)
    assert per_slice(useful, target).item() == pytest.approx(0.4375, abs=1e-6)
    # Whole batch: nothing = 1 - 1/5 = 0.8; useful = 1 - 9/16 = 0.4375.
    assert batch(nothing, target).item() == pytest.approx(0.8, abs=1e-6)
    assert batch(useful, target).item() == pytest.approx(0.4375, abs=1e-6)


def test_dice_bce_known_answers():
    target = _two_slices()
    logits = torch.zeros_like(target)
    dice = 1 - 5 / 21
    # BCE of p = 0.5 is ln 2 per pixel.
    loss = DiceBCELoss(smooth=1.0, bce_weight=0.5, pos_weight=None, batch_dice=True)(logits, target).item()
    assert loss == pytest.approx(dice + 0.5 * math.log(2))
    # pos_weight 3 weighs the 4 tumour pixels 3x: mean = ln2 * (3*4 + 28) / 32.
    weighted = DiceBCELoss(smooth=1.0, bce_weight=1.0, pos_weight=3.0, batch_dice=True)(logits, target).item()
    assert weighted == pytest.approx(dice + math.log(2) * 40 / 32)
    # bce_weight 0 is plain Dice.
    random_logits = torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    random_target = (torch.rand(3, 2, 5, 7, generator=torch.Generator().manual_seed(1)) > 0.7)
    assert DiceBCELoss(smooth=1.0, bce_weight=0.0, pos_weight=None, batch_dice=True)(random_logits, random_target).item() == (
        pytest.approx(DiceLoss(smooth=1.0, batch_dice=True)(random_logits, random_target).item())
    )


def test_low_precision_logits_give_a_float32_loss_with_gradients():
    target = _two_slices()
    logits = torch.zeros_like(target, dtype=torch.bfloat16, requires_grad=True)
    loss = DiceBCELoss(smooth=1.0, bce_weight=1.0, pos_weight=None, batch_dice=True)(logits, target.bool())
    assert loss.dtype == torch.float32 and loss.ndim == 0
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # pos_weight is a non-persistent buffer: checkpoints do not depend on the loss settings.
    assert DiceBCELoss(smooth=1.0, bce_weight=1.0, pos_weight=2.0, batch_dice=True).state_dict() == {}


# --- training does not collapse ----------------------------------------------------------------


@pytest.fixture
def one_thread():
    # Tiny convs gain nothing from threads, and on a busy 2-core machine OpenMP threads that wait
    # for each other make 200 steps take 10 s instead of 0.5 s.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_batch_dice_trains_on_mostly_empty_slices_without_collapsing(one_thread):
    # 32 noisy 16x16 slices; 4 hold a faint 5x5 square (contrast 0.7 vs noise sd 0.5).
    # With these data a per-slice Dice collapses to all-background for most seeds.
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    target = torch.zeros(32, 1, 16, 16)
    for i in range(4):
        r, c = 2 + 3 * i, 3 + 2 * i
        target[8 * i, 0, r : r + 5, c : c + 5] = 1
    images = 0.5 * torch.randn(32, 1, 16, 16, generator=gen) + 0.7 * target
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = DiceLoss(smooth=1.0, batch_dice=True)
    for _ in range(200):
        optimizer.zero_grad()
        loss_fn(model(images), target).backward()
        optimizer.step()

    with torch.no_grad():
        pred = (model(images) > 0).float()
    assert pred.sum() > 0
    tumour = target.sum(dim=(1, 2, 3)) > 0
    p, t = pred[tumour], target[tumour]
    dice = (2 * (p * t).sum() / (p.sum() + t.sum())).item()
    assert dice > 0.7


# --- configuration and input checks ------------------------------------------------------------


def test_built_from_the_recommended_yaml_and_required_args_fail_loudly():
    from omegaconf import OmegaConf

    from mutual_seg.config import CONFIG_DIR

    dice = instantiate(OmegaConf.load(CONFIG_DIR / "loss" / "dice.yaml"))
    assert isinstance(dice, DiceLoss) and dice.batch_dice
    combo = instantiate(OmegaConf.load(CONFIG_DIR / "loss" / "dice_bce.yaml"))
    assert isinstance(combo, DiceBCELoss) and combo.pos_weight is None and combo.dice.batch_dice
    with pytest.raises(Exception, match="smooth"):
        instantiate({"_target_": "mutual_seg.losses.DiceLoss"})


def test_invalid_settings_and_shapes_raise():
    with pytest.raises(ConfigError, match="smooth"):
        DiceLoss(smooth=0.0, batch_dice=True)
    with pytest.raises(ConfigError, match="bce_weight"):
        DiceBCELoss(smooth=1.0, bce_weight=-1.0, pos_weight=None, batch_dice=True)
    with pytest.raises(ConfigError, match="pos_weight"):
        DiceBCELoss(smooth=1.0, bce_weight=1.0, pos_weight=0.0, batch_dice=True)
    with pytest.raises(ValueError, match=r"target\[:, None\]"):
        DiceLoss(smooth=1.0, batch_dice=True)(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="at least one spatial dim"):
        DiceLoss(smooth=1.0, batch_dice=True)(torch.zeros(2, 1), torch.zeros(2, 1))


def test_a_checkpoint_from_before_loss_batch_dice_rebuilds_its_loss_as_it_trained():
    # conf/loss gained batch_dice (the code's default then was True): old hyper-parameters are upgraded on load
    from hydra.utils import instantiate

    from mutual_seg.checkpoint import upgrade

    old = {"loss": {"_target_": "mutual_seg.losses.DiceBCELoss", "smooth": 1.0, "bce_weight": 1.0}}
    upgrade(old)
    loss = instantiate(old["loss"])
    assert loss.dice.batch_dice is True and loss.pos_weight is None
