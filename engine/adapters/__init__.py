"""Adapters to brokers and data vendors (one sub-package each, NautilusTrader-style)."""
