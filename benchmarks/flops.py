"""FLOP counts of the signal networks, and the machine's fp32 FLOP bound they are compared with.

Every benchmark that reports a share of the bound uses these (``benchmarks/live.py``,
``benchmarks/inference.py``). FLOPs are counted analytically, matmuls only, 2 per
multiply-add (:func:`gru_net_flops`).

The bound's definition (printed by :func:`describe`): the best rate of square sgemms ``C = A @ B``
(n = 512, 1024, 2048) over several repetitions, through both runtimes a signal model could
use here - onnxruntime's MLAS (a one-node ``MatMul`` session, the kernels that score the
models) and numpy's OpenBLAS - on 1 thread and on 2 threads, measured in the calling
process, in the same run as the model it is compared with:

* **per CPU-second** (``cpu``): FLOPs / CPU time of the process (all its threads), best of
  the repetitions, on 1 thread. Time the scheduler gives to other processes is not
  counted, so this bound and the model rates measured the same way stay comparable on a
  shared machine. One core's bound applies to any number of cores (a model on ``k`` cores
  gets ``k`` CPU-seconds per second).
* **wall clock** (``wall``): for ``k`` cores ``max(measured k-thread rate, k x the
  per-CPU-second bound)`` - one core cannot do more per second than per CPU-second, and
  sgemm scales linearly over cores, so a measured ``k``-thread rate below that means other
  processes held a core, not that the cores are slower (the earlier 2-core bound came out
  below the 1-core one under contention). Wall-clock shares of this bound are therefore
  lower bounds on a loaded machine; the per-CPU-second shares are the comparable ones.

Short timed passes (best of many) keep the best pass clear of the scheduler's time slices;
:meth:`Bound.merged` keeps the larger of two measurements (a benchmark measures before and
after its models and uses both).

The best of several shapes matters: MLAS reaches its peak on cache-resident blocks
(n = 512 here) and loses some on n = 2048, so a bound from one large sgemm alone would sit
below what the models' own per-step GEMMs reach.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

SIZES = (512, 1024, 2048)


def gru_net_flops(lookback: int, n_in: int, hidden: int, layers: int, attention: bool, embed: int) -> int:
    """FLOPs per window of ``research.nets``' GRU network (matmuls only, 2 per multiply-add).

    Each layer: ``L`` input products ``2 * 3H * in`` and ``L - 1`` recurrent products ``2 * 3H * H``
    (the first step multiplies ``h_0 = 0``: no work the network needs); attention pooling:
    projection ``2 H H`` and score ``2 H`` per step, weighted sum ``2 H`` per step; the head
    ``2 (H + E)`` (``E``: asset-embedding width).
    """
    flops, width = 0, n_in
    for _ in range(layers):
        flops += lookback * 2 * 3 * hidden * width + (lookback - 1) * 2 * 3 * hidden * hidden
        width = hidden
    if attention:
        flops += lookback * (2 * hidden * hidden + 2 * hidden) + lookback * 2 * hidden
    return flops + 2 * (hidden + embed)


@dataclass(frozen=True)
class Bound:
    """Best sgemm GFLOP/s: per CPU-second on 1 thread, and wall clock by thread count."""

    cpu: float
    wall: dict[int, float]
    measured_wall: dict[int, float]
    detail: dict[tuple[str, int, int], tuple[float, float]] = field(default_factory=dict)

    def wall_for(self, cores: int) -> float:
        """Wall-clock bound of *cores* cores (GFLOP/s)."""
        return self.wall[cores]

    def merged(self, other: Bound) -> Bound:
        """The larger of two measurements, figure by figure (the bound is a best rate)."""
        detail = {k: (max(v[0], other.detail.get(k, v)[0]), max(v[1], other.detail.get(k, v)[1]))
                  for k, v in self.detail.items()}
        measured = {k: max(v, other.measured_wall.get(k, v)) for k, v in self.measured_wall.items()}
        cpu = max(self.cpu, other.cpu)
        return Bound(cpu=cpu, wall={k: max(measured[k], k * cpu) for k in measured}, measured_wall=measured,
                     detail=detail)


def _matmul_model(n: int) -> bytes:
    """A one-node ONNX graph ``c = a @ b``, ``a`` an ``[n, n]`` input, ``b`` a seeded ``[n, n]`` constant."""
    from onnx import TensorProto, helper, numpy_helper

    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        initializer=[numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _ort_matmul(n: int, threads: int):  # noqa: ANN202 - an onnxruntime session
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(_matmul_model(n), options, providers=["CPUExecutionProvider"])


def _best(fn, flops: float, repeats: int, min_seconds: float) -> tuple[float, float]:  # noqa: ANN001
    """Best wall and best per-CPU-second GFLOP/s of *fn* over *repeats* timed passes."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    calls = max(1, int(min_seconds / once))
    wall = cpu = 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        dt, dc = time.perf_counter() - t, time.process_time() - c
        wall = max(wall, calls * flops / dt)
        cpu = max(cpu, calls * flops / max(dc, 1e-9))
    return wall / 1e9, cpu / 1e9


def measure(cores: int = 2, repeats: int = 12, min_seconds: float = 0.03) -> Bound:
    """Measure the bound on 1 and *cores* threads (a few seconds)."""
    import threadpoolctl

    detail: dict[tuple[str, int, int], tuple[float, float]] = {}
    threads = sorted({1, cores})
    for n in SIZES:
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        flops = 2.0 * n**3
        for k in threads:
            session = _ort_matmul(n, k)
            detail[("onnxruntime", k, n)] = _best(lambda s=session, x=a: s.run(None, {"a": x}), flops, repeats,
                                                  min_seconds)
            with threadpoolctl.threadpool_limits(k):
                detail[("numpy", k, n)] = _best(lambda x=a: x @ x, flops, repeats, min_seconds)
    cpu = max(v[1] for key, v in detail.items() if key[1] == 1)
    measured = {k: max(v[0] for key, v in detail.items() if key[1] == k) for k in threads}
    wall = {k: max(measured[k], k * cpu) for k in threads}
    return Bound(cpu=cpu, wall=wall, measured_wall=measured, detail=detail)


def measure_bf16(repeats: int = 12, min_seconds: float = 0.03) -> float | None:
    """Best single-thread GFLOP per CPU-second of a bf16 matmul on OpenVINO (None without OpenVINO or bf16).

    The same square ``C = A @ B`` (n = 512, 1024, 2048) compiled with ``INFERENCE_PRECISION_HINT
    = bf16`` on 1 thread: the ceiling of what ``sigtrade export --precision bf16`` models run
    on (AMX / AVX512_BF16 products, fp32 accumulation). It is reported beside the fp32 bound,
    never instead of it.
    """
    try:
        import openvino as ov
    except ImportError:
        return None
    from models.openvino_runtime import bf16_supported

    if not bf16_supported():
        return None
    core = ov.Core()
    best = 0.0
    for n in SIZES:
        compiled = core.compile_model(core.read_model(_matmul_model(n), b""), "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
        request = compiled.create_infer_request()
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        best = max(best, _best(lambda r=request, x=a: r.infer({"a": x}), 2.0 * n**3, repeats, min_seconds)[1])
    return best


def describe(bound: Bound) -> str:
    """One paragraph: the bound's figures and where they came from."""
    best = max((v[1], key) for key, v in bound.detail.items() if key[1] == 1)[1]
    walls = ", ".join(f"{k} thread{'s' if k > 1 else ''} {bound.measured_wall[k]:.1f}" for k in sorted(bound.wall))
    return (f"fp32 FLOP bound: {bound.cpu:.1f} GFLOP per CPU-second (best single-thread sgemm, {best[0]} n={best[2]}; "
            f"best of {len(SIZES)} sizes x 2 runtimes x repetitions, measured before and after the models in this "
            f"run); wall clock measured {walls} GFLOP/s, "
            f"bound used for k cores = max(measured, k x the per-CPU-second bound) = "
            + ", ".join(f"{k}: {v:.1f}" for k, v in sorted(bound.wall.items())))
