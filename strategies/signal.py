"""The neural-network signal strategy: one ONNX model or an ensemble, long (and short) by threshold.

Per symbol and bar: with probability ``p`` of an up-move (NaN while features or the
lookback window are warming up - the strategy then waits, never trades on NaN),

* flat: enter long ``position_size x equity`` when ``p >= entry_threshold``; on a margin
  account with ``short_threshold`` set, enter short when ``p <= short_threshold``;
* long: exit when ``p < exit_threshold`` (hysteresis) or after ``max_hold_bars``;
* short: cover when ``p > cover_threshold`` or after ``max_hold_bars``.

``mode = "batch"``: every probability is computed in one batched pass before the event
loop (:meth:`SignalStrategy.prepare`) and read in ``on_bar``. ``mode = "streaming"``:
features and the probability are computed bar by bar, as live trading does. Both give
the same orders (tested on real bars).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar

from engine.config import BacktestConfig
from models.signal import SignalModel, load_signal_model
from strategies.base import SigtradeStrategy, SigtradeStrategyConfig


class SignalStrategyConfig(SigtradeStrategyConfig, frozen=True, kw_only=True):
    """Model folder, thresholds and scoring mode of :class:`SignalStrategy`."""

    model: str
    entry_threshold: float | None = None
    exit_threshold: float | None = None
    max_hold_bars: int = 0
    short_threshold: float | None = None
    cover_threshold: float = 0.5
    mode: str = "batch"


def _load(path: str, bar: str) -> SignalModel:
    return load_signal_model(Path(path), bar=bar)


ALL_HISTORY = 10**9


def warmup_bars(cfg: BacktestConfig) -> int:
    """Bars the event loop must replay before the window (runner hook).

    Batch mode scores the whole history in :meth:`SignalStrategy.prepare`, so the loop
    needs only the model's warm-up. Streaming mode must see every bar from the start of
    the history to compute the same features (EMA-type indicators depend on where they
    start), so it replays all of it.
    """
    if cfg.strategy.mode == "streaming":
        return ALL_HISTORY
    return _load(cfg.strategy.model, cfg.data.bar).warmup_bars


class SignalStrategy(SigtradeStrategy):
    """Trades each symbol on its model probability (see the module docstring)."""

    def __init__(self, config: SignalStrategyConfig) -> None:
        super().__init__(config)
        self.model = _load(config.model, config.bar)
        self.model.check_symbols(config.symbols)
        self.entry = config.entry_threshold if config.entry_threshold is not None else self.model.threshold
        self.exit_level = config.exit_threshold if config.exit_threshold is not None else min(0.5, self.entry)
        if self.exit_level > self.entry:
            raise ValueError(f"exit threshold {self.exit_level} is above entry threshold {self.entry}")
        self.short = config.short_threshold
        self.cover = config.cover_threshold
        self.max_hold = config.max_hold_bars
        self.streaming = config.mode == "streaming"
        self.held: dict[str, int] = dict.fromkeys(config.symbols, 0)
        self.last_prob: dict[str, float] = dict.fromkeys(config.symbols, math.nan)
        self._ts: dict[str, np.ndarray] = {}
        self._p: dict[str, np.ndarray] = {}
        self._ptr: dict[str, int] = dict.fromkeys(config.symbols, 0)
        self._stream = self.model.stream(config.symbols) if self.streaming else None

    def prepare(self, frames: dict[str, pd.DataFrame]) -> None:
        """Batch mode: every probability of every symbol, in one pass before the event loop."""
        if self.streaming:
            return
        probs = self.model.probabilities_many({s: frames[s] for s in self.cfg.symbols})
        for s, series in probs.items():
            self._ts[s] = series.index.asi8
            self._p[s] = series.to_numpy(dtype=np.float64)

    # -- probabilities -------------------------------------------------------------------
    def _prob(self, symbol: str, bar: Bar) -> float:
        if self._stream is not None:
            self._stream.update(
                symbol, bar.ts_event, bar.open.as_double(), bar.high.as_double(), bar.low.as_double(),
                self.last_close[symbol], bar.volume.as_double(),
            )
            return self._stream.score([symbol])[symbol]
        ts, i = self._ts[symbol], self._ptr[symbol]
        while i < len(ts) and ts[i] < bar.ts_event:
            i += 1
        self._ptr[symbol] = i
        if i >= len(ts) or ts[i] != bar.ts_event:
            raise RuntimeError(f"{symbol}: no probability for the bar at {bar.ts_event}: prepare() was not given it")
        return float(self._p[symbol][i])

    def warm(self, symbol: str, bar: Bar) -> None:
        """Feed the streaming features (batch mode needs nothing)."""
        if self._stream is not None:
            self._prob(symbol, bar)

    def decide(self, symbol: str, bar: Bar) -> None:
        """Act on the probability of this bar."""
        p = self._prob(symbol, bar)
        self.last_prob[symbol] = p
        pos = self.position[symbol]
        if pos != 0.0:
            self.held[symbol] += 1
        if math.isnan(p) or self.pending[symbol]:
            return
        timed_out = self.max_hold > 0 and self.held[symbol] >= self.max_hold
        if pos > 0.0:
            if p < self.exit_level or timed_out:
                self.exit(symbol)
        elif pos < 0.0:
            if p > self.cover or timed_out:
                self.exit(symbol)
        elif p >= self.entry:
            if self.enter(symbol, self.cfg.position_size * self.equity()):
                self.held[symbol] = 0
        elif self.short is not None and p <= self.short:
            if self.enter_short(symbol, self.cfg.position_size * self.equity()):
                self.held[symbol] = 0

    def on_order_filled(self, event: Any) -> None:
        """Books, and a fresh holding clock for a position that just opened."""
        super().on_order_filled(event)
        s = event.instrument_id.symbol.value
        if self.position[s] == 0.0:
            self.held[s] = 0
