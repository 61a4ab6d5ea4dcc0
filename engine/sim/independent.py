"""Threshold sweeps with independent capital per symbol: the fastest path, for the simplest question.

Each (configuration, symbol) column is the signal strategy run alone on one symbol with
its own ``portfolio.capital`` and no overlays - exactly what ``sigtrade backtest`` does
with ``data.symbols = [symbol]``: the same decisions (entry at ``p >= entry``, exit at
``p < exit``), sizes (``shares_for(position_size x equity, close, cash, cost_rate)``),
fill prices (NautilusTrader ``Price`` quotes) and cent-rounded commissions, flattened on
the last decision bar. Only the final equity, round trips, fills, traded notional and
commissions are computed - no equity curve - which is what a threshold scan over
thousands of settings needs first (and what vectorbt's ``Portfolio.from_signals``
simulates; see benchmarks/sweep.py). The kernel is :func:`engine.sim.kernels_nb.independent_nb`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine import catalog as cat
from engine.config import BacktestConfig, bar_minutes
from engine.errors import ConfigError
from engine.fills import execution_quotes
from engine.overlays import cost_rate
from engine.sim import kernels_nb as K


def _active_overlays(cfg: BacktestConfig) -> list[str]:
    """Settings this kernel does not simulate (they must be at their 'off' values)."""
    from engine.config import RegimeConfig, RiskConfig

    out = []
    off = RiskConfig()
    for name in RiskConfig.__struct_fields__:
        if name in ("max_gross_exposure", "atr_period", "atr_risk", "atr_multiple", "cost_filter_horizon",
                    "cost_filter_window", "cost_multiple", "drawdown_pause_bars"):
            continue
        if getattr(cfg.risk, name) != getattr(off, name):
            out.append(f"risk.{name}")
    if cfg.risk.max_gross_exposure < cfg.portfolio.position_size:
        out.append("risk.max_gross_exposure below portfolio.position_size")
    if cfg.regime != RegimeConfig():
        out.append("[regime]")
    if cfg.strategy.max_hold_bars:
        out.append("strategy.max_hold_bars")
    if cfg.strategy.short_threshold is not None:
        out.append("strategy.short_threshold")
    return out


class IndependentSweep:
    """Prepared arrays of one universe for :func:`engine.sim.kernels_nb.independent_nb`.

    Parameters
    ----------
    cfg
        The base config: costs, fill mode, capital per symbol, position size, shares.
    window
        Each symbol's in-window bars (the runner's ``window`` frames).
    probabilities
        The strategy's batch probabilities per symbol (any index containing the window's).
    """

    def __init__(
        self, cfg: BacktestConfig, window: Mapping[str, pd.DataFrame], probabilities: Mapping[str, pd.Series]
    ) -> None:
        from engine.runner import _quote_ticks

        if not cfg.execution.close_at_end:
            raise ConfigError("the independent threshold sweep flattens on the last bar: set execution.close_at_end = true")
        overlays = _active_overlays(cfg)
        if overlays:
            raise ConfigError(
                f"the independent threshold sweep simulates thresholds only; turn off {', '.join(overlays)} "
                "or use the shared-cash fast path (sigtrade sweep)"
            )
        self.cfg = cfg
        self.symbols = list(window)
        n_max = max(len(f) for f in window.values())
        S = len(self.symbols)
        self.prob = np.full((S, n_max), np.nan)
        self.close = np.full((S, n_max), np.nan)
        self.bid = np.full((S, n_max), np.nan)
        self.ask = np.full((S, n_max), np.nan)
        self.first = np.zeros(S, dtype=np.int64)
        self.end = np.zeros(S, dtype=np.int64)
        self.n_bars = np.zeros(S, dtype=np.int64)
        self.mark_last = np.zeros(S)
        minutes = bar_minutes(cfg.data.bar)
        for j, s in enumerate(self.symbols):
            frame = window[s]
            n = len(frame)
            inst = cat.make_instrument(s, cfg.portfolio.fractional)
            self.close[j, :n] = [b.close.as_double() for b in cat.frame_to_bars(frame, s, cfg.data.bar, inst)]
            self.prob[j, :n] = probabilities[s].reindex(frame.index).to_numpy(dtype=np.float64)
            q = execution_quotes(frame, cfg.execution.fill, minutes, cfg.costs.slippage_bps)
            ticks = _quote_ticks(inst, q.index, q["bid"].to_numpy(), q["ask"].to_numpy())
            m = len(ticks)  # quotes of decision bars 0 .. m-1
            self.bid[j, :m] = [x.bid_price.as_double() for x in ticks]
            self.ask[j, :m] = [x.ask_price.as_double() for x in ticks]
            self.end[j] = (n - 2 if cfg.execution.fill == "next_open" else n - 1) if n > 1 else 0
            self.n_bars[j] = n
            self.mark_last[j] = float(frame["close"].iloc[-1])  # the ledger marks at the frame's close

    @property
    def steps(self) -> int:
        """Bars x symbols of one configuration."""
        return int(self.n_bars.sum())

    def run(self, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
        """Simulate every (entry, exit) pair on every symbol; ``(C, S, 5)`` as the kernel returns it."""
        entry = np.ascontiguousarray(entry, dtype=np.float64)
        exit_ = np.ascontiguousarray(exit_, dtype=np.float64)
        if entry.shape != exit_.shape:
            raise ConfigError("entry and exit thresholds must come in pairs")
        if (exit_ > entry).any():
            raise ConfigError("an exit threshold above its entry threshold would close a position on the bar it opens")
        e_vals, e_idx = np.unique(entry, return_inverse=True)
        x_vals, x_idx = np.unique(exit_, return_inverse=True)
        return K.independent_nb(
            e_vals, e_idx.astype(np.int64), x_vals, x_idx.astype(np.int64), *self._args()
        )

    def run_reference(self, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
        """The same, bar by bar (the plain form the fast one is tested against)."""
        entry = np.ascontiguousarray(entry, dtype=np.float64)
        exit_ = np.ascontiguousarray(exit_, dtype=np.float64)
        return K.independent_reference_nb(entry, exit_, *self._args())

    def _args(self) -> tuple[object, ...]:
        c = self.cfg
        return (
            self.prob, self.close, self.bid, self.ask, self.first, self.end,
            c.execution.fill == "next_open", self.mark_last,
            float(c.portfolio.capital), float(c.portfolio.position_size), cost_rate(c),
            float(c.costs.commission_bps), float(c.costs.commission_per_share), float(c.costs.commission_min),
            float(10 ** (6 if c.portfolio.fractional else 0)),
        )
