"""sigtrade engine: NautilusTrader wiring, costs, fills, metrics, reports and the CLI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
