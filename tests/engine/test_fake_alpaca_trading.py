"""The fake Alpaca trading API and streams, driven by the REAL alpaca-py clients.

``TradingClient``, ``TradingStream`` and ``StockDataStream`` (alpaca-py 0.44) are pointed
at :class:`tests.fakes.alpaca_trading.FakeAlpacaTrading` and
:class:`tests.fakes.alpaca_streams.FakeAlpacaStreams` on 127.0.0.1 through
``url_override``: account, clock, assets, orders (market/limit, qty/notional, idempotent
``client_order_id``), cancels, positions, the next-bar-open matching model with partial
fills and rejections, trade updates and bars over WebSockets, a dropped connection and
the reconnect, and :class:`engine.adapters.alpaca.providers.AlpacaInstrumentProvider`.
Every stream runs in a daemon thread and is stopped within a bounded time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("alpaca")
from alpaca.common.exceptions import APIError  # noqa: E402
from alpaca.data.enums import DataFeed  # noqa: E402
from alpaca.data.live import StockDataStream  # noqa: E402
from alpaca.trading.client import TradingClient  # noqa: E402
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce  # noqa: E402
from alpaca.trading.requests import (  # noqa: E402
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)
from alpaca.trading.stream import TradingStream  # noqa: E402
from nautilus_trader.model.instruments import Commodity, Equity  # noqa: E402

from engine.adapters.alpaca.config import (  # noqa: E402
    KEY_ID_ENV,
    SECRET_ENV,
    TRADING_URL_ENV,
    AlpacaConfig,
    RetryPolicy,
)
from engine.adapters.alpaca.providers import AlpacaInstrumentProvider, make_trading_client  # noqa: E402
from engine.catalog import instrument_id  # noqa: E402
from engine.errors import BrokerError  # noqa: E402
from tests.fakes.alpaca_streams import FakeAlpacaStreams  # noqa: E402
from tests.fakes.alpaca_trading import FakeAlpacaTrading  # noqa: E402

pytestmark = pytest.mark.timeout(10)

KEY, SECRET = "PKFAKETRADE0123456789", "fakeTradeSecret-abcdefghijklmnop"


def bar(
    t: str,
    o: float,
    h: float | None = None,
    lo: float | None = None,
    c: float | None = None,
    v: int = 1000,
) -> dict[str, Any]:
    return {
        "t": t,
        "o": o,
        "h": h if h is not None else o + 1,
        "l": lo if lo is not None else o - 1,
        "c": c if c is not None else o + 0.5,
        "v": v,
    }


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(KEY, SECRET, cash=100_000) as f:
        f.add_asset("AAPL", fractionable=True)
        f.add_asset("SPY", exchange="ARCA", fractionable=True)
        f.add_asset("BRK.A", exchange="NYSE", fractionable=False)
        f.add_asset("HALT", tradable=False)
        yield f


@pytest.fixture
def client(fake: FakeAlpacaTrading) -> TradingClient:
    c = TradingClient(KEY, SECRET, paper=True, url_override=fake.url)
    c._retry = 0  # noqa: SLF001 - no alpaca-py sleeps on scripted faults
    return c


@contextmanager
def running(stream: Any, ws: FakeAlpacaStreams, timeout: float = 5.0) -> Iterator[threading.Thread]:
    """Run an alpaca-py stream in a daemon thread; stop it (and check it stopped) on exit."""
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        deadline = time.monotonic() + timeout
        while getattr(stream, "_loop", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if stream._loop is not None and stream._loop.is_running():  # noqa: SLF001
            asyncio.run_coroutine_threadsafe(stream.stop_ws(), stream._loop).result(timeout=timeout)  # noqa: SLF001
        ws.drop_connections()  # wakes the client's 5 s recv wait at once
        thread.join(timeout=timeout)
        assert not thread.is_alive(), "the alpaca-py stream did not stop in time"


def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def buy(client: TradingClient, symbol: str = "AAPL", qty: float | None = 10, **kw: Any) -> Any:
    return client.submit_order(
        MarketOrderRequest(
            symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, **kw
        )
    )


# ---- REST: account, clock, assets -------------------------------------------------------
def test_account_clock_asset(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    account = client.get_account()
    assert account.status.value == "ACTIVE"
    assert float(account.cash) == 100_000 and float(account.buying_power) == 100_000
    assert client.get_clock().is_open is True
    fake.market_open = False
    assert client.get_clock().is_open is False

    aapl = client.get_asset("AAPL")
    assert (aapl.symbol, aapl.tradable, aapl.fractionable) == ("AAPL", True, True)
    assert client.get_asset("BRK.A").fractionable is False
    assert client.get_asset("HALT").tradable is False
    with pytest.raises(APIError) as info:
        client.get_asset("NOPE")
    assert info.value.status_code == 404 and info.value.code == 40410000


def test_wrong_keys_refused(fake: FakeAlpacaTrading) -> None:
    bad = TradingClient(KEY, "wrong", paper=True, url_override=fake.url)
    with pytest.raises(APIError) as info:
        bad.get_account()
    assert info.value.status_code == 403


# ---- REST: orders and the matching model ------------------------------------------------
def test_market_order_fills_at_next_bar_open(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    order = buy(client, qty=10)
    assert order.status == OrderStatus.ACCEPTED and order.filled_qty == "0"
    assert client.get_order_by_id(order.id).status == OrderStatus.NEW  # nothing fills on submit
    assert [o.id for o in client.get_orders()] == [order.id]  # default filter: open

    fills = fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=180.0, c=181.0))
    assert [(f["qty"], f["price"]) for f in fills] == [(10, 180.0)]
    done = client.get_order_by_id(order.id)
    assert done.status == OrderStatus.FILLED
    assert float(done.filled_qty) == 10 and float(done.filled_avg_price) == 180.0
    assert done.filled_at == datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
    assert client.get_orders() == []
    assert [o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))] == [
        order.id
    ]

    (pos,) = client.get_all_positions()
    assert (pos.symbol, float(pos.qty), float(pos.avg_entry_price)) == ("AAPL", 10, 180.0)
    assert float(pos.current_price) == 181.0  # marked at the bar's close
    account = client.get_account()
    assert float(account.cash) == pytest.approx(100_000 - 1_800)
    assert float(account.equity) == pytest.approx(100_000 - 1_800 + 1_810)

    # another symbol's bar fills nothing; a limit buy fills at min(open, limit) once low <= limit
    lim = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=175.0,
        )
    )
    assert fake.push_bar("SPY", bar("2024-03-01T16:30:00Z", o=500.0)) == []
    assert fake.push_bar("AAPL", bar("2024-03-01T16:30:00Z", o=181.0, lo=176.0)) == []
    fills = fake.push_bar("AAPL", bar("2024-03-01T17:30:00Z", o=176.0, lo=174.0))
    assert [(f["order_id"], f["price"]) for f in fills] == [(str(lim.id), 175.0)]


def test_notional_and_fractional_rules(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    order = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL", notional=1000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    assert order.notional == "1000" and order.qty is None
    fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=300.0))
    filled = client.get_order_by_id(order.id)
    assert float(filled.filled_qty) == pytest.approx(1000 / 300, abs=1e-9)

    with pytest.raises(APIError) as info:  # fractional qty on a non-fractionable asset
        buy(client, "BRK.A", qty=0.5)
    assert info.value.status_code == 422 and "fractionable" in info.value.message
    with pytest.raises(APIError) as info:
        buy(client, "HALT", qty=1)
    assert info.value.status_code == 422 and "not tradable" in info.value.message
    with pytest.raises(APIError) as info:
        buy(client, "NOPE", qty=1)
    assert info.value.status_code == 422


def test_client_order_id_is_idempotent(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    first = buy(client, qty=3, client_order_id="sig-2024-03-01T15:30-AAPL")
    with pytest.raises(APIError) as info:
        buy(client, qty=3, client_order_id="sig-2024-03-01T15:30-AAPL")
    assert info.value.status_code == 422
    assert info.value.message == "client_order_id must be unique"
    assert len(fake.orders) == 1  # the repeat made no second order
    again = client.get_order_by_client_id("sig-2024-03-01T15:30-AAPL")
    assert again.id == first.id
    with pytest.raises(APIError) as info:
        client.get_order_by_client_id("never-sent")
    assert info.value.status_code == 404


def test_partial_fills(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    fake.set_partial_fills((0.4, 0.6))
    order = buy(client, qty=10)
    fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=100.0))
    part = client.get_order_by_id(order.id)
    assert part.status == OrderStatus.PARTIALLY_FILLED and float(part.filled_qty) == 4
    assert [o.id for o in client.get_orders()] == [order.id]  # still open
    fake.push_bar("AAPL", bar("2024-03-01T16:30:00Z", o=110.0))
    done = client.get_order_by_id(order.id)
    assert done.status == OrderStatus.FILLED and float(done.filled_qty) == 10
    assert float(done.filled_avg_price) == pytest.approx((4 * 100 + 6 * 110) / 10)
    assert float(client.get_open_position("AAPL").qty) == 10


def test_refusals_and_rejections(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=100.0, c=100.0))  # a price for the check
    with pytest.raises(APIError) as info:  # 2 000 shares * 100 > 100 000 cash
        buy(client, qty=2_000)
    assert info.value.status_code == 403
    assert (info.value.code, info.value.message) == (40310000, "insufficient buying power")

    fake.refuse_next_order(403, "insufficient buying power")
    with pytest.raises(APIError) as info:
        buy(client, qty=1)
    assert info.value.status_code == 403
    assert fake.orders == {}

    with pytest.raises(APIError) as info:  # nothing to sell
        client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
    assert info.value.status_code == 403 and "insufficient qty" in info.value.message

    fake.reject_next_order("venue closed for this symbol")
    order = buy(client, qty=1)
    assert client.get_order_by_id(order.id).status == OrderStatus.REJECTED
    assert fake.push_bar("AAPL", bar("2024-03-01T16:30:00Z", o=100.0)) == []

    fake.market_open = False  # queued, not filled, while closed
    queued = buy(client, qty=1)
    assert fake.push_bar("AAPL", bar("2024-03-01T21:30:00Z", o=100.0)) == []
    fake.market_open = True
    assert [f["order_id"] for f in fake.push_bar("AAPL", bar("2024-03-04T14:30:00Z", o=101.0))] == [
        str(queued.id)
    ]


def test_cancel_and_close_position(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    a = buy(client, qty=1)
    b = buy(client, "SPY", qty=2)
    assert client.cancel_order_by_id(a.id) is None  # 204, no body
    assert client.get_order_by_id(a.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as info:
        client.cancel_order_by_id(a.id)
    assert info.value.status_code == 422
    with pytest.raises(APIError) as info:
        client.cancel_order_by_id("00000000-0000-4000-8000-000000000000")
    assert info.value.status_code == 404
    c = buy(client, qty=3)
    cancelled = client.cancel_orders()
    assert sorted(str(r.id) for r in cancelled) == sorted([str(b.id), str(c.id)])
    assert all(r.status == 200 for r in cancelled)
    assert client.get_orders() == []

    buy(client, qty=10)
    fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=100.0))
    close = client.close_position("AAPL", ClosePositionRequest(percentage="50"))
    assert close.side == OrderSide.SELL and float(close.qty) == 5
    fake.push_bar("AAPL", bar("2024-03-01T16:30:00Z", o=104.0))
    assert float(client.get_open_position("AAPL").qty) == 5
    client.close_position("AAPL")
    fake.push_bar("AAPL", bar("2024-03-01T17:30:00Z", o=106.0))
    assert client.get_all_positions() == []
    assert float(client.get_account().cash) == pytest.approx(100_000 - 1_000 + 5 * 104 + 5 * 106)
    with pytest.raises(APIError) as info:
        client.close_position("AAPL")
    assert info.value.status_code == 404


# ---- WebSockets ------------------------------------------------------------------------
def test_trading_stream_receives_new_partial_fill_and_cancel(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    updates: list[Any] = []

    async def on_update(update: Any) -> None:
        updates.append(update)

    with FakeAlpacaStreams(fake) as ws:
        stream = TradingStream(KEY, SECRET, paper=True, url_override=ws.trading_url)
        stream.subscribe_trade_updates(on_update)
        with running(stream, ws):
            ws.wait_listening()
            fake.set_partial_fills((0.5, 0.5))
            order = buy(client, qty=4)
            fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=100.0))
            fake.push_bar("AAPL", bar("2024-03-01T16:30:00Z", o=102.0))
            other = buy(client, "SPY", qty=2)
            client.cancel_order_by_id(other.id)
            fake.reject_next_order()
            buy(client, qty=1)
            wait_for(lambda: len(updates) >= 6, what="6 trade updates")
    names = [u.event.value if hasattr(u.event, "value") else u.event for u in updates]
    assert names == ["new", "partial_fill", "fill", "new", "canceled", "rejected"]
    assert [str(u.order.id) for u in updates[:3]] == [str(order.id)] * 3
    assert updates[1].qty == 2 and updates[1].order.status == OrderStatus.PARTIALLY_FILLED
    fill = updates[2]
    assert str(fill.order.id) == str(order.id) and fill.price == 102.0 and fill.qty == 2
    assert fill.position_qty == 4 and fill.order.status == OrderStatus.FILLED
    assert ws.received[0][1]["action"] == "authenticate"
    assert ws.received[1][1] == {"action": "listen", "data": {"streams": ["trade_updates"]}}


def test_trading_stream_fill_after_push_bar(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    fills: list[Any] = []

    async def on_update(update: Any) -> None:
        if update.event == "fill":
            fills.append(update)

    with FakeAlpacaStreams(fake) as ws:
        stream = TradingStream(KEY, SECRET, paper=True, url_override=ws.trading_url)
        stream.subscribe_trade_updates(on_update)
        with running(stream, ws):
            ws.wait_listening()
            order = buy(client, qty=7)
            fake.push_bar("AAPL", bar("2024-03-01T15:30:00Z", o=123.45))
            wait_for(lambda: len(fills) == 1, what="the fill update")
    (fill,) = fills
    assert str(fill.order.id) == str(order.id)
    assert (fill.qty, fill.price, fill.position_qty) == (7, 123.45, 7)
    assert fill.timestamp == datetime(2024, 3, 1, 15, 30, tzinfo=UTC)


def test_stock_data_stream_receives_pushed_bar_and_reconnects(fake: FakeAlpacaTrading) -> None:
    got: list[Any] = []

    async def on_bar(b: Any) -> None:
        got.append(b)

    with FakeAlpacaStreams(fake) as ws:
        stream = StockDataStream(KEY, SECRET, feed=DataFeed.IEX, url_override=ws.data_url("iex"))
        stream.subscribe_bars(on_bar, "AAPL", "SPY")
        with running(stream, ws):
            ws.wait_subscribed("AAPL")
            fake.push_bar(
                "AAPL",
                {
                    "t": "2024-03-01T15:30:00Z",
                    "o": 180.1,
                    "h": 181.2,
                    "l": 179.9,
                    "c": 180.7,
                    "v": 12345,
                    "n": 321,
                    "vw": 180.5,
                },
            )
            fake.push_bar("MSFT", bar("2024-03-01T15:30:00Z", o=400.0))  # not subscribed: not sent
            wait_for(lambda: len(got) == 1, what="the AAPL bar")

            assert (
                ws.drop_connections() == 1
            )  # network drop: alpaca-py reconnects (about 1 s back-off)
            ws.wait_connects("data", 2, timeout=8)
            ws.wait_subscribed("SPY", timeout=8)
            fake.push_bar("SPY", bar("2024-03-01T15:30:00Z", o=510.0))
            wait_for(lambda: len(got) == 2, what="the SPY bar after the reconnect")
    first = got[0]
    assert first.symbol == "AAPL" and first.timestamp == datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        180.1,
        181.2,
        179.9,
        180.7,
        12345,
    )
    assert (first.trade_count, first.vwap) == (321, 180.5)
    assert got[1].symbol == "SPY" and got[1].open == 510.0
    auth = next(m for p, m in ws.received if m.get("action") == "auth")
    assert ws.received[0][0] == "/v2/iex" and auth == {
        "action": "auth",
        "key": KEY,
        "secret": SECRET,
    }


def test_stock_data_stream_bad_keys(fake: FakeAlpacaTrading) -> None:
    with FakeAlpacaStreams(fake) as ws:
        stream = StockDataStream(KEY, "wrong", url_override=ws.data_url("sip"))

        async def on_bar(b: Any) -> None:  # pragma: no cover - never called
            raise AssertionError("no bar expected")

        stream.subscribe_bars(on_bar, "AAPL")
        with running(stream, ws):
            ws.wait_connects("data", 1)
            wait_for(
                lambda: any(m.get("action") == "auth" for _, m in ws.received),
                what="the auth attempt",
            )
            time.sleep(0.1)
            assert not any(m.get("action") == "subscribe" for _, m in ws.received)


# ---- the instrument provider -----------------------------------------------------------
@pytest.fixture
def trading_env(fake: FakeAlpacaTrading, monkeypatch: pytest.MonkeyPatch) -> AlpacaConfig:
    monkeypatch.setenv(KEY_ID_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv(TRADING_URL_ENV, fake.url)
    return AlpacaConfig()


def test_instrument_provider_builds_instruments(
    fake: FakeAlpacaTrading, trading_env: AlpacaConfig
) -> None:
    client = make_trading_client(trading_env)
    whole = AlpacaInstrumentProvider(client, ["AAPL", "BRK.A"], fractional=False).load_symbols()
    assert all(isinstance(i, Equity) for i in whole.values())
    provider = AlpacaInstrumentProvider(client, ["AAPL", "SPY", "BRK.A"], fractional=True)
    built = provider.load_symbols()
    assert isinstance(built["AAPL"], Commodity) and built["AAPL"].size_precision == 6
    assert isinstance(built["BRK.A"], Equity)  # not fractionable at Alpaca: whole shares
    assert provider.find(instrument_id("SPY")) is built["SPY"]
    assert provider.is_fractional("SPY") and not provider.is_fractional("BRK.A")
    assert [r.path for r in fake.requests if r.path.startswith("/v2/assets/")] == [
        "/v2/assets/AAPL",
        "/v2/assets/BRK.A",
        "/v2/assets/AAPL",
        "/v2/assets/SPY",
        "/v2/assets/BRK.A",
    ]

    asyncio.run(
        AlpacaInstrumentProvider(client, fractional=True).load_ids_async([instrument_id("AAPL")])
    )


def test_instrument_provider_refuses_untradable_and_unknown(
    fake: FakeAlpacaTrading, trading_env: AlpacaConfig
) -> None:
    provider = AlpacaInstrumentProvider(make_trading_client(trading_env), ["AAPL", "HALT", "NOPE"])
    with pytest.raises(BrokerError) as info:
        provider.load_symbols()
    msg = str(info.value)
    assert "HALT (not tradable" in msg and "NOPE (Alpaca does not know" in msg and "AAPL" not in msg
    assert provider.list_all() == []  # nothing added when any symbol is refused
    assert SECRET not in msg


def test_instrument_provider_retries_transient_faults(
    fake: FakeAlpacaTrading, trading_env: AlpacaConfig
) -> None:
    cfg = AlpacaConfig(retry=RetryPolicy(max_retries=2, backoff_s=0.01))
    fake.fail_next(2, 503)
    built = AlpacaInstrumentProvider(make_trading_client(cfg), ["SPY"]).load_symbols()
    assert isinstance(built["SPY"], Equity)
    assert [r.status for r in fake.requests_to("/v2/assets/SPY")] == [503, 503, 200]
