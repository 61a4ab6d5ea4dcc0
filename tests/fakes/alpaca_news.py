"""``GET /v1beta1/news`` for :class:`tests.fakes.alpaca_server.FakeAlpaca`, registered at runtime.

Answers like Alpaca's news endpoint (sample: ``shared/data/alpaca/rest_v1beta1_news.json``):
``{"news": [article, ...], "next_page_token": str | null}`` where an article has ``id``
(int), ``headline``, ``summary``, ``author``, ``source``, ``url``, ``content``,
``images``, ``symbols`` (list) and ``created_at``/``updated_at`` (RFC 3339, ``Z``).

Query: ``symbols`` (comma list; an article matches when it names any of them),
``start``/``end`` (on ``created_at``, both inclusive), ``sort`` (asc/desc, default desc
as Alpaca's), ``limit`` (default 10, at most 50, and at most the server's ``page_size``),
``page_token``. Auth, scripted faults and the request log are FakeAlpaca's (the handler
is an entry of its ``routes`` table)::

    with FakeAlpaca(key, secret, page_size=10) as fake:
        news = FakeNews.install(fake)
        news.add(article(1, ["AAPL"], "2024-03-01T14:00:00Z"))
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import pandas as pd

from tests.fakes.alpaca_server import FakeAlpaca, Reply, Request, error

NEWS_PATH = "/v1beta1/news"
DEFAULT_LIMIT = 10
MAX_LIMIT = 50


def article(
    id: int | str,  # noqa: A002 - Alpaca's field name
    symbols: list[str],
    created_at: str,
    *,
    updated_at: str | None = None,
    headline: str | None = None,
    summary: str = "summary",
    source: str = "benzinga",
) -> dict[str, Any]:
    """An article dict in Alpaca's shape (times are passed through as given)."""
    return {
        "author": "Fake Author", "content": "", "created_at": created_at,
        "headline": headline if headline is not None else f"headline {id}", "id": id,
        "images": [{"size": "thumb", "url": "https://example.invalid/t.jpg"}],
        "source": source, "summary": summary, "symbols": list(symbols),
        "updated_at": updated_at if updated_at is not None else created_at, "url": "https://example.invalid/a",
    }


class FakeNews:
    """The news held by one FakeAlpaca, and the route that serves it."""

    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake
        self.articles: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def install(cls, fake: FakeAlpaca) -> FakeNews:
        """Register ``GET /v1beta1/news`` on *fake* and return the news holder."""
        news = cls(fake)
        fake.routes[("GET", NEWS_PATH)] = news.handle
        return news

    def add(self, *articles: dict[str, Any]) -> None:
        """Serve these articles too (an id already held is replaced: an updated article)."""
        with self._lock:
            for a in articles:
                self.articles = [x for x in self.articles if str(x["id"]) != str(a["id"])] + [a]

    def handle(self, req: Request) -> Reply:
        q = req.query
        symbols = {s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()}
        try:
            start = _ts(q.get("start"))
            end = _ts(q.get("end"))
            limit = int(q.get("limit") or DEFAULT_LIMIT)
        except ValueError as exc:
            return Reply(422, {"code": 42210000, "message": f"invalid parameter: {exc}"})
        if not 1 <= limit <= MAX_LIMIT:
            return error(422, f"limit must be between 1 and {MAX_LIMIT}")
        limit = min(limit, self.fake.page_size)
        sort = q.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return error(422, f"invalid sort: {sort}")
        with self._lock:
            rows = [a for a in self.articles if self._matches(a, symbols, start, end)]
        rows.sort(key=lambda a: (_ts(a["created_at"]) or pd.Timestamp(0, tz="UTC"), str(a["id"])),
                  reverse=sort == "desc")
        offset = _decode(q.get("page_token"))
        page = rows[offset : offset + limit]
        nxt = offset + limit
        return Reply(200, {"news": page, "next_page_token": _encode(nxt) if nxt < len(rows) else None})

    @staticmethod
    def _matches(a: dict[str, Any], symbols: set[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> bool:
        named = {str(s).upper() for s in a.get("symbols") or []}
        if symbols and named and not symbols & named:  # an article naming no symbol is served as is: the client must cope
            return False
        try:
            created = _ts(a["created_at"])
        except ValueError:
            return True  # a malformed time is served as is: the client must cope
        if created is None:
            return True
        return (start is None or created >= start) and (end is None or created <= end)


def _ts(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"news:{offset}".encode()).decode()


def _decode(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        return 0
