"""What a backtest produces: the equity curve, fills, round-trip trades and their metrics.

Column contracts (every timestamp is UTC-aware):

``equity``    pd.Series, index = bar close times, value = cash + marked positions (USD).
``exposure``  pd.Series on the same index: gross position value / equity (0 = flat).
``fills``     DataFrame, one row per fill: ``ts, symbol, side ('BUY'|'SELL'), qty, price,
              ref_price, notional, commission, slippage`` (``slippage`` = USD lost to it).
``trades``    DataFrame, one row per round trip: ``symbol, entry_ts, exit_ts, qty,
              entry_price, exit_price, pnl, return, commission, bars_held`` (``pnl`` is net
              of both sides' commissions; ``return`` = pnl / entry notional).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

FILL_COLUMNS = ["ts", "symbol", "side", "qty", "price", "ref_price", "notional", "commission", "slippage"]
TRADE_COLUMNS = [
    "symbol", "entry_ts", "exit_ts", "qty", "entry_price", "exit_price",
    "pnl", "return", "commission", "bars_held",
]


@dataclass
class RunResult:
    """One simulated account: curves, fills and trades."""

    equity: pd.Series
    exposure: pd.Series
    fills: pd.DataFrame
    trades: pd.DataFrame
    capital: float
    signal: dict[str, Any] | None = None
    """What a signal strategy's ``diagnosis_inputs()`` gave (its batch probabilities, card label), or None."""


@dataclass
class RunInputs:
    """The bars a run was computed from, kept in memory for its diagnosis (never written)."""

    window: dict[str, pd.DataFrame]
    full: dict[str, pd.DataFrame]
    history: dict[str, pd.DataFrame]
    bench_history: pd.DataFrame | None = None


@dataclass
class BacktestResult:
    """A strategy run next to its benchmark, with figures for both."""

    strategy: RunResult
    benchmark: RunResult
    metrics: dict[str, Any]
    config: dict[str, Any]
    synthetic: bool = False
    symbols: list[str] = field(default_factory=list)
    benchmark_symbol: str = "SPY"
    timings: dict[str, float] = field(default_factory=dict)
    inputs: RunInputs | None = None
    """The run's bars (set by ``engine.runner.run_backtest``; None for a result built elsewhere)."""
    diagnosis: Any = None
    """The run's :class:`engine.diagnosis.Diagnosis` once computed (report.html and diagnosis.json show it)."""
