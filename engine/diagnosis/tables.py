"""Small table helpers shared by the diagnosis sections: fills to trades, months, per-symbol P&L."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

_TZ = "America/New_York"


def fill_costs(fills: pd.DataFrame) -> np.ndarray:
    """Commission + slippage of each fill (USD)."""
    if not len(fills):
        return np.empty(0)
    return fills["commission"].to_numpy(dtype=np.float64) + fills["slippage"].to_numpy(dtype=np.float64)


def trade_ids(fills: pd.DataFrame) -> np.ndarray:
    """The row of ``engine.ledger.round_trips``' table each fill belongs to (-1: a position still open at the end).

    Round trips run from flat to flat per symbol; their table lists symbols in name order,
    each symbol's trades in time order - the order used here.
    """
    out = np.full(len(fills), -1, dtype=np.int64)
    if not len(fills):
        return out
    ordered = fills.sort_values("ts", kind="stable")
    n = 0
    for _, grp in ordered.groupby("symbol", sort=True):
        pos = 0.0
        members: list[int] = []
        for row, side, qty in zip(grp.index, grp["side"], grp["qty"], strict=True):
            members.append(row)
            pos = round(pos + (qty if side == "BUY" else -qty), 9)
            if pos == 0.0:
                out[fills.index.get_indexer(members)] = n
                n += 1
                members = []
    return out


def month_labels(ts: pd.Series | pd.DatetimeIndex) -> pd.Index:
    """``YYYY-MM`` of each timestamp in New York time."""
    idx = pd.DatetimeIndex(ts)
    local = idx.tz_convert(_TZ) if idx.tz is not None else idx
    code = np.asarray(local.year, dtype=np.int64) * 100 + np.asarray(local.month, dtype=np.int64)
    uniq, inv = np.unique(code, return_inverse=True)  # format each month once, not each timestamp
    names = np.array([f"{c // 100:04d}-{c % 100:02d}" for c in uniq], dtype=object)
    return pd.Index(names[inv])


def by_month(ts: pd.Series | pd.DatetimeIndex, values: pd.DataFrame) -> pd.DataFrame:
    """Sums of *values* per New York calendar month of *ts*."""
    frame = values.reset_index(drop=True).copy()
    frame["month"] = month_labels(ts)
    return frame.groupby("month", sort=True).sum()


def symbol_pnl(fills: pd.DataFrame, frames: Mapping[str, pd.DataFrame], until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Net P&L per symbol that sums to the run's net P&L: its fills' cash flows plus the final position marked at its last close.

    Only fills counted by the equity curve's last point *until* count (a fill decided on
    the last bar under ``fill = "close"`` lands after it; the ledger marks that position
    instead). Columns ``net_pnl``, ``commission``, ``slippage``, ``costs``, ``gross_pnl``, ``fills``.
    """
    cols = ["net_pnl", "commission", "slippage", "costs", "gross_pnl", "fills"]
    if until is not None and len(fills):
        fills = fills[fills["ts"] <= until]
    if not len(fills):
        return pd.DataFrame(columns=cols, dtype="float64")
    sign = np.where(fills["side"].to_numpy() == "BUY", 1.0, -1.0)
    frame = pd.DataFrame({
        "symbol": fills["symbol"].to_numpy(),
        "flow": -(sign * fills["notional"].to_numpy(dtype=np.float64) + fills["commission"].to_numpy(dtype=np.float64)),
        "dq": sign * fills["qty"].to_numpy(dtype=np.float64),
        "commission": fills["commission"].to_numpy(dtype=np.float64),
        "slippage": fills["slippage"].to_numpy(dtype=np.float64),
    })
    g = frame.groupby("symbol", sort=True)
    out = g[["flow", "dq", "commission", "slippage"]].sum()
    out["fills"] = g.size()
    last = pd.Series({s: float(frames[s]["close"].iloc[-1]) if s in frames and len(frames[s]) else 0.0 for s in out.index})
    out["net_pnl"] = out["flow"] + out["dq"].round(9) * last
    out["costs"] = out["commission"] + out["slippage"]
    out["gross_pnl"] = out["net_pnl"] + out["costs"]
    return out[cols]
