"""bf16 execution of a model artifact on OpenVINO's CPU plugin (``sigtrade export --precision bf16``).

onnxruntime's CPU provider has no bf16 kernels on x86, so a card with a ``precision``
section (:class:`models.card.PrecisionSpec`) is run by OpenVINO instead: the same
``model.onnx`` (fp32 weights, the same hash), compiled with ``INFERENCE_PRECISION_HINT =
bf16``, which turns its matmuls into bf16 products with fp32 accumulation on AMX or
AVX512_BF16 (``benchmarks/live.py`` measures what that buys). :class:`OpenVinoSession`
offers the two calls :class:`models.onnx_model.OnnxSignalModel` makes of an onnxruntime
session (``run`` and ``get_providers``), so every caller - batched, series and
universe-wide scoring, ensembles, backtests and paper trading - is unchanged.

* One compiled model per artifact; one infer request per calling thread (requests are not
  thread-safe), so ``workers = k`` concurrent runs use ``k`` CPU streams of ``threads``
  threads each.
* Deterministic: the same windows give bit-identical probabilities in every run, whatever
  the batch they are scored in (``tests/research/test_precision.py``).
* OpenVINO is the ``[openvino]`` extra, imported only when such a card is loaded.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from models.errors import ModelContractError

__all__ = ["OpenVinoSession", "bf16_supported", "openvino_version"]

INSTALL = "pip install -e '.[openvino]'"


def _openvino(purpose: str) -> Any:
    try:
        import openvino
    except ImportError:
        raise ModelContractError(
            f"{purpose} runs on OpenVINO, which is not installed: {INSTALL} "
            f"(or use the fp32 export: sigtrade export without --precision)"
        ) from None
    return openvino


def openvino_version() -> str:
    """The installed OpenVINO's version (ModelContractError when it is missing)."""
    return str(_openvino("a bf16 model").__version__).split("-")[0]


def _has_bf16(core: Any) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def bf16_supported() -> bool:
    """Whether OpenVINO's CPU plugin has native bf16 arithmetic on this CPU (AMX or AVX512_BF16)."""
    return _has_bf16(_openvino("a bf16 model").Core())


class OpenVinoSession:
    """An OpenVINO CPU model in *dtype* behind the two onnxruntime-session calls the models use.

    Parameters
    ----------
    blob : bytes
        The ONNX graph (``model.onnx``, fp32).
    dtype : str
        ``"bf16"``: OpenVINO's inference precision.
    threads : int
        Threads per run (CPU stream).
    workers : int
        Concurrent runs (one CPU stream each).
    file : str
        The model file, for messages.
    """

    def __init__(self, blob: bytes, dtype: str, threads: int, workers: int, file: str) -> None:
        ov = _openvino(f"{file} (exported with --precision {dtype})")
        core = ov.Core()
        try:
            model = core.read_model(blob, b"")
            self._compiled = core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": dtype,
                "NUM_STREAMS": int(workers),
                "INFERENCE_NUM_THREADS": int(threads) * int(workers),
                "PERFORMANCE_HINT": "LATENCY" if workers == 1 else "THROUGHPUT",
            })
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long texts
            raise ModelContractError(
                f"{file}: OpenVINO cannot compile the model in {dtype} "
                f"({str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}); "
                f"re-export it in fp32 (sigtrade export without --precision)"
            ) from None
        self.dtype = dtype
        self.native = _has_bf16(core)
        # an output may carry several tensor names (the ONNX name and OpenVINO's own)
        self._ports = {name: port for port in self._compiled.outputs for name in port.get_names()}
        self._local = threading.local()

    def get_providers(self) -> list[str]:
        """What runs the model, as onnxruntime would name its provider."""
        suffix = "" if self.native else ", but this CPU has no bf16 instructions"
        return [f"OpenVINO CPU ({self.dtype}{suffix})"]

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Score *feeds*; the arrays of the outputs named in *outputs*, in that order."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        missing = [name for name in outputs if name not in self._ports]
        if missing:
            raise ModelContractError(f"the graph has no output {missing[0]!r} (outputs: {sorted(self._ports)})")
        result = request.infer(feeds)
        # the request reuses its output buffers: copy before the next call overwrites them
        return [np.array(result[self._ports[name]], copy=True) for name in outputs]
