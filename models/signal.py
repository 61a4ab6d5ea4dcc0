"""The signal facade strategies use: bars in, probabilities out, batch or streaming.

:func:`load_signal_model` opens a single model folder (``card.json``) or an ensemble folder
(``ensemble.json``) as one :class:`SignalModel`:

* :meth:`SignalModel.probabilities` - batch: features of a whole bar frame, scaled with
  each member's card scaler, windows, probabilities (one pass, for backtests);
* :meth:`SignalModel.probabilities_many` - the same for a universe, optionally split
  across worker processes (one single-threaded onnxruntime session per process is the
  fastest layout for recurrent models);
* :meth:`SignalModel.stream` - a :class:`SignalStream` for a universe (paper/live trading,
  streaming backtests). Its API:

  - :meth:`SignalStream.step` ``(ts, bars (k, 5), symbols=None, *, rows=None,
    sentiment=None) -> (k,) probabilities`` - the bars of one bar time for any subset of
    the symbols: ONE numba call updates their features (O(1) state per symbol, constant
    time per bar, TA-Lib's values bit for bit at any history length), one shifts their
    scaled windows, and each member scores them in ONE onnxruntime call;
  - :meth:`SignalStream.update` (one bar of one symbol) and :meth:`SignalStream.score`
    (the latest windows, one onnxruntime call per member) - the same numbers;
  - :meth:`SignalStream.features` / :meth:`SignalStream.last_ts` / :meth:`SignalStream.n_bars`
    - the latest feature row, bar time and bar count of a symbol;
  - :meth:`SignalStream.state` / :meth:`SignalStream.restore` - versioned bytes holding the
    indicator state and the last feature rows; a restored stream continues exactly (a
    restarted paper session resumes with the values of an uninterrupted one), also with
    another model of the same feature set (windows are rebuilt with its scalers);
    :meth:`SignalStream.reset` forgets symbols.

  There is no history limit any more (the former ``max_history`` argument is gone: memory
  per symbol is fixed by the longest window, not the session length).

Streaming and batch give the same probability at the same bar (the feature pipeline is
bit-identical in both modes; onnxruntime may differ in the last float32 bits between
batch sizes: |diff| < 1e-6, pinned by tests/models/test_signal.py).

A model trained with news sentiment states in its card how the column is made
(:attr:`SignalModel.sentiment`, a :class:`~models.sentiment.SentimentSpec`); callers
build the per-bar series with :mod:`models.sentiment` (batch) or a
:class:`~models.sentiment.SentimentAccumulator` (streaming) and pass it in. Ensemble
members must agree on it.

Warm-up is a wait, not an error: the probability is NaN for the first
:attr:`SignalModel.warmup_bars` bars of a symbol (feature warm-up + lookback - 1, the
largest over members), for any window with a NaN feature, and everywhere for a history
shorter than that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from models.card import CARD_FILE
from models.ensemble import ENSEMBLE_FILE, Ensemble, load_ensemble
from models.errors import CardMismatchError, ModelContractError
from models.feature_set import FeatureSetSpec, get_feature_set
from models.features import compute_features, scale, warmup_bars
from models.incremental_nb import push_windows_nb
from models.onnx_model import OnnxSignalModel
from models.sentiment import SentimentSpec
from models.streaming import UniverseFeatures, read_state

__all__ = ["STREAM_STATE_FORMAT", "STREAM_STATE_VERSION", "SignalModel", "SignalStream", "load_signal_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Member:
    """One ONNX model with how to build its inputs from a feature-set matrix."""

    model: OnnxSignalModel
    spec: FeatureSetSpec
    columns: np.ndarray  # indices of the card's features in spec.features
    mean: np.ndarray
    std: np.ndarray
    warmup: int  # leading NaN probabilities: feature warm-up + lookback - 1

    @classmethod
    def of(cls, model: OnnxSignalModel) -> _Member:
        ref = model.card.feature_set
        spec = get_feature_set(ref.name, ref.version)
        columns = np.array([spec.features.index(f) for f in ref.features], dtype=np.intp)
        return cls(
            model=model,
            spec=spec,
            columns=columns,
            mean=np.asarray(model.card.scaler.mean, dtype=np.float32),
            std=np.asarray(model.card.scaler.std, dtype=np.float32),
            warmup=warmup_bars(spec) + model.lookback - 1,
        )

    def inputs(self, feature_rows: np.ndarray) -> np.ndarray:
        """Scaled float32 inputs from feature-set rows ``(..., F_set)`` float64."""
        return scale(feature_rows[..., self.columns], self.mean, self.std)

    def asset_id(self, symbol: str) -> int | None:
        amap = self.model.card.asset_map
        if amap is None:
            return None
        if symbol not in amap:
            known = ", ".join(sorted(amap))
            raise ModelContractError(
                f"model '{self.model.name}' has an asset embedding and does not know symbol "
                f"'{symbol}' (known: {known}); score only symbols it was trained on, or use a "
                f"model without asset ids"
            )
        return int(amap[symbol])


class SignalModel:
    """A single model or an ensemble behind one interface (see the module docstring)."""

    def __init__(
        self,
        name: str,
        bar: str,
        threshold: float,
        members: Sequence[OnnxSignalModel],
        *,
        path: Path,
        ensemble: Ensemble | None = None,
    ) -> None:
        self.name = name
        self.bar = bar
        self.threshold = float(threshold)
        self.path = path
        self.ensemble = ensemble
        self._members = [_Member.of(m) for m in members]
        self._specs: dict[tuple[str, str], FeatureSetSpec] = {
            (m.spec.name, m.spec.version): m.spec for m in self._members
        }
        self._combine: Callable[[np.ndarray], np.ndarray] = (
            ensemble.combine if ensemble is not None else (lambda probs: probs[0])
        )
        self.sentiment: SentimentSpec | None = _common_sentiment(name, members)
        """How the sentiment column is made (shared by every member), None: it stays 0."""

    # --- description ---------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"single"`` or ``"ensemble"``."""
        return "single" if self.ensemble is None else "ensemble"

    @property
    def models(self) -> list[OnnxSignalModel]:
        """The member ONNX models (one for a single model)."""
        return [m.model for m in self._members]

    @property
    def warmup_bars(self) -> int:
        """Leading bars without a probability: max over members of feature warm-up + lookback - 1."""
        return max(m.warmup for m in self._members)

    @property
    def bars_needed(self) -> int:
        """Bars of history before the first probability (``warmup_bars + 1``)."""
        return self.warmup_bars + 1

    def check_bar(self, bar: str) -> None:
        """Refuse data of another bar size than the model was trained on."""
        if bar != self.bar:
            raise CardMismatchError(
                str(self.path), "bar", repr(self.bar), f"{bar!r} (the data)",
                "score the model on the bar size it was trained on, or retrain it",
            )

    def check_symbols(self, symbols: Iterable[str]) -> None:
        """Raise ModelContractError if a member with an asset embedding does not know a symbol."""
        for symbol in symbols:
            for member in self._members:
                member.asset_id(symbol)

    # --- batch -----------------------------------------------------------------------------

    def _feature_rows(
        self, frame: pd.DataFrame, sentiment: pd.Series | None
    ) -> dict[tuple[str, str], np.ndarray]:
        return {
            key: compute_features(frame, sentiment, spec).to_numpy(dtype=np.float64)
            for key, spec in self._specs.items()
        }

    def probabilities(
        self, frame: pd.DataFrame, symbol: str, sentiment: pd.Series | None = None
    ) -> pd.Series:
        """Probability at every bar of *frame* (batch, causal: bar t uses bars <= t only).

        Parameters
        ----------
        frame : pandas.DataFrame
            Bars of *symbol*: index = bar close times (UTC), float columns ``open, high,
            low, close, volume``.
        symbol : str
            The instrument (asset id of models with an asset embedding).
        sentiment : pandas.Series, optional
            News sentiment per bar close time (0 where absent).

        Returns
        -------
        pandas.Series
            float64, same index as *frame*, named after the model; NaN for the first
            :attr:`warmup_bars` bars and wherever a window holds a NaN feature.
        """
        ids = [m.asset_id(symbol) for m in self._members]
        rows = self._feature_rows(frame, sentiment)
        n = len(frame)
        if n < self.bars_needed:
            logger.warning(
                "model '%s': %s has %d bars, fewer than the %d needed before the first "
                "probability (feature warm-up + lookback); all probabilities are NaN",
                self.name, symbol, n, self.bars_needed,
            )
        probs = np.empty((len(self._members), n), dtype=np.float64)
        for k, (member, asset_id) in enumerate(zip(self._members, ids, strict=True)):
            x = member.inputs(rows[(member.spec.name, member.spec.version)])
            p = member.model.predict_series(x, asset_id)
            p[: member.warmup] = np.nan
            probs[k] = p
        return pd.Series(self._combine(probs), index=frame.index, name=self.name)

    def probabilities_many(
        self,
        frames: Mapping[str, pd.DataFrame],
        sentiment: Mapping[str, pd.Series] | None = None,
        processes: int = 1,
    ) -> dict[str, pd.Series]:
        """:meth:`probabilities` for every symbol of *frames*, optionally in worker processes.

        With ``processes > 1`` the symbols are split across that many spawned processes,
        each with its own single-threaded session (features are computed there too).
        Results are identical to the in-process ones.
        """
        self.check_symbols(frames)
        sentiment = sentiment or {}
        if processes <= 1 or len(frames) <= 1:
            return {s: self.probabilities(f, s, sentiment.get(s)) for s, f in frames.items()}
        # worker processes score with onnxruntime's CPU provider, one thread each
        with ProcessPoolExecutor(
            max_workers=min(int(processes), len(frames)),
            mp_context=get_context("spawn"),
            initializer=_worker_init,
            initargs=(str(self.path),),
        ) as pool:
            futures = {
                s: pool.submit(_worker_score, s, f, sentiment.get(s)) for s, f in frames.items()
            }
            return {s: fut.result() for s, fut in futures.items()}

    # --- streaming -------------------------------------------------------------------------

    def stream(self, symbols: Sequence[str]) -> SignalStream:
        """A streaming scorer for *symbols* (see :class:`SignalStream`)."""
        return SignalStream(self, symbols)

    def __repr__(self) -> str:
        return (
            f"SignalModel(name={self.name!r}, kind={self.kind!r}, bar={self.bar!r}, "
            f"members={[m.model.name for m in self._members]}, warmup_bars={self.warmup_bars})"
        )


STREAM_STATE_FORMAT = "sigtrade.signal-stream"
"""The ``format`` field of a saved :class:`SignalStream` state."""
STREAM_STATE_VERSION = 1
"""Version of that layout; a state of another version is refused."""


class _StreamState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    symbols: list[str]
    n_bars: bytes
    features: dict[str, bytes]  # feature-set key -> UniverseFeatures.state()
    history: dict[str, bytes]  # feature-set key -> (S, depth, F) float64, oldest row first
    depth: dict[str, int]


class SignalStream:
    """Bar-by-bar features, windows and probabilities for a universe.

    Per feature set, one :class:`~models.streaming.UniverseFeatures` holds every symbol's
    O(1) indicator state and a ring of its last feature rows (as deep as the longest member
    lookback); per member, the latest scaled window ``(L, F)`` of every symbol sits in one
    ``(S, L, F)`` array. Two ways to feed it:

    * :meth:`step` - the bars of one bar time for any subset of the symbols: ONE kernel
      call updates their features, one numba call shifts their windows, and each member
      scores them in ONE onnxruntime call; returns their probabilities;
    * :meth:`update` - one bar of one symbol (then :meth:`score`).

    Both give the same numbers (the features are the batch features bit for bit).
    :meth:`state` / :meth:`restore` save and reload everything needed to continue exactly
    (indicator state and the feature rows the windows are rebuilt from), independent of
    the model's scaler, so a re-exported model of the same feature set can continue too.

    Parameters
    ----------
    model : SignalModel
        The model (single or ensemble).
    symbols : sequence of str
        The universe; a member with an asset embedding must know every symbol.
    """

    def __init__(self, model: SignalModel, symbols: Sequence[str]) -> None:
        symbols = list(dict.fromkeys(symbols))
        model.check_symbols(symbols)
        self.model = model
        self.symbols = symbols
        self._index = {s: i for i, s in enumerate(symbols)}
        members = model._members
        self._members = members
        self._keys = [(m.spec.name, m.spec.version) for m in members]
        self._features = {key: UniverseFeatures(symbols, spec) for key, spec in model._specs.items()}
        self._depth = {key: max(m.model.lookback for m, k in zip(members, self._keys, strict=True) if k == key)
                       for key in self._features}
        n_set = {key: spec.n_features for key, spec in model._specs.items()}
        self._history = {key: np.full((len(symbols), self._depth[key], n_set[key]), np.nan)
                         for key in self._features}
        self._windows = [
            np.full((len(symbols), m.model.lookback, m.model.n_features), np.nan, np.float32)
            for m in members
        ]
        self._ids: list[np.ndarray | None] = []
        for m in members:
            has_ids = m.model.card.has_asset_ids
            self._ids.append(np.array([m.asset_id(s) for s in symbols], np.int64) if has_ids else None)
        self._n_bars = np.zeros(len(symbols), dtype=np.int64)
        self._warmups = np.array([m.warmup for m in members], dtype=np.int64)
        self._all = np.arange(len(symbols), dtype=np.int64)
        # per member: trailing all-finite rows of each window (finite once it reaches the lookback)
        self._finite_run = [np.zeros(len(symbols), dtype=np.int64) for _ in members]
        self._scalers = [
            (m.columns.astype(np.int64), m.mean, np.where(m.std == 0.0, np.float32(1.0), m.std).astype(np.float32))
            for m in members
        ]

    # --- rows ------------------------------------------------------------------------------

    def _row(self, symbol: str) -> int:
        i = self._index.get(symbol)
        if i is None:
            raise ModelContractError(
                f"symbol '{symbol}' is not in this signal stream (streams {len(self.symbols)} "
                f"symbols: {', '.join(self.symbols[:10])}{', ...' if len(self.symbols) > 10 else ''}); "
                f"create the stream with every symbol to score"
            )
        return i

    def rows(self, symbols: Sequence[str]) -> np.ndarray:
        """Row indices of *symbols* in this stream (for :meth:`step`)."""
        return np.fromiter((self._row(s) for s in symbols), dtype=np.int64, count=len(symbols))

    def n_bars(self, symbol: str) -> int:
        """Bars received for *symbol*."""
        return int(self._n_bars[self._row(symbol)])

    def last_ts(self, symbol: str) -> int | None:
        """Close time (ns) of the last bar of *symbol*, None before its first."""
        ts = int(next(iter(self._features.values())).last_ts[self._row(symbol)])
        return None if self._n_bars[self._row(symbol)] == 0 else ts

    def features(self, symbol: str) -> np.ndarray:
        """The latest feature row of *symbol* (``(F,)`` float64 of the first member's feature set; NaN before a bar)."""
        i = self._row(symbol)
        key = self._keys[0]
        depth = self._depth[key]
        n = int(self._n_bars[i])
        return self._history[key][i, (n - 1) % depth].copy() if n else np.full(self._history[key].shape[2], np.nan)

    # --- feeding -----------------------------------------------------------------------------

    def _push(self, ts: int | np.ndarray, bars: np.ndarray, rows: np.ndarray, sentiment: np.ndarray | None) -> None:
        for key, feats in self._features.items():
            out = feats.step(ts, bars, rows, sentiment)  # validates; nothing is added on error
            depth = self._depth[key]
            self._history[key][rows, self._n_bars[rows] % depth] = out
            for windows, run, scaler, k in zip(self._windows, self._finite_run, self._scalers, self._keys,
                                               strict=True):
                if k == key:
                    push_windows_nb(windows, run, rows, out, *scaler)
        self._n_bars[rows] += 1

    def warm(self, symbol: str, ts: np.ndarray, bars: np.ndarray, sentiment: np.ndarray | None = None) -> None:
        """Add many bars of one symbol at once (history before a stream's first live bar).

        The same state, feature rows and windows as :meth:`update` bar by bar, from one
        kernel call per feature set (*ts* ns UTC, strictly increasing; *bars* ``(T, 5)``).
        """
        i = self._row(symbol)
        t_arr = np.asarray(ts, dtype=np.int64).reshape(-1)
        if t_arr.size == 0:
            return
        n_old = int(self._n_bars[i])
        dst = np.array([i], dtype=np.int64)
        for key, feats in self._features.items():
            out = feats.feed(i, t_arr, bars, sentiment)
            depth = self._depth[key]
            hist = self._history[key]
            take = min(depth, out.shape[0])
            for t in range(out.shape[0] - take, out.shape[0]):  # the last rows, at their ring slots
                hist[i, (n_old + t) % depth] = out[t]
            for member, windows, run, k in zip(self._members, self._windows, self._finite_run, self._keys,
                                               strict=True):
                if k == key:
                    lookback = windows.shape[1]
                    order = (n_old + out.shape[0] + np.arange(depth)) % depth  # oldest first
                    rows = hist[i, order][depth - lookback :]
                    windows[dst] = member.inputs(rows[None])
                    finite = np.isfinite(windows[i]).all(axis=1)[::-1]
                    run[i] = lookback if finite.all() else int(np.argmin(finite))
        self._n_bars[i] = n_old + t_arr.size

    def update(
        self,
        symbol: str,
        ts: int | datetime | pd.Timestamp,
        o: float,
        h: float,
        l: float,  # noqa: E741 - the OHLCV convention
        c: float,
        v: float,
        sentiment: float = 0.0,
    ) -> None:
        """Add one closed bar of *symbol* (``ts`` = bar close, ns since epoch UTC or tz-aware)."""
        rows = np.array([self._row(symbol)], dtype=np.int64)
        bar = np.array([[o, h, l, c, v]], dtype=np.float64)
        self._push(_to_ns(ts), bar, rows, np.array([sentiment], dtype=np.float64))

    def step(
        self,
        ts: int | datetime | pd.Timestamp | np.ndarray,
        bars: np.ndarray,
        symbols: Sequence[str] | None = None,
        *,
        rows: np.ndarray | None = None,
        sentiment: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add the bars of one bar time and return the probabilities of the symbols stepped.

        Parameters
        ----------
        ts : int, tz-aware time, or numpy.ndarray
            The bar close time (ns UTC), or one per row.
        bars : numpy.ndarray
            ``(k, 5)`` open, high, low, close, volume, one row per symbol.
        symbols : sequence of str, optional
            The symbols of the rows (every symbol, in stream order, when neither this nor
            *rows* is given).
        rows : numpy.ndarray, optional
            Their row indices (:meth:`rows`) instead of names.
        sentiment : numpy.ndarray, optional
            ``(k,)`` news sentiment per row (NaN or 0.0 = no news).

        Returns
        -------
        numpy.ndarray
            ``(k,)`` float64 probabilities (NaN in a symbol's warm-up), one onnxruntime call
            per member for all of them.
        """
        if rows is None:
            rows = self._all if symbols is None else self.rows(symbols)
        elif rows is not self._all:
            rows = np.asarray(rows, dtype=np.int64)
        stamp = ts if isinstance(ts, np.ndarray) else _to_ns(ts)
        self._push(stamp, bars, rows, sentiment)
        return self._score_rows(rows)

    # --- scoring -----------------------------------------------------------------------------

    def _score_rows(self, idx: np.ndarray) -> np.ndarray:
        whole = idx is self._all
        n_bars = self._n_bars[idx]
        probs = np.empty((len(self._members), idx.size), dtype=np.float64)
        for k, (member, windows, ids, run) in enumerate(
            zip(self._members, self._windows, self._ids, self._finite_run, strict=True)
        ):
            batch = windows if whole else windows[idx]
            p = member.model.score_prepared(batch, None if ids is None else ids[idx])
            # never a signal on NaN: a window with a non-finite value, or a symbol still warming up
            p[(run[idx] < windows.shape[1]) | (n_bars <= self._warmups[k])] = np.nan
            probs[k] = p
        return self.model._combine(probs)

    def score(self, symbols: Sequence[str] | None = None) -> dict[str, float]:
        """Probability of the latest window of each symbol (all symbols by default).

        One onnxruntime call per member scores every listed symbol. A symbol still in its
        warm-up (fewer than ``warmup_bars + 1`` bars) or with a NaN feature in its window
        gets NaN.
        """
        names = self.symbols if symbols is None else list(symbols)
        if not names:
            return {}
        idx = self._all if symbols is None else self.rows(names)
        return dict(zip(names, self._score_rows(idx).tolist(), strict=True))

    # --- state -------------------------------------------------------------------------------

    def state(self) -> bytes:
        """Everything needed to continue exactly, as versioned bytes (msgpack)."""
        history: dict[str, bytes] = {}
        for key, hist in self._history.items():
            depth = self._depth[key]
            # oldest row first: row (n - depth + j) sits at (n - depth + j) % depth
            order = (self._n_bars[:, None] + np.arange(depth)[None, :]) % depth
            history[_key(key)] = np.ascontiguousarray(np.take_along_axis(hist, order[:, :, None], axis=1)).tobytes()
        blob = _StreamState(
            format=STREAM_STATE_FORMAT, version=STREAM_STATE_VERSION, symbols=self.symbols,
            n_bars=self._n_bars.tobytes(),
            features={_key(key): feats.state() for key, feats in self._features.items()},
            history=history, depth={_key(key): d for key, d in self._depth.items()},
        )
        return msgspec.msgpack.encode(blob)

    def restore(self, data: bytes) -> list[str]:
        """Continue from a :meth:`state`: every symbol both here and in *data* resumes exactly.

        Returns the symbols restored; the others keep their state. Windows are rebuilt from
        the saved feature rows with this model's scalers.

        Raises
        ------
        ModelContractError
            *data* is not a signal-stream state, or one of another version or feature set.
        """
        what = "the saved signal-stream state"
        saved = read_state(data, _StreamState, what, STREAM_STATE_FORMAT, STREAM_STATE_VERSION, "SignalStream.state()")
        missing = [_key(k) for k in self._features if _key(k) not in saved.features]
        if missing:
            raise ModelContractError(
                f"{what} holds feature sets {sorted(saved.features)}, this model needs {', '.join(missing)}; "
                "delete the state file to start from the warm-up bars"
            )
        pairs = [(j, self._index[s]) for j, s in enumerate(saved.symbols) if s in self._index]
        if not pairs:
            return []
        src, dst = (np.array(v, dtype=np.int64) for v in zip(*pairs, strict=True))
        m = len(saved.symbols)
        n_saved = np.frombuffer(saved.n_bars, dtype=np.int64)
        if n_saved.size != m:
            raise ModelContractError(f"{what} is corrupt (bar counts of {n_saved.size} symbols for {m}); delete it")
        for key, feats in self._features.items():
            name = _key(key)
            feats.restore(saved.features[name])
            depth_saved = int(saved.depth.get(name, 0))
            n_feat = self._history[key].shape[2]
            blob = saved.history.get(name, b"")
            if len(blob) != 8 * m * depth_saved * n_feat:
                raise ModelContractError(f"{what} is corrupt (feature rows of {name}); delete it")
            rows_saved = np.frombuffer(blob, dtype=np.float64).reshape(m, depth_saved, n_feat)[src]
            depth = self._depth[key]
            keep = min(depth, depth_saved)
            hist = np.full((dst.size, depth, n_feat), np.nan)
            hist[:, depth - keep :] = rows_saved[:, depth_saved - keep :]
            n_new = n_saved[src]
            # back into ring order: the oldest of the depth rows sits at n % depth
            slot = (n_new[:, None] + np.arange(depth)[None, :]) % depth
            ring = np.empty_like(hist)
            np.put_along_axis(ring, slot[:, :, None], hist, axis=1)
            self._history[key][dst] = ring
            for member, windows, run, k in zip(self._members, self._windows, self._finite_run, self._keys,
                                               strict=True):
                if k == key:
                    lookback = windows.shape[1]
                    windows[dst] = member.inputs(hist[:, depth - lookback :])
                    finite = np.isfinite(windows[dst]).all(axis=2)  # (d, L) rows
                    run[dst] = np.argmin(np.concatenate([finite[:, ::-1], np.zeros((dst.size, 1), bool)], axis=1), axis=1)
        self._n_bars[dst] = n_saved[src]
        return [saved.symbols[j] for j, _ in pairs]

    def reset(self, symbols: Sequence[str]) -> None:
        """Forget the history of *symbols* (their next bar is a first bar)."""
        idx = self.rows(symbols)
        for key, feats in self._features.items():
            feats.reset(idx)
            self._history[key][idx] = np.nan
        for windows, run in zip(self._windows, self._finite_run, strict=True):
            windows[idx] = np.nan
            run[idx] = 0
        self._n_bars[idx] = 0


def _key(key: tuple[str, str]) -> str:
    return f"{key[0]}@{key[1]}"


def _common_sentiment(name: str, members: Sequence[OnnxSignalModel]) -> SentimentSpec | None:
    """The members' one sentiment spec; ensemble members that disagree are refused."""
    specs = {m.name: m.card.sentiment for m in members}
    distinct = set(specs.values())
    if len(distinct) > 1:
        listed = "; ".join(
            f"'{k}': {'none (trained without news)' if v is None else _describe(v)}"
            for k, v in specs.items()
        )
        raise ModelContractError(
            f"ensemble '{name}': its members compute the sentiment column differently ({listed}); "
            "one feature pipeline feeds every member, so they must share one card.sentiment - "
            "retrain the odd members with the same [sentiment] section, or ensemble only "
            "models that agree"
        )
    return next(iter(distinct))


def _describe(spec: SentimentSpec) -> str:
    return f"{spec.method}, half-life {spec.half_life}, prior {spec.prior:g}, scorer {spec.model}"


def _to_ns(ts: int | datetime | pd.Timestamp) -> int:
    if isinstance(ts, int | np.integer):
        return int(ts)
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise ModelContractError(
            f"bar timestamp {ts!r} has no timezone: pass UTC nanoseconds or a tz-aware time"
        )
    return int(stamp.value)


def load_signal_model(
    path: Path | str,
    threads: int = 1,
    providers: list[str] | tuple[str, ...] | None = None,
    bar: str | None = None,
    workers: int = 1,
) -> SignalModel:
    """Open a model folder (``card.json``) or an ensemble folder (``ensemble.json``).

    Parameters
    ----------
    path : path-like
        The folder.
    threads : int
        Intra-op threads per onnxruntime session (default 1).
    providers : list of str, optional
        onnxruntime execution providers (default CUDA when available, else CPU).
    bar : str, optional
        The data's bar size; a model trained on another one is refused.
    workers : int
        Concurrent onnxruntime runs per member (see :meth:`OnnxSignalModel.load`); with
        ``threads=1, workers=<cores>`` a universe-wide :meth:`SignalStream.score` uses
        every core.

    Raises
    ------
    ModelContractError
        Not a model folder, or any validation failure of the card(s) and graph(s).
    """
    folder = Path(path)
    if (folder / ENSEMBLE_FILE).is_file():
        ensemble = load_ensemble(folder, threads=threads, providers=providers, workers=workers)
        model = SignalModel(
            ensemble.card.name, ensemble.card.bar, ensemble.card.threshold, ensemble.members,
            path=folder, ensemble=ensemble,
        )
    elif (folder / CARD_FILE).is_file():
        single = OnnxSignalModel.load(folder, threads=threads, providers=providers,
                                        workers=workers)
        model = SignalModel(single.card.name, single.card.bar, single.card.threshold, [single],
                            path=folder)
    else:
        raise ModelContractError(
            f"{folder}: not a model folder: expected {CARD_FILE} (a model) or {ENSEMBLE_FILE} "
            f"(an ensemble){'' if folder.exists() else ' - the folder does not exist'}"
        )
    if bar is not None:
        model.check_bar(bar)
    return model


# --- worker processes for probabilities_many ----------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(path: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["model"] = load_signal_model(path, threads=1, providers=["CPUExecutionProvider"])


def _worker_score(symbol: str, frame: pd.DataFrame, sentiment: pd.Series | None) -> pd.Series:
    model: SignalModel = _WORKER["model"]
    return model.probabilities(frame, symbol, sentiment)
