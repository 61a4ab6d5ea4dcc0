"""Target-position strategies: each bar, a target (-1 short, 0 flat, +1 long) per symbol.

:class:`TargetStrategy` turns a target into at most one order through the base's
``enter`` / ``enter_short`` / ``exit`` (so every overlay, sizing rule and refusal of
:mod:`strategies.base` applies): a position whose sign differs from the target is
closed (the reversal, if any, follows on a later bar once the exit has filled); a flat
symbol with a non-zero target is entered with ``position_size x equity``.
:meth:`TargetStrategy.allowed` is the action mask of the same rules (an exit before
``min_hold_bars``, an entry inside ``cooldown_bars``), as the RL environment computes it.

:class:`ReplayTargets` replays recorded targets per (symbol, bar close): the event-engine
side of the RL environment's parity contract (tests/research/test_rl_parity_real.py).
The RL policy strategy (:mod:`strategies.policy`) stands on the same base.
"""

from __future__ import annotations

import numpy as np
from nautilus_trader.model.data import Bar

from strategies.base import SigtradeStrategy, SigtradeStrategyConfig

__all__ = ["ReplayTargets", "ReplayTargetsConfig", "TargetStrategy"]


class TargetStrategy(SigtradeStrategy):
    """Base of strategies that decide a target position per symbol and bar."""

    def go_to(self, symbol: str, target: int) -> bool:
        """Move *symbol* towards *target* (-1, 0, +1) with at most one order; False when nothing was sent."""
        if self.pending[symbol]:
            return False
        pos = self.position[symbol]
        if (pos > 0.0 and target != 1) or (pos < 0.0 and target != -1):
            return self.exit(symbol)
        if pos != 0.0 or target == 0:
            return False
        if target == 1:
            return self.enter(symbol, self.cfg.position_size * self.equity())
        return self.enter_short(symbol, self.cfg.position_size * self.equity())

    def allowed(self, symbol: str) -> tuple[bool, bool, bool]:
        """Whether the targets (flat, long, short) may change anything the rules would refuse.

        Flat with a cooldown running: only flat; holding before ``min_hold_bars``: only the
        position's own side. (The RL environment's mask, in the same order.)
        """
        pos = self.position[symbol]
        if pos == 0.0:
            can_enter = self.bars_flat[symbol] > self.cfg.cooldown_bars
            return True, can_enter, can_enter
        can_exit = self.bars_held[symbol] >= self.cfg.min_hold_bars
        if pos > 0.0:
            return can_exit, True, can_exit
        return can_exit, can_exit, True

    def state(self, symbol: str) -> tuple[float, float, float]:
        """The raw state a policy observes: position sign, unrealised return, bars held."""
        pos = self.position[symbol]
        if pos == 0.0:
            return 0.0, 0.0, 0.0
        side = 1.0 if pos > 0.0 else -1.0
        return side, side * (self.last_close[symbol] / self.entry_price[symbol] - 1.0), float(self.bars_held[symbol])


class ReplayTargetsConfig(SigtradeStrategyConfig, frozen=True, kw_only=True):
    """Recorded targets: per symbol, the bar close times (ns) and the target of each (-1, 0, +1)."""

    target_ts: dict[str, list[int]] = {}
    targets: dict[str, list[int]] = {}


class ReplayTargets(TargetStrategy):
    """Replays recorded targets; a bar without one keeps the target flat."""

    def __init__(self, config: ReplayTargetsConfig) -> None:
        super().__init__(config)
        self._ts = {s: np.asarray(v, dtype=np.int64) for s, v in config.target_ts.items()}
        self._target = {s: np.asarray(config.targets[s], dtype=np.int64) for s in config.target_ts}

    def decide(self, symbol: str, bar: Bar) -> None:
        """Act on the recorded target of this bar."""
        ts = self._ts.get(symbol)
        target = 0
        if ts is not None:
            i = int(np.searchsorted(ts, bar.ts_event))
            if i < len(ts) and ts[i] == bar.ts_event:
                target = int(self._target[symbol][i])
        self.go_to(symbol, target)
