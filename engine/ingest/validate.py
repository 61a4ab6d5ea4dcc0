"""Check vendor bars before they reach a catalog, and repair them when asked.

Every problem is a :class:`Problem` naming the file, where in it (CSV line number with
the header as line 1, or 1-based Parquet row), the column, the value as written and what
was expected. Two severities:

``error`` (the file is refused unless the user asks for a repair)
    ``bad_time`` (unreadable time; drop), ``bad_price`` (empty or non-numeric price;
    drop), ``nonpositive_price`` (drop), ``bad_volume`` (non-numeric volume; drop),
    ``negative_volume`` (drop), ``high_below`` (high < max(open, close); drop),
    ``low_above`` (low > min(open, close); drop), ``outside_session`` (bar starts
    outside every NYSE session; drop), ``unsorted`` (sort), ``duplicate_time`` (keep the
    last row in the file), ``overlap`` (a bar's span ``[start, min(start + length,
    session close))`` reaches past the next bar's start, e.g. an IBKR 15:00 bar and a
    yfinance 15:30 bar that would both end at 16:00, or two daily rows for one session;
    drop a bar that overlaps both neighbours, else the one earlier in the file). Without
    this check :func:`engine.sessions.bar_closes` would silently stamp the 15:00-16:00 bar
    at 15:30, half an hour before its close price was known.

``warning`` (reported, never refused)
    ``missing_session`` and ``short_session`` (gaps against the NYSE calendar inside the
    file's range), ``partial_last_session`` (the file ends mid-session: an unfinished
    last bar; dropped with repair), ``zero_volume``, ``volume_missing`` (set to 0).

All checks are vectorised; Python loops only run over the rows that have a problem.
Prices are checked as the catalog will store them (rounded to
:data:`engine.catalog.PRICE_PRECISION` decimals), so a file that passes can always be
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine import sessions
from engine.catalog import PRICE_PRECISION
from engine.config import bar_minutes as bar_length
from engine.errors import DataError
from engine.ingest.readers import NEW_YORK, PRICE_COLUMNS, RawBars

ERROR = "error"
WARNING = "warning"

ROW_KINDS = (
    "bad_time", "bad_price", "nonpositive_price", "bad_volume", "negative_volume", "high_below", "low_above",
    "outside_session",
)
"""Row-level hard problems, in the order a dropped row is attributed to them."""
REPAIRS = {
    "bad_time": "dropped",
    "bad_price": "dropped",
    "nonpositive_price": "dropped",
    "bad_volume": "dropped",
    "negative_volume": "dropped",
    "high_below": "dropped",
    "low_above": "dropped",
    "outside_session": "dropped",
    "unsorted": "sorted into time order",
    "duplicate_time": "dropped (the last row in the file with that time is kept)",
    "overlap": "dropped (the bar it overlaps is kept)",
    "partial_last_session": "dropped (the file ends mid-session)",
    "volume_missing": "set to 0",
}
"""What ``--repair`` does about each kind of problem."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row (or session) of one file."""

    kind: str
    """Machine-readable kind, e.g. ``high_below`` (see the module docstring)."""
    severity: str
    """``error`` (refused unless repaired) or ``warning``."""
    file: str
    """The file, as given."""
    row: int | None
    """Line number (CSV, header = line 1) or 1-based row (Parquet); None for a whole session."""
    unit: str
    """``line``, ``row`` or ``session``: what :attr:`row` counts."""
    column: str
    """The column the value is in ('' when none)."""
    value: str
    """The offending value as written in the file."""
    detail: str
    """What is wrong and what was expected."""

    def __str__(self) -> str:
        """Return ``FILE line N: column 'value' detail``."""
        name = self.file.replace("\\", "/").rsplit("/", 1)[-1]
        where = f"{name} {self.unit} {self.row}" if self.row is not None else name
        what = f"{self.column} '{self.value}'" if self.column else f"'{self.value}'"
        return f"{where}: {what} {self.detail}"


@dataclass
class Validation:
    """The outcome of checking one file: its problems and the bar frame to write."""

    raw: RawBars
    problems: list[Problem]
    frame: pd.DataFrame
    """Bars indexed by close time (UTC), sorted and unique, offending rows removed."""
    dropped: dict[str, list[int]] = field(default_factory=dict)
    """Kind -> row numbers removed from :attr:`frame` (each row counted once)."""
    resorted: int = 0
    """Rows that were out of time order (and were sorted)."""

    @property
    def errors(self) -> list[Problem]:
        """Problems that refuse the file unless repaired."""
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """Problems that are only reported."""
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def rows_dropped(self) -> int:
        """Rows of the file not in :attr:`frame`."""
        return sum(len(v) for v in self.dropped.values())


def _ny(ts: pd.Timestamp) -> str:
    return ts.tz_convert(NEW_YORK).strftime("%Y-%m-%d %H:%M ET")


def _fmt(x: float) -> str:
    return f"{x:.{PRICE_PRECISION}f}".rstrip("0").rstrip(".")


def _suggest_bar(minutes: float) -> str:
    m = int(round(minutes))
    return f"{m // 60}-HOUR" if m % 60 == 0 else f"{m}-MINUTE"


def check_frequency(raw: RawBars, bar: str) -> None:
    """Refuse a file whose bar length does not match *bar* (no repair can fix that)."""
    minutes = bar_length(bar)
    starts = raw.starts[~raw.starts.isna()]
    if len(starts) == 0:
        return
    if minutes < 390 and raw.dates_only:
        raise DataError(
            f"{raw.path}: holds one bar per date (its times are dates, e.g. "
            f"'{raw.time_text.iloc[0]}'), so these are daily bars, not {bar} bars: pass --bar 1-DAY"
        )
    ny = starts.tz_convert(NEW_YORK).tz_localize(None)
    days = ny.normalize()
    if minutes >= 390:
        per_day = pd.Series(1, index=days).groupby(level=0).size()
        if float(per_day.median()) >= 2:
            ordered = np.sort(ny.asi8)
            same = np.diff(days.sort_values().asi8) == 0
            step = np.median(np.diff(ordered)[same]) / 6e10
            raise DataError(
                f"{raw.path}: holds about {int(per_day.median())} bars per day, {step:.0f} minutes "
                f"apart: these are intraday bars, not {bar} bars: pass --bar {_suggest_bar(step)}"
            )
        return
    order = np.argsort(ny.asi8, kind="stable")
    t = ny.asi8[order]
    d = days.asi8[order]
    gaps = np.diff(t)
    same = (np.diff(d) == 0) & (gaps > 0)
    if not same.any():
        return
    step = float(np.median(gaps[same])) / 6e10
    if abs(step - minutes) > 0.5:
        raise DataError(
            f"{raw.path}: bars are {step:.0f} minutes apart (median within a day) but --bar {bar} "
            f"means {minutes}-minute bars: pass --bar {_suggest_bar(step)}"
        )


def _session_labels(starts: pd.DatetimeIndex, minutes: int) -> np.ndarray:
    """Session label (int64 ns of the naive session date; NaT where none) of each bar start."""
    nat = np.iinfo(np.int64).min
    out = np.full(len(starts), nat, dtype=np.int64)
    ok = np.asarray(~starts.isna())
    if not ok.any():
        return out
    cal = sessions.calendar()
    if minutes >= 390:
        days = starts[ok].tz_convert(NEW_YORK).tz_localize(None).normalize()
        out[ok] = np.where(days.isin(cal.schedule.index), days.asi8, nat)
        return out
    t = starts.asi8
    ok &= (t >= cal.first_minute.value) & (t <= cal.last_minute.value)
    if ok.any():
        out[ok] = sessions.session_of(starts[ok], side="left").asi8
    return out


def validate(raw: RawBars, bar: str = "1-HOUR", *, repair: bool = False) -> Validation:
    """Check *raw* and build the bar frame to write.

    Hard problems (:attr:`Validation.errors`) are repaired in :attr:`Validation.frame`
    regardless of *repair*; the caller refuses the file when there are errors and the user
    did not ask for a repair. *repair* only decides whether an unfinished last session is
    dropped (it is a warning, so it is kept otherwise).
    """
    minutes = bar_length(bar)
    check_frequency(raw, bar)
    file = str(raw.path)
    unit = raw.row_unit
    rows = raw.row_numbers
    n = len(raw.values)
    nat = np.iinfo(np.int64).min
    problems: list[Problem] = []

    def report(kind: str, severity: str, positions: np.ndarray, column: str, values: list[str], details: list[str]) -> None:
        for pos, value, detail in zip(positions, values, details, strict=True):
            problems.append(Problem(kind, severity, file, int(rows[pos]), unit, column, value, detail))

    def cells(column: str, positions: np.ndarray) -> list[str]:
        return [raw.cell(column, int(p)) for p in positions]

    time_col = raw.time_column
    time_text = raw.time_text.fillna("").to_numpy(dtype=object)

    def times(positions: np.ndarray) -> list[str]:
        return [str(time_text[p]) for p in positions]

    starts = raw.starts

    # ---- row-level hard problems (every row) -------------------------------------------
    masks: dict[str, np.ndarray] = {}
    masks["bad_time"] = bad_t = np.asarray(starts.isna())
    pos = np.flatnonzero(bad_t)
    report("bad_time", ERROR, pos, time_col, times(pos), [
        f"{raw.time_errors.get(int(p), 'is not a date/time')}; expected a time such as 2024-01-02 09:30:00-05:00"
        for p in pos
    ])

    prices = np.round(raw.values.loc[:, list(PRICE_COLUMNS)].to_numpy(dtype=np.float64), PRICE_PRECISION)
    nan = np.isnan(prices)
    nonpos = ~nan & (prices <= 0)
    masks["bad_price"] = nan.any(axis=1)
    masks["nonpositive_price"] = nonpos.any(axis=1)
    for j, col in enumerate(PRICE_COLUMNS):
        pos = np.flatnonzero(nan[:, j])
        vals = cells(col, pos)
        report("bad_price", ERROR, pos, col, vals,
               ["is empty; expected a price" if not v else "is not a number; expected a price" for v in vals])
        pos = np.flatnonzero(nonpos[:, j])
        report("nonpositive_price", ERROR, pos, col, cells(col, pos), ["is not positive; expected a price > 0"] * len(pos))

    vol = raw.values["volume"].to_numpy(dtype=np.float64)
    as_read = raw.text["volume"]
    if as_read.dtype == object:  # some cell was not a number: tell empty cells from junk
        blank = as_read.isna().to_numpy() | (as_read.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
    else:
        blank = np.ones(n, dtype=bool)
    masks["bad_volume"] = bad_vol = np.isnan(vol) & ~blank
    pos = np.flatnonzero(bad_vol)
    report("bad_volume", ERROR, pos, "volume", cells("volume", pos),
           ["is not a number; expected a volume >= 0 (or an empty field)"] * len(pos))
    vol_nan = np.isnan(vol) & blank
    masks["negative_volume"] = neg = ~np.isnan(vol) & (vol < 0)
    pos = np.flatnonzero(neg)
    report("negative_volume", ERROR, pos, "volume", cells("volume", pos), ["is negative; expected volume >= 0"] * len(pos))

    o, h, lo_, c = prices.T
    complete = ~nan.any(axis=1)
    top = np.fmax(o, c)
    bottom = np.fmin(o, c)
    masks["high_below"] = hb = complete & (h < top)
    masks["low_above"] = la = complete & (lo_ > bottom)
    pos = np.flatnonzero(hb)
    report("high_below", ERROR, pos, "high", cells("high", pos),
           [f"is below max(open, close) = {_fmt(top[p])}; expected high >= open and close" for p in pos])
    pos = np.flatnonzero(la)
    report("low_above", ERROR, pos, "low", cells("low", pos),
           [f"is above min(open, close) = {_fmt(bottom[p])}; expected low <= open and close" for p in pos])

    labels = _session_labels(starts, minutes)
    masks["outside_session"] = outside = ~bad_t & (labels == nat)
    pos = np.flatnonzero(outside)
    if minutes >= 390:
        details = [f"({starts[p].tz_convert(NEW_YORK):%Y-%m-%d}) is not an NYSE trading day; expected a session date"
                   for p in pos]
    else:
        session_closes = sessions.calendar().schedule["close"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        at_close = np.isin(starts.asi8[pos], session_closes)
        details = [
            f"({_ny(starts[p])}) starts outside every NYSE session; expected a bar inside regular hours "
            "(09:30-16:00 ET on a trading day)"
            + ("; it is a session close: are the bars labelled by their end? sigtrade expects start times"
               if hit else "")
            for p, hit in zip(pos, at_close, strict=True)
        ]
    report("outside_session", ERROR, pos, time_col, times(pos), details)

    dropped: dict[str, list[int]] = {}
    drop = np.zeros(n, dtype=bool)
    for kind in ROW_KINDS:
        newly = masks[kind] & ~drop
        if newly.any():
            dropped[kind] = [int(r) for r in rows[newly]]
            drop |= newly

    # ---- order problems (rows that survived) ---------------------------------------------
    keep = np.flatnonzero(~drop)
    t = starts.asi8[keep]
    resorted = 0
    late = np.flatnonzero(t[1:] < t[:-1]) + 1
    if len(late):
        resorted = len(late)
        report("unsorted", ERROR, keep[late], time_col, times(keep[late]), [
            f"({_ny(starts[keep[i]])}) is earlier than {unit} {int(rows[keep[i - 1]])} above it "
            f"('{time_text[keep[i - 1]]}' = {_ny(starts[keep[i - 1]])}); expected rows in time order"
            for i in late
        ])
    order = np.argsort(t, kind="stable")
    keep, t = keep[order], t[order]
    last_of = np.searchsorted(t, t, side="right") - 1
    dup = last_of != np.arange(len(t))
    if dup.any():
        idx = np.flatnonzero(dup)
        report("duplicate_time", ERROR, keep[idx], time_col, times(keep[idx]), [
            f"is the same time as {unit} {int(rows[keep[last_of[i]]])}; expected one bar per time (the later row is kept)"
            for i in idx
        ])
        dropped["duplicate_time"] = [int(rows[keep[i]]) for i in idx]
        keep = keep[~dup]
    keep = _drop_overlaps(raw, keep, labels, minutes, problems, dropped)

    # ---- warnings (bars that will be written) ----------------------------------------------
    pos = keep[vol_nan[keep]]
    report("volume_missing", WARNING, pos, "volume", cells("volume", pos), ["is empty; set to 0"] * len(pos))
    pos = keep[vol[keep] == 0]
    report("zero_volume", WARNING, pos, "volume", cells("volume", pos), ["is zero: no trades in this bar?"] * len(pos))
    if len(keep):
        keep = _session_warnings(raw, keep, labels, minutes, repair, problems, dropped)

    closes = sessions.bar_closes(starts[keep], minutes) if len(keep) else pd.DatetimeIndex([], tz="UTC")
    frame = pd.DataFrame({col: prices[keep, j] for j, col in enumerate(PRICE_COLUMNS)}, index=closes)
    frame["volume"] = np.nan_to_num(vol[keep], nan=0.0)
    for col in ("vwap", "trade_count"):
        if col in raw.values:
            frame[col] = raw.values[col].to_numpy(dtype=np.float64)[keep]
    frame.index.name = "ts_event"
    return Validation(raw=raw, problems=problems, frame=frame, dropped=dropped, resorted=resorted)


def _drop_overlaps(
    raw: RawBars,
    keep: np.ndarray,
    labels: np.ndarray,
    minutes: int,
    problems: list[Problem],
    dropped: dict[str, list[int]],
) -> np.ndarray:
    """Drop bars that overlap the next bar of their session.

    A bar that overlaps both its neighbours goes first; otherwise, of two overlapping
    bars, the row later in the file wins (as with duplicate times: appended data is newer).

    *keep* holds row positions sorted by start, without duplicate starts. A bar covers
    ``[start, min(start + length, session close))``; it overlaps the next bar when that
    one starts earlier. The first bar of a session is exempt: IBKR's 09:30 bar is a
    half-hour bar because the next one starts at 10:00. Typical cause: two sources
    appended in one file (an IBKR 15:00 bar and a yfinance 15:30 bar both end at 16:00).
    Daily bars overlap when two rows name the same session.
    """
    if len(keep) < 2:
        return keep
    file, unit, rows = str(raw.path), raw.row_unit, raw.row_numbers
    sched_close = sessions.calendar().schedule["close"]
    step = np.int64(minutes) * 60_000_000_000
    lost: list[int] = []
    while True:
        t = raw.starts.asi8[keep]
        sess = labels[keep]
        same = sess[1:] == sess[:-1]
        if minutes >= 390:
            clash = same
        else:
            closes = sched_close.reindex(pd.DatetimeIndex(sess)).to_numpy(dtype="datetime64[ns]").astype(np.int64)
            end = np.minimum(t + step, closes)
            first = np.ones(len(keep), dtype=bool)
            first[1:] = ~same
            clash = same & (t[1:] < end[:-1]) & ~first[:-1]
        if not clash.any():
            break
        hits = np.zeros(len(keep), dtype=int)
        hits[:-1] += clash
        hits[1:] += clash
        if (hits >= 2).any():
            # a bar overlapping both neighbours is the odd one out: drop it, keep them
            victim = np.flatnonzero(hits >= 2)
            victim = victim[np.concatenate(([True], np.diff(victim) > 1))]
            other = victim + 1
        else:
            i = np.flatnonzero(clash)
            i = i[np.concatenate(([True], np.diff(i) > 1))]  # one pair per chain and pass
            victim = np.where(keep[i] < keep[i + 1], i, i + 1)
            other = np.where(victim == i, i + 1, i)
        for a, b in zip(victim, other, strict=True):
            pa, pb = int(keep[a]), int(keep[b])
            span_a = _span(raw.starts[pa], minutes, sched_close)
            span_b = _span(raw.starts[pb], minutes, sched_close)
            problems.append(Problem(
                "overlap", ERROR, file, int(rows[pa]), unit, raw.time_column, str(raw.time_text.iloc[pa]),
                f"({span_a}) overlaps the bar at {unit} {int(rows[pb])} ({span_b}); expected bars that "
                "do not overlap",
            ))
            lost.append(pa)
        keep = np.setdiff1d(keep, keep[victim], assume_unique=True)
        keep = keep[np.argsort(raw.starts.asi8[keep], kind="stable")]
    if lost:
        dropped["overlap"] = [int(rows[p]) for p in lost]
    return keep


def _span(start: pd.Timestamp, minutes: int, sched_close: pd.Series) -> str:
    if minutes >= 390:
        return f"session {start.tz_convert(NEW_YORK):%Y-%m-%d}"
    end = start + pd.Timedelta(minutes=minutes)
    session = sessions.session_of(pd.DatetimeIndex([start]), side="left")[0]
    end = min(end, sched_close.loc[session])
    return f"{start.tz_convert(NEW_YORK):%Y-%m-%d %H:%M}-{end.tz_convert(NEW_YORK):%H:%M} ET"


def _session_warnings(
    raw: RawBars,
    keep: np.ndarray,
    labels: np.ndarray,
    minutes: int,
    repair: bool,
    problems: list[Problem],
    dropped: dict[str, list[int]],
) -> np.ndarray:
    """Report gaps against the NYSE calendar; drop an unfinished last session if *repair*."""
    file, unit, rows = str(raw.path), raw.row_unit, raw.row_numbers
    codes, first_idx, counts = np.unique(labels[keep], return_index=True, return_counts=True)
    have = pd.Series(counts, index=pd.DatetimeIndex(codes))
    expected = sessions.expected_bars_per_session(have.index[0], have.index[-1], minutes)
    for day in expected.index.difference(have.index):
        problems.append(Problem("missing_session", WARNING, file, None, "session", "", f"{day:%Y-%m-%d}",
                                f"has no bars: the NYSE session of {day:%Y-%m-%d} is missing"))
    exp = expected.reindex(have.index).to_numpy()
    short = np.flatnonzero(have.to_numpy() < exp)
    last = len(have) - 1
    for i in short:
        day = have.index[i]
        row = int(rows[keep[first_idx[i]]])
        if i == last and minutes < 390:
            if last == 0:
                action = "kept: it is the only session in the file"
            else:
                action = "dropped" if repair else "kept; pass --repair to drop it"
            problems.append(Problem(
                "partial_last_session", WARNING, file, row, unit, "", f"{day:%Y-%m-%d}",
                f"the file ends mid-session: {have.iloc[i]} of {exp[i]} bars (unfinished last bar?); {action}",
            ))
        else:
            problems.append(Problem(
                "short_session", WARNING, file, row, unit, "", f"{day:%Y-%m-%d}",
                f"has {have.iloc[i]} of the {exp[i]} bars the NYSE calendar expects (a gap in the data)",
            ))
    if repair and minutes < 390 and last > 0 and len(short) and short[-1] == last:
        cut = first_idx[last]
        dropped["partial_last_session"] = [int(r) for r in rows[keep[cut:]]]
        keep = keep[:cut]
    return keep
