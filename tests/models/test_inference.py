"""Whole-volume inference on tiny networks: brain box, batching, TTA, ensembles, attention, post-processing."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import torch

from mutual_seg.inference import (
    InferenceSettings,
    attention_map,
    predict_volume,
    segment,
)
from mutual_seg.masks import brain_box, keep_largest_component
from mutual_seg.models.fusion import ConcatFusion, MutualAttentionFusion
from mutual_seg.models.network import SegNet

SETTINGS = InferenceSettings(threshold=0.5, batch_size=3, min_component_mm3=0.0, largest_component=False, tta=False)


def tiny_net(seed: int = 0, fusion=MutualAttentionFusion) -> SegNet:
    torch.manual_seed(seed)
    options = ({"reading": "modality", "token_scales": [], "heads": 1, "key_channels": None, "output": "paper", "temperature": 1.0}
               if fusion is MutualAttentionFusion else {})
    return SegNet(["flair", "t2w"], 1, [4, 8], partial(fusion, **options), None,
                  modality_dropout=0.0, early_fusion=False, convs_per_stage=2, aux_weight=0.0).eval()


@pytest.fixture(scope="module")
def volume() -> tuple[torch.Tensor, torch.Tensor]:
    """A [Z, I, X, Y] = [7, 2, 21, 18] volume (odd sizes) and a brain mask on slices 2-4 only."""
    torch.manual_seed(1)
    image = torch.randn(7, 2, 21, 18)
    mask = torch.zeros(7, 21, 18, dtype=torch.bool)
    mask[2:5, 6:12, 5:11] = True
    return image, mask


def test_brain_box_keeps_slices_with_brain_and_a_margin():
    mask = torch.zeros(6, 30, 40, dtype=torch.bool)
    mask[1, 10:12, 20:25] = True
    mask[4, 14, 30] = True
    slices, xs, ys = brain_box(mask, margin=3)
    assert slices.tolist() == [1, 4] and (xs, ys) == (slice(7, 18), slice(17, 34))
    assert brain_box(torch.zeros(2, 3, 3, dtype=torch.bool)) is None and brain_box(None) is None


def test_outside_the_brain_box_nothing_is_predicted_and_inside_matches_a_plain_forward(volume):
    image, mask = volume
    net = tiny_net()
    probs = predict_volume([net], image, SETTINGS, mask=mask).probabilities
    assert probs.shape == (7, 1, 21, 18) and probs.dtype == torch.float32
    assert torch.all(probs[[0, 1, 5, 6]] == 0)
    slices, xs, ys = brain_box(mask)
    with torch.no_grad():
        direct = torch.sigmoid(net(image[slices][:, :, xs, ys]))
    torch.testing.assert_close(probs[slices][:, :, xs, ys], direct)
    # batching does not change the answer
    one = predict_volume([net], image, InferenceSettings(0.5, 1, 0.0, False, False), mask=mask).probabilities
    torch.testing.assert_close(one, probs)


def test_tta_averages_flips_in_range_and_an_ensemble_averages_its_members(volume):
    image, mask = volume
    nets = [tiny_net(0), tiny_net(1)]
    tta = InferenceSettings(0.5, 4, 0.0, False, True)
    out = predict_volume(nets[:1], image, tta, mask=mask).probabilities
    plain = predict_volume(nets[:1], image, SETTINGS, mask=mask).probabilities
    assert out.shape == plain.shape and 0 <= out.min() and out.max() <= 1 and not torch.equal(out, plain)
    with torch.no_grad():  # the TTA mean by hand: each flip's prediction flipped back, averaged
        passes = [torch.sigmoid(nets[0](image.flip(d))).flip(d) for d in ((0,), (-2,), (-1,), (-2, -1)) if d != (0,)]
        by_hand = (torch.sigmoid(nets[0](image)) + sum(passes)) / 4
    torch.testing.assert_close(predict_volume(nets[:1], image, tta).probabilities, by_hand)
    members = [predict_volume([n], image, SETTINGS, mask=mask).probabilities for n in nets]
    both = predict_volume(nets, image, SETTINGS, mask=mask).probabilities
    torch.testing.assert_close(both, (members[0] + members[1]) / 2)


def test_attention_is_full_resolution_and_sums_to_one_over_supplied_modalities(volume):
    image, mask = volume
    net = tiny_net()
    out = predict_volume([net], image, InferenceSettings(0.5, 3, 0.0, False, True), mask=mask, attention=True)
    assert out.attention.shape == (7, 2, 21, 18)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(7, 21, 18))
    assert not torch.allclose(out.attention[3], torch.full_like(out.attention[3], 0.5))  # real weights inside
    # only FLAIR supplied: every weight goes to FLAIR
    only = predict_volume([net], image, SETTINGS, present=torch.tensor([True, False]), mask=mask, attention=True)
    torch.testing.assert_close(only.attention[:, 0], torch.ones(7, 21, 18))
    assert attention_map(tiny_net(fusion=ConcatFusion), (21, 18)) is None


def test_segment_thresholds_and_post_processes():
    probs = torch.zeros(5, 1, 12, 12)
    probs[1:4, 0, 2:6, 2:6] = 0.9  # 48 voxels
    probs[2, 0, 9, 9] = 0.6  # a one-voxel speck
    probs[2, 0, 0, 11] = 0.4  # below threshold
    base = segment(probs, (1.0, 1.0, 1.0), SETTINGS)
    assert base.dtype == bool and base.sum() == 49
    assert segment(probs, (1.0, 1.0, 1.0), InferenceSettings(0.5, 3, 2.0, False, False)).sum() == 48
    assert segment(probs, (1.0, 1.0, 1.0), InferenceSettings(0.5, 3, 0.0, True, False)).sum() == 48
    assert not keep_largest_component(np.zeros((2, 2, 2), bool)).any()


def test_the_network_imports_nothing_from_the_data_package():
    code = "import sys, mutual_seg.models.network, mutual_seg.inference; assert not [m for m in sys.modules if m.startswith('mutual_seg.data')]"
    subprocess.run([sys.executable, "-c", code], check=True)
