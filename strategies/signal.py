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

News sentiment: when the model's card has a ``sentiment`` spec (a model trained with a
``[sentiment]`` section), the strategy rebuilds that column from the scored news of
``catalog`` (the backtest's ``data.catalog``): batch mode with
:func:`models.sentiment.sentiment_features` over each symbol's bars, streaming mode with
one :class:`~models.sentiment.SentimentAccumulator` per symbol, read at every bar close
(the same numbers, bit for bit). Paper trading feeds the accumulators from the live news
stream through :meth:`SignalStrategy.add_article`. A card without a spec keeps the column
at 0, as before.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar

from engine.config import BacktestConfig
from models.errors import ModelContractError
from models.sentiment import (
    SentimentAccumulator,
    read_scored_articles,
    spec_features,
    symbol_articles,
)
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
    catalog: str = ""
    """Catalog whose scored news feeds a model trained with sentiment (the backtest's data.catalog)."""


def _load(path: str, bar: str) -> SignalModel:
    return load_signal_model(Path(path), bar=bar)


def news_articles(model: SignalModel, catalog: str | Path | None) -> pd.DataFrame | None:
    """The scored articles a model trained with sentiment needs (None for a model without).

    Raises
    ------
    ModelContractError
        The model needs news and no catalog is given, or the catalog lacks scored news
        (:class:`~models.errors.ModelDataError`, naming the commands to run).
    """
    spec = model.sentiment
    if spec is None:
        return None
    if not catalog:
        raise ModelContractError(
            f"model '{model.name}' was trained with news sentiment ({spec.method}, half-life "
            f"{spec.half_life}, scorer {spec.model}); give the strategy the catalog whose scored "
            "news to read (data.catalog in a backtest config)"
        )
    return read_scored_articles(catalog, spec.model)


def batch_probabilities(
    model: SignalModel, frames: dict[str, pd.DataFrame], catalog: str | Path | None = None
) -> dict[str, pd.Series]:
    """Every probability of every symbol, in one pass: what batch mode and the sweep kernel read.

    A model trained with sentiment gets its column from the scored news of *catalog*.
    """
    articles = news_articles(model, catalog)
    sentiment = None
    if articles is not None and model.sentiment is not None:
        closes = {s: pd.DatetimeIndex(f.index) for s, f in frames.items()}
        sentiment = spec_features(model.sentiment, closes, articles)
    return model.probabilities_many(frames, sentiment=sentiment)


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
    return batch_probabilities(model, dict(history), cfg.data.catalog), label_horizon(model), model.threshold


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
        # news sentiment: read (and checked) here, never in on_bar
        self._articles = news_articles(self.model, config.catalog)
        self._news: dict[str, SentimentAccumulator] = {}
        if self.streaming and self.model.sentiment is not None:
            assert self._articles is not None
            self._news = {
                s: SentimentAccumulator(self.model.sentiment, symbol_articles(self._articles, s))
                for s in config.symbols
            }

    def card_horizon(self) -> int | None:
        """The model card's label horizon: the cost filter's default horizon."""
        return label_horizon(self.model)

    def prepare(self, frames: dict[str, pd.DataFrame]) -> None:
        """Batch mode: every probability of every symbol, in one pass before the event loop."""
        if self.streaming:
            return
        probs = batch_probabilities(self.model, {s: frames[s] for s in self.cfg.symbols}, self.cfg.catalog)
        for s, series in probs.items():
            self._ts[s] = series.index.asi8
            self._p[s] = series.to_numpy(dtype=np.float64)

    # -- probabilities -------------------------------------------------------------------
    def _prob(self, symbol: str, bar: Bar) -> float:
        if self._stream is not None:
            news = self._news.get(symbol)
            self._stream.update(
                symbol, bar.ts_event, bar.open.as_double(), bar.high.as_double(), bar.low.as_double(),
                self.last_close[symbol], bar.volume.as_double(),
                sentiment=0.0 if news is None else news.value(bar.ts_event),
            )
            return self._stream.score([symbol])[symbol]
        ts, i = self._ts[symbol], self._ptr[symbol]
        while i < len(ts) and ts[i] < bar.ts_event:
            i += 1
        self._ptr[symbol] = i
        if i >= len(ts) or ts[i] != bar.ts_event:
            raise RuntimeError(f"{symbol}: no probability for the bar at {bar.ts_event}: prepare() was not given it")
        return float(self._p[symbol][i])

    def add_article(self, article_id: str, symbols: list[str], created_at: int | pd.Timestamp, score: float) -> None:
        """Streaming mode: a scored article arrived (paper trading's live news stream).

        It counts for each listed symbol this strategy trades, from the first bar closing
        strictly after ``created_at``; a repeated id replaces the earlier version. Ignored
        when the model was trained without sentiment.
        """
        for s in symbols:
            news = self._news.get(str(s).upper())
            if news is not None:
                news.add(article_id, created_at, score)

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
