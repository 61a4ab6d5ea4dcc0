"""The task functions, ``fn(shared, item)``, that executors run (locally or on Ray workers).

Each is a module-level function of plain inputs (numpy arrays, configs, tuples), so a
Ray worker imports it by name, and each calls the very code the single-machine path
calls - the numba kernel, the walk-forward choice, the event-engine runner - so a
cluster run's results equal the local run's bit for bit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def sweep_chunk(shared: tuple[tuple[Any, ...], bool, int], item: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Simulate one chunk of configurations on the kernel.

    ``shared`` = (the kernel's prepared arrays :meth:`FastPath.kernel_args`, keep the
    equity paths?, bars in the window); ``item`` = the chunk's (float, int) parameter
    rows. Returns (statistics rows, equity paths or an empty array, kernel seconds).
    """
    from engine.sim import kernels_nb as K
    from engine.sim.fastpath import check_clash

    args, keep_equity, n_win = shared
    fp, ip = item
    eq = np.zeros((len(fp), n_win) if keep_equity else (len(fp), 0))
    t = time.perf_counter()
    stats = K.sweep_nb(np.ascontiguousarray(fp), np.ascontiguousarray(ip), *args, keep_equity, eq)
    seconds = time.perf_counter() - t
    check_clash(stats)
    return stats, eq, seconds


def walk_forward_window(shared: tuple[np.ndarray, str], item: tuple[int, int, int, int]) -> tuple[int, float, float]:
    """Choose on one training window, score the choice on its test window.

    ``shared`` = (the ``(T, N)`` returns, the metric name); ``item`` = the window's row
    bounds (train ``a:b``, test ``c:d``). Returns (chosen column, in-sample metric,
    out-of-sample metric).
    """
    from engine.stats.walk_forward import choose_in_window

    x, metric = shared
    return choose_in_window(x, metric, *item)


def backtest(shared: Any, cfg: Any) -> Any:
    """One event-engine backtest (strategy and benchmark): :func:`engine.runner.run_backtest`.

    With ``shared = {"diagnose": True}`` (a batch written with ``--out``) the run's Diagnosis
    (``[diagnosis]``, :func:`engine.diagnosis.diagnose`) is computed where it ran. The
    run's bars and probabilities (kept in memory for a diagnosis) are not sent back.
    """
    from engine.runner import run_backtest

    result = run_backtest(cfg)
    if shared and shared.get("diagnose") and cfg.diagnosis.enabled:
        from engine.diagnosis import diagnose
        from engine.strategy_registry import resolve

        result.diagnosis = diagnose(result, cfg, signal_loader=resolve("strategies.signal:diagnosis_inputs"))
    return _light(result)


def _light(result: Any) -> Any:
    result.inputs = None
    result.strategy.signal = None
    return result
