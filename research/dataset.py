"""Labelled windows from a catalog: per-symbol features, labels, purged chronological splits.

Rules (each pinned by ``tests/research/test_dataset.py``):

* **Features** come from the one pipeline the engine and live trading use
  (:func:`models.features.feature_matrix`), computed causally over each symbol's whole
  history; rows inside the feature warm-up are never used. With a ``[sentiment]`` section
  the ``sentiment`` column is each symbol's causal news sentiment from the catalog's
  scored news (:mod:`models.sentiment`; an article counts from the first bar closing
  strictly after it), else 0.
* **Labels** come from :mod:`research.labels`: the label of bar ``t`` reads bars
  ``t+1 .. t+H`` only.
* **A sample** is the window of ``lookback`` rows ending at its decision bar ``t`` (rows
  ``t-L+1 .. t``), the symbol's asset id, and the label of ``t``. Everything it *touches* is
  bars ``t-L+1 .. t+H``.
* **Splits** are chosen by the New York date of each bar's close. A sample belongs to a
  split only if every bar it touches lies inside that split's date range, and, for every
  split after the first, only if its first bar comes at least ``purge + 1`` bars after the
  last bar of the previous splits' ranges (``purge >= horizon``, default ``horizon``). So
  no window and no label straddles two splits, and between the last bar a training sample
  touches and the first bar a validation sample touches lie at least ``purge`` bars.
* **The scaler** (z-score) is fitted on the rows covered by training windows only and
  applied to everything; a std of 0 is stored as 1.
* **Class imbalance**: per-split class weights (``n / (2 n_class)``) for weighted losses
  and samplers.

Windows are never copied as a whole: the stacked, scaled feature matrix ``(T, F)`` is kept
once and a window is a strided view of it (:meth:`WindowData.window_view`); the torch
side (:mod:`research.loader`) gathers one batch at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.catalog import read_frame, resolve_symbols
from engine.errors import ConfigError, DataError
from models.feature_set import FeatureSetSpec, get_feature_set
from models.features import feature_matrix, warmup_bars
from models.sentiment import SentimentSpec, symbol_articles
from research.config import SPLITS, TrainConfig, parse_range
from research.labels import make_labels

__all__ = [
    "DatasetSpec",
    "LabelParams",
    "Segment",
    "SplitWindows",
    "WindowData",
    "build_windows",
]

log = logging.getLogger(__name__)
_NY = "America/New_York"


@dataclass(frozen=True)
class LabelParams:
    """How labels are made (see :mod:`research.labels`)."""

    kind: str = "threshold"
    horizon: int = 6
    threshold: float = 0.0
    take_profit: float = 0.01
    stop_loss: float = 0.01

    def card_params(self) -> dict[str, float | int | str | bool]:
        """Parameters as written into a model card's ``label.params``."""
        if self.kind == "threshold":
            return {"min_return": float(self.threshold), "price": "close"}
        return {
            "take_profit": float(self.take_profit),
            "stop_loss": float(self.stop_loss),
            "price": "close",
            "vertical_barrier": "negative",
        }


@dataclass(frozen=True)
class DatasetSpec:
    """Everything :func:`build_windows` needs; :meth:`from_config` reads it from a TrainConfig."""

    catalog: str
    symbols: Sequence[str] | str
    bar: str
    lookback: int
    ranges: dict[str, tuple[dt.date | None, dt.date | None]]
    purge: int
    label: LabelParams
    feature_set: FeatureSetSpec
    range_text: dict[str, str] = field(default_factory=dict)
    sentiment: SentimentSpec | None = None
    """How the sentiment column is made from the catalog's scored news; None: 0 everywhere."""

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> DatasetSpec:
        """The dataset of a training config."""
        try:
            fs = get_feature_set(cfg.features.set, cfg.features.version)
        except Exception as exc:  # FeatureSetError: say which key to fix
            raise ConfigError(f"features.set / features.version: {exc}") from None
        texts = {name: getattr(cfg.data, name) for name in SPLITS}
        return cls(
            catalog=cfg.data.catalog,
            symbols=cfg.data.symbols,
            bar=cfg.data.bar,
            lookback=cfg.data.lookback,
            ranges={name: parse_range(text, f"data.{name}") for name, text in texts.items()},
            purge=cfg.purge,
            label=LabelParams(
                kind=cfg.label.kind,
                horizon=cfg.label.horizon,
                threshold=cfg.label.threshold,
                take_profit=cfg.label.take_profit,
                stop_loss=cfg.label.stop_loss,
            ),
            feature_set=fs,
            range_text=texts,
            sentiment=cfg.sentiment.spec() if cfg.sentiment is not None else None,
        )


@dataclass(frozen=True)
class Segment:
    """Consecutive samples of one symbol in one split: ``[start, stop)`` into the split's arrays."""

    symbol: str
    start: int
    stop: int


@dataclass
class SplitWindows:
    """The samples of one split, in (symbol, time) order."""

    name: str
    ends: np.ndarray
    """int64 ``(N,)``: row of each decision bar in :attr:`WindowData.features`."""
    labels: np.ndarray
    """float32 ``(N,)``: 0.0 or 1.0."""
    asset_ids: np.ndarray
    """int64 ``(N,)``: the symbol's row in the asset map."""
    times: np.ndarray
    """int64 ``(N,)``: close time (ns since the epoch, UTC) of each decision bar."""
    segments: list[Segment]
    range_text: str = ""

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.ends.size)

    @property
    def n_pos(self) -> int:
        """Number of positive labels."""
        return int(self.labels.sum())

    @property
    def pos_rate(self) -> float:
        """Share of positive labels."""
        return self.n_pos / self.n if self.n else float("nan")

    def class_weights(self) -> tuple[float, float]:
        """``(w_neg, w_pos)`` = ``n / (2 n_class)``: both classes weigh the same in total."""
        n_pos = self.n_pos
        n_neg = self.n - n_pos
        return self.n / (2.0 * max(n_neg, 1)), self.n / (2.0 * max(n_pos, 1))

    def sample_weights(self) -> np.ndarray:
        """float64 ``(N,)``: each sample's class weight (for a WeightedRandomSampler)."""
        w_neg, w_pos = self.class_weights()
        return np.where(self.labels > 0.5, w_pos, w_neg)

    def summary(self) -> dict[str, Any]:
        """Counts and time span, for run.json and messages."""
        first = pd.Timestamp(int(self.times.min()), tz="UTC").isoformat() if self.n else None
        last = pd.Timestamp(int(self.times.max()), tz="UTC").isoformat() if self.n else None
        return {"range": self.range_text, "samples": self.n, "positives": self.n_pos,
                "pos_rate": round(self.pos_rate, 6) if self.n else None,
                "first_decision_bar": first, "last_decision_bar": last}


@dataclass
class WindowData:
    """Scaled features of every symbol stacked into one matrix, and the splits' samples."""

    features: np.ndarray
    """float32 ``(T, F)`` C-contiguous, scaled with :attr:`mean` / :attr:`std` (warm-up rows NaN)."""
    mean: np.ndarray
    std: np.ndarray
    lookback: int
    horizon: int
    purge: int
    symbols: list[str]
    asset_map: dict[str, int]
    offsets: np.ndarray
    """int64 ``(S+1,)``: symbol ``s`` owns rows ``offsets[s] .. offsets[s+1]-1``."""
    times: np.ndarray
    """int64 ``(T,)``: bar close times (ns, UTC)."""
    splits: dict[str, SplitWindows]
    spec: DatasetSpec
    data_start: str = ""
    data_end: str = ""

    @property
    def n_features(self) -> int:
        """Features per bar ``F``."""
        return int(self.features.shape[1])

    def window_view(self) -> np.ndarray:
        """Read-only strided view ``(T-L+1, L, F)``: row ``i`` is the window ending at row ``i+L-1``."""
        view = np.lib.stride_tricks.sliding_window_view(self.features, self.lookback, axis=0)
        return view.transpose(0, 2, 1)

    def windows(self, split: str) -> np.ndarray:
        """A materialised copy ``(N, L, F)`` of a split's windows (small splits, tests)."""
        return self.window_view()[self.splits[split].ends - (self.lookback - 1)]

    def segment_windows(self, split: str) -> Iterator[tuple[Segment, np.ndarray]]:
        """Each symbol's windows in *split* as a strided view ``(n, L, F)`` (no copy)."""
        view = self.window_view()
        sp = self.splits[split]
        for seg in sp.segments:
            first = int(sp.ends[seg.start]) - (self.lookback - 1)
            yield seg, view[first : first + (seg.stop - seg.start)]


def _ny_dates(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_convert(_NY).tz_localize(None).normalize().to_numpy().astype("datetime64[D]")


def _bounds(dates: np.ndarray, rng: tuple[dt.date | None, dt.date | None]) -> tuple[int, int]:
    """First and last row whose date lies in *rng* (``last < first`` when none)."""
    start, end = rng
    a = 0 if start is None else int(np.searchsorted(dates, np.datetime64(start, "D"), "left"))
    b = dates.size - 1 if end is None else int(np.searchsorted(dates, np.datetime64(end, "D"), "right")) - 1
    return a, b


def _check_finite(symbol: str, index: pd.DatetimeIndex, feats: np.ndarray, lo: int, hi: int,
                  columns: Sequence[str]) -> None:
    if hi < lo:
        return
    block = feats[lo : hi + 1]
    bad = ~np.isfinite(block)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{symbol}: feature '{columns[c]}' is {float(block[r, c])} at {index[lo + r]} (after the "
            f"feature warm-up): training needs finite features; fix or drop the bad bars "
            f"(`sigtrade ingest ... --repair`) or leave this period out of the splits"
        )


def build_windows(
    spec: DatasetSpec,
    *,
    scaler: tuple[Sequence[float], Sequence[float]] | None = None,
    asset_map: dict[str, int] | None = None,
    frames: dict[str, pd.DataFrame] | None = None,
    require: Sequence[str] = SPLITS,
) -> WindowData:
    """Read the catalog, compute features and labels, and cut purged windows per split.

    Parameters
    ----------
    spec : DatasetSpec
        Catalog, symbols, bar, lookback, ranges, purge, label, feature set.
    scaler : (mean, std), optional
        Use this scaler (e.g. a model card's) instead of fitting one on the training rows.
    asset_map : dict, optional
        Symbol -> asset id (e.g. a card's); default: the symbols in order.
    frames : dict, optional
        Bar frames per symbol to use instead of reading the catalog (tests, notebooks).
    require : sequence of str
        Splits that must hold samples of both classes; default all three.

    Raises
    ------
    DataError
        A symbol with too few bars for warm-up + lookback + horizon, non-finite features,
        a required split without samples or without one of the classes.
    """
    lookback, horizon, purge = int(spec.lookback), int(spec.label.horizon), int(spec.purge)
    if purge < horizon:
        raise ConfigError(f"purge = {purge} bars is shorter than the label horizon {horizon}")
    if frames is None:
        symbols = resolve_symbols(spec.catalog, spec.bar, spec.symbols)
        frames = {s: read_frame(spec.catalog, s, spec.bar) for s in symbols}
    else:
        symbols = list(frames) if spec.symbols == "all" else list(spec.symbols)
    amap = dict(asset_map) if asset_map is not None else {s: i for i, s in enumerate(symbols)}
    missing = [s for s in symbols if s not in amap]
    if missing:
        raise DataError(f"symbols {missing} are not in the model's asset map {sorted(amap)}")
    articles = None
    if spec.sentiment is not None:
        from research.news.aggregate import read_scored_articles  # ConfigError naming the commands

        articles = read_scored_articles(spec.catalog, spec.sentiment.model)
    warmup = warmup_bars(spec.feature_set)
    need = warmup + lookback + horizon
    columns = spec.feature_set.features
    names = list(spec.ranges)

    feats_all, times_all, offsets = [], [], [0]
    per_split: dict[str, dict[str, list[Any]]] = {n: {"ends": [], "labels": [], "ids": [], "times": [], "segs": []} for n in names}
    train_rows: list[tuple[int, int]] = []
    data_first: int | None = None
    data_last: int | None = None
    for symbol in symbols:
        frame = frames[symbol]
        if len(frame) < need:
            raise DataError(
                f"{symbol} has {len(frame)} {spec.bar} bars; one labelled window needs at least "
                f"{need} (feature warm-up {warmup} + lookback {lookback} + horizon {horizon}), "
                f"plus a purge of {purge} between splits: load more history or leave {symbol} out "
                f"of data.symbols"
            )
        frame = frame.copy(deep=False)
        frame.attrs["symbol"] = symbol
        sentiment = None
        if articles is not None and spec.sentiment is not None:
            sentiment = _sentiment(spec.sentiment, symbol, frame, articles)
        feats = feature_matrix(frame, sentiment=sentiment, feature_set=spec.feature_set)
        index = pd.DatetimeIndex(frame.index)
        close = frame["close"].to_numpy(dtype=np.float64)
        labels = make_labels(close, spec.label.kind, horizon, threshold=spec.label.threshold,
                             take_profit=spec.label.take_profit, stop_loss=spec.label.stop_loss)
        dates = _ny_dates(index)
        base = offsets[-1]
        prev_last: int | None = None
        for name in names:
            a, b = _bounds(dates, spec.ranges[name])
            if b < a:
                continue
            first = a if prev_last is None else max(a, prev_last + 1 + purge)
            first = max(first, warmup)
            prev_last = b if prev_last is None else max(prev_last, b)
            lo_end, hi_end = first + lookback - 1, b - horizon
            if hi_end < lo_end:
                continue
            _check_finite(symbol, index, feats, first, b, columns)
            ends = np.arange(lo_end, hi_end + 1, dtype=np.int64)
            bucket = per_split[name]
            bucket["segs"].append((symbol, ends.size))
            bucket["ends"].append(ends + base)
            bucket["labels"].append(labels[ends])
            bucket["ids"].append(np.full(ends.size, amap[symbol], dtype=np.int64))
            bucket["times"].append(index.asi8[ends])
            if name == names[0]:
                train_rows.append((base + lo_end - lookback + 1, base + hi_end + 1))
            touched = (index.asi8[first], index.asi8[b])
            data_first = touched[0] if data_first is None else min(data_first, touched[0])
            data_last = touched[1] if data_last is None else max(data_last, touched[1])
        feats_all.append(feats)
        times_all.append(index.asi8)
        offsets.append(base + len(frame))

    raw = np.ascontiguousarray(np.concatenate(feats_all, axis=0), dtype=np.float32)
    splits: dict[str, SplitWindows] = {}
    for name in names:
        bucket = per_split[name]
        segs, pos = [], 0
        for symbol, count in bucket["segs"]:
            segs.append(Segment(symbol, pos, pos + count))
            pos += count

        def cat(key: str, dtype: Any, bucket: dict[str, list[Any]] = bucket) -> np.ndarray:
            return np.concatenate(bucket[key]).astype(dtype) if bucket[key] else np.empty(0, dtype)

        splits[name] = SplitWindows(
            name=name, ends=cat("ends", np.int64), labels=cat("labels", np.float32),
            asset_ids=cat("ids", np.int64), times=cat("times", np.int64), segments=segs,
            range_text=spec.range_text.get(name, ""),
        )
    _check_splits(splits, spec, require, warmup, need)

    if scaler is None:
        mean, std = _fit_scaler(raw, train_rows)
    else:
        mean = np.asarray(scaler[0], dtype=np.float64)
        std = np.asarray(scaler[1], dtype=np.float64)
        std = np.where(std == 0.0, 1.0, std)
    scaled = np.ascontiguousarray(((raw - mean.astype(np.float32)) / std.astype(np.float32)), dtype=np.float32)
    return WindowData(
        features=scaled, mean=mean, std=std, lookback=lookback, horizon=horizon, purge=purge,
        symbols=list(symbols), asset_map=amap, offsets=np.asarray(offsets, dtype=np.int64),
        times=np.concatenate(times_all), splits=splits, spec=spec,
        data_start=pd.Timestamp(data_first, tz="UTC").isoformat() if data_first is not None else "",
        data_end=pd.Timestamp(data_last, tz="UTC").isoformat() if data_last is not None else "",
    )


def _sentiment(spec: SentimentSpec, symbol: str, frame: pd.DataFrame, articles: pd.DataFrame) -> pd.Series:
    """The sentiment column of *symbol*'s bars (bad news times or scores are a DataError)."""
    from research.news.aggregate import sentiment_features

    mine = symbol_articles(articles, symbol)
    if mine.empty:
        log.warning("sentiment: no scored article names %s; its sentiment column is 0", symbol)
    closes = {symbol: pd.DatetimeIndex(frame.index)}
    return sentiment_features(closes, mine, spec.half_life, spec.method, spec.prior)[symbol]


def _fit_scaler(raw: np.ndarray, rows: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float64) over the rows covered by training windows; std 0 -> 1."""
    total = np.zeros(raw.shape[1])
    sq = np.zeros(raw.shape[1])
    count = 0
    for lo, hi in rows:
        block = raw[lo:hi].astype(np.float64)
        total += block.sum(axis=0)
        count += block.shape[0]
    mean = total / max(count, 1)
    for lo, hi in rows:
        sq += ((raw[lo:hi].astype(np.float64) - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / max(count, 1))
    std[~(std > 1e-12)] = 1.0
    return mean, std


def _check_splits(splits: dict[str, SplitWindows], spec: DatasetSpec, require: Sequence[str],
                  warmup: int, need: int) -> None:
    for name in require:
        sp = splits.get(name)
        where = f"data.{name} = '{spec.range_text.get(name, '')}'" if spec.range_text else f"split '{name}'"
        if sp is None or sp.n == 0:
            raise DataError(
                f"{where} holds no complete labelled window for any symbol: inside the range "
                f"each symbol needs lookback {spec.lookback} + horizon {spec.label.horizon} bars "
                f"after the feature warm-up ({warmup} bars of history) and after a purge of "
                f"{spec.purge} bars behind the previous split; widen the range, check the "
                f"catalog's dates, or shorten data.lookback / label.horizon"
            )
        if sp.n_pos == 0 or sp.n_pos == sp.n:
            missing = "positive" if sp.n_pos == 0 else "negative"
            hint = ("lower label.threshold / label.take_profit or raise label.horizon"
                    if missing == "positive" else
                    "raise label.threshold / label.take_profit or lower label.horizon")
            raise DataError(
                f"{where} has no {missing} labels ({sp.n_pos} positive of {sp.n} windows): "
                f"a classifier cannot be trained or evaluated on one class; {hint}, or widen "
                f"the range"
            )
