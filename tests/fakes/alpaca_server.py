"""A fake Alpaca server on 127.0.0.1 for tests: real clients, real HTTP, no internet.

alpaca-py's clients take ``url_override``, so tests point the production code at
:class:`FakeAlpaca` and exercise the real request path (headers, pagination, error
handling). Responses have the shape of Alpaca's own payloads (samples in
``../shared/data/alpaca/``): ``GET /v2/stocks/bars`` answers like
``rest_v2_stocks_bars_multi_symbol.json`` and errors are ``{"code": ..., "message": ...}``
like ``rest_error_*.json``.

Implemented
    ``GET /v2/stocks/bars``: ``symbols`` (comma list), ``timeframe``, ``start``/``end``
    (RFC 3339, both inclusive), ``limit``, ``page_token`` -> ``next_page_token``, ``feed``,
    ``adjustment``, ``sort``. Pages run symbol by symbol, then by time, like Alpaca's.
    Auth through the ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers.

Test controls
    :meth:`FakeAlpaca.add_bars` (what the server holds), :meth:`FakeAlpaca.fail_next`
    (scripted faults: the next N requests answer 429 with ``X-RateLimit-Reset``, 500,
    503 ...), :attr:`FakeAlpaca.requests` (a log of every request), ``page_size`` (the
    server's largest page, 10 000 at Alpaca).

Extending it (trading endpoints, WebSockets): add a ``(method, path) -> handler`` entry
to :attr:`FakeAlpaca.routes`; a handler gets the :class:`Request` and returns a
:class:`Reply`. Paths with a trailing parameter (``/v2/orders/{id}``) go in
:attr:`FakeAlpaca.prefix_routes` as ``(method, prefix) -> handler(request, rest)``; an
exact route wins over a prefix one. A request's JSON body is ``Request.json()``; a reply
with status 204 is sent without a body. Auth, fault injection and the request log apply
to every route. WebSocket streams are a second server object with the same life cycle
(``start``/``close``/context manager): ``tests/fakes/alpaca_streams.py``; the trading
endpoints and their matching model are ``tests/fakes/alpaca_trading.py``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

TIMEFRAMES = {"1Min": "1min", "5Min": "5min", "15Min": "15min", "30Min": "30min", "1Hour": "1h", "1Day": "1D"}
"""Alpaca timeframe strings the fake knows (request value -> pandas frequency)."""
FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
ADJUSTMENTS = ("raw", "split", "dividend", "all")
DEFAULT_LIMIT = 1000
"""Alpaca's page size when the request gives no ``limit``."""

ERRORS = {
    401: {"code": 40110000, "message": "request is not authorized"},
    403: {"code": 40310000, "message": "forbidden"},
    429: {"code": 42910000, "message": "rate limit exceeded"},
    500: {"code": 50010000, "message": "internal server error occurred"},
    503: {"code": 50310000, "message": "service unavailable"},
}
"""Error bodies by status, in Alpaca's ``{"code", "message"}`` format."""


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    """Query parameters (last value of each)."""
    headers: dict[str, str]
    status: int = 0
    """The status the server answered (filled in the log)."""
    body: bytes = b""
    """The raw request body (POST/PATCH JSON)."""

    def json(self) -> Any:
        """The body decoded as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    """What a handler answers: status, JSON body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    """A scripted failure for one request."""

    status: int
    reset_in: float | None = None
    """For 429: ``X-RateLimit-Reset`` is now + this many seconds (epoch seconds, rounded up)."""


def error(status: int, message: str | None = None) -> Reply:
    """An Alpaca-format error reply."""
    body = dict(ERRORS.get(status, {"code": status * 100_000, "message": "error"}))
    if message is not None:
        body["message"] = message
    return Reply(status, body)


class FakeAlpaca:
    """Threaded HTTP server on 127.0.0.1 (a free port) speaking Alpaca's REST dialect.

    Use as a context manager; :attr:`url` is what ``url_override`` takes::

        with FakeAlpaca(key_id="k", secret="s") as fake:
            fake.add_bars("SPY", frame, "1Hour")
            client = StockHistoricalDataClient("k", "s", url_override=fake.url)
    """

    def __init__(self, key_id: str = "test-key", secret: str = "test-secret", *, page_size: int = 10_000) -> None:
        self.key_id = key_id
        self.secret = secret
        self.page_size = page_size
        self.requests: list[Request] = []
        self.routes: dict[tuple[str, str], Callable[[Request], Reply]] = {
            ("GET", "/v2/stocks/bars"): self._stock_bars,
        }
        self.prefix_routes: dict[tuple[str, str], Callable[[Request, str], Reply]] = {}
        self._bars: dict[tuple[str, str], pd.DataFrame] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ------------------------------------------------------------------
    def start(self) -> FakeAlpaca:
        """Start serving in a daemon thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:  # noqa: N802
                fake._handle(self, "PATCH")

            def do_DELETE(self) -> None:  # noqa: N802
                fake._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:53211`` (no trailing slash, no version)."""
        if self._server is None:
            raise RuntimeError("FakeAlpaca is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- test controls ---------------------------------------------------------------
    def add_bars(self, symbol: str, bars: pd.DataFrame, timeframe: str = "1Hour") -> None:
        """Serve *bars* for *symbol*: index = bar START (tz-aware), columns open/high/low/close/volume.

        Optional ``trade_count`` and ``vwap`` columns become ``n`` and ``vw``.
        """
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {timeframe}; known: {list(TIMEFRAMES)}")
        frame = bars.sort_index()
        frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
        with self._lock:
            self._bars[(symbol, timeframe)] = frame

    def fail_next(self, count: int, status: int, *, reset_in: float | None = None) -> None:
        """Answer the next *count* requests with *status* (e.g. 429 with ``reset_in=1``, 500, 503)."""
        with self._lock:
            self._faults.extend(Fault(status, reset_in) for _ in range(count))

    def requests_to(self, path: str) -> list[Request]:
        """Logged requests for *path*."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # ---- dispatch --------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k: v for k, v in h.headers.items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length > 0 else b""
        req = Request(method, parts.path, query, headers, 0, raw)
        reply = self._answer(req)
        with self._lock:
            self.requests.append(Request(method, parts.path, query, headers, reply.status, raw))
        body = b"" if reply.status == 204 else json.dumps(reply.body).encode()
        h.send_response(reply.status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _answer(self, req: Request) -> Reply:
        key = req.headers.get("APCA-API-KEY-ID")
        secret = req.headers.get("APCA-API-SECRET-KEY")
        if key is None or secret is None:
            return error(401)
        if key != self.key_id or secret != self.secret:
            return error(403) if key == self.key_id else error(401)
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            reply = error(fault.status)
            if fault.status == 429:
                reset = int(time.time() + (fault.reset_in or 0) + 0.999)
                return Reply(429, reply.body, {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0",
                                               "X-RateLimit-Reset": str(reset)})
            return reply
        handler = self.routes.get((req.method, req.path))
        if handler is not None:
            return handler(req)
        for (method, prefix), prefixed in self.prefix_routes.items():
            rest = req.path[len(prefix):]
            if method == req.method and req.path.startswith(prefix) and rest and "/" not in rest:
                return prefixed(req, unquote(rest))
        return Reply(404, {"code": 40410000, "message": "endpoint not found"})

    # ---- GET /v2/stocks/bars -----------------------------------------------------------
    def _stock_bars(self, req: Request) -> Reply:
        q = req.query
        symbols = [s for s in q.get("symbols", "").split(",") if s]
        if not symbols:
            return error(400, "symbols is required")
        timeframe = q.get("timeframe", "")
        if timeframe not in TIMEFRAMES:
            return Reply(422, {"code": 42210000, "message": f"invalid timeframe: {timeframe}"})
        if q.get("feed", "sip") not in FEEDS:
            return Reply(422, {"code": 42210000, "message": f"invalid feed: {q.get('feed')}"})
        if q.get("adjustment", "raw") not in ADJUSTMENTS:
            return Reply(422, {"code": 42210000, "message": f"invalid adjustment: {q.get('adjustment')}"})
        for s in symbols:
            if not s.replace(".", "").replace("/", "").isalnum():
                return Reply(422, {"code": 42210000, "message": f"invalid symbol: {s}"})
        try:
            start = pd.Timestamp(q["start"]) if q.get("start") else None
            end = pd.Timestamp(q["end"]) if q.get("end") else None
            limit = int(q.get("limit") or DEFAULT_LIMIT)
        except (ValueError, KeyError) as exc:
            return Reply(422, {"code": 42210000, "message": f"invalid parameter: {exc}"})
        limit = max(1, min(limit, self.page_size))
        rows: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            for sym in sorted(symbols):
                frame = self._bars.get((sym, timeframe))
                if frame is None:
                    continue
                sel = frame
                if start is not None:
                    sel = sel[sel.index >= start.tz_convert("UTC") if start.tzinfo else sel.index >= start.tz_localize("UTC")]
                if end is not None:
                    sel = sel[sel.index <= end.tz_convert("UTC") if end.tzinfo else sel.index <= end.tz_localize("UTC")]
                if q.get("sort") == "desc":
                    sel = sel.iloc[::-1]
                rows.extend((sym, _bar_json(ts, row)) for ts, row in zip(sel.index, sel.to_dict("records"), strict=True))
        offset = _decode_token(q.get("page_token"))
        page = rows[offset : offset + limit]
        nxt = offset + limit
        out: dict[str, list[dict[str, Any]]] = {}
        for sym, bar in page:
            out.setdefault(sym, []).append(bar)
        return Reply(200, {"bars": out, "next_page_token": _encode_token(nxt) if nxt < len(rows) else None})


def _bar_json(ts: pd.Timestamp, row: dict[str, Any]) -> dict[str, Any]:
    bar = {
        "t": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "o": float(row["open"]),
        "h": float(row["high"]),
        "l": float(row["low"]),
        "c": float(row["close"]),
        "v": int(row["volume"]),
    }
    if "trade_count" in row:
        bar["n"] = int(row["trade_count"])
    if "vwap" in row:
        bar["vw"] = float(row["vwap"])
    return bar


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        return 0
