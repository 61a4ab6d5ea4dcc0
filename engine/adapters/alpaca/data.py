"""The Alpaca market-data client of a NautilusTrader ``TradingNode``.

What it does, in order, once the strategy has subscribed to the bars of the whole universe
(``AlpacaDataClientConfig.symbols``):

1. **Warm-up by REST.** The last ``warmup_bars`` complete bars of every symbol at the
   strategy's bar size, fetched with ``StockHistoricalDataClient`` and converted exactly
   as ``sigtrade ingest alpaca`` converts them (:func:`engine.adapters.alpaca.bars.rest_frames`),
   then published in time order (symbols of one close time in the universe's order, as the
   backtest orders them). The strategy treats bars that closed before the session started
   as warm-up: they feed features, they are not traded.
2. **Live minute bars** from ``StockDataStream`` (alpaca-py, msgpack), aggregated to the
   strategy's bar by :class:`~engine.adapters.alpaca.bars.MinuteAggregator` and published
   when complete. A timer emits the last bar of a session ``flush_delay_s`` after its close.
3. **Back-fill on every (re)connect.** alpaca-py reconnects a dropped stream by itself;
   after each connection's subscription, the minutes since the last one seen are fetched
   by REST and fed through the same aggregator before the stream's next frame is read.
   Minutes are deduplicated by start time, so no bar is lost and none is processed twice.

Instruments come from :class:`~engine.adapters.alpaca.providers.AlpacaInstrumentProvider`
and are put in the cache on connect. Quotes (``subscribe_quote_ticks``) come from the same
stream as ``QuoteTick``; sigtrade's strategies trade on bars and do not ask for them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.data.messages import SubscribeBars, SubscribeQuoteTicks, UnsubscribeBars
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.identifiers import ClientId

from engine import catalog as cat
from engine.adapters.alpaca.bars import (
    LiveBar,
    MinuteAggregator,
    frames_from_bars,
    rest_frames,
    rest_minutes,
    warmup_start,
)
from engine.adapters.alpaca.config import AlpacaDataClientConfig, credentials
from engine.adapters.alpaca.providers import AlpacaInstrumentProvider
from engine.adapters.alpaca.streams import hooked_stream, utc_ns
from engine.errors import BrokerError
from engine.overlays import BATCH_TOPIC

ALPACA = "ALPACA"
FATAL_TOPIC = "sigtrade.fatal"
"""Message-bus topic of failures that end a live session (a message for the user)."""


def make_stock_stream(config: AlpacaDataClientConfig, on_connected: Any) -> Any:
    """alpaca-py ``StockDataStream`` (raw frames) that awaits *on_connected(n)* after each connection's subscription."""
    from alpaca.data.enums import DataFeed
    from alpaca.data.live.stock import StockDataStream

    key_id, secret = credentials()
    stream_cls = hooked_stream(StockDataStream, "_send_subscribe_msg", on_connected)
    feed = DataFeed.SIP if config.alpaca.feed == "sip" else DataFeed.IEX
    return stream_cls(key_id, secret, raw_data=True, feed=feed, url_override=config.alpaca.resolved_data_stream_url())


class AlpacaDataClient(LiveMarketDataClient):
    """Bars for the strategy: REST warm-up, live minute bars aggregated, back-fill on reconnect."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        provider: AlpacaInstrumentProvider,
        rest: Any,
        config: AlpacaDataClientConfig,
    ) -> None:
        super().__init__(
            loop=loop, client_id=ClientId(ALPACA), venue=cat.VENUE, msgbus=msgbus, cache=cache,
            clock=clock, instrument_provider=provider, config=config,
        )
        self._cfg = config
        self._rest = rest
        self._symbols = list(config.symbols)
        self._extra = [s for s in config.extra_symbols if s not in self._symbols]
        self._all = self._symbols + self._extra
        self._wanted: set[str] = set()
        self._agg = MinuteAggregator(self._all, config.bar)
        self._instruments: dict[str, Any] = {}
        self._stream: Any = None
        self._started = False
        self._since_ns = 0
        self._quote_symbols: set[str] = set()

    # ---- connection ------------------------------------------------------------------
    async def _connect(self) -> None:
        provider: AlpacaInstrumentProvider = self._instrument_provider  # type: ignore[assignment]
        if not provider.assets:
            await asyncio.to_thread(provider.load_symbols, self._symbols)
        for symbol in self._symbols:
            inst = provider.find(cat.instrument_id(symbol))
            if inst is None:
                raise BrokerError(f"{symbol}: no instrument loaded from Alpaca")
            self._instruments[symbol] = inst
            self._cache.add_instrument(inst)
        self._since_ns = self._clock.timestamp_ns()

    async def _disconnect(self) -> None:
        if self._stream is not None:
            await self._stream.stop_ws()
            await self._stream.close()

    # ---- subscriptions -----------------------------------------------------------------
    async def _subscribe_bars(self, command: SubscribeBars) -> None:
        symbol = command.bar_type.instrument_id.symbol.value
        if symbol not in self._symbols:
            raise BrokerError(f"bars of {symbol} asked for, but the data client's universe is {self._symbols}")
        self._wanted.add(symbol)
        if not self._started and self._wanted >= set(self._symbols):
            self._started = True
            self.create_task(self._start_feed(), log_msg="alpaca warm-up and stream")

    async def _unsubscribe_bars(self, command: UnsubscribeBars) -> None:
        self._wanted.discard(command.bar_type.instrument_id.symbol.value)

    async def _subscribe_quote_ticks(self, command: SubscribeQuoteTicks) -> None:
        """Top-of-book quotes from the same stream (``QuoteTick``); the bar strategies do not need them."""
        symbol = command.instrument_id.symbol.value
        if symbol not in self._symbols:
            raise BrokerError(f"quotes of {symbol} asked for, but the data client's universe is {self._symbols}")
        self._quote_symbols.add(symbol)
        if self._stream is not None:
            # alpaca-py's subscribe_quotes would block this loop (it waits on a future of the same loop)
            self._stream._handlers["quotes"][symbol] = self._on_quote
            if self._stream._running:
                await self._stream._send_subscribe_msg()

    async def _on_quote(self, msg: dict[str, Any]) -> None:
        inst = self._instruments[str(msg["S"])]
        ts = utc_ns(msg["t"])
        self._handle_data(QuoteTick(
            instrument_id=inst.id, bid_price=inst.make_price(float(msg["bp"])), ask_price=inst.make_price(float(msg["ap"])),
            bid_size=inst.make_qty(float(msg.get("bs", 0))), ask_size=inst.make_qty(float(msg.get("as", 0))),
            ts_event=ts, ts_init=self._clock.timestamp_ns(),
        ))

    # ---- feed ----------------------------------------------------------------------------
    async def _start_feed(self) -> None:
        try:
            await self._warm_up_and_stream()
        except Exception as exc:  # noqa: BLE001 - a failed warm-up must stop the session, not leave it idle
            self._fatal(f"Alpaca market data could not start: {exc}")

    async def _warm_up_and_stream(self) -> None:
        cfg = self._cfg
        if cfg.warmup_bars > 0:
            end = pd.Timestamp(self._clock.timestamp_ns(), tz="UTC")
            start = warmup_start(end, cfg.bar, cfg.warmup_bars)
            frames = await asyncio.to_thread(
                rest_frames, self._rest, self._all, cfg.bar, start, end, cfg.alpaca.feed, cfg.alpaca.adjustment
            )
            frames = {s: f.iloc[-cfg.warmup_bars:] for s, f in frames.items()}
            missing = [s for s in self._all if s not in frames]
            if missing:
                self._log.warning(f"no {cfg.bar} warm-up bars from Alpaca for {', '.join(missing)}")
            self._publish_frames(frames)
            last = max((int(f.index[-1].value) for f in frames.values() if len(f)), default=-1)
            self._agg.start_after(last)
        self._stream = make_stock_stream(cfg, self._on_connected)
        self._stream.subscribe_bars(self._on_minute, *self._all)
        if self._quote_symbols:
            self._stream.subscribe_quotes(self._on_quote, *sorted(self._quote_symbols))
        self.create_task(self._run_stream(), log_msg="alpaca stock data stream")
        self.create_task(self._flush_timer(), log_msg="alpaca bar flush timer")

    async def _run_stream(self) -> None:
        """alpaca-py's stream loop; it returns only when stopped - or for good on "insufficient subscription"."""
        await self._stream._run_forever()
        if self._stream._should_run:
            self._fatal(
                f"Alpaca closed the {self._cfg.alpaca.feed} market-data stream for good (it answers this way when "
                f"the account's data plan does not include the {self._cfg.alpaca.feed!r} feed: 'insufficient "
                "subscription'); set paper.feed = \"iex\" (the free feed) or subscribe to the plan"
            )

    def _fatal(self, message: str) -> None:
        """A failure the session cannot trade through: tell the runner (engine.paper stops the node and exits)."""
        self._log.error(message)
        self._msgbus.publish(FATAL_TOPIC, message)

    async def _on_connected(self, n: int) -> None:
        """After each connection's subscription: back-fill by REST the minutes missed meanwhile."""
        # from the minute after each symbol's last one (or the end of the warm-up), earliest of all
        seen = self._agg.last_minute
        begin = min(seen[s] + 60_000_000_000 if s in seen else self._agg.emitted_close for s in self._all)
        if begin < 0:
            return
        rows = await asyncio.to_thread(
            rest_minutes, self._rest, self._all, pd.Timestamp(begin, tz="UTC"), self._cfg.alpaca.feed,
            self._cfg.alpaca.adjustment,
        )
        before = self._agg.duplicates
        for symbol, start, o, h, lo, c, v in rows:
            self._emit(self._agg.add(symbol, start, o, h, lo, c, v))
        fresh = len(rows) - (self._agg.duplicates - before)
        if n > 1 or fresh:
            self._log.info(f"stream connection {n}: back-filled {fresh} minute bar(s) by REST")

    async def _on_minute(self, msg: dict[str, Any]) -> None:
        symbol = str(msg["S"])
        start = pd.Timestamp(utc_ns(msg["t"]), tz="UTC")
        self._emit(self._agg.add(symbol, start, float(msg["o"]), float(msg["h"]), float(msg["l"]),
                                 float(msg["c"]), float(msg["v"])))

    async def _flush_timer(self) -> None:
        delay = int(self._cfg.flush_delay_s * 1e9)
        while True:
            await asyncio.sleep(1.0)
            self._emit(self._agg.flush_due(self._clock.timestamp_ns(), delay, self._since_ns))

    # ---- publishing ------------------------------------------------------------------------
    def _emit(self, bars: list[LiveBar]) -> None:
        if bars:
            self._publish_frames(frames_from_bars(bars))

    def _publish_frames(self, frames: dict[str, pd.DataFrame]) -> None:
        """Bars of several symbols, in (close time, universe order) - the backtest's order.

        Before the bars of each close time, the whole time's rows (extra symbols included)
        go out on :data:`engine.overlays.BATCH_TOPIC` for the live overlay inputs.
        """
        rows: dict[int, dict[str, tuple[float, float, float, float, float]]] = {}
        bars: dict[int, list[Any]] = {}
        for s in self._all:
            frame = frames.get(s)
            if frame is None or frame.empty:
                continue
            if s in self._extra:  # overlay input only: no instrument, no bar event
                values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64")
                for t, v in zip(frame.index.asi8.tolist(), values.tolist(), strict=True):
                    rows.setdefault(int(t), {})[s] = tuple(v)
                continue
            for bar in cat.frame_to_bars(frame, s, self._cfg.bar, self._instruments[s]):
                t = int(bar.ts_event)
                bars.setdefault(t, []).append(bar)
                # the overlay inputs see exactly the prices the strategy sees (instrument precision)
                rows.setdefault(t, {})[s] = (bar.open.as_double(), bar.high.as_double(), bar.low.as_double(),
                                             bar.close.as_double(), bar.volume.as_double())
        for ts in sorted(rows):
            self._msgbus.publish(BATCH_TOPIC, (ts, rows[ts]))
            for bar in bars.get(ts, []):
                self._handle_data(bar)
