"""Read OHLCV files (CSV or Parquet) into one normalised shape: :class:`RawBars`.

Accepted layouts, the ones users actually have:

* a time column named ``timestamp``, ``datetime``, ``date_time``, ``date`` or ``time``
  (any case), or separate ``date`` and ``time`` columns, or an unnamed first column
  (a saved pandas index); in Parquet also a ``DatetimeIndex``;
* ``open, high, low, close, volume`` in any case and any order, plus optional
  ``vwap``/``wap`` and ``count``/``trade_count``/``trades`` columns; other columns
  (``IsGap``, ``Dividends`` ...) are ignored;
* yfinance's three-line header (``Price,Close,...`` / ``Ticker,SPY,...`` /
  ``Date,,,...``);
* timestamps with UTC offsets, even mixed in one file (IBKR ``+00:00`` rows followed
  by yfinance ``-04:00`` rows), naive timestamps together with an explicit time zone,
  epoch seconds/milliseconds, or plain dates for daily bars (a date *is* the session).

Nothing is validated here beyond "can this be read": the rows keep file order, and an
unparseable time becomes ``NaT`` with a reason, for :mod:`engine.ingest.validate` to
report with its line number.
"""

from __future__ import annotations

import csv
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError, did_you_mean

log = logging.getLogger(__name__)

NEW_YORK = "America/New_York"
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED_COLUMNS = (*PRICE_COLUMNS, "volume")
OPTIONAL_COLUMNS = ("vwap", "trade_count")

_TIME_NAMES = ("timestamp", "datetime", "date_time", "date", "time")
_INDEX_NAMES = ("", "unnamed:_0", "index")
_ALIASES = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "vol": "volume",
    "vwap": "vwap",
    "wap": "vwap",
    "count": "trade_count",
    "trade_count": "trade_count",
    "trades": "trade_count",
    "num_trades": "trade_count",
}
_SYMBOL_SUFFIX_RE = re.compile(r"[_-](?:1h|1d|daily|hourly)$", re.IGNORECASE)
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9._^=-]*$")
_OFFSET_RE = r"(?:[zZ]|[+-]\d{2}:?\d{2}|\s*(?:UTC|GMT))$"
_EPOCH_RE = r"^-?\d{9,19}(?:\.\d*)?$"


@dataclass(frozen=True)
class RawBars:
    """One file's bars as read: file order, vendor start times, nothing dropped yet."""

    path: Path
    """The file read."""
    symbol: str
    """Symbol the bars are stored under."""
    values: pd.DataFrame
    """Float columns open, high, low, close, volume (+ vwap, trade_count); RangeIndex in file order."""
    text: pd.DataFrame
    """The same columns as read, before numeric conversion (to quote bad values)."""
    time_text: pd.Series
    """The time column(s) as written in the file, one string per row."""
    starts: pd.DatetimeIndex
    """Bar start per row in UTC; NaT where the time could not be read."""
    time_errors: dict[int, str]
    """Why a row's time is NaT, by row position."""
    row_numbers: np.ndarray
    """Where each row is in the file: CSV line number (header = line 1) or Parquet row (1-based)."""
    row_unit: str
    """``"line"`` for CSV, ``"row"`` for Parquet."""
    time_column: str
    """Name of the time column as written in the file."""
    columns: dict[str, str]
    """Canonical column name -> name as written in the file."""
    dates_only: bool
    """Every time is a calendar date (midnight): daily bars whose date names the session."""
    notes: list[str] = field(default_factory=list)
    """Remarks worth telling the user (ignored columns, --tz not used ...)."""
    header: list[str] = field(default_factory=list)
    """CSV column names in file order (to quote a cell exactly as written)."""
    _lines: list[str] = field(default_factory=list, repr=False)

    def where(self, pos: int) -> str:
        """Return ``"FILE line N"`` for the row at *pos*."""
        return f"{self.path.name} {self.row_unit} {int(self.row_numbers[pos])}"

    def cell(self, column: str, pos: int) -> str:
        """The value of canonical *column* in the row at *pos*, exactly as written in the file.

        Numbers are parsed as floats for speed, so ``-5`` would read back as ``-5.0``; a
        message must quote the file, so CSV cells are re-read from the file's lines (only
        for rows that have a problem).
        """
        name = self.columns.get(column, column)
        if self.row_unit == "line" and name in self.header:
            if not self._lines:
                self._lines.extend(self.path.read_text(encoding="utf-8-sig", errors="replace").splitlines())
            line_no = int(self.row_numbers[pos])
            if line_no <= len(self._lines):
                cells = next(csv.reader([self._lines[line_no - 1]]), [])
                i = self.header.index(name)
                if i < len(cells):
                    return cells[i].strip()
        value = self.text[column].iloc[pos] if column in self.text else None
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def symbol_from_path(path: Path) -> str:
    """Symbol named by a file: extension and a ``_1h``/``_1d``/``_daily``/``_hourly`` suffix stripped.

    ``BRK.B_1h.csv`` -> ``BRK.B``, ``SPY_1d.csv`` -> ``SPY``, ``QQQ.parquet`` -> ``QQQ``.
    """
    name = path.name
    for ext in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return _SYMBOL_SUFFIX_RE.sub("", name)


def check_symbol(symbol: str, source: str) -> str:
    """Return *symbol* if it can name a catalog instrument, else raise a ``DataError``."""
    if not _SYMBOL_RE.match(symbol):
        raise DataError(
            f"{source}: '{symbol}' cannot be used as a symbol (expected letters, digits and "
            "'.', '-', '^', '='): rename the file or pass --symbol NAME"
        )
    return symbol


def check_tz(tz: str | None) -> str | None:
    """Return *tz* if it is an IANA time zone name, else raise a ``ConfigError``."""
    if tz is None:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"--tz '{tz}' is not a time zone{did_you_mean(tz, sorted(available_timezones()))}: "
            "expected an IANA name such as America/New_York or UTC"
        ) from exc
    return tz


def _norm(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _sniff_csv_header(path: Path) -> tuple[list[str], int]:
    """Return the column names and the number of header lines of a CSV file."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
        if b"\x00" in head or head.decode("utf-8", errors="replace").count("\ufffd") > 2:
            raise DataError(f"{path}: binary data, not a CSV text file (is it compressed, or another format?); "
                            "expected a header line such as date,open,high,low,close,volume")
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            rows = list(itertools.islice(csv.reader(fh), 3))
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: the file is empty; expected a header line such as date,open,high,low,close,volume")
    first = [c.strip() for c in rows[0]]
    if len(rows) >= 3 and first[0].lower() == "price" and rows[1] and rows[1][0].strip().lower() == "ticker":
        # yfinance multi-index header: Price,Close,... / Ticker,SPY,... / Date,,,...
        tickers = {t.strip() for t in rows[1][1:] if t.strip()}
        if len(tickers) > 1:
            raise DataError(
                f"{path}: holds several tickers ({', '.join(sorted(tickers))}) in one yfinance "
                "file; save one ticker per file (yf.download(ticker) for each) and ingest those"
            )
        time_name = rows[2][0].strip() if rows[2] and rows[2][0].strip() else "Date"
        return [time_name, *first[1:]], 3
    return first, 1


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    names, header_lines = _sniff_csv_header(path)
    normed = [_norm(n) for n in names]
    dupes = sorted({n for n in normed if n and normed.count(n) > 1})
    if dupes:
        raise DataError(
            f"{path}: column(s) {', '.join(dupes)} appear more than once in the header; "
            "keep one column per field"
        )
    names = [n if n else f"unnamed_{i}" for i, n in enumerate(names)]
    text_cols = {n: str for n, k in zip(names, normed, strict=True) if k in _TIME_NAMES or k in _INDEX_NAMES or not k}
    try:
        df = pd.read_csv(
            path,
            header=None,
            names=names,
            skiprows=header_lines,
            dtype=text_cols,
            skip_blank_lines=False,
            index_col=False,
            encoding="utf-8-sig",
            encoding_errors="replace",
            low_memory=False,
        )
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=names)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).strip()}); fix the line it names") from exc
    lines = np.arange(len(df), dtype=np.int64) + header_lines + 1
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        df = df.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    return df, lines


def _read_parquet(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many kinds; all mean "not a readable Parquet file"
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    df.columns = [str(c) for c in df.columns]
    return df.reset_index(drop=True), np.arange(1, len(df) + 1, dtype=np.int64)


def _find_columns(df: pd.DataFrame, path: Path) -> tuple[list[str], dict[str, str]]:
    """Return the time column name(s) and canonical -> file column names."""
    by_norm: dict[str, str] = {}
    for col in df.columns:
        by_norm.setdefault(_norm(col), col)
    time_cols: list[str] = []
    if "date" in by_norm and "time" in by_norm and not any(k in by_norm for k in _TIME_NAMES[:3]):
        time_cols = [by_norm["date"], by_norm["time"]]
    else:
        for k in _TIME_NAMES:
            if k in by_norm:
                time_cols = [by_norm[k]]
                break
    if not time_cols:
        first = str(df.columns[0]) if len(df.columns) else ""
        if _norm(first) in _INDEX_NAMES or first.startswith("unnamed_") or pd.api.types.is_datetime64_any_dtype(df[first]):
            time_cols = [first]
    columns: dict[str, str] = {}
    for k, col in by_norm.items():
        canon = _ALIASES.get(k)
        if canon and canon not in columns:
            columns[canon] = col
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if not time_cols:
        missing.insert(0, "date/datetime/timestamp")
    if missing:
        found = ", ".join(str(c) for c in df.columns) or "none"
        raise DataError(
            f"{path}: not an OHLCV bar file: missing column(s) {', '.join(missing)} "
            f"(found: {found}). Expected a date, datetime or timestamp column and open, high, "
            "low, close, volume (any case)"
        )
    return time_cols, columns


def _midnight(values: pd.DatetimeIndex) -> bool:
    v = values[~values.isna()]
    return bool(len(v)) and bool((v == v.normalize()).all())


def _parse_text(text: pd.Series, *, utc: bool) -> pd.Series:
    """Parse strings fast (ISO 8601) and retry the misses with pandas' mixed-format parser."""
    out = pd.to_datetime(text, utc=utc, format="ISO8601", errors="coerce")
    retry = out.isna() & text.notna()
    if retry.any():
        out = out.copy()
        out[retry] = pd.to_datetime(text[retry], utc=utc, format="mixed", errors="coerce")
    return out


def _epoch(values: pd.Series) -> pd.Series:
    num = pd.to_numeric(values, errors="coerce")
    mag = float(np.nanmedian(np.abs(num.to_numpy(dtype=float)))) if num.notna().any() else 0.0
    unit = "s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns"
    return pd.to_datetime(num.astype(np.float64), unit=unit, utc=True, errors="coerce").astype("datetime64[ns, UTC]")


def _parse_times(
    raw: pd.Series, path: Path, column: str, lines: np.ndarray, unit: str, tz: str | None
) -> tuple[pd.DatetimeIndex, dict[int, str], bool, list[str]]:
    """Return UTC start times (NaT where unreadable), reasons for NaT, dates_only, notes."""
    n = len(raw)
    notes: list[str] = []
    utc = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    naive_mask = np.zeros(n, dtype=bool)
    naive = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        utc = raw.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        naive, naive_mask = raw.astype("datetime64[ns]"), raw.notna().to_numpy()
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        utc = _epoch(raw)
    else:
        # pyarrow strings: strip and the offset regex run in C++, ~4x faster than object strings
        text = raw.astype("string[pyarrow]").str.strip().replace("", pd.NA)
        valid = text.notna()
        if valid.any() and text[valid].str.match(_EPOCH_RE).all():
            utc = _epoch(text)
        else:
            aware = text.str.contains(_OFFSET_RE, regex=True).fillna(False).to_numpy(dtype=bool)
            naive_mask = valid.to_numpy(dtype=bool) & ~aware
            if aware.any():
                utc[aware] = _parse_text(text[aware].astype(object), utc=True)
            if naive_mask.any():
                naive[naive_mask] = _parse_text(text[naive_mask].astype(object), utc=False)
    errors: dict[int, str] = {}
    # naive strings that did not parse are bad times, not a reason to ask for --tz
    naive_mask &= naive.notna().to_numpy()
    aware_idx = pd.DatetimeIndex(utc[~naive_mask])
    naive_idx = pd.DatetimeIndex(naive[naive_mask])
    naive_dates = not len(naive_idx) or _midnight(naive_idx)
    aware_ny_dates = not len(aware_idx) or _midnight(aware_idx.tz_convert(NEW_YORK))
    aware_utc_dates = bool(len(aware_idx)) and _midnight(aware_idx)
    has_values = bool((~naive_idx.isna()).any() or (~aware_idx.isna()).any())
    dates_only = has_values and naive_dates and (aware_ny_dates or aware_utc_dates)
    if aware_utc_dates and not aware_ny_dates and dates_only:
        # daily rows stamped at midnight UTC ("2024-01-02 00:00:00+00:00"): the UTC date is the session
        rebased = aware_idx.tz_localize(None).tz_localize(NEW_YORK).tz_convert("UTC")
        utc[~naive_mask] = rebased
    if naive_mask.any():
        if naive_dates:
            # plain dates: a date names a session, whatever the zone
            zone = NEW_YORK
            if tz is not None:
                notes.append(f"--tz {tz} not used: the times are plain dates, which name sessions")
        elif tz is None:
            first = int(np.flatnonzero(naive_mask)[0])
            raise DataError(
                f"{path} {unit} {int(lines[first])}: time '{raw.iloc[first]}' in column '{column}' "
                "has no UTC offset, so the instant it names is unknown: pass --tz "
                f"{NEW_YORK} (or the zone the file was recorded in)"
            )
        else:
            zone = tz
        local = naive_idx.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        lost = np.flatnonzero(~naive_idx.isna() & local.isna())
        utc[naive_mask] = local.tz_convert("UTC")
        for pos in np.flatnonzero(naive_mask)[lost]:
            errors[int(pos)] = f"does not exist or is ambiguous in {zone} (daylight-saving change)"
    elif tz is not None and len(aware_idx):
        notes.append(f"--tz {tz} not used: the times carry their own UTC offsets")
    bad = np.flatnonzero(utc.isna().to_numpy())
    for pos in bad:
        errors.setdefault(int(pos), "is not a date/time" if pd.notna(raw.iloc[pos]) else "is empty")
    return pd.DatetimeIndex(utc).as_unit("ns"), errors, dates_only, notes


def read_bars_file(path: str | Path, *, symbol: str | None = None, tz: str | None = None) -> RawBars:
    """Read one CSV or Parquet OHLCV file into :class:`RawBars`.

    Raises ``DataError`` (naming the file, what was found and what to do) when the file
    cannot be read, is not an OHLCV file, or holds naive times and *tz* is not given.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file; check the path")
    suffix = p.suffix.lower()
    header: list[str] = []
    if suffix in CSV_SUFFIXES:
        df, lines = _read_csv(p)
        header = [str(c) for c in df.columns]
        unit = "line"
    elif suffix in PARQUET_SUFFIXES:
        df, lines = _read_parquet(p)
        unit = "row"
    else:
        raise DataError(f"{p}: unknown file type '{p.suffix}'; expected .csv, .parquet or .pq")
    sym = check_symbol(symbol if symbol is not None else symbol_from_path(p), str(p))
    time_cols, columns = _find_columns(df, p)
    if len(time_cols) == 2:
        time_raw = df[time_cols[0]].astype("string").str.strip() + " " + df[time_cols[1]].astype("string").str.strip()
        time_name = f"{time_cols[0]}+{time_cols[1]}"
    else:
        time_raw, time_name = df[time_cols[0]], time_cols[0]
    starts, errors, dates_only, notes = _parse_times(time_raw, p, time_name, lines, unit, tz)
    text = pd.DataFrame({c: df[col] for c, col in columns.items()})
    values = pd.DataFrame(
        {c: pd.to_numeric(text[c], errors="coerce").astype(np.float64) for c in columns}, index=text.index
    )
    used = {*time_cols, *columns.values()}
    ignored = [str(c) for c in df.columns if c not in used and not str(c).startswith("unnamed_")]
    if ignored:
        notes.append(f"ignored column(s): {', '.join(ignored)}")
    log.info("read %s: %d rows, time column '%s'", p, len(df), time_name)
    return RawBars(
        path=p,
        symbol=sym,
        values=values,
        text=text,
        time_text=time_raw.astype("string"),
        starts=starts,
        time_errors=errors,
        row_numbers=lines,
        row_unit=unit,
        time_column=time_name,
        columns=columns,
        dates_only=dates_only,
        notes=notes,
        header=header,
    )
