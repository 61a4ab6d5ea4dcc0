"""Benchmark: PBO by CSCV on a sweep-sized return matrix (T = 3,500 periods, N = 1,000 configs).

Times :func:`engine.stats.pbo.pbo_cscv` (S = 16 blocks, 12,870 splits) for the built-in
metrics and, as the baseline, a plain per-split numpy implementation (rows of each split
gathered, ``mean / std`` per column, then ranked) run on the first ``--naive`` splits and
extrapolated to all of them. Prints seconds and the speed-up. Usage:
``python benchmarks/stats_pbo.py [--periods 3500] [--configs 1000] [--naive 300]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from engine.stats.pbo import block_combinations, pbo_cscv  # noqa: E402


def naive_seconds_per_split(x: np.ndarray, n_blocks: int, n_splits: int) -> float:
    """Per-split cost of the straightforward implementation (gather rows, score, rank)."""
    t, n = x.shape
    size = t // n_blocks
    xb = x[: n_blocks * size].reshape(n_blocks, size, n)
    combos = block_combinations(n_blocks)[:n_splits]
    start = time.perf_counter()
    for c in combos:
        comp = np.setdiff1d(np.arange(n_blocks), c)
        is_rows = xb[c].reshape(-1, n)
        oos_rows = xb[comp].reshape(-1, n)
        is_m = is_rows.mean(0) / is_rows.std(0, ddof=1)
        oos_m = oos_rows.mean(0) / oos_rows.std(0, ddof=1)
        best = int(np.argmax(is_m))
        _ = (oos_m < oos_m[best]).sum()
    return (time.perf_counter() - start) / len(combos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", type=int, default=3500)
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--naive", type=int, default=300, help="splits timed for the baseline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    x = np.random.default_rng(0).normal(0.0, 0.01, (args.periods, args.configs))
    n_splits = len(block_combinations(args.blocks))
    naive = naive_seconds_per_split(x, args.blocks, args.naive) * n_splits

    table = Table(title=f"PBO (CSCV) on {args.periods} x {args.configs}, S={args.blocks}, "
                        f"{n_splits:,} splits")
    for col in ("implementation", "seconds (best of repeats)", "speed-up vs naive", "PBO"):
        table.add_column(col, justify="right" if col != "implementation" else "left")
    table.add_row(f"naive per-split numpy (extrapolated from {args.naive} splits)",
                  f"{naive:.1f}", "1.0x", "-")
    for metric in ("sharpe", "mean", "total_return"):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            res = pbo_cscv(x, n_blocks=args.blocks, metric=metric)
            times.append(time.perf_counter() - start)
        best = min(times)
        table.add_row(f"pbo_cscv metric={metric}", f"{best:.2f}", f"{naive / best:.0f}x",
                      f"{res.pbo:.3f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
