"""The RL environment's other contracts: no look-ahead in observations, the Python reference equals the
numba environment, masks follow the rules, training episodes stay inside their split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import catalog as cat
from research.rl import env_nb as E
from research.rl.config import rl_config_from_dict
from research.rl.env import TradingVecEnv, episode_trace
from research.rl.market import build_market
from research.rl.reference import PythonTradingEnv
from tests.research.rl.conftest import RL_SYMBOLS, rl_raw

T_CUT = "2024-02-15 15:00"


@pytest.fixture(scope="module")
def frames(rl_catalog: Path) -> dict[str, pd.DataFrame]:
    return {s: cat.read_frame(rl_catalog, s, "1-HOUR") for s in RL_SYMBOLS}


def _cfg(catalog: Path, **sections):
    return rl_config_from_dict(rl_raw(catalog, **sections))


def test_no_look_ahead_truncated_or_poisoned_future_leaves_the_observation_at_t(rl_catalog: Path, frames) -> None:
    cfg = _cfg(rl_catalog, risk={"stop_loss": 0.01, "min_hold_bars": 2})
    full = build_market(cfg, frames=frames)
    s = "AMD"
    t = int(frames[s].index[frames[s].index <= pd.Timestamp(T_CUT, tz="America/New_York")][-1].value)
    t_row = full.row_of(s, t)
    start, _ = full.rows_between(s, "2024-01-02", "2024-01-02")
    actions = np.random.default_rng(1).integers(0, 2, t_row - start + 4)
    base = episode_trace(full, cfg, start, t_row + 3, actions)
    k = t_row - start  # the observation made at bar t
    # poison every bar after t: prices x 1.37 and volume x 3; the observation at t must not move
    poisoned = dict(frames)
    f = frames[s].copy()
    after = f.index.asi8 > t
    f.loc[after, ["open", "high", "low", "close"]] *= 1.37
    f.loc[after, "volume"] *= 3
    poisoned[s] = f
    other = build_market(cfg, frames=poisoned)
    got = episode_trace(other, cfg, start, t_row + 3, actions)
    assert np.array_equal(base["observations"][k], got["observations"][k])
    assert np.array_equal(base["masks"][k], got["masks"][k])
    assert not np.array_equal(base["observations"][k + 1], got["observations"][k + 1]), "the poison must show at t+1"
    # truncated at t: the features and prices an observation at t reads are unchanged
    cut = {name: fr[fr.index.asi8 <= t] if name == s else fr for name, fr in frames.items()}
    trunc = build_market(cfg, frames=cut)
    j = trunc.row_of(s, t)
    lo_f, lo_t = full.row_of(s, int(frames[s].index[0].value)), trunc.row_of(s, int(frames[s].index[0].value))
    n = t_row - lo_f + 1
    for name in ("features", "close", "high", "low", "mark"):
        a, b = getattr(full, name)[lo_f:lo_f + n], getattr(trunc, name)[lo_t:lo_t + n]
        assert np.array_equal(a, b, equal_nan=True), name
    assert j == lo_t + n - 1
    # and every fill the episode made before t is priced the same
    assert [f for f in base["fills"] if f[0] < t_row] == [f for f in got["fills"] if f[0] < t_row]


@pytest.mark.parametrize("sections", [
    {"env": {"fill": "next_open"}, "risk": {"stop_loss": 0.005, "max_hold_bars": 10, "cooldown_bars": 2}},
    {"env": {"fill": "close", "account": "margin", "short": True},
     "costs": {"commission_per_share": 0.005, "commission_min": 1.0}, "risk": {"trailing_stop": 0.008, "min_hold_bars": 3},
     "reward": {"turnover_penalty": 0.001, "drawdown_penalty": 0.5}},
], ids=["long-next_open", "short-close-penalties"])
def test_python_reference_environment_equals_the_numba_one(rl_catalog: Path, frames, sections) -> None:
    cfg = _cfg(rl_catalog, **sections)
    market = build_market(cfg, frames=frames)
    start, end = market.rows_between("SPY", "2024-01-02", "2024-02-28")
    n_actions = len(cfg.actions)
    actions = np.random.default_rng(4).integers(0, n_actions, end - start + 1)
    fast = episode_trace(market, cfg, start, end, actions)
    ref = PythonTradingEnv(market, cfg, start, end)
    obs, _ = ref.reset()
    rewards, observations, masks = [], [obs], [ref.action_masks()]
    done = False
    while not done:
        obs, r, done, _, info = ref.step(int(actions[ref.row - start]))
        rewards.append(r)
        if not done:
            observations.append(obs)
            masks.append(ref.action_masks())
    assert len(ref.fills) >= 10
    assert ref.fills == fast["fills"]
    assert np.array_equal(np.asarray(rewards), fast["rewards"])
    assert np.array_equal(np.asarray(observations), fast["observations"])
    assert np.array_equal(np.asarray(masks), fast["masks"])
    assert info["terminal_equity"] == fast["terminal"]
    if cfg.risk.min_hold_bars:
        assert (~fast["masks"]).any(), "the minimum hold masked some exits"


def test_training_episodes_stay_inside_the_training_split(rl_catalog: Path, frames) -> None:
    cfg = _cfg(rl_catalog, env={"n_envs": 16, "episode_bars": 60})
    market = build_market(cfg, frames=frames)
    env = TradingVecEnv(market, cfg, split="train", seed=5)
    env.reset()
    last_train = pd.Timestamp("2023-12-31", tz="America/New_York") + pd.Timedelta(days=1)
    for _ in range(200):
        _, _, done, _, info = env.step(np.random.default_rng(0).integers(0, 2, env.num_envs))
        rows = env.si[:, 0]
        assert (pd.to_datetime(market.times[rows], utc=True) < last_train).all()
        assert np.isfinite(env.obs).all()
    assert set(info) >= {"gross_pnl", "commission", "slippage", "turnover", "equity"}


def test_stepping_in_parallel_chunks_changes_nothing(rl_catalog: Path, frames) -> None:
    """threads=3 (three chunks of episodes on numba's thread pool) steps exactly as one thread does."""
    cfg = _cfg(rl_catalog, env={"n_envs": 200, "episode_bars": 40, "short": True, "account": "margin"},
               risk={"stop_loss": 0.01, "take_profit": 0.02, "trailing_stop": 0.015, "max_hold_bars": 7,
                     "min_hold_bars": 2, "cooldown_bars": 3})
    market = build_market(cfg, frames=frames)
    one, many = TradingVecEnv(market, cfg, seed=4), TradingVecEnv(market, cfg, seed=4, threads=3)
    assert np.array_equal(one.reset()[0], many.reset()[0])
    rng = np.random.default_rng(8)
    finished = 0
    for _ in range(60):
        a = rng.integers(0, 3, one.num_envs)
        got, want = many.step(a), one.step(a)
        for g, w in zip(got[:4], want[:4], strict=True):
            assert np.array_equal(g, w)
        assert got[4].keys() == want[4].keys()
        for key in want[4]:
            assert np.array_equal(got[4][key], want[4][key]), key
        assert np.array_equal(many.action_masks(), one.action_masks())
        assert many.last_fills() == one.last_fills()
        finished += int(want[2].sum())
    assert finished > 100, "episodes ended and were drawn anew inside the steps"


def test_training_episodes_are_drawn_as_generator_choice_draws_them(rl_catalog: Path, frames) -> None:
    """The sampler's draws are Generator.choice's (segment weights = bars), so a seed gives the same episodes."""
    cfg = _cfg(rl_catalog, env={"n_envs": 50, "episode_bars": 60})
    market = build_market(cfg, frames=frames)
    env = TradingVecEnv(market, cfg)
    segs = market.segments["train"]
    first = np.array([s.first for s in segs])
    last = np.array([s.last_bar for s in segs])
    bars = (last - first + 1).astype(np.float64)
    for seed in (0, 11):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(first), size=50, p=bars / bars.sum())
        latest = np.maximum(first[pick], last[pick] - 60 + 1)
        start = np.minimum(first[pick] + (rng.random(50) * (latest - first[pick] + 1)).astype(np.int64), latest)
        assert np.array_equal(env.episode_start, start)
        assert np.array_equal(env.si[:, E.J_END], np.minimum(start + 60 - 1, last[pick]))
