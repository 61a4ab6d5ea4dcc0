"""Streaming mode of the feature pipeline: one bar at a time, for live trading."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from models.errors import ModelContractError, ModelDataError
from models.feature_set import SEED14_V1, FeatureSetSpec, require_supported, warmup_for
from models.indicators import OBV_WINDOW, assemble, indicators

logger = logging.getLogger(__name__)

_NY = ZoneInfo("America/New_York")
_NAN1 = np.full(1, np.nan)
_H, _L, _C, _V, _LOGV = range(5)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).isoformat()


class StreamingFeatures:
    """Features of one instrument, updated bar by bar, bit-identical to the batch mode.

    Each :meth:`update` appends the bar to growing numpy buffers and recomputes the last
    row with the very same TA-Lib calls and formulas as :func:`models.features.compute_features`
    on the history so far. TA-Lib is sequential, so the row equals, bit for bit, the batch
    row of that bar computed over the same bar sequence (NaN positions included). The cost
    grows with the history held: about 0.35 ms a bar with 5,000 bars held (one CPU core).

    Parameters
    ----------
    feature_set : FeatureSetSpec
        Implemented feature set (``seed14@1``); anything else raises ``FeatureSetError``.
    max_history : int
        Bars kept in memory. **Up to** ``max_history`` bars the rows are bit-identical to
        batch. **Beyond** it the oldest bars are dropped; the EMA-type indicators
        (EMA, MACD, RSI, ATR, ADX) are then re-seeded from a later first bar and the
        running sums restart, so values can differ from a batch run over the whole history
        in the last decimals (on the real hourly files with ``max_history=5000``: absolute
        differences below 1e-11; with a short history the EMA seed has not decayed and
        differences are larger). A WARNING is logged once per instance when this happens,
        and :attr:`exact` turns False. Each row then equals, bit for bit, the last batch
        row over the same trailing ``max_history`` bars. To stay exact for a session, size
        ``max_history`` above the number of bars the stream will see.

    Notes
    -----
    During the warm-up (the first :func:`models.features.warmup_bars` bars) the returned
    row has NaNs and :attr:`ready` is False; a strategy must wait until ``ready``.
    Bars must come in strictly increasing ``ts`` order with finite, positive prices and
    finite, non-negative volume; otherwise ``ModelDataError`` is raised and the bar is
    not added.
    """

    def __init__(self, feature_set: FeatureSetSpec = SEED14_V1, max_history: int = 5000) -> None:
        self.feature_set = require_supported(feature_set)
        warmup = warmup_for(self.feature_set)
        if int(max_history) <= warmup:
            raise ModelContractError(
                f"max_history must exceed the feature warm-up of {warmup} bars, got "
                f"{max_history}; use the default 5000 or at least {warmup + 1}"
            )
        self.max_history = int(max_history)
        self._buf = np.empty((5, min(256, 2 * self.max_history)), dtype=np.float64)
        self._start = 0
        self._end = 0
        self._n_bars = 0
        self._last_ts: int | None = None
        self._ready = False
        self._trim_warned = False

    @property
    def n_bars(self) -> int:
        """Bars received so far (including any dropped beyond ``max_history``)."""
        return self._n_bars

    @property
    def history_len(self) -> int:
        """Bars currently held (at most ``max_history``)."""
        return self._end - self._start

    @property
    def ready(self) -> bool:
        """True when the last row returned by :meth:`update` has no NaN."""
        return self._ready

    @property
    def exact(self) -> bool:
        """True while no bar was dropped, i.e. rows are bit-identical to batch."""
        return self._n_bars == self.history_len

    def _validate(
        self, ts: int, open_: float, high: float, low: float, close: float, volume: float
    ) -> None:
        if self._last_ts is not None and ts <= self._last_ts:
            raise ModelDataError(
                f"bar at {_iso(ts)} does not come after the previous bar at "
                f"{_iso(self._last_ts)}: streaming features need strictly increasing "
                f"timestamps; drop duplicate or late bars before update()"
            )
        for name, value in (("open", open_), ("high", high), ("low", low), ("close", close)):
            if not (math.isfinite(value) and value > 0.0):
                raise ModelDataError(
                    f"bar at {_iso(ts)} has {name}={value!r}: expected a finite price > 0; "
                    f"fix or drop the bar before update()"
                )
        if not (math.isfinite(volume) and volume >= 0.0):
            raise ModelDataError(
                f"bar at {_iso(ts)} has volume={volume!r}: expected a finite volume >= 0; "
                f"fix or drop the bar before update()"
            )

    def _append(self, high: float, low: float, close: float, volume: float) -> None:
        cap = self._buf.shape[1]
        if self._end == cap:
            held = self._end - self._start
            if self._start > 0 and held <= cap // 2:
                self._buf[:, :held] = self._buf[:, self._start : self._end]
            else:
                grown = np.empty((5, 2 * cap), dtype=np.float64)
                grown[:, :held] = self._buf[:, self._start : self._end]
                self._buf = grown
            self._start, self._end = 0, held
        col = self._buf[:, self._end]
        col[_H], col[_L], col[_C], col[_V] = high, low, close, volume
        # same ufunc on a one-element array as batch applies to the whole column
        col[_LOGV] = np.log1p(self._buf[_V, self._end : self._end + 1])[0]
        self._end += 1
        if self._end - self._start > self.max_history:
            self._start += 1
            if not self._trim_warned:
                self._trim_warned = True
                logger.warning(
                    "streaming features: history exceeded max_history=%d bars; the oldest "
                    "bars are now dropped and values may differ from a batch run in the "
                    "last decimals (EMA seeds and running sums restart). Raise max_history "
                    "to stay bit-identical.",
                    self.max_history,
                )

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
        ts = int(ts)
        o, h, lo, c, v = float(open), float(high), float(low), float(close), float(volume)
        self._validate(ts, o, h, lo, c, v)
        sent = float(sentiment)
        if math.isinf(sent):
            raise ModelDataError(
                f"bar at {_iso(ts)} has sentiment={sent!r}: expected a finite score "
                f"(NaN or 0.0 for no news)"
            )
        self._append(h, lo, c, v)
        self._last_ts = ts
        self._n_bars += 1

        s, e = self._start, self._end
        n = e - s
        buf = self._buf
        high_a, low_a, close_a = buf[_H, s:e], buf[_L, s:e], buf[_C, s:e]
        vol_a, logv_a = buf[_V, s:e], buf[_LOGV, s:e]
        full = indicators(high_a, low_a, close_a, vol_a, logv_a)
        obv_lag = full.obv[n - 1 - OBV_WINDOW : n - OBV_WINDOW] if n > OBV_WINDOW else _NAN1
        dow = datetime.fromtimestamp(ts // 1_000_000_000, tz=_NY).weekday()
        row = assemble(
            full.tail(),
            close_a[n - 1 :],
            close_a[n - 2 : n - 1] if n > 1 else _NAN1,
            close_a[n - 6 : n - 5] if n > 5 else _NAN1,
            obv_lag,
            logv_a[n - 1 :],
            np.array([dow]),
            np.array([0.0 if math.isnan(sent) else sent]),
        )[0]
        self._ready = bool(np.isfinite(row).all())
        return row
