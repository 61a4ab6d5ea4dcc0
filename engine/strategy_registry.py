"""Strategy kinds of the backtest config, as NautilusTrader plug-in paths.

The engine never imports ``strategies`` (it sits above the engine) nor ``models`` (they
are independent): it names strategy classes and their hooks as ``"module:attribute"``
strings, as NautilusTrader configs do, and resolves them at run time.

A strategy class may define ``prepare(frames)``: the runner calls it once, before the
event loop, with every symbol's bars (warm-up history included) - the NN strategies
compute their features and probabilities there in one batched pass.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from engine.config import BacktestConfig


@dataclass(frozen=True)
class StrategySpec:
    """Where a strategy kind lives, which config fields it takes, and its warm-up hook."""

    strategy_path: str
    config_path: str
    params: tuple[str, ...] = ()
    warmup_path: str = ""
    data_params: tuple[str, ...] = ()
    """Fields of the ``[data]`` section the strategy also takes (e.g. the catalog its news is in)."""
    portfolio_params: tuple[str, ...] = ()
    """Fields of the ``[portfolio]`` section the strategy also takes (e.g. the account type)."""


_SIGNAL_PARAMS = (
    "model", "entry_threshold", "exit_threshold", "max_hold_bars", "short_threshold", "cover_threshold", "mode",
)
STRATEGIES: dict[str, StrategySpec] = {
    "buy_and_hold": StrategySpec("strategies.buy_and_hold:BuyAndHold", "strategies.buy_and_hold:BuyAndHoldConfig"),
    "sma_cross": StrategySpec("strategies.sma_cross:SmaCross", "strategies.sma_cross:SmaCrossConfig", ("fast", "slow")),
    "signal": StrategySpec(
        "strategies.signal:SignalStrategy", "strategies.signal:SignalStrategyConfig", _SIGNAL_PARAMS,
        "strategies.signal:warmup_bars", ("catalog",),
    ),
    "ensemble": StrategySpec(
        "strategies.signal:SignalStrategy", "strategies.signal:SignalStrategyConfig", _SIGNAL_PARAMS,
        "strategies.signal:warmup_bars", ("catalog",),
    ),
    "policy": StrategySpec(
        "strategies.policy:PolicyStrategy", "strategies.policy:PolicyStrategyConfig",
        ("model", "mode", "max_hold_bars", "entry_threshold", "exit_threshold"),
        "strategies.policy:warmup_bars", ("catalog",), ("account",),
    ),
    # not a config kind: replays recorded targets (the RL environment's parity tests)
    "target_replay": StrategySpec("strategies.target:ReplayTargets", "strategies.target:ReplayTargetsConfig"),
}


def resolve(path: str) -> Any:
    """Import ``"module:attribute"``."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def warmup_bars(cfg: BacktestConfig) -> int:
    """Bars of history a strategy needs before the first bar it may trade on."""
    if cfg.strategy.kind == "sma_cross":
        return cfg.strategy.slow
    spec = STRATEGIES[cfg.strategy.kind]
    if spec.warmup_path:
        return int(resolve(spec.warmup_path)(cfg))
    return 0


def strategy_params(cfg: BacktestConfig) -> dict[str, Any]:
    """The strategy-specific fields of the config for the chosen kind."""
    spec = STRATEGIES[cfg.strategy.kind]
    params = {name: getattr(cfg.strategy, name) for name in spec.params}
    params.update({name: str(getattr(cfg.data, name)) for name in spec.data_params})
    params.update({name: getattr(cfg.portfolio, name) for name in spec.portfolio_params})
    return params
