"""Benchmark: the live decision path - incremental features, the 143-symbol bar -> orders step,
the GRU against the FLOP bound, streaming vs batch backtests.

Prints, in one run:

1. **Streaming features**, microseconds per bar per symbol with 500, 5,000 and 50,000 bars
   of history: the incremental kernels (:class:`models.streaming.UniverseFeatures`, one
   symbol per call and 143 symbols per call) next to TA-Lib over the held buffer (what
   ``StreamingFeatures`` did before: every indicator over the history, last row kept).
2. **143-symbol bar -> orders latency**: a ``mode = "streaming"`` backtest of the shipped
   ensemble (``demo_mlp`` + ``demo_gru``; their 24-row asset-embedding tables tiled to 143
   rows - the same computation per window) over a 143-symbol synthetic sample, with stops
   and a time stop on; per bar time, the strategy's time over its 143 ``on_bar`` calls
   (features + ensemble + overlays + decisions + order submission), p50 / p99.
3. **GRU batched samples/s as a share of the fp32 FLOP bound**, measured as
   ``benchmarks/inference.py`` measures it (numpy sgemm peak, FLOPs counted analytically,
   wall clock), for the seed-sized GRU (2 x 128 + attention) and the shipped ``demo_gru``,
   on 1 core and on 2 cores (two concurrent single-threaded runs); also per CPU-second of
   the thread that ran it, which other processes on the machine do not distort.
4. **Streaming vs batch backtest** of the 30-symbol real hourly universe (``../shared/data``),
   same orders asserted, wall time of each.

Usage: ``python benchmarks/live.py [--quick]`` (a few minutes; ``--quick`` about half).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from models.indicators import OBV_WINDOW, assemble, indicators  # noqa: E402
from models.streaming import UniverseFeatures  # noqa: E402
from strategies.signal import SignalStrategy  # noqa: E402

console = Console(width=150)
UNIVERSE = 143
HISTORIES = (500, 5_000, 50_000)
REAL = Path(os.environ.get("SIGTRADE_REAL_DATA", str(ROOT.parent / "shared" / "data"))) / "equities" / "hourly" / "market-base"


# --- 1. features ---------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Close times (hourly, ns) and OHLCV ``(n, 5)`` of a random walk."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.005, n)) * close
    bars = np.column_stack([open_, np.maximum(open_, close) + spread, np.minimum(open_, close) - spread, close,
                            rng.integers(0, 5_000, n).astype(np.float64)])
    ts = np.datetime64("2015-01-05T15:00", "ns").astype(np.int64) + np.arange(n, dtype=np.int64) * 3_600_000_000_000
    return ts, bars


def incremental_us(history: int, symbols: int, timed: int) -> tuple[float, float]:
    """µs per bar per symbol of UniverseFeatures.step with *history* bars already held: wall clock, CPU time."""
    ts, bars = synthetic(history + timed)
    u = UniverseFeatures([f"S{i:03d}" for i in range(symbols)])
    rows = np.arange(symbols, dtype=np.int64)
    block = np.broadcast_to(bars[:, None, :], (len(bars), symbols, 5))
    for i in range(history):
        u.step(int(ts[i]), block[i], rows)
    t, c = time.perf_counter(), time.thread_time()
    for i in range(history, history + timed):
        u.step(int(ts[i]), block[i], rows)
    scale = 1e6 / timed / symbols
    return (time.perf_counter() - t) * scale, (time.thread_time() - c) * scale


def talib_buffer_us(history: int, timed: int) -> float:
    """µs per bar of the previous streaming path: TA-Lib over the held buffer, last row assembled."""
    ts, bars = synthetic(history + timed)
    logv = np.log1p(bars[:, 4])
    t = time.perf_counter()
    for i in range(history, history + timed):
        s = i - history + 1
        h, lo, c, v, lv = bars[s : i + 1, 1], bars[s : i + 1, 2], bars[s : i + 1, 3], bars[s : i + 1, 4], logv[s : i + 1]
        full = indicators(np.ascontiguousarray(h), np.ascontiguousarray(lo), np.ascontiguousarray(c),
                          np.ascontiguousarray(v), np.ascontiguousarray(lv))
        n = len(c)
        assemble(full.tail(), c[n - 1 :], c[n - 2 : n - 1], c[n - 6 : n - 5], full.obv[n - 1 - OBV_WINDOW : n - OBV_WINDOW],
                 lv[n - 1 :], np.array([0]), np.array([0.0]))
    return (time.perf_counter() - t) / timed * 1e6


def features_table(quick: bool) -> Table:
    table = Table(title="streaming features: µs per bar per symbol (lower is better)")
    for col in ("bars of history", "incremental, 1 symbol per call (CPU time)",
                f"incremental, {UNIVERSE} symbols per call (CPU time)", "TA-Lib over the buffer (before)",
                "speed-up (1 symbol, wall)"):
        table.add_column(col, justify="right")
    for history in HISTORIES:
        one, one_cpu = incremental_us(history, 1, 1000 if quick else 3000)
        many, many_cpu = incremental_us(history, UNIVERSE, 100 if quick else 300) \
            if history <= 5_000 or not quick else (float("nan"), float("nan"))
        old = talib_buffer_us(history, max(5, (2000 if quick else 5000) * 500 // history))
        table.add_row(f"{history:,}", f"{one:.1f} ({one_cpu:.1f})",
                      f"{many:.2f} ({many_cpu:.2f})" if np.isfinite(many) else "(--quick: skipped)",
                      f"{old:,.0f}", f"{old / one:,.0f} x")
    return table


# --- models with wider asset tables -----------------------------------------------------------


def widened(src: Path, dst: Path, symbols: list[str]) -> Path:
    """Copy a shipped model with its asset-embedding table tiled to one row per symbol of *symbols*."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    dst.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src / "model.onnx"))
    card = json.loads((src / "card.json").read_text())
    gather = next(n for n in model.graph.node if n.op_type == "Gather" and "asset_id" in n.input)
    table = next(i for i in model.graph.initializer if i.name == gather.input[0])
    rows = numpy_helper.to_array(table)
    table.CopyFrom(numpy_helper.from_array(np.resize(rows, (len(symbols), rows.shape[1])).astype(rows.dtype), table.name))
    asset_map = {s: i for i, s in enumerate(symbols)}
    for prop in model.metadata_props:  # the input contract recorded in the graph names the asset map too
        if prop.key == "sigtrade.asset_map":
            prop.value = json.dumps(asset_map, sort_keys=True)
    blob = model.SerializeToString()
    (dst / "model.onnx").write_bytes(blob)
    card.update(name=dst.name, asset_map=asset_map, onnx_sha256=hashlib.sha256(blob).hexdigest())
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    return dst


def ensemble_for(root: Path, symbols: list[str]) -> Path:
    """The shipped demo ensemble, its members widened to *symbols*."""
    for name in ("demo_mlp", "demo_gru"):
        widened(ROOT / "models" / name, root / name, symbols)
    ens = root / "demo_ensemble"
    ens.mkdir(parents=True, exist_ok=True)
    card = json.loads((ROOT / "models" / "demo_ensemble" / "ensemble.json").read_text())
    (ens / "ensemble.json").write_text(json.dumps(card, indent=2))
    return ens


# --- 2. bar -> orders ----------------------------------------------------------------------------


class TimedSignalStrategy(SignalStrategy):
    """SignalStrategy that records how long each ``on_bar`` takes (benchmark only)."""

    timings: list[tuple[int, int, int]] = []

    def on_bar(self, bar: Any) -> None:
        """Time the whole decision path of one bar (wall clock and CPU time of this thread)."""
        start, cpu = time.perf_counter_ns(), time.thread_time_ns()
        super().on_bar(bar)
        TimedSignalStrategy.timings.append((int(bar.ts_event), time.perf_counter_ns() - start,
                                            time.thread_time_ns() - cpu))


def latency_table(tmp: Path, quick: bool) -> tuple[Table, str]:
    from engine.config import load_config
    from engine.runner import run_backtest
    from engine.sample import SampleSpec, write_sample
    from engine.strategy_registry import STRATEGIES, StrategySpec

    spec = SampleSpec(n_symbols=UNIVERSE, start="2025-06-02", end="2025-08-29" if quick else "2025-09-30")
    catalog = tmp / "sample143"
    write_sample(catalog, spec)
    model = ensemble_for(tmp / "models143", sorted(spec.symbols))
    original = STRATEGIES["ensemble"]
    STRATEGIES["ensemble"] = StrategySpec("benchmarks.live:TimedSignalStrategy", original.config_path, original.params,
                                          original.warmup_path, original.data_params)
    timed = importlib.import_module("benchmarks.live").TimedSignalStrategy  # the class the engine builds
    timed.timings = []
    try:
        cfg = load_config(None, [
            f'data.catalog="{catalog}"', 'data.symbols="all"', "data.start=2025-08-01", 'strategy.kind="ensemble"',
            f'strategy.model="{model}"', 'strategy.mode="streaming"', "strategy.max_hold_bars=12",
            "risk.stop_loss=0.02", "portfolio.max_positions=20", "portfolio.position_size=0.05",
        ])
        t = time.perf_counter()
        result = run_backtest(cfg)
        wall = time.perf_counter() - t
    finally:
        STRATEGIES["ensemble"] = original
    rec = np.array(timed.timings, dtype=np.int64).reshape(-1, 3)
    start = np.datetime64("2025-08-01", "ns").astype(np.int64)
    window = rec[rec[:, 0] >= start]
    times, inverse = np.unique(window[:, 0], return_inverse=True)
    per_time = np.bincount(inverse, weights=window[:, 1]) / 1e6  # ms per bar time
    per_cpu = np.bincount(inverse, weights=window[:, 2]) / 1e6
    counts = np.bincount(inverse)
    table = Table(title=f"{UNIVERSE}-symbol bar -> orders: strategy time per bar time (ms), shipped ensemble, streaming")
    for col in ("bar times", "symbols per bar time", "p50 wall", "p99 wall", "p50 CPU", "p99 CPU", "orders sent",
                "run wall time"):
        table.add_column(col, justify="right")
    table.add_row(f"{len(times):,}", f"{int(np.median(counts))}", f"{np.percentile(per_time, 50):.2f}",
                  f"{np.percentile(per_time, 99):.2f}", f"{np.percentile(per_cpu, 50):.2f}",
                  f"{np.percentile(per_cpu, 99):.2f}", f"{len(result.strategy.fills):,}", f"{wall:.1f} s")
    note = ("the 143 on_bar calls of one bar time: the first steps the features of all 143 symbols and scores them "
            "(one onnxruntime call per member); each then runs the overlays and the decision, entries and exits "
            "are submitted to the engine")
    return table, note


# --- 3. the GRU and the FLOP bound ---------------------------------------------------------------


def shipped_gru_flops(lookback: int, n_in: int, hidden: int, embed: int) -> int:
    """FLOPs per window of research.nets' GRU with attention pooling (1 layer): matmuls only."""
    gru = lookback * 2 * 3 * hidden * (n_in + hidden)
    attention = lookback * (2 * hidden * hidden + 2 * hidden) + lookback * 2 * hidden  # proj + score, weighted sum
    return gru + attention + 2 * (hidden + embed)


def cpu_rate(model: Any, x: np.ndarray, chunk: int, ids: np.ndarray | None) -> float:
    """Windows per CPU-second of the calling thread (best of 3 passes)."""
    model.predict(x[:chunk], None if ids is None else ids[:chunk], chunk_size=chunk)
    best = 0.0
    for _ in range(3):
        t = time.thread_time()
        model.predict(x, ids, chunk_size=chunk)
        best = max(best, len(x) / (time.thread_time() - t))
    return best


def sgemm_cpu_peak() -> float:
    """GFLOP per CPU-second of a single-threaded 1024^3 sgemm (best of 5)."""
    import threadpoolctl

    n = 1024
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    with threadpoolctl.threadpool_limits(1):
        a @ a
        best = 0.0
        for _ in range(5):
            t = time.thread_time()
            a @ a
            best = max(best, 2 * n**3 / (time.thread_time() - t))
    return best / 1e9


def gru_table(tmp: Path, quick: bool) -> tuple[Table, str]:
    from benchmarks.inference import (
        GRU_HIDDEN,
        GRU_LAYERS,
        F,
        L,
        build_models,
        gru_flops,
        matmul_peak,
        rate,
        windows,
    )
    from models.onnx_model import OnnxSignalModel

    cores = os.cpu_count() or 1
    secs = 0.4 if quick else 1.0
    peak1, peakn = matmul_peak(1), matmul_peak(min(2, cores))
    cpu_peak = sgemm_cpu_peak()
    seed_gru = build_models(tmp / "bench")["gru"]
    shipped = ROOT / "models" / "demo_gru"
    card = json.loads((shipped / "card.json").read_text())
    models = {
        f"seed-sized GRU {GRU_LAYERS}x{GRU_HIDDEN} + attention": (seed_gru, gru_flops(L, F, GRU_HIDDEN, GRU_LAYERS, True)),
        "shipped demo_gru (1x32 + attention, asset embedding)": (shipped, shipped_gru_flops(card["lookback"], F, 32, 4)),
    }
    table = Table(title="GRU batched scoring: samples/s and share of the fp32 FLOP bound (OnnxSignalModel.predict)")
    for col in ("model", "MFLOP/window", "layout", "best chunk", "samples/s", "% of bound (wall)",
                "% of 1-core bound per CPU-second"):
        table.add_column(col, justify="left" if col in ("model", "layout") else "right")
    for name, (path, flops) in models.items():
        probe = OnnxSignalModel.load(path)
        ids_all = None
        if probe.card.asset_map:
            ids_all = np.resize(np.array(sorted(probe.card.asset_map.values()), np.int64), 2048)
        x = windows(2048, probe.lookback, probe.n_features)
        for threads, workers in ((1, 1), (1, 2)):
            if threads * workers > cores:
                continue
            model = OnnxSignalModel.load(path, threads=threads, workers=workers)
            best = max((rate(model, x, c, secs, ids_all), c) for c in (32, 64, 128, 256))
            bound = peak1 if threads * workers == 1 else peakn
            per_cpu = ""
            if workers == 1:
                per_cpu = f"{100 * cpu_rate(model, x, best[1], ids_all) * flops / 1e9 / cpu_peak:.0f} %"
            layout = "1 core: 1 run x 1 thread" if workers == 1 else f"{workers} cores: {workers} concurrent runs x 1 thread"
            table.add_row(name, f"{flops / 1e6:.2f}", layout, str(best[1]), f"{best[0]:,.0f}",
                          f"{100 * best[0] * flops / 1e9 / bound:.0f} %", per_cpu)
    note = (f"bound: numpy sgemm peak {peak1:.1f} GFLOP/s on 1 core, {peakn:.1f} on {min(2, cores)} (wall clock, as "
            f"benchmarks/inference.py); {cpu_peak:.1f} GFLOP per CPU-second on 1 thread")
    return table, note


# --- 4. streaming vs batch on the real universe ------------------------------------------------


def real_table(tmp: Path, quick: bool) -> tuple[Table, str]:
    from engine.config import load_config
    from engine.ingest.pipeline import ingest_files
    from engine.runner import run_backtest

    files = sorted(REAL.glob("*_1h.csv"))
    if not files:
        return Table(title=f"real universe: no data at {REAL} (set SIGTRADE_REAL_DATA)"), ""
    catalog = tmp / "real"
    ingest_files(files, catalog, bar="1-HOUR", repair=True)
    symbols = sorted(p.name.split("_")[0] for p in files)
    model = ensemble_for(tmp / "models_real", symbols)
    table = Table(title=f"{len(symbols)}-symbol real hourly universe: streaming vs batch backtest (shipped ensemble)")
    for col in ("window", "batch", "streaming", "streaming / batch", "same orders"):
        table.add_column(col, justify="right")
    windows_ = [("2025-08-01", "2026-07-31")] if quick else [("2025-08-01", "2026-07-31"), (None, None)]
    for start, end in windows_:
        runs: dict[str, Any] = {}
        for mode in ("batch", "streaming"):
            sets = [f'data.catalog="{catalog}"', f"data.symbols={json.dumps(symbols)}", 'strategy.kind="ensemble"',
                    f'strategy.model="{model}"', f'strategy.mode="{mode}"', "portfolio.max_positions=10"]
            if start:
                sets += [f"data.start={start}", f"data.end={end}"]
            cfg = load_config(None, sets)
            t = time.perf_counter()
            res = run_backtest(cfg)
            runs[mode] = (time.perf_counter() - t, res)
        cols = ["ts", "symbol", "side", "qty", "price"]
        same = runs["batch"][1].strategy.fills[cols].reset_index(drop=True).equals(
            runs["streaming"][1].strategy.fills[cols].reset_index(drop=True))
        table.add_row(f"{start or 'all'} .. {end or 'all'}", f"{runs['batch'][0]:.1f} s",
                      f"{runs['streaming'][0]:.1f} s", f"{runs['streaming'][0] / runs['batch'][0]:.2f} x",
                      f"{'yes' if same else 'NO'} ({len(runs['batch'][1].strategy.fills)} fills)")
    note = ("both replay the window plus the model's warm-up in the event loop; batch scores the whole history in "
            "one pass before it, streaming feeds each symbol's earlier history to its stream in one kernel call and "
            "steps every later bar time (features, windows, one onnxruntime call per member)")
    return table, note


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    parser.add_argument("--only", choices=("features", "latency", "gru", "real"), action="append",
                        help="run only these sections (default: all)")
    args = parser.parse_args()
    sections = args.only or ["features", "latency", "gru", "real"]
    import onnxruntime as ort

    load = os.getloadavg()[0]
    console.print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, load average "
                  f"{load:.1f}")
    if load > 0.5:
        console.print(f"[yellow]load average {load:.1f}: other processes compete for the cores; wall-clock figures "
                      "below are lower bounds (ratios within a table are measured in the same run)[/]")
    tmp = Path(tempfile.mkdtemp(prefix="sigtrade-live-"))
    try:
        if "features" in sections:
            console.print(features_table(args.quick))
        for name, fn in (("latency", latency_table), ("gru", gru_table), ("real", real_table)):
            if name in sections:
                table, note = fn(tmp, args.quick)
                console.print(table)
                if note:
                    console.print(f"  {note}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
