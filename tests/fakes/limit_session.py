"""A TradingNode with only the Alpaca execution client and a strategy that places, replaces and cancels a limit order.

Run as ``python -m tests.fakes.limit_session SYMBOL [limit|quotes]`` with the fake Alpaca's URLs and keys in
the environment (tests/engine/test_alpaca_execution.py does). It exercises the execution
client's limit / replace / cancel paths, which sigtrade's own strategies (market orders
only) do not use, or (``quotes``) the data client's quote ticks, and prints one JSON line
with the events seen.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from nautilus_trader.config import (
    LiveExecEngineConfig,
    LoggingConfig,
    StrategyConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from engine.adapters.alpaca.config import (
    AlpacaConfig,
    AlpacaDataClientConfig,
    AlpacaExecClientConfig,
)
from engine.adapters.alpaca.factories import (
    AlpacaLiveDataClientFactory,
    AlpacaLiveExecClientFactory,
)


class LimitConfig(StrategyConfig, frozen=True):
    symbol: str = "SPY"


class LimitStrategy(Strategy):
    """Buy 1 at 100 (limit) -> replace with 2 at 101 -> cancel."""

    def __init__(self, config: LimitConfig) -> None:
        super().__init__(config)
        self.iid = InstrumentId.from_str(f"{config.symbol}.XNYS")
        self.events: list[str] = []
        self.done = False

    def on_start(self) -> None:
        inst = self.cache.instrument(self.iid)
        order = self.order_factory.limit(self.iid, OrderSide.BUY, inst.make_qty(1), inst.make_price(100.0),
                                         time_in_force=TimeInForce.DAY)
        self.submit_order(order)

    def on_order_accepted(self, event: Any) -> None:
        self.events.append("accepted")
        order = self.cache.order(event.client_order_id)
        inst = self.cache.instrument(self.iid)
        self.modify_order(order, quantity=inst.make_qty(2), price=inst.make_price(101.0))

    def on_order_updated(self, event: Any) -> None:
        self.events.append(f"updated {event.quantity} @ {event.price} venue {event.venue_order_id}")
        self.cancel_order(self.cache.order(event.client_order_id))

    def on_order_canceled(self, event: Any) -> None:
        self.events.append("canceled")
        self.done = True

    def on_order_rejected(self, event: Any) -> None:
        self.events.append(f"rejected {event.reason}")
        self.done = True

    def on_order_modify_rejected(self, event: Any) -> None:
        self.events.append(f"modify rejected {event.reason}")
        self.done = True


class QuoteStrategy(Strategy):
    """Subscribes to the symbol's bars (which starts the feed) and quotes; done at the first quote."""

    def __init__(self, config: LimitConfig) -> None:
        super().__init__(config)
        self.iid = InstrumentId.from_str(f"{config.symbol}.XNYS")
        self.events: list[str] = []
        self.done = False

    def on_start(self) -> None:
        self.subscribe_bars(BarType.from_str(f"{self.iid}-1-HOUR-LAST-EXTERNAL"))
        self.subscribe_quote_ticks(self.iid)

    def on_quote_tick(self, tick: Any) -> None:
        self.events.append(f"quote {tick.bid_price} {tick.ask_price} {tick.bid_size} {tick.ask_size} {tick.ts_event}")
        self.done = True


def main(symbol: str, mode: str = "limit") -> None:
    alpaca = AlpacaConfig()
    data = {"ALPACA": AlpacaDataClientConfig(symbols=(symbol,), warmup_bars=0, alpaca=alpaca)} if mode == "quotes" else {}
    node = TradingNode(TradingNodeConfig(
        trader_id="LIMIT-001", logging=LoggingConfig(log_level="ERROR"),
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        data_clients=data,
        exec_clients={"ALPACA": AlpacaExecClientConfig(symbols=(symbol,), alpaca=alpaca)},
        timeout_connection=20.0, timeout_disconnection=3.0, timeout_post_stop=1.0,
    ))
    strategy: Any = (QuoteStrategy if mode == "quotes" else LimitStrategy)(LimitConfig(symbol=symbol))
    node.trader.add_strategy(strategy)
    node.add_exec_client_factory("ALPACA", AlpacaLiveExecClientFactory)
    node.add_data_client_factory("ALPACA", AlpacaLiveDataClientFactory)
    node.build()

    async def watch() -> None:
        for _ in range(400):
            await asyncio.sleep(0.05)
            if strategy.done:
                break
        node.stop()

    task = node.get_event_loop().create_task(watch())
    try:
        node.run()
    finally:
        if not task.done():
            task.cancel()
        node.dispose()
    sys.stdout.write(json.dumps({"events": strategy.events}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
