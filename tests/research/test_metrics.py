"""Classification metrics in numpy, pinned to hand-computed examples and brute-force definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.stats.classification import (
    best_threshold,
    classification_metrics,
    pr_auc,
    pr_curve,
    prob_quantiles,
    roc_auc,
    roc_curve,
    threshold_grid,
)

pytestmark = pytest.mark.research


def test_hand_computed_example() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert roc_auc(y, p) == pytest.approx(0.75)
    # ranked: 0.8(+) P=1 R=.5; 0.4(-); 0.35(+) P=2/3 R=1 -> AP = .5*1 + .5*2/3
    assert pr_auc(y, p) == pytest.approx(0.5 + 1 / 3)
    m = classification_metrics(y, p, threshold=0.35)  # predicts 0.35, 0.4, 0.8 positive
    assert (m["precision"], m["recall"], m["accuracy"]) == pytest.approx((2 / 3, 1.0, 0.75))
    assert m["f1"] == pytest.approx(0.8)


def test_ties_count_one_half() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.full(4, 0.5)
    assert roc_auc(y, p) == pytest.approx(0.5)
    assert pr_auc(y, p) == pytest.approx(0.5)
    fpr, tpr, thr = roc_curve(y, p)
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(tpr, [0, 1])


def test_against_brute_force_definitions() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(float)
    p = np.round(np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1), 2)  # rounded: many ties
    pos, neg = p[y == 1], p[y == 0]
    pairs = [(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)]
    assert roc_auc(y, p) == pytest.approx(np.mean(pairs))
    # average precision without ties: mean precision at each positive's rank
    q = rng.permutation(300) / 300.0
    order = np.argsort(-q)
    hits = np.cumsum(y[order])
    ap = np.mean([hits[k] / (k + 1) for k in range(300) if y[order][k] == 1])
    assert pr_auc(y, q) == pytest.approx(ap)
    precision, recall, _ = pr_curve(y, q)
    assert recall[-1] == 0.0
    assert precision[-1] == 1.0
    assert np.all(np.diff(recall[:-1]) >= 0)


def test_threshold_grid_counts() -> None:
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.6, 0.6, 0.2, 0.1])
    g = threshold_grid(y, p, np.array([0.05, 0.5, 0.6, 0.95]))
    np.testing.assert_array_equal(g["tp"], [3, 2, 2, 0])
    np.testing.assert_array_equal(g["fp"], [2, 1, 1, 0])
    np.testing.assert_allclose(g["precision"], [0.6, 2 / 3, 2 / 3, 0.0])  # 0/0 -> 0
    np.testing.assert_allclose(g["recall"], [1.0, 2 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(g["predicted_pos_rate"], [1.0, 0.6, 0.6, 0.0])


def test_best_threshold_ignores_call_everything_positive() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.45).astype(float)
    p = rng.random(2000) * 0.2 + 0.4  # no skill: F1 is largest when everything is positive
    thr, f1 = best_threshold(y, p)
    rate = float((p >= thr).mean())
    assert rate <= 0.95
    assert thr > 0.4
    grid = threshold_grid(y, p)
    assert f1 == pytest.approx(grid["f1"][grid["predicted_pos_rate"] <= 0.95].max())


def test_prob_quantiles() -> None:
    q = prob_quantiles(np.linspace(0, 1, 1001))
    assert len(q) == 101
    assert q[0] == 0.0
    assert q[-1] == 1.0
    assert q[50] == pytest.approx(0.5)
    assert all(b >= a for a, b in itertools.pairwise(q))
