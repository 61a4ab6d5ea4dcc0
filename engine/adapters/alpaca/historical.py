"""Historical bars from Alpaca into a catalog: fetch, validate, one atomic write.

The fetch goes through alpaca-py's ``StockHistoricalDataClient`` (which follows
``next_page_token`` itself), one symbol at a time so that each symbol asks only for what
the catalog lacks. Around each HTTP request sigtrade adds its own bounded retry policy
(:class:`~engine.adapters.alpaca.config.RetryPolicy`): alpaca-py retries 429 and 504 a
fixed 3 times 3 s apart and ignores ``X-RateLimit-Reset``; here a 429 waits until the
server's reset time (capped), a 5xx or a dropped connection backs off exponentially, and
after ``max_retries`` the ingest stops with a :class:`~engine.errors.BrokerError`.

Alpaca stamps a bar with its *start* (UTC); catalog frames are indexed by the bar's
*close* (:func:`engine.sessions.bar_closes`). Alpaca also returns pre-market and
after-hours bars: bars that start outside the NYSE regular session are dropped, and the
report says how many. What remains goes through the same checks as CSV ingest
(:func:`engine.ingest.validate.validate`); then every symbol is written with one
:func:`engine.catalog.write_bars` call, so a failure anywhere leaves the catalog as it was.

Incremental: for a symbol already in the catalog (same bar size) whose bars cover the
requested start, only bars from the start of its last stored bar onward are requested;
the new bars replace stored bars they overlap (the last stored bar may have been
unfinished).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine import sessions
from engine.adapters.alpaca.config import AlpacaConfig
from engine.adapters.alpaca.http import (  # noqa: F401 - call_with_retries, RETRY_STATUSES re-exported
    RETRY_STATUSES,
    api_message,
    call_with_retries,
    retrying,
)
from engine.catalog import BAR_COLUMNS, INDEX_FILE, list_symbols, read_frame, write_bars
from engine.config import bar_minutes
from engine.errors import ConfigError, DataError
from engine.ingest.pipeline import IngestRefused, format_problems
from engine.ingest.readers import NEW_YORK, RawBars, check_symbol
from engine.ingest.validate import REPAIRS, Problem, validate

log = logging.getLogger(__name__)

_BAR_RE = re.compile(r"^(\d+)-(MINUTE|HOUR|DAY)$")


@dataclass(frozen=True)
class SymbolReport:
    """What the ingest did for one symbol."""

    symbol: str
    requested_start: pd.Timestamp | None
    """Start of the range asked of Alpaca (None: nothing was asked, the catalog was up to date)."""
    received: int
    """Bars Alpaca returned."""
    extended_hours: int
    """Bars dropped because they start outside the NYSE regular session."""
    new_bars: int
    """Bars from Alpaca written (after the checks)."""
    rows_written: int
    """Bars of the symbol in the catalog afterwards."""
    incremental: bool
    """The symbol was already in the catalog and only the missing range was fetched."""
    first_close: pd.Timestamp | None
    last_close: pd.Timestamp | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def warnings(self) -> list[Problem]:
        """Soft problems found in the new bars."""
        return [p for p in self.problems if p.severity == "warning"]


@dataclass(frozen=True)
class AlpacaIngestReport:
    """What :func:`ingest_alpaca` did: one :class:`SymbolReport` per symbol."""

    catalog: Path
    bar: str
    feed: str
    adjustment: str
    symbols: list[SymbolReport]

    @property
    def rows_written(self) -> int:
        """Bars in the catalog for the ingested symbols, all together."""
        return sum(s.rows_written for s in self.symbols)


def timeframe_of(bar: str) -> tuple[int, str]:
    """Alpaca timeframe ``(amount, unit)`` of a sigtrade bar size; ConfigError if Alpaca has none.

    ``1-HOUR`` -> ``(1, "Hour")``, ``15-MINUTE`` -> ``(15, "Min")``, ``1-DAY`` -> ``(1, "Day")``.
    """
    bar_minutes(bar)
    m = _BAR_RE.match(bar)
    assert m is not None  # bar_minutes accepted it
    n, unit = int(m.group(1)), m.group(2)
    limits = {"MINUTE": (59, "Min"), "HOUR": (23, "Hour"), "DAY": (1, "Day")}
    top, alpaca_unit = limits[unit]
    if not 1 <= n <= top:
        raise ConfigError(
            f"--bar {bar}: Alpaca serves 1-59 MINUTE, 1-23 HOUR or 1-DAY bars; choose one of those, e.g. 1-HOUR"
        )
    return n, alpaca_unit


# ---- HTTP: client with sigtrade's retry policy (engine.adapters.alpaca.http) -----------------
def make_client(config: AlpacaConfig) -> Any:
    """A ``StockHistoricalDataClient`` (raw dicts) whose every HTTP request runs under ``config.retry``."""
    from alpaca.data.historical import StockHistoricalDataClient

    return retrying(StockHistoricalDataClient, config)


# ---- bars --------------------------------------------------------------------------------
def _regular(starts: pd.DatetimeIndex, minutes: int) -> np.ndarray:
    """True where a bar starts inside an NYSE regular session."""
    if minutes >= 390:
        days = starts.tz_convert(NEW_YORK).tz_localize(None).normalize()
        return np.asarray(days.isin(sessions.calendar().schedule.index))
    return np.asarray(~sessions.session_of(starts, side="left").isna())


def to_raw_bars(symbol: str, bars: list[dict[str, Any]], minutes: int) -> tuple[RawBars, int]:
    """Alpaca bar dicts (``t`` = start, ``o h l c v n vw``) -> :class:`RawBars` of regular-session bars.

    Returns the bars and how many extended-hours bars were dropped. Row numbers count bars
    in Alpaca's answer (1-based), so messages can point at them.
    """
    frame = pd.DataFrame(bars)
    if frame.empty:
        frame = pd.DataFrame(columns=["t", "o", "h", "l", "c", "v"])
    starts = pd.DatetimeIndex(pd.to_datetime(frame["t"], utc=True))
    keep = _regular(starts, minutes) if len(starts) else np.zeros(0, dtype=bool)
    frame = frame.loc[keep].reset_index(drop=True)
    rows = np.flatnonzero(keep) + 1
    names = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "vw": "vwap", "n": "trade_count"}
    values = pd.DataFrame(
        {names[k]: pd.to_numeric(frame[k], errors="coerce").astype(np.float64) for k in names if k in frame}
    )
    kept_starts = starts[keep]
    ny = kept_starts.tz_convert(NEW_YORK)
    raw = RawBars(
        path=Path(f"alpaca:{symbol}"),
        symbol=symbol,
        values=values,
        text=values.copy(),
        time_text=frame["t"].astype("string"),
        starts=kept_starts,
        time_errors={},
        row_numbers=rows,
        row_unit="bar",
        time_column="t",
        columns={c: c for c in values.columns},
        dates_only=bool(len(ny)) and bool((ny == ny.normalize()).all()),
    )
    return raw, int((~keep).sum())


def _fetch_start(existing: pd.DataFrame | None, start: pd.Timestamp, minutes: int) -> pd.Timestamp:
    """Where to start asking: the requested start, or the start of the last stored bar."""
    if existing is None or existing.empty:
        return start
    first_start = sessions.bar_starts(existing.index[:1], minutes)[0]
    sched = sessions.calendar().schedule
    later = sched.loc[sched["close"] > start, "open"]
    boundary = max(start, later.iloc[0]) if len(later) else start  # the first trading time at or after start
    if first_start >= boundary + pd.Timedelta(minutes=min(minutes, 390)):
        return start  # the catalog does not cover the requested start: fetch everything asked for
    last_start = sessions.bar_starts(existing.index[-1:], minutes)[0]
    if minutes >= 390:  # Alpaca stamps daily bars at New York midnight
        last_start = last_start.tz_convert(NEW_YORK).normalize().tz_convert("UTC")
    return max(start, last_start)


def _merge(existing: pd.DataFrame | None, new: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Stored bars the new ones do not overlap, plus the new ones (new bars win)."""
    new = new.loc[:, list(BAR_COLUMNS)]
    if existing is None or existing.empty:
        return new
    if new.empty:
        return existing
    new_first_start = sessions.bar_starts(new.index[:1], minutes)[0]
    new_last_close = new.index[-1]
    old_starts = sessions.bar_starts(existing.index, minutes)
    outside = (existing.index <= new_first_start) | (old_starts >= new_last_close)
    merged = pd.concat([existing.loc[outside, list(BAR_COLUMNS)], new]).sort_index()
    merged = merged[~merged.index.duplicated(keep="last")]
    merged.index.name = "ts_event"
    return merged


def _check_catalog(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"--catalog {root} is a file, not a directory: choose a directory such as catalogs/alpaca")
    if root.is_dir() and any(root.iterdir()) and not (root / INDEX_FILE).is_file() and not (root / "data").is_dir():
        raise DataError(
            f"--catalog {root} is a non-empty directory that is not a sigtrade catalog (no {INDEX_FILE}); "
            "choose a new or empty directory such as catalogs/alpaca"
        )


def ingest_alpaca(
    symbols: Iterable[str],
    catalog: str | Path,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp | None = None,
    bar: str = "1-HOUR",
    config: AlpacaConfig | None = None,
    repair: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> AlpacaIngestReport:
    """Fetch bars of *symbols* from Alpaca and write them into *catalog*, all or nothing.

    Parameters
    ----------
    symbols
        Ticker symbols, e.g. ``["SPY", "AAPL"]``.
    catalog
        Catalog directory; created if absent. Other symbols in it are kept.
    start, end
        Range of bar start times (UTC-aware; both inclusive); *end* defaults to now.
    bar
        ``N-MINUTE`` (1-59), ``N-HOUR`` (1-23) or ``1-DAY``.
    config
        Endpoints, feed, adjustment and retry policy; keys come from the environment.
    repair
        Drop bars with hard problems instead of refusing (as ``ingest csv --repair``).
    progress
        Called with ``(symbol, bars received)`` after each symbol is fetched.

    Raises
    ------
    BrokerError
        Keys missing or refused, or Alpaca unreachable / failing after the retries.
    DataError
        A symbol Alpaca does not know (or has no bars for in the range), bars refused by
        the checks (:class:`~engine.ingest.pipeline.IngestRefused`), or a bad catalog.
    ConfigError
        A bad bar size, symbol or range.
    """
    from alpaca.common.exceptions import APIError
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    cfg = config or AlpacaConfig()
    minutes = bar_minutes(bar)
    amount, unit = timeframe_of(bar)
    names = list(dict.fromkeys(check_symbol(s.strip().upper(), "--symbols") for s in symbols if s.strip()))
    if not names:
        raise ConfigError("--symbols is empty: name one or more symbols, e.g. --symbols SPY,AAPL")
    start = _utc(start, "--start")
    end = _utc(end, "--end") if end is not None else pd.Timestamp.now(tz="UTC")
    if end <= start:
        raise ConfigError(f"--end {end} is not after --start {start}: give a later --end")
    root = Path(catalog)
    _check_catalog(root)
    client = make_client(cfg)
    timeframe = TimeFrame(amount, TimeFrameUnit(unit))
    stored = set(list_symbols(root, bar)) if root.is_dir() else set()

    frames: dict[str, pd.DataFrame] = {}
    reports: list[SymbolReport] = []
    failures: list[str] = []
    errors: list[Problem] = []
    for sym in names:
        existing = read_frame(root, sym, bar) if sym in stored else None
        fetch_from = _fetch_start(existing, start, minutes)
        if fetch_from > end:
            log.info("%s: catalog already holds bars up to %s; nothing to fetch", sym, existing.index[-1])  # type: ignore[union-attr]
            reports.append(_report(sym, None, 0, 0, 0, existing, True, []))
            if progress is not None:
                progress(sym, 0)
            continue
        request = StockBarsRequest(
            symbol_or_symbols=sym, timeframe=timeframe, start=fetch_from.to_pydatetime(),
            end=end.to_pydatetime(), feed=cfg.feed, adjustment=cfg.adjustment,
        )
        try:
            data = client.get_stock_bars(request)
        except APIError as exc:
            failures.append(f"{sym}: Alpaca refused the request (HTTP {exc.status_code}: {api_message(exc)}); "
                            "check the symbol, dates, --feed and --adjustment")
            continue
        bars = list(data.get(sym, [])) if isinstance(data, dict) else []
        if progress is not None:
            progress(sym, len(bars))
        if not bars and existing is None:
            failures.append(
                f"{sym}: Alpaca has no {bar} bars from {fetch_from:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC "
                f"(feed {cfg.feed}): unknown symbol? check its spelling, or the dates"
            )
            continue
        raw, extended = to_raw_bars(sym, bars, minutes)
        if extended:
            log.info("%s: dropped %d extended-hours bar(s) (start outside the NYSE session)", sym, extended)
        if raw.values.empty and existing is None:
            failures.append(f"{sym}: Alpaca returned {len(bars)} bar(s), all outside the NYSE regular session")
            continue
        if raw.values.empty:  # nothing new in the session: the catalog stays as it is
            reports.append(_report(sym, fetch_from, len(bars), extended, 0, existing, True, []))
            continue
        result = validate(raw, bar, repair=repair)
        errors.extend(result.errors)
        merged = _merge(existing, result.frame, minutes)
        frames[sym] = merged
        reports.append(_report(sym, fetch_from, len(bars), extended, len(result.frame), merged,
                               existing is not None, result.problems))
    if failures:
        raise DataError(
            f"{len(failures)} of {len(names)} symbol(s) cannot be ingested; nothing was written to {root}:\n  "
            + "\n  ".join(failures)
        )
    if errors and not repair:
        kinds = sorted({p.kind for p in errors})
        raise IngestRefused(
            f"refused: {len(errors)} problem(s) in the bars Alpaca returned; nothing was written to {root}.\n  "
            + "\n  ".join(format_problems(errors))
            + "\nPass --repair to repair them (" + "; ".join(f"{k}: {REPAIRS[k]}" for k in kinds) + ").",
            errors,
        )
    if frames:
        source = f"alpaca:{cfg.feed}:{cfg.adjustment}"
        write_bars(root, frames, bar, sources=dict.fromkeys(frames, source))
        log.info("wrote %d symbol(s) (%d bars) to %s", len(frames), sum(len(f) for f in frames.values()), root)
    return AlpacaIngestReport(catalog=root, bar=bar, feed=cfg.feed, adjustment=cfg.adjustment, symbols=reports)


def _report(
    sym: str, start: pd.Timestamp | None, received: int, extended: int, new: int,
    frame: pd.DataFrame | None, incremental: bool, problems: list[Problem],
) -> SymbolReport:
    has = frame is not None and not frame.empty
    return SymbolReport(
        symbol=sym, requested_start=start, received=received, extended_hours=extended, new_bars=new,
        rows_written=len(frame) if frame is not None else 0, incremental=incremental,
        first_close=frame.index[0] if has else None,  # type: ignore[union-attr]
        last_close=frame.index[-1] if has else None,  # type: ignore[union-attr]
        problems=problems,
    )


def _utc(ts: pd.Timestamp, what: str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    if t.tzinfo is None:
        raise ConfigError(f"{what} {ts} has no time zone; pass a UTC-aware time (the CLI reads dates as New York)")
    return t.tz_convert("UTC")
