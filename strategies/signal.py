"""The neural-network signal strategy: one ONNX model or an ensemble, long (and short) by threshold.

Per symbol and bar: with probability ``p`` of an up-move (NaN while features or the
lookback window are warming up - the strategy then waits, never trades on NaN),

* flat: enter long ``position_size x equity`` when ``p >= entry_threshold``; on a margin
  account with ``short_threshold`` set, enter short when ``p <= short_threshold``;
* long: exit when ``p < exit_threshold`` (hysteresis);
* short: cover when ``p > cover_threshold``.

Everything else - the time stop (``max_hold_bars``), stops, sizing, exposure limits,
cooldown, minimum hold, the cost filter, regime filters and the portfolio circuit
breakers - is the base class's overlays (:mod:`engine.overlays`); the cost filter reads
this strategy's probability through :meth:`SignalStrategy.entry_probability`.

``mode = "batch"``: every probability is computed in one batched pass before the event
loop (:meth:`SignalStrategy.prepare`, :func:`batch_probabilities`) and read in ``on_bar``;
the sweep kernel reads the very same arrays. ``mode = "streaming"``: features and the
probability are computed bar by bar, as live trading does. Both give the same orders
(tested on real bars).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar

from engine.config import BacktestConfig
from models.signal import SignalModel, load_signal_model
from strategies.base import SigtradeStrategy, SigtradeStrategyConfig


class SignalStrategyConfig(SigtradeStrategyConfig, frozen=True, kw_only=True):
    """Model folder, thresholds and scoring mode of :class:`SignalStrategy` (``max_hold_bars`` is the base's time stop)."""

    model: str
    entry_threshold: float | None = None
    exit_threshold: float | None = None
    short_threshold: float | None = None
    cover_threshold: float = 0.5
    mode: str = "batch"


def _load(path: str, bar: str) -> SignalModel:
    return load_signal_model(Path(path), bar=bar)


def batch_probabilities(model: SignalModel, frames: dict[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """Every probability of every symbol, in one pass: what batch mode and the sweep kernel read."""
    return model.probabilities_many(frames)


def label_horizon(model: SignalModel) -> int | None:
    """The label horizon (bars) of the model's card(s): the longest over ensemble members."""
    horizons = [int(m.card.label.horizon) for m in model.models if m.card.label is not None]
    return max(horizons) if horizons else None


def sweep_inputs(cfg: BacktestConfig, history: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.Series], int | None, float]:
    """What the sweep kernel needs from the model: batch probabilities, label horizon, card threshold.

    The probabilities are computed exactly as :meth:`SignalStrategy.prepare` computes them
    (same loader, same frames, same call), so the kernel and the event engine read the
    same numbers. The engine reaches this as the plug-in ``strategies.signal:sweep_inputs``.
    """
    model = _load(cfg.strategy.model, cfg.data.bar)
    model.check_symbols(list(history))
    return batch_probabilities(model, dict(history)), label_horizon(model), model.threshold


def resolve_thresholds(model: SignalModel, entry: float | None, exit_: float | None) -> tuple[float, float]:
    """Entry and exit thresholds: the configured ones, else the card's and min(0.5, entry)."""
    e = entry if entry is not None else model.threshold
    x = exit_ if exit_ is not None else min(0.5, e)
    return float(e), float(x)


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
        self.entry, self.exit_level = resolve_thresholds(self.model, config.entry_threshold, config.exit_threshold)
        if self.exit_level > self.entry:
            raise ValueError(f"exit threshold {self.exit_level} is above entry threshold {self.entry}")
        self.short = config.short_threshold
        self.cover = config.cover_threshold
        self.streaming = config.mode == "streaming"
        self.last_prob: dict[str, float] = dict.fromkeys(config.symbols, math.nan)
        self._ts: dict[str, np.ndarray] = {}
        self._p: dict[str, np.ndarray] = {}
        self._ptr: dict[str, int] = dict.fromkeys(config.symbols, 0)
        self._stream = self.model.stream(config.symbols) if self.streaming else None

    def card_horizon(self) -> int | None:
        """The model card's label horizon: the cost filter's default horizon."""
        return label_horizon(self.model)

    def prepare(self, frames: dict[str, pd.DataFrame]) -> None:
        """Batch mode: every probability of every symbol, in one pass before the event loop."""
        if self.streaming:
            return
        probs = batch_probabilities(self.model, {s: frames[s] for s in self.cfg.symbols})
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
        if math.isnan(p) or self.pending[symbol]:
            return
        pos = self.position[symbol]
        if pos > 0.0:
            if p < self.exit_level:
                self.exit(symbol)
        elif pos < 0.0:
            if p > self.cover:
                self.exit(symbol)
        elif p >= self.entry:
            self.enter(symbol, self.cfg.position_size * self.equity())
        elif self.short is not None and p <= self.short:
            self.enter_short(symbol, self.cfg.position_size * self.equity())

    def entry_probability(self, symbol: str) -> float:
        """The probability of the bar being decided (the cost filter's ``p``)."""
        return self.last_prob[symbol]
