"""Streaming mode of the feature pipeline: constant time per bar, one call per bar time.

Two classes over the same numba kernels (:mod:`models.incremental_nb`):

* :class:`UniverseFeatures` - a universe of symbols; :meth:`~UniverseFeatures.step`
  adds the bars of one bar time (any subset of the symbols) in ONE kernel call and
  returns their feature rows ``(k, F)``;
* :class:`StreamingFeatures` - one instrument, one bar per :meth:`~StreamingFeatures.update`
  (a one-symbol :class:`UniverseFeatures`).

Each symbol keeps O(1) state - running sums, the EMA / Wilder recurrences and ring
buffers of the last 32 values of a few series (the longest window is 20 bars) - about
2.3 KB, whatever the length of the session. A bar costs the same at the 50,000th bar as
at the 50th. The values are TA-Lib's, bit for bit, at every bar of any history: the
kernels replay TA-Lib's own arithmetic (seeds, Wilder smoothing, the re-centred running
variance of BBANDS / STDDEV, fused multiply-adds), so a row equals the batch row of
:func:`models.features.compute_features` over the whole history (pinned on every real
hourly file by ``tests/models/test_features.py``). There is no history limit and no
drift. The one condition is the TA-Lib build whose arithmetic is replayed (the C library
0.8 bundled with the ``TA-Lib`` 0.8 wheels, pinned in ``pyproject.toml``): the first
stream of a process compares both paths on a fixed series and logs a WARNING if the
installed TA-Lib computes differently (:func:`talib_agrees`).

State save / restore: :meth:`UniverseFeatures.state` returns bytes (msgpack, versioned:
:data:`STATE_FORMAT` / :data:`STATE_VERSION`, the feature set, the kernel layout and
each symbol's arrays); :meth:`UniverseFeatures.from_state` rebuilds the object and
:meth:`UniverseFeatures.restore` copies the saved symbols into an existing one (by
name; symbols the state lacks keep their state). A restored stream continues exactly as
if it had never stopped - a restarted paper session resumes with the very values of an
uninterrupted one (``tests/engine/test_paper_alpaca.py``).

Warm-up: the first :func:`models.features.warmup_bars` rows of a symbol hold NaN; the
kernels never fill a warm-up NaN with a number. Bars of a symbol must come in strictly
increasing ``ts`` order with finite, positive prices and finite, non-negative volume;
otherwise ``ModelDataError`` is raised and NO bar of the call is added.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from models.errors import ModelContractError, ModelDataError
from models.feature_set import SEED14_V1, FeatureSetSpec, require_supported, warmup_for
from models.incremental_nb import (
    E_LATE,
    E_SENTIMENT,
    E_TWICE,
    E_VALUE,
    N_RING,
    N_SLOTS,
    RING,
    checked_step_nb,
    series_nb,
)
from models.indicators import DOW_COS, DOW_SIN, N_FEATURES

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "StreamingFeatures",
    "UniverseFeatures",
    "talib_agrees",
]

logger = logging.getLogger(__name__)

STATE_FORMAT = "sigtrade.features"
"""The ``format`` field of a saved feature state."""
STATE_VERSION = 1
"""Version of the saved-state layout; a state of another version is refused."""

_S = TypeVar("_S")
_NY = ZoneInfo("America/New_York")
_NO_TS = np.iinfo(np.int64).min
_LAYOUT = [N_SLOTS, N_RING, RING]


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).isoformat()


class _Dow:
    """Weekday (Mon = 0) of the New York date of a bar close; the last date's bounds are remembered."""

    def __init__(self) -> None:
        self._lo = 0
        self._hi = 0
        self._dow = 0

    def __call__(self, ts: int) -> int:
        if self._lo <= ts < self._hi:
            return self._dow
        day = datetime.fromtimestamp(ts // 1_000_000_000, tz=_NY)
        midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
        self._lo = int(midnight.timestamp()) * 1_000_000_000
        self._hi = int((midnight + timedelta(days=1)).timestamp()) * 1_000_000_000
        self._dow = day.weekday()
        return self._dow

    def many(self, ts: np.ndarray) -> np.ndarray:
        first = int(ts[0])
        if ts.size == 1 or bool((ts == first).all()):
            return np.full(ts.size, self(first), dtype=np.int64)
        return np.array([self(int(t)) for t in ts.tolist()], dtype=np.int64)


class _State(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str
    version: int
    feature_set: str
    layout: list[int]
    symbols: list[str]
    n: bytes
    last_ts: bytes
    state: bytes
    ring: bytes


class UniverseFeatures:
    """Incremental features of a universe of symbols, one kernel call per bar time.

    Parameters
    ----------
    symbols : sequence of str
        The universe (duplicates are dropped, order kept). Rows of :meth:`step` index it.
    feature_set : FeatureSetSpec
        Implemented feature set (``seed14@1``); anything else raises ``FeatureSetError``.
    """

    def __init__(self, symbols: Sequence[str], feature_set: FeatureSetSpec = SEED14_V1) -> None:
        self.feature_set = require_supported(feature_set)
        self.symbols: list[str] = list(dict.fromkeys(str(s) for s in symbols))
        self._index = {s: i for i, s in enumerate(self.symbols)}
        n = len(self.symbols)
        self._n = np.zeros(n, dtype=np.int64)
        self._last_ts = np.full(n, _NO_TS, dtype=np.int64)
        self._st = np.zeros((n, N_SLOTS), dtype=np.float64)
        self._ring = np.zeros((n, N_RING, RING), dtype=np.float64)
        self._mark = np.zeros(n, dtype=np.int64)
        self._stamp = 0
        self._err = np.zeros(3, dtype=np.int64)
        self._all = np.arange(n, dtype=np.int64)
        self._scratch: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._warmup = warmup_for(self.feature_set)
        self._dow = _Dow()
        _check_talib_once()

    # --- description ---------------------------------------------------------------------

    def rows(self, symbols: Sequence[str]) -> np.ndarray:
        """Row indices of *symbols* (ModelContractError for one not in the universe)."""
        try:
            return np.fromiter((self._index[s] for s in symbols), dtype=np.intp, count=len(symbols))
        except KeyError as exc:
            raise ModelContractError(
                f"symbol {exc.args[0]!r} is not in this feature stream ({len(self.symbols)} symbols: "
                f"{', '.join(self.symbols[:10])}{', ...' if len(self.symbols) > 10 else ''}); create the "
                f"stream with every symbol it will see"
            ) from None

    @property
    def n_bars(self) -> np.ndarray:
        """Bars received per symbol (a copy, universe order)."""
        return self._n.copy()

    @property
    def last_ts(self) -> np.ndarray:
        """Close time (ns) of each symbol's last bar; ``int64`` minimum before the first (a copy)."""
        return self._last_ts.copy()

    def ready(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Per symbol: True once its rows are past the warm-up (no NaN from then on)."""
        n = self._n if rows is None else self._n[rows]
        return n > self._warmup

    # --- the step ------------------------------------------------------------------------

    def step(
        self,
        ts: int | np.ndarray,
        bars: np.ndarray,
        rows: np.ndarray | Sequence[int] | None = None,
        sentiment: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add one bar for each of *rows* (all symbols when None) and return their feature rows.

        Parameters
        ----------
        ts : int or numpy.ndarray
            Bar close time(s), ns since the epoch UTC: one for all, or one per row.
        bars : numpy.ndarray
            ``(k, 5)`` float: open, high, low, close, volume per row.
        rows : array of int, optional
            Distinct row indices (:meth:`rows`) of the symbols stepped; None: every symbol,
            in universe order.
        sentiment : numpy.ndarray, optional
            ``(k,)`` news sentiment per row; NaN = no news (0.0). None: all 0.0.

        Returns
        -------
        numpy.ndarray
            ``(k, F)`` float64 feature rows (NaN in each symbol's warm-up).

        Raises
        ------
        ModelDataError
            A bar that does not come after the symbol's previous one, a non-finite or
            non-positive price, a negative volume, an infinite sentiment, a symbol twice.
            Nothing of the call is added.
        """
        idx = self._all if rows is None else np.asarray(rows, dtype=np.int64)
        k = idx.size
        b = np.asarray(bars, dtype=np.float64)
        if b.shape != (k, 5):
            raise ModelContractError(
                f"bars must have shape ({k}, 5) (open, high, low, close, volume per row), found {b.shape}"
            )
        scratch = self._scratch.get(k)
        if scratch is None:
            if len(self._scratch) > 64:
                self._scratch.clear()
            scratch = self._scratch[k] = (np.empty(k, np.int64), np.empty(k, np.int64), np.zeros(k),
                                          np.empty((2, k)))
        t_arr, dow, zeros, ratios = scratch
        if isinstance(ts, int | np.integer):
            stamp = int(ts)
            t_arr.fill(stamp)
            dow.fill(self._dow(stamp))
        else:
            t_arr = np.asarray(ts, dtype=np.int64).reshape(-1)
            if t_arr.size != k:
                raise ModelContractError(f"ts must be one time or {k} times, found {t_arr.size}")
            dow = self._dow.many(t_arr) if k else t_arr
        if sentiment is None:
            sent = zeros
        else:
            sent = np.ascontiguousarray(sentiment, dtype=np.float64).reshape(-1)
            if sent.size != k:
                raise ModelContractError(f"sentiment must have {k} values (one per row), found {sent.size}")
        out = np.empty((k, N_FEATURES), dtype=np.float64)
        if k == 0:
            return out
        if not b.flags.c_contiguous:
            b = np.ascontiguousarray(b)
        with np.errstate(divide="ignore", invalid="ignore"):  # a bad volume is refused just below
            log_volume = np.log1p(b[:, 4])  # the ufunc batch mode applies to the volume column
        self._stamp += 1
        if not checked_step_nb(idx, t_arr, b, log_volume, dow, sent, self._n, self._last_ts, self._st, self._ring,
                               self._mark, self._stamp, DOW_SIN, DOW_COS, out, ratios, self._err):
            self._raise(idx, t_arr, b, sent)
        np.log(ratios, out=ratios)  # numpy's log, as batch mode applies it (element-wise: same bits)
        out[:, 14:16] = ratios.T
        return out

    def _raise(self, idx: np.ndarray, ts: np.ndarray, bars: np.ndarray, sent: np.ndarray) -> None:
        code, j, col = (int(v) for v in self._err)
        if code == E_VALUE and col < 0:
            raise ModelContractError(f"rows must lie in 0..{len(self.symbols) - 1}, found {int(idx[j])}")
        symbol, when = self.symbols[int(idx[j])], _iso(int(ts[j]))
        if code == E_TWICE:
            raise ModelDataError(f"symbol {symbol} appears twice in one step: one bar per symbol and bar time")
        if code == E_LATE:
            raise ModelDataError(
                f"{symbol}: bar at {when} does not come after its previous bar at "
                f"{_iso(int(self._last_ts[int(idx[j])]))}: streaming features need strictly increasing "
                f"timestamps; drop duplicate or late bars before the update"
            )
        if code == E_VALUE:
            name = ("open", "high", "low", "close", "volume")[col]
            want = "a finite volume >= 0" if col == 4 else "a finite price > 0"
            raise ModelDataError(
                f"{symbol}: bar at {when} has {name}={float(bars[j, col])!r}: expected {want}; fix or drop "
                f"the bar before the update"
            )
        raise ModelDataError(
            f"{symbol}: bar at {when} has sentiment={float(sent[j])!r}: expected a finite score (NaN or 0.0 "
            f"for no news)"
        )

    def feed(self, row: int, ts: np.ndarray, bars: np.ndarray, sentiment: np.ndarray | None = None) -> np.ndarray:
        """Add many bars of ONE symbol (a warm-up from history) in one kernel call; return their rows ``(T, F)``.

        The same numbers as :meth:`step` bar by bar. *ts* must increase strictly and come
        after the symbol's last bar; the checks of :meth:`step` apply (nothing is added on
        error).
        """
        t_arr = np.ascontiguousarray(ts, dtype=np.int64).reshape(-1)
        b = np.ascontiguousarray(bars, dtype=np.float64)
        n = t_arr.size
        if b.shape != (n, 5):
            raise ModelContractError(f"bars must have shape ({n}, 5), found {b.shape}")
        sent = np.zeros(n) if sentiment is None else np.ascontiguousarray(sentiment, dtype=np.float64).reshape(-1)
        out = np.empty((n, N_FEATURES), dtype=np.float64)
        if n == 0:
            return out
        r = int(row)
        if not 0 <= r < len(self.symbols):
            raise ModelContractError(f"row must lie in 0..{len(self.symbols) - 1}, found {r}")
        steps = np.diff(t_arr)
        if (steps <= 0).any() or t_arr[0] <= self._last_ts[r]:
            j = int(np.argmax(steps <= 0)) + 1 if (steps <= 0).any() else 0
            prev = int(t_arr[j - 1]) if j else int(self._last_ts[r])
            raise ModelDataError(
                f"{self.symbols[r]}: bar at {_iso(int(t_arr[j]))} does not come after the bar at {_iso(prev)}: "
                "streaming features need strictly increasing timestamps"
            )
        good = np.isfinite(b) & np.concatenate([b[:, :4] > 0.0, b[:, 4:] >= 0.0], axis=1)
        if not good.all() or np.isinf(sent).any():
            self._err[:] = (E_VALUE, 0, 0)
            if not good.all():
                j, col = (int(v) for v in np.argwhere(~good)[0])
                self._err[:] = (E_VALUE, j, col)
            else:
                self._err[:] = (E_SENTIMENT, int(np.argmax(np.isinf(sent))), -1)
            self._raise(np.full(n, r, dtype=np.int64), t_arr, b, sent)
        dow = self._dow.many(t_arr)
        log_volume = np.log1p(b[:, 4])
        ratios = np.empty((2, n))
        series_nb(r, t_arr, b, log_volume, dow, sent, self._n, self._last_ts, self._st, self._ring, DOW_SIN,
                  DOW_COS, out, ratios)
        np.log(ratios, out=ratios)
        out[:, 14:16] = ratios.T
        return out

    def reset(self, rows: np.ndarray | Sequence[int]) -> None:
        """Forget the history of *rows* (their next bar is a first bar)."""
        idx = np.asarray(rows, dtype=np.int64)
        self._n[idx] = 0
        self._last_ts[idx] = _NO_TS
        self._st[idx] = 0.0
        self._ring[idx] = 0.0

    # --- state ---------------------------------------------------------------------------

    def state(self, rows: np.ndarray | Sequence[int] | None = None) -> bytes:
        """The state of *rows* (every symbol by default) as versioned bytes (see the module docstring)."""
        idx = np.arange(len(self.symbols)) if rows is None else np.asarray(rows, dtype=np.int64)
        blob = _State(
            format=STATE_FORMAT, version=STATE_VERSION, feature_set=self.feature_set.key, layout=_LAYOUT,
            symbols=[self.symbols[int(i)] for i in idx],
            n=self._n[idx].tobytes(), last_ts=self._last_ts[idx].tobytes(),
            state=np.ascontiguousarray(self._st[idx]).tobytes(),
            ring=np.ascontiguousarray(self._ring[idx]).tobytes(),
        )
        return msgspec.msgpack.encode(blob)

    @classmethod
    def from_state(cls, data: bytes, feature_set: FeatureSetSpec = SEED14_V1) -> UniverseFeatures:
        """A stream over the saved symbols, continuing exactly where the saved one stood."""
        saved = _decode_state(data, feature_set)
        out = cls(saved.symbols, feature_set)
        out._load(saved, np.arange(len(saved.symbols)), np.arange(len(saved.symbols)))
        return out

    def restore(self, data: bytes) -> list[str]:
        """Copy the saved state of every symbol both here and in *data*; return those symbols.

        Symbols of this universe that the state lacks keep their current state; saved
        symbols not in this universe are ignored.

        Raises
        ------
        ModelContractError
            *data* is not a feature state, or one of another version, feature set or
            kernel layout (the message says which and what to do).
        """
        saved = _decode_state(data, self.feature_set)
        pairs = [(j, self._index[s]) for j, s in enumerate(saved.symbols) if s in self._index]
        if pairs:
            src, dst = (np.array(v, dtype=np.int64) for v in zip(*pairs, strict=True))
            self._load(saved, src, dst)
        return [saved.symbols[j] for j, _ in pairs]

    def _load(self, saved: _State, src: np.ndarray, dst: np.ndarray) -> None:
        m = len(saved.symbols)
        self._n[dst] = np.frombuffer(saved.n, dtype=np.int64)[src]
        self._last_ts[dst] = np.frombuffer(saved.last_ts, dtype=np.int64)[src]
        self._st[dst] = np.frombuffer(saved.state, dtype=np.float64).reshape(m, N_SLOTS)[src]
        self._ring[dst] = np.frombuffer(saved.ring, dtype=np.float64).reshape(m, N_RING, RING)[src]

    def __repr__(self) -> str:
        return f"UniverseFeatures({len(self.symbols)} symbols, feature_set={self.feature_set.key!r})"


def read_state(data: bytes, kind: type[_S], what: str, fmt: str, version: int, maker: str) -> _S:
    """Decode saved-state bytes of msgspec type *kind*; refuse unreadable bytes and other formats or versions.

    The messages name *what* was read, the bytes expected (*maker*) and what to do.
    """
    try:
        saved = msgspec.msgpack.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ModelContractError(
            f"{what} is not readable ({exc}): expected the bytes of {maker}; delete the state file to start "
            "the features from the warm-up bars"
        ) from None
    found = (getattr(saved, "format", None), getattr(saved, "version", None))
    if found != (fmt, version):
        raise ModelContractError(
            f"{what} is format {found[0]!r} version {found[1]}, this sigtrade reads {fmt!r} version {version}; "
            "delete the state file to start from the warm-up bars"
        )
    return saved


def _decode_state(data: bytes, feature_set: FeatureSetSpec) -> _State:
    what = "the saved feature state"
    saved = read_state(data, _State, what, STATE_FORMAT, STATE_VERSION, "UniverseFeatures.state()")
    spec = require_supported(feature_set)
    if saved.feature_set != spec.key or list(saved.layout) != _LAYOUT:
        raise ModelContractError(
            f"{what} is for feature set {saved.feature_set} (kernel layout {saved.layout}), this stream "
            f"computes {spec.key} (layout {_LAYOUT}); delete the state file to start from the warm-up bars"
        )
    m = len(saved.symbols)
    sizes = {"n": (saved.n, 8 * m), "last_ts": (saved.last_ts, 8 * m), "state": (saved.state, 8 * m * N_SLOTS),
             "ring": (saved.ring, 8 * m * N_RING * RING)}
    for name, (blob, size) in sizes.items():
        if len(blob) != size:
            raise ModelContractError(
                f"{what} is truncated or corrupt ({name}: {len(blob)} bytes for {m} symbols, expected {size}); "
                "delete the state file to start from the warm-up bars"
            )
    return saved


class StreamingFeatures:
    """Features of one instrument, bar by bar, bit-identical to the batch mode at any history length.

    A one-symbol :class:`UniverseFeatures`: constant time and memory per bar (see the
    module docstring).

    Parameters
    ----------
    feature_set : FeatureSetSpec
        Implemented feature set (``seed14@1``); anything else raises ``FeatureSetError``.

    Notes
    -----
    During the warm-up (the first :func:`models.features.warmup_bars` bars) the returned
    row has NaNs and :attr:`ready` is False; a strategy must wait until ``ready``.
    Bars must come in strictly increasing ``ts`` order with finite, positive prices and
    finite, non-negative volume; otherwise ``ModelDataError`` is raised and the bar is
    not added.
    """

    def __init__(self, feature_set: FeatureSetSpec = SEED14_V1) -> None:
        self._u = UniverseFeatures(["_"], feature_set)
        self.feature_set = self._u.feature_set
        self._ready = False
        self._bar = np.empty((1, 5), dtype=np.float64)
        self._sent = np.zeros(1, dtype=np.float64)

    @property
    def n_bars(self) -> int:
        """Bars received so far."""
        return int(self._u._n[0])

    @property
    def ready(self) -> bool:
        """True when the last row returned by :meth:`update` has no NaN."""
        return self._ready

    def update(
        self,
        ts: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        sentiment: float = 0.0,
    ) -> np.ndarray:
        """Add one bar and return its feature row.

        Parameters
        ----------
        ts : int
            Bar close time, nanoseconds since the epoch, UTC.
        open, high, low, close, volume : float
            The bar.
        sentiment : float
            News sentiment for this bar; NaN is treated as absent (0.0).

        Returns
        -------
        numpy.ndarray
            Shape ``(F,)``, float64; NaN in the warm-up.
        """
        bar = self._bar
        bar[0, 0], bar[0, 1], bar[0, 2], bar[0, 3], bar[0, 4] = open, high, low, close, volume
        self._sent[0] = sentiment
        row = self._u.step(int(ts), bar, _ROW0, self._sent)[0]
        self._ready = bool(np.isfinite(row).all())
        return row

    def state(self) -> bytes:
        """The state as versioned bytes (:meth:`UniverseFeatures.state`)."""
        return self._u.state()

    @classmethod
    def from_state(cls, data: bytes, feature_set: FeatureSetSpec = SEED14_V1) -> StreamingFeatures:
        """Continue from a state saved by :meth:`state`."""
        out = cls(feature_set)
        saved = _decode_state(data, feature_set)
        if len(saved.symbols) != 1:
            raise ModelContractError(
                f"the saved feature state holds {len(saved.symbols)} symbols; StreamingFeatures restores one "
                f"(use UniverseFeatures.from_state)"
            )
        out._u._load(saved, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
        out._ready = bool(out._u.ready()[0])
        return out


_ROW0 = np.zeros(1, dtype=np.int64)

# --- the TA-Lib check -------------------------------------------------------------------------

_TALIB: dict[str, Any] = {}


def talib_agrees() -> tuple[bool, float]:
    """Whether the installed TA-Lib computes what the kernels replay, and the largest relative gap.

    Compares :func:`models.features.compute_features` with the kernels on a fixed 600-bar
    series (computed once per process).
    """
    if "result" not in _TALIB:
        _TALIB["result"] = _compare_with_talib()
    result: tuple[bool, float] = _TALIB["result"]
    return result


def _check_talib_once() -> None:
    if "result" in _TALIB:
        return
    same, gap = talib_agrees()
    if not same:
        import talib  # type: ignore[import-untyped]

        logger.warning(
            "the installed TA-Lib (%s, C library %s) computes the seed14 indicators differently from the "
            "TA-Lib 0.8 arithmetic the streaming features replay (largest relative gap %.1e on a test "
            "series): streaming and batch values then differ in the last digits; install the TA-Lib version "
            "pinned in pyproject.toml",
            getattr(talib, "__version__", "?"), getattr(talib, "__ta_version__", b"?").decode(errors="replace"),
            gap,
        )


def _compare_with_talib() -> tuple[bool, float]:
    import pandas as pd

    from models.features import compute_features

    n = 600
    rng = np.random.default_rng(20240611)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.005, n)) * close
    volume = rng.integers(0, 5_000, n).astype(np.float64)
    close[300:330] = close[300]  # a flat stretch: the zero tests
    open_[301:330] = close[300]
    spread[300:330] = 0.0
    volume[300:330] = 0.0
    bars = np.column_stack([open_, np.maximum(open_, close) + spread, np.minimum(open_, close) - spread, close, volume])
    index = pd.date_range("2024-01-02 15:00", periods=n, freq="h", tz="UTC")
    frame = pd.DataFrame(bars, index=index, columns=["open", "high", "low", "close", "volume"])
    want = compute_features(frame).to_numpy()
    got = np.empty((n, N_FEATURES))
    ratios = np.empty((2, n))
    dow = index.tz_convert("America/New_York").dayofweek.to_numpy().astype(np.int64)
    series_nb(0, index.asi8.astype(np.int64), np.ascontiguousarray(bars), np.log1p(volume), dow, np.zeros(n),
              np.zeros(1, np.int64), np.full(1, _NO_TS), np.zeros((1, N_SLOTS)), np.zeros((1, N_RING, RING)),
              DOW_SIN, DOW_COS, got, ratios)
    got[:, 14] = np.log(ratios[0])
    got[:, 15] = np.log(ratios[1])
    same = bool(((got == want) | (np.isnan(got) & np.isnan(want))).all())
    both = np.isfinite(got) & np.isfinite(want)
    gap = float(np.max(np.abs(got[both] - want[both]) / np.maximum(np.abs(want[both]), 1e-300), initial=0.0))
    if not same and math.isfinite(gap) and gap == 0.0:
        gap = math.inf  # NaN positions differ
    return same, gap
