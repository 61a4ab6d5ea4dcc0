"""Alpaca's WebSocket streams, faked on 127.0.0.1: the trading stream, stock market data and news.

One ``websockets`` asyncio server (port 0) runs in a daemon thread with its own event
loop and answers three dialects by path, as alpaca-py speaks them:

``/stream`` - the trading stream, JSON text frames (``ws_trade_updates_*.json``)
    client ``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` ->
    ``{"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}``
    (``unauthorized`` and a close on bad keys); client
    ``{"action": "listen", "data": {"streams": ["trade_updates"]}}`` ->
    ``{"stream": "listening", "data": {"streams": ["trade_updates"]}}``; then
    ``{"stream": "trade_updates", "data": {"event": new|fill|partial_fill|canceled|rejected, "order": {...}, ...}}``.

``/v2/iex``, ``/v2/sip`` - stock market data, msgpack binary frames (``ws_stocks_*.json``)
    server ``[{"T": "success", "msg": "connected"}]``; client
    ``{"action": "auth", "key", "secret"}`` -> ``[{"T": "success", "msg": "authenticated"}]``
    (``[{"T": "error", "code": 402, "msg": "auth failed"}]`` and a close on bad keys);
    client ``{"action": "subscribe", "bars": [...], ...}`` -> ``[{"T": "subscription", ...}]``;
    then bars ``[{"T": "b", "S", "t" (msgpack timestamp), "o", "h", "l", "c", "v", "n", "vw"}]``.

``/v1beta1/news`` - news (``NewsDataStream``), msgpack like market data
    connected / auth as above; client ``{"action": "subscribe", "news": [symbols or "*"]}``
    -> ``[{"T": "subscription", "news": [...]}]``; then articles
    ``[{"T": "n", "id", "headline", "summary", "author", "created_at", "updated_at"
    (msgpack timestamps), "url", "content", "symbols": [...], "source"}]`` to every news
    connection subscribed to one of the article's symbols (or ``*``).

alpaca-py uses ``url_override`` as the *whole* stream URL (it appends nothing): pass
:attr:`FakeAlpacaStreams.trading_url` to ``TradingStream``,
:meth:`FakeAlpacaStreams.data_url` to ``StockDataStream`` and
:attr:`FakeAlpacaStreams.news_url` to ``NewsDataStream``; :meth:`push_news` sends an
article.

Given a :class:`~tests.fakes.alpaca_trading.FakeAlpacaTrading`, the server listens to it:
its trade updates go to every listening trading connection and its
:meth:`~tests.fakes.alpaca_trading.FakeAlpacaTrading.push_bar` bars to every data
connection subscribed to the symbol (or ``*``), in the order they happened.
:meth:`drop_connections` aborts every connection (a network drop, close code 1006).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any

import msgpack
import pandas as pd
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.fakes.alpaca_trading import FakeAlpacaTrading

DATA_PATHS = ("/v2/iex", "/v2/sip")
TRADING_PATH = "/stream"
NEWS_PATH = "/v1beta1/news"
CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
SEND_TIMEOUT_S = 5.0


class FakeAlpacaStreams:
    """The fake trading + market-data WebSocket server (a context manager)::

    with FakeAlpacaTrading(K, S) as fake, FakeAlpacaStreams(fake) as ws:
        stream = TradingStream(K, S, paper=True, url_override=ws.trading_url)
    """

    def __init__(
        self,
        fake: FakeAlpacaTrading | None = None,
        key_id: str = "test-key",
        secret: str = "test-secret",
    ) -> None:
        self.fake = fake
        self.key_id = fake.key_id if fake is not None else key_id
        self.refused_feeds: set[str] = set()
        """Feeds (``sip``, ``iex``) whose data connections are refused with 409 ``insufficient subscription``."""
        self.secret = fake.secret if fake is not None else secret
        self.connects: dict[str, int] = {"trading": 0, "data": 0, "news": 0}
        """Connections opened so far, by dialect (reconnects show here)."""
        self.received: list[tuple[str, dict[str, Any]]] = []
        """Every client message, ``(path, message)``."""
        self._trading: set[ServerConnection] = set()
        self._data: dict[ServerConnection, dict[str, set[str]]] = {}
        self._news: dict[ServerConnection, set[str]] = {}
        self._all: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._state = threading.Condition()
        self._port = 0
        self._error: BaseException | None = None

    # ---- life cycle ------------------------------------------------------------------
    def start(self) -> FakeAlpacaStreams:
        self._thread = threading.Thread(target=self._run, name="fake-alpaca-ws", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("fake Alpaca WebSocket server did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"fake Alpaca WebSocket server failed: {self._error!r}")
        if self.fake is not None:
            self.fake.add_listener(self._on_event)
        return self

    def close(self) -> None:
        if self.fake is not None:
            self.fake.remove_listener(self._on_event)
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeAlpacaStreams:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    @property
    def trading_url(self) -> str:
        """``TradingStream(url_override=...)``."""
        return f"{self.base_url}{TRADING_PATH}"

    def data_url(self, feed: str = "iex") -> str:
        """``StockDataStream(url_override=...)`` for *feed* (iex or sip)."""
        return f"{self.base_url}/v2/{feed}"

    @property
    def news_url(self) -> str:
        """``NewsDataStream(url_override=...)``."""
        return f"{self.base_url}{NEWS_PATH}"

    # ---- test controls ---------------------------------------------------------------
    def push_trade_update(self, data: dict[str, Any]) -> None:
        """Send a raw ``trade_updates`` payload to every listening trading connection."""
        self._on_event("trade_updates", data)

    def push_bar_frame(self, frame: dict[str, Any]) -> None:
        """Send a raw bar frame (``T``, ``S``, ``t`` datetime, ``o`` ...) to subscribed data connections."""
        self._on_event("bar", frame)

    def push_quote(self, symbol: str, t: datetime, bid: float, ask: float, bid_size: float = 1, ask_size: float = 1) -> None:
        """Send a quote (``T: q``, Alpaca's fields) to data connections subscribed to *symbol*'s quotes."""
        self._on_event("quote", {"T": "q", "S": symbol, "t": t, "bx": "V", "bp": bid, "bs": bid_size,
                                 "ax": "V", "ap": ask, "as": ask_size, "c": ["R"], "z": "C"})

    def push_news(self, article: dict[str, Any]) -> None:
        """Send an article to the news connections subscribed to one of its symbols (or ``*``).

        *article* has Alpaca's fields (``id``, ``headline``, ``summary``, ``symbols``,
        ``created_at`` ...); times may be datetimes, Timestamps or ISO text (sent as msgpack
        timestamps); missing fields get Alpaca-like defaults and ``T`` is ``"n"``.
        """
        self._on_event("news", article)

    def wait_news_subscribed(self, symbol: str, count: int = 1, timeout: float = 5.0) -> None:
        """Block until *count* news connections are subscribed to *symbol* (or ``*``)."""
        self._wait(
            lambda: sum(1 for subs in list(self._news.values()) if symbol in subs or "*" in subs) >= count,
            timeout,
            f"{count} news connection(s) subscribed to {symbol}",
        )

    def wait_listening(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until *count* trading connections listen to ``trade_updates``."""
        self._wait(
            lambda: len(self._trading) >= count, timeout, f"{count} listening trading connection(s)"
        )

    def wait_subscribed(
        self, symbol: str, count: int = 1, timeout: float = 5.0, channel: str = "bars"
    ) -> None:
        """Block until *count* data connections are subscribed to *symbol*'s *channel*."""
        self._wait(
            lambda: (
                sum(
                    1
                    for subs in list(self._data.values())
                    if symbol in subs[channel] or "*" in subs[channel]
                )
                >= count
            ),
            timeout,
            f"{count} data connection(s) subscribed to {channel} {symbol}",
        )

    def wait_connects(self, dialect: str, count: int, timeout: float = 5.0) -> None:
        """Block until *count* connections of *dialect* (trading|data) have been opened in all."""
        self._wait(
            lambda: self.connects[dialect] >= count, timeout, f"{count} {dialect} connection(s)"
        )

    def drop_connections(self) -> int:
        """Abort every open connection (no close frame, like a network drop); returns how many."""
        if self._loop is None:
            return 0
        fut = asyncio.run_coroutine_threadsafe(self._drop(), self._loop)
        return fut.result(timeout=5)

    def _wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._state:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Alpaca streams: no {what} within {timeout} s")
                self._state.wait(left)

    def _changed(self) -> None:
        with self._state:
            self._state.notify_all()

    # ---- server ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._stop = asyncio.Event()
        server: Server
        async with serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._route,
            ping_interval=None,
            close_timeout=1,
        ) as server:
            self._port = server.sockets[0].getsockname()[1]
            pump = asyncio.create_task(self._pump())
            self._ready.set()
            await self._stop.wait()
            pump.cancel()
            await self._drop()
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except TimeoutError:
                pass

    @staticmethod
    def _route(connection: ServerConnection, request: Any) -> Any:
        if request.path not in DATA_PATHS and request.path not in (TRADING_PATH, NEWS_PATH):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _drop(self) -> int:
        conns = list(self._all)
        for conn in conns:
            conn.transport.abort()
        return len(conns)

    async def _handler(self, conn: ServerConnection) -> None:
        self._all.add(conn)
        path = conn.request.path if conn.request is not None else ""
        try:
            if path == TRADING_PATH:
                self.connects["trading"] += 1
                await self._trading_session(conn)
            elif path == NEWS_PATH:
                self.connects["news"] += 1
                await self._data_session(conn, path)
            else:
                self.connects["data"] += 1
                await self._data_session(conn, path)
        except ConnectionClosed:
            pass
        finally:
            self._all.discard(conn)
            self._trading.discard(conn)
            self._data.pop(conn, None)
            self._news.pop(conn, None)
            self._changed()

    async def _trading_session(self, conn: ServerConnection) -> None:
        self._changed()
        authorized = False
        async for raw in conn:
            msg = json.loads(raw)
            self.received.append((TRADING_PATH, msg))
            action, data = msg.get("action"), msg.get("data") or {}
            if action in ("authenticate", "auth"):
                ok = data.get("key_id") == self.key_id and data.get("secret_key") == self.secret
                status = "authorized" if ok else "unauthorized"
                await conn.send(
                    json.dumps(
                        {
                            "stream": "authorization",
                            "data": {"status": status, "action": "authenticate"},
                        }
                    )
                )
                if not ok:
                    await conn.close(1008, "unauthorized")
                    return
                authorized = True
            elif action == "listen":
                if not authorized:
                    await conn.send(
                        json.dumps(
                            {
                                "stream": "authorization",
                                "data": {"status": "unauthorized", "action": "listen"},
                            }
                        )
                    )
                    continue
                streams = [s for s in data.get("streams", []) if s == "trade_updates"]
                await conn.send(json.dumps({"stream": "listening", "data": {"streams": streams}}))
                if streams:
                    self._trading.add(conn)
                else:
                    self._trading.discard(conn)
                self._changed()

    async def _data_session(self, conn: ServerConnection, path: str) -> None:
        await conn.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        self._changed()
        authenticated = False
        async for raw in conn:
            msg = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
            self.received.append((path, msg))
            action = msg.get("action")
            if action == "auth":
                if path.rsplit("/", 1)[-1] in self.refused_feeds:  # as Alpaca answers a plan without that feed
                    await conn.send(msgpack.packb([{"T": "error", "code": 409, "msg": "insufficient subscription"}]))
                    await conn.close(1008, "insufficient subscription")
                    return
                if msg.get("key") == self.key_id and msg.get("secret") == self.secret:
                    authenticated = True
                    if path == NEWS_PATH:
                        self._news[conn] = set()
                    else:
                        self._data[conn] = {c: set() for c in CHANNELS}
                    await conn.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
                else:
                    await conn.send(
                        msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}])
                    )
                    await conn.close(1008, "auth failed")
                    return
            elif action in ("subscribe", "unsubscribe"):
                if not authenticated:
                    await conn.send(
                        msgpack.packb([{"T": "error", "code": 401, "msg": "not authenticated"}])
                    )
                    continue
                if path == NEWS_PATH:
                    news = self._news[conn]
                    for sym in msg.get("news") or []:
                        (news.add if action == "subscribe" else news.discard)(sym)
                    await conn.send(msgpack.packb([{"T": "subscription", "news": sorted(news)}]))
                    self._changed()
                    continue
                subs = self._data[conn]
                for channel in CHANNELS:
                    for sym in msg.get(channel) or []:
                        (subs[channel].add if action == "subscribe" else subs[channel].discard)(sym)
                ack = {"T": "subscription", **{c: sorted(subs[c]) for c in CHANNELS}}
                await conn.send(msgpack.packb([ack]))
                self._changed()

    # ---- broadcast -------------------------------------------------------------------
    def _on_event(self, kind: str, payload: dict[str, Any]) -> None:
        """Listener of the trading fake (any thread): queue for the pump, in order."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, dict(payload)))
        except RuntimeError:  # loop closing
            pass

    async def _pump(self) -> None:
        assert self._queue is not None
        while True:
            kind, payload = await self._queue.get()
            if kind == "trade_updates":
                frame: str | bytes = json.dumps({"stream": "trade_updates", "data": payload})
                targets = list(self._trading)
            elif kind == "news":
                wire = _news_frame(payload)
                frame = msgpack.packb([wire])
                names = set(wire["symbols"])
                targets = [c for c, subs in self._news.items() if "*" in subs or names & subs]
            else:
                symbol = payload["S"]
                wire = dict(payload)
                if isinstance(wire.get("t"), datetime):
                    wire["t"] = msgpack.Timestamp.from_datetime(wire["t"])
                frame = msgpack.packb([wire])
                channel = "quotes" if kind == "quote" else "bars"
                targets = [
                    c
                    for c, subs in self._data.items()
                    if symbol in subs[channel] or "*" in subs[channel]
                ]
            for conn in targets:
                try:
                    await asyncio.wait_for(conn.send(frame), SEND_TIMEOUT_S)
                except (ConnectionClosed, TimeoutError):
                    pass


def _timestamp(value: Any) -> msgpack.Timestamp:
    if isinstance(value, msgpack.Timestamp):
        return value
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return msgpack.Timestamp.from_unix_nano(int(ts.value))


def _news_frame(article: dict[str, Any]) -> dict[str, Any]:
    """An article as the news stream sends it: Alpaca's fields, times as msgpack timestamps."""
    created = article.get("created_at", pd.Timestamp.now(tz="UTC"))
    wire: dict[str, Any] = {
        "T": "n", "id": article.get("id", 1), "headline": "", "summary": "", "author": "Fake Author",
        "url": "https://example.invalid/a", "content": "", "symbols": [], "source": "benzinga",
        **{k: v for k, v in article.items() if k != "T"},
    }
    wire["created_at"] = _timestamp(created)
    wire["updated_at"] = _timestamp(article.get("updated_at", created))
    wire["symbols"] = list(wire["symbols"])
    return wire
