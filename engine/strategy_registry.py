"""Strategy kinds of the backtest config, as NautilusTrader plug-in paths.

The engine never imports ``strategies`` (it sits above the engine): it names strategy
classes as ``"module:Class"`` strings, as NautilusTrader configs do, and resolves them
at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import BacktestConfig


@dataclass(frozen=True)
class StrategySpec:
    """Where a strategy kind lives and which config fields it takes."""

    strategy_path: str
    config_path: str
    params: tuple[str, ...] = ()


STRATEGIES: dict[str, StrategySpec] = {
    "buy_and_hold": StrategySpec("strategies.buy_and_hold:BuyAndHold", "strategies.buy_and_hold:BuyAndHoldConfig"),
    "sma_cross": StrategySpec("strategies.sma_cross:SmaCross", "strategies.sma_cross:SmaCrossConfig", ("fast", "slow")),
}


def warmup_bars(cfg: BacktestConfig) -> int:
    """Bars of history a strategy needs before the first bar it may trade on."""
    if cfg.strategy.kind == "sma_cross":
        return cfg.strategy.slow
    return 0


def strategy_params(cfg: BacktestConfig) -> dict[str, Any]:
    """The strategy-specific fields of the config for the chosen kind."""
    spec = STRATEGIES[cfg.strategy.kind]
    return {name: getattr(cfg.strategy, name) for name in spec.params}
