"""News articles from Alpaca's news API (``GET /v1beta1/news``) as a news table.

The fetch goes through alpaca-py's ``NewsClient`` (which follows ``next_page_token``
itself, 50 articles a page) wrapped in sigtrade's retry policy
(:func:`engine.adapters.alpaca.http.retrying`: 429 honours ``X-RateLimit-Reset``, bounded
5xx retries, 401/403 -> :class:`~engine.errors.BrokerError` naming the key variables,
never their values).

:func:`fetch_news` returns a frame with the columns of the research news store
(``research.news.store.NEWS_COLUMNS``: id, symbols, headline, summary, source,
created_at, updated_at) and notes on what was changed. The engine does not import the
store (engine never imports research); the CLI writes the frame through it.

Checks on Alpaca's answer, all before anything is written:

* an article without an id, or with a time that is missing, unparseable or has no zone
  -> :class:`~engine.errors.DataError` naming the article(s); nothing is written;
* an article with no symbols is **dropped** and counted in the notes (the store never
  holds an article without symbols, and one odd article should not block the rest);
  so is an article with neither headline nor summary (nothing to score);
* a repeated id keeps the latest ``updated_at`` and is counted in the notes.

Incremental: :func:`incremental_start` asks only for articles created from the latest
stored ``created_at`` of the requested symbols, minus :data:`OVERLAP` (late updates of
recent articles are fetched again; the store keeps the latest ``updated_at`` of an id).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from engine.adapters.alpaca.config import AlpacaConfig
from engine.adapters.alpaca.http import api_message, retrying
from engine.errors import ConfigError, DataError

log = logging.getLogger(__name__)

COLUMNS = ("id", "symbols", "headline", "summary", "source", "created_at", "updated_at")
"""The news table's columns (same as ``research.news.store.NEWS_COLUMNS``)."""
OVERLAP = pd.Timedelta(hours=1)
"""How far before the latest stored article an incremental fetch starts."""
COVER_SLACK = pd.Timedelta(days=4)
"""A symbol whose first stored article is later than ``start`` + this is fetched from ``start``."""
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./-]{0,19}$")
_ZONED_RE = re.compile(r"(?:Z|[+-]\d\d(?::?\d\d)?)$")
_SHOWN = 5


def make_news_client(config: AlpacaConfig) -> Any:
    """A ``NewsClient`` (raw dicts) whose every HTTP request runs under ``config.retry``."""
    from alpaca.data.historical.news import NewsClient

    return retrying(NewsClient, config)


def check_symbols(symbols: Iterable[str]) -> list[str]:
    """Upper-cased, de-duplicated symbols (a repeat is warned about); ConfigError on an empty list or a bad symbol."""
    given = [s.strip().upper() for s in symbols if s.strip()]
    names = list(dict.fromkeys(given))
    repeated = sorted({s for s in given if given.count(s) > 1})
    if repeated:
        log.warning("--symbols lists %s more than once: each is fetched once", ", ".join(repeated))
    if not names:
        raise ConfigError("--symbols is empty: name one or more symbols, e.g. --symbols AAPL,MSFT")
    bad = [s for s in names if not _SYMBOL_RE.match(s)]
    if bad:
        raise ConfigError(f"--symbols: {', '.join(map(repr, bad))} is not a ticker symbol, e.g. AAPL or BRK.B")
    return names


def _utc(ts: pd.Timestamp, what: str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    if t.tzinfo is None:
        raise ConfigError(f"{what} {ts} has no time zone; pass a UTC-aware time (the CLI reads dates as New York)")
    return t.tz_convert("UTC")


def _ids(ids: Iterable[object]) -> str:
    shown = [str(i) for i in ids]
    more = len(shown) - _SHOWN
    return ", ".join(shown[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _times(articles: pd.DataFrame, column: str) -> pd.Series:
    text = articles[column].astype("string").str.strip()
    missing = text.isna() | (text == "")
    if missing.any():
        raise DataError(
            f"Alpaca returned article(s) without '{column}' (id {_ids(articles.loc[missing, 'id'])}); "
            "nothing was written"
        )
    unzoned = ~text.str.contains(_ZONED_RE, regex=True)
    if unzoned.any():
        first = text[unzoned].iloc[0]
        raise DataError(
            f"Alpaca returned '{column}' without a time zone (e.g. '{first}', id {_ids(articles.loc[unzoned, 'id'])}); "
            "times must end in Z or a UTC offset to be placed in time - nothing was written"
        )
    try:
        return pd.to_datetime(text, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
    except (ValueError, TypeError) as exc:
        raise DataError(f"Alpaca returned a '{column}' that is not an ISO time ({exc}); nothing was written") from exc


def _symbols(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    return sorted({str(v).strip().upper() for v in value if v is not None and str(v).strip()})


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()


def to_news_frame(raw: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """Alpaca news dicts -> a news table (store columns, UTC times) and notes on what was dropped.

    Raises DataError (nothing to write) for an article without id or with a missing,
    bad or zone-less time; drops articles with no symbols or no text; dedupes ids.
    """
    notes: list[str] = []
    if not raw:
        return _empty(), notes
    frame = pd.DataFrame({
        "id": [_text(a.get("id")) for a in raw],
        "symbols": [_symbols(a.get("symbols")) for a in raw],
        "headline": [_text(a.get("headline")) for a in raw],
        "summary": [_text(a.get("summary")) for a in raw],
        "source": [_text(a.get("source")) for a in raw],
        "created_at": [a.get("created_at") for a in raw],
        "updated_at": [a.get("updated_at") or a.get("created_at") for a in raw],
    })
    no_id = frame["id"] == ""
    if no_id.any():
        raise DataError(
            f"Alpaca returned {int(no_id.sum())} article(s) without an id (headline "
            f"{frame.loc[no_id, 'headline'].iloc[0]!r}); articles are deduplicated by id - nothing was written"
        )
    frame["created_at"] = _times(frame, "created_at")
    frame["updated_at"] = _times(frame, "updated_at")
    no_symbols = frame["symbols"].map(len) == 0
    if no_symbols.any():
        notes.append(f"dropped {int(no_symbols.sum())} article(s) with no symbols (id {_ids(frame.loc[no_symbols, 'id'])})")
        frame = frame.loc[~no_symbols]
    no_text = (frame["headline"] == "") & (frame["summary"] == "")
    if no_text.any():
        notes.append(f"dropped {int(no_text.sum())} article(s) with no headline and no summary "
                     f"(id {_ids(frame.loc[no_text, 'id'])})")
        frame = frame.loc[~no_text]
    before = len(frame)
    frame = _dedupe(frame)
    if len(frame) < before:
        notes.append(f"{before - len(frame)} repeated id(s) in Alpaca's answer: kept the latest updated_at of each")
    return frame, notes


def _dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame.reset_index(drop=True).reset_index(names="_row").sort_values(["updated_at", "_row"], kind="stable")
    kept = order.drop_duplicates("id", keep="last").drop(columns="_row")
    return kept.sort_values(["created_at", "id"], kind="stable").reset_index(drop=True)[list(COLUMNS)]


def _empty() -> pd.DataFrame:
    utc = pd.DatetimeTZDtype(tz="UTC")
    cols: dict[str, pd.Series] = {c: pd.Series(dtype=object) for c in COLUMNS[:5]}
    cols.update(created_at=pd.Series(dtype=utc), updated_at=pd.Series(dtype=utc))
    return pd.DataFrame(cols)


def incremental_start(stored: pd.DataFrame, symbols: list[str], start: pd.Timestamp) -> pd.Timestamp:
    """Where to start asking for *symbols*, given the *stored* news table.

    Per symbol: its latest stored ``created_at`` minus :data:`OVERLAP` when its stored
    articles reach back to *start* (first one within :data:`COVER_SLACK` of it), else
    *start* (nothing stored, or an earlier range is asked for). The request covers all
    symbols at once, so the earliest of those wins; never before *start*.
    """
    start = _utc(start, "start")
    if stored.empty:
        return start
    created = pd.to_datetime(stored["created_at"], utc=True)
    froms = []
    for sym in symbols:
        mask = stored["symbols"].map(lambda s, sym=sym: sym in list(s))
        if not mask.any() or created[mask].min() > start + COVER_SLACK:
            return start
        froms.append(created[mask].max() - OVERLAP)
    return max(start, min(froms))


def fetch_news(
    symbols: Iterable[str],
    start: pd.Timestamp,
    end: pd.Timestamp | None = None,
    *,
    config: AlpacaConfig | None = None,
    include_content: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Fetch Alpaca news about *symbols* created between *start* and *end* (UTC-aware, inclusive).

    Returns the articles as a news table and notes on what was dropped or merged.
    Raises BrokerError (keys missing/refused, retries exhausted), DataError (a request
    Alpaca refuses, or a bad article: see the module doc) or ConfigError (bad input).
    """
    from alpaca.common.exceptions import APIError
    from alpaca.data.requests import NewsRequest

    names = check_symbols(symbols)
    start = _utc(start, "--start")
    end = _utc(end, "--end") if end is not None else pd.Timestamp.now(tz="UTC")
    if end <= start:
        raise ConfigError(f"--end {end} is not after --start {start}: give a later --end")
    client = make_news_client(config or AlpacaConfig())
    request = NewsRequest(
        symbols=",".join(names), start=start.to_pydatetime(), end=end.to_pydatetime(), sort="asc",
        include_content=include_content or None, exclude_contentless=None,
    )
    try:
        data = client.get_news(request)
    except APIError as exc:
        raise DataError(
            f"Alpaca refused the news request (HTTP {exc.status_code}: {api_message(exc)}); "
            "check the symbols and dates; nothing was written"
        ) from None
    raw = list(data.get("news", [])) if isinstance(data, dict) else []
    log.info("Alpaca news: %d article(s) for %s from %s to %s", len(raw), ",".join(names), start, end)
    return to_news_frame(raw)
