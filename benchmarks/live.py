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
3. **GRU batched samples/s as a share of the fp32 FLOP bound** (:mod:`benchmarks.flops`:
   the best sgemm of onnxruntime/MLAS and numpy/OpenBLAS over three sizes and several
   repetitions, measured in this run; FLOPs counted analytically, matmuls only), for the
   shipped ``demo_gru`` and a seed-sized GRU (2 x 128 + attention), each as the unrolled
   graph ``sigtrade export`` writes now and as the fused ONNX ``GRU`` op it wrote before
   (same weights); on 1 core and on 2 cores (two concurrent single-threaded runs, and one
   run with 2 intra-op threads); per wall second and per CPU-second of the process (which
   other processes on the machine do not distort); the ``predict_universe`` latency of the
   same graphs; and where one chunk's time goes by op class (the onnxruntime profiler).
   With the ``[openvino]`` extra on a CPU with bf16 instructions, also both unrolled graphs
   as ``sigtrade export --precision bf16`` marks them (OpenVINO, bf16), against the fp32
   bound and against a bf16 bound measured the same way.
   Needs the research extra (torch rebuilds the graphs).
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

console = Console(width=200)
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

GRU_CHUNKS = (128, 256, 512, 1024, 2048, 4096)


def artifact(src: Path, blob: bytes, dst: Path) -> Path:
    """A copy of the artifact *src* with its graph replaced by *blob* (same card, new hash)."""
    import hashlib

    dst.mkdir(parents=True, exist_ok=True)
    (dst / "model.onnx").write_bytes(blob)
    card = json.loads((src / "card.json").read_text())
    card.update(name=dst.name, onnx_sha256=hashlib.sha256(blob).hexdigest())
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    return dst


def gru_models(tmp: Path) -> list[tuple[str, str, Path, int, tuple[int, int, int, int, bool, int]]]:
    """(model, graph, artifact, FLOPs per window, net shape): the shipped demo_gru and a seed-sized GRU, both graphs.

    The net shape is ``(lookback, features, hidden, layers, attention, embedding width)``.

    The shipped demo_gru's "before" graph is its own weights (read back from the unrolled graph)
    exported as the fused ONNX ``GRU`` op, as ``sigtrade export`` wrote it before.
    """
    import onnx
    import torch

    from benchmarks import flops
    from models.features import FEATURE_SET
    from research.export import onnx_bytes, with_metadata
    from research.nets import RecurrentNet
    from research.unrolled import net_from_artifact
    from tests.models.onnx_factory import write_artifact

    shipped = ROOT / "models" / "demo_gru"
    net = net_from_artifact(shipped)
    blob = onnx.load(str(shipped / "model.onnx"))
    meta = {p.key: p.value for p in blob.metadata_props}
    demo_fused = artifact(shipped, with_metadata(onnx_bytes(net, gru_graph="fused"), meta), tmp / "demo_gru_fused")
    hidden = net.rnn.hidden_size
    demo_shape = (net.lookback, net.n_features, hidden, net.rnn.num_layers, net.pool is not None, net.embedding_dim)
    demo_flops = flops.gru_net_flops(*demo_shape)
    torch.manual_seed(0)
    seed = RecurrentNet(net.lookback, net.n_features, hidden=128, layers=2, cell="gru", attention=True).eval()
    seed_shape = (seed.lookback, seed.n_features, 128, 2, True, 0)
    seed_flops = flops.gru_net_flops(*seed_shape)
    feats = FEATURE_SET.features
    folders = {g: write_artifact(tmp / f"seed_gru_{g}", onnx.load_from_string(onnx_bytes(seed, gru_graph=g)), architecture="gru",
                                 lookback=seed.lookback, features=feats, output_shape=(-1,)) for g in ("fused", "unrolled")}
    demo = f"shipped demo_gru (1x{hidden} + attention, asset embedding)"
    seed_name = "seed-sized GRU 2x128 + attention"
    rows = [(demo, "fused ONNX GRU op (before)", demo_fused, demo_flops, demo_shape),
            (demo, "unrolled (shipped)", shipped, demo_flops, demo_shape),
            (seed_name, "fused ONNX GRU op (before)", folders["fused"], seed_flops, seed_shape),
            (seed_name, "unrolled", folders["unrolled"], seed_flops, seed_shape)]
    for name, src, flop, shape in ((demo, shipped, demo_flops, demo_shape),
                                   (seed_name, folders["unrolled"], seed_flops, seed_shape)):
        low = bf16_artifact(src, tmp / f"{src.name}_bf16")
        if low is not None:
            rows.append((name, BF16_GRAPH, low, flop, shape))
    return rows


BF16_GRAPH = "unrolled, bf16 on OpenVINO (export --precision bf16)"


def bf16_artifact(src: Path, dst: Path) -> Path | None:
    """*src* marked as ``sigtrade export --precision bf16`` marks it (same graph), or None without OpenVINO/bf16.

    The card's accuracy record is this benchmark's own comparison (2,048 of its random
    windows, bf16 on OpenVINO vs fp32 on onnxruntime), not an export's check on real
    windows; a difference above the card's 1e-3 tolerance drops the row.
    """
    import shutil as sh

    from benchmarks.inference import windows
    from models.card import PRECISION_TOL
    from models.errors import ModelContractError
    from models.onnx_model import OnnxSignalModel
    from models.openvino_runtime import OpenVinoSession, bf16_supported, openvino_version

    try:
        if not bf16_supported():
            return None
        version = openvino_version()
    except ModelContractError:
        return None
    fp32 = OnnxSignalModel.load(src)
    x = windows(2048, fp32.lookback, fp32.n_features, seed=7)
    feeds = {"features": x}
    if fp32.card.asset_map:
        feeds["asset_id"] = np.resize(np.array(sorted(fp32.card.asset_map.values()), np.int64), len(x))
    want = fp32.predict(x, feeds.get("asset_id"))
    blob = (src / "model.onnx").read_bytes()
    got = OpenVinoSession(blob, "bf16", 1, 1, str(src)).run([fp32.card.output.name], feeds)[0].reshape(-1)
    diff = float(np.max(np.abs(got - want)))
    if not diff <= PRECISION_TOL:
        console.print(f"[yellow]{src.name}: bf16 differs from fp32 by {diff:.1e} on the benchmark windows: no bf16 row[/]")
        return None
    dst.mkdir(parents=True, exist_ok=True)
    sh.copyfile(src / "model.onnx", dst / "model.onnx")
    card = json.loads((src / "card.json").read_text())
    card.update(name=dst.name, precision={
        "dtype": "bf16", "runtime": "openvino", "runtime_version": version,
        "checked_on": "benchmarks/live.py random windows", "windows": len(x), "max_abs_diff": diff,
        "tolerance": PRECISION_TOL, "decisions_changed": 0})
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    return dst


def both_rates(model: Any, x: np.ndarray, ids: np.ndarray | None, chunk: int, repeats: int) -> tuple[float, float]:
    """Best windows per wall second and per CPU-second (process, all threads) of ``model.predict`` over *x*."""
    model.predict(x[: 2 * chunk], None if ids is None else ids[: 2 * chunk], chunk_size=chunk)
    wall = cpu = 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        model.predict(x, ids, chunk_size=chunk)
        wall = max(wall, len(x) / (time.perf_counter() - t))
        cpu = max(cpu, len(x) / max(time.process_time() - c, 1e-9))
    return wall, cpu


def time_by_op(path: Path, x: np.ndarray, ids: np.ndarray | None, runs: int, scratch: Path) -> dict[str, float]:
    """Microseconds per run by op class from onnxruntime's profiler (median of each node over *runs*).

    The profile file goes to the folder *scratch* (never beside the model) and is removed.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.log_severity_level = 3
    options.profile_file_prefix = str(scratch / f"profile_{path.name}")
    session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {"features": x}
    if ids is not None:
        feeds["asset_id"] = ids
    for _ in range(runs):
        session.run(None, feeds)
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    per_node: dict[str, list[float]] = {}
    kind: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node.setdefault(e["name"], []).append(float(e["dur"]))
            kind[e["name"]] = e["args"]["op_name"]
    classes = {"Gemm": "GEMM", "FusedGemm": "GEMM", "MatMul": "GEMM", "Sigmoid": "activation", "Tanh": "activation",
               "Softmax": "activation", "Mul": "gating arithmetic", "Add": "gating arithmetic",
               "Sub": "gating arithmetic", "ReduceSum": "gating arithmetic", "GRU": "fused GRU kernel"}
    out: dict[str, float] = {}
    for name, durations in per_node.items():
        cls = classes.get(kind[name], "copies and shapes")
        out[cls] = out.get(cls, 0.0) + float(np.median(durations))
    return out


def gemm_ceiling(lookback: int, n_in: int, hidden: int, layers: int, attention: bool, embed: int, batch: int,
                 repeats: int) -> tuple[float, int]:
    """CPU-seconds per run and FLOPs of a graph holding only the GEMMs of the unrolled GRU graph.

    Same shapes and count as :mod:`research.unrolled` writes them (first step ``[B, in] x [in, H]`` x 3;
    later steps ``[B, in+H] x [in+H, H]`` x 2 with their sigmoid, ``[B, in] x [in, H]``, ``[B, H] x [H, H]``;
    attention ``[L*B, H] x [H, H]`` with its tanh and ``[L*B, H] x [H, 1]``; the head), each reading a
    graph input, the outputs of one shape bound to one preallocated buffer (cache-resident, as the real
    graph's memory plan reuses its buffers): no gating arithmetic, no copies.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    specs: list[tuple[int, int, int, str | None]] = []
    width = n_in
    for _ in range(layers):
        specs += [(batch, width, hidden, "Sigmoid")] * 2 + [(batch, width, hidden, None)]
        specs += [(batch, width + hidden, hidden, "Sigmoid"), (batch, width + hidden, hidden, "Sigmoid"),
                  (batch, width, hidden, None), (batch, hidden, hidden, None)] * (lookback - 1)
        width = hidden
    if attention:
        specs += [(lookback * batch, hidden, hidden, "Tanh"), (lookback * batch, hidden, 1, None)]
    specs.append((batch, hidden + embed, 1, None))
    rng = np.random.default_rng(0)
    nodes, inits, outputs = [], [], []
    inputs: dict[tuple[int, int], str] = {}
    for i, (m, k, n, act) in enumerate(specs):
        a = inputs.setdefault((m, k), f"a{m}x{k}")
        inits += [numpy_helper.from_array((rng.standard_normal((k, n)) * 0.1).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(n, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [a, f"w{i}", f"b{i}"], [f"g{i}" if act else f"y{i}"]))
        if act:
            nodes.append(helper.make_node(act, [f"g{i}"], [f"y{i}"]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [m, n]))
    graph = helper.make_graph(nodes, "gemms", [helper.make_tensor_value_info(v, TensorProto.FLOAT, list(k))
                                               for k, v in inputs.items()], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    for (m, k), name in inputs.items():
        binding.bind_cpu_input(name, rng.standard_normal((m, k)).astype(np.float32))
    buffers: dict[tuple[int, int], Any] = {}  # one buffer per shape, as the real graph's memory plan reuses them
    for i, (m, _, n, _) in enumerate(specs):
        buffer = buffers.setdefault((m, n), ort.OrtValue.ortvalue_from_numpy(np.empty((m, n), np.float32)))
        binding.bind_ortvalue_output(f"y{i}", buffer)
    session.run_with_iobinding(binding)
    start = time.perf_counter()
    session.run_with_iobinding(binding)
    calls = max(1, int(0.2 / max(time.perf_counter() - start, 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        c = time.process_time()
        for _ in range(calls):
            session.run_with_iobinding(binding)
        best = min(best, (time.process_time() - c) / calls)
    return best, sum(2 * m * k * n for m, k, n, _ in specs)


def gru_table(tmp: Path, quick: bool) -> tuple[list[Table], str]:
    from benchmarks.flops import describe, measure, measure_bf16
    from benchmarks.inference import latency, windows
    from models.onnx_model import OnnxSignalModel

    cores = min(2, os.cpu_count() or 1)
    repeats = 3 if quick else 5
    bound = measure(cores)
    bf16_bound = measure_bf16()
    try:
        rows = gru_models(tmp / "gru")
    except ImportError as exc:  # torch (the research extra) rebuilds the graphs
        return [Table(title=f"GRU vs the FLOP bound: needs the research extra ({exc}); pip install -e '.[research]'")], ""
    layouts = [(1, 1, "1 core: 1 run x 1 thread")]
    if cores >= 2:
        layouts += [(1, 2, "2 cores: 2 concurrent runs x 1 thread"), (2, 1, "2 cores: 1 run x 2 intra-op threads")]
    lat = Table(title="the same graphs on the streaming path: OnnxSignalModel.predict_universe latency, 1 thread (ms)")
    for col in ("model", "graph", "1 window p50", f"{UNIVERSE} windows p50", f"{UNIVERSE} windows p99"):
        lat.add_column(col, justify="left" if col in ("model", "graph") else "right")
    rates: list[tuple[str, str, int, int, str, int, float, float]] = []
    best_chunk: dict[Path, int] = {}
    for name, graph, path, flops, _ in rows:
        probe = OnnxSignalModel.load(path)
        n = 8192 if flops < 1e6 else 2048
        x = windows(n, probe.lookback, probe.n_features)
        ids = None
        if probe.card.asset_map:
            ids = np.resize(np.array(sorted(probe.card.asset_map.values()), np.int64), n)
        for threads, workers, layout in layouts:
            model = OnnxSignalModel.load(path, threads=threads, workers=workers)
            chunks = GRU_CHUNKS if (threads, workers) == (1, 1) else (best_chunk[path], 1024)
            results = {c: both_rates(model, x, ids, c, repeats) for c in dict.fromkeys(chunks)}
            chunk = max(results, key=lambda c: results[c][1])
            if (threads, workers) == (1, 1):
                best_chunk[path] = chunk
            rates.append((name, graph, flops, threads * workers, layout, chunk, *results[chunk]))
        model = OnnxSignalModel.load(path)
        one, uni = x[:1], x[:UNIVERSE]
        one_ids, uni_ids = (None, None) if ids is None else (ids[:1], ids[:UNIVERSE])
        p1, _ = latency(lambda m=model, w=one, i=one_ids: m.predict_universe(w, i), 100 if quick else 300)
        u50, u99 = latency(lambda m=model, w=uni, i=uni_ids: m.predict_universe(w, i), 100 if quick else 300)
        lat.add_row(name, graph, f"{p1:.3f}", f"{u50:.2f}", f"{u99:.2f}")

    # why the unrolled graphs stop where they do: their GEMMs alone, and where the time goes
    ceilings: dict[Path, tuple[float, int, str]] = {}
    for _, graph, path, _, shape in rows:
        if "unrolled" not in graph or graph == BF16_GRAPH:
            continue
        chunk = best_chunk[path]
        seconds, gemm_flops = gemm_ceiling(*shape, chunk, repeats)
        probe = OnnxSignalModel.load(path)
        x = windows(chunk, probe.lookback, probe.n_features)
        ids = np.resize(np.array(sorted(probe.card.asset_map.values()), np.int64), chunk) if probe.card.asset_map else None
        parts = time_by_op(path, x, ids, 10 if quick else 30, tmp)
        total = sum(parts.values())
        shares = " / ".join(f"{100 * parts.get(k, 0.0) / total:.0f} %" for k in
                            ("GEMM", "activation", "gating arithmetic", "copies and shapes"))
        ceilings[path] = (seconds, gemm_flops, shares)

    bound = bound.merged(measure(cores))  # the bound is a best rate: keep the better of before and after
    if bf16_bound is not None:
        bf16_bound = max(bf16_bound, measure_bf16() or 0.0)
    table = Table(title="GRU batched scoring (OnnxSignalModel.predict) as a share of the fp32 FLOP bound")
    for col in ("model", "graph", "MFLOP/window", "layout", "best chunk", "windows/s (wall)", "% bound (wall)",
                "windows per CPU-s", "% bound (per CPU-s)", "% bf16 bound (per CPU-s)"):
        table.add_column(col, justify="left" if col in ("model", "graph", "layout") else "right")
    for name, graph, flops, used, layout, chunk, wall, cpu in rates:
        low = f"{100 * cpu * flops / 1e9 / bf16_bound:.0f} %" if graph == BF16_GRAPH and bf16_bound else ""
        table.add_row(name, graph, f"{flops / 1e6:.2f}", layout, str(chunk), f"{wall:,.0f}",
                      f"{100 * wall * flops / 1e9 / bound.wall_for(used):.0f} %", f"{cpu:,.0f}",
                      f"{100 * cpu * flops / 1e9 / bound.cpu:.0f} %", low)
    why = Table(title="why the unrolled GRU stops short of the bound (1 thread, best chunk)")
    for col in ("model", "chunk", "whole graph (per CPU-s)", "its GEMM nodes alone (per CPU-s)",
                "time by op class (profiler): GEMM / activation / gating arithmetic / copies and shapes"):
        why.add_column(col, justify="left" if col == "model" else "right")
    for name, graph, path, flops, _ in rows:
        if path not in ceilings:
            continue
        seconds, gemm_flops, shares = ceilings[path]
        cpu = next(r[7] for r in rates if r[0] == name and r[1] == graph and r[3] == 1)
        why.add_row(name, str(best_chunk[path]), f"{100 * cpu * flops / 1e9 / bound.cpu:.0f} %",
                    f"{100 * gemm_flops / seconds / 1e9 / bound.cpu:.0f} %", shares)
    low_note = ("no bf16 rows: OpenVINO (the [openvino] extra) or bf16 instructions (AMX / AVX512_BF16) missing"
                if bf16_bound is None else
                f"bf16 rows: the same unrolled graph as `sigtrade export --precision bf16` marks it, run by OpenVINO's "
                f"CPU plugin in bf16 (fp32 accumulation) - compared with the fp32 bound (the issue's measure: the same "
                f"FLOPs per window) and with the bf16 bound, {bf16_bound:.1f} GFLOP per CPU-second (best 1-thread "
                f"OpenVINO bf16 matmul, n = 512-2048, measured in this run)")
    note = (f"{describe(bound)}. {low_note}. % bound (per CPU-s) = windows per CPU-second of the process x FLOPs / the "
            f"1-thread bound per CPU-second (immune to other processes taking the cores; on 2 cores it includes the "
            f"cost of the second thread); % bound (wall) = windows/s x FLOPs / the wall bound of the cores used "
            f"(a lower bound while other processes hold cores). "
            f"'its GEMM nodes alone': a graph of only the unrolled graph's GEMMs (same shapes, with the sigmoid/tanh "
            f"onnxruntime fuses into them; outputs bound to preallocated buffers) - the most the model could reach if "
            f"every other node were free. Profiler shares are of the profiled run (the profiler adds its own cost per "
            f"node)")
    return [table, lat, why], note


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
                tables, note = fn(tmp, args.quick)
                for table in tables if isinstance(tables, list) else [tables]:
                    console.print(table)
                if note:
                    console.print(f"  {note}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
