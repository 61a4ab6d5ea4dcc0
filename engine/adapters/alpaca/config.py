"""Alpaca settings: frozen and strict; API keys come from the environment, at use, only.

Keys are never fields of :class:`AlpacaConfig` (so a config can be printed or logged) and
never CLI options (so they stay out of shell history and ``ps``). They are read by
:func:`credentials` from ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY`` (alpaca-py's own
names) when a client is built.

Endpoints default to Alpaca's; ``SIGTRADE_ALPACA_DATA_URL`` / ``SIGTRADE_ALPACA_TRADING_URL``
(REST) and ``SIGTRADE_ALPACA_DATA_STREAM_URL`` / ``SIGTRADE_ALPACA_TRADING_STREAM_URL`` /
``SIGTRADE_ALPACA_NEWS_STREAM_URL`` (WebSocket) override them (tests point them at a fake server on 127.0.0.1).
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec

from engine.errors import BrokerError

KEY_ID_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
DATA_URL_ENV = "SIGTRADE_ALPACA_DATA_URL"
TRADING_URL_ENV = "SIGTRADE_ALPACA_TRADING_URL"
DATA_STREAM_URL_ENV = "SIGTRADE_ALPACA_DATA_STREAM_URL"
TRADING_STREAM_URL_ENV = "SIGTRADE_ALPACA_TRADING_STREAM_URL"
NEWS_STREAM_URL_ENV = "SIGTRADE_ALPACA_NEWS_STREAM_URL"

Feed = Literal["iex", "sip"]
Adjustment = Literal["raw", "split", "dividend", "all"]


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How often and how long to wait when Alpaca answers 429 (rate limit) or 5xx."""

    max_retries: Annotated[int, msgspec.Meta(ge=0, le=20)] = 5
    """Retries of one request (429 and 5xx together) before giving up."""
    backoff_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 1.0
    """First wait after a 5xx (or a 429 without ``X-RateLimit-Reset``); doubles each retry."""
    max_wait_s: Annotated[float, msgspec.Meta(gt=0, le=3_600)] = 60.0
    """Longest single wait, also when ``X-RateLimit-Reset`` asks for more."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    """HTTP timeout of one request (connect and read)."""


class AlpacaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Alpaca endpoints and data options (no keys: see :func:`credentials`)."""

    data_url: str | None = None
    """Market-data base URL; None = ``$SIGTRADE_ALPACA_DATA_URL`` or Alpaca's (https://data.alpaca.markets)."""
    trading_url: str | None = None
    """Trading base URL; None = ``$SIGTRADE_ALPACA_TRADING_URL`` or Alpaca's paper endpoint."""
    data_stream_url: str | None = None
    """Whole market-data WebSocket URL; None = ``$SIGTRADE_ALPACA_DATA_STREAM_URL`` or Alpaca's for the feed."""
    trading_stream_url: str | None = None
    """Whole trade-updates WebSocket URL; None = ``$SIGTRADE_ALPACA_TRADING_STREAM_URL`` or Alpaca's."""
    news_stream_url: str | None = None
    """Whole news WebSocket URL; None = ``$SIGTRADE_ALPACA_NEWS_STREAM_URL`` or Alpaca's (``.../v1beta1/news``)."""
    paper: bool = True
    """Trade on the paper account (paper keys)."""
    feed: Feed = "iex"
    """Bar feed: iex (free plan) or sip (all US exchanges; paid plan)."""
    adjustment: Adjustment = "raw"
    """Corporate-action adjustment of prices: raw, split, dividend or all."""
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    """Back-off on 429 and 5xx answers."""

    def resolved_data_url(self) -> str | None:
        """The data URL to pass as ``url_override`` (None = alpaca-py's default)."""
        return self.data_url or os.environ.get(DATA_URL_ENV) or None

    def resolved_trading_url(self) -> str | None:
        """The trading URL to pass as ``url_override`` (None = alpaca-py's default)."""
        return self.trading_url or os.environ.get(TRADING_URL_ENV) or None

    def resolved_data_stream_url(self) -> str | None:
        """The market-data stream URL to pass as ``url_override`` (None = alpaca-py's default)."""
        return self.data_stream_url or os.environ.get(DATA_STREAM_URL_ENV) or None

    def resolved_trading_stream_url(self) -> str | None:
        """The trade-updates stream URL to pass as ``url_override`` (None = alpaca-py's default)."""
        return self.trading_stream_url or os.environ.get(TRADING_STREAM_URL_ENV) or None

    def resolved_news_stream_url(self) -> str | None:
        """The news stream URL to pass as ``url_override`` (None = alpaca-py's default)."""
        return self.news_stream_url or os.environ.get(NEWS_STREAM_URL_ENV) or None


def credentials() -> tuple[str, str]:
    """Return ``(key_id, secret)`` from the environment; BrokerError naming the variables if unset."""
    key_id = os.environ.get(KEY_ID_ENV, "").strip()
    secret = os.environ.get(SECRET_ENV, "").strip()
    missing = [name for name, value in ((KEY_ID_ENV, key_id), (SECRET_ENV, secret)) if not value]
    if missing:
        raise BrokerError(
            f"Alpaca API keys not found: set {' and '.join(missing)} in the environment "
            "(paper keys for the paper endpoint; keys are never taken on the command line)"
        )
    return key_id, secret


# ---- NautilusTrader client configs (what a TradingNodeConfig names) ---------------------------
from nautilus_trader.live.config import LiveDataClientConfig, LiveExecClientConfig  # noqa: E402


class AlpacaDataClientConfig(LiveDataClientConfig, frozen=True, kw_only=True):
    """The Alpaca market-data client of a TradingNode (see :mod:`engine.adapters.alpaca.data`)."""

    symbols: tuple[str, ...] = ()
    """The universe, in the backtest's symbol order (bars of one close time go out in this order)."""
    extra_symbols: tuple[str, ...] = ()
    """Symbols whose bars only feed the overlay inputs (the regime's benchmark when it is not traded)."""
    bar: str = "1-HOUR"
    """The strategy's bar size; live minute bars are aggregated to it."""
    fractional: bool = False
    """Build fractional-share instruments where Alpaca allows them."""
    warmup_bars: int = 500
    """Complete bars fetched by REST at start, before the stream, to warm features up."""
    flush_delay_s: float = 5.0
    """Emit a bar this long after its close when no later minute bar has arrived (session ends)."""
    alpaca: AlpacaConfig = msgspec.field(default_factory=AlpacaConfig)
    """Endpoints, feed, adjustment and retry policy."""


class AlpacaExecClientConfig(LiveExecClientConfig, frozen=True, kw_only=True):
    """The Alpaca execution client of a TradingNode, with sigtrade's pre-trade limits (0 = off)."""

    symbols: tuple[str, ...] = ()
    fractional: bool = False
    margin: bool = False
    """Margin account (shorts); False = a cash account."""
    max_order_notional: float = 0.0
    """Refuse an order worth more than this (USD, at the last close)."""
    max_position_notional: float = 0.0
    """Refuse an entry that would take a position above this (USD, at the last close)."""
    daily_loss_limit: float = 0.0
    """Refuse entries once equity is this fraction below the previous close's equity (0.03 = 3 %)."""
    submit_retries: int = 3
    """Re-sends of one order after a 5xx or no answer (same client_order_id, so never twice)."""
    alpaca: AlpacaConfig = msgspec.field(default_factory=AlpacaConfig)
