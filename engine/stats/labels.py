"""Training labels, computed from FUTURE bars by definition.

Training (``research``, which re-exports them as :mod:`research.labels`) and the backtest
diagnosis (the card's label on the backtest window, :mod:`engine.diagnosis.signal_quality`)
use the same definitions.

The label of bar ``t`` describes what happens *after* the decision taken at bar ``t``'s
close: it reads the closes of bars ``t+1 .. t+H`` (and ``close[t]`` as the reference) and
nothing else. Consequently the last ``H`` bars of a series have no label (NaN), and a
window ending at ``t`` may only be used for training if bars ``t+1 .. t+H`` lie in the
same split (:mod:`research.dataset` enforces it with the purge gap).

Two kinds:

``threshold``
    ``1`` if ``close[t+H] / close[t] - 1 > threshold``, else ``0``.
``triple_barrier`` (closes only)
    ``1`` if some ``close[t+k]`` (``1 <= k <= H``) reaches ``close[t] * (1 + take_profit)``
    before any close falls to ``close[t] * (1 - stop_loss)``; ``0`` if the stop is reached
    first or neither barrier is touched within ``H`` bars (the vertical barrier). Intrabar
    highs and lows are ignored on purpose: on one bar their order is unknown.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError

__all__ = ["make_labels", "threshold_labels", "triple_barrier_labels"]


def _check(close: np.ndarray, horizon: int) -> np.ndarray:
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 1:
        raise ConfigError(f"labels need a 1-D close series, got shape {c.shape}")
    if int(horizon) < 1:
        raise ConfigError(f"label.horizon must be at least 1 bar, got {horizon}")
    return c


def threshold_labels(close: np.ndarray, horizon: int, threshold: float = 0.0) -> np.ndarray:
    """``1.0`` where the H-bar forward return exceeds *threshold*, ``0.0`` otherwise, NaN for the last H bars."""
    c = _check(close, horizon)
    out = np.full(c.shape, np.nan, dtype=np.float32)
    if c.size > horizon:
        fwd = c[horizon:] / c[:-horizon] - 1.0
        out[:-horizon] = (fwd > threshold).astype(np.float32)
    return out


def triple_barrier_labels(
    close: np.ndarray, horizon: int, take_profit: float, stop_loss: float
) -> np.ndarray:
    """``1.0`` where the upper barrier is hit first within H bars, ``0.0`` otherwise, NaN for the last H bars."""
    c = _check(close, horizon)
    if not (take_profit > 0 and stop_loss > 0):
        raise ConfigError(
            f"triple-barrier widths must be positive, got take_profit={take_profit}, "
            f"stop_loss={stop_loss}"
        )
    n = c.size
    out = np.full(n, np.nan, dtype=np.float32)
    m = n - horizon
    if m <= 0:
        return out
    base = c[:m]
    up, down = base * (1.0 + take_profit), base * (1.0 - stop_loss)
    first_up = np.full(m, horizon + 1, dtype=np.int64)
    first_down = np.full(m, horizon + 1, dtype=np.int64)
    for k in range(horizon, 0, -1):  # descending: the smallest k that hits wins
        future = c[k : k + m]
        first_up = np.where(future >= up, k, first_up)
        first_down = np.where(future <= down, k, first_down)
    out[:m] = ((first_up <= horizon) & (first_up < first_down)).astype(np.float32)
    return out


def make_labels(
    close: np.ndarray,
    kind: str,
    horizon: int,
    *,
    threshold: float = 0.0,
    take_profit: float = 0.01,
    stop_loss: float = 0.01,
) -> np.ndarray:
    """Labels of every bar of *close* (float32: 1.0, 0.0, or NaN for the last *horizon* bars)."""
    if kind == "threshold":
        return threshold_labels(close, horizon, threshold)
    if kind == "triple_barrier":
        return triple_barrier_labels(close, horizon, take_profit, stop_loss)
    raise ConfigError(f"label.kind = '{kind}' is unknown: choose threshold or triple_barrier")
