"""Benchmark: sweeps and backtest batches locally (1 process) and on a local Ray cluster of 1 and 2 workers.

Workload: real hourly bars of ``../shared/data`` (8 symbols with ``--quick``, else all 30),
2023-10-02 .. 2025-10-01, a seeded test MLP's probabilities.

* **sweep**: 10,000 configurations of the full overlay set (the grid below) on the
  shared-cash kernel - locally in one process with one numba thread, then through
  :func:`engine.sim.sweep.run_sweep_tasks` on ``local:1`` and ``local:2`` Ray instances
  (one numba thread per worker). Timed: the best of 3 runs after a first one (warm
  workers: the first pays the workers' start and numba's cache load, reported apart).
* **batch**: 16 event-engine backtests (slippage x stop-loss grid) of the signal strategy
  over 2024-01-02 .. 2024-06-28 - locally one after another in one process, and as Ray
  tasks (one engine at a time per worker process, recycled every 16 tasks).

Every Ray result is checked equal to the local one. Goals (issue 14): sweep overhead of
going through Ray <= 10 % at 1 worker; batch scaling efficiency (speed-up over the local
run / workers) >= 0.8 at 2 workers. Timings on a shared machine: read the ratios, they
are measured in the same run.

    .venv/bin/python benchmarks/cluster.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

GRID = [
    "strategy.entry_threshold=0.50:0.59:0.01", "risk.stop_loss=0,0.005,0.01,0.02,0.04",
    "risk.cooldown_bars=0,2,5,10,20", "regime.trend.sma=0,50,100,200", "risk.take_profit=0,0.02,0.03,0.05,0.08",
    "risk.trailing_stop=0,0.02",
]  # 10 x 5 x 5 x 4 x 5 x 2 = 10,000
BATCH_WINDOW = ("2024-01-02", "2024-06-28")


REPS = 3
"""Sweep timings are the best of this many runs (the machine is shared: the minimum is the least disturbed)."""


def sweep_local(fast: Any, raw: dict[str, Any], axes: Any, p: Any) -> tuple[float, Any]:
    from engine.sim.sweep import run_sweep

    best, res = float("inf"), None
    for _ in range(REPS):
        t = time.perf_counter()
        res = run_sweep(fast, raw, axes, "benchmark", p)
        best = min(best, time.perf_counter() - t)
    return best, res


def sweep_ray(ex: Any, fast: Any, raw: dict[str, Any], axes: Any, p: Any) -> tuple[float, float, Any]:
    from engine.sim.sweep import run_sweep

    t = time.perf_counter()
    res = run_sweep(fast, raw, axes, "benchmark", p, executor=ex)
    first = time.perf_counter() - t
    best = float("inf")
    for _ in range(REPS):
        t = time.perf_counter()
        res = run_sweep(fast, raw, axes, "benchmark", p, executor=ex)
        best = min(best, time.perf_counter() - t)
    return first, best, res


def batch(ex: Any, cfgs: list[Any]) -> tuple[float, list[Any]]:
    from engine.cluster import tasks

    t = time.perf_counter()
    out = ex.map(tasks.backtest, cfgs, label="backtests", isolate=True)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 symbols instead of 30")
    args = ap.parse_args()
    import importlib.util

    import numba

    from engine.cli.sweep_cmd import _score
    from engine.cluster.address import ClusterSpec
    from engine.cluster.executor import LocalExecutor
    from engine.cluster.ray_executor import RayExecutor
    from engine.config import apply_overrides, load_config
    from engine.sim.grid import grid_size, parse_grid
    from engine.sim.sweep import load_fastpath, plan, warm_kernel

    spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "benchmarks" / "sweep.py")
    bench_sweep = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(bench_sweep)  # type: ignore[union-attr]
    OVERLAYS, WINDOW, universe = bench_sweep.OVERLAYS, bench_sweep.WINDOW, bench_sweep.universe

    console = Console()
    numba.set_num_threads(1)
    console.print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f} (other processes share this machine)")
    warm_kernel()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, catalog, model = universe(Path(tmp), args.quick)
        fast = load_fastpath(cfg, _score)
        raw = apply_overrides({}, [
            f'data.catalog="{catalog}"', f"data.start={WINDOW[0]}", f"data.end={WINDOW[1]}", 'strategy.kind="signal"',
            f'strategy.model="{model}"', "portfolio.max_positions=10",
            *[o for o in OVERLAYS if not o.startswith(("risk.take_profit", "risk.trailing_stop"))],
        ])
        axes = parse_grid(GRID)
        n = grid_size(axes)
        p = plan(fast, n, False, 8 * 2**30)
        steps = n * len(fast.act_sym)
        base = [f'data.catalog="{catalog}"', f"data.start={BATCH_WINDOW[0]}", f"data.end={BATCH_WINDOW[1]}",
                'strategy.kind="signal"', f'strategy.model="{model}"', "strategy.entry_threshold=0.52"]
        cfgs = [load_config(None, [*base, f"costs.slippage_bps={s}", f"risk.stop_loss={sl}"])
                for s in (0, 2, 5, 10) for sl in (0, 0.01, 0.02, 0.04)]

        rows: list[tuple[str, str, float, float, str]] = []
        t_sweep_local, ref = sweep_local(fast, raw, axes, p)
        rows.append(("sweep", "local, 1 process (1 thread)", t_sweep_local, steps / t_sweep_local, "-"))
        t_batch_local, ref_batch = batch(LocalExecutor(), cfgs)
        rows.append(("batch", "local, 1 process", t_batch_local, len(cfgs) / t_batch_local, "-"))
        ok = True
        figures: dict[tuple[str, int], float] = {}
        for workers in (1, 2):
            t = time.perf_counter()
            ex = RayExecutor(ClusterSpec(None, workers, f"local:{workers}"), object_store_mb=300)
            start = time.perf_counter() - t
            try:
                first, t_sweep, res = sweep_ray(ex, fast, raw, axes, p)
                same = res.results.equals(ref.results)
                ok &= same
                figures[("sweep", workers)] = t_sweep
                rows.append(("sweep", f"Ray local:{workers} ({workers} worker(s))", t_sweep, steps / t_sweep,
                             f"Ray start {start:.1f} s; first run {first:.1f} s; identical: {same}"))
                t_b, out = batch(ex, cfgs)
                same_b = all(a.metrics == b.metrics and a.strategy.fills.equals(b.strategy.fills) for a, b in zip(out, ref_batch, strict=True))
                ok &= same_b
                figures[("batch", workers)] = t_b
                rows.append(("batch", f"Ray local:{workers} ({workers} worker(s))", t_b, len(cfgs) / t_b, f"identical: {same_b}"))
            finally:
                ex.close()

    table = Table(title=f"sweep: {n:,} configurations x {len(fast.symbols)} symbols; batch: {len(cfgs)} event-engine backtests",
                  title_justify="left")
    for c in ("workload", "where", "wall s", "throughput", "notes"):
        table.add_column(c, justify="left" if c in ("workload", "where", "notes") else "right")
    for w, where, sec, thr, note in rows:
        unit = "steps/s" if w == "sweep" else "backtests/s"
        table.add_row(w, where, f"{sec:,.2f}", f"{thr:,.3g} {unit}", note)
    console.print(table)
    overhead = figures[("sweep", 1)] / t_sweep_local - 1
    for w, local in (("sweep", t_sweep_local), ("batch", t_batch_local)):
        for k in (1, 2):
            speed = local / figures[(w, k)]
            console.print(f"{w}: {k} worker(s): speed-up {speed:.2f}x over local, scaling efficiency {speed / k:.2f}")
    console.print(f"sweep overhead of Ray at 1 worker: {overhead * 100:+.1f} % (goal <= +10 %)")
    console.print(f"batch scaling efficiency at 2 workers: {t_batch_local / figures[('batch', 2)] / 2:.2f} (goal >= 0.8)")
    console.print(f"load average at end {os.getloadavg()[0]:.2f}; every Ray result equal to the local one: {ok}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
