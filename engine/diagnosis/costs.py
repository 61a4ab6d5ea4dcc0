"""Section 1, costs: gross vs net, costs per month and symbol, edge per round trip, the break-even cost.

Definitions:

``gross equity``
    the run's equity curve plus every commission and slippage paid up to that bar close
    (counted at each fill's economic time, as the ledger counts the fill itself): what the
    same fills would have been worth at their reference prices without commission.
    ``gross P&L`` = net P&L + commissions + slippage.
``edge per round trip / its cost``
    the mean round trip's gross P&L (net P&L + both sides' commission and slippage)
    divided by its mean cost (both sides' commission + slippage); below 1 the average trade
    does not pay for itself.
``break-even cost``
    the commission + slippage, in bps per side, at which the net total return (and,
    separately, the net Sharpe ratio) of the same strategy falls to zero. The run's
    decisions are re-simulated on the fast path (:mod:`engine.diagnosis.replay`) at
    ``diagnosis.cost_levels`` levels from 0 to ``diagnosis.max_cost_bps``, keeping the
    configured split between commission and slippage (half and half when both are 0) and
    the per-share and minimum commission as configured; the zero crossing is bracketed on
    that curve and narrowed twice by 20 more levels, then interpolated and simulated once
    more. Sizes follow the costs as the strategy's own sizing does (``shares_for``).
    With ``diagnosis.confirm_break_even`` (or ``sigtrade diagnose DIR --confirm``) the event
    engine re-runs the strategy at that cost and its net total return is recorded.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from engine.config import BacktestConfig
from engine.diagnosis.context import Context
from engine.diagnosis.replay import Replay, with_costs
from engine.diagnosis.tables import by_month, fill_costs, trade_ids
from engine.html_page import finite

_REFINE = 20


def gross_equity(ctx: Context) -> pd.Series:
    """The run's equity plus the commissions and slippage paid by each bar close."""
    equity = ctx.run.equity.astype("float64")
    fills = ctx.run.fills
    if not len(fills):
        return equity.rename("gross")
    ts = fills["ts"].to_numpy(dtype="datetime64[ns]").astype("int64")
    cost = fill_costs(fills)
    order = np.argsort(ts, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(cost[order])])
    paid = cum[np.searchsorted(ts[order], equity.index.asi8, side="right")]
    return pd.Series(equity.to_numpy() + paid, index=equity.index, name="gross")


def commission_share(cfg: BacktestConfig) -> float:
    """The commission's share of the configured bps per side (0.5 when both parts are 0)."""
    c = cfg.costs
    total = c.commission_bps + c.slippage_bps
    return 0.5 if total <= 0 else float(c.commission_bps / total)


def _levels(replay: Replay, cfg: BacktestConfig, bps: np.ndarray, share: float) -> pd.DataFrame:
    table = replay.figures([with_costs(cfg, float(b), share) for b in bps])
    table.insert(0, "bps", bps)
    return table


def _crossing(table: pd.DataFrame, key: str) -> tuple[int, str]:
    """Index of the first level at or below zero after a positive one; or the status when there is none."""
    v = table[key].to_numpy(dtype=np.float64)
    if int(table["trades"].iloc[0]) == 0 and int(table["fills"].iloc[0]) == 0:
        return -1, "no trades"
    if not np.isfinite(v[0]) or v[0] <= 0:
        return -1, "loses before costs"
    for i in range(1, len(v)):
        if not np.isfinite(v[i]) or v[i] <= 0:
            return i, "found"
    return -1, "above the curve"


def _find_zero(replay: Replay, cfg: BacktestConfig, curve: pd.DataFrame, key: str, share: float) -> dict[str, Any]:
    i, status = _crossing(curve, key)
    out: dict[str, Any] = {"status": status, "bps": None}
    if i < 0:
        return out
    bps, val = curve["bps"].to_numpy(), curve[key].to_numpy(dtype=np.float64)
    lo, hi, f_lo, f_hi = float(bps[i - 1]), float(bps[i]), float(val[i - 1]), float(val[i])
    for _ in range(2):
        sub = _levels(replay, cfg, np.linspace(lo, hi, _REFINE + 1), share)
        j, _ = _crossing(sub, key)
        if j < 0:  # not monotone inside the bracket: keep it
            break
        sb, sv = sub["bps"].to_numpy(), sub[key].to_numpy(dtype=np.float64)
        lo, hi, f_lo, f_hi = float(sb[j - 1]), float(sb[j]), float(sv[j - 1]), float(sv[j])
    x = lo + (hi - lo) * f_lo / (f_lo - f_hi) if np.isfinite(f_hi) and f_lo != f_hi else hi
    at = _levels(replay, cfg, np.array([x]), share).iloc[0]
    out.update({"bps": float(x), "bracket": [lo, hi], "total_return_at": finite(at["total_return"]), "sharpe_at": finite(at["sharpe"])})
    return out


def break_even(ctx: Context, replay: Replay | None) -> dict[str, Any]:
    """The cost curve and the break-even points (see the module docstring)."""
    d = ctx.cfg.diagnosis
    out: dict[str, Any] = {
        "applies": False, "reason": None, "max_bps": d.max_cost_bps, "levels": d.cost_levels,
        "configured_bps": ctx.cfg.costs.commission_bps + ctx.cfg.costs.slippage_bps,
        "commission_share": commission_share(ctx.cfg),
        "per_share_and_minimum": "as configured" if (ctx.cfg.costs.commission_per_share or ctx.cfg.costs.commission_min) else "none",
    }
    if replay is None:
        out["reason"] = "no fast-path replay of this strategy could be built"
        return out
    if not replay.reproduced:
        out["reason"] = replay.detail
        return out
    t0 = time.perf_counter()
    share = out["commission_share"]
    curve = _levels(replay, ctx.cfg, np.linspace(0.0, d.max_cost_bps, d.cost_levels), share)
    out["applies"] = True
    out["simulator"] = "signal kernel" if replay.kind == "signal" else "buy-and-hold kernel"
    out["curve"] = [
        {"bps": float(r.bps), "total_return": finite(r.total_return), "sharpe": finite(r.sharpe), "trades": int(r.trades),
         "costs": float(r.commission_paid + r.slippage_paid)}
        for r in curve.itertuples()
    ]
    out["total_return"] = _find_zero(replay, ctx.cfg, curve, "total_return", share)
    out["sharpe"] = _find_zero(replay, ctx.cfg, curve, "sharpe", share)
    out["confirmation"] = {"ran": False, "note": "not re-run in the event engine (diagnosis.confirm_break_even = false; "
                           "`sigtrade diagnose DIR --confirm` does it for a saved run)"}
    out["seconds"] = time.perf_counter() - t0
    return out


def confirm(cfg: BacktestConfig, breakeven: dict[str, Any], run: Any) -> dict[str, Any]:
    """Re-run the event engine at the total-return break-even; *run(cfg) -> metrics* does the run."""
    tr = breakeven.get("total_return") or {}
    if not breakeven.get("applies") or tr.get("bps") is None:
        return {"ran": False, "note": "no break-even point to confirm"}
    t0 = time.perf_counter()
    at = with_costs(cfg, float(tr["bps"]), float(breakeven["commission_share"]))
    m = run(at)
    return {
        "ran": True, "bps": tr["bps"], "commission_bps": at.costs.commission_bps, "slippage_bps": at.costs.slippage_bps,
        "event_total_return": m.get("total_return"), "event_sharpe": m.get("sharpe"),
        "fast_path_total_return": tr.get("total_return_at"), "seconds": time.perf_counter() - t0,
    }


def section(ctx: Context, replay: Replay | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The costs section: (JSON figures, series for the plots)."""
    run = ctx.run
    fills = run.fills
    net = float(run.equity.iloc[-1]) - ctx.capital if len(run.equity) else 0.0
    commission = float(fills["commission"].sum()) if len(fills) else 0.0
    slippage = float(fills["slippage"].sum()) if len(fills) else 0.0
    costs = commission + slippage
    gross = net + costs
    data: dict[str, Any] = {
        "applies": True,
        "net_pnl": net, "gross_pnl": gross, "commission": commission, "slippage": slippage, "costs": costs,
        "costs_share_of_gross": costs / gross if gross > 0 else None,
        "costs_share_of_capital": costs / ctx.capital,
        "round_trip_cost_rate": ctx.round_trip_rate,
    }
    if len(fills):
        month = by_month(fills["ts"], fills[["commission", "slippage"]])
        data["monthly"] = [{"month": m, "commission": float(r.commission), "slippage": float(r.slippage)}
                           for m, r in zip(month.index, month.itertuples(), strict=True)]
        sym = fills.groupby("symbol", sort=True)[["commission", "slippage", "notional"]].sum()
        sym = sym.assign(total=sym["commission"] + sym["slippage"]).sort_values("total", ascending=False, kind="stable")
        data["by_symbol"] = [{"symbol": str(s), "commission": float(r.commission), "slippage": float(r.slippage),
                              "traded": float(r.notional)} for s, r in zip(sym.index, sym.itertuples(), strict=True)]
    else:
        data["monthly"], data["by_symbol"] = [], []
    data["round_trips"] = _edge(ctx)
    data["break_even"] = break_even(ctx, replay)
    return data, {"gross_equity": gross_equity(ctx)}


def _edge(ctx: Context) -> dict[str, Any]:
    trades, fills = ctx.run.trades, ctx.run.fills
    if not len(trades):
        return {"applies": False, "reason": "no round trips"}
    ids = trade_ids(fills)
    cost = pd.Series(fill_costs(fills)).groupby(ids).sum()
    per_trade = cost.reindex(range(len(trades))).fillna(0.0).to_numpy()
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    slip = per_trade - trades["commission"].to_numpy(dtype=np.float64)
    gross = pnl + trades["commission"].to_numpy(dtype=np.float64) + slip
    mean_cost = float(per_trade.mean())
    return {
        "applies": True, "trades": len(trades),
        "mean_gross_pnl": float(gross.mean()), "mean_cost": mean_cost, "mean_net_pnl": float(pnl.mean()),
        "edge_to_cost": float(gross.mean()) / mean_cost if mean_cost > 0 else None,
        "share_not_covering_cost": float(np.mean(gross < per_trade)),
        "mean_gross_return": float(np.mean(gross / (trades["qty"].abs() * trades["entry_price"]).to_numpy())),
    }
