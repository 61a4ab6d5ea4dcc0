"""sigtrade's own books: fills -> round-trip trades, mark-to-market equity and exposure.

Metrics are computed from this equity curve, not from NautilusTrader's analyzer
(DESIGN.md: the analyzer's Sharpe changed meaning between releases). Equity at a bar
close ``t`` is ``cash + sum(position x last close)``, counting every fill stamped at or
before ``t``; a symbol with no bar yet is marked at zero (it cannot be held).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.results import FILL_COLUMNS, TRADE_COLUMNS, RunResult


def empty_fills() -> pd.DataFrame:
    """A fills table with no rows and the right columns."""
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in FILL_COLUMNS}).astype(
        {"ts": "datetime64[ns, UTC]", "symbol": "object", "side": "object"}
    )


def timeline(frames: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """Union of every symbol's bar close times, sorted."""
    idx = pd.DatetimeIndex([], tz="UTC")
    for f in frames.values():
        idx = idx.union(f.index)
    return idx


def mark_to_market(
    fills: pd.DataFrame, frames: dict[str, pd.DataFrame], index: pd.DatetimeIndex, capital: float
) -> tuple[pd.Series, pd.Series]:
    """Equity and gross exposure (position value / equity) at every time of *index*."""
    t = index.asi8
    cash = np.full(len(t), capital, dtype=np.float64)
    gross = np.zeros(len(t), dtype=np.float64)
    value = np.zeros(len(t), dtype=np.float64)
    if len(fills):
        ts = fills["ts"].to_numpy(dtype="datetime64[ns]").astype("int64")
        sign = np.where(fills["side"].to_numpy() == "BUY", 1.0, -1.0)
        flow = -(sign * fills["notional"].to_numpy() + fills["commission"].to_numpy())
        order = np.argsort(ts, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(flow[order])])
        cash = capital + cum[np.searchsorted(ts[order], t, side="right")]
        for symbol, grp in fills.groupby("symbol", sort=True):
            g_ts = grp["ts"].to_numpy(dtype="datetime64[ns]").astype("int64")
            g_sign = np.where(grp["side"].to_numpy() == "BUY", 1.0, -1.0)
            o = np.argsort(g_ts, kind="stable")
            pos_steps = np.concatenate([[0.0], np.cumsum((g_sign * grp["qty"].to_numpy())[o])])
            pos = pos_steps[np.searchsorted(g_ts[o], t, side="right")]
            close = frames[symbol]["close"].reindex(index).ffill().fillna(0.0).to_numpy()
            value += pos * close
            gross += np.abs(pos * close)
    equity = cash + value
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.where(equity > 0, gross / equity, 0.0)
    return pd.Series(equity, index=index, name="equity"), pd.Series(exposure, index=index, name="exposure")


def round_trips(fills: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Group fills into trades: each trade runs from a flat position back to flat.

    Entry/exit prices are volume-weighted over the fills that opened/closed the trade;
    ``pnl`` is net of both sides' commissions; a position still open at the end is not a
    trade. ``bars_held`` counts the symbol's bar closes between the entry and exit fill.
    """
    rows: list[dict[str, object]] = []
    for symbol, grp in fills.sort_values("ts", kind="stable").groupby("symbol", sort=True):
        closes = frames[symbol].index.asi8
        pos = 0.0
        cur: dict[str, float] = {}
        entry_ts = None
        for ts, side, qty, price, comm in zip(
            grp["ts"], grp["side"], grp["qty"], grp["price"], grp["commission"], strict=True
        ):
            signed = qty if side == "BUY" else -qty
            if pos == 0.0:
                entry_ts = ts
                cur = {"in_qty": 0.0, "in_val": 0.0, "out_qty": 0.0, "out_val": 0.0, "comm": 0.0, "dir": np.sign(signed)}
            opening = np.sign(signed) == cur["dir"]
            key = "in" if opening else "out"
            cur[f"{key}_qty"] += qty
            cur[f"{key}_val"] += qty * price
            cur["comm"] += comm
            pos = round(pos + signed, 9)
            if pos == 0.0:
                direction = cur["dir"]
                gross = (cur["out_val"] - cur["in_val"]) * direction
                pnl = gross - cur["comm"]
                held = int(np.searchsorted(closes, ts.value, side="right") - np.searchsorted(closes, entry_ts.value, side="right"))
                rows.append(
                    {
                        "symbol": symbol,
                        "entry_ts": entry_ts,
                        "exit_ts": ts,
                        "qty": cur["in_qty"] * direction,
                        "entry_price": cur["in_val"] / cur["in_qty"],
                        "exit_price": cur["out_val"] / cur["out_qty"],
                        "pnl": pnl,
                        "return": pnl / cur["in_val"] if cur["in_val"] else 0.0,
                        "commission": cur["comm"],
                        "bars_held": held,
                    }
                )
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in TRADE_COLUMNS}).astype(
            {"symbol": "object", "entry_ts": "datetime64[ns, UTC]", "exit_ts": "datetime64[ns, UTC]", "bars_held": "int64"}
        )
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def build_run(
    fills: pd.DataFrame, frames: dict[str, pd.DataFrame], index: pd.DatetimeIndex, capital: float
) -> RunResult:
    """Assemble a :class:`RunResult` from fills and the bars they were made on."""
    equity, exposure = mark_to_market(fills, frames, index, capital)
    return RunResult(
        equity=equity,
        exposure=exposure,
        fills=fills.reset_index(drop=True),
        trades=round_trips(fills, frames),
        capital=capital,
    )
