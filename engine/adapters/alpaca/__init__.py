"""Alpaca adapter: historical bars now; live data and execution later (issue 6).

Modules: :mod:`~engine.adapters.alpaca.config` (settings, keys from the environment) and
:mod:`~engine.adapters.alpaca.historical` (bars through alpaca-py's
``StockHistoricalDataClient``). alpaca-py is imported only inside these modules, so
``import engine`` does not pay for it.
"""
