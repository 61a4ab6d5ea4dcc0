"""Binary losses on logits: BCE, class-weighted BCE and focal loss.

All take logits ``(B,)`` and labels ``(B,)`` in {0, 1} and return the batch mean.

* ``bce``: plain binary cross-entropy;
* ``weighted_bce``: each sample weighted by its class weight ``n / (2 n_class)`` measured on
  the training split, so both classes weigh the same in total;
* ``focal`` (Lin et al., 2017): ``alpha_t (1 - p_t)^gamma * BCE``, with ``alpha_t = alpha`` for
  positives and ``1 - alpha`` for negatives; ``gamma = 0, alpha = 0.5`` is half the BCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError

__all__ = ["FocalLoss", "WeightedBCELoss", "make_loss"]


class WeightedBCELoss(nn.Module):
    """BCE with a weight per class: ``w_pos`` for label 1, ``w_neg`` for label 0."""

    def __init__(self, w_neg: float = 1.0, w_pos: float = 1.0) -> None:
        super().__init__()
        self.w_neg = float(w_neg)
        self.w_pos = float(w_pos)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted batch mean."""
        weight = target * self.w_pos + (1.0 - target) * self.w_neg
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


class FocalLoss(nn.Module):
    """Focal loss on logits (numerically stable: built on ``binary_cross_entropy_with_logits``)."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0 or gamma < 0.0:
            raise ConfigError(f"focal loss needs 0 <= alpha <= 1 and gamma >= 0, got alpha={alpha}, gamma={gamma}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Batch mean of ``alpha_t (1 - p_t)^gamma * CE``."""
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * target + (1.0 - p) * (1.0 - target)
        alpha_t = self.alpha * target + (1.0 - self.alpha) * (1.0 - target)
        return (alpha_t * (1.0 - p_t).pow(self.gamma) * ce).mean()


def make_loss(kind: str, *, class_weights: tuple[float, float] = (1.0, 1.0),
              focal_alpha: float = 0.25, focal_gamma: float = 2.0) -> nn.Module:
    """The loss named by ``train.loss``; *class_weights* is ``(w_neg, w_pos)`` of the training split."""
    if kind == "bce":
        return nn.BCEWithLogitsLoss()
    if kind == "weighted_bce":
        return WeightedBCELoss(*class_weights)
    if kind == "focal":
        return FocalLoss(focal_alpha, focal_gamma)
    raise ConfigError(f"train.loss = '{kind}' is unknown: choose bce, weighted_bce or focal")
