"""Buy-and-hold: buy every symbol with an equal share of the starting capital, hold to the end."""

from __future__ import annotations

from nautilus_trader.model.data import Bar

from strategies.base import SigtradeStrategy, SigtradeStrategyConfig


class BuyAndHoldConfig(SigtradeStrategyConfig, frozen=True, kw_only=True):
    """Buy-and-hold has no parameters of its own; position_size and max_positions do not apply."""


class BuyAndHold(SigtradeStrategy):
    """On each symbol's first bar in the window, buy ``capital / len(symbols)`` of it."""

    def __init__(self, config: BuyAndHoldConfig) -> None:
        super().__init__(config)
        self.entered: set[str] = set()

    def decide(self, symbol: str, bar: Bar) -> None:
        """Enter once per symbol; the base flattens at the end of data."""
        if symbol in self.entered:
            return
        self.entered.add(symbol)
        self.enter(symbol, self.cfg.capital / len(self.cfg.symbols), respect_max_positions=False)
