"""Section 5, where the P&L came from: symbols, sides, exit reasons, regime states, concentration.

Definitions:

``per symbol``
    net P&L = the symbol's fill cash flows (commission included) plus its final position
    at its last window close, so the symbols sum to the run's net P&L exactly; gross =
    net + its commission and slippage; trades = its round trips.
``long / short``, ``exit reason``
    round trips grouped by direction and by the reason of their closing fill (net P&L,
    count, win rate, mean bars held).
``regime state``
    for each configured ``[regime]`` filter (or, when none is configured, a probe: the
    trend filter at 200 bars, labelled so) on the equity curve's times: the bars it
    allows and blocks entries, the change of equity over the bars that follow each state
    (the state read at the bar before, as the strategy would have), and the round trips
    entered in each state with their net P&L.
``concentration``
    the best symbol's net P&L as a share of the run's net P&L (only when that is positive;
    it exceeds 100 % when the other symbols lost in sum), and the top three's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.config import RegimeConfig
from engine.diagnosis.context import Context
from engine.diagnosis.tables import symbol_pnl
from engine.regime import asof, breadth_allows, trend_allows, volatility_allows

_TOP = 10
PROBE_SMA = 200
"""The trend filter probed when no regime filter is configured (bars of the benchmark's SMA)."""


def _group(trades: pd.DataFrame, key: pd.Series | np.ndarray, name: str) -> list[dict[str, Any]]:
    if not len(trades):
        return []
    df = pd.DataFrame({"k": np.asarray(key), "pnl": trades["pnl"].to_numpy(dtype=np.float64),
                       "bars": trades["bars_held"].to_numpy(dtype=np.float64)})
    out = []
    for k, g in df.groupby("k", sort=True):
        out.append({name: str(k), "trades": int(len(g)), "net_pnl": float(g["pnl"].sum()),
                    "win_rate": float(np.mean(g["pnl"] > 0)), "mean_bars": float(g["bars"].mean())})
    return out


def _filters(ctx: Context) -> list[tuple[str, bool, np.ndarray]]:
    """(label, configured, allows) of each filter to attribute, on the equity curve's times."""
    reg: RegimeConfig = ctx.cfg.regime
    t = ctx.run.equity.index.asi8
    bench = ctx.inputs.bench_history
    out: list[tuple[str, bool, np.ndarray]] = []
    if reg.trend.sma > 0 and bench is not None:
        out.append((f"trend (SMA {reg.trend.sma})", True, trend_allows(bench, reg.trend.sma, t)))
    if reg.volatility.window > 0 and bench is not None:
        v = reg.volatility
        out.append((f"volatility (window {v.window}, q {v.quantile:g})", True,
                    volatility_allows(bench, v.window, v.lookback, v.quantile, t)))
    if reg.breadth.sma > 0:
        b = reg.breadth
        out.append((f"breadth (SMA {b.sma}, share {b.min_share:g})", True, breadth_allows(ctx.inputs.history, b.sma, b.min_share, t)))
    if not out and bench is not None and len(bench) > PROBE_SMA:
        out.append((f"trend (SMA {PROBE_SMA}) - probe, not configured", False, trend_allows(bench, PROBE_SMA, t)))
    return out


def _regime(ctx: Context) -> list[dict[str, Any]]:
    equity = ctx.run.equity.to_numpy(dtype=np.float64)
    t = ctx.run.equity.index.asi8
    trades = ctx.run.trades
    rows = []
    for label, configured, allow in _filters(ctx):
        change = np.diff(equity)
        state = allow[:-1]  # the state in force over each step
        entry_t = trades["entry_ts"].to_numpy(dtype="datetime64[ns]").astype("int64") if len(trades) else np.empty(0, np.int64)
        entry_state = asof(t, allow.astype(np.float64), entry_t, fill=0.0) == 1.0
        row: dict[str, Any] = {"filter": label, "configured": configured, "benchmark": ctx.result.benchmark_symbol}
        for name, mask, emask in (("allows", state, entry_state), ("blocks", ~state, ~entry_state)):
            row[name] = {
                "bars": int(mask.sum()), "equity_change": float(change[mask].sum()),
                "trades": int(emask.sum()), "trades_net_pnl": float(trades["pnl"].to_numpy()[emask].sum()) if len(trades) else 0.0,
            }
        rows.append(row)
    return rows


def section(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attribution section: (JSON figures, series for the plots)."""
    run = ctx.run
    net = float(run.equity.iloc[-1]) - ctx.capital if len(run.equity) else 0.0
    per = symbol_pnl(run.fills, ctx.inputs.window, run.equity.index[-1] if len(run.equity) else None)
    counts = run.trades.groupby("symbol").size() if len(run.trades) else pd.Series(dtype="int64")
    per["trades"] = counts.reindex(per.index).fillna(0).astype(int)
    per = per.sort_values("net_pnl", ascending=False, kind="stable")
    rows = [{"symbol": str(s), "net_pnl": float(r.net_pnl), "gross_pnl": float(r.gross_pnl), "costs": float(r.costs),
             "trades": int(r.trades)} for s, r in zip(per.index, per.itertuples(), strict=True)]
    data: dict[str, Any] = {
        "applies": True,
        "net_pnl": net,
        "symbols_traded": len(rows),
        "top": rows[:_TOP],
        "bottom": list(reversed(rows[-_TOP:])) if len(rows) > _TOP else list(reversed(rows)),
        "sum_check": float(per["net_pnl"].sum()) if len(per) else 0.0,
    }
    trades = run.trades
    data["long_short"] = _group(trades, np.where(trades["qty"].to_numpy() > 0, "long", "short"), "side") if len(trades) else []
    data["exit_reason"] = _group(trades, trades["exit_reason"].replace("", "(none)") if "exit_reason" in trades else ["(none)"] * len(trades), "reason") if len(trades) else []
    data["regime"] = _regime(ctx)
    if rows and net > 0:
        data["concentration"] = {
            "applies": True, "best_symbol": rows[0]["symbol"], "best_pnl": rows[0]["net_pnl"],
            "best_share": rows[0]["net_pnl"] / net, "top3_share": sum(r["net_pnl"] for r in rows[:3]) / net,
        }
    else:
        data["concentration"] = {"applies": False, "reason": "the run made no net profit to attribute" if rows else "no fills",
                                 "best_symbol": rows[0]["symbol"] if rows else None, "best_pnl": rows[0]["net_pnl"] if rows else None}
    return data, {"by_symbol": per}
