"""Ingest many files into one catalog: read all, validate all, then one atomic write.

Nothing is written unless every file can be: a file that cannot be read, a bar-size
mismatch, or a hard problem without ``repair=True`` raises a ``DataError`` listing what
is wrong (file, row, value, what was expected) and leaves the catalog as it was. With
``repair=True`` the offending rows are dropped (or sorted) and the
:class:`IngestReport` says what was repaired.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.catalog import INDEX_FILE, list_symbols, write_bars
from engine.config import bar_minutes
from engine.errors import ConfigError, DataError
from engine.ingest.readers import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    check_symbol,
    check_tz,
    read_bars_file,
)
from engine.ingest.validate import REPAIRS, Problem, Validation, validate

log = logging.getLogger(__name__)

MAX_LISTED = 30
"""Most problem lines a refusal message lists (the total is always given)."""
_EXAMPLES_PER_GROUP = 3


class IngestRefused(DataError):
    """Files were refused because of hard problems; :attr:`problems` holds every one of them.

    Warnings are not included: they describe the data as it would be after a repair.
    """

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class FileReport:
    """What happened to one file."""

    path: Path
    symbol: str
    rows_in_file: int
    """Data rows read (blank lines not counted)."""
    rows_written: int
    first_close: pd.Timestamp | None
    last_close: pd.Timestamp | None
    problems: list[Problem]
    dropped: dict[str, list[int]]
    """Kind -> row numbers that were not written (each row counted once)."""
    resorted: int
    """Rows earlier than the row above them (the file was sorted)."""
    row_unit: str
    """What row numbers count: ``line`` (CSV, header = line 1) or ``row`` (Parquet, 1-based)."""
    replaced: bool
    """The catalog already held bars of this symbol and bar size; they were replaced."""
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Hard problems found (repaired, since the file was written)."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Soft problems found."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def rows_dropped(self) -> int:
        """Rows of the file that were not written."""
        return sum(len(v) for v in self.dropped.values())

    def repairs(self) -> list[str]:
        """One sentence per repair made, e.g. ``overlap: dropped ...: 1 row(s), line 8382``."""
        out = []
        if self.resorted:
            out.append(f"unsorted: sorted into time order ({self.resorted} row(s) were earlier than the row above)")
        for kind, rows in self.dropped.items():
            shown = ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")
            out.append(f"{kind}: {REPAIRS.get(kind, 'dropped')}: {len(rows)} row(s), {self.row_unit} {shown}")
        missing = sum(1 for p in self.problems if p.kind == "volume_missing")
        if missing:
            out.append(f"volume_missing: {REPAIRS['volume_missing']} in {missing} row(s)")
        return out


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: one :class:`FileReport` per file, all written to :attr:`catalog`."""

    catalog: Path
    bar: str
    repair: bool
    files: list[FileReport]

    @property
    def rows_written(self) -> int:
        """Bars written, all files together."""
        return sum(f.rows_written for f in self.files)

    @property
    def warnings(self) -> list[Problem]:
        """Every warning, all files together."""
        return [p for f in self.files for p in f.warnings]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named by *paths*: files as given, directories as their CSV/Parquet files (sorted)."""
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir()
                if f.is_file() and f.suffix.lower() in (*CSV_SUFFIXES, *PARQUET_SUFFIXES)
            )
            if not found:
                raise DataError(f"{p}: directory holds no .csv or .parquet files; point at the files to ingest")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or directory; check the path")
    if not out:
        raise DataError("no files to ingest: pass one or more CSV/Parquet files or directories")
    seen: set[Path] = set()
    unique = []
    for f in out:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _check_catalog_dir(catalog: Path) -> None:
    if catalog.exists() and not catalog.is_dir():
        raise DataError(f"--catalog {catalog} is a file, not a directory: choose a directory such as catalogs/mydata")
    if catalog.is_dir() and any(catalog.iterdir()):
        if not (catalog / INDEX_FILE).is_file() and not (catalog / "data").is_dir():
            raise DataError(
                f"--catalog {catalog} is a non-empty directory that is not a sigtrade catalog "
                f"(no {INDEX_FILE}); choose a new or empty directory such as catalogs/mydata"
            )


def format_problems(problems: list[Problem], limit: int = MAX_LISTED) -> list[str]:
    """List problems grouped by file and kind: a few examples per group, at most *limit* lines."""
    groups: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for p in problems:
        groups[(p.file, p.kind)].append(p)
    lines: list[str] = []
    for (_, kind), items in groups.items():
        for p in items[:_EXAMPLES_PER_GROUP]:
            lines.append(f"{kind}: {p}")
        if len(items) > _EXAMPLES_PER_GROUP:
            lines.append(f"  ... {len(items) - _EXAMPLES_PER_GROUP} more {kind} in {Path(items[0].file).name}")
    if len(lines) > limit:
        rest = len(lines) - limit
        lines = [*lines[:limit], f"  ... and {rest} more line(s) of problems"]
    return lines


def _refusal(results: list[Validation], catalog: Path) -> IngestRefused:
    errors = [p for r in results for p in r.errors]
    bad_files = sorted({Path(p.file).name for p in errors})
    kinds = sorted({p.kind for p in errors})
    listed = "\n  ".join(format_problems(errors))
    actions = "; ".join(f"{k}: {REPAIRS[k]}" for k in kinds)
    return IngestRefused(
        f"refused: {len(errors)} problem(s) in {len(bad_files)} file(s) ({', '.join(bad_files[:10])}"
        f"{' ...' if len(bad_files) > 10 else ''}); nothing was written to {catalog}.\n  {listed}\n"
        f"Fix the file(s), or pass --repair to repair them ({actions}); the report then lists every repair.",
        errors,
    )


def ingest_files(
    paths: Iterable[str | Path],
    catalog: str | Path,
    *,
    symbol: str | None = None,
    tz: str | None = None,
    bar: str = "1-HOUR",
    repair: bool = False,
    progress: Callable[[Path], None] | None = None,
) -> IngestReport:
    """Read, validate and write OHLCV files into the catalog at *catalog*, all or nothing.

    Parameters
    ----------
    paths
        CSV or Parquet files, or directories of them (not searched recursively).
    catalog
        Catalog directory; created if absent. Symbols already in it are kept; a symbol
        ingested again is replaced.
    symbol
        Symbol for a single file; by default the file name without extension and a
        ``_1h``/``_1d``/``_daily``/``_hourly`` suffix.
    tz
        IANA time zone of naive timestamps (e.g. ``America/New_York``); not needed for
        times with UTC offsets or for plain dates.
    bar
        Bar size, e.g. ``1-HOUR`` or ``1-DAY``; must match the spacing of the file's bars.
    repair
        Drop (or sort) the offending rows instead of refusing the files.
    progress
        Called with each file's path once it has been read and checked.

    Returns
    -------
    IngestReport
        Per file: rows read and written, what was repaired, warnings.

    Raises
    ------
    DataError
        A file cannot be read or ingested.
    IngestRefused
        (a ``DataError``) Hard problems and *repair* is False; ``.problems`` lists every one.
    ConfigError
        A bad ``bar``, ``tz`` or a ``symbol`` given with several files.
    """
    bar_minutes(bar)
    check_tz(tz)
    root = Path(catalog)
    files = expand_paths(paths)
    if symbol is not None:
        if len(files) != 1:
            raise ConfigError(
                f"--symbol {symbol} names one file's bars but {len(files)} files were given; "
                "drop --symbol (each file's name gives its symbol) or ingest one file at a time"
            )
        check_symbol(symbol, "--symbol")
    _check_catalog_dir(root)

    results: list[Validation] = []
    failures: list[str] = []
    owners: dict[str, Path] = {}
    for f in files:
        try:
            raw = read_bars_file(f, symbol=symbol, tz=tz)
            if raw.symbol in owners:
                raise DataError(
                    f"{f}: symbol {raw.symbol} is also given by {owners[raw.symbol]}; ingest one of "
                    "them, or the two into different catalogs"
                )
            owners[raw.symbol] = f
            results.append(validate(raw, bar, repair=repair))
        except DataError as exc:
            failures.append(str(exc))
        if progress is not None:
            progress(f)
    if failures:
        head = f"{len(failures)} of {len(files)} file(s) cannot be ingested; nothing was written to {root}:"
        raise DataError(head + "\n  " + "\n  ".join(failures[:MAX_LISTED]))
    if any(r.errors for r in results) and not repair:
        raise _refusal(results, root)
    for r in results:
        if r.frame.empty:
            what = "has a header but no data rows" if r.raw.values.empty else "has no bars left after the repairs"
            raise DataError(f"{r.raw.path} {what}; nothing was written to {root}")

    existing = set(list_symbols(root, bar)) if root.is_dir() else set()
    frames = {r.raw.symbol: r.frame for r in results}
    write_bars(root, frames, bar, sources={r.raw.symbol: str(r.raw.path) for r in results})
    log.info("wrote %d symbols (%d bars) to %s", len(frames), sum(len(x) for x in frames.values()), root)
    reports = [
        FileReport(
            path=r.raw.path,
            symbol=r.raw.symbol,
            rows_in_file=len(r.raw.values),
            rows_written=len(r.frame),
            first_close=r.frame.index[0],
            last_close=r.frame.index[-1],
            problems=r.problems,
            dropped=r.dropped,
            resorted=r.resorted,
            row_unit=r.raw.row_unit,
            replaced=r.raw.symbol in existing,
            notes=r.raw.notes,
        )
        for r in results
    ]
    return IngestReport(catalog=root, bar=bar, repair=repair, files=reports)
