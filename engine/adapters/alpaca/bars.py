"""Bars for live trading: REST warm-up and back-fill, and minute bars aggregated to the strategy's bar.

Alpaca streams *minute* bars only. :class:`MinuteAggregator` builds the strategy's bars
(``N-MINUTE``, ``N-HOUR``, ``1-DAY``) from them on the same grid as Alpaca's REST bars
that :func:`engine.adapters.alpaca.historical.ingest_alpaca` puts in a catalog: buckets
aligned on the clock (``10:00``, ``11:00`` ... for ``1-HOUR``; the session for ``1-DAY``),
kept only when the bucket *starts* inside an NYSE regular session (so the ``09:00``
hourly bucket, which holds the 09:30-10:00 minutes, is dropped here as ingest drops
Alpaca's ``09:00`` hourly bar), closing at ``min(start + length, session close)``
(:func:`engine.sessions.bar_closes`). A model trained on an Alpaca catalog therefore sees
the same bars live.

A bucket is complete - and emitted - when time has passed its close: when a minute bar
of a later bucket arrives for *any* symbol of the universe (the universe shares one
calendar), or, for the last bucket of a session (no later minute comes until tomorrow),
when the wall clock passes ``close + flush_delay`` (:meth:`MinuteAggregator.flush_due`).
Minutes are deduplicated per symbol by their start time, so a minute seen on the stream
and again in a REST back-fill counts once; a minute for a bucket already emitted is late
and dropped with a warning (the bar went out without it; the record says so).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine import sessions
from engine.adapters.alpaca.streams import utc_ns
from engine.config import bar_minutes

log = logging.getLogger(__name__)

NEW_YORK = "America/New_York"


@dataclass
class _Bucket:
    start: int
    close: int
    open: float
    high: float
    low: float
    last: float
    volume: float


@dataclass(frozen=True)
class LiveBar:
    """One completed bar of one symbol: ``ts`` is its close (ns, UTC)."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def bucket_of(start: pd.Timestamp, minutes: int) -> tuple[int, int] | None:
    """``(bucket start ns, bucket close ns)`` of the minute starting at *start*, or None outside a kept bucket."""
    ts = pd.Timestamp(start).tz_convert("UTC")
    if minutes >= 390:
        sess = sessions.session_of(pd.DatetimeIndex([ts]), side="left")[0]
        if pd.isna(sess):
            return None
        sched = sessions.calendar().schedule.loc[sess]
        return int(sched["open"].value), int(sched["close"].value)
    local = ts.tz_convert(NEW_YORK)
    midnight = local.normalize()
    offset = int((local - midnight) / pd.Timedelta(minutes=1)) // minutes * minutes
    b_start = (midnight + pd.Timedelta(minutes=offset)).tz_convert("UTC")
    closes = sessions.bar_closes(pd.DatetimeIndex([b_start]), minutes)
    if pd.isna(closes[0]):
        return None
    close = closes[0]
    if ts >= close:  # a minute after the session close inside the bucket's clock span
        return None
    return int(b_start.value), int(close.value)


@dataclass
class MinuteAggregator:
    """Minute bars in, completed strategy bars out (see the module docstring).

    Parameters
    ----------
    symbols
        The universe, in the order bars of one close time are emitted (the backtest's order).
    bar
        The strategy's bar size, e.g. ``"1-HOUR"``.
    """

    symbols: Sequence[str]
    bar: str
    minutes: int = field(init=False)
    emitted_close: int = -1
    """Close (ns) of the last emitted bucket; minutes of buckets up to it are late."""
    last_minute: dict[str, int] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0
    _pending: dict[str, _Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.minutes = bar_minutes(self.bar)
        self.symbols = list(self.symbols)

    def start_after(self, close_ns: int) -> None:
        """Bars up to *close_ns* are already known (REST warm-up): ignore minutes of them."""
        self.emitted_close = max(self.emitted_close, int(close_ns))

    def add(self, symbol: str, start: pd.Timestamp, o: float, h: float, lo: float, c: float, v: float) -> list[LiveBar]:
        """Feed one minute bar (``start`` = its start time); returns the bars it completed."""
        t = int(pd.Timestamp(start).tz_convert("UTC").value)
        if t <= self.last_minute.get(symbol, -1):
            self.duplicates += 1
            return []
        self.last_minute[symbol] = t
        out = self.flush_before(t)
        bucket = bucket_of(pd.Timestamp(t, tz="UTC"), self.minutes)
        if bucket is None:
            return out  # extended hours: not part of any kept bar (as in ingest)
        b_start, b_close = bucket
        if b_close <= self.emitted_close:
            self.late += 1
            log.warning("%s: minute bar %s arrived after its bar (close %s) was emitted; dropped",
                        symbol, pd.Timestamp(t, tz="UTC"), pd.Timestamp(b_close, tz="UTC"))
            return out
        cur = self._pending.get(symbol)
        if cur is None or cur.start != b_start:
            self._pending[symbol] = _Bucket(b_start, b_close, float(o), float(h), float(lo), float(c), float(v))
        else:
            cur.high = max(cur.high, float(h))
            cur.low = min(cur.low, float(lo))
            cur.last = float(c)
            cur.volume += float(v)
        return out

    def flush_before(self, t_ns: int) -> list[LiveBar]:
        """Emit every pending bucket whose close is at or before *t_ns* (time has moved past it)."""
        due = sorted({b.close for b in self._pending.values() if b.close <= t_ns})
        out: list[LiveBar] = []
        for close in due:
            for s in self.symbols:
                b = self._pending.get(s)
                if b is not None and b.close == close:
                    out.append(LiveBar(s, close, b.open, b.high, b.low, b.last, b.volume))
                    del self._pending[s]
            self.emitted_close = max(self.emitted_close, close)
        return out

    def flush_due(self, now_ns: int, delay_ns: int, since_ns: int) -> list[LiveBar]:
        """Wall-clock flush: buckets closing after *since_ns* whose ``close + delay`` has passed."""
        ready = [b.close for b in self._pending.values() if since_ns < b.close and b.close + delay_ns <= now_ns]
        return self.flush_before(max(ready)) if ready else []


def frames_from_bars(bars: Iterable[LiveBar]) -> dict[str, pd.DataFrame]:
    """Completed bars -> per-symbol OHLCV frames indexed by close (catalog shape)."""
    rows: dict[str, list[LiveBar]] = {}
    for b in bars:
        rows.setdefault(b.symbol, []).append(b)
    out: dict[str, pd.DataFrame] = {}
    for s, items in rows.items():
        out[s] = pd.DataFrame(
            {
                "open": [b.open for b in items],
                "high": [b.high for b in items],
                "low": [b.low for b in items],
                "close": [b.close for b in items],
                "volume": [b.volume for b in items],
            },
            index=pd.DatetimeIndex(pd.to_datetime([b.ts for b in items], utc=True), name="ts"),
        )
    return out


def rest_frames(
    client: Any, symbols: Sequence[str], bar: str, start: pd.Timestamp, end: pd.Timestamp, feed: str, adjustment: str,
) -> dict[str, pd.DataFrame]:
    """Bars of *symbols* from Alpaca REST between *start* and *end*, converted exactly as ingest converts them.

    Returns per-symbol frames indexed by close; only bars whose close is at or before *end*
    (complete bars) are kept. Symbols without bars are absent.
    """
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    from engine.adapters.alpaca.historical import timeframe_of, to_raw_bars
    from engine.ingest.validate import validate

    minutes = bar_minutes(bar)
    amount, unit = timeframe_of(bar)
    request = StockBarsRequest(
        symbol_or_symbols=list(symbols), timeframe=TimeFrame(amount, TimeFrameUnit(unit)),
        start=start.floor("us").to_pydatetime(), end=end.floor("us").to_pydatetime(), feed=feed, adjustment=adjustment,
    )
    data = client.get_stock_bars(request)
    out: dict[str, pd.DataFrame] = {}
    for s in symbols:
        bars = list(data.get(s, [])) if isinstance(data, dict) else []
        if not bars:
            continue
        raw, _ = to_raw_bars(s, bars, minutes)
        if raw.values.empty:
            continue
        frame = validate(raw, bar, repair=False).frame  # repair would drop the (unfinished) last session
        frame = frame.loc[frame.index <= end]
        if len(frame):
            out[s] = frame[["open", "high", "low", "close", "volume"]]
    return out


def rest_minutes(client: Any, symbols: Sequence[str], start: pd.Timestamp, feed: str, adjustment: str) -> list[tuple[str, pd.Timestamp, float, float, float, float, float]]:
    """Minute bars from *start* (their start time, inclusive) to now, for back-fill: ``(symbol, start, o, h, l, c, v)`` in time order."""
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    request = StockBarsRequest(
        symbol_or_symbols=list(symbols), timeframe=TimeFrame(1, TimeFrameUnit.Minute),
        start=start.to_pydatetime(), feed=feed, adjustment=adjustment,
    )
    data = client.get_stock_bars(request)
    rows: list[tuple[str, pd.Timestamp, float, float, float, float, float]] = []
    for s in symbols:
        for b in (data.get(s, []) if isinstance(data, dict) else []):
            rows.append((s, pd.Timestamp(utc_ns(b["t"]), tz="UTC"),
                         float(b["o"]), float(b["h"]), float(b["l"]), float(b["c"]), float(b["v"])))
    order = {s: i for i, s in enumerate(symbols)}
    rows.sort(key=lambda r: (r[1].value, order[r[0]]))
    return rows


def warmup_start(end: pd.Timestamp, bar: str, n_bars: int) -> pd.Timestamp:
    """A start time early enough for *n_bars* complete bars before *end* (sessions counted on the calendar)."""
    minutes = bar_minutes(bar)
    per_session = max(1, 390 // min(minutes, 390))
    n_sessions = int(np.ceil(n_bars / per_session)) + 2
    sched = sessions.calendar().schedule
    opens = sched["open"]
    opens = opens[opens <= end]
    if opens.empty:
        return end - pd.Timedelta(days=7)
    return pd.Timestamp(opens.iloc[max(0, len(opens) - n_sessions)]).tz_convert("UTC")
