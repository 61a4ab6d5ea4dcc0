"""Benchmark: RL environment steps/s, numba vectorised vs one-episode Python, and PPO samples/s end to end.

On real hourly bars (``$SIGTRADE_REAL_DATA``, default ``../shared/data``: SPY, AAPL, MSFT,
AMD ingested into a temporary catalog), with the same environment settings (lookback 12,
0.10 % commission + 5 bps slippage, a stop loss and a time stop so the overlay code runs),
measured in one process run:

* ``numba, N episodes``: :class:`research.rl.env.TradingVecEnv` stepping N episodes per
  call with random actions (observation, mask and info arrays built every step);
* ``python, 1 episode``: :class:`research.rl.reference.PythonTradingEnv`, the plain
  gymnasium ``Env`` with the same accounting (tested bit-identical), one episode at a time
  - the baseline of the ratio column;
* ``PPO end to end``: MaskablePPO (64 x 64 MLP, n_steps 128 x 32 episodes, 4 epochs)
  learning on the numba environment: environment, network and updates together.

Goals (issue 13): numba >= 100x the Python environment and >= 1e6 steps/s on 2 cores, so
that PPO's network, not the simulation, bounds training. Timing under load is labelled
with the load average; ratios are fair under load (same run).

Usage: ``python benchmarks/rl_env.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from engine.ingest.pipeline import ingest_files  # noqa: E402
from research.rl.config import rl_config_from_dict  # noqa: E402
from research.rl.env import TradingVecEnv  # noqa: E402
from research.rl.market import build_market  # noqa: E402
from research.rl.reference import PythonTradingEnv  # noqa: E402

SYMBOLS = ["SPY", "AAPL", "MSFT", "AMD"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    args = ap.parse_args()
    data = Path(os.environ.get("SIGTRADE_REAL_DATA", str(ROOT.parent / "shared" / "data")))
    hourly = data / "equities" / "hourly" / "market-base"
    console = Console()
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
        rows: list[tuple[str, float, str]] = []

        # numba, vectorised (after a warm-up call: JIT or cache load)
        for n in (64, 1024):
            env = TradingVecEnv(market, cfg, n_envs=n, seed=1)
            env.reset()
            steps = (200 if args.quick else 1000) if n == 1024 else (1000 if args.quick else 5000)
            acts = np.random.default_rng(0).integers(0, 2, (steps, n))
            env.step(acts[0])
            t0 = time.perf_counter()
            for a in acts:
                env.step(a)
            dt = time.perf_counter() - t0
            rows.append((f"numba, {n} episodes per call", n * steps / dt, f"obs {env.obs_dim} floats"))

        # python, one episode at a time, same accounting
        seg = market.segments["train"][0]
        ref = PythonTradingEnv(market, cfg, seg.first, seg.last_bar)
        n_py = 5000 if args.quick else 20000
        rng = np.random.default_rng(0)
        done, done_steps = True, 0
        t0 = time.perf_counter()
        while done_steps < n_py:
            if done:
                ref.reset()
            _, _, done, _, _ = ref.step(int(rng.integers(0, 2)))
            done_steps += 1
        py_rate = done_steps / (time.perf_counter() - t0)
        rows.append(("python, 1 episode (gymnasium Env)", py_rate, "baseline"))

        # PPO end to end
        import torch

        from research.rl.sb3 import SB3VecEnv
        from research.rl.train import make_model

        torch.set_num_threads(1)
        model = make_model(cfg, SB3VecEnv(TradingVecEnv(market, cfg, seed=0)), "cpu")
        t0 = time.perf_counter()
        model.learn(total_timesteps=cfg.train.timesteps)
        ppo_rate = model.num_timesteps / (time.perf_counter() - t0)
        rows.append(("MaskablePPO end to end (1 torch thread)", ppo_rate, "64x64 MLP, 4 epochs/rollout"))

    load = os.getloadavg()
    table = Table(title=f"RL environment steps/s on real hourly bars (load average {load[0]:.1f} on "
                        f"{os.cpu_count()} cores while measured)", title_justify="left")
    for col in ("what", "steps/s", "x python", "note"):
        table.add_column(col, justify="right")
    for name, rate, note in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / py_rate:,.1f}", note)
    console.print(table)
    best = max(r for _, r, _ in rows[:2])
    console.print(f"goal: numba >= 100x python ({best / py_rate:,.0f}x) and >= 1e6 steps/s ({best:,.0f}); "
                  f"PPO's share of a training step spent in the environment: ~{ppo_rate / best:.1%}")


if __name__ == "__main__":
    main()
