"""The base every sigtrade strategy stands on: subscriptions, books, sizing, end of data.

A subclass implements :meth:`SigtradeStrategy.decide`, called on every bar once the bar
is inside the trading window, and :meth:`SigtradeStrategy.warm` for bars before it.
The base keeps its own position and cash books from fill events (no per-bar portfolio
queries), sizes orders with :func:`engine.sizing.shares_for`, refuses a second order on a
symbol while one is in flight, sends a symbol's orders only on that symbol's own bar (so
they fill at its next open), and flattens each symbol on its last decision bar when
``close_at_end`` is set.
"""

from __future__ import annotations

from typing import Any

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from engine.sizing import floor_qty, shares_for


class SigtradeStrategyConfig(StrategyConfig, frozen=True, kw_only=True):
    """Settings every sigtrade strategy receives from the backtest runner."""

    symbols: list[str]
    bar: str = "1-HOUR"
    venue: str = "XNYS"
    capital: float = 100_000.0
    position_size: float = 0.1
    max_positions: int = 10
    fractional: bool = False
    cost_rate: float = 0.0
    trade_from_ns: int = 0
    last_decision_ns: dict[str, int] = {}
    close_at_end: bool = True


class SigtradeStrategy(Strategy):
    """Base class: books, sizing and lifecycle; subclasses implement ``decide``."""

    def __init__(self, config: SigtradeStrategyConfig) -> None:
        super().__init__(config)
        if not config.symbols:
            raise ValueError("a strategy needs at least one symbol")
        self.cfg = config
        self.iids = {s: InstrumentId.from_str(f"{s}.{config.venue}") for s in config.symbols}
        self.bar_types = {
            s: BarType.from_str(f"{s}.{config.venue}-{config.bar}-LAST-EXTERNAL") for s in config.symbols
        }
        self.position: dict[str, float] = dict.fromkeys(config.symbols, 0.0)
        self.last_close: dict[str, float] = dict.fromkeys(config.symbols, 0.0)
        self.pending: dict[str, bool] = dict.fromkeys(config.symbols, False)
        self.cash = float(config.capital)
        self.done: set[str] = set()
        self._symbol_of: dict[Any, str] = {}
        self._bar_ts: dict[str, int] = dict.fromkeys(config.symbols, -1)
        self._now = -1
        self._precision = 6 if config.fractional else 0

    # -- lifecycle ---------------------------------------------------------------------
    def on_start(self) -> None:
        """Subscribe to every symbol's bars."""
        for s, bt in self.bar_types.items():
            self._symbol_of[bt] = s
            self.subscribe_bars(bt)

    def on_bar(self, bar: Bar) -> None:
        """Update books, then warm up, decide, or flatten at the end of data."""
        s = self._symbol_of[bar.bar_type]
        close = bar.close.as_double()
        self.last_close[s] = close
        ts = bar.ts_event
        self._bar_ts[s] = ts
        self._now = ts
        if ts < self.cfg.trade_from_ns:
            self.warm(s, bar)
            return
        if s in self.done:
            return
        last = self.cfg.last_decision_ns.get(s)
        if self.cfg.close_at_end and last is not None and ts >= last:
            self.done.add(s)
            self.exit(s)
            return
        self.decide(s, bar)

    # -- to implement --------------------------------------------------------------------
    def warm(self, symbol: str, bar: Bar) -> None:
        """Feed a bar from before the trading window (indicators only; no orders)."""

    def decide(self, symbol: str, bar: Bar) -> None:
        """Act on a bar inside the trading window."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------
    def equity(self) -> float:
        """Cash plus positions marked at their last closes."""
        return self.cash + sum(q * self.last_close[s] for s, q in self.position.items() if q)

    def open_positions(self) -> int:
        """Positions held or being opened."""
        return sum(1 for s in self.cfg.symbols if self.position[s] != 0.0 or self.pending[s])

    def enter(self, symbol: str, value: float, *, respect_max_positions: bool = True) -> bool:
        """Buy about *value* USD of *symbol* at the next fill; False when nothing was sent."""
        if self.pending[symbol] or self.position[symbol] != 0.0:
            return False
        if respect_max_positions and self.open_positions() >= self.cfg.max_positions:
            return False
        qty = shares_for(value, self.last_close[symbol], self.cash, self.cfg.cost_rate, self._precision)
        if qty <= 0:
            return False
        return self._send(symbol, OrderSide.BUY, qty)

    def enter_short(self, symbol: str, value: float) -> bool:
        """Sell short about *value* USD of *symbol* (margin accounts only)."""
        if self.pending[symbol] or self.position[symbol] != 0.0:
            return False
        if self.open_positions() >= self.cfg.max_positions:
            return False
        qty = floor_qty(value / self.last_close[symbol], self._precision) if self.last_close[symbol] > 0 else 0.0
        return qty > 0 and self._send(symbol, OrderSide.SELL, qty)

    def exit(self, symbol: str) -> bool:
        """Sell the whole position in *symbol*; False when flat or an order is in flight."""
        qty = self.position[symbol]
        if self.pending[symbol] or qty == 0.0:
            return False
        side = OrderSide.SELL if qty > 0 else OrderSide.BUY
        return self._send(symbol, side, abs(qty), reduce_only=True)

    def _send(self, symbol: str, side: OrderSide, qty: float, *, reduce_only: bool = False) -> bool:
        if self._bar_ts[symbol] != self._now:
            # Execution quotes exist only at a symbol's own bar closes: an order sent on
            # another symbol's bar would meet a stale quote. The caller retries on the
            # symbol's next bar.
            self.log.warning(f"{symbol}: order refused outside its own bar; retried on its next bar")
            return False
        iid = self.iids[symbol]
        instrument = self.cache.instrument(iid)
        order = self.order_factory.market(
            iid, side, instrument.make_qty(qty), time_in_force=TimeInForce.GTC, reduce_only=reduce_only
        )
        self.pending[symbol] = True
        self.submit_order(order)
        return True

    # -- events --------------------------------------------------------------------------
    def on_order_filled(self, event: Any) -> None:
        """Keep the position and cash books."""
        s = event.instrument_id.symbol.value
        qty = event.last_qty.as_double()
        px = event.last_px.as_double()
        signed = qty if event.order_side == OrderSide.BUY else -qty
        self.position[s] = round(self.position[s] + signed, 9)
        self.cash -= signed * px + event.commission.as_double()
        order = self.cache.order(event.client_order_id)
        if order is None or order.is_closed:
            self.pending[s] = False

    def _clear(self, event: Any) -> None:
        self.pending[event.instrument_id.symbol.value] = False

    on_order_rejected = _clear
    on_order_denied = _clear
    on_order_canceled = _clear
    on_order_expired = _clear
