"""Market regime filters: when entries are allowed (exits always are).

Three filters, each a boolean series on the backtest's *union timeline* (every bar close
of every traded symbol, sorted), combined with ``and`` / ``or`` (``[regime]`` in the
backtest TOML, :class:`engine.config.RegimeConfig`):

``trend``       the benchmark's close is above its ``sma``-bar SMA;
``volatility``  the benchmark's realised volatility (sample std of ``window`` log returns)
                is below its rolling ``quantile`` over the last ``lookback`` values
                (pandas' linear interpolation, the current value included);
``breadth``     at least ``min_share`` of the universe closes above its own ``sma``-bar
                SMA (symbols still warming up are left out of the count).

**Alignment.** Every series is computed on its own symbol's bars, from the whole history
the catalog holds up to the window's end (so a 200-bar SMA is warm on the first traded
bar), and then read *as of* each union time ``T``: the value at that symbol's latest bar
closing at or before ``T``. In the shared hourly data the IBKR symbols close on the hour
and the yfinance ones on the half hour, so at a half-hour ``T`` an IBKR benchmark
contributes its 10:00 (say) bar, never its 11:00 one: the filters are causal whatever
the alignment. A value that is not defined yet (warm-up) blocks entries.

Everything is numpy/pandas, computed once per run (or once per distinct setting in a
sweep) and read by bar index by the event strategy and the numba kernel alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.config import RegimeConfig


def asof(series_ts: np.ndarray, values: np.ndarray, timeline: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Value of a series at its latest point at or before each time of *timeline* (ns)."""
    pos = np.searchsorted(series_ts, timeline, side="right") - 1
    out = np.full(len(timeline), fill, dtype=np.float64)
    ok = pos >= 0
    out[ok] = np.asarray(values, dtype=np.float64)[pos[ok]]
    return out


def _above_sma(close: pd.Series, n: int) -> np.ndarray:
    """1.0 where close > its n-bar SMA, 0.0 where not, NaN while the SMA is warming up."""
    sma = close.rolling(n, min_periods=n).mean()
    out = np.where(close.to_numpy() > sma.to_numpy(), 1.0, 0.0)
    out[sma.isna().to_numpy()] = np.nan
    return out


def trend_allows(bench: pd.DataFrame, sma: int, timeline: np.ndarray) -> np.ndarray:
    """Trend filter on the union timeline: benchmark close above its ``sma``-bar SMA."""
    v = asof(bench.index.asi8, _above_sma(bench["close"], sma), timeline)
    return v == 1.0


def volatility_allows(
    bench: pd.DataFrame, window: int, lookback: int, quantile: float, timeline: np.ndarray
) -> np.ndarray:
    """Volatility filter: realised vol below its rolling ``quantile`` over ``lookback`` bars."""
    logret = np.log(bench["close"]).diff()
    rv = logret.rolling(window, min_periods=window).std()
    thr = rv.rolling(lookback, min_periods=lookback).quantile(quantile)
    ok = (rv < thr).to_numpy(dtype=np.float64)
    ok[(rv.isna() | thr.isna()).to_numpy()] = np.nan
    return asof(bench.index.asi8, ok, timeline) == 1.0


def breadth_share(frames: Mapping[str, pd.DataFrame], sma: int, timeline: np.ndarray) -> np.ndarray:
    """Share of the universe above its own ``sma``-bar SMA at each union time (NaN if none is warm)."""
    above = np.zeros(len(timeline))
    count = np.zeros(len(timeline))
    for frame in frames.values():
        v = asof(frame.index.asi8, _above_sma(frame["close"], sma), timeline)
        ok = ~np.isnan(v)
        above[ok] += v[ok]
        count[ok] += 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, above / np.maximum(count, 1.0), np.nan)


def breadth_allows(frames: Mapping[str, pd.DataFrame], sma: int, min_share: float, timeline: np.ndarray) -> np.ndarray:
    """Breadth filter: at least ``min_share`` of the universe above its own SMA."""
    share = breadth_share(frames, sma, timeline)
    return np.nan_to_num(share, nan=-1.0) >= min_share


def enabled(regime: RegimeConfig) -> list[str]:
    """Names of the filters a config turns on."""
    out = []
    if regime.trend.sma > 0:
        out.append("trend")
    if regime.volatility.window > 0:
        out.append("volatility")
    if regime.breadth.sma > 0:
        out.append("breadth")
    return out


def regime_allows(
    regime: RegimeConfig,
    timeline: np.ndarray,
    bench: pd.DataFrame | None,
    universe: Mapping[str, pd.DataFrame],
) -> np.ndarray:
    """Whether entries are allowed at each union time (all True when no filter is on).

    *bench* is the benchmark's bar history (needed by trend and volatility), *universe*
    every traded symbol's bar history (breadth).
    """
    parts: list[np.ndarray] = []
    if regime.trend.sma > 0 or regime.volatility.window > 0:
        if bench is None or not len(bench):
            raise ValueError("the trend and volatility regime filters need the benchmark's bars")
    if regime.trend.sma > 0:
        parts.append(trend_allows(bench, regime.trend.sma, timeline))  # type: ignore[arg-type]
    if regime.volatility.window > 0:
        v = regime.volatility
        parts.append(volatility_allows(bench, v.window, v.lookback, v.quantile, timeline))  # type: ignore[arg-type]
    if regime.breadth.sma > 0:
        parts.append(breadth_allows(universe, regime.breadth.sma, regime.breadth.min_share, timeline))
    if not parts:
        return np.ones(len(timeline), dtype=np.bool_)
    stack = np.vstack(parts)
    return stack.all(axis=0) if regime.combine == "and" else stack.any(axis=0)
