"""Benchmark: what the Diagnosis adds to a backtest, on the real 30-symbol hourly universe.

The workload of the issue: the 30 real hourly symbols of ``../shared/data`` over
2023-10-02 .. 2025-10-01 (3,494-3,499 bars each), a seeded test MLP (the one
benchmarks/sweep.py uses), 10 slots of 10 %, 0.10 % commission + 5 bps slippage, fills at
the next open. Measured in one process run, after a warm-up that compiles (or loads from
numba's cache) every kernel:

* ``backtest``   - :func:`engine.runner.run_backtest` (the event engine, strategy + benchmark);
* ``diagnosis``  - :func:`engine.diagnosis.diagnose` on that result with the defaults: the
  fast-path replay and its check, the break-even curve at 26 cost levels (0..50 bps per
  side) plus its two refinements, 2,000 random 10-name buy-and-holds, the universe
  buy-and-hold, one slot per symbol, every table; per section below;
* ``confirm``    - the optional event-engine re-run at the break-even cost
  (``diagnosis.confirm_break_even``), reported on its own: it is one more backtest;
* ``report``     - :func:`engine.report.write_outputs` with and without the Diagnosis section.

Goal: ``diagnosis / backtest <= 0.5``. Ratios are taken within the run, so they hold under
CPU contention; say so when the machine is shared::

    .venv/bin/python benchmarks/diagnose.py [--threads 2] [--quick] [--confirm]
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

REAL = Path(os.environ.get("SIGTRADE_REAL_DATA", ROOT.parent / "shared" / "data"))
WINDOW = ("2023-10-02", "2025-10-01")
QUICK = ("SPY", "QQQ", "AAPL", "MSFT", "NVDA", "AMD", "COST", "KO")


def universe(workdir: Path, quick: bool) -> list[str]:
    """Ingest the real hourly CSVs, build the seeded MLP; return the config overrides."""
    from engine import catalog as cat
    from engine.ingest.pipeline import ingest_files
    from models.features import compute_features
    from tests.models.onnx_factory import make_mlp_artifact

    files = sorted((REAL / "equities" / "hourly" / "market-base").glob("*_1h.csv"))
    if quick:
        files = [f for f in files if f.name.split("_")[0] in QUICK]
    if not files:
        raise SystemExit(f"no real hourly data under {REAL}: set SIGTRADE_REAL_DATA")
    catalog = workdir / "catalog"
    ingest_files(files, catalog, bar="1-HOUR", repair=True)
    spy = cat.read_frame(catalog, "SPY", "1-HOUR")
    feats = compute_features(spy.loc[:"2022-12-31"]).dropna()
    model = make_mlp_artifact(workdir / "mlp", lookback=12, seed=3, scaler=(feats.mean().tolist(), feats.std().replace(0, 1).tolist()))
    return [
        f'data.catalog="{catalog}"', f"data.start={WINDOW[0]}", f"data.end={WINDOW[1]}", 'strategy.kind="signal"',
        f'strategy.model="{model}"', "portfolio.max_positions=10", "portfolio.position_size=0.1",
        "costs.commission_bps=10", "costs.slippage_bps=5",
    ]


def warm(sets: list[str]) -> float:
    """Compile or load every kernel the diagnosis uses, on a short window (not timed in the comparison)."""
    from engine.config import load_config
    from engine.diagnosis import diagnose
    from engine.runner import run_backtest

    t = time.perf_counter()
    cfg = load_config(None, [*sets, "data.start=2024-01-02", "data.end=2024-02-29", "diagnosis.random_draws=50"])
    diagnose(run_backtest(cfg), cfg)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=0, help="numba threads (0 = all cores)")
    p.add_argument("--quick", action="store_true", help=f"{len(QUICK)} symbols instead of 30")
    p.add_argument("--confirm", action="store_true", help="also time the event-engine confirmation of the break-even")
    args = p.parse_args(argv)
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    from engine.config import load_config
    from engine.diagnosis import diagnose
    from engine.report import write_outputs
    from engine.runner import run_backtest

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = universe(work, args.quick)
        jit = warm(sets)
        cfg = load_config(None, [*sets, f"diagnosis.confirm_break_even={'true' if args.confirm else 'false'}"])
        t = time.perf_counter()
        result = run_backtest(cfg)
        t_backtest = time.perf_counter() - t
        t = time.perf_counter()
        diag = diagnose(result, cfg)
        t_diag = time.perf_counter() - t
        timings = dict(diag.data["timings"])
        t_confirm = timings.pop("confirm_break_even", None)
        t_diag_only = t_diag - (t_confirm or 0.0)
        t = time.perf_counter()
        write_outputs(result, work / "plain")
        t_plain = time.perf_counter() - t
        result.diagnosis = diag
        t = time.perf_counter()
        write_outputs(result, work / "diag")
        t_report = time.perf_counter() - t
    d = diag.data
    be = d["costs"]["break_even"]
    rnd = d["controls"]["random"]
    table = Table(title=f"diagnosis vs backtest: {len(result.symbols)} symbols, {WINDOW[0]} .. {WINDOW[1]}, "
                        f"{result.metrics['trades']:,} round trips", title_justify="left")
    for col in ("step", "wall s", "x backtest"):
        table.add_column(col, justify="left" if col == "step" else "right")
    table.add_row("backtest (event engine, strategy + benchmark)", f"{t_backtest:.2f}", "1.00")
    table.add_row("[bold]diagnosis (every section)[/]", f"{t_diag_only:.2f}", f"[bold]{t_diag_only / t_backtest:.2f}[/]")
    for name, sec in timings.items():
        if name != "total":
            table.add_row(f"  {name}", f"{sec:.2f}", f"{sec / t_backtest:.3f}")
    if t_confirm is not None:
        table.add_row("event-engine confirmation of the break-even (optional)", f"{t_confirm:.2f}", f"{t_confirm / t_backtest:.2f}")
    table.add_row("write outputs without / with the Diagnosis", f"{t_plain:.2f} / {t_report:.2f}", f"{(t_report - t_plain) / t_backtest:+.3f}")
    table.add_row("kernels warm-up (JIT or cache; not in the ratio)", f"{jit:.2f}", "")
    console.print(table)
    tr = be.get("total_return") or {}
    console.print(
        f"cost curve: {len(be.get('curve', []))} levels 0..{be.get('max_bps')} bps/side, break-even "
        f"{tr.get('bps') if tr.get('bps') is None else round(tr['bps'], 2)} bps/side ({tr.get('status')}); "
        f"random subsets: {rnd.get('draws')} draws of {rnd.get('n')} names; fast-path replay reproduced the run: "
        f"{d['replay']['reproduced']}", highlight=False,
    )
    verdict = "meets" if t_diag_only <= 0.5 * t_backtest else "misses"
    console.print(f"goal: diagnosis <= 0.5 x backtest - {verdict} it ({t_diag_only / t_backtest:.2f}); "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", highlight=False)
    return {"backtest_s": t_backtest, "diagnosis_s": t_diag_only, "ratio": t_diag_only / t_backtest, "sections": timings,
            "confirm_s": t_confirm, "jit_s": jit}


if __name__ == "__main__":
    main()
