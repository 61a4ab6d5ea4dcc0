"""NautilusTrader factories for the Alpaca clients (what ``TradingNode.add_*_client_factory`` takes).

Each factory builds, from its config, the alpaca-py REST client (keys from the environment,
sigtrade's retry policy), the shared :class:`AlpacaInstrumentProvider` and the client.
"""

from __future__ import annotations

import asyncio

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.factories import LiveDataClientFactory, LiveExecClientFactory

from engine.adapters.alpaca.config import (
    AlpacaConfig,
    AlpacaDataClientConfig,
    AlpacaExecClientConfig,
)
from engine.adapters.alpaca.data import AlpacaDataClient
from engine.adapters.alpaca.execution import AlpacaExecutionClient
from engine.adapters.alpaca.providers import AlpacaInstrumentProvider, make_trading_client

_PROVIDERS: dict[tuple[tuple[str, ...], bool, str | None], AlpacaInstrumentProvider] = {}


def instrument_provider(symbols: tuple[str, ...], fractional: bool, config: AlpacaConfig) -> AlpacaInstrumentProvider:
    """One provider per (universe, fractional, endpoint), shared by the data and execution clients."""
    key = (tuple(symbols), bool(fractional), config.resolved_trading_url())
    provider = _PROVIDERS.get(key)
    if provider is None:
        provider = AlpacaInstrumentProvider(make_trading_client(config), symbols, fractional=fractional)
        _PROVIDERS[key] = provider
    return provider


class AlpacaLiveDataClientFactory(LiveDataClientFactory):
    """Builds :class:`AlpacaDataClient` from :class:`AlpacaDataClientConfig`."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop, name: str, config: AlpacaDataClientConfig,
        msgbus: MessageBus, cache: Cache, clock: LiveClock,
    ) -> AlpacaDataClient:
        from engine.adapters.alpaca.historical import make_client

        provider = instrument_provider(config.symbols, config.fractional, config.alpaca)
        return AlpacaDataClient(loop, msgbus, cache, clock, provider, make_client(config.alpaca), config)


class AlpacaLiveExecClientFactory(LiveExecClientFactory):
    """Builds :class:`AlpacaExecutionClient` from :class:`AlpacaExecClientConfig`."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop, name: str, config: AlpacaExecClientConfig,
        msgbus: MessageBus, cache: Cache, clock: LiveClock,
    ) -> AlpacaExecutionClient:
        provider = instrument_provider(config.symbols, config.fractional, config.alpaca)
        return AlpacaExecutionClient(loop, msgbus, cache, clock, provider, make_trading_client(config.alpaca), config)
