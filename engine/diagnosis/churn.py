"""Section 2, churn: how often the book turns over and how short the trades are.

Definitions:

``turnover``         the metrics' annualised turnover (traded notional, both sides / mean equity / year).
``trades per session`` round trips / NYSE sessions in the window.
``holding period``   ``bars_held`` of each round trip (the symbol's bar closes between entry and exit fill).
``short trades``     round trips held fewer bars than the card's label horizon (the time the
                     model's label needs to play out); their count, share and net P&L.
``re-entries``       entries in a symbol within ``N`` of its bars after its previous exit fill
                     (``N`` = ``diagnosis.reentry_bars``, else the label horizon, else one session's bars).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.diagnosis.context import Context


def _histogram(held: np.ndarray) -> dict[str, Any]:
    top = int(held.max()) if held.size else 0
    if top <= 60:
        edges = np.arange(0, top + 2)
    else:  # geometric bins beyond 60 bars
        edges = np.unique(np.concatenate([np.arange(0, 21), np.geomspace(21, top + 1, 30).round()])).astype(int)
    counts, edges = np.histogram(held, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _reentries(trades: pd.DataFrame, frames: dict[str, pd.DataFrame], n_bars: int) -> np.ndarray:
    """Whether each round trip was entered within *n_bars* of the symbol's bars after its previous exit."""
    out = np.zeros(len(trades), dtype=bool)
    for s, grp in trades.groupby("symbol", sort=False):
        closes = frames[s].index.asi8 if s in frames else np.empty(0, dtype=np.int64)
        entry = np.searchsorted(closes, grp["entry_ts"].to_numpy(dtype="datetime64[ns]").astype("int64"), side="right")
        exit_ = np.searchsorted(closes, grp["exit_ts"].to_numpy(dtype="datetime64[ns]").astype("int64"), side="right")
        order = np.argsort(entry, kind="stable")
        gap = entry[order][1:] - exit_[order][:-1]
        flag = np.zeros(len(grp), dtype=bool)
        flag[order[1:]] = gap <= n_bars
        out[trades.index.get_indexer(grp.index)] = flag
    return out


def section(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The churn section: (JSON figures, series for the plots)."""
    trades = ctx.run.trades
    m = ctx.result.metrics
    sessions = ctx.n_sessions
    data: dict[str, Any] = {
        "applies": True,
        "turnover": m.get("turnover"),
        "trades": int(len(trades)),
        "sessions": sessions,
        "trades_per_session": len(trades) / sessions if sessions else None,
        "bars_per_session": ctx.bars_per_session,
    }
    if not len(trades):
        data.update({"holding": None, "short_trades": {"applies": False, "reason": "no round trips"},
                     "reentries": {"applies": False, "reason": "no round trips"}})
        return data, {}
    held = trades["bars_held"].to_numpy(dtype=np.int64)
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    data["holding"] = {
        "mean": float(held.mean()), "median": float(np.median(held)),
        "p10": float(np.quantile(held, 0.1)), "p90": float(np.quantile(held, 0.9)),
        "histogram": _histogram(held),
    }
    h = ctx.horizon
    if h:
        short = held < h
        data["short_trades"] = {
            "applies": True, "horizon": h, "count": int(short.sum()), "share": float(short.mean()),
            "net_pnl": float(pnl[short].sum()), "net_pnl_rest": float(pnl[~short].sum()),
            "win_rate": float(np.mean(pnl[short] > 0)) if short.any() else None,
        }
    else:
        data["short_trades"] = {"applies": False, "reason": "no label horizon: the strategy has no model card"}
    n = ctx.cfg.diagnosis.reentry_bars or h or ctx.bars_per_session
    basis = "diagnosis.reentry_bars" if ctx.cfg.diagnosis.reentry_bars else "the label horizon" if h else "one session"
    re = _reentries(trades, ctx.inputs.window, int(n))
    data["reentries"] = {
        "applies": True, "bars": int(n), "basis": basis, "count": int(re.sum()), "share": float(re.mean()),
        "net_pnl": float(pnl[re].sum()),
    }
    return data, {}
