"""Binary classification metrics: :mod:`engine.stats.classification`, under research's name.

The definitions live in the engine so that the backtest diagnosis can score a model on
its window without the research extra; training and evaluation import them from here.
"""

from __future__ import annotations

from engine.stats.classification import (
    BINARY_METRICS,
    DEFAULT_GRID,
    best_threshold,
    classification_metrics,
    pr_auc,
    pr_curve,
    prob_quantiles,
    roc_auc,
    roc_curve,
    threshold_grid,
)

__all__ = [
    "BINARY_METRICS",
    "DEFAULT_GRID",
    "best_threshold",
    "classification_metrics",
    "pr_auc",
    "pr_curve",
    "prob_quantiles",
    "roc_auc",
    "roc_curve",
    "threshold_grid",
]
