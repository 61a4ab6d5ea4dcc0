"""The vectorised trading environment (gymnasium's vector API) on :mod:`research.rl.env_nb`.

:class:`TradingVecEnv` steps ``n`` single-position episodes at once. Each episode is one
symbol, from a start bar to an end bar, with its own capital: a decision at bar ``t``'s
close fills at bar ``t+1``'s open (or ``t``'s close), with the configured commission,
slippage, whole or fractional shares, stops, time stop, minimum hold and cooldown - the
rules of the event engine (``strategies/base.py``), bit for bit (tests/research/rl).

* **Observation** (``float32``, one row per episode): the feature window (``lookback x
  F`` scaled features of the shared pipeline, oldest first), then the state: position
  (-1 / 0 / 1), unrealised return, bars held and, in gate mode, the supervised model's
  probability, each normalised as ``clip((x - offset) x scale)``
  (:data:`research.rl.env_nb.STATE_OFFSET` ...). The exported policy graph applies the same
  normalisation to the raw state, so a strategy feeds it raw values.
* **Actions**: the target position ``flat``, ``long`` (and ``short`` on a margin account
  with ``env.short``); in gate mode ``skip`` / ``trade`` on the entries the signal model
  proposes. :meth:`action_masks` says which are allowed (an exit before
  ``min_hold_bars`` or an entry inside ``cooldown_bars`` is refused, as the event engine
  refuses it; an unmasked refused action does nothing).
* **Reward**: net change in log equity after every cost, minus the configured turnover and
  drawdown penalties; the last step of an episode flattens the position and includes
  that fill.
* **info** (a dict of arrays, gymnasium's vector convention): ``gross_pnl`` (equity
  change + commission + slippage), ``commission``, ``slippage`` (quantity x |fill - reference
  price|), ``turnover`` (traded notional / equity), ``equity`` (the ledger's at the new bar
  close, before an end-of-episode fill), ``terminal_equity`` (after it, on the last step).

Training mode draws each new episode (symbol and start, ``env.episode_bars`` long, shorter
where a segment is) from the split's segments with a seeded generator, and resets
finished episodes within :meth:`step` (their last observation in
``info["final_observation"]``). Fixed mode (``episodes=[(start_row, end_row), ...]``)
runs exactly those episodes once each; finished ones stay finished.

Speed: one :meth:`step` is one kernel call over every episode (plus one that draws and
starts the episodes that finished), writing masks, rewards and info into preallocated
arrays and the observations straight into the new array the step returns: nothing is
allocated in the kernels and the observations are not copied. An observation array
handed out is never written again by the environment (but a finished episode's row is
carried over from the previous array: do not modify returned observations in place).
Per episode-step the kernel costs about 0.08 us on one core, so the fixed cost of a call
(~6-10 us of Python and dispatch) dominates below a few hundred episodes per call:
``benchmarks/rl_env.py`` shows the rate against ``n_envs``. ``threads > 1`` splits the
episodes in that many chunks on numba's thread pool (bit-identical results); it pays
only with thousands of episodes on idle cores: on a busy machine every call waits for the
second thread to be scheduled, and PPO's network wants the other core anyway
(:func:`research.rl.train.train_rl` steps on one thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from engine.errors import DataError
from research.rl import env_nb as E
from research.rl.config import RLConfig
from research.rl.market import Market

__all__ = ["TradingVecEnv", "env_params"]


def env_params(cfg: RLConfig, market: Market) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' float and int parameters for *cfg*."""
    from engine.overlays import cost_rate

    env, costs, risk = cfg.env, cfg.costs, cfg.risk
    fp = np.zeros(E.N_FP)
    fp[E.P_CAPITAL] = env.capital
    fp[E.P_POS_SIZE] = env.position_size
    fp[E.P_COST_RATE] = cost_rate(_costs_only(cfg))
    fp[E.P_BPS] = costs.commission_bps
    fp[E.P_PER_SHARE] = costs.commission_per_share
    fp[E.P_CMIN] = costs.commission_min
    fp[E.P_SL] = risk.stop_loss
    fp[E.P_TP] = risk.take_profit
    fp[E.P_TRAIL] = risk.trailing_stop
    fp[E.P_TURN_PEN] = cfg.reward.turnover_penalty
    fp[E.P_DD_PEN] = cfg.reward.drawdown_penalty
    fp[E.P_QTY_SCALE] = float(10 ** (6 if env.fractional else 0))
    gate = market.gate or {}
    fp[E.P_ENTRY] = gate.get("entry_threshold", np.nan)
    fp[E.P_EXIT] = gate.get("exit_threshold", np.nan)
    ip = np.zeros(E.N_IP, dtype=np.int64)
    ip[E.I_MAX_HOLD] = risk.max_hold_bars
    ip[E.I_MIN_HOLD] = risk.min_hold_bars
    ip[E.I_COOLDOWN] = risk.cooldown_bars
    ip[E.I_GATE] = 1 if env.gate_model else 0
    ip[E.I_SHORT] = 1 if env.short else 0
    ip[E.I_LOOKBACK] = market.lookback
    return fp, ip


def _chunk_bounds(n: int, chunks: int, align: int = 64) -> np.ndarray:
    """Bounds of *chunks* near-equal runs of *n* episodes, cut on multiples of *align*.

    64 rows of every per-episode array (bool, int64, float64 or float32 rows of any width)
    are a whole number of 64-byte cache lines, so neighbouring chunks share at most the
    one line where an array's start is not line-aligned: no false sharing in the loop.
    """
    blocks = -(-n // align)
    cuts = np.linspace(0, blocks, min(chunks, blocks) + 1).round().astype(np.int64) * align
    cuts[-1] = n
    return np.unique(cuts)


def _costs_only(cfg: RLConfig) -> Any:
    """A backtest config carrying *cfg*'s costs (engine.overlays.cost_rate reads ``cfg.costs``)."""
    from engine.config import BacktestConfig

    return BacktestConfig(costs=cfg.costs)


class TradingVecEnv(gym.vector.VectorEnv):  # type: ignore[misc]
    """Many single-position episodes stepped at once (see the module docstring).

    Parameters
    ----------
    market : Market
        The prepared universe (:func:`research.rl.market.build_market`).
    cfg : RLConfig
        Costs, overlays, actions, reward and episode length.
    split : str
        Where training episodes are drawn (``train``, ``validation``, ``test``).
    n_envs : int, optional
        Episodes at once (default ``cfg.env.n_envs``); fixed mode: one per episode.
    episodes : sequence of (start_row, end_row), optional
        Fixed mode: run exactly these episodes (global rows of :class:`Market`).
    seed : int, optional
        Seed of the episode sampler (default ``cfg.train.seed``).
    threads : int, optional
        Step the episodes in this many chunks in parallel (numba ``prange``; default 1,
        the calling thread). The results are the same bit for bit.
    """

    def __init__(
        self,
        market: Market,
        cfg: RLConfig,
        *,
        split: str = "train",
        n_envs: int | None = None,
        episodes: Sequence[tuple[int, int]] | None = None,
        seed: int | None = None,
        threads: int = 1,
    ) -> None:
        self.market = market
        self.cfg = cfg
        self.split = split
        self.fixed = None if episodes is None else np.asarray(episodes, dtype=np.int64).reshape(-1, 2)
        self.num_envs = len(self.fixed) if self.fixed is not None else int(n_envs or cfg.env.n_envs)
        if self.num_envs < 1:
            raise DataError("the environment needs at least one episode")
        self.next_open = cfg.env.fill == "next_open"
        self.actions = cfg.actions
        n_actions = len(self.actions)
        self.n_state = 4 if cfg.env.gate_model else 3
        self.obs_dim = market.lookback * market.n_features + self.n_state
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Discrete(n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.fp, self.ip = env_params(cfg, market)
        n = self.num_envs
        self.sf = np.zeros((n, E.N_SF))
        self.si = np.zeros((n, E.N_SI), dtype=np.int64)
        self.obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.mask = np.ones((n, n_actions), dtype=np.bool_)
        self.reward = np.zeros(n)
        self.done = np.zeros(n, dtype=np.bool_)
        self.active = np.ones(n, dtype=np.bool_)
        self.info = np.zeros((n, E.N_INFO))
        self.fills = np.zeros((n, 2, E.N_FILL))
        self.n_fills = np.zeros(n, dtype=np.int64)
        self.episode_start = np.zeros(n, dtype=np.int64)
        self.rng = np.random.default_rng(cfg.train.seed if seed is None else seed)
        self._segments = self._training_segments() if self.fixed is None else None
        if not 1 <= int(threads) <= 256:
            raise DataError(f"threads = {threads}: expected 1 .. 256 (1 = step on the calling thread)")
        self.threads = int(threads)
        self._bounds = _chunk_bounds(n, self.threads)
        self._finished = np.zeros(len(self._bounds) - 1, dtype=np.int64)
        self.bars = market.bar_rows
        """The market's per-bar quotes a step reads (:attr:`Market.bar_rows`, shared by its environments)."""
        # the kernel's arguments around the observation arrays, in its order (built once)
        self._head = (self.active, self.fp, self.ip, self.sf, self.si, market.features, self.bars)
        self._tail = (self.mask, self.reward, self.done, self.info, self.fills, self.n_fills)

    # -- episodes -------------------------------------------------------------------------------
    def _training_segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        segs = self.market.segments.get(self.split) or []
        if not segs:
            raise DataError(f"the {self.split} split holds no episode (data.{self.split} = "
                            f"'{getattr(self.cfg.data, self.split)}')")
        first = np.array([s.first for s in segs], dtype=np.int64)
        last = np.array([s.last_bar for s in segs], dtype=np.int64)
        bars = (last - first + 1).astype(np.float64)
        # Generator.choice(len(first), p=bars / bars.sum()) draws searchsorted(cdf, random(), "right")
        # on this cdf; computing it once draws the very same segments without choice's per-call checks
        cdf = (bars / bars.sum()).cumsum()
        cdf /= cdf[-1]
        return first, last, cdf

    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """*n* random (start, end) rows inside the split's segments, ``episode_bars`` long where they fit."""
        assert self._segments is not None
        first, last, cdf = self._segments
        start, end = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        u_pick = self.rng.random(n)  # the uniforms Generator.choice would draw, then the starts'
        E.draw_nb(u_pick, self.rng.random(n), first, last, cdf, self.cfg.env.episode_bars, start, end)
        return start, end

    def _reset_rows(self, idx: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
        E.reset_nb(idx, start, end, self.next_open, self.fp, self.ip, self.sf, self.si, self.market.features,
                   self.bars, self.obs, self.mask)
        self.episode_start[idx] = start

    # -- gymnasium API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every episode (fixed ones from their first bar, training ones drawn anew)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        idx = np.arange(self.num_envs, dtype=np.int64)
        if self.fixed is not None:
            start, end = self.fixed[:, 0].copy(), self.fixed[:, 1].copy()
            short = np.flatnonzero(end - start < (2 if self.next_open else 1))
            if len(short):
                raise DataError(f"episode {int(short[0])} is too short: it needs a decision bar and the bar after it")
        else:
            start, end = self._draw(self.num_envs)
        self.active[:] = True
        self.done[:] = False
        self.obs = np.empty_like(self.obs)  # every row is written; arrays handed out before stay as they were
        self._reset_rows(idx, start, end)
        return self.obs, {}

    def advance(self, actions: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Step every active episode in one kernel call, then reset the finished ones.

        The new observations are in ``obs``, a new array (the one of the previous call is not
        written again, so a caller may keep it without copying); masks, rewards and info are
        in ``mask``, ``reward`` and ``info``, overwritten by the next call. Returns ``done`` (a
        new array) and, when some episode finished, the indices of those episodes and a copy
        of their last observations (else None, None). :meth:`step` and
        :class:`research.rl.sb3.SB3VecEnv` build their return values on it.
        """
        n = self.num_envs
        a = actions
        if not (isinstance(a, np.ndarray) and a.dtype == np.int64 and a.shape == (n,)):
            a = np.asarray(actions, dtype=np.int64).reshape(n)
        prev = self.obs
        self.obs = np.empty_like(prev)  # the kernel writes every row; the caller's last array stays as it was
        if self.threads == 1:
            finished = E.step_nb(a, *self._head, prev, self.obs, *self._tail)
        else:
            finished = E.step_parallel_nb(self._bounds, self._finished, a, *self._head, prev, self.obs, *self._tail)
        done = self.done.copy()
        if not finished:
            return done, None, None
        idx = np.flatnonzero(done)
        final = self.obs[idx]  # fancy indexing: a copy, before the resets overwrite the rows
        if self.fixed is not None:
            self.active[idx] = False
        else:
            assert self._segments is not None
            first, last, cdf = self._segments
            u_pick = self.rng.random(len(idx))  # as in _draw: the same uniforms, drawn and started in one call
            E.redraw_nb(idx, u_pick, self.rng.random(len(idx)), first, last, cdf, self.cfg.env.episode_bars,
                        self.episode_start, self.next_open, self.fp, self.ip, self.sf, self.si, self.market.features,
                        self.bars, self.obs, self.mask)
        return done, idx, final

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Act in every active episode; returns ``(obs, reward, terminated, truncated, info)``."""
        done, idx, final = self.advance(actions)
        info = self.step_info()
        if idx is not None:
            info["final_observation"] = final
            info["final_index"] = idx
        return self.obs, self.reward.copy(), done, np.zeros(self.num_envs, dtype=np.bool_), info

    def step_info(self) -> dict[str, Any]:
        """The last step's itemised accounting, one array per item."""
        inf = self.info.copy()  # one contiguous copy; each item a column of it
        return {
            "gross_pnl": inf[:, E.INFO_GROSS],
            "commission": inf[:, E.INFO_COMMISSION],
            "slippage": inf[:, E.INFO_SLIPPAGE],
            "turnover": inf[:, E.INFO_TURNOVER],
            "equity": inf[:, E.INFO_EQUITY],
            "terminal_equity": inf[:, E.INFO_TERMINAL],
        }

    def action_masks(self) -> np.ndarray:
        """``(n, actions)`` bool: which actions the rules allow at each episode's decision bar."""
        return self.mask.copy()

    def last_fills(self) -> list[list[tuple[int, float, float, float, float, int]]]:
        """The fills of the last step per episode: (row, side, qty, price, commission, reason code)."""
        out = []
        for i in range(self.num_envs):
            rows = self.fills[i, : min(int(self.n_fills[i]), 2)]
            out.append([(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), int(r[5])) for r in rows])
        return out

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release (gymnasium's hook)."""


def episode_trace(
    market: Market, cfg: RLConfig, start: int, end: int, actions: np.ndarray
) -> dict[str, Any]:
    """Run one episode (global rows *start* .. *end*) with a fixed action per decision row.

    ``actions[k - start]`` is the action at row ``k``. Returns the fills (``row``, ``side``
    +1 / -1, ``qty``, ``price``, ``commission``, ``reason`` code), the ledger's equity at
    every bar close of the episode (as the event engine's curve shows it), the terminal
    equity, the rewards and the per-step info arrays (the parity tests and the Python
    reference environment's tests read them).
    """
    env = TradingVecEnv(market, cfg, episodes=[(start, end)])
    env.reset()
    fills: list[tuple[int, float, float, float, float, int]] = []
    equity = [float(env.fp[E.P_CAPITAL])]
    rewards: list[float] = []
    infos: list[dict[str, float]] = []
    observations = [env.obs[0].copy()]
    masks = [env.mask[0].copy()]
    while env.active[0]:
        k = int(env.si[0, E.J_ROW])
        _, reward, done, _, info = env.step(np.array([int(actions[k - start])]))
        fills.extend(env.last_fills()[0])
        equity.append(float(info["equity"][0]))
        rewards.append(float(reward[0]))
        infos.append({key: float(v[0]) for key, v in info.items() if key not in ("final_observation", "final_index")})
        if done[0]:
            if env.next_open:
                equity.append(float(info["terminal_equity"][0]))
            break
        observations.append(env.obs[0].copy())
        masks.append(env.mask[0].copy())
    return {"fills": fills, "equity": np.asarray(equity), "terminal": infos[-1]["terminal_equity"] if infos else np.nan,
            "rewards": np.asarray(rewards), "infos": infos, "observations": np.asarray(observations),
            "masks": np.asarray(masks)}
