"""Alpaca adapter on alpaca-py, laid out like NautilusTrader's own adapters.

* :mod:`~engine.adapters.alpaca.config` - endpoints, feed, retry policy, the client configs
  of a ``TradingNode``; keys from the environment only.
* :mod:`~engine.adapters.alpaca.providers` - Alpaca assets -> NautilusTrader instruments.
* :mod:`~engine.adapters.alpaca.data` - the live market-data client (REST warm-up, minute
  stream aggregated by :mod:`~engine.adapters.alpaca.bars`, back-fill on reconnect).
* :mod:`~engine.adapters.alpaca.execution` - the live execution client (orders, trade
  updates, reconciliation reports, pre-trade limits).
* :mod:`~engine.adapters.alpaca.factories` - the factories a ``TradingNode`` builds them with.
* :mod:`~engine.adapters.alpaca.historical`, :mod:`~engine.adapters.alpaca.news` - bar and
  news ingestion into a catalog; :mod:`~engine.adapters.alpaca.http` - the shared retry policy.

alpaca-py is imported only inside these modules, so ``import engine`` does not pay for it.
"""
