"""The base every sigtrade strategy stands on: subscriptions, books, sizing, overlays, end of data.

A subclass implements :meth:`SigtradeStrategy.decide`, called on every bar once the bar
is inside the trading window, and :meth:`SigtradeStrategy.warm` for bars before it.
The base keeps its own position and cash books from fill events (no per-bar portfolio
queries), sizes orders with :func:`engine.sizing.shares_for`, refuses a second order on a
symbol while one is in flight, sends a symbol's orders only on that symbol's own bar (so
they fill at its next open), never decides on a bar that has no next fill (the last bar
under ``next_open``), and flattens each symbol on its last decision bar when
``close_at_end`` is set.

It also enforces the risk overlays and regime filters of :mod:`engine.overlays` around
every strategy's :meth:`~SigtradeStrategy.enter` / :meth:`~SigtradeStrategy.exit`: the
rules, their order and the bar-counting conventions are documented there. The numba
kernel (:mod:`engine.sim.kernels_nb`) replicates this class operation for operation;
change one and the parity test (tests/engine/test_parity_real.py) tells you to change
the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from engine.sizing import floor_qty, shares_for

_NEVER = 10**9


class SigtradeStrategyConfig(StrategyConfig, frozen=True, kw_only=True):
    """Settings every sigtrade strategy receives from the backtest runner.

    The overlay fields mirror ``[risk]`` (see :mod:`engine.overlays`); their defaults
    turn every overlay off (``max_gross_exposure = 0`` = no cap), which is how the
    benchmark runs.
    """

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
    sizing: str = "fixed"
    atr_risk: float = 0.01
    atr_multiple: float = 2.0
    max_gross_exposure: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    max_hold_bars: int = 0
    min_hold_bars: int = 0
    cooldown_bars: int = 0
    cost_filter: bool = False
    cost_multiple: float = 1.0
    round_trip_rate: float = 0.0
    commission_per_share: float = 0.0
    drawdown_limit: float = 0.0
    drawdown_pause_bars: int = 0
    daily_loss_limit: float = 0.0
    live: bool = False
    flatten_on_stop: bool = False


class SigtradeStrategy(Strategy):
    """Base class: books, sizing, overlays and lifecycle; subclasses implement ``decide``."""

    def __init__(self, config: SigtradeStrategyConfig) -> None:
        super().__init__(config)
        if not config.symbols:
            raise ValueError("a strategy needs at least one symbol")
        if config.sizing not in ("fixed", "atr"):
            raise ValueError(f"sizing must be 'fixed' or 'atr', not {config.sizing!r}")
        self.cfg = config
        syms = list(config.symbols)
        self.iids = {s: InstrumentId.from_str(f"{s}.{config.venue}") for s in syms}
        self.bar_types = {s: BarType.from_str(f"{s}.{config.venue}-{config.bar}-LAST-EXTERNAL") for s in syms}
        self.position: dict[str, float] = dict.fromkeys(syms, 0.0)
        self.last_close: dict[str, float] = dict.fromkeys(syms, 0.0)
        self.pending: dict[str, bool] = dict.fromkeys(syms, False)
        # symbols with a position (universe order) and those with a position or an order in flight:
        # equity, exposure and the position count loop over these, not over the whole universe
        self._order: dict[str, int] = {}
        for i, s in enumerate(syms):
            self._order.setdefault(s, i)
        self._held: list[str] = []
        self._busy: set[str] = set()
        self.cash = float(config.capital)
        self.done: set[str] = set()
        self._symbol_of: dict[Any, str] = {}
        self._bar_ts: dict[str, int] = dict.fromkeys(syms, -1)
        self._now = -1
        self._precision = 6 if config.fractional else 0
        # overlay state (engine/overlays.py)
        self.series: Any = None
        self.bars_held: dict[str, int] = dict.fromkeys(syms, 0)
        self.bars_flat: dict[str, int] = dict.fromkeys(syms, _NEVER)
        self.entry_price: dict[str, float] = dict.fromkeys(syms, 0.0)
        self.extreme: dict[str, float] = dict.fromkeys(syms, 0.0)
        self.must_exit: dict[str, str] = dict.fromkeys(syms, "")
        self._pending_value: dict[str, float] = dict.fromkeys(syms, 0.0)
        self._reason: dict[str, str] = dict.fromkeys(syms, "")
        self._bar_i: dict[str, int] = dict.fromkeys(syms, -1)
        self._k = -1
        self._peak = float(config.capital)
        self._paused_until = -1
        self._day = -1
        self._day_start = 0.0
        self._day_halted = False
        self.exit_reasons: dict[str, str] = {}
        """Exit reason of every exit order sent, by client order id."""
        # decision records and live hooks (engine.paper sets the sinks; backtests may too)
        self.bar_sink: Any = None
        self.decision_sink: Any = None
        self.order_sink: Any = None
        self._action = ""
        self._rejected_day: dict[str, Any] = {}

    def attach_series(self, series: Any) -> None:
        """Give the strategy the precomputed overlay inputs (:class:`engine.overlays.OverlaySeries`)."""
        self.series = series

    # -- lifecycle ---------------------------------------------------------------------
    def on_start(self) -> None:
        """Subscribe to every symbol's bars."""
        if self.cfg.sizing == "atr" and self.series is None:
            raise RuntimeError("sizing = 'atr' needs the overlay series (attach_series) before the run")
        if self.cfg.live:
            self._restore_books()
            append = getattr(self.series, "append_batch", None)
            if append is not None:  # live overlay inputs grow with every bar time (engine.overlays)
                from engine.overlays import BATCH_TOPIC

                self.msgbus.subscribe(topic=BATCH_TOPIC, handler=append)
        for s, bt in self.bar_types.items():
            self._symbol_of[bt] = s
            self.subscribe_bars(bt)

    def _restore_books(self) -> None:
        """Live start: positions and open orders as reconciled from the broker become the books."""
        invested = 0.0
        for s, iid in self.iids.items():
            qty = sum(p.signed_qty for p in self.cache.positions_open(instrument_id=iid))
            if qty != 0.0:
                px = [float(p.avg_px_open) for p in self.cache.positions_open(instrument_id=iid)][0]
                self.position[s] = round(qty, 9)
                self._track(s)
                self.entry_price[s] = px
                self.extreme[s] = px
                self.bars_held[s] = 0
                invested += qty * px
                self.log.warning(f"{s}: position of {qty:g} at {px:.2f} reconciled from the broker")
            if self.cache.orders_open(instrument_id=iid):
                self.pending[s] = True
                self._track(s)
                self.log.warning(f"{s}: an open order was reconciled from the broker; waiting for it")
        self.cash -= invested

    def on_stop(self) -> None:
        """Live stop: cancel open orders; with ``flatten_on_stop`` also close every position."""
        if not self.cfg.live:
            return
        for s, iid in self.iids.items():
            self.cancel_all_orders(iid)
            qty = self.position[s]
            if self.cfg.flatten_on_stop and qty != 0.0:
                side = OrderSide.SELL if qty > 0 else OrderSide.BUY
                inst = self.cache.instrument(iid)
                order = self.order_factory.market(iid, side, inst.make_qty(abs(qty)), time_in_force=TimeInForce.DAY,
                                                  reduce_only=True, tags=["stop"])
                self.log.warning(f"{s}: flattening {qty:g} on stop")
                self.submit_order(order)

    def on_bar(self, bar: Bar) -> None:
        """Update books, run the portfolio rules, stops, then warm up, decide, or flatten."""
        s = self._symbol_of[bar.bar_type]
        ts = bar.ts_event
        if self.bar_sink is not None:
            self.bar_sink(s, bar, ts >= self.cfg.trade_from_ns)
        if ts != self._now:
            self._now = ts
            self._new_timestamp(ts)  # on the books before any bar of this time
        self.last_close[s] = bar.close.as_double()
        self._bar_ts[s] = ts
        self._bar_i[s] += 1
        if ts < self.cfg.trade_from_ns:
            self.warm(s, bar)
            return
        if s in self.done:
            return
        if self.decision_sink is None:  # backtests: no decision records, no extra per-bar work
            self._decide_bar(s, bar, ts)
            return
        pos_before = self.position[s]
        self._action = ""
        self._decide_bar(s, bar, ts)
        self._record(s, ts, pos_before)

    def _decide_bar(self, s: str, bar: Bar, ts: int) -> None:
        self.observe(s, bar)
        last = self.cfg.last_decision_ns.get(s)
        if last is not None and ts >= last:
            if self.cfg.close_at_end:
                self.done.add(s)
                self._exit(s, "end")
                return
            if ts > last:  # no next fill for this bar's decisions
                return
        pos = self.position[s]
        if pos != 0.0:
            self.bars_held[s] += 1
            if not self.pending[s]:
                reason = self._forced_exit(s, pos, bar)
                if reason:
                    self._exit(s, reason)
                    return
        else:
            self.bars_flat[s] += 1
        self.decide(s, bar)

    def _record(self, s: str, ts: int, pos_before: float) -> None:
        rec = {
            "ts": int(ts),
            "symbol": s,
            "action": self._action or "hold",
            "position": pos_before,
            "inputs": self.decision_inputs(s),
        }
        self.decision_sink(rec)

    def decision_inputs(self, symbol: str) -> dict[str, Any]:
        """What a decision was made on (logged with every decision); subclasses add their signal."""
        return {"close": self.last_close[symbol], "p": self.entry_probability(symbol)}

    # -- to implement --------------------------------------------------------------------
    def warm(self, symbol: str, bar: Bar) -> None:
        """Feed a bar from before the trading window (indicators only; no orders)."""

    def observe(self, symbol: str, bar: Bar) -> None:
        """Update indicators with a bar inside the trading window.

        Called for every such bar before the end-of-run, stop and time-stop checks, so an
        indicator sees every close even on a bar where a forced exit leaves ``decide``
        out; the default does nothing.
        """

    def decide(self, symbol: str, bar: Bar) -> None:
        """Act on a bar inside the trading window (indicators already updated by ``observe``)."""
        raise NotImplementedError

    def entry_probability(self, symbol: str) -> float:
        """The model's up-probability behind an entry (cost filter); 1.0 for rule strategies."""
        return 1.0

    # -- portfolio rules -------------------------------------------------------------------
    def _new_timestamp(self, ts: int) -> None:
        """First bar of a new close time: locate it, then the breaker and daily loss limit."""
        if self.series is not None:
            k = int(np.searchsorted(self.series.timeline, ts))
            if k >= len(self.series.timeline) or self.series.timeline[k] != ts:
                raise RuntimeError(f"bar time {ts} is not on the overlay timeline")
            self._k = k
        if ts < self.cfg.trade_from_ns:
            return
        c = self.cfg
        if c.drawdown_limit <= 0.0 and c.daily_loss_limit <= 0.0:
            return
        eq = self.equity()
        if c.daily_loss_limit > 0.0:
            day = int(self.series.day[self._k])
            if day != self._day:
                self._day = day
                self._day_start = eq
                self._day_halted = False
        if c.drawdown_limit > 0.0:
            if self._paused_until >= 0 and self._k > self._paused_until:
                self._paused_until = -1
                self._peak = eq
            if self._paused_until < 0:
                if eq > self._peak:
                    self._peak = eq
                if eq <= self._peak * (1.0 - c.drawdown_limit):
                    self._paused_until = self._k + c.drawdown_pause_bars
                    self._flatten_all("drawdown")
        if c.daily_loss_limit > 0.0 and not self._day_halted:
            if eq <= self._day_start * (1.0 - c.daily_loss_limit):
                self._day_halted = True
                self._flatten_all("daily_loss")

    def _flatten_all(self, reason: str) -> None:
        for s in self.cfg.symbols:
            if self.position[s] != 0.0 and not self.must_exit[s]:
                self.must_exit[s] = reason

    def _forced_exit(self, s: str, pos: float, bar: Bar) -> str:
        """The overlay exit that applies on this bar, or "" (see engine/overlays.py for the order)."""
        if self.must_exit[s]:
            return self.must_exit[s]
        c = self.cfg
        entry = self.entry_price[s]
        if c.stop_loss > 0.0 or c.trailing_stop > 0.0 or c.take_profit > 0.0:
            high = bar.high.as_double()
            low = bar.low.as_double()
            if pos > 0.0:
                if high > self.extreme[s]:
                    self.extreme[s] = high
                if c.stop_loss > 0.0 and low <= entry * (1.0 - c.stop_loss):
                    return "stop_loss"
                if c.trailing_stop > 0.0 and low <= self.extreme[s] * (1.0 - c.trailing_stop):
                    return "trailing_stop"
                if c.take_profit > 0.0 and high >= entry * (1.0 + c.take_profit):
                    return "take_profit"
            else:
                if low < self.extreme[s]:
                    self.extreme[s] = low
                if c.stop_loss > 0.0 and high >= entry * (1.0 + c.stop_loss):
                    return "stop_loss"
                if c.trailing_stop > 0.0 and high >= self.extreme[s] * (1.0 + c.trailing_stop):
                    return "trailing_stop"
                if c.take_profit > 0.0 and low <= entry * (1.0 - c.take_profit):
                    return "take_profit"
        if c.max_hold_bars > 0 and self.bars_held[s] >= c.max_hold_bars:
            return "time_stop"
        return ""

    # -- helpers -------------------------------------------------------------------------
    def _track(self, s: str) -> None:
        """After a change of ``position[s]`` or ``pending[s]``: keep the held and busy sets."""
        held = self.position[s] != 0.0
        if held != (s in self._held):
            self._held = [x for x in self._order if self.position[x] != 0.0]
        if held or self.pending[s]:
            self._busy.add(s)
        else:
            self._busy.discard(s)

    def equity(self) -> float:
        """Cash plus positions marked at their last closes (summed in symbol order)."""
        value = 0.0
        for s in self._held:  # the symbols with a position, in symbol order: the same sum as over all
            value += self.position[s] * self.last_close[s]
        return self.cash + value

    def gross_exposure(self) -> float:
        """|Positions| at their last closes plus the value of entries in flight."""
        total = 0.0
        for s in sorted(self._busy, key=self._order.__getitem__):
            q = self.position[s]
            if q != 0.0:
                total += abs(q * self.last_close[s])
            elif self.pending[s]:
                total += self._pending_value[s]
        return total

    def open_positions(self) -> int:
        """Positions held or being opened."""
        return len(self._busy)

    def entries_allowed(self, symbol: str) -> bool:
        """Regime, breaker pause, daily halt and cooldown (not sizing or position limits)."""
        if self.series is not None and not self.series.allow[self._k]:
            return False
        if self._paused_until >= 0 or self._day_halted:
            return False
        return self.bars_flat[symbol] > self.cfg.cooldown_bars

    def _edge_ok(self, symbol: str, short: bool) -> bool:
        c = self.cfg
        if not c.cost_filter:
            return True
        move = float(self.series.move[symbol][self._bar_i[symbol]])
        p = self.entry_probability(symbol)
        edge = ((1.0 - 2.0 * p) if short else (2.0 * p - 1.0)) * move
        cost = c.cost_multiple * (c.round_trip_rate + 2.0 * c.commission_per_share / self.last_close[symbol])
        return edge > cost  # False on NaN (a typical move still warming up)

    def _sized(self, symbol: str, value: float) -> float:
        """Entry value after ATR sizing and the gross exposure cap (NaN/<= 0: no entry)."""
        c = self.cfg
        if c.sizing == "atr" or c.max_gross_exposure > 0.0:
            eq = self.equity()
            if c.sizing == "atr":
                atr = float(self.series.atr_pct[symbol][self._bar_i[symbol]])
                value = eq * c.atr_risk / (c.atr_multiple * atr) if atr > 0.0 else 0.0
            if c.max_gross_exposure > 0.0:
                room = c.max_gross_exposure * eq - self.gross_exposure()
                if room < value:
                    value = room
        return value if value > 0.0 else 0.0

    def enter(self, symbol: str, value: float, *, respect_max_positions: bool = True) -> bool:
        """Buy about *value* USD of *symbol* at the next fill; False when nothing was sent."""
        if self.pending[symbol] or self.position[symbol] != 0.0:
            return False
        if not self.entries_allowed(symbol):
            return False
        if self._rejected_today(symbol):
            return False
        if respect_max_positions and self.open_positions() >= self.cfg.max_positions:
            return False
        if not self._edge_ok(symbol, short=False):
            return False
        value = self._sized(symbol, value)
        qty = shares_for(value, self.last_close[symbol], self.cash, self.cfg.cost_rate, self._precision)
        if qty <= 0:
            return False
        return self._send(symbol, OrderSide.BUY, qty, "")

    def enter_short(self, symbol: str, value: float) -> bool:
        """Sell short about *value* USD of *symbol* (margin accounts only)."""
        if self.pending[symbol] or self.position[symbol] != 0.0:
            return False
        if not self.entries_allowed(symbol) or self._rejected_today(symbol):
            return False
        if self.open_positions() >= self.cfg.max_positions:
            return False
        if not self._edge_ok(symbol, short=True):
            return False
        value = self._sized(symbol, value)
        price = self.last_close[symbol]
        qty = floor_qty(value / price, self._precision) if price > 0 else 0.0
        return qty > 0 and self._send(symbol, OrderSide.SELL, qty, "")

    def exit(self, symbol: str) -> bool:
        """Close the whole position on the strategy's signal; refused before ``min_hold_bars``."""
        if self.position[symbol] != 0.0 and self.bars_held[symbol] < self.cfg.min_hold_bars:
            return False
        return self._exit(symbol, "signal")

    def _exit(self, symbol: str, reason: str) -> bool:
        qty = self.position[symbol]
        if self.pending[symbol] or qty == 0.0:
            return False
        side = OrderSide.SELL if qty > 0 else OrderSide.BUY
        return self._send(symbol, side, abs(qty), reason, reduce_only=True)

    def _send(self, symbol: str, side: OrderSide, qty: float, reason: str, *, reduce_only: bool = False) -> bool:
        if self._bar_ts[symbol] != self._now:
            # Execution quotes exist only at a symbol's own bar closes: an order sent on
            # another symbol's bar would meet a stale quote. The caller retries on the
            # symbol's next bar.
            self.log.warning(f"{symbol}: order refused outside its own bar; retried on its next bar")
            return False
        iid = self.iids[symbol]
        instrument = self.cache.instrument(iid)
        order = self.order_factory.market(
            iid, side, instrument.make_qty(qty), time_in_force=TimeInForce.GTC, reduce_only=reduce_only,
            tags=[reason] if reason else None,
        )
        self.pending[symbol] = True
        self._track(symbol)
        self._reason[symbol] = reason
        self._action = f"{'buy' if side == OrderSide.BUY else 'sell'}{':' + reason if reason else ''}"
        if self.order_sink is not None:
            self.order_sink({"ts": int(self._now), "symbol": symbol, "side": self._action.split(":")[0],
                             "qty": float(qty), "reason": reason or "entry",
                             "client_order_id": order.client_order_id.value})
        if reason:
            self.exit_reasons[order.client_order_id.value] = reason
        else:
            self._pending_value[symbol] = qty * self.last_close[symbol]
        self.submit_order(order)
        return True

    # -- events --------------------------------------------------------------------------
    def on_order_filled(self, event: Any) -> None:
        """Keep the position and cash books and the overlays' per-position state."""
        s = event.instrument_id.symbol.value
        qty = event.last_qty.as_double()
        px = event.last_px.as_double()
        signed = qty if event.order_side == OrderSide.BUY else -qty
        before = self.position[s]
        self.position[s] = round(before + signed, 9)
        self._track(s)
        self.cash -= signed * px + event.commission.as_double()
        if before == 0.0 and self.position[s] != 0.0:
            self.entry_price[s] = px
            self.extreme[s] = px
            self.bars_held[s] = 0
        elif self.position[s] == 0.0:
            self.bars_flat[s] = 0
            self.must_exit[s] = ""
        order = self.cache.order(event.client_order_id)
        if order is None or order.is_closed:
            self.pending[s] = False
            self._track(s)

    def _clear(self, event: Any) -> None:
        s = event.instrument_id.symbol.value
        self.pending[s] = False
        self._track(s)

    def _refused(self, event: Any) -> None:
        """A rejected or denied order: log why; no new entry in that symbol for the rest of the session."""
        s = event.instrument_id.symbol.value
        self.pending[s] = False
        self._track(s)
        if not self.cfg.live:
            return
        self._rejected_day[s] = self._session_day(self._now)
        self.log.warning(f"{s}: order {event.client_order_id} refused ({event.reason}); "
                         "no new entry in it for the rest of the session (exits are still tried)")

    def _session_day(self, ts: int) -> Any:
        import pandas as pd

        return pd.Timestamp(ts, tz="UTC").tz_convert("America/New_York").date() if ts > 0 else None

    def _rejected_today(self, symbol: str) -> bool:
        day = self._rejected_day.get(symbol)
        return day is not None and day == self._session_day(self._now)

    on_order_rejected = _refused
    on_order_denied = _refused
    on_order_canceled = _clear
    on_order_expired = _clear
