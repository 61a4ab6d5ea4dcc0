"""Section 4, controls: what the run is compared with, and what each comparison rules out.

(a) **benchmark**: buy-and-hold of ``benchmark.symbol`` through the same engine, costs and
    fill timing (the run's own benchmark). Rules out: "the market alone did it".
(b) **universe buy-and-hold**: equal weight (``capital / S``) in every traded symbol, bought
    at the first fill and held, through the same costs (:func:`universe_buy_and_hold`).
    Rules out: "the choice of universe did it" - a strategy that trails it added nothing
    over owning its own symbols.
(c) **random N-name buy-and-holds**, ``N = portfolio.max_positions``: ``diagnosis.random_draws``
    equal-weight subsets (``capital / N`` each, seed ``diagnosis.seed``), same costs; the
    run's percentile among them by total return and by Sharpe. Rules out: "it was the luck
    of which N names the slots held". Does not apply when ``N >= S`` (every subset is the
    universe).
(d) **one slot per symbol**: the same signals with ``max_positions = S`` and the run's most
    gross spread over them (:func:`engine.diagnosis.replay.one_slot_config`), on the fast
    path. Rules out: "it was the order in which signals won the slots". Applies to the
    strategies driven by a signal (models and the SMA cross) when the replay reproduces the
    run.

Every control runs on the fast path (numba): (b) and (c) on the buy-and-hold kernel, (d)
on the signal kernel. Controls run without risk overlays or regime filters, like the benchmark.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.diagnosis.context import Context
from engine.diagnosis.holdings import percentile, random_holds, universe_buy_and_hold
from engine.diagnosis.replay import Replay, one_slot_config
from engine.html_page import finite
from engine.ledger import empty_fills
from engine.metrics import compute_metrics
from engine.results import RunResult

__all__ = ["RULES_OUT", "section", "universe_buy_and_hold"]

RULES_OUT = {
    "benchmark": "that the market alone explains the result",
    "universe": "that owning the traded universe passively explains the result",
    "random": "that the luck of which names filled the slots explains the result",
    "one_slot": "that the competition of signals for a limited number of slots explains the result",
}
"""What each control rules out, as a clause after "rules out"."""

FIGURE_KEYS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "turnover", "exposure",
               "commission_paid", "slippage_paid", "final_equity")


def _figures(m: dict[str, Any], capital: float) -> dict[str, Any]:
    out = {k: finite(m.get(k)) for k in FIGURE_KEYS}
    if out["trades"] is not None:
        out["trades"] = int(out["trades"])
    costs = (out["commission_paid"] or 0.0) + (out["slippage_paid"] or 0.0)
    net = (out["final_equity"] or capital) - capital
    out["costs"] = costs
    out["gross_pnl"] = net + costs
    out["costs_share_of_gross"] = costs / (net + costs) if net + costs > 0 else None
    return out


def section(ctx: Context, replay: Replay | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The controls section: (JSON figures, series for the plots)."""
    m = ctx.result.metrics
    rf = ctx.cfg.metrics.risk_free_rate
    capital = ctx.capital
    strat = _figures(m, capital)
    data: dict[str, Any] = {"applies": True, "strategy": strat}
    series: dict[str, Any] = {}
    bench = m.get("benchmark") or {}
    data["benchmark"] = {"applies": True, "symbol": ctx.result.benchmark_symbol, "rules_out": RULES_OUT["benchmark"],
                         **_figures(bench, capital), "simulator": "event engine"}
    if replay is None:
        for key in ("universe", "random", "one_slot"):
            data[key] = {"applies": False, "reason": "no fast-path universe could be prepared", "rules_out": RULES_OUT[key]}
        return data, series
    fast = replay.fast
    S = len(fast.symbols)
    uni = universe_buy_and_hold(fast, ctx.cfg)
    um = compute_metrics(
        RunResult(equity=uni.equity, exposure=uni.exposure, fills=uni.fills, trades=_empty_trades(), capital=capital),
        risk_free_rate=rf,
    )
    um["trades"] = int(uni.figures["trades"])
    data["universe"] = {"applies": True, "symbols": S, "rules_out": RULES_OUT["universe"], **_figures(um, capital),
                        "simulator": "buy-and-hold kernel", "beat_by_strategy": _beats(strat, um)}
    series["universe_equity"] = uni.equity
    data["random"] = _random(ctx, fast, strat, series)
    data["one_slot"] = _one_slot(ctx, replay, series)
    return data, series


def _empty_trades() -> pd.DataFrame:
    from engine.ledger import round_trips

    return round_trips(empty_fills(), {})


def _beats(strat: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in ("total_return", "sharpe"):
        a, b = strat.get(key), finite(other.get(key))
        out[key] = None if a is None or b is None else bool(a > b)
    return out


def _random(ctx: Context, fast: Any, strat: dict[str, Any], series: dict[str, Any]) -> dict[str, Any]:
    d = ctx.cfg.diagnosis
    S = len(fast.symbols)
    n = ctx.cfg.portfolio.max_positions
    base = {"rules_out": RULES_OUT["random"], "n": n, "draws": d.random_draws, "seed": d.seed}
    if d.random_draws == 0:
        return {**base, "applies": False, "reason": "diagnosis.random_draws = 0"}
    if ctx.kind == "buy_and_hold":
        return {**base, "applies": False, "reason": "buy-and-hold holds every symbol; it has no slots to fill"}
    if n >= S:
        return {**base, "applies": False, "reason": f"max_positions ({n}) >= the {S} symbols: every subset is the universe"}
    _, table = random_holds(fast, n, d.random_draws, d.seed, ctx.cfg)
    tr = table["total_return"].to_numpy(dtype=np.float64)
    sr = table["sharpe"].to_numpy(dtype=np.float64)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    counts, edges = np.histogram(tr[np.isfinite(tr)], bins=60)
    series["random_total_return"] = tr
    series["random_sharpe"] = sr
    return {
        **base, "applies": True, "simulator": "buy-and-hold kernel",
        "draw_rule": "numpy default_rng(seed).random((draws, S)); each draw holds the N symbols with the smallest uniforms",
        "total_return": {f"p{int(q * 100)}": float(np.nanquantile(tr, q)) for q in qs},
        "sharpe": {f"p{int(q * 100)}": float(np.nanquantile(sr, q)) for q in qs},
        "mean_total_return": float(np.nanmean(tr)),
        "strategy_percentile_total_return": percentile(tr, strat.get("total_return")),
        "strategy_percentile_sharpe": percentile(sr, strat.get("sharpe")),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def _one_slot(ctx: Context, replay: Replay, series: dict[str, Any]) -> dict[str, Any]:
    base = {"rules_out": RULES_OUT["one_slot"]}
    S = len(replay.fast.symbols)
    if replay.kind != "signal":
        return {**base, "applies": False, "reason": "buy-and-hold has no signals competing for slots"}
    if not replay.reproduced:
        return {**base, "applies": False, "reason": replay.detail}
    if ctx.cfg.portfolio.max_positions >= S:
        return {**base, "applies": False, "reason": f"max_positions ({ctx.cfg.portfolio.max_positions}) already gives each of the {S} symbols a slot"}
    cfg = one_slot_config(ctx.cfg, S)
    fills, equity, exposure = replay.trace(cfg)
    m = compute_metrics(
        RunResult(equity=equity, exposure=exposure, fills=fills, trades=_empty_trades(), capital=ctx.capital),
        risk_free_rate=ctx.cfg.metrics.risk_free_rate,
    )
    m["trades"] = int((fills["exit_reason"] != "").sum()) if len(fills) else 0  # positions go 0 -> q -> 0
    series["one_slot_equity"] = equity
    return {**base, "applies": True, "simulator": "signal kernel", "max_positions": S,
            "position_size": cfg.portfolio.position_size, **_figures(m, ctx.capital)}
