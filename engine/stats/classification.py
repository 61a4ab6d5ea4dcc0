"""Binary classification metrics in numpy: threshold metrics, PR-AUC, ROC-AUC, curves, grids.

Used by training and evaluation (``research``) and by the backtest diagnosis
(:mod:`engine.diagnosis.signal_quality`), which scores a model's probabilities on the backtest window without the research extra.

Definitions follow scikit-learn's (which is not a dependency), and the tests pin them
against hand-computed examples:

* precision, recall and F1 are those of the **positive** class; a ratio with a zero
  denominator is 0;
* PR-AUC is the *average precision* ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score
  thresholds (a step function, no interpolation);
* ROC-AUC is the trapezoidal area under the ROC curve over the distinct thresholds, which
  equals the probability that a random positive scores above a random negative, ties
  counting one half.

A prediction is positive when ``p >= threshold``.
"""

from __future__ import annotations

import numpy as np

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

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "pr_auc", "roc_auc")
DEFAULT_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
"""Thresholds searched for the best validation F1: 0.01, 0.02, ..., 0.99."""


def _inputs(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in length")
    return (y > 0.5).astype(np.float64), p


def _div(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def _distinct_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, scores descending."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps, fps, p_sorted[last]


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``, starting at ``(0, 0)`` (threshold +inf)."""
    y, p = _inputs(y_true, scores)
    tps, fps, thr = _distinct_counts(y, p)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return _div(fps, fps[-1]), _div(tps, tps[-1]), np.r_[np.inf, thr]


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y, _ = _inputs(y_true, scores)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)`` at the distinct scores, recall increasing, ending at ``(1, 0)``."""
    y, p = _inputs(y_true, scores)
    tps, fps, thr = _distinct_counts(y, p)
    precision = _div(tps, tps + fps)
    recall = _div(tps, tps[-1]) if tps.size else tps
    return np.r_[precision, 1.0], np.r_[recall, 0.0], thr


def pr_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (PR-AUC); NaN when there is no positive."""
    y, p = _inputs(y_true, scores)
    if y.sum() == 0:
        return float("nan")
    tps, fps, _ = _distinct_counts(y, p)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def threshold_grid(y_true: np.ndarray, scores: np.ndarray,
                   thresholds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Confusion counts, precision, recall, F1 and predicted-positive rate per threshold."""
    y, p = _inputs(y_true, scores)
    thr = np.asarray(DEFAULT_GRID if thresholds is None else thresholds, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    p_sorted = p[order]
    cum_pos = np.r_[0.0, np.cumsum(y[order])]
    below = np.searchsorted(p_sorted, thr, side="left")  # predictions < threshold
    n, n_pos = float(y.size), float(y.sum())
    tp = n_pos - cum_pos[below]
    pred_pos = n - below
    fp = pred_pos - tp
    fn = n_pos - tp
    tn = n - tp - fp - fn
    precision = _div(tp, pred_pos)
    recall = _div(tp, n_pos)
    f1 = _div(2 * precision * recall, precision + recall)
    return {"threshold": thr, "precision": precision, "recall": recall, "f1": f1,
            "accuracy": _div(tp + tn, n), "predicted_pos_rate": _div(pred_pos, n),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def best_threshold(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None = None,
                   *, min_rate: float = 0.01, max_rate: float = 0.95) -> tuple[float, float]:
    """The grid threshold with the highest F1, and that F1.

    Only thresholds that call between *min_rate* and *max_rate* of the windows positive
    compete: a threshold that calls (almost) every window positive maximises F1 for any
    weak classifier - it is buy-and-hold, not a signal. Ties go to the lowest threshold;
    when no threshold qualifies, 0.5 is returned with its F1.
    """
    grid = threshold_grid(y_true, scores, thresholds)
    rate = grid["predicted_pos_rate"]
    ok = (rate >= min_rate) & (rate <= max_rate)
    if not ok.any():
        half = threshold_grid(y_true, scores, np.array([0.5]))
        return 0.5, float(half["f1"][0])
    f1 = np.where(ok, grid["f1"], -1.0)
    i = int(np.argmax(f1))
    return float(grid["threshold"][i]), float(grid["f1"][i])


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 at *threshold*, PR-AUC, ROC-AUC, and rates."""
    y, p = _inputs(y_true, scores)
    row = threshold_grid(y, p, np.array([threshold]))
    return {
        "accuracy": float(row["accuracy"][0]),
        "precision": float(row["precision"][0]),
        "recall": float(row["recall"][0]),
        "f1": float(row["f1"][0]),
        "pr_auc": pr_auc(y, p),
        "roc_auc": roc_auc(y, p),
        "threshold": float(threshold),
        "pos_rate": float(y.mean()) if y.size else float("nan"),
        "predicted_pos_rate": float(row["predicted_pos_rate"][0]),
        "n": float(y.size),
    }


def prob_quantiles(scores: np.ndarray, n: int = 101) -> list[float]:
    """The 0th, 1st, ..., 100th percentiles of *scores* (what ``rank_average`` ensembles rank against)."""
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    return [float(q) for q in np.quantile(p, np.linspace(0.0, 1.0, n))]
