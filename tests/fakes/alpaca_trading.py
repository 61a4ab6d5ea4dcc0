"""Alpaca's trading REST API, faked on top of :class:`~tests.fakes.alpaca_server.FakeAlpaca`.

:class:`FakeAlpacaTrading` is a :class:`FakeAlpaca` (the same HTTP server, auth, scripted
faults and request log; the historical ``/v2/stocks/bars`` keeps working) with a paper
account behind it. Payloads have the shapes of Alpaca's own samples
(``../shared/data/alpaca/rest_v2_account.json``, ``rest_v2_asset_get.json``,
``rest_v2_orders_submit_market.json``, ``rest_v2_positions_list.json``,
``rest_v1_clock_tradeapi.json``, ``rest_v2_orders_cancel_all.json``) and errors are
``{"code", "message"}`` like ``rest_error_*.json``.

Routes
    ``GET /v2/account``, ``GET /v2/clock``, ``GET /v2/assets/{symbol}``,
    ``POST /v2/orders``, ``GET /v2/orders`` (``status`` open|closed|all, ``symbols``,
    ``limit``, ``direction``), ``GET /v2/orders/{id}``,
    ``GET /v2/orders:by_client_order_id``, ``DELETE /v2/orders/{id}`` (204),
    ``DELETE /v2/orders`` (207, one entry per open order), ``PATCH /v2/orders/{id}`` (replace), ``GET /v2/positions``,
    ``GET /v2/positions/{symbol}``, ``DELETE /v2/positions/{symbol}`` (``qty`` or
    ``percentage``; answers the closing market order).

Matching model (deliberately simple, all of it deterministic)
    * An accepted order is ``new`` at once (``new`` trade update). Nothing fills on
      submit: :meth:`FakeAlpacaTrading.push_bar` is "the next bar". It fills the
      symbol's open market orders at the bar's open, buy limits at ``min(open, limit)``
      when ``low <= limit``, sell limits at ``max(open, limit)`` when ``high >= limit``;
      notional orders get ``qty = notional / price`` (9 decimals). Cash, positions
      (average entry) and the position's ``current_price`` (bar close) follow.
    * Partial fills: :meth:`set_partial_fills` ``(0.4, 0.6)`` makes every later order
      fill 40 % on its first bar (``partial_fill``) and the rest on the next (``fill``).
      Whole-share orders round partial slices down to whole shares.
    * Refusals at submit (HTTP, the order is not created): unknown or non-tradable asset
      (422), qty and notional both or neither (422, Alpaca's texts), a fractional qty or a
      notional on a non-fractionable asset (422), a repeated ``client_order_id`` (422
      ``client_order_id must be unique``), a buy costing more than the buying power (403
      ``insufficient buying power``), a sell of more than the position holds (403
      ``insufficient qty available for order``) unless :attr:`shorting_enabled` and the
      asset is ``shortable`` (a short sale of whole shares), and :meth:`refuse_next_order`.
    * :meth:`reject_next_order`: the next order is accepted over HTTP, then rejected
      (``rejected`` trade update, status ``rejected``), as when the venue refuses it.
    * :meth:`lose_next_submit_response`: the next order is created, but the HTTP answer is
      a 5xx (as when a proxy times out after Alpaca took it) - the idempotency test.
    * :attr:`market_open` = False: the clock says closed and :meth:`push_bar` fills
      nothing (orders stay queued, as Alpaca queues them for the next open).

Trade updates and bars are announced to :meth:`add_listener` callbacks as
``("trade_updates", data)`` / ``("bar", frame)``; :class:`~tests.fakes.alpaca_streams.FakeAlpacaStreams`
is such a listener.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.alpaca_server import FakeAlpaca, Reply, Request, error

Listener = Callable[[str, dict[str, Any]], None]

OPEN_STATUSES = frozenset({"new", "accepted", "partially_filled", "pending_new"})
DEFAULT_CASH = 100_000.0


def _err(status: int, code: int, message: str, **extra: Any) -> Reply:
    return Reply(status, {"code": code, "message": message, **extra})


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(x: float) -> str:
    """Alpaca sends decimals as strings; whole numbers without a fraction."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.9f}".rstrip("0").rstrip(".")


@dataclass
class AssetSpec:
    """What ``GET /v2/assets/{symbol}`` says about a symbol."""

    symbol: str
    tradable: bool = True
    fractionable: bool = True
    shortable: bool = True
    marginable: bool = True
    exchange: str = "NASDAQ"
    status: str = "active"
    name: str = ""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": "us_equity",
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name or f"{self.symbol} Common Stock",
            "status": self.status,
            "tradable": self.tradable,
            "marginable": self.marginable,
            "shortable": self.shortable,
            "easy_to_borrow": self.shortable,
            "fractionable": self.fractionable,
            "attributes": [],
        }


@dataclass
class _Position:
    asset: AssetSpec
    qty: float = 0.0
    avg_entry: float = 0.0
    current_price: float = 0.0
    lastday_price: float = 0.0


class FakeAlpacaTrading(FakeAlpaca):
    """:class:`FakeAlpaca` plus a paper trading account (see the module docstring)::

    with FakeAlpacaTrading(key_id=K, secret=S) as fake:
        fake.add_asset("AAPL", fractionable=False)
        client = TradingClient(K, S, paper=True, url_override=fake.url)
        order = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=3, side="buy", time_in_force="day"))
        fake.push_bar("AAPL", {"t": ..., "o": 190.0, "h": 191, "l": 189, "c": 190.5, "v": 1000})
    """

    def __init__(
        self,
        key_id: str = "test-key",
        secret: str = "test-secret",
        *,
        page_size: int = 10_000,
        cash: float = DEFAULT_CASH,
    ) -> None:
        super().__init__(key_id, secret, page_size=page_size)
        self.cash = float(cash)
        self.market_open = True
        self.shorting_enabled = False
        """A margin account that may sell short (whole shares of ``shortable`` assets)."""
        self.account_id = str(uuid.uuid4())
        self.created_at = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        self.assets: dict[str, AssetSpec] = {}
        self.positions: dict[str, _Position] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        """Every order by id, in Alpaca's JSON shape (what the API answers)."""
        self.last_prices: dict[str, float] = {}
        """Last close pushed per symbol (prices market buys for the buying-power check)."""
        self.fills: list[dict[str, Any]] = []
        """Every execution: order id, symbol, side, qty, price, timestamp."""
        self._order_seq: list[str] = []
        self._by_client: dict[str, str] = {}
        self._partial: tuple[float, ...] | None = None
        self._slices: dict[str, list[float]] = {}
        self._refusals: list[Reply] = []
        self._rejections: list[str] = []
        self._lost: list[int] = []
        self._listeners: list[Listener] = []
        self._book = threading.RLock()
        self.routes.update(
            {
                ("GET", "/v2/account"): self._account,
                ("GET", "/v2/clock"): self._clock,
                ("POST", "/v2/orders"): self._submit,
                ("GET", "/v2/orders"): self._list_orders,
                ("DELETE", "/v2/orders"): self._cancel_all,
                ("GET", "/v2/orders:by_client_order_id"): self._order_by_client_id,
                ("GET", "/v2/positions"): self._list_positions,
            }
        )
        self.prefix_routes.update(
            {
                ("GET", "/v2/assets/"): self._asset,
                ("GET", "/v2/orders/"): self._order_by_id,
                ("DELETE", "/v2/orders/"): self._cancel_one,
                ("PATCH", "/v2/orders/"): self._replace,
                ("GET", "/v2/positions/"): self._position,
                ("DELETE", "/v2/positions/"): self._close_position,
            }
        )

    # ---- test controls ---------------------------------------------------------------
    def add_asset(self, symbol: str, **flags: Any) -> AssetSpec:
        """Make *symbol* known (flags: tradable, fractionable, shortable, marginable, exchange, status)."""
        spec = AssetSpec(symbol, **flags)
        with self._book:
            self.assets[symbol] = spec
        return spec

    def set_position(self, symbol: str, qty: float, avg_entry: float) -> None:
        """Start with a position (the asset must be known; cash is not touched)."""
        with self._book:
            self.positions[symbol] = _Position(
                self.assets[symbol],
                float(qty),
                float(avg_entry),
                float(avg_entry),
                float(avg_entry),
            )

    def set_partial_fills(self, fractions: tuple[float, ...] | None) -> None:
        """Orders submitted from now on fill in these slices, one per bar (None: whole)."""
        if fractions is not None and (
            not fractions or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0
        ):
            raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
        with self._book:
            self._partial = tuple(fractions) if fractions else None

    def refuse_next_order(
        self, status: int = 403, message: str = "insufficient buying power", code: int | None = None
    ) -> None:
        """The next ``POST /v2/orders`` answers *status* with Alpaca's error body; no order is made."""
        with self._book:
            self._refusals.append(
                _err(status, code if code is not None else status * 100_000 + 10_000, message)
            )

    def lose_next_submit_response(self, status: int = 500) -> None:
        """The next ``POST /v2/orders`` creates the order, then answers *status* (the answer is "lost")."""
        with self._book:
            self._lost.append(status)

    def reject_next_order(self, reason: str = "rejected by the venue") -> None:
        """The next order is accepted over HTTP, then rejected (``rejected`` trade update)."""
        with self._book:
            self._rejections.append(reason)

    def add_listener(self, listener: Listener) -> None:
        """Call *listener(kind, payload)* for every trade update and pushed bar (must not block)."""
        with self._book:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._book:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def push_bar(self, symbol: str, bar: dict[str, Any]) -> list[dict[str, Any]]:
        """The next bar of *symbol* arrives: fill what it fills, then stream it.

        *bar* is Alpaca's bar shape: ``t`` (bar start: ISO string or datetime), ``o``,
        ``h``, ``l``, ``c``, ``v``, optional ``n``/``vw``. Returns the fills it made.
        """
        t = bar["t"]
        ts = datetime.fromisoformat(t.replace("Z", "+00:00")) if isinstance(t, str) else t
        o, h, lo, c = (float(bar[k]) for k in ("o", "h", "l", "c"))
        made: list[dict[str, Any]] = []
        with self._book:
            if self.market_open:
                for oid in list(self._order_seq):
                    order = self.orders[oid]
                    if order["symbol"] != symbol or order["status"] not in OPEN_STATUSES:
                        continue
                    price = self._fill_price(order, o, h, lo)
                    if price is not None:
                        fill = self._execute(order, price, ts)
                        if fill is not None:
                            made.append(fill)
            pos = self.positions.get(symbol)
            if pos is not None:
                pos.current_price = c
            self.last_prices[symbol] = c
            frame = {
                "T": "b",
                "S": symbol,
                "t": ts,
                "o": o,
                "h": h,
                "l": lo,
                "c": c,
                "v": bar.get("v", 0),
                "n": bar.get("n", 0),
                "vw": bar.get("vw", c),
            }
            self._emit("bar", frame)
        return made

    # ---- matching --------------------------------------------------------------------
    @staticmethod
    def _fill_price(order: dict[str, Any], o: float, h: float, lo: float) -> float | None:
        if order["type"] == "market":
            return o
        limit = float(order["limit_price"])
        if order["side"] == "buy":
            return min(o, limit) if lo <= limit else None
        return max(o, limit) if h >= limit else None

    def _execute(self, order: dict[str, Any], price: float, ts: datetime) -> dict[str, Any] | None:
        oid = order["id"]
        if order["qty"] is None:  # notional: the quantity is fixed by the first fill's price
            order["qty"] = _num(round(float(order["notional"]) / price, 9))
        total = float(order["qty"])
        done = float(order["filled_qty"])
        slices = self._slices.get(oid)
        if slices and len(slices) > 1:
            want = slices.pop(0) * total
            whole = total.is_integer()
            qty = math.floor(want) if whole else round(want, 9)
            qty = min(qty, total - done)
            if qty <= 0:
                return None
        else:
            qty = round(total - done, 9)
        new_done = round(done + qty, 9)
        avg_prev = float(order["filled_avg_price"] or 0.0)
        avg = (avg_prev * done + price * qty) / new_done
        complete = new_done >= total - 1e-12
        sign = 1.0 if order["side"] == "buy" else -1.0
        self.cash -= sign * qty * price
        sym = order["symbol"]
        pos = self.positions.get(sym) or _Position(self.assets[sym], 0.0, 0.0, price, price)
        new_qty = round(pos.qty + sign * qty, 9)
        if pos.qty == 0 or (pos.qty > 0) == (sign > 0):  # opening or adding
            pos.avg_entry = (
                (abs(pos.qty) * pos.avg_entry + qty * price) / abs(new_qty) if new_qty else 0.0
            )
        elif new_qty != 0 and (new_qty > 0) != (pos.qty > 0):  # flipped through zero
            pos.avg_entry = price
        pos.qty = new_qty
        pos.current_price = price
        if new_qty == 0:
            self.positions.pop(sym, None)
        else:
            self.positions[sym] = pos
        stamp = _iso(ts)
        order.update(
            filled_qty=_num(new_done),
            filled_avg_price=_num(round(avg, 9)),
            updated_at=stamp,
            status="filled" if complete else "partially_filled",
        )
        if complete:
            order["filled_at"] = stamp
            self._slices.pop(oid, None)
        fill = {
            "order_id": oid,
            "symbol": sym,
            "side": order["side"],
            "qty": qty,
            "price": price,
            "timestamp": ts,
        }
        self.fills.append(fill)
        self._emit(
            "trade_updates",
            {
                "event": "fill" if complete else "partial_fill",
                "execution_id": str(uuid.uuid4()),
                "order": dict(order),
                "position_qty": _num(new_qty),
                "price": _num(price),
                "qty": _num(qty),
                "timestamp": stamp,
            },
        )
        return fill

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(kind, payload)

    def _update(self, event: str, order: dict[str, Any], **extra: Any) -> None:
        pos = self.positions.get(order["symbol"])
        data = {
            "event": event,
            "order": dict(order),
            "timestamp": order["updated_at"],
            "position_qty": _num(pos.qty if pos else 0.0),
            **extra,
        }
        self._emit("trade_updates", data)

    # ---- account, clock, assets ------------------------------------------------------
    def _market_value(self) -> tuple[float, float]:
        long = sum(p.qty * p.current_price for p in self.positions.values() if p.qty > 0)
        short = sum(p.qty * p.current_price for p in self.positions.values() if p.qty < 0)
        return long, short

    def buying_power(self) -> float:
        """Cash minus what open buy orders would cost (a cash account, multiplier 1)."""
        with self._book:
            reserved = 0.0
            for order in self.orders.values():
                if order["status"] in OPEN_STATUSES and order["side"] == "buy":
                    reserved += self._order_cost(order, remaining=True)
            return self.cash - reserved

    def _order_cost(self, order: dict[str, Any], remaining: bool = False) -> float:
        if order["notional"] is not None and order["qty"] is None:
            return float(order["notional"])
        qty = float(order["qty"]) - (float(order["filled_qty"]) if remaining else 0.0)
        if order["limit_price"] is not None:
            return qty * float(order["limit_price"])
        pos = self.positions.get(order["symbol"])
        price = pos.current_price if pos else self.last_prices.get(order["symbol"], 0.0)
        return qty * price

    def _account(self, req: Request) -> Reply:
        with self._book:
            long, short = self._market_value()
            equity = self.cash + long + short
            bp = self.buying_power()
            return Reply(
                200,
                {
                    "id": self.account_id,
                    "account_number": "PA3FAKE0001",
                    "status": "ACTIVE",
                    "crypto_status": "ACTIVE",
                    "currency": "USD",
                    "buying_power": _num(round(bp, 2)),
                    "regt_buying_power": _num(round(bp, 2)),
                    "daytrading_buying_power": "0",
                    "non_marginable_buying_power": _num(round(bp, 2)),
                    "options_buying_power": _num(round(bp, 2)),
                    "cash": _num(round(self.cash, 2)),
                    "accrued_fees": "0",
                    "portfolio_value": _num(round(equity, 2)),
                    "pattern_day_trader": False,
                    "trading_blocked": False,
                    "transfers_blocked": False,
                    "account_blocked": False,
                    "created_at": _iso(self.created_at),
                    "trade_suspended_by_user": False,
                    "multiplier": "1",
                    "shorting_enabled": self.shorting_enabled,
                    "equity": _num(round(equity, 2)),
                    "last_equity": _num(round(equity, 2)),
                    "long_market_value": _num(round(long, 2)),
                    "short_market_value": _num(round(short, 2)),
                    "initial_margin": "0",
                    "maintenance_margin": "0",
                    "last_maintenance_margin": "0",
                    "sma": "0",
                    "daytrade_count": 0,
                    "options_approved_level": "0",
                    "options_trading_level": "0",
                },
            )

    def _clock(self, req: Request) -> Reply:
        now = datetime.now(UTC)
        nxt_open = (now + timedelta(days=1)).replace(hour=13, minute=30, second=0, microsecond=0)
        nxt_close = now.replace(hour=20, minute=0, second=0, microsecond=0)
        if nxt_close <= now:
            nxt_close += timedelta(days=1)
        return Reply(
            200,
            {
                "timestamp": _iso(now),
                "is_open": self.market_open,
                "next_open": _iso(nxt_open),
                "next_close": _iso(nxt_close),
            },
        )

    def _asset(self, req: Request, symbol: str) -> Reply:
        with self._book:
            spec = self.assets.get(symbol) or next(
                (a for a in self.assets.values() if a.id == symbol), None
            )
        if spec is None:
            return _err(404, 40410000, "asset not found")
        return Reply(200, spec.json())

    # ---- orders ----------------------------------------------------------------------
    def _submit(self, req: Request) -> Reply:
        try:
            body = req.json() or {}
        except ValueError:
            return _err(400, 40010000, "request body format is invalid")
        with self._book:
            if self._refusals:
                return self._refusals.pop(0)
            reply = self._create_order(body)
            if self._lost and reply.status == 200:
                return error(self._lost.pop(0))
            return reply

    def _create_order(self, body: dict[str, Any]) -> Reply:
        symbol = str(body.get("symbol") or "")
        asset = self.assets.get(symbol)
        if asset is None:
            return _err(422, 40010001, f'asset "{symbol}" not found')
        if not asset.tradable:
            return _err(422, 40010001, f"asset {symbol} is not tradable")
        qty, notional = body.get("qty"), body.get("notional")
        if qty is None and notional is None:
            return _err(422, 40010001, "qty or notional is required")
        if qty is not None and notional is not None:
            return _err(422, 40010001, "only one of qty or notional is accepted")
        side, otype, tif = (
            body.get("side"),
            body.get("type", "market"),
            body.get("time_in_force", "day"),
        )
        if side not in ("buy", "sell"):
            return _err(422, 40010001, f"invalid side: {side}")
        if otype not in ("market", "limit"):
            return _err(422, 40010001, f"order type {otype} is not supported by this fake")
        limit = body.get("limit_price")
        if otype == "limit" and limit is None:
            return _err(422, 40010001, "limit_price is required for limit orders")
        try:
            qty_f = float(qty) if qty is not None else None
            notional_f = float(notional) if notional is not None else None
            limit_f = float(limit) if limit is not None else None
        except (TypeError, ValueError):
            return _err(422, 40010001, "invalid number")
        if (qty_f is not None and qty_f <= 0) or (notional_f is not None and notional_f <= 0):
            return _err(422, 40010001, "qty must be > 0")
        fractional = notional_f is not None or (qty_f is not None and not qty_f.is_integer())
        if fractional and not asset.fractionable:
            return _err(422, 40010001, f"asset {symbol} is not fractionable")
        if fractional and (otype != "market" or tif != "day"):
            return _err(422, 40010001, "fractional orders must be market day orders")
        cid = str(body.get("client_order_id") or uuid.uuid4())
        if cid in self._by_client:
            return _err(422, 40010001, "client_order_id must be unique")
        now = _iso(datetime.now(UTC))
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": cid,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset.id,
            "symbol": symbol,
            "asset_class": "us_equity",
            "notional": _num(notional_f) if notional_f is not None else None,
            "qty": _num(qty_f) if qty_f is not None else None,
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "simple",
            "order_type": otype,
            "type": otype,
            "side": side,
            "time_in_force": tif,
            "limit_price": _num(limit_f) if limit_f is not None else None,
            "stop_price": None,
            "status": "accepted",
            "extended_hours": bool(body.get("extended_hours", False)),
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "position_intent": "buy_to_open" if side == "buy" else "sell_to_close",
        }
        if side == "buy":
            cost = self._order_cost(order)
            bp = self.buying_power()
            if cost > bp + 1e-9:
                return _err(
                    403,
                    40310000,
                    "insufficient buying power",
                    buying_power=_num(round(bp, 2)),
                    cost_basis=_num(round(cost, 2)),
                )
        else:
            pos = self.positions.get(symbol)
            held = pos.qty if pos else 0.0
            pending = sum(
                float(o["qty"] or 0) - float(o["filled_qty"])
                for o in self.orders.values()
                if o["symbol"] == symbol and o["side"] == "sell" and o["status"] in OPEN_STATUSES
            )
            available = held - pending
            want = qty_f if qty_f is not None else 0.0
            short_sale = self.shorting_enabled and asset.shortable and float(want).is_integer()
            if qty_f is not None and want > available + 1e-9 and not short_sale:
                return _err(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {_num(want)}, "
                    f"available: {_num(max(available, 0.0))})",
                    symbol=symbol,
                    available=_num(max(available, 0.0)),
                    existing_qty=_num(held),
                    held_for_orders=_num(pending),
                )
        self.orders[order["id"]] = order
        self._order_seq.append(order["id"])
        self._by_client[cid] = order["id"]
        if self._partial:
            self._slices[order["id"]] = list(self._partial)
        reply = Reply(200, dict(order))
        if self._rejections:
            reason = self._rejections.pop(0)
            order.update(status="rejected", failed_at=now, updated_at=now)
            self._update("rejected", order, reason=reason)
        else:
            order["status"] = "new"
            self._update("new", order)
        return reply

    def _list_orders(self, req: Request) -> Reply:
        q = req.query
        status = q.get("status", "open")
        symbols = {s for s in q.get("symbols", "").split(",") if s}
        try:
            limit = int(q.get("limit") or 50)
        except ValueError:
            return _err(422, 40010001, "invalid limit")
        if status not in ("open", "closed", "all"):
            return _err(422, 40010001, f"invalid status: {status}")
        with self._book:
            rows = [self.orders[i] for i in self._order_seq]
            if status == "open":
                rows = [o for o in rows if o["status"] in OPEN_STATUSES]
            elif status == "closed":
                rows = [o for o in rows if o["status"] not in OPEN_STATUSES]
            if symbols:
                rows = [o for o in rows if o["symbol"] in symbols]
            if q.get("side"):
                rows = [o for o in rows if o["side"] == q["side"]]
            if q.get("direction", "desc") == "desc":
                rows = rows[::-1]
            return Reply(200, [dict(o) for o in rows[: max(1, min(limit, 500))]])

    def _order_by_id(self, req: Request, oid: str) -> Reply:
        with self._book:
            order = self.orders.get(oid)
            if order is None:
                return _err(404, 40410000, "order not found")
            return Reply(200, dict(order))

    def _order_by_client_id(self, req: Request) -> Reply:
        with self._book:
            oid = self._by_client.get(req.query.get("client_order_id", ""))
            if oid is None:
                return _err(404, 40410000, "order not found")
            return Reply(200, dict(self.orders[oid]))

    def _cancel(self, order: dict[str, Any]) -> None:
        now = _iso(datetime.now(UTC))
        order.update(status="canceled", canceled_at=now, updated_at=now)
        self._slices.pop(order["id"], None)
        self._update("canceled", order)

    def _cancel_one(self, req: Request, oid: str) -> Reply:
        with self._book:
            order = self.orders.get(oid)
            if order is None:
                return _err(404, 40410000, "order not found")
            if order["status"] not in OPEN_STATUSES:
                return _err(422, 42210000, f'order is already in "{order["status"]}" state')
            self._cancel(order)
            return Reply(204, None)

    def _replace(self, req: Request, oid: str) -> Reply:
        """``PATCH /v2/orders/{id}``: a new order (new id and client_order_id) replaces an open one."""
        try:
            body = req.json() or {}
        except ValueError:
            return _err(400, 40010000, "request body format is invalid")
        with self._book:
            old = self.orders.get(oid)
            if old is None:
                return _err(404, 40410000, "order not found")
            if old["status"] not in OPEN_STATUSES:
                return _err(422, 42210000, f'order is already in "{old["status"]}" state')
            if float(old["filled_qty"]) > 0:
                return _err(422, 42210000, "cannot replace a partially filled order")
            fields = {
                "symbol": old["symbol"], "side": old["side"], "type": old["type"],
                "time_in_force": body.get("time_in_force") or old["time_in_force"],
                "qty": body.get("qty") or old["qty"],
                "limit_price": body.get("limit_price") or old.get("limit_price"),
                "client_order_id": body.get("client_order_id") or str(uuid.uuid4()),
            }
            now = _iso(datetime.now(UTC))
            old.update(status="replaced", replaced_at=now, updated_at=now)
            reply = self._create_order(fields)
            if reply.status != 200:
                old.update(status="new")
                return reply
            new = self.orders[reply.body["id"]]
            new["replaces"] = oid
            old["replaced_by"] = new["id"]
            self._update("replaced", old)
            return Reply(200, dict(new))

    def _cancel_all(self, req: Request) -> Reply:
        with self._book:
            out = []
            for oid in self._order_seq:
                order = self.orders[oid]
                if order["status"] in OPEN_STATUSES:
                    self._cancel(order)
                    out.append({"id": oid, "status": 200, "body": dict(order)})
            return Reply(207, out)

    # ---- positions -------------------------------------------------------------------
    @staticmethod
    def _position_json(p: _Position) -> dict[str, Any]:
        qty = p.qty
        cost = abs(qty) * p.avg_entry
        mv = qty * p.current_price
        upl = mv - qty * p.avg_entry
        values = {
            "avg_entry_price": _num(round(p.avg_entry, 9)),
            "market_value": _num(round(mv, 4)),
            "cost_basis": _num(round(cost, 4)),
            "unrealized_pl": _num(round(upl, 4)),
            "unrealized_plpc": _num(round(upl / cost, 6)) if cost else "0",
            "unrealized_intraday_pl": _num(round(qty * (p.current_price - p.lastday_price), 4)),
            "unrealized_intraday_plpc": "0",
            "current_price": _num(p.current_price),
            "lastday_price": _num(p.lastday_price),
            "change_today": "0",
        }
        return {
            "asset_id": p.asset.id,
            "symbol": p.asset.symbol,
            "exchange": p.asset.exchange,
            "asset_class": "us_equity",
            "asset_marginable": p.asset.marginable,
            "qty": _num(qty),
            "qty_available": _num(qty),
            "side": "long" if qty > 0 else "short",
            **values,
            "usd": dict(values),
        }

    def _list_positions(self, req: Request) -> Reply:
        with self._book:
            return Reply(200, [self._position_json(p) for _, p in sorted(self.positions.items())])

    def _position(self, req: Request, symbol: str) -> Reply:
        with self._book:
            pos = self.positions.get(symbol)
            if pos is None:
                return _err(404, 40410000, "position does not exist")
            return Reply(200, self._position_json(pos))

    def _close_position(self, req: Request, symbol: str) -> Reply:
        with self._book:
            pos = self.positions.get(symbol)
            if pos is None:
                return _err(404, 40410000, "position does not exist")
            qty = abs(pos.qty)
            if req.query.get("qty"):
                qty = min(qty, float(req.query["qty"]))
            elif req.query.get("percentage"):
                qty = round(qty * float(req.query["percentage"]) / 100.0, 9)
            side = "sell" if pos.qty > 0 else "buy"
            return self._create_order(
                {
                    "symbol": symbol,
                    "qty": _num(qty),
                    "side": side,
                    "type": "market",
                    "time_in_force": "day",
                }
            )
