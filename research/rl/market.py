"""What the RL environment steps through: every symbol's bars, quotes and scaled features, stacked.

:func:`build_market` reads the catalog once and prepares, for every symbol of the config:

* the **features** of the shared pipeline (:func:`research.dataset.build_windows`, hence
  :func:`models.features.feature_matrix`): computed causally over each symbol's whole
  history and z-scored with the scaler fitted on the *training split only*; the
  observation at bar ``t`` is the window of rows ``t - lookback + 1 .. t``;
* the **prices the event engine sees**: bar close, high and low as NautilusTrader
  ``Price`` values, and the execution quote of each decision bar (bid / ask as ``Price``
  values, the reference price and the fill's economic time) from the very functions the
  backtest runner and the sweep kernel use (:func:`engine.sim.fastpath.bar_prices`,
  :func:`engine.sim.fastpath.quote_prices`);
* the **ledger's mark**: the raw bar close (what :func:`engine.ledger.mark_to_market`
  marks positions at);
* in gate mode, the supervised model's batch **probability** per bar, computed exactly
  as the signal strategy's batch mode computes it;
* the **segments** of each split: per symbol, the decision bars whose feature window and
  next bar lie inside the split (the dataset's purged split rules, horizon 1), in which
  episodes are drawn.

All arrays are stacked over symbols (symbol ``s`` owns rows ``offsets[s] ..
offsets[s+1] - 1``), so the numba kernels index one flat row space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.catalog import read_frame, resolve_symbols
from engine.errors import ConfigError, DataError
from engine.sim.fastpath import bar_prices, quote_prices
from models.feature_set import FeatureSetSpec, get_feature_set
from research.config import parse_range
from research.dataset import DatasetSpec, LabelParams, build_windows
from research.rl.config import SPLITS, RLConfig

__all__ = ["Market", "Segment", "build_market", "gate_model"]


@dataclass(frozen=True)
class Segment:
    """Consecutive decision bars of one symbol inside one split (global rows, inclusive)."""

    symbol: int
    first: int
    """First decision row (its feature window is complete and inside the split)."""
    last_bar: int
    """Last bar row an episode may reach (the bar after the split's last decision)."""

    @property
    def bars(self) -> int:
        """Bars of the segment."""
        return self.last_bar - self.first + 1


@dataclass
class Market:
    """Stacked per-bar arrays of a universe (see the module docstring)."""

    symbols: list[str]
    offsets: np.ndarray
    times: np.ndarray
    features: np.ndarray
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    mark: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    ref: np.ndarray
    fill_ts: np.ndarray
    prob: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lookback: int
    feature_set: FeatureSetSpec
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    data_start: str = ""
    data_end: str = ""
    gate: dict[str, Any] | None = None
    """Gate mode: the signal model's folder, name, sha256 and thresholds; None otherwise."""

    @cached_property
    def bar_rows(self) -> np.ndarray:
        """The per-bar quotes a step reads (:data:`research.rl.env_nb.BAR_FIELDS`), one row a bar.

        Stacked once per market: every environment built on it (each validation pass, each
        traced episode) shares the array, which the kernels only read.
        """
        from research.rl.env_nb import BAR_FIELDS

        return np.ascontiguousarray(np.stack([getattr(self, f) for f in BAR_FIELDS], axis=1))

    @property
    def n_features(self) -> int:
        """Feature columns ``F``."""
        return int(self.features.shape[1])

    def symbol_of(self, row: int) -> int:
        """The symbol index owning a global row."""
        return int(np.searchsorted(self.offsets, row, side="right") - 1)

    def row_of(self, symbol: str, ts: int | pd.Timestamp) -> int:
        """The global row of *symbol*'s bar closing at *ts*."""
        s = self.symbols.index(symbol)
        t = int(pd.Timestamp(ts).value) if not isinstance(ts, int | np.integer) else int(ts)
        lo, hi = int(self.offsets[s]), int(self.offsets[s + 1])
        k = lo + int(np.searchsorted(self.times[lo:hi], t))
        if k >= hi or self.times[k] != t:
            raise DataError(f"{symbol} has no bar closing at {pd.Timestamp(t, tz='UTC')}")
        return k

    def rows_between(self, symbol: str, start: Any, end: Any) -> tuple[int, int]:
        """First and last global rows of *symbol* whose NYSE session lies in ``start .. end`` (dates)."""
        from engine.sessions import session_of

        s = self.symbols.index(symbol)
        lo, hi = int(self.offsets[s]), int(self.offsets[s + 1])
        idx = pd.DatetimeIndex(pd.to_datetime(self.times[lo:hi], utc=True))
        sess = session_of(idx, side="right")
        inside = np.ones(hi - lo, dtype=bool)
        if start is not None:
            inside &= np.asarray(sess >= pd.Timestamp(start))
        if end is not None:
            inside &= np.asarray(sess <= pd.Timestamp(end))
        if not inside.any():
            raise DataError(f"{symbol} has no bars between {start} and {end}")
        rows = np.flatnonzero(inside)
        return lo + int(rows[0]), lo + int(rows[-1])


def gate_model(cfg: RLConfig) -> Any:
    """The gate mode's signal model (a :class:`models.signal.SignalModel`), checked against the config."""
    from models.signal import load_signal_model

    path = Path(cfg.env.gate_model)
    model = load_signal_model(path, bar=cfg.data.bar)
    if len(model.models) != 1:
        raise ConfigError(f"env.gate_model = '{path}': gate mode takes one signal model, not an ensemble")
    card = model.models[0].card
    if (card.feature_set.name, card.feature_set.version) != (cfg.features.set, cfg.features.version):
        raise ConfigError(
            f"env.gate_model = '{path}': its card's feature set {card.feature_set.name}@{card.feature_set.version} "
            f"differs from features = {cfg.features.set}@{cfg.features.version}: one pipeline feeds both; "
            "set [features] to the card's"
        )
    return model


def _gate(cfg: RLConfig, frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.Series], dict[str, Any]]:
    from models.card import sha256_file
    from strategies.signal import batch_probabilities, resolve_thresholds

    model = gate_model(cfg)
    entry, exit_ = resolve_thresholds(model, cfg.env.entry_threshold, cfg.env.exit_threshold)
    if exit_ > entry:
        raise ConfigError(f"gate mode: exit threshold {exit_} is above entry threshold {entry}")
    probs = batch_probabilities(model, frames, cfg.data.catalog)
    member = model.models[0]
    info = {"model": str(Path(cfg.env.gate_model)), "name": member.name, "entry_threshold": entry,
            "exit_threshold": exit_, "onnx_sha256": sha256_file(member.path / "model.onnx")}
    return probs, info


def build_market(cfg: RLConfig, frames: dict[str, pd.DataFrame] | None = None) -> Market:
    """Read and prepare the universe of *cfg* (see the module docstring).

    Raises
    ------
    ConfigError, DataError
        Unknown symbols or feature set, too little history, a training split without any
        episode, a gate model that does not fit the config.
    """
    try:
        fs = get_feature_set(cfg.features.set, cfg.features.version)
    except Exception as exc:  # FeatureSetError: name the key
        raise ConfigError(f"features.set / features.version: {exc}") from None
    if frames is None:
        symbols = resolve_symbols(cfg.data.catalog, cfg.data.bar, cfg.data.symbols)
        frames = {s: read_frame(cfg.data.catalog, s, cfg.data.bar) for s in symbols}
    else:
        symbols = list(frames) if cfg.data.symbols == "all" else list(cfg.data.symbols)
        frames = {s: frames[s] for s in symbols}
    texts = {name: getattr(cfg.data, name) for name in SPLITS}
    spec = DatasetSpec(
        catalog=cfg.data.catalog, symbols=symbols, bar=cfg.data.bar, lookback=cfg.data.lookback,
        ranges={name: parse_range(text, f"data.{name}") for name, text in texts.items()}, purge=1,
        label=LabelParams(kind="threshold", horizon=1, threshold=0.0), feature_set=fs, range_text=texts,
    )
    data = build_windows(spec, frames=frames, require=())
    n = int(data.offsets[-1])
    arrays = {name: np.full(n, np.nan) for name in ("close", "high", "low", "mark", "bid", "ask", "ref", "prob")}
    fill_ts = np.full(n, -1, dtype=np.int64)
    env = cfg.env
    for j, s in enumerate(symbols):
        frame = frames[s]
        lo = int(data.offsets[j])
        rows = slice(lo, lo + len(frame))
        arrays["close"][rows], arrays["high"][rows], arrays["low"][rows] = bar_prices(frame, s, cfg.data.bar, env.fractional)
        arrays["mark"][rows] = frame["close"].to_numpy(dtype=np.float64)
        q, bid, ask = quote_prices(frame, s, cfg.data.bar, env.fractional, env.fill, cfg.costs.slippage_bps)
        if len(q):
            k = lo + np.searchsorted(frame.index.asi8, q["decision_ts"].to_numpy(dtype=np.int64))
            arrays["bid"][k], arrays["ask"][k] = bid, ask
            arrays["ref"][k] = q["ref"].to_numpy(dtype=np.float64)
            fill_ts[k] = q["fill_ts"].to_numpy(dtype=np.int64)
    gate = None
    if env.gate_model:
        probs, gate = _gate(cfg, frames)
        for j, s in enumerate(symbols):
            lo = int(data.offsets[j])
            arrays["prob"][lo : lo + len(frames[s])] = probs[s].reindex(frames[s].index).to_numpy(dtype=np.float64)
    segments: dict[str, list[Segment]] = {}
    for name, split in data.splits.items():
        segs = []
        for seg in split.segments:
            first = int(split.ends[seg.start])
            last_bar = int(split.ends[seg.stop - 1]) + 1
            if last_bar - first >= 2:
                segs.append(Segment(symbols.index(seg.symbol), first, last_bar))
        segments[name] = segs
    if not segments.get("train"):
        raise DataError(
            f"data.train = '{cfg.data.train}' holds no episode for any symbol: each symbol needs the feature "
            f"warm-up and lookback {cfg.data.lookback} bars inside the range; widen it or check the catalog's dates"
        )
    return Market(
        symbols=list(symbols), offsets=data.offsets, times=data.times, features=data.features,
        close=arrays["close"], high=arrays["high"], low=arrays["low"], mark=arrays["mark"], bid=arrays["bid"],
        ask=arrays["ask"], ref=arrays["ref"], fill_ts=fill_ts, prob=arrays["prob"], mean=data.mean, std=data.std,
        lookback=cfg.data.lookback, feature_set=fs, segments=segments, frames=dict(frames),
        data_start=data.data_start, data_end=data.data_end, gate=gate,
    )
