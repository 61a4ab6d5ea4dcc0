"""Scores that rank configurations by their per-period returns, one score per column.

A score maps an ``(m, N)`` array of per-period returns (m periods, N configurations) to
``N`` numbers; the higher, the better. The built-in ones:

``sharpe``
    Per-period (not annualised) Sharpe ratio ``mean(r) / std(r, ddof=1)``. **0.0 when
    the column's returns in the sample are all equal** (a flat configuration has no
    risk-adjusted edge, and a zero standard deviation must not produce inf or NaN).
``mean``
    Mean per-period return.
``total_return``
    Compounded return ``prod(1 + r) - 1``.

A callable ``f(returns: ndarray (m, N)) -> ndarray (N,)`` may be passed wherever a score
name is accepted; it must return finite numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.errors import ConfigError, DataError, did_you_mean

ScoreFn = Callable[[np.ndarray], np.ndarray]
Score = str | ScoreFn


def sharpe_columns(x: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio of every column of *x* (``ddof=1``; 0.0 for constant columns)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] < 2:
        raise DataError(
            f"a Sharpe ratio needs at least 2 returns per configuration, found {x.shape[0]}; "
            "use a longer sample"
        )
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    constant = x.max(axis=0) == x.min(axis=0)
    out = np.zeros(x.shape[1])
    ok = ~constant & (std > 0)
    out[ok] = mean[ok] / std[ok]
    return out


def mean_columns(x: np.ndarray) -> np.ndarray:
    """Mean per-period return of every column of *x*."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    return np.asarray(x.mean(axis=0))


def total_return_columns(x: np.ndarray) -> np.ndarray:
    """Compounded return ``prod(1 + r) - 1`` of every column of *x*."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    return np.asarray(np.prod(1.0 + x, axis=0) - 1.0)


SCORES: dict[str, ScoreFn] = {
    "sharpe": sharpe_columns,
    "mean": mean_columns,
    "total_return": total_return_columns,
}


def resolve_score(score: Score) -> tuple[str, ScoreFn]:
    """Return ``(name, function)`` for a score name or callable; teach on unknown names."""
    if callable(score):
        return getattr(score, "__name__", "custom"), score
    if score not in SCORES:
        raise ConfigError(
            f"unknown metric {score!r}{did_you_mean(str(score), SCORES)}; "
            f"expected one of {', '.join(SCORES)} or a callable (m, N) -> (N,)"
        )
    return score, SCORES[score]


def apply_score(fn: ScoreFn, x: np.ndarray) -> np.ndarray:
    """Call *fn* on *x* and check that it gave one finite number per column."""
    out = np.asarray(fn(x), dtype=float).reshape(-1)
    if out.shape[0] != x.shape[1]:
        raise DataError(
            f"the metric returned {out.shape[0]} values for {x.shape[1]} configurations; "
            "it must return one value per column"
        )
    if not np.isfinite(out).all():
        raise DataError("the metric returned NaN or inf; it must return finite numbers")
    return out


def check_returns(x: np.ndarray, what: str = "returns") -> np.ndarray:
    """Return *x* as a float array, or raise :class:`DataError` if it holds NaN or inf."""
    arr = np.asarray(x, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0].tolist()
        raise DataError(
            f"{what} hold {int(bad.sum())} NaN/inf value(s) (first at position {where}); "
            "drop the leading NaN of pct_change() or fill flat periods with 0.0"
        )
    return arr
