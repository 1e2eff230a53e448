"""Training losses on logits: soft Dice (the paper's loss, section 4) and Dice + BCE.

Both take raw LOGITS [B, O, H, W] (the network's O maps before the sigmoid) and a {0, 1} target
of the same shape, and return a scalar. Working on logits lets BCE use the numerically stable
``binary_cross_entropy_with_logits`` and keeps the sigmoid in one place.

Why the Dice is pooled over the batch by default: training runs on 2D slices and most brain
slices hold no tumour. A per-slice soft Dice on an empty target is ``smooth / (sum(p) + smooth)``,
which is maximised only by predicting zero everywhere; averaged over mostly empty slices, that
term outweighs the few tumour slices and the network collapses to all-background. Summing
numerator and denominator over the whole batch (as nnU-Net's ``batch_dice``) gives each channel
one Dice per batch, so empty slices only add their false positives to the denominator.

Constructor arguments without defaults are tuned in Hydra YAML (``conf/loss/``), not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mutual_seg.errors import ConfigError


class DiceLoss(nn.Module):
    """Soft Dice loss, ``1 - mean over channels of (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)``.

    Args:
        smooth: Added to numerator and denominator (> 0) so that an empty target and an empty
            prediction score Dice 1 instead of 0/0; 1.0 is the usual choice.
        batch_dice: True (``conf/loss``): sum over batch and space, one Dice per channel. False: one
            Dice per slice and channel, then the mean (kept for comparison; collapses on mostly
            empty slices, see the module docstring).

    Example::

        >>> loss = DiceLoss(smooth=1.0, batch_dice=True)
        >>> loss(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8))  # p = 0.5 everywhere
        tensor(0.3316)
    """

    def __init__(self, smooth: float, batch_dice: bool) -> None:
        super().__init__()
        if not smooth > 0:
            raise ConfigError(
                f"loss.smooth must be > 0 (it keeps the Dice defined on empty slices), got {smooth}; "
                "set e.g. loss.smooth=1.0"
            )
        self.smooth = float(smooth)
        self.batch_dice = bool(batch_dice)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft Dice loss of the sigmoid of ``logits`` against ``target``.

        Args:
            logits: Raw network outputs [B, O, H, W] (any number of spatial dims after O).
            target: Binary masks, same shape; any dtype, values in {0, 1}.

        Returns:
            Scalar loss in [0, 1]; 0 means perfect overlap.
        """
        _check_shapes(logits, target)
        # Sums over a whole batch of slices lose precision in fp16/bf16 under autocast.
        probs = torch.sigmoid(logits.float())
        target = target.to(probs.dtype)
        dims = (0, *range(2, logits.ndim)) if self.batch_dice else tuple(range(2, logits.ndim))
        intersection = (probs * target).sum(dims)  # [O] or [B, O]
        denominator = probs.sum(dims) + target.sum(dims)
        dice = (2.0 * intersection + self.smooth) / (denominator + self.smooth)
        return 1.0 - dice.mean()


class DiceBCELoss(nn.Module):
    """Soft Dice plus weighted binary cross-entropy: ``Dice(logits, t) + bce_weight * BCE(logits, t)``.

    The BCE term gives every pixel a gradient even when the Dice is saturated, which often speeds
    up the first epochs; the Dice term keeps the class imbalance in check.

    Args:
        smooth: Dice smoothing (> 0), see ``DiceLoss``.
        bce_weight: Weight of the BCE term (>= 0; 0 gives plain Dice).
        pos_weight: Optional weight of positive pixels in the BCE (> 0), e.g. the background /
            tumour pixel ratio to counter imbalance; None weighs both classes equally.
        batch_dice: Dice over the whole batch (``conf/loss``) or per slice, see ``DiceLoss``.
    """

    def __init__(
        self,
        smooth: float,
        bce_weight: float,
        pos_weight: float | None,
        batch_dice: bool,
    ) -> None:
        super().__init__()
        if not bce_weight >= 0:
            raise ConfigError(
                f"loss.bce_weight must be >= 0, got {bce_weight}; set e.g. loss.bce_weight=1.0"
            )
        if pos_weight is not None and not pos_weight > 0:
            raise ConfigError(
                f"loss.pos_weight must be > 0 or null, got {pos_weight}; set e.g. loss.pos_weight=null"
            )
        self.dice = DiceLoss(smooth=smooth, batch_dice=batch_dice)
        self.bce_weight = float(bce_weight)
        # A buffer follows the module to the GPU; not persistent, so checkpoints stay loss-agnostic.
        weight = None if pos_weight is None else torch.tensor(float(pos_weight))
        self.register_buffer("pos_weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice + weighted BCE.

        Args:
            logits: Raw network outputs [B, O, H, W].
            target: Binary masks, same shape.

        Returns:
            Scalar loss.
        """
        dice = self.dice(logits, target)
        logits = logits.float()
        bce = F.binary_cross_entropy_with_logits(
            logits, target.to(logits.dtype), pos_weight=self.pos_weight
        )
        return dice + self.bce_weight * bce


def _check_shapes(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Refuse mismatched or channel-less inputs, which would otherwise broadcast silently."""
    if logits.shape != target.shape:
        raise ValueError(
            f"logits shape {tuple(logits.shape)} differs from target shape {tuple(target.shape)}; "
            "both must be [B, O, H, W] (add the channel dim to the target with target[:, None])"
        )
    if logits.ndim < 3:
        raise ValueError(
            f"expected [B, O, H, W] (at least one spatial dim), got shape {tuple(logits.shape)}"
        )
