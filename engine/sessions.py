"""The NYSE session calendar (exchange_calendars ``XNYS``) and bar-time conversions.

Vendors label a bar by its *start*; NautilusTrader's ``ts_event`` (and sigtrade's bar
frames) label it by its *close*. A bar ends at ``start + length`` or at the session's
close, whichever comes first, so IBKR's 09:30-10:00 half-hour bar, yfinance's 15:30-16:00
bar and bars on early-close days all get their true close time.
"""

from __future__ import annotations

import functools

import exchange_calendars as xc
import numpy as np
import pandas as pd

from engine.errors import DataError

CALENDAR_NAME = "XNYS"
_CAL_START = "1990-01-02"


@functools.cache
def calendar() -> xc.ExchangeCalendar:
    """Return the cached NYSE calendar."""
    return xc.get_calendar(CALENDAR_NAME, start=_CAL_START)


def schedule(start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Sessions between two dates (inclusive) with UTC ``open`` and ``close`` columns."""
    sched = calendar().schedule.loc[:, ["open", "close"]]
    if start is not None:
        sched = sched.loc[pd.Timestamp(start).tz_localize(None).normalize() :]
    if end is not None:
        sched = sched.loc[: pd.Timestamp(end).tz_localize(None).normalize()]
    return sched


def _check_range(ts: pd.DatetimeIndex) -> None:
    cal = calendar()
    if len(ts) and (ts.min() < cal.first_minute or ts.max() > cal.last_minute):
        raise DataError(
            f"timestamps {ts.min()} .. {ts.max()} fall outside the NYSE calendar's range "
            f"{cal.first_minute} .. {cal.last_minute}"
        )


def session_of(ts: pd.DatetimeIndex, *, side: str = "left") -> pd.DatetimeIndex:
    """Return the session label (naive date) of the session each UTC time falls in.

    ``side="left"`` maps a time in ``[open, close)`` to its session (use for bar starts);
    ``side="right"`` maps ``(open, close]`` (use for bar closes). Times outside every
    session give NaT.
    """
    _check_range(ts)
    sched = calendar().schedule
    opens = sched["open"].to_numpy(dtype="datetime64[ns]").astype("int64")
    closes = sched["close"].to_numpy(dtype="datetime64[ns]").astype("int64")
    t = ts.tz_convert("UTC").asi8 if ts.tz is not None else ts.asi8
    i = np.searchsorted(opens, t, side="right" if side == "left" else "left") - 1
    valid = i >= 0
    i_safe = np.where(valid, i, 0)
    if side == "left":
        inside = valid & (t >= opens[i_safe]) & (t < closes[i_safe])
    else:
        inside = valid & (t > opens[i_safe]) & (t <= closes[i_safe])
    labels = sched.index.to_numpy()[i_safe]
    out = pd.DatetimeIndex(np.where(inside, labels, np.datetime64("NaT")))
    return out


def bar_closes(starts: pd.DatetimeIndex, bar_minutes: int) -> pd.DatetimeIndex:
    """Map vendor bar *start* times (UTC, sorted) to bar *close* times.

    An intraday bar closes at the earliest of ``start + length``, the next bar's start in
    the same session (IBKR's first hourly bar is 09:30-10:00 because the next one starts
    at 10:00) and the session's close (yfinance's 15:30 bar, early closes). Daily bars
    (``bar_minutes >= 390``) close at their session's close; the start's New York date
    names the session. Starts outside any session give NaT.
    """
    sched = calendar().schedule
    if bar_minutes >= 390:
        dates = starts.tz_convert("America/New_York").tz_localize(None).normalize()
        closes = sched["close"].reindex(dates)
        return pd.DatetimeIndex(closes.to_numpy(), tz="UTC") if len(closes) else pd.DatetimeIndex([], tz="UTC")
    sessions = session_of(starts, side="left")
    sess_close = sched["close"].reindex(sessions).to_numpy(dtype="datetime64[ns]")
    begin = starts.tz_convert("UTC").tz_localize(None).to_numpy()
    ends = begin + np.timedelta64(bar_minutes, "m")
    if len(begin) > 1:
        same = np.zeros(len(begin), dtype=bool)
        same[:-1] = (sessions[1:].to_numpy() == sessions[:-1].to_numpy()) & (begin[1:] > begin[:-1])
        nxt = np.concatenate([begin[1:], begin[-1:]])
        ends = np.where(same, np.minimum(ends, nxt), ends)
    out = np.where(np.isnat(sess_close), np.datetime64("NaT"), np.minimum(ends, sess_close))
    return pd.DatetimeIndex(out).tz_localize("UTC")


def bar_starts(closes: pd.DatetimeIndex, bar_minutes: int) -> pd.DatetimeIndex:
    """Map bar *close* times (UTC) back to start times, clipped at the session open."""
    sched = calendar().schedule
    sessions = session_of(closes, side="right")
    sess_open = sched["open"].reindex(sessions).to_numpy(dtype="datetime64[ns]")
    if bar_minutes >= 390:
        return pd.DatetimeIndex(sess_open).tz_localize("UTC")
    begins = (closes - pd.Timedelta(minutes=bar_minutes)).tz_convert("UTC").tz_localize(None).to_numpy()
    out = np.where(np.isnat(sess_open), np.datetime64("NaT"), np.maximum(begins, sess_open))
    return pd.DatetimeIndex(out).tz_localize("UTC")


def expected_bars_per_session(start: pd.Timestamp, end: pd.Timestamp, bar_minutes: int) -> pd.Series:
    """Number of bars each session between two dates should have for a bar length."""
    sched = schedule(start, end)
    if bar_minutes >= 390:
        return pd.Series(1, index=sched.index)
    minutes = (sched["close"] - sched["open"]).dt.total_seconds() / 60.0
    # bars aligned on the clock (IBKR) or on the open (yfinance) differ by at most one
    return np.ceil(minutes / bar_minutes).astype(int)


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Annualisation factor of a series stamped at bar closes: 252 x points per session."""
    if len(index) == 0:
        return 252.0
    sessions = session_of(index, side="right")
    n_sessions = max(1, sessions.dropna().nunique())
    return 252.0 * len(index) / n_sessions
