"""Buy-and-holds of symbol subsets on the fast path: the universe and random N-name controls.

Every figure comes from :func:`engine.diagnosis.kernels_nb.buy_and_hold_nb`, which replays
``strategies.buy_and_hold`` (``capital / N`` per member, bought on its first bar in the
trading window at the next fill, sold on its last decision bar) through the run's costs,
fill timing and ledger, on the universe a :class:`~engine.sim.fastpath.FastPath` holds:
the same bar prices, execution quotes and fill times as the event engine. One subset's
fills and equity are those of ``sigtrade backtest`` with ``strategy.kind = "buy_and_hold"``,
``data.symbols`` = the subset and no overlays (tests/engine/test_diagnosis.py).
Equity is marked on the universe's bar closes, so the figures (Sharpe, drawdown) are on
the same grid as the strategy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.config import BacktestConfig
from engine.diagnosis import kernels_nb as KD
from engine.errors import ConfigError
from engine.ledger import mark_to_market
from engine.overlays import cost_rate
from engine.sim.fastpath import FastPath, check_clash


@dataclass
class Holding:
    """One buy-and-hold simulated on the fast path: its figures, equity, exposure and fills."""

    symbols: list[str]
    figures: dict[str, Any]
    equity: pd.Series
    exposure: pd.Series
    fills: pd.DataFrame


def _args(fast: FastPath, cfg: BacktestConfig, max_gross: float, keep: bool = True) -> tuple[Any, ...]:
    bid, ask = fast.quotes(cfg.costs.slippage_bps, keep=keep)
    lay = fast.bar_layout()
    c = cfg.costs
    return (
        fast.ts, fast.in_window, lay["act_ptr"], lay["act_sym"], lay["state"], lay["close"], lay["mark"],
        fast.ref, fast.fill_ts, bid, ask, fast.rank_of, fast.capital, fast.qty_scale, cost_rate(cfg),
        float(c.commission_bps), float(c.commission_per_share), float(c.commission_min), float(max_gross), fast.rf_per_bar,
    )


def _indices(fast: FastPath, symbols: list[str] | None) -> np.ndarray:
    if symbols is None:
        return np.arange(len(fast.symbols), dtype=np.int64)
    pos = {s: j for j, s in enumerate(fast.symbols)}
    missing = [s for s in symbols if s not in pos]
    if missing:
        raise ConfigError(f"{', '.join(missing)} not in the universe ({', '.join(fast.symbols)})")
    if not symbols:
        raise ConfigError("a buy-and-hold needs at least one symbol")
    return np.array(sorted(pos[s] for s in symbols), dtype=np.int64)


def hold_stats(
    fast: FastPath, members: np.ndarray, cfg: BacktestConfig | None = None, max_gross: float = 0.0, *, keep: bool = True
) -> np.ndarray:
    """Kernel statistics (``engine.sim.kernels_nb.S_*`` columns) of each row of *members* (-1 padded).

    ``keep=False``: a slippage level not used before is not kept in the fast path's bank (a cost curve).
    """
    cfg = cfg or fast.cfg
    members = np.ascontiguousarray(members, dtype=np.int64)
    n = (members >= 0).sum(axis=1).astype(np.int64)  # rows are padded with -1 after their members
    stats: np.ndarray = KD.buy_and_hold_nb(members, n, *_args(fast, cfg, max_gross, keep))
    check_clash(stats)
    return stats


def hold(
    fast: FastPath, symbols: list[str] | None = None, cfg: BacktestConfig | None = None, max_gross: float = 0.0
) -> Holding:
    """Equal-weight buy-and-hold of *symbols* (default: every symbol of the universe), fill by fill.

    *cfg* gives the costs (default: the fast path's config); ``max_gross > 0`` applies the
    gross-exposure cap of ``[risk]`` as the event strategy does with overlays on (the
    controls run without overlays, like the benchmark).
    """
    cfg = cfg or fast.cfg
    idx = _indices(fast, symbols)
    member = np.zeros(len(fast.symbols), dtype=np.bool_)
    member[idx] = True
    n_win = int(fast.in_window.sum())
    stats, rec, reasons, equity = KD.buy_and_hold_trace_nb(member, len(idx), *_args(fast, cfg, max_gross), n_win)
    check_clash(stats[None, :])
    fills = fast.fills_frame(rec, np.asarray(reasons))
    frames = {s: fast.window[s] for s in fast.symbols}
    eq, exposure = mark_to_market(fills, frames, fast.window_index, fast.capital)
    figures = fast.metrics(stats[None, :]).iloc[0].to_dict()
    figures["exposure"] = float(exposure.mean()) if len(exposure) else None
    return Holding(
        symbols=[fast.symbols[j] for j in idx], figures=figures,
        equity=pd.Series(equity, index=fast.window_index, name="equity"), exposure=exposure, fills=fills,
    )


def universe_buy_and_hold(fast: FastPath, cfg: BacktestConfig | None = None) -> Holding:
    """Equal-weight buy-and-hold of the whole traded universe through the run's costs (control (b)).

    Parameters
    ----------
    fast
        A prepared universe (``engine.sim.sweep.load_fastpath`` or a sweep's ``SweepResult.fast``).
    cfg
        The costs to charge (``costs.*``); default: the fast path's own config.

    Returns
    -------
    Holding
        ``figures`` has the sweep table's columns (``sharpe``, ``total_return``, ``cagr``,
        ``calmar``, ``max_drawdown``, ``volatility``, ``trades``, ``fills``, ``turnover``,
        ``commission_paid``, ``slippage_paid``, ``final_equity``, ``time_in_market``) plus
        ``exposure``; ``equity`` / ``exposure`` are on the window's bar closes; ``fills`` is
        the runner's fills table. Equal to the event engine's ``buy_and_hold`` of the same
        symbols without overlays.
    """
    return hold(fast, None, cfg)


def random_members(n_symbols: int, n: int, draws: int, seed: int) -> np.ndarray:
    """The random subsets: draw ``d`` holds the *n* symbols with the smallest of ``n_symbols`` uniforms.

    The uniforms are row ``d`` of ``numpy.random.default_rng(seed).random((draws, n_symbols))``;
    each row of the result lists its symbol indices ascending (the runner's symbol order).
    """
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((draws, n_symbols)), axis=1, kind="stable")[:, :n]
    return np.ascontiguousarray(np.sort(picks, axis=1).astype(np.int64))


def random_holds(
    fast: FastPath, n: int, draws: int, seed: int, cfg: BacktestConfig | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Figures of *draws* random equal-weight *n*-name buy-and-holds (control (c)): (members, table)."""
    S = len(fast.symbols)
    if not 1 <= n <= S:
        raise ConfigError(f"a random {n}-name buy-and-hold needs 1..{S} names (the universe has {S})")
    members = random_members(S, n, draws, seed)
    table = fast.metrics(hold_stats(fast, members, cfg))
    return members, table


def percentile(values: np.ndarray, x: float | None) -> float | None:
    """Share of *values* strictly below *x* plus half the ties (a mid-rank percentile, 0..1)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if x is None or not math.isfinite(x) or not v.size:
        return None
    return float((np.sum(v < x) + 0.5 * np.sum(v == x)) / v.size)
