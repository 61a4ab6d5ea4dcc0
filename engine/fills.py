"""Fill timing: the execution quotes that make market orders fill where they should.

NautilusTrader fills a market order sent in ``on_bar`` at that bar's close. sigtrade's
default is the realistic one: decide on bar t's close ``T``, fill at bar t+1's open. The
venue runs with bar execution off, so the market moves only through sigtrade's
*execution quotes*, one per bar, priced at the reference price - bar t+1's open (or bar
t's close with ``fill="close"``) - with the ask ``slippage_bps`` above it and the bid as
far below. Strategies subscribe to bars only and never see them.

The engine drains in-flight orders after each data point, so the timing is::

    T          bars close; strategies decide and send market orders
    T + 1 ms   every symbol's execution quote (all applied before any order arrives)
    T + 2 ms   orders arrive at the venue (latency model)
    T + 3 ms   one *trigger* quote on a clock instrument: the venue processes the orders

so a buy fills at ``ref x (1 + slippage)`` and a sell at ``ref x (1 - slippage)``, never at
bar t's own prices under ``next_open``. sigtrade's books stamp each fill at its
economic time: ``max(T, start of bar t+1) + 3 ms`` (the next session's open for an
overnight gap), so the equity at ``T`` never contains it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.sessions import bar_starts

QUOTE_DELAY_NS = 1_000_000
"""Execution quotes are stamped this long after the decision time (ns)."""
ORDER_LATENCY_NS = 2_000_000
"""Order latency of the simulated venue (ns): orders arrive after every quote of their time."""
TRIGGER_DELAY_NS = 3_000_000
"""The clock instrument's quote, which makes the venue process arrived orders (ns)."""
QUOTE_SIZE = 1e12
"""Quote size: large enough that no backtest order is partially filled."""
CLOCK_SYMBOL = "_CLOCK"
"""Symbol of the instrument whose quotes only advance the venue's order processing."""


def execution_quotes(frame: pd.DataFrame, fill: str, bar_minutes: int, slippage_bps: float) -> pd.DataFrame:
    """Return the execution quotes of one symbol's bar frame.

    The result is indexed by engine time (UTC) with columns ``ref`` (reference price),
    ``bid``, ``ask``, ``decision_ts`` (close of the bar whose decisions it fills, ns) and
    ``fill_ts`` (the fill's economic time, ns).
    """
    closes = frame.index.asi8
    s = slippage_bps / 10_000.0
    if fill == "close":
        ref = frame["close"].to_numpy()
        decision = closes
        effective = closes
    elif fill == "next_open":
        if len(frame) < 2:
            return pd.DataFrame(columns=["ref", "bid", "ask", "decision_ts", "fill_ts"])
        starts = bar_starts(frame.index, bar_minutes).asi8
        ref = frame["open"].to_numpy()[1:]
        decision = closes[:-1]
        effective = np.maximum(decision, starts[1:])
    else:
        raise ValueError(f"unknown fill mode {fill!r}")
    return pd.DataFrame(
        {
            "ref": ref,
            "bid": ref * (1.0 - s),
            "ask": ref * (1.0 + s),
            "decision_ts": decision,
            "fill_ts": effective + TRIGGER_DELAY_NS,
        },
        index=pd.to_datetime(decision + QUOTE_DELAY_NS, utc=True),
    )


def trigger_times(quotes: dict[str, pd.DataFrame]) -> np.ndarray:
    """Engine times (ns) of the clock instrument's trigger quotes: one per decision time."""
    parts = [q["decision_ts"].to_numpy(dtype=np.int64) for q in quotes.values() if len(q)]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts)) + TRIGGER_DELAY_NS
