"""Benchmark: RL environment steps/s, numba vectorised vs one-episode Python, and PPO samples/s end to end.

On real hourly bars (``$SIGTRADE_REAL_DATA``, default ``../shared/data``: SPY, AAPL, MSFT,
AMD ingested into a temporary catalog), with the same environment settings (lookback 12 x
19 features, 0.10 % commission + 5 bps slippage, a stop loss and a time stop so the
overlay code runs, random actions: a fill about every other step), measured in one
process run in ``--reps`` rounds of ~10 ms per case, the cases taken in turn within each
round (so a burst of load on the shared machine hits every case alike); the table shows
the best and the median round of each case:

* ``python, 1 episode``: :class:`research.rl.reference.PythonTradingEnv`, the plain
  gymnasium ``Env`` with the same accounting (tested bit-identical), one episode at a time
  (500-bar training episodes, each reset inside the timing) - the baseline of the ratios;
* ``numba kernel``: :func:`research.rl.env_nb.step_nb` alone (no Python around it);
* ``numba TradingVecEnv.step``: the gymnasium vector API in training mode - kernel, new
  draws for the finished episodes, a new observation array, copies of rewards and info -
  for several episodes per call, on one thread and with ``threads=2`` (chunked ``prange``);
* ``... through SB3``: the way MaskablePPO calls an environment - ``step_async`` /
  ``step_wait`` of a VecEnv (one info dict per episode) and sb3-contrib's
  ``get_action_masks`` (``np.stack`` of one mask per episode) every step: the numba
  environment in :class:`research.rl.sb3.SB3VecEnv`, the Python one in SB3's
  ``DummyVecEnv``;
* ``MaskablePPO end to end``: learning on the numba environment (64 x 64 MLP, n_steps 128
  x 32 episodes, 4 epochs, 1 torch thread): environment, network and updates together.

Goals (issue 13): the numba environment >= 100x the Python one and >= 1e6 steps/s on 2
cores, so that PPO's network, not the simulation, bounds training. Timing under load is
labelled with the load average; ratios are fair under load (same run, interleaved).

Usage: ``python benchmarks/rl_env.py [--quick] [--reps N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from engine.ingest.pipeline import ingest_files  # noqa: E402
from research.rl import env_nb as E  # noqa: E402
from research.rl.config import RLConfig, rl_config_from_dict  # noqa: E402
from research.rl.env import TradingVecEnv  # noqa: E402
from research.rl.market import Market, build_market  # noqa: E402
from research.rl.reference import PythonTradingEnv  # noqa: E402

SYMBOLS = ["SPY", "AAPL", "MSFT", "AMD"]
Case = Callable[[], tuple[int, float]]
"""One repetition of a case: (environment steps done, seconds they took)."""


def python_case(market: Market, cfg: RLConfig, steps: int) -> Case:
    """The one-episode Python env on training episodes of ``env.episode_bars``, reset when one ends.

    Like the numba environment's training mode: episodes of the same length at random
    starts (one env object per episode, built beforehand), their resets inside the timing.
    """
    rng = np.random.default_rng(0)
    envs = [PythonTradingEnv(market, cfg, a, b) for a, b in episodes(market, cfg, 16, rng)]
    state = {"env": 0}

    def run() -> tuple[int, float]:
        acts = rng.integers(0, 2, steps).tolist()
        env = envs[state["env"]]
        env.reset()
        t0 = time.perf_counter()
        for a in acts:
            _, _, done, _, _ = env.step(a)
            if done:
                state["env"] = (state["env"] + 1) % len(envs)
                env = envs[state["env"]]
                env.reset()
        return steps, time.perf_counter() - t0

    return run


def episodes(market: Market, cfg: RLConfig, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """*n* training episodes (start, end rows) of ``env.episode_bars`` bars (shorter where a segment is)."""
    segs = market.segments["train"]
    out = []
    for j in rng.integers(0, len(segs), n):
        s = segs[j]
        start = int(rng.integers(s.first, max(s.first + 1, s.last_bar - cfg.env.episode_bars)))
        out.append((start, min(s.last_bar, start + cfg.env.episode_bars - 1)))
    return out


def kernel_case(market: Market, cfg: RLConfig, n: int, steps: int) -> Case:
    """The bare kernel: fixed episodes long enough for *steps* steps, so no reset interrupts it."""
    segs = [s for s in market.segments["train"] if s.bars > steps + 3]
    rng = np.random.default_rng(1)
    starts = []
    for j in rng.integers(0, len(segs), n):
        s = segs[j]
        starts.append(int(rng.integers(s.first, s.last_bar - steps - 1)))
    env = TradingVecEnv(market, cfg, episodes=[(k, k + steps + 2) for k in starts])
    m = env.market

    def run() -> tuple[int, float]:
        acts = rng.integers(0, 2, (steps, n))
        obs, _ = env.reset()
        args = (env.active, env.fp, env.ip, env.sf, env.si, m.features, env.bars, obs, obs, env.mask, env.reward,
                env.done, env.info, env.fills, env.n_fills)
        t0 = time.perf_counter()
        for a in acts:
            E.step_nb(a, *args)  # observations in place (prev = obs): the kernel's own work only
        dt = time.perf_counter() - t0
        assert not env.done.any()
        return n * steps, dt

    return run


def env_case(market: Market, cfg: RLConfig, n: int, steps: int, threads: int = 1) -> Case:
    """``TradingVecEnv.step`` in training mode (finished episodes reset inside the step)."""
    env = TradingVecEnv(market, cfg, n_envs=n, seed=1, threads=threads)
    env.reset()
    rng = np.random.default_rng(2)

    def run() -> tuple[int, float]:
        acts = rng.integers(0, 2, (steps, n))
        t0 = time.perf_counter()
        for a in acts:
            env.step(a)
        return n * steps, time.perf_counter() - t0

    return run


def sb3_case(venv: Any, steps: int) -> Case:
    """A VecEnv stepped as MaskablePPO's rollout does: masks (sb3-contrib), then step_async / step_wait."""
    from sb3_contrib.common.maskable.utils import get_action_masks

    venv.reset()
    n = venv.num_envs
    rng = np.random.default_rng(3)

    def run() -> tuple[int, float]:
        acts = rng.integers(0, 2, (steps, n))
        t0 = time.perf_counter()
        for a in acts:
            get_action_masks(venv)
            venv.step_async(a)
            venv.step_wait()
        return n * steps, time.perf_counter() - t0

    return run


def python_vec(market: Market, cfg: RLConfig, n: int) -> Any:
    """*n* one-episode Python envs (distinct training starts) in SB3's DummyVecEnv."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    eps = episodes(market, cfg, n, np.random.default_rng(4))
    return DummyVecEnv([lambda a=a, b=b: PythonTradingEnv(market, cfg, a, b) for a, b in eps])


def measure(cases: dict[str, Case], reps: int, console: Console) -> dict[str, list[float]]:
    """Steps/s of every case in each of *reps* rounds; a round runs every case once, in turn."""
    for run in cases.values():  # warm-up: JIT compile or cache load, first draws
        run()
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(reps):
        for name, run in cases.items():
            steps, dt = run()
            rates[name].append(steps / dt)
        if (r + 1) % 5 == 0 or r + 1 == reps:
            console.print(f"  round {r + 1}/{reps} done (load average {os.getloadavg()[0]:.1f})")
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    ap.add_argument("--reps", type=int, default=0, help="rounds (default 25, 5 with --quick)")
    args = ap.parse_args()
    reps = args.reps or (5 if args.quick else 25)
    data = Path(os.environ.get("SIGTRADE_REAL_DATA", str(ROOT.parent / "shared" / "data")))
    hourly = data / "equities" / "hourly" / "market-base"
    console = Console(width=180)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cat = Path(tmp) / "catalog"
        ingest_files([hourly / f"{s}_1h.csv" for s in SYMBOLS], cat, bar="1-HOUR", repair=True)
        raw = {
            "data": {"catalog": str(cat), "symbols": SYMBOLS, "lookback": 12, "train": "2021-10-01..2023-06-30",
                     "validation": "2023-07-01..2023-09-30", "test": "2023-10-02..2025-10-01"},
            "env": {"episode_bars": 500, "n_envs": 32},
            "costs": {"commission_bps": 10, "slippage_bps": 5},
            "risk": {"stop_loss": 0.02, "max_hold_bars": 50},
            "ppo": {"n_steps": 128, "batch_size": 512, "n_epochs": 4},
            "train": {"timesteps": 8192 if args.quick else 40960, "eval_every": 10**8, "seed": 0},
            "output": {"run_dir": str(Path(tmp) / "run")},
        }
        cfg = rl_config_from_dict(raw)
        market = build_market(cfg)
        obs_dim = market.lookback * market.n_features + 3

        from research.rl.sb3 import SB3VecEnv

        per_rep = 100_000  # environment steps per round of a numba case (~10 ms); the Python one ~10 ms too
        rows: list[tuple[str, str, str, str]] = [  # key, what, episodes per call, note
            ("python", "python, 1 episode (gymnasium Env)", "1", "baseline"),
            ("kernel", "numba kernel step_nb alone", "1,024", f"obs {obs_dim} float32 per episode"),
        ]
        cases: dict[str, Case] = {
            "python": python_case(market, cfg, 1000),
            "kernel": kernel_case(market, cfg, 1024, per_rep // 1024),
        }
        for n in (16, 64, 256, 512, 1024, 4096):
            cases[f"env{n}"] = env_case(market, cfg, n, max(20, per_rep // n))
            rows.append((f"env{n}", "numba TradingVecEnv.step", f"{n:,}", "1 thread"))
        for n in (1024, 4096):
            cases[f"par{n}"] = env_case(market, cfg, n, max(20, per_rep // n), threads=2)
            rows.append((f"par{n}", "numba TradingVecEnv.step", f"{n:,}", "threads=2 (prange, 2 chunks)"))
        for n in (32, 1024):
            cases[f"sb3_{n}"] = sb3_case(SB3VecEnv(TradingVecEnv(market, cfg, n_envs=n, seed=5)),
                                         max(10, per_rep // 8 // n))
            rows.append((f"sb3_{n}", "numba through SB3 (SB3VecEnv + masks)", f"{n:,}", "as MaskablePPO steps it"))
        cases["py_sb3"] = sb3_case(python_vec(market, cfg, 32), 16)
        rows.append(("py_sb3", "python through SB3 (DummyVecEnv + masks)", "32", "as MaskablePPO steps it"))
        console.print(f"measuring {len(cases)} cases, {reps} rounds ...")
        rates = measure(cases, reps, console)

        # PPO end to end (once: it is the long one)
        import torch

        from research.rl.train import make_model

        torch.set_num_threads(1)
        model = make_model(cfg, SB3VecEnv(TradingVecEnv(market, cfg, seed=0)), "cpu")
        t0 = time.perf_counter()
        model.learn(total_timesteps=cfg.train.timesteps)
        rates["ppo"] = [model.num_timesteps / (time.perf_counter() - t0)]
        rows.append(("ppo", "MaskablePPO end to end (1 torch thread)", "32", "64x64 MLP, 4 epochs/rollout, once"))

    load_after = os.getloadavg()
    best = {k: max(v) for k, v in rates.items()}
    median = {k: float(np.median(v)) for k, v in rates.items()}
    py, py_med = best["python"], median["python"]
    table = Table(title=f"RL environment steps/s on real hourly bars, best and median of {reps} rounds (load "
                        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} shared "
                        "cores)", title_justify="left")
    for col in ("what", "episodes/call", "best steps/s", "x python", "median steps/s", "x python (median)", "note"):
        table.add_column(col, justify="right")
    for key, what, n, note in rows:
        table.add_row(what, n, f"{best[key]:,.0f}", f"{best[key] / py:,.1f}", f"{median[key]:,.0f}",
                      f"{median[key] / py_med:,.1f}", note)
    console.print(table)
    serial = [k for k in best if k.startswith("env")]
    head = max(serial, key=lambda k: best[k])
    env_rate = best[head]
    verdict = "met" if env_rate >= 100 * py and env_rate >= 1e6 else "NOT met"
    console.print(
        f"goal (TradingVecEnv.step, 1 thread, best at {int(head[3:]):,} episodes per call): {env_rate / py:,.0f}x "
        f"python (>= 100x) and {env_rate:,.0f} steps/s (>= 1e6): {verdict} (medians: "
        f"{median[head] / py_med:,.0f}x); bare kernel {best['kernel'] / py:,.0f}x")
    console.print(
        f"through SB3 as MaskablePPO steps it: {best['sb3_1024'] / best['py_sb3']:,.0f}x python through SB3 at 1,024 "
        f"episodes, {best['sb3_32'] / best['py_sb3']:,.0f}x at 32; at PPO's 32 episodes the environment takes "
        f"~{best['ppo'] / best['sb3_32']:.1%} of a training sample's time")


if __name__ == "__main__":
    main()
