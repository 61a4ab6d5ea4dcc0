"""NautilusTrader instruments for Alpaca symbols, from Alpaca's asset records.

:class:`AlpacaInstrumentProvider` asks alpaca-py's ``TradingClient`` for each symbol's
asset (``GET /v2/assets/{symbol}``) and builds the instrument with
:func:`engine.catalog.make_instrument`, so paper trading uses exactly the instruments of
the backtest: a whole-share ``Equity``, or the fractional equity when the asset is
``fractionable`` *and* fractional trading is wanted. An asset that is not ``tradable``
(or not ``active``), or a symbol Alpaca does not know, is refused with a
:class:`~engine.errors.BrokerError` naming the symbol, before anything trades.

The provider is a NautilusTrader ``InstrumentProvider`` (``load_ids_async`` /
``load_async`` / ``load_all_async`` for the symbols it was given), ready for the live
data and execution clients; :meth:`AlpacaInstrumentProvider.load_symbols` is the plain
synchronous entry.

GETs run under sigtrade's bounded retry policy
(:func:`engine.adapters.alpaca.http.call_with_retries`); alpaca-py's own retry is off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from nautilus_trader.common.config import InstrumentProviderConfig
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument

from engine.adapters.alpaca.config import AlpacaConfig, credentials
from engine.catalog import make_instrument
from engine.errors import BrokerError


def make_trading_client(config: AlpacaConfig) -> Any:
    """alpaca-py ``TradingClient`` (raw dicts) on ``config``'s trading URL, keys from the environment.

    Its GET requests run under ``config.retry``; orders (POST/DELETE) are never retried
    here (a retried order could trade twice; idempotency is the ``client_order_id``'s job).
    """
    from alpaca.trading.client import TradingClient

    from engine.adapters.alpaca.http import call_with_retries

    policy = config.retry
    key_id, secret = credentials()

    class RetryingTradingClient(TradingClient):  # type: ignore[misc]
        def _one_request(self, method: str, url: str, opts: dict[str, Any], retry: int) -> Any:
            opts = {**opts, "timeout": policy.timeout_s}
            parent = super()._one_request
            if method.upper() != "GET":
                return parent(method, url, opts, 0)
            what = f"{method} {url.split('?', 1)[0]}"
            return call_with_retries(lambda: parent(method, url, opts, 0), policy, what)

    return RetryingTradingClient(
        key_id,
        secret,
        paper=config.paper,
        raw_data=True,
        url_override=config.resolved_trading_url(),
    )


def _field(asset: Any, name: str, default: Any = None) -> Any:
    """A field of an asset given as alpaca-py's ``Asset`` model or as Alpaca's raw dict."""
    if isinstance(asset, dict):
        return asset.get(name, default)
    value = getattr(asset, name, default)
    return getattr(value, "value", value)  # enums -> their wire string


class AlpacaInstrumentProvider(InstrumentProvider):
    """Instruments for *symbols* from Alpaca's asset records (see the module docstring).

    Parameters
    ----------
    client
        An alpaca-py ``TradingClient`` (models or ``raw_data=True``); see
        :func:`make_trading_client`.
    symbols
        The universe (Alpaca symbols, e.g. ``"AAPL"``, ``"BRK.B"``).
    fractional
        Trade fractional shares where the asset allows it; False = whole shares everywhere.
    """

    def __init__(
        self,
        client: Any,
        symbols: Iterable[str] = (),
        *,
        fractional: bool = False,
        config: InstrumentProviderConfig | None = None,
    ) -> None:
        super().__init__(config or InstrumentProviderConfig(load_all=True))
        self._client = client
        self._symbols = list(dict.fromkeys(symbols))
        self._fractional = bool(fractional)
        self.assets: dict[str, Any] = {}
        """The asset record of every loaded symbol (what Alpaca answered)."""

    # ---- synchronous API -------------------------------------------------------------
    def load_symbols(self, symbols: Iterable[str] | None = None) -> dict[str, Instrument]:
        """Load *symbols* (default: the provider's universe); returns symbol -> instrument.

        Raises BrokerError naming every refused symbol (unknown, not tradable, inactive);
        nothing is added when any is refused.
        """
        wanted = list(dict.fromkeys(symbols if symbols is not None else self._symbols))
        if not wanted:
            raise BrokerError("no symbols to load instruments for: give the universe's symbols")
        built: dict[str, Instrument] = {}
        assets: dict[str, Any] = {}
        refused: list[str] = []
        for symbol in wanted:
            asset = self._get_asset(symbol)
            if asset is None:
                refused.append(f"{symbol} (Alpaca does not know this symbol)")
                continue
            status = str(_field(asset, "status", "active")).lower()
            if not _field(asset, "tradable", False):
                refused.append(f"{symbol} (not tradable at Alpaca)")
                continue
            if status != "active":
                refused.append(f"{symbol} (asset status {status!r}, not active)")
                continue
            fractional = bool(_field(asset, "fractionable", False)) and self._fractional
            built[symbol] = make_instrument(symbol, fractional=fractional)
            assets[symbol] = asset
        if refused:
            raise BrokerError(
                f"Alpaca refuses {len(refused)} symbol(s) of the universe: {', '.join(refused)}; "
                "remove them from the universe (paper trading does not start with symbols it cannot trade)"
            )
        for instrument in built.values():
            self.add(instrument)
        self.assets.update(assets)
        return built

    def _get_asset(self, symbol: str) -> Any | None:
        from alpaca.common.exceptions import APIError

        try:
            return self._client.get_asset(symbol)
        except APIError as exc:
            if exc.status_code in (404, 422):
                return None
            raise BrokerError(
                f"Alpaca GET /v2/assets/{symbol} failed: HTTP {exc.status_code} ({exc})"
            ) from None

    def is_fractional(self, symbol: str) -> bool:
        """True when *symbol* was loaded as a fractional-share instrument."""
        return bool(_field(self.assets[symbol], "fractionable", False)) and self._fractional

    # ---- NautilusTrader InstrumentProvider -------------------------------------------
    async def load_all_async(self, filters: dict | None = None) -> None:
        await asyncio.to_thread(self.load_symbols)

    async def load_ids_async(
        self, instrument_ids: list[InstrumentId], filters: dict | None = None
    ) -> None:
        symbols = [iid.symbol.value for iid in instrument_ids]
        await asyncio.to_thread(self.load_symbols, symbols)

    async def load_async(self, instrument_id: InstrumentId, filters: dict | None = None) -> None:
        await self.load_ids_async([instrument_id], filters)
