"""The straightforward form of the environment: one episode at a time, plain Python, gymnasium's ``Env``.

:class:`PythonTradingEnv` does the same accounting as the numba environment
(:mod:`research.rl.env_nb`) with Python floats and the engine's own Python helpers
(:func:`engine.sizing.shares_for`, the ``Quantity`` / ``Money`` rounding of
:func:`engine.sim.kernels_nb.nt_round` called as Python): the same fills, equity and
rewards bit for bit (tests/research/rl). It is what a first implementation on gymnasium
would look like, and the baseline ``benchmarks/rl_env.py`` measures the vectorised
environment against.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from engine.overlays import REASON_CODE
from engine.sizing import floor_qty, shares_for
from research.rl import env_nb as E
from research.rl.config import RLConfig
from research.rl.env import env_params
from research.rl.market import Market

__all__ = ["PythonTradingEnv"]


def _nt_round(x: float, scale: float, back: float) -> float:
    v = x * scale
    r = math.floor(abs(v) + 0.5)
    if v < 0.0:
        r = -r
    return (r * back) / 1e16


class PythonTradingEnv(gym.Env):  # type: ignore[misc]
    """One episode (global rows *start* .. *end* of *market*), stepped in Python."""

    def __init__(self, market: Market, cfg: RLConfig, start: int, end: int) -> None:
        self.m = market
        self.cfg = cfg
        self.start, self.end = int(start), int(end)
        self.fp, self.ip = env_params(cfg, market)
        self.next_open = cfg.env.fill == "next_open"
        self.n_state = 4 if cfg.env.gate_model else 3
        dim = market.lookback * market.n_features + self.n_state
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Discrete(len(cfg.actions))
        self.precision = 6 if cfg.env.fractional else 0

    # -- the rules, as strategies/base.py writes them ------------------------------------------
    def _prepare(self) -> None:
        k, fp, ip = self.row, self.fp, self.ip
        self.forced = 0
        if self.pos != 0.0:
            self.held += 1
            hi, lo = float(self.m.high[k]), float(self.m.low[k])
            sl, tp, trail = fp[E.P_SL], fp[E.P_TP], fp[E.P_TRAIL]
            reason = ""
            if self.pos > 0.0:
                if hi > self.extreme:
                    self.extreme = hi
                if sl > 0.0 and lo <= self.entry * (1.0 - sl):
                    reason = "stop_loss"
                elif trail > 0.0 and lo <= self.extreme * (1.0 - trail):
                    reason = "trailing_stop"
                elif tp > 0.0 and hi >= self.entry * (1.0 + tp):
                    reason = "take_profit"
            else:
                if lo < self.extreme:
                    self.extreme = lo
                if sl > 0.0 and hi >= self.entry * (1.0 + sl):
                    reason = "stop_loss"
                elif trail > 0.0 and hi >= self.extreme * (1.0 + trail):
                    reason = "trailing_stop"
                elif tp > 0.0 and lo <= self.entry * (1.0 - tp):
                    reason = "take_profit"
            if not reason and ip[E.I_MAX_HOLD] > 0 and self.held >= ip[E.I_MAX_HOLD]:
                reason = "time_stop"
            self.forced = REASON_CODE[reason] if reason else 0
        else:
            self.flat += 1

    def _observe(self) -> np.ndarray:
        k, lookback = self.row, self.m.lookback
        window = self.m.features[k - lookback + 1 : k + 1].reshape(-1)
        side = 1.0 if self.pos > 0.0 else (-1.0 if self.pos < 0.0 else 0.0)
        unreal = side * (float(self.m.close[k]) / self.entry - 1.0) if self.pos != 0.0 else 0.0
        held = float(self.held) if self.pos != 0.0 else 0.0
        raw = [side, unreal, held, float(self.m.prob[k])][: self.n_state]
        state = [min(max((x - E.STATE_OFFSET[u]) * E.STATE_SCALE[u], -E.STATE_CLIP[u]), E.STATE_CLIP[u])
                 for u, x in enumerate(raw)]
        return np.concatenate([window, np.asarray(state, dtype=np.float32)]).astype(np.float32)

    def _fill(self, k: int, sgn: float, qty: float, reason: int) -> None:
        fp = self.fp
        scale = fp[E.P_QTY_SCALE]
        px = float(self.m.ask[k]) if sgn > 0.0 else float(self.m.bid[k])
        q = _nt_round(qty, scale, 1e16 / scale)
        fee = q * px * fp[E.P_BPS] / 10_000.0 + q * fp[E.P_PER_SHARE]
        if fp[E.P_CMIN] > fee:
            fee = fp[E.P_CMIN]
        comm = _nt_round(fee, 100.0, 1e14)
        before = self.pos
        self.pos = before + sgn * q
        self.cash -= sgn * q * px + comm
        if before == 0.0 and self.pos != 0.0:
            self.entry = self.extreme = px
            self.held = 0
        elif self.pos == 0.0:
            self.flat = 0
        self.cum += -(sgn * (q * px) + comm)
        self.step_costs[0] += comm
        self.step_costs[1] += q * abs(px - float(self.m.ref[k]))
        self.step_notional += q * px
        self.fills.append((k, sgn, q, px, comm, reason))

    def _order(self, a: int) -> tuple[float, float, int]:
        fp, ip, pos = self.fp, self.ip, self.pos
        if self.forced:
            return (-1.0 if pos > 0.0 else 1.0), abs(pos), self.forced
        if ip[E.I_GATE] == 1:
            p = float(self.m.prob[self.row])
            if math.isnan(p):
                return 0.0, 0.0, 0
            if pos > 0.0:
                ok = p < fp[E.P_EXIT] and self.held >= ip[E.I_MIN_HOLD]
                return (-1.0, pos, REASON_CODE["signal"]) if ok else (0.0, 0.0, 0)
            target = 1 if (a == 1 and p >= fp[E.P_ENTRY]) else 0
        else:
            target = (0, 1, -1)[a]
        if pos != 0.0:
            if ((pos > 0.0 and target != 1) or (pos < 0.0 and target != -1)) and self.held >= ip[E.I_MIN_HOLD]:
                return (-1.0 if pos > 0.0 else 1.0), abs(pos), REASON_CODE["signal"]
            return 0.0, 0.0, 0
        if target == 0 or (target == -1 and not ip[E.I_SHORT]) or not self.flat > ip[E.I_COOLDOWN]:
            return 0.0, 0.0, 0
        value = fp[E.P_POS_SIZE] * (self.cash + 0.0)
        price = float(self.m.close[self.row])
        if target == 1:
            q = shares_for(value, price, self.cash, fp[E.P_COST_RATE], self.precision)
        else:
            q = floor_qty(value / price, self.precision) if price > 0.0 else 0.0
        return (float(target), q, 0) if q > 0 else (0.0, 0.0, 0)

    # -- gymnasium --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the episode flat with the full capital."""
        super().reset(seed=seed)
        self.row = self.start
        self.last = self.end - 1 if self.next_open else self.end
        self.pos = self.cum = self.entry = self.extreme = 0.0
        self.cash = self.eq = self.peak = float(self.fp[E.P_CAPITAL])
        self.held, self.flat, self.forced = 0, E.NEVER, 0
        self.fills: list[tuple[int, float, float, float, float, int]] = []
        self._prepare()
        return self._observe(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, float]]:
        """Act at the decision bar, fill, mark at the next close; the last step flattens."""
        capital = float(self.fp[E.P_CAPITAL])
        self.step_costs = [0.0, 0.0]
        self.step_notional = 0.0
        k, eq0 = self.row, self.eq
        sgn, qty, reason = self._order(int(action))
        if sgn != 0.0:
            self._fill(k, sgn, qty, reason)
        j = k + 1
        eq = (capital + self.cum) + self.pos * float(self.m.mark[j])
        info = {"equity": eq, "terminal_equity": 0.0}
        done = j >= self.last
        if done:
            if self.pos != 0.0:
                self._fill(self.last, -1.0 if self.pos > 0.0 else 1.0, abs(self.pos), REASON_CODE["end"])
            eq = (capital + self.cum) + 0.0
            info["terminal_equity"] = eq
        turnover = self.step_notional / eq0
        reward = math.log(eq / eq0) - self.fp[E.P_TURN_PEN] * turnover
        dd0 = 1.0 - eq0 / self.peak
        self.peak = max(self.peak, eq)
        dd1 = 1.0 - eq / self.peak
        if dd1 > dd0:
            reward -= self.fp[E.P_DD_PEN] * (dd1 - dd0)
        self.eq = eq
        info.update(commission=self.step_costs[0], slippage=self.step_costs[1], turnover=turnover,
                    gross_pnl=(eq - eq0) + self.step_costs[0] + self.step_costs[1])
        if not done:
            self.row = j
            self._prepare()
        return self._observe(), reward, done, False, info

    def action_masks(self) -> np.ndarray:
        """The allowed actions at the decision bar (the numba environment's mask)."""
        n = len(self.cfg.actions)
        mask = np.ones(n, dtype=bool)
        if self.forced:
            return mask
        can_enter, can_exit = self.flat > self.ip[E.I_COOLDOWN], self.held >= self.ip[E.I_MIN_HOLD]
        if self.ip[E.I_GATE] == 1:
            p = float(self.m.prob[self.row])
            mask[1] = self.pos == 0.0 and can_enter and not math.isnan(p) and p >= self.fp[E.P_ENTRY]
        elif self.pos == 0.0:
            mask[1:] = can_enter
        elif self.pos > 0.0:
            mask[0] = can_exit
            mask[2:] = can_exit
        else:
            mask[0] = mask[1] = can_exit
        return mask
