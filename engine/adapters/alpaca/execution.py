"""The Alpaca execution client of a NautilusTrader ``TradingNode``.

Orders go to Alpaca with alpaca-py's ``TradingClient`` (REST); their life - accepted,
partially filled, filled, canceled, rejected, replaced, expired - comes back on
``TradingStream`` trade updates and becomes NautilusTrader order events.

Idempotency
    The NautilusTrader ``ClientOrderId`` is sent as Alpaca's ``client_order_id``. When a
    submit gets a 5xx or no answer, the same request is sent again (``submit_retries``
    times): if the first one did reach Alpaca, Alpaca answers ``client_order_id must be
    unique`` and the existing order is fetched instead - an order is never placed twice.
    Any other refusal (4xx: insufficient buying power, not fractionable, market closed ...)
    becomes an ``OrderRejected`` with Alpaca's message and is *not* retried.

Pre-trade limits (``AlpacaExecClientConfig``)
    ``max_order_notional``, ``max_position_notional`` and ``daily_loss_limit`` are checked
    before an order leaves; a breach is an ``OrderDenied`` naming the limit. Exits
    (``reduce_only``) are never held back by them.

Reconciliation
    NautilusTrader asks at start for order, fill and position status reports; they are
    built from ``GET /v2/orders`` and ``GET /v2/positions``. After a trade-stream reconnect,
    every order still open in the cache is re-read by REST and the fills it missed are
    generated (trade id = venue order id + cumulative quantity, so a replay is a no-op).

Alpaca market orders are sent ``time_in_force = day`` (required for fractional orders).
US equity trades at Alpaca carry no commission; fills report 0 USD.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    CancelAllOrders,
    CancelOrder,
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
    ModifyOrder,
    SubmitOrder,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import (
    AccountType,
    LiquiditySide,
    OmsType,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    TimeInForce,
)
from nautilus_trader.model.identifiers import (
    AccountId,
    ClientId,
    ClientOrderId,
    TradeId,
    VenueOrderId,
)
from nautilus_trader.model.objects import AccountBalance, Money

from engine import catalog as cat
from engine.adapters.alpaca.config import AlpacaExecClientConfig, credentials
from engine.adapters.alpaca.http import api_message
from engine.adapters.alpaca.providers import AlpacaInstrumentProvider
from engine.adapters.alpaca.streams import hooked_stream, utc_ns

ALPACA = "ALPACA"

_STATUS = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.CANCELED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "pending_replace": OrderStatus.PENDING_UPDATE,
    "done_for_day": OrderStatus.CANCELED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
}


def _ns(value: Any) -> int:
    """An order time from Alpaca as UTC ns; 0 when absent."""
    return utc_ns(value) if value else 0


def _dec(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def make_trading_stream(config: AlpacaExecClientConfig, on_connected: Any) -> Any:
    """alpaca-py ``TradingStream`` (raw JSON) that awaits *on_connected(n)* after each connection."""
    from alpaca.trading.stream import TradingStream

    key_id, secret = credentials()
    stream_cls = hooked_stream(TradingStream, "_start_ws", on_connected)
    return stream_cls(key_id, secret, paper=config.alpaca.paper, raw_data=True,
                   url_override=config.alpaca.resolved_trading_stream_url())


class AlpacaExecutionClient(LiveExecutionClient):
    """Orders to Alpaca, events back from its trade-update stream (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        provider: AlpacaInstrumentProvider,
        client: Any,
        config: AlpacaExecClientConfig,
    ) -> None:
        super().__init__(
            loop=loop, client_id=ClientId(str(cat.VENUE)), venue=cat.VENUE, oms_type=OmsType.NETTING,
            account_type=AccountType.MARGIN if config.margin else AccountType.CASH, base_currency=USD, instrument_provider=provider,
            msgbus=msgbus, cache=cache, clock=clock, config=config,
        )
        self._cfg = config
        self._client = client
        self._stream: Any = None
        self._seen_trades: set[str] = set()
        self._accepted: set[ClientOrderId] = set()
        self._venue_ids: dict[str, ClientOrderId] = {}
        # NautilusTrader wants the account's issuer to be the client id; the venue is XNYS
        self._set_account_id(AccountId(f"{cat.VENUE}-ALPACA-{'PAPER' if config.alpaca.paper else 'LIVE'}"))

    # ---- helpers --------------------------------------------------------------------------
    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _instrument(self, symbol: str) -> Any:
        return self._cache.instrument(cat.instrument_id(symbol))

    async def _account_state(self) -> dict[str, Any]:
        acct = await self._call(self._client.get_account)
        cash = _dec(acct.get("cash"))
        self.generate_account_state(
            balances=[AccountBalance(Money(cash, USD), Money(0, USD), Money(cash, USD))],
            margins=[], reported=True, ts_event=self._clock.timestamp_ns(),
        )
        return acct

    # ---- connection -------------------------------------------------------------------------
    async def _connect(self) -> None:
        from engine.runner import allow_cash_borrowing

        allow_cash_borrowing()  # the books show a fill that costs a cent more than the cash
        provider: AlpacaInstrumentProvider = self._instrument_provider  # type: ignore[assignment]
        if not provider.assets:
            await asyncio.to_thread(provider.load_symbols, list(self._cfg.symbols))
        for inst in provider.list_all():
            self._cache.add_instrument(inst)
        await self._account_state()
        self._stream = make_trading_stream(self._cfg, self._on_stream_connected)
        self._stream.subscribe_trade_updates(self._on_trade_update)
        self.create_task(self._stream._run_forever(), log_msg="alpaca trade updates")

    async def _disconnect(self) -> None:
        if self._stream is not None:
            await self._stream.stop_ws()
            await self._stream.close()

    async def _on_stream_connected(self, n: int) -> None:
        if n > 1:
            await self._sync_open_orders()

    # ---- pre-trade limits ----------------------------------------------------------------
    def _last_price(self, symbol: str) -> float:
        bars = [bt for bt in self._cache.bar_types(instrument_id=cat.instrument_id(symbol))]
        for bt in bars:
            bar = self._cache.bar(bt)
            if bar is not None:
                return bar.close.as_double()
        return 0.0

    async def _limit_breach(self, order: Any) -> str:
        cfg = self._cfg
        if order.is_reduce_only:
            return ""
        symbol = order.instrument_id.symbol.value
        price = self._last_price(symbol)
        qty = order.quantity.as_double()
        notional = qty * price
        if cfg.max_order_notional > 0 and notional > cfg.max_order_notional:
            return (f"pre-trade limit: order {order.side_string()} {qty:g} {symbol} ≈ ${notional:,.2f} exceeds "
                    f"max_order_notional ${cfg.max_order_notional:,.2f}")
        if cfg.max_position_notional > 0:
            held = 0.0
            for pos in self._cache.positions_open(instrument_id=order.instrument_id):
                held += pos.signed_qty
            after = abs(held + (qty if order.side == OrderSide.BUY else -qty)) * price
            if after > cfg.max_position_notional:
                return (f"pre-trade limit: {symbol} position would be ≈ ${after:,.2f}, above "
                        f"max_position_notional ${cfg.max_position_notional:,.2f}")
        if cfg.daily_loss_limit > 0:
            acct = await self._account_state()
            equity, last = _dec(acct.get("equity")), _dec(acct.get("last_equity"))
            if last > 0 and equity <= last * (1.0 - cfg.daily_loss_limit):
                return (f"pre-trade limit: equity ${equity:,.2f} is {100 * (1 - equity / last):.2f} % below the "
                        f"previous close's ${last:,.2f} (daily_loss_limit {100 * cfg.daily_loss_limit:g} %); "
                        "no new entries today")
        return ""

    # ---- commands ------------------------------------------------------------------------------
    def _request(self, order: Any) -> Any:
        from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

        symbol = order.instrument_id.symbol.value
        common = {
            "symbol": symbol,
            "qty": float(order.quantity.as_decimal()),
            "side": "buy" if order.side == OrderSide.BUY else "sell",
            "time_in_force": "day",
            "client_order_id": order.client_order_id.value,
        }
        if order.order_type == OrderType.LIMIT:
            return LimitOrderRequest(limit_price=float(order.price.as_decimal()), **common)
        if order.order_type != OrderType.MARKET:
            raise ValueError(f"order type {order.order_type} is not supported by sigtrade's Alpaca client")
        return MarketOrderRequest(**common)

    async def _submit_order(self, command: SubmitOrder) -> None:
        from alpaca.common.exceptions import APIError

        order = command.order
        ts = self._clock.timestamp_ns()
        reason = await self._limit_breach(order)
        if reason:
            self._log.warning(f"{order.client_order_id}: denied: {reason}")
            self.generate_order_denied(command.strategy_id, order.instrument_id, order.client_order_id, reason, ts)
            return
        try:
            request = self._request(order)
        except ValueError as exc:
            self.generate_order_denied(command.strategy_id, order.instrument_id, order.client_order_id, str(exc), ts)
            return
        self.generate_order_submitted(command.strategy_id, order.instrument_id, order.client_order_id, ts)
        coid = order.client_order_id.value
        answer: dict[str, Any] | None = None
        failure = ""
        for attempt in range(self._cfg.submit_retries + 1):
            try:
                answer = await self._call(self._client.submit_order, request)
                break
            except APIError as exc:
                status = exc.status_code
                message = api_message(exc)
                if status == 422 and "client_order_id must be unique" in message:
                    answer = await self._call(self._client.get_order_by_client_id, coid)
                    self._log.info(f"{coid}: already at Alpaca (an earlier try got through); not sent again")
                    break
                if status is not None and (status >= 500 or status == 429):
                    failure = f"HTTP {status} ({message})"
                else:
                    self._reject(command.strategy_id, order, f"Alpaca refused the order (HTTP {status}): {message}")
                    return
            except Exception as exc:  # noqa: BLE001 - connection dropped / timed out: unknown outcome
                failure = f"no answer ({type(exc).__name__})"
            if attempt < self._cfg.submit_retries:
                wait = min(self._cfg.alpaca.retry.backoff_s * 2**attempt, self._cfg.alpaca.retry.max_wait_s)
                self._log.warning(f"{coid}: submit failed: {failure}; re-sending the same client_order_id in {wait:.1f} s")
                await asyncio.sleep(wait)
        if answer is None:
            existing = await self._find_by_client_id(coid)
            if existing is None:
                self._reject(command.strategy_id, order, f"Alpaca did not take the order after "
                             f"{self._cfg.submit_retries + 1} tries: {failure}")
                return
            answer = existing
        self._on_order_answer(order, answer)

    async def _find_by_client_id(self, coid: str) -> dict[str, Any] | None:
        from alpaca.common.exceptions import APIError

        try:
            return await self._call(self._client.get_order_by_client_id, coid)
        except APIError:
            return None

    def _reject(self, strategy_id: Any, order: Any, reason: str) -> None:
        self._log.warning(f"{order.client_order_id}: rejected: {reason}")
        self.generate_order_rejected(strategy_id, order.instrument_id, order.client_order_id, reason,
                                     self._clock.timestamp_ns())

    def _on_order_answer(self, order: Any, answer: dict[str, Any]) -> None:
        vid = VenueOrderId(str(answer["id"]))
        self._venue_ids[vid.value] = order.client_order_id
        current = self._cache.order(order.client_order_id)
        if current is not None and current.status == OrderStatus.SUBMITTED:
            self._accept(current, vid, _ns(answer.get("submitted_at")) or self._clock.timestamp_ns())
        status = str(answer.get("status", ""))
        if status == "rejected" and current is not None and not current.is_closed:
            self.generate_order_rejected(order.strategy_id, order.instrument_id, order.client_order_id,
                                         "rejected by Alpaca", self._clock.timestamp_ns())
        elif _dec(answer.get("filled_qty")) > 0:
            self._catch_up_fills(answer)

    async def _cancel_order(self, command: CancelOrder) -> None:
        from alpaca.common.exceptions import APIError

        order = self._cache.order(command.client_order_id)
        if order is None or order.is_closed:
            return
        venue_id = order.venue_order_id.value if order.venue_order_id else None
        try:
            if venue_id is None:
                found = await self._find_by_client_id(command.client_order_id.value)
                if found is None:
                    return
                venue_id = str(found["id"])
            await self._call(self._client.cancel_order_by_id, venue_id)
        except APIError as exc:
            self.generate_order_cancel_rejected(
                order.strategy_id, order.instrument_id, order.client_order_id,
                order.venue_order_id, f"Alpaca refused the cancel (HTTP {exc.status_code}): {api_message(exc)}",
                self._clock.timestamp_ns(),
            )

    async def _cancel_all_orders(self, command: CancelAllOrders) -> None:
        for order in self._cache.orders_open(instrument_id=command.instrument_id):
            await self._cancel_order(CancelOrder(
                trader_id=command.trader_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                client_order_id=order.client_order_id, venue_order_id=order.venue_order_id,
                command_id=UUID4(), ts_init=self._clock.timestamp_ns(),
            ))

    async def _modify_order(self, command: ModifyOrder) -> None:
        from alpaca.common.exceptions import APIError
        from alpaca.trading.requests import ReplaceOrderRequest

        order = self._cache.order(command.client_order_id)
        if order is None or order.venue_order_id is None:
            return
        fields: dict[str, Any] = {}
        if command.quantity is not None:
            fields["qty"] = int(command.quantity.as_double()) if command.quantity.precision == 0 else float(command.quantity)
        if command.price is not None:
            fields["limit_price"] = float(command.price)
        try:
            answer = await self._call(self._client.replace_order_by_id, order.venue_order_id.value,
                                      ReplaceOrderRequest(**fields))
        except APIError as exc:
            self.generate_order_modify_rejected(
                order.strategy_id, order.instrument_id, order.client_order_id, order.venue_order_id,
                f"Alpaca refused the replace (HTTP {exc.status_code}): {api_message(exc)}", self._clock.timestamp_ns(),
            )
            return
        inst = self._instrument(order.instrument_id.symbol.value)
        new_vid = VenueOrderId(str(answer["id"]))
        self._venue_ids[new_vid.value] = order.client_order_id
        self.generate_order_updated(
            order.strategy_id, order.instrument_id, order.client_order_id, new_vid,
            inst.make_qty(_dec(answer.get("qty"))),
            inst.make_price(_dec(answer.get("limit_price"))) if answer.get("limit_price") else None,
            None, self._clock.timestamp_ns(), new_vid != order.venue_order_id,
        )

    # ---- trade updates ---------------------------------------------------------------------------
    async def _on_trade_update(self, msg: dict[str, Any]) -> None:
        data = msg.get("data", msg)
        event = str(data.get("event", ""))
        payload = data.get("order") or {}
        # a replacement order has a new id and client_order_id at Alpaca: find it by venue id
        coid = self._venue_ids.get(str(payload.get("id", "")))
        if coid is None and payload.get("replaces"):  # its update may come before the PATCH answer
            coid = self._venue_ids.get(str(payload["replaces"]))
        if coid is None and payload.get("client_order_id"):
            coid = ClientOrderId(str(payload["client_order_id"]))
        order = self._cache.order(coid) if coid is not None else None
        if order is None:
            return  # not ours (another session's or an external order)
        if event == "replaced":
            return  # the replacement's ids were registered by _modify_order (generate_order_updated)
        vid = VenueOrderId(str(payload["id"]))
        self._venue_ids[vid.value] = order.client_order_id
        ts = _ns(data.get("timestamp")) or self._clock.timestamp_ns()
        if order.status == OrderStatus.SUBMITTED and event != "rejected":
            self._accept(order, vid, ts)
        if event in ("fill", "partial_fill"):
            trade = str(data.get("execution_id") or f"{vid.value}-{payload.get('filled_qty')}")
            self._fill(order, vid, trade, _dec(data.get("qty")), _dec(data.get("price")), ts)
        elif event == "canceled" and not order.is_closed:
            self.generate_order_canceled(order.strategy_id, order.instrument_id, order.client_order_id, vid, ts)
        elif event == "expired" and not order.is_closed:
            self.generate_order_expired(order.strategy_id, order.instrument_id, order.client_order_id, vid, ts)
        elif event == "rejected" and not order.is_closed:
            reason = str(data.get("reason") or payload.get("reject_reason") or "rejected by Alpaca")
            self.generate_order_rejected(order.strategy_id, order.instrument_id, order.client_order_id,
                                         f"Alpaca rejected the order: {reason}", ts)

    def _accept(self, order: Any, vid: VenueOrderId, ts: int) -> None:
        """OrderAccepted for *order*, once.

        The REST answer and the trade stream's ``new`` can both arrive before the engine has
        processed the first OrderAccepted (the cache still says SUBMITTED): a second one made
        the strategy see "accepted" twice and act on it twice.
        """
        if order.client_order_id in self._accepted:
            return
        self._accepted.add(order.client_order_id)
        self.generate_order_accepted(order.strategy_id, order.instrument_id, order.client_order_id, vid, ts)

    def _fill(self, order: Any, vid: VenueOrderId, trade: str, qty: float, price: float, ts: int) -> None:
        if trade in self._seen_trades or qty <= 0:
            return
        self._seen_trades.add(trade)
        inst = self._instrument(order.instrument_id.symbol.value)
        self.generate_order_filled(
            order.strategy_id, order.instrument_id, order.client_order_id, vid, None, TradeId(trade[:36]),
            order.side, order.order_type, inst.make_qty(qty), inst.make_price(price), USD, Money(0, USD),
            LiquiditySide.TAKER, ts,
        )

    def _catch_up_fills(self, answer: dict[str, Any]) -> None:
        """Generate the fill an order's REST record shows beyond what the cache has (missed updates)."""
        coid = ClientOrderId(str(answer["client_order_id"]))
        order = self._cache.order(coid)
        if order is None:
            return
        filled = _dec(answer.get("filled_qty"))
        have = order.filled_qty.as_double()
        delta = round(filled - have, 9)
        if delta <= 0:
            return
        avg = _dec(answer.get("filled_avg_price"))
        have_px = float(order.avg_px) if have > 0 and order.avg_px else 0.0
        px = (avg * filled - have_px * have) / delta if have > 0 else avg
        vid = VenueOrderId(str(answer["id"]))
        self._fill(order, vid, f"{vid.value}-{filled:g}", delta, px, _ns(answer.get("updated_at")) or self._clock.timestamp_ns())

    async def _sync_open_orders(self) -> None:
        """After a trade-stream reconnect: read every open order by REST; generate what was missed."""
        for order in list(self._cache.orders_open(venue=cat.VENUE)):
            found = await self._find_by_client_id(order.client_order_id.value)
            if found is None:
                continue
            self._catch_up_fills(found)
            status = str(found.get("status", ""))
            current = self._cache.order(order.client_order_id)
            vid = VenueOrderId(str(found["id"]))
            if current is None or current.is_closed:
                continue
            ts = _ns(found.get("updated_at")) or self._clock.timestamp_ns()
            if status == "canceled":
                self.generate_order_canceled(order.strategy_id, order.instrument_id, order.client_order_id, vid, ts)
            elif status == "expired":
                self.generate_order_expired(order.strategy_id, order.instrument_id, order.client_order_id, vid, ts)
            elif status == "rejected":
                self.generate_order_rejected(order.strategy_id, order.instrument_id, order.client_order_id,
                                             "rejected by Alpaca", ts)
        self._log.info("trade stream reconnected: open orders re-read from Alpaca")

    # ---- reconciliation reports --------------------------------------------------------------------
    def _status_report(self, o: dict[str, Any]) -> OrderStatusReport | None:
        symbol = str(o.get("symbol", ""))
        inst = self._instrument(symbol)
        if inst is None:
            return None
        qty = _dec(o.get("qty")) or _dec(o.get("filled_qty"))
        if qty <= 0:
            return None
        now = self._clock.timestamp_ns()
        limit = o.get("limit_price")
        return OrderStatusReport(
            account_id=self.account_id, instrument_id=inst.id, venue_order_id=VenueOrderId(str(o["id"])),
            order_side=OrderSide.BUY if o.get("side") == "buy" else OrderSide.SELL,
            order_type=OrderType.LIMIT if limit else OrderType.MARKET, time_in_force=TimeInForce.DAY,
            order_status=_STATUS.get(str(o.get("status")), OrderStatus.ACCEPTED),
            quantity=inst.make_qty(qty), filled_qty=inst.make_qty(_dec(o.get("filled_qty"))),
            report_id=UUID4(), ts_accepted=_ns(o.get("submitted_at")) or now,
            ts_last=_ns(o.get("updated_at")) or now, ts_init=now,
            client_order_id=ClientOrderId(str(o["client_order_id"])) if o.get("client_order_id") else None,
            price=inst.make_price(_dec(limit)) if limit else None,
            avg_px=Decimal(str(o["filled_avg_price"])) if o.get("filled_avg_price") else None,
        )

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        from alpaca.common.exceptions import APIError

        try:
            if command.venue_order_id is not None:
                o = await self._call(self._client.get_order_by_id, command.venue_order_id.value)
            elif command.client_order_id is not None:
                o = await self._call(self._client.get_order_by_client_id, command.client_order_id.value)
            else:
                return None
        except APIError:
            return None
        return self._status_report(o)

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        from alpaca.trading.requests import GetOrdersRequest

        symbols = [command.instrument_id.symbol.value] if command.instrument_id else list(self._cfg.symbols)
        status = "open" if command.open_only else "all"
        orders = await self._call(self._client.get_orders, GetOrdersRequest(status=status, symbols=symbols, limit=500))
        reports = [r for r in (self._status_report(o) for o in orders) if r is not None]
        self._log.info(f"reconciliation: {len(reports)} order status report(s) from Alpaca")
        return reports

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        # Alpaca's orders carry cumulative fills (filled_qty, filled_avg_price); the order
        # status reports above let NautilusTrader infer the fills it lacks.
        return []

    async def generate_position_status_reports(self, command: GeneratePositionStatusReports) -> list[PositionStatusReport]:
        positions = await self._call(self._client.get_all_positions)
        now = self._clock.timestamp_ns()
        reports = []
        for p in positions:
            inst = self._instrument(str(p.get("symbol")))
            if inst is None:
                continue
            if command.instrument_id is not None and inst.id != command.instrument_id:
                continue
            qty = _dec(p.get("qty"))
            side = PositionSide.LONG if qty > 0 else PositionSide.SHORT if qty < 0 else PositionSide.FLAT
            reports.append(PositionStatusReport(
                account_id=self.account_id, instrument_id=inst.id, position_side=side,
                quantity=inst.make_qty(abs(qty)), report_id=UUID4(), ts_last=now, ts_init=now,
                avg_px_open=Decimal(str(p["avg_entry_price"])) if p.get("avg_entry_price") else None,
            ))
        self._log.info(f"reconciliation: {len(reports)} position(s) at Alpaca")
        return reports
