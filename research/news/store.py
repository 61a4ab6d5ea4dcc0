"""The news table of a catalog, and the CSV reader behind ``sigtrade ingest news-csv``.

News lives next to the bars, in ``<catalog>/sigtrade_news/news.parquet``, one row per
article with the columns of :data:`NEWS_COLUMNS`: ``id`` (str), ``symbols`` (list of
upper-case str, never empty), ``headline``, ``summary``, ``source`` (str), ``created_at``
and ``updated_at`` (UTC timestamps). Ids are unique: a re-ingested article replaces the
stored one only when its ``updated_at`` is later. Writes go to a temporary file in the
same folder and are renamed into place, so a failed ingest leaves the old table intact.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.errors import ConfigError, DataError

# the path conventions and the scored text live in models.sentiment (strategies read them)
from models.sentiment import NEWS_DIR, NEWS_FILE, article_text, news_dir, news_path

log = logging.getLogger(__name__)

__all__ = [
    "NEWS_COLUMNS", "NEWS_DIR", "NEWS_FILE", "NewsIngestReport", "article_text", "atomic_write_parquet",
    "dedupe", "empty_news", "ingest_news_csv", "merge_news", "news_dir", "news_path", "read_news",
    "read_news_csv",
]

NEWS_COLUMNS = ("id", "symbols", "headline", "summary", "source", "created_at", "updated_at")
_REQUIRED = ("id", "symbols", "headline", "created_at")
_SYMBOL_SPLIT = re.compile(r"[\s,;|]+")
_SHOWN = 5  # line numbers quoted in an error message


def empty_news() -> pd.DataFrame:
    """Return an empty news table with the right columns and dtypes."""
    utc = pd.DatetimeTZDtype(tz="UTC")
    return pd.DataFrame({
        "id": pd.Series(dtype=object), "symbols": pd.Series(dtype=object),
        "headline": pd.Series(dtype=object), "summary": pd.Series(dtype=object),
        "source": pd.Series(dtype=object), "created_at": pd.Series(dtype=utc),
        "updated_at": pd.Series(dtype=utc),
    })


def read_news(catalog: str | Path) -> pd.DataFrame:
    """Return the news table of *catalog* (empty when it has none), sorted by ``created_at``."""
    path = news_path(catalog)
    if not path.exists():
        return empty_news()
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: the news table cannot be read ({exc}); re-ingest the news") from exc
    frame["symbols"] = [list(s) for s in frame["symbols"]]
    for col in ("created_at", "updated_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame.reset_index(drop=True)


def atomic_write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write *frame* to *path* through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".parquet.tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _split_symbols(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    elif value is None or (isinstance(value, float) and value != value):
        items = []
    else:
        items = _SYMBOL_SPLIT.split(str(value))
    return sorted({s.strip().upper() for s in items if s.strip()})


def _lines(mask: pd.Series) -> str:
    lines = [int(i) + 2 for i in mask[mask].index[:_SHOWN]]  # +1 header, +1 one-based
    more = int(mask.sum()) - len(lines)
    return ", ".join(map(str, lines)) + (f" and {more} more" if more > 0 else "")


def _parse_times(raw: pd.Series, column: str, path: Path, tz: str | None) -> pd.Series:
    text = raw.astype("string").str.strip()
    missing = text.isna() | (text == "")
    if missing.any():
        raise DataError(f"{path}: '{column}' is empty on line(s) {_lines(missing)}; every article needs a time")
    # a zone is written as Z, +hh:mm, +hhmm or +hh at the end of an ISO time
    zoned = text.str.contains(r"(?:Z|[+-]\d\d(?::?\d\d)?)$", regex=True)
    if (~zoned).any() and tz is None:
        raise DataError(
            f"{path}: '{column}' has times without a time zone on line(s) {_lines(~zoned)} "
            f"(e.g. '{text[~zoned].iloc[0]}'); write them with an offset (2024-01-02T14:30:00Z) "
            "or pass --tz with the zone they are in, e.g. --tz America/New_York"
        )
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    try:
        if zoned.any():
            out[zoned] = pd.to_datetime(text[zoned], utc=True, format="ISO8601")
        if (~zoned).any():
            naive = pd.to_datetime(text[~zoned], format="ISO8601")
            out[~zoned] = naive.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: '{column}' has a value that is not an ISO time ({exc})") from exc
    return out


def read_news_csv(path: str | Path, tz: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read a news CSV into a news table; return it and notes on what was changed.

    Columns ``id``, ``symbols`` (separated by commas, semicolons, ``|`` or spaces),
    ``headline`` and ``created_at`` are required; ``summary``, ``source`` and
    ``updated_at`` (default: ``created_at``) are optional. Times must carry a zone
    unless *tz* names the zone of those that do not. Rows without symbols, without any
    text or with a bad time are refused (the whole file); repeated ids keep the row with
    the latest ``updated_at`` and are reported in the notes.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; pass a CSV of news articles")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason}); save the CSV as UTF-8") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(raw.columns) or 'none'}. "
            f"A news CSV needs {', '.join(_REQUIRED)} (optional: summary, source, updated_at)"
        )
    if raw.empty:
        raise DataError(f"{path}: no articles (only a header)")
    frame = pd.DataFrame({
        "id": raw["id"].str.strip(),
        "symbols": [_split_symbols(v) for v in raw["symbols"]],
        "headline": raw["headline"].str.strip(),
        "summary": raw["summary"].str.strip() if "summary" in raw else "",
        "source": raw["source"].str.strip() if "source" in raw else "",
    })
    if (frame["id"] == "").any():
        raise DataError(f"{path}: empty id on line(s) {_lines(frame['id'] == '')}; every article needs an id")
    no_symbols = frame["symbols"].map(len) == 0
    if no_symbols.any():
        raise DataError(
            f"{path}: no symbols on line(s) {_lines(no_symbols)}; an article must name the symbol(s) "
            "it is about (e.g. 'AAPL' or 'AAPL,MSFT') - drop or fill those rows"
        )
    no_text = (frame["headline"] == "") & (frame["summary"] == "")
    if no_text.any():
        raise DataError(f"{path}: no headline and no summary on line(s) {_lines(no_text)}; nothing to score")
    frame["created_at"] = _parse_times(raw["created_at"], "created_at", path, tz)
    if "updated_at" in raw:
        blank = raw["updated_at"].str.strip() == ""
        upd = raw["updated_at"].where(~blank, raw["created_at"])
        frame["updated_at"] = _parse_times(upd, "updated_at", path, tz)
    else:
        frame["updated_at"] = frame["created_at"]
    notes: list[str] = []
    before = len(frame)
    frame = dedupe(frame)
    if len(frame) < before:
        notes.append(f"{before - len(frame)} repeated id(s) in the file: kept the latest updated_at of each")
    return frame, notes


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per id: the latest ``updated_at`` (the later row on a tie)."""
    order = frame.reset_index(drop=True).reset_index(names="_row")
    order = order.sort_values(["updated_at", "_row"], kind="stable")
    kept = order.drop_duplicates("id", keep="last").drop(columns="_row")
    return kept.sort_values(["created_at", "id"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class NewsIngestReport:
    """What ``ingest news-csv`` did."""

    path: Path
    added: int
    updated: int
    unchanged: int
    total: int
    notes: tuple[str, ...] = ()


def merge_news(catalog: str | Path, articles: pd.DataFrame, notes: list[str] | None = None) -> NewsIngestReport:
    """Merge *articles* into the news table of *catalog* (by id, latest ``updated_at`` wins)."""
    old = read_news(catalog)
    old_updated = dict(zip(old["id"], old["updated_at"], strict=True))
    added = sum(1 for i in articles["id"] if i not in old_updated)
    updated = sum(
        1 for i, u in zip(articles["id"], articles["updated_at"], strict=True)
        if i in old_updated and u > old_updated[i]
    )
    parts = [f[list(NEWS_COLUMNS)] for f in (old, articles) if not f.empty]
    merged = dedupe(pd.concat(parts, ignore_index=True)) if parts else empty_news()
    path = news_path(catalog)
    atomic_write_parquet(merged, path)
    log.info("news table %s: %d added, %d updated", path, added, updated)
    return NewsIngestReport(
        path=path, added=added, updated=updated, unchanged=len(articles) - added - updated,
        total=len(merged), notes=tuple(notes or ()),
    )


def ingest_news_csv(path: str | Path, catalog: str | Path, tz: str | None = None) -> NewsIngestReport:
    """Read a news CSV and merge it into *catalog*; nothing is written when the file is refused."""
    articles, notes = read_news_csv(path, tz=tz)
    return merge_news(catalog, articles, notes)

