"""Benchmark: ONNX inference throughput and latency against the machine's fp32 FLOP bound.

Measured in one run, on models built with ``onnx.helper`` (no torch), plus - when torch
(the research extra) is installed - the seed-sized GRU as ``sigtrade export`` writes it
(the unrolled graph of :mod:`research.unrolled`):

* the machine's fp32 FLOP bound (:mod:`benchmarks.flops`: the best sgemm of
  onnxruntime/MLAS and numpy/OpenBLAS over three sizes and several repetitions, on 1 and
  2 threads; for 2 cores the larger of the measured rate and twice the 1-thread rate);
* batched scoring through :meth:`OnnxSignalModel.predict` for an MLP ``L*F -> 256 -> 128 ->
  1`` and a seed-sized GRU (2 layers x 128, attention pooling) over ``(N, 24, 19)`` windows:
  chunk sizes swept (best reported) for four layouts - 1 intra-op thread; 2 intra-op
  threads; 2 concurrent single-threaded runs in one process (``workers=2``); 2
  single-threaded processes splitting the windows - samples/s and the fraction of the
  FLOP bound of the cores used (FLOPs per sample counted analytically: matmuls only);
* streaming: one window (per-bar latency) and the universe-wide call for 143 symbols
  (:meth:`OnnxSignalModel.predict_universe` and :meth:`SignalStream.score`), p50 / p99;
* the cost of materialising all windows of a long series vs. chunked copies of a
  zero-copy sliding-window view;
* every shipped model under ``models/*/`` (batched, best chunk, 1 thread).

Usage: ``python benchmarks/inference.py [--quick]`` (well under 2 minutes).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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

from benchmarks.flops import describe, gru_net_flops, measure  # noqa: E402
from models.features import FEATURE_SET  # noqa: E402
from models.onnx_model import OnnxSignalModel  # noqa: E402

L, F = 24, len(FEATURE_SET.features)
MLP_HIDDEN = (256, 128)
GRU_HIDDEN, GRU_LAYERS = 128, 2
UNIVERSE = 143
console = Console(width=150)


# --- FLOP counts (multiply-adds x 2; activations and softmax ignored) --------------------


def mlp_flops(n_in: int, hidden: tuple[int, ...]) -> int:
    dims = (n_in, *hidden, 1)
    return sum(2 * a * b for a, b in zip(dims[:-1], dims[1:], strict=True))


def gru_flops(lookback: int, n_in: int, hidden: int, layers: int, attention: bool) -> int:
    per_step = 0
    width = n_in
    for _ in range(layers):
        per_step += 2 * 3 * hidden * (width + hidden)  # input projection + recurrent matmul
        width = hidden
    flops = lookback * per_step + 2 * hidden  # + head
    if attention:
        flops += lookback * 4 * hidden  # scores + weighted sum
    return flops


# --- models ------------------------------------------------------------------------------------


def build_models(folder: Path) -> dict[str, Path]:
    """The benchmark models; with torch (the research extra) also the seed-sized GRU as ``sigtrade export`` writes it."""
    from tests.models.onnx_factory import build_gru, build_mlp, write_artifact

    feats = FEATURE_SET.features
    models = {
        "mlp": write_artifact(folder / "bench_mlp", build_mlp(L, F, MLP_HIDDEN),
                              architecture="mlp", lookback=L, features=feats),
        "gru": write_artifact(folder / "bench_gru",
                              build_gru(L, F, GRU_HIDDEN, GRU_LAYERS, attention=True),
                              architecture="gru", lookback=L, features=feats, output_shape=(-1,)),
    }
    try:
        import onnx
        import torch

        from research.export import onnx_bytes
        from research.nets import RecurrentNet
    except ImportError:
        return models
    torch.manual_seed(0)
    net = RecurrentNet(L, F, hidden=GRU_HIDDEN, layers=GRU_LAYERS, cell="gru", attention=True).eval()
    models["gru_export"] = write_artifact(folder / "bench_gru_export", onnx.load_from_string(onnx_bytes(net)),
                                          architecture="gru", lookback=L, features=feats, output_shape=(-1,))
    return models


def windows(n: int, lookback: int = L, n_features: int = F, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, lookback, n_features)).astype(np.float32)


def rate(model: OnnxSignalModel, x: np.ndarray, chunk: int, seconds: float,
         ids: np.ndarray | None = None) -> float:
    """Samples/s of ``model.predict`` over *x* repeated for at least *seconds*."""
    model.predict(x[: chunk * 2], None if ids is None else ids[: chunk * 2], chunk_size=chunk)
    done, start = 0, time.perf_counter()
    while True:
        model.predict(x, ids, chunk_size=chunk)
        done += len(x)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def raw_rate(model: OnnxSignalModel, x: np.ndarray, chunk: int, seconds: float) -> float:
    """Samples/s of bare ``session.run`` on pre-made contiguous chunks (no checks, no mask)."""
    session, out = model._session, [model.card.output.name]
    parts = [np.ascontiguousarray(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    session.run(out, {"features": parts[0]})
    done, start = 0, time.perf_counter()
    while True:
        for part in parts:
            session.run(out, {"features": part})
        done += len(x)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _worker(path: str, n: int, chunk: int, seconds: float, seed: int, barrier: Any) -> tuple[int, float, float]:
    model = OnnxSignalModel.load(path, threads=1)
    x = windows(n, model.lookback, model.n_features, seed)
    model.predict(x[: chunk * 2], chunk_size=chunk)
    barrier.wait()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict(x, chunk_size=chunk)
        done += n
    return done, start, time.perf_counter()


def rate_processes(path: Path, n: int, chunk: int, seconds: float, processes: int) -> float:
    """Aggregate samples/s of *processes* single-threaded processes, each scoring its share."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            results = pool.starmap(
                _worker,
                [(str(path), n // processes, chunk, seconds, seed, barrier) for seed in range(processes)],
            )
    done = sum(r[0] for r in results)
    return done / (max(r[2] for r in results) - min(r[1] for r in results))


def latency(fn: Any, repeats: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of calling *fn* *repeats* times (after a warm-up)."""
    for _ in range(max(5, repeats // 20)):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def stream_for(path: Path, threads: int, workers: int) -> Any:
    """A SignalStream over 143 symbols with random, already-warm windows (no feature work)."""
    from models.signal import load_signal_model

    model = load_signal_model(path, threads=threads, workers=workers)
    stream = model.stream([f"S{i:03d}" for i in range(UNIVERSE)])
    for k, win in enumerate(stream._windows):
        win[:] = windows(UNIVERSE, win.shape[1], win.shape[2], seed=k)
        stream._finite_run[k][:] = win.shape[1]
    stream._n_bars[:] = 10**6
    return stream


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    args = parser.parse_args()
    secs = 0.3 if args.quick else 0.8
    cores = os.cpu_count() or 1

    import onnxruntime as ort

    console.print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}, "
                  f"{cores} cores, numpy {np.__version__}")
    load = os.getloadavg()[0]
    if load > 0.5:
        console.print(f"[yellow]load average {load:.1f}: other processes compete for the cores; "
                      f"the figures below are lower bounds[/]")
    bound = measure(min(2, cores))
    peak1, peakn = bound.wall_for(1), bound.wall_for(min(2, cores))
    console.print(describe(bound))

    flops = {"mlp": mlp_flops(L * F, MLP_HIDDEN),
             "gru": gru_flops(L, F, GRU_HIDDEN, GRU_LAYERS, attention=True),
             "gru_export": gru_net_flops(L, F, GRU_HIDDEN, GRU_LAYERS, True, 0)}
    names = {"mlp": f"MLP {L * F}-256-128-1", "gru": f"GRU {GRU_LAYERS}x{GRU_HIDDEN} + attention (fused GRU op)",
             "gru_export": f"GRU {GRU_LAYERS}x{GRU_HIDDEN} + attention (unrolled, sigtrade export)"}
    chunks = {"mlp": (512, 1024, 2048, 4096), "gru": (32, 64, 128, 256), "gru_export": (64, 128, 256, 512)}
    n_windows = {"mlp": 16384, "gru": 2048, "gru_export": 2048}
    layouts = [(1, 1), (2, 1), (1, 2)]  # (intra-op threads, concurrent runs)

    table = Table(title=f"batched scoring, (N, {L}, {F}) float32 windows, OnnxSignalModel.predict")
    for col in ("model", "FLOP/sample", "layout", "best chunk", "samples/s", "GFLOP/s",
                "% of bound (cores used)"):
        table.add_column(col, justify="right" if col not in ("model", "layout") else "left")
    lat = Table(title=f"streaming latency (ms): one window, and the {UNIVERSE}-symbol universe call")
    for col in ("model", "layout", "1 window p50", f"predict_universe({UNIVERSE}) p50", "p99",
                f"SignalStream.score({UNIVERSE}) p50", "p99 "):
        lat.add_column(col, justify="right" if col not in ("model", "layout") else "left")

    def layout_name(threads: int, workers: int) -> str:
        if workers > 1:
            return f"1 process, {workers} concurrent runs x 1 thread"
        return f"1 process, {threads} intra-op thread{'s' if threads > 1 else ''}"

    with tempfile.TemporaryDirectory() as tmp:
        paths = build_models(Path(tmp))
        for key, path in paths.items():
            x = windows(n_windows[key])
            fl = flops[key]
            best_chunk = chunks[key][0]
            for threads, workers in layouts:
                if threads * workers > cores:
                    continue
                model = OnnxSignalModel.load(path, threads=threads, workers=workers)
                best = max((rate(model, x, c, secs), c) for c in chunks[key])
                bound = peak1 if threads * workers == 1 else peakn
                table.add_row(names[key], f"{fl / 1e6:.2f} M", layout_name(threads, workers),
                              str(best[1]), f"{best[0]:,.0f}", f"{best[0] * fl / 1e9:.1f}",
                              f"{100 * best[0] * fl / 1e9 / bound:.0f} %")
                if (threads, workers) == (1, 1):
                    best_chunk = best[1]
                    raw = raw_rate(model, x, best_chunk, secs)
                    table.add_row(names[key], f"{fl / 1e6:.2f} M", "  same, bare session.run (reference)",
                                  str(best_chunk), f"{raw:,.0f}", f"{raw * fl / 1e9:.1f}",
                                  f"{100 * raw * fl / 1e9 / peak1:.0f} %")
                one, uni = x[:1], x[:UNIVERSE]
                p50_1, _ = latency(lambda m=model, w=one: m.predict_universe(w), 300)
                u50, u99 = latency(lambda m=model, w=uni: m.predict_universe(w), 200)
                stream = stream_for(path, threads, workers)
                s50, s99 = latency(stream.score, 200)
                lat.add_row(names[key], layout_name(threads, workers), f"{p50_1:.3f}",
                            f"{u50:.2f}", f"{u99:.2f}", f"{s50:.2f}", f"{s99:.2f}")
            if cores >= 2:
                r = rate_processes(path, n_windows[key] * 2, best_chunk, secs * 2, 2)
                table.add_row(names[key], f"{fl / 1e6:.2f} M", "2 processes x 1 thread",
                              str(best_chunk), f"{r:,.0f}", f"{r * fl / 1e9:.1f}",
                              f"{100 * r * fl / 1e9 / peakn:.0f} %")

        # shipped models
        shipped = sorted(p.parent for p in (ROOT / "models").glob("*/card.json"))
        for folder in shipped:
            model = OnnxSignalModel.load(folder, threads=1)
            x = windows(4096 if model.card.architecture == "mlp" else 1024, model.lookback, model.n_features)
            ids = None
            if model.card.asset_map:
                ids = np.resize(np.array(sorted(model.card.asset_map.values()), np.int64), len(x))
            best = max((rate(model, x, c, secs, ids), c) for c in (64, 128, 256, 1024))
            table.add_row(f"shipped: {folder.name} ({model.card.architecture})", "-",
                          "1 process, 1 thread", str(best[1]), f"{best[0]:,.0f}", "-", "-")
        if not shipped:
            table.add_row("shipped models", "-", "none under models/*/", "-", "-", "-", "-")

    console.print(table)
    console.print(lat)

    # materialising all windows vs chunked copies of the sliding view
    t_rows = 500_000
    feats = np.random.default_rng(0).normal(size=(t_rows + L - 1, F)).astype(np.float32)
    view = np.lib.stride_tricks.sliding_window_view(feats, (L, F))[:, 0]
    t = time.perf_counter()
    full = np.ascontiguousarray(view)
    t_full = time.perf_counter() - t
    gb = full.nbytes / 1e9
    del full
    t = time.perf_counter()
    for start in range(0, t_rows, 1024):
        np.ascontiguousarray(view[start : start + 1024])
    t_chunk = time.perf_counter() - t
    console.print(f"{t_rows:,} windows ({L}x{F}): materialised in {t_full:.2f} s ({gb:.2f} GB); "
                  f"chunked copies of the zero-copy view (1024 a chunk, 0.09 MB each) in "
                  f"{t_chunk:.2f} s")


if __name__ == "__main__":
    main()
