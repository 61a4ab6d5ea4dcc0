"""ONNX inference for one signal model: batched, series and universe-wide streaming calls.

:class:`OnnxSignalModel` wraps one onnxruntime session for one validated artifact
(``model.onnx`` + ``card.json``, see :mod:`models.card`). It never imports torch.

* :meth:`~OnnxSignalModel.predict` scores windows ``(N, L, F)`` in memory-bounded chunks:
  only one chunk is ever copied into a contiguous buffer, so *windows* may be a zero-copy
  sliding-window view over a ``(T, F)`` matrix;
* :meth:`~OnnxSignalModel.predict_series` scores every bar of one scaled feature matrix
  ``(T, F)``; the windows are a :func:`numpy.lib.stride_tricks.sliding_window_view`;
* :meth:`~OnnxSignalModel.predict_universe` scores one window per symbol ``(S, L, F)`` in
  one onnxruntime call (the streaming path: one call per bar across the universe).

Output: the graph outputs the probability (sigmoid inside the graph, shape ``[-1]`` or
``[-1, 1]``); results are float64 ``(N,)``. A window that holds a NaN or an infinity gets
probability NaN - never a signal on NaN - whatever the graph would have made of it.

Execution providers: CUDA when ``onnxruntime.get_available_providers()`` lists it (the
``[gpu]`` extra installs onnxruntime-gpu), CPU otherwise; an INFO log line says which
provider runs; if the CUDA session cannot be created the model falls back to CPU with a
WARNING. CPU sessions use ``threads`` intra-op threads (default 1: one per process, the
fastest layout for recurrent models on few cores is one single-threaded process per
core, see ``benchmarks/inference.py``).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.card import (
    MODEL_FILE,
    RECURRENT,
    ModelCard,
    check_output_is_probability,
    validate_artifact,
)
from models.errors import ModelContractError

__all__ = ["OnnxSignalModel", "default_chunk_size", "select_providers"]

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def default_chunk_size(architecture: str) -> int:
    """Windows per onnxruntime call: 1024 for MLPs, 128 for recurrent nets, 256 otherwise.

    Measured on 2 Zen 4 cores (``benchmarks/inference.py``, ``benchmarks/live.py``): an MLP
    gains up to ~1024 windows a call; a GRU - the fused ONNX op and the unrolled graph
    ``sigtrade export`` writes now alike - is best at 128-512 windows (within the noise of
    a shared machine; the per-step tensors stay in L2) and no faster at 1024-4096, so a
    larger chunk buys nothing.
    """
    arch = architecture.lower()
    if arch == "mlp":
        return 1024
    if arch in RECURRENT:
        return 128
    return 256


def select_providers(requested: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Execution providers to ask onnxruntime for: CUDA then CPU when CUDA is available.

    *requested* overrides the choice; each must be available (else ModelContractError).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested is None:
        return [CUDA, CPU] if CUDA in available else [CPU]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ModelContractError(
            f"execution provider(s) {missing} not available in this onnxruntime "
            f"(available: {available}); install the [gpu] extra (onnxruntime-gpu) for CUDA, "
            f"or leave providers unset"
        )
    return list(requested)


def _session(blob: bytes, providers: list[str], threads: int, file: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(blob, options, providers=providers)
    except Exception as exc:
        if providers != [CPU]:
            logger.warning(
                "%s: could not start onnxruntime with %s (%s); falling back to %s",
                file, providers[0], str(exc).splitlines()[0] if str(exc) else exc, CPU,
            )
            return _session(blob, [CPU], threads, file)
        raise ModelContractError(
            f"{file}: onnxruntime cannot load the model ({str(exc).splitlines()[0]}); "
            f"re-export it with a supported opset"
        ) from None


class OnnxSignalModel:
    """One ONNX signal model: its card and an onnxruntime session.

    Build it with :meth:`load`. Inputs must already be scaled with the card's scaler (see
    :func:`models.features.scale`) and ordered as ``card.feature_set.features``.
    """

    def __init__(
        self,
        card: ModelCard,
        session: Any,
        path: Path,
        *,
        chunk_size: int | None = None,
        threads: int = 1,
        workers: int = 1,
    ) -> None:
        self.card = card
        self.path = path
        self.threads = threads
        self.chunk_size = int(chunk_size) if chunk_size else default_chunk_size(card.architecture)
        if self.chunk_size < 1:
            raise ModelContractError(f"chunk_size must be at least 1, got {chunk_size}")
        if int(workers) < 1:
            raise ModelContractError(f"workers must be at least 1, got {workers}")
        self.workers = int(workers)
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix=f"ort-{card.name}")
            if self.workers > 1 else None
        )
        self._session = session
        self._out = [card.output.name]
        self._asset_ids = card.has_asset_ids
        self._max_id = max(card.asset_map.values()) if card.asset_map else -1
        self._ones: np.ndarray = np.ones(card.lookback * card.n_features, dtype=np.float32)

    @classmethod
    def load(
        cls,
        path: Path | str,
        threads: int = 1,
        providers: list[str] | tuple[str, ...] | None = None,
        chunk_size: int | None = None,
        workers: int = 1,
    ) -> OnnxSignalModel:
        """Validate the artifact in folder *path* and open an inference session.

        Parameters
        ----------
        path : path-like
            Model folder holding ``model.onnx`` and ``card.json``.
        threads : int
            Intra-op threads of the CPU session (default 1 per process).
        providers : list of str, optional
            onnxruntime execution providers; default CUDA when available, else CPU.
        chunk_size : int, optional
            Windows per onnxruntime call in :meth:`predict`; default by architecture
            (:func:`default_chunk_size`).
        workers : int
            Concurrent onnxruntime runs (threads of this process; onnxruntime releases the
            GIL). ``workers=2, threads=1`` keeps two cores busy with one single-threaded
            run each - for recurrent models on few cores faster than ``threads=2``, and
            without the start-up and copying cost of worker processes.

        Raises
        ------
        ModelContractError
            The card does not match the graph or the hash, the file is corrupt, or
            onnxruntime cannot run it.
        """
        folder = Path(path)
        card, warnings = validate_artifact(folder, smoke=False)
        for warning in warnings:
            logger.info("%s: %s", folder, warning)
        if int(threads) < 1:
            raise ModelContractError(f"threads must be at least 1, got {threads}")
        file = str(folder / MODEL_FILE)
        if card.precision is not None:  # sigtrade export --precision bf16: OpenVINO runs it
            from models.openvino_runtime import OpenVinoSession

            session: Any = OpenVinoSession((folder / MODEL_FILE).read_bytes(), card.precision.dtype,
                                           int(threads), max(int(workers), 1), file)
            if not session.native:
                logger.warning("%s: exported in %s, but this CPU has no bf16 instructions (AMX or AVX512_BF16): "
                               "OpenVINO computes it in fp32 or emulates bf16 here, no faster than fp32 and not "
                               "what the export checked; re-export without --precision for this machine", file,
                               card.precision.dtype)
        else:
            session = _session((folder / MODEL_FILE).read_bytes(), select_providers(providers),
                               int(threads), file)
        check_output_is_probability(session, card, str(folder / "card.json"))
        model = cls(card, session, folder, chunk_size=chunk_size, threads=int(threads),
                    workers=workers)
        logger.info(
            "model '%s' (%s) runs on %s with %d intra-op thread(s) x %d concurrent "
            "run(s), chunk %d",
            card.name, card.architecture, model.provider, model.threads, model.workers,
            model.chunk_size,
        )
        return model

    # --- properties --------------------------------------------------------------------

    @property
    def provider(self) -> str:
        """What runs the model: onnxruntime's provider, or ``OpenVINO CPU (bf16)`` for a bf16 card."""
        return str(self._session.get_providers()[0])

    @property
    def lookback(self) -> int:
        """Window length ``L``."""
        return self.card.lookback

    @property
    def n_features(self) -> int:
        """Features per bar ``F``."""
        return self.card.n_features

    @property
    def name(self) -> str:
        """The card's model name."""
        return self.card.name

    # --- input checks ------------------------------------------------------------------

    def _check_windows(self, windows: Any, what: str = "windows") -> np.ndarray:
        want = (self.lookback, self.n_features)
        if not isinstance(windows, np.ndarray):
            raise ModelContractError(
                f"model '{self.name}': {what} must be a numpy array (N, {want[0]}, {want[1]}) "
                f"float32, found {type(windows).__name__}"
            )
        if windows.ndim != 3 or windows.shape[1:] != want:
            raise ModelContractError(
                f"model '{self.name}': {what} must have shape (N, lookback={want[0]}, "
                f"features={want[1]}), found shape {windows.shape} (rank {windows.ndim}); "
                f"build windows of the card's lookback over its feature columns"
            )
        if windows.dtype != np.float32:
            raise ModelContractError(
                f"model '{self.name}': {what} must be float32 (the graph input dtype), found "
                f"{windows.dtype}; scale with models.features.scale, which returns float32"
            )
        return windows

    def _check_asset_ids(self, asset_ids: Any, n: int) -> np.ndarray | None:
        if not self._asset_ids:
            if asset_ids is not None:
                raise ModelContractError(
                    f"model '{self.name}' has no asset_id input (its card has no asset_map); "
                    f"do not pass asset ids"
                )
            return None
        if asset_ids is None:
            raise ModelContractError(
                f"model '{self.name}' has an asset embedding: pass asset_ids (int64, one per "
                f"window) from the card's asset_map"
            )
        ids = np.asarray(asset_ids)
        if ids.ndim == 0:
            ids = np.full(n, ids)
        if ids.dtype.kind not in "iu":
            raise ModelContractError(
                f"model '{self.name}': asset_ids must be integers (int64), found {ids.dtype}"
            )
        if ids.shape != (n,):
            raise ModelContractError(
                f"model '{self.name}': asset_ids must have shape ({n},) (one per window), "
                f"found {ids.shape}"
            )
        if n and (ids.min() < 0 or ids.max() > self._max_id):
            raise ModelContractError(
                f"model '{self.name}': asset ids must lie in 0..{self._max_id} (the card's "
                f"asset_map), found {int(ids.min())}..{int(ids.max())}"
            )
        return ids.astype(np.int64, copy=False)

    # --- scoring -------------------------------------------------------------------------

    def _run(self, chunk: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {"features": chunk}
        if ids is not None:
            feeds["asset_id"] = np.ascontiguousarray(ids)
        out = np.asarray(self._session.run(self._out, feeds)[0])
        if out.size != chunk.shape[0]:
            raise ModelContractError(
                f"model '{self.name}': output '{self._out[0]}' has shape {out.shape} for "
                f"{chunk.shape[0]} windows, expected one probability per window"
            )
        return out.reshape(-1)

    def _nonfinite(self, chunk: np.ndarray) -> np.ndarray:
        # one sgemv: NaN/inf anywhere in a window makes its sum non-finite
        return ~np.isfinite(chunk.reshape(chunk.shape[0], -1) @ self._ones)

    def _score_rows(
        self,
        windows: np.ndarray,
        rows: np.ndarray | None,
        ids: np.ndarray | None,
        step: int,
        out: np.ndarray,
        mask: bool,
    ) -> None:
        """Score ``windows[rows]`` (all when None) into ``out`` in chunks of *step*.

        Each chunk is copied (contiguous) right before its run, so at most ``workers``
        chunk copies exist at a time. With ``workers > 1`` chunks run concurrently on the
        thread pool (onnxruntime releases the GIL while it computes).
        """
        n = windows.shape[0] if rows is None else rows.size

        def one(start: int) -> None:
            stop = min(start + step, n)
            where: slice | np.ndarray = slice(start, stop) if rows is None else rows[start:stop]
            chunk = np.ascontiguousarray(windows[where])
            probs = self._run(chunk, None if ids is None else ids[where])
            if mask:
                bad = self._nonfinite(chunk)
                if bad.any():
                    probs = np.where(bad, np.nan, probs)
            out[where] = probs

        starts = range(0, n, step)
        if self._pool is None or len(starts) < 2:
            for start in starts:
                one(start)
        else:
            for future in [self._pool.submit(one, start) for start in starts]:
                future.result()

    def predict(
        self,
        windows: np.ndarray,
        asset_ids: np.ndarray | int | None = None,
        *,
        chunk_size: int | None = None,
    ) -> np.ndarray:
        """Probabilities of windows ``(N, L, F)`` float32, scored in chunks.

        Parameters
        ----------
        windows : numpy.ndarray
            ``(N, lookback, n_features)`` float32, already scaled; may be a strided view
            (only the chunks being scored are copied).
        asset_ids : array of int or int, optional
            One asset id per window (or one for all); required exactly when the card has an
            ``asset_map``.
        chunk_size : int, optional
            Windows per onnxruntime call; default :attr:`chunk_size`.

        Returns
        -------
        numpy.ndarray
            float64 ``(N,)``; NaN for a window with any non-finite value.
        """
        windows = self._check_windows(windows)
        ids = self._check_asset_ids(asset_ids, windows.shape[0])
        out = np.empty(windows.shape[0], dtype=np.float64)
        self._score_rows(windows, None, ids, int(chunk_size or self.chunk_size), out, mask=True)
        return out

    def predict_universe(
        self, windows: np.ndarray, asset_ids: np.ndarray | None = None
    ) -> np.ndarray:
        """Score one window per symbol ``(S, L, F)`` at once (the streaming path).

        Same contract as :meth:`predict` (float32, NaN window -> NaN), without chunking:
        one onnxruntime run, or with ``workers = k > 1`` the universe split into ``k``
        concurrent runs (one per core).
        """
        windows = self._check_windows(windows)
        n = windows.shape[0]
        ids = self._check_asset_ids(asset_ids, n)
        out = np.empty(n, dtype=np.float64)
        if n:
            step = -(-n // self.workers) if self._pool is not None else n
            self._score_rows(windows, None, ids, step, out, mask=True)
        return out

    def score_prepared(self, windows: np.ndarray, asset_ids: np.ndarray | None = None) -> np.ndarray:
        """Probabilities of windows the caller built and checked itself (the streaming hot path).

        *windows* must be C-contiguous float32 ``(N, lookback, n_features)``, *asset_ids*
        int64 ``(N,)`` exactly when the card has an asset map. No shape checks and no NaN
        masking: the caller knows which windows hold a non-finite value
        (:class:`models.signal.SignalStream` tracks it per symbol). With ``workers = k > 1``
        the windows are split into ``k`` concurrent runs.
        """
        n = windows.shape[0]
        if self._pool is None or n < 2 * self.workers:
            return self._run(windows, asset_ids).astype(np.float64)
        step = -(-n // self.workers)
        parts = [
            self._pool.submit(self._run, windows[i : i + step], None if asset_ids is None else asset_ids[i : i + step])
            for i in range(0, n, step)
        ]
        return np.concatenate([f.result() for f in parts]).astype(np.float64)

    def predict_series(
        self,
        features: np.ndarray,
        asset_id: int | None = None,
        *,
        chunk_size: int | None = None,
    ) -> np.ndarray:
        """Probability at every bar of one scaled feature matrix ``(T, F)`` float32.

        The window of bar ``t`` is rows ``t - L + 1 .. t``. Windows are a zero-copy
        sliding-window view; only windows free of NaN/inf are scored (warm-up rows cost
        nothing), one chunk copy at a time.

        Returns
        -------
        numpy.ndarray
            float64 ``(T,)``: NaN where ``t < L - 1`` (not enough history: a wait, not an
            error; all NaN when ``T < L``) or where the window holds a non-finite value.
        """
        if not isinstance(features, np.ndarray) or features.ndim != 2:
            raise ModelContractError(
                f"model '{self.name}': features must be a (T, {self.n_features}) float32 "
                f"array, found {getattr(features, 'shape', type(features).__name__)}"
            )
        if features.shape[1] != self.n_features or features.dtype != np.float32:
            raise ModelContractError(
                f"model '{self.name}': features must be (T, {self.n_features}) float32 in the "
                f"card's column order, found {features.shape} {features.dtype}"
            )
        if asset_id is not None and not isinstance(asset_id, int | np.integer):
            raise ModelContractError(
                f"model '{self.name}': asset_id must be one int, found {type(asset_id).__name__}"
            )
        t, lookback = features.shape[0], self.lookback
        out = np.full(t, np.nan, dtype=np.float64)
        self._check_asset_ids(asset_id, 1)
        if t < lookback:
            return out
        # (T-L+1, 1, L, F) -> (T-L+1, L, F); window i ends at row i + L - 1
        windows = sliding_window_view(features, (lookback, self.n_features))[:, 0]
        row_bad = ~np.isfinite(features).all(axis=1)
        good: np.ndarray | None = None
        if row_bad.any():
            bad_before = np.concatenate(([0], np.cumsum(row_bad, dtype=np.int64)))
            good = np.flatnonzero((bad_before[lookback:] - bad_before[:-lookback]) == 0)
        ids = None if asset_id is None else np.full(windows.shape[0], asset_id, np.int64)
        self._score_rows(windows, good, ids, int(chunk_size or self.chunk_size),
                         out[lookback - 1 :], mask=False)
        return out

    def __repr__(self) -> str:
        return (
            f"OnnxSignalModel(name={self.name!r}, architecture={self.card.architecture!r}, "
            f"lookback={self.lookback}, features={self.n_features}, provider={self.provider!r})"
        )
