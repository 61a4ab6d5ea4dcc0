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
probability are computed bar time by bar time, as live trading does - at the first bar of
a close time, ONE :meth:`~models.signal.SignalStream.step` updates the features of every
symbol with a bar at that time (constant time per bar, bit-identical to batch) and scores
them in one onnxruntime call per member; each symbol's ``on_bar`` then reads its
probability. The bars of a close time come from the live data client, which publishes them
together before the bars themselves (``engine.overlays.BATCH_TOPIC``), and in a backtest
from the same bars the engine replays (the frames given to :meth:`SignalStrategy.prepare`);
every ``on_bar`` checks that the bar it decides on is the one stepped. Both modes replay the
same bars in the event loop (the window plus the model's warm-up); streaming mode feeds each
symbol's earlier history to its stream in one kernel call when its first bar arrives
(:meth:`~models.signal.SignalStream.warm`, the numbers of a bar-by-bar replay). Both modes
give the same orders (tested on real bars).

Paper trading saves the streaming state (:meth:`~models.signal.SignalStream.state`) after
every live bar time and at stop to ``state_path``; a restarted session restores it, skips
the warm-up bars the state already holds and continues with the very feature values of an
uninterrupted session (when its warm-up does not reach back to the saved state's last bar,
the bars in between are unknown: that symbol restarts from the warm-up, with a WARNING).

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
import os
import tempfile
from pathlib import Path
from typing import Any

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
    state_path: str = ""
    """Live streaming mode: file the stream's state is saved to after every live bar time and resumed from ('' = off)."""


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
    model, probs = _batch_pass(cfg, history)
    return probs, label_horizon(model), model.threshold


def _batch_pass(cfg: BacktestConfig, history: dict[str, pd.DataFrame]) -> tuple[SignalModel, dict[str, pd.Series]]:
    """The config's model and its batch probabilities over *history* (what the event strategy's prepare computes)."""
    model = _load(cfg.strategy.model, cfg.data.bar)
    model.check_symbols(list(history))
    return model, batch_probabilities(model, dict(history), cfg.data.catalog)


def label_info(model: SignalModel) -> dict[str, Any]:
    """The card label the probabilities refer to, as plain data (the diagnosis rebuilds it on the window).

    For an ensemble: the member with the longest horizon; ``members_agree`` says whether
    every member's card has the same label definition.
    """
    labels = [m.card.label for m in model.models if m.card.label is not None]
    if not labels:
        return {"kind": None, "horizon": None, "params": {}, "members_agree": True}
    main = max(labels, key=lambda lab: int(lab.horizon))
    agree = all(lab.kind == main.kind and lab.horizon == main.horizon and lab.params == main.params for lab in labels)
    return {"kind": main.kind, "horizon": int(main.horizon), "params": dict(main.params), "members_agree": agree}


def _card_metrics(model: SignalModel) -> dict[str, Any]:
    if model.ensemble is not None or len(model.models) != 1:
        return {}
    return {
        split: {k: v for k, v in values.items() if not isinstance(v, list)}
        for split, values in model.models[0].card.metrics.items()
    }


def signal_description(model: SignalModel, probabilities: dict[str, pd.Series] | None) -> dict[str, Any]:
    """What the backtest diagnosis reads about a model (engine.diagnosis.SignalInputs takes this dict)."""
    return {
        "model": model.name,
        "kind": model.kind,
        "probabilities": probabilities,
        "label": label_info(model),
        "card_threshold": float(model.threshold),
        "card_metrics": _card_metrics(model),
    }


def diagnosis_inputs(cfg: BacktestConfig, history: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The model's batch probabilities and card facts for the diagnosis (plug-in ``strategies.signal:diagnosis_inputs``).

    The probabilities are those of :func:`sweep_inputs` (the batch pass the event strategy
    and the sweep kernel read); used when a run's own strategy did not keep them
    (streaming mode, a sweep's configurations).
    """
    return signal_description(*_batch_pass(cfg, history))


def resolve_thresholds(model: SignalModel, entry: float | None, exit_: float | None) -> tuple[float, float]:
    """Entry and exit thresholds: the configured ones, else the card's and min(0.5, entry)."""
    e = entry if entry is not None else model.threshold
    x = exit_ if exit_ is not None else min(0.5, e)
    return float(e), float(x)



ALL_HISTORY = 10**9
"""A warm-up that replays every bar of the history (the policy strategy's streaming mode asks for it)."""


def warmup_bars(cfg: BacktestConfig) -> int:
    """Bars the event loop must replay before the window (runner hook): the model's warm-up.

    Batch mode scores the whole history in :meth:`SignalStrategy.prepare`. Streaming mode
    needs every bar from the start of the history too (EMA-type indicators depend on where
    they start): the bars before the event loop's first one are fed to the stream in one
    kernel call per symbol (:meth:`models.signal.SignalStream.warm`, the same numbers as
    bar by bar) when that first bar arrives, so both modes replay the same bars.
    """
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
        self._batch: dict[str, pd.Series] | None = None
        self._stream = self.model.stream(config.symbols) if self.streaming else None
        self._symbols = list(dict.fromkeys(config.symbols))  # the stream's rows
        n = len(self._symbols)
        self._row = {s: i for i, s in enumerate(self._symbols)}
        self._p_now = np.full(n, np.nan)  # streaming: probability of each symbol's last stepped bar
        self._at = np.full(n, -1, dtype=np.int64)  # the bar time each symbol was last stepped at
        self._close_at = np.zeros(n)  # and that bar's close (checked against the bar decided on)
        self._step_ts = -1
        self._times: _BarTimes | None = None  # backtest: the bars of each close time
        self._live: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # live: published close times not yet stepped
        self._history: dict[str, pd.DataFrame] = {}  # backtest: each symbol's bars, for the warm-up before the loop
        self._cold = np.zeros(n, dtype=bool)  # backtest: not yet warmed from its history (stepped by no batch)
        self._resume: dict[str, int] = {}  # restored symbol -> close time of its last bar in the state
        self._resume_seen: set[str] = set()
        # news sentiment: read (and checked) here, never in on_bar
        self._articles = news_articles(self.model, config.catalog)
        self._news: dict[str, SentimentAccumulator] = {}
        if self.streaming and self.model.sentiment is not None:
            assert self._articles is not None
            self._news = {
                s: SentimentAccumulator(self.model.sentiment, symbol_articles(self._articles, s))
                for s in config.symbols
            }

    def diagnosis_inputs(self) -> dict[str, Any]:
        """The model facts and batch probabilities of this run (None in streaming mode), for the diagnosis."""
        return signal_description(self.model, self._batch)

    def card_horizon(self) -> int | None:
        """The model card's label horizon: the cost filter's default horizon."""
        return label_horizon(self.model)

    def prepare(self, frames: dict[str, pd.DataFrame]) -> None:
        """Batch mode: every probability of every symbol, in one pass before the event loop."""
        if self.streaming:
            mine = {s: frames[s] for s in self._symbols if s in frames}
            self._times = _BarTimes(mine, self._row)
            self._history = mine
            self._cold[[self._row[s] for s in mine]] = True
            return
        probs = batch_probabilities(self.model, {s: frames[s] for s in self.cfg.symbols}, self.cfg.catalog)
        self._batch = probs
        for s, series in probs.items():
            self._ts[s] = series.index.asi8
            self._p[s] = series.to_numpy(dtype=np.float64)

    # -- probabilities -------------------------------------------------------------------
    def _prob(self, symbol: str, bar: Bar) -> float:
        if self._stream is not None:  # stepped in on_bar
            i = self._row[symbol]
            return float(self._p_now[i]) if self._at[i] == bar.ts_event else math.nan
        ts, i = self._ts[symbol], self._ptr[symbol]
        while i < len(ts) and ts[i] < bar.ts_event:
            i += 1
        self._ptr[symbol] = i
        if i >= len(ts) or ts[i] != bar.ts_event:
            raise RuntimeError(f"{symbol}: no probability for the bar at {bar.ts_event}: prepare() was not given it")
        return float(self._p[symbol][i])

    # -- streaming: one step per bar time ------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """Streaming: every bar the engine delivers is in the features before the base decides on it."""
        if self._stream is not None:
            self._streamed(self._symbol_of[bar.bar_type], bar)
        super().on_bar(bar)

    def _streamed(self, symbol: str, bar: Bar) -> None:
        ts = int(bar.ts_event)
        i = self._row[symbol]
        if symbol in self._history:  # the symbol's first bar in the loop: its earlier history first
            self._warm_from_history(symbol, ts)
        if self._at[i] > ts:  # a bar older than the features (never from the data clients): no probability
            self.log.warning(f"{symbol}: bar at {ts} comes after a later one was stepped; not decided on")
            return
        if self._at[i] != ts and ts != self._step_ts:
            self._step_ts = ts
            got = self._times.at(ts) if self._times is not None else self._live.pop(ts, None)
            if len(self._live) > 4096:  # close times whose bars never came
                self._live = {t: v for t, v in self._live.items() if t > ts}
            if got is not None:
                self._step(ts, *got)
        if self._at[i] != ts:  # not among the bar time's bars (a live bar outside the published batch)
            row = np.array([[bar.open.as_double(), bar.high.as_double(), bar.low.as_double(),
                             bar.close.as_double(), bar.volume.as_double()]])
            self._step(ts, np.array([i], dtype=np.int64), row)
        if self._close_at[i] != bar.close.as_double():
            raise RuntimeError(
                f"{symbol}: the bar at {ts} closes at {bar.close.as_double()}, but the features were stepped with "
                f"{self._close_at[i]}: the bar-time source disagrees with the engine's bars"
            )

    def _warm_from_history(self, symbol: str, ts: int) -> None:
        assert self._stream is not None
        frame = self._history.pop(symbol)
        self._cold[self._row[symbol]] = False
        before = frame.index.asi8 < ts
        if not before.any():
            return
        part = frame.loc[before]
        stamps = part.index.asi8
        sentiment = None
        news = self._news.get(symbol)
        if news is not None:
            sentiment = np.array([news.value(int(t)) for t in stamps.tolist()])
        self._stream.warm(symbol, stamps, part[["open", "high", "low", "close", "volume"]].to_numpy(np.float64),
                          sentiment)
        i = self._row[symbol]
        self._at[i] = int(stamps[-1])
        self._close_at[i] = float(part["close"].iloc[-1])

    def _on_batch(self, batch: tuple[int, dict[str, tuple[float, float, float, float, float]]]) -> None:
        """Live: the bars of one close time, published before the bars themselves; stepped at the first of them."""
        ts, rows = int(batch[0]), batch[1]
        mine = [(self._row[s], v) for s, v in rows.items() if s in self._row]
        if mine:
            idx = np.array([r for r, _ in mine], dtype=np.int64)
            self._live[ts] = (idx, np.array([v for _, v in mine], dtype=np.float64))

    def _step(self, ts: int, rows: np.ndarray, bars: np.ndarray) -> None:
        assert self._stream is not None
        fresh = self._at[rows] < ts  # a symbol already stepped at or after ts (a late or repeated batch) is not
        fresh &= ~self._cold[rows]  # nor one whose history is fed when its first bar arrives
        if not fresh.all():
            rows, bars = rows[fresh], bars[fresh]
        if self._resume:
            rows, bars = self._resumed(ts, rows, bars)
        if rows.size:
            sentiment = None
            if self._news:
                sentiment = np.array([self._news[self._symbols[r]].value(ts) for r in rows.tolist()])
            self._p_now[rows] = self._stream.step(ts, bars, rows=rows, sentiment=sentiment)
            self._at[rows] = ts
            self._close_at[rows] = bars[:, 3]
        if self.cfg.state_path and self.cfg.live and ts >= self.cfg.trade_from_ns:
            self._save_state()

    def _resumed(self, ts: int, rows: np.ndarray, bars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop the bars a restored state already holds (the warm-up of a restarted session)."""
        assert self._stream is not None
        keep = np.ones(rows.size, dtype=bool)
        for j, r in enumerate(rows.tolist()):
            s = self._symbols[r]
            last = self._resume.get(s)
            if last is None:
                continue
            if s not in self._resume_seen:
                self._resume_seen.add(s)
                if ts > last:
                    self.log.warning(
                        f"{s}: the saved features end at {pd.Timestamp(last, tz='UTC')}, before this session's first "
                        f"bar at {pd.Timestamp(ts, tz='UTC')}; the bars in between are unknown, so its features restart "
                        "from the warm-up bars (raise paper.warmup_bars to cover the pause)"
                    )
                    self._stream.reset([s])
                    del self._resume[s]
                    continue
            if ts > last:
                del self._resume[s]
                continue
            keep[j] = False  # in the state already
            self._at[r] = ts
            self._close_at[r] = bars[j, 3]
            self._p_now[r] = self._stream.score([s])[s] if ts == last else math.nan
        return rows[keep], bars[keep]

    def _save_state(self) -> None:
        assert self._stream is not None
        path = Path(self.cfg.state_path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._stream.state())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _restore_state(self) -> None:
        """Live start: continue the streaming features from the last session's saved state."""
        assert self._stream is not None
        path = Path(self.cfg.state_path)
        if not path.is_file():
            return
        try:
            restored = self._stream.restore(path.read_bytes())
        except ModelContractError as exc:
            self.log.warning(f"{path}: {exc}; the features start from the warm-up bars")
            return
        for s in restored:
            last = self._stream.last_ts(s)
            if last is not None:
                self._resume[s] = last
        if restored:
            self.log.info(f"streaming features of {len(restored)} symbol(s) resumed from {path}")

    def on_start(self) -> None:
        """Subscribe; live streaming also restores the saved state and steps each published bar time."""
        if self._stream is not None and self.cfg.live:
            if self.cfg.state_path:
                self._restore_state()
            from engine.overlays import BATCH_TOPIC

            super().on_start()
            self.msgbus.subscribe(topic=BATCH_TOPIC, handler=self._on_batch)
            return
        super().on_start()

    def on_stop(self) -> None:
        """Live: the base's stop, then save the streaming state."""
        super().on_stop()
        if self._stream is not None and self.cfg.live and self.cfg.state_path:
            self._save_state()

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
        """Bars before the window: nothing to do (streaming features are stepped in :meth:`on_bar`)."""

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


class _BarTimes:
    """The bars of each close time, in universe order: a backtest's stand-in for the live batches.

    The live data client publishes every close time's bars together before the bars
    themselves (``engine.overlays.BATCH_TOPIC``); in a backtest the same bars come from the
    frames the event loop replays, grouped once by close time.
    """

    def __init__(self, frames: dict[str, pd.DataFrame], rows: dict[str, int]) -> None:
        cols = ["open", "high", "low", "close", "volume"]
        ts = np.concatenate([f.index.asi8 for f in frames.values()]) if frames else np.empty(0, np.int64)
        idx = np.concatenate([np.full(len(f), rows[s], dtype=np.int64) for s, f in frames.items()]) if frames \
            else np.empty(0, np.int64)
        bars = np.vstack([f[cols].to_numpy(dtype=np.float64) for f in frames.values()]) if frames else np.empty((0, 5))
        order = np.lexsort((idx, ts))
        self._ts, self._rows, self._bars = ts[order], idx[order], np.ascontiguousarray(bars[order])
        self.times, self._starts = np.unique(self._ts, return_index=True)
        self._ends = np.r_[self._starts[1:], len(self._ts)].astype(np.int64)
        self._k = 0

    def at(self, ts: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows and bars ``(k, 5)`` of close time *ts*, or None (times are asked in increasing order)."""
        k = self._k
        if k >= len(self.times) or self.times[k] != ts:
            k = int(np.searchsorted(self.times, ts))
            if k >= len(self.times) or self.times[k] != ts:
                return None
        self._k = k + 1
        lo, hi = int(self._starts[k]), int(self._ends[k])
        return self._rows[lo:hi], self._bars[lo:hi]
