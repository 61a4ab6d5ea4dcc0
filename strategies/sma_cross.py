"""SMA cross, the rule baseline: long while the fast SMA of closes is above the slow one."""

from __future__ import annotations

from collections import deque

from nautilus_trader.model.data import Bar

from strategies.base import SigtradeStrategy, SigtradeStrategyConfig


class SmaCrossConfig(SigtradeStrategyConfig, frozen=True, kw_only=True):
    """Fast and slow SMA lengths in bars."""

    fast: int = 20
    slow: int = 50


class _Sma:
    """Running simple moving average of the last *n* values."""

    __slots__ = ("n", "values", "total")

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: deque[float] = deque(maxlen=n)
        self.total = 0.0

    def update(self, x: float) -> None:
        if len(self.values) == self.n:
            self.total -= self.values[0]
        self.values.append(x)
        self.total += x

    @property
    def ready(self) -> bool:
        return len(self.values) == self.n

    @property
    def value(self) -> float:
        return self.total / self.n


class SmaCross(SigtradeStrategy):
    """Enter ``position_size`` x equity when fast > slow; exit when fast <= slow."""

    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        if config.fast >= config.slow:
            raise ValueError(f"fast ({config.fast}) must be shorter than slow ({config.slow})")
        self.fast = {s: _Sma(config.fast) for s in config.symbols}
        self.slow = {s: _Sma(config.slow) for s in config.symbols}
        self.size = config.position_size

    def observe(self, symbol: str, bar: Bar) -> None:
        """Update both averages (every bar, also one with a forced exit)."""
        c = self.last_close[symbol]
        self.fast[symbol].update(c)
        self.slow[symbol].update(c)

    def warm(self, symbol: str, bar: Bar) -> None:
        """Update both averages with a bar before the trading window."""
        self.observe(symbol, bar)

    def decide(self, symbol: str, bar: Bar) -> None:
        """Go long on fast > slow, flat otherwise; wait until the slow SMA is full."""
        slow = self.slow[symbol]
        if not slow.ready:
            return
        if self.fast[symbol].value > slow.value:
            if self.position[symbol] == 0.0:
                self.enter(symbol, self.size * self.equity())
        elif self.position[symbol] > 0.0:
            self.exit(symbol)
