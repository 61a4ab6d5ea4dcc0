"""Running a sweep: grid -> chunks of configurations -> the kernel -> a ranked results table.

The universe (bars, quotes, probabilities, overlay inputs) is prepared once by
:class:`engine.sim.fastpath.FastPath`; configurations are built and simulated chunk by
chunk, so a grid never holds more than one chunk of config objects. What does grow with
the grid is kept small and estimated before anything runs: one row of figures per
configuration and, for the overfitting statistics (DSR, PBO, walk-forward need every
configuration's returns), one equity value per configuration and window bar. A grid
whose estimate exceeds the memory budget is refused with the figures and what to do.

The model's probabilities come from the caller (the CLI, the composition root, scores
them with ``strategies.signal``), because ``engine`` never imports ``models``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine import catalog as cat
from engine.config import BacktestConfig
from engine.errors import ConfigError
from engine.sim.fastpath import FastPath

if TYPE_CHECKING:
    from engine.cluster.executor import Executor
from engine.sim.grid import Axis, check_values, combinations, config_for, grid_size

log = logging.getLogger(__name__)

METRICS = ("sharpe", "total_return", "calmar", "sortino")
"""Figures a sweep can rank by (highest first)."""
Scorer = Callable[[BacktestConfig, dict[str, pd.DataFrame]], tuple[dict[str, pd.Series], int | None, float]]
"""(config, history frames) -> (probabilities per symbol, card label horizon, card threshold)."""
Progress = Callable[[str, float], None]


def _noop(_: str, __: float) -> None:
    return None


def load_fastpath(cfg: BacktestConfig, score: Scorer, progress: Progress = _noop) -> FastPath:
    """Read the universe the way the runner does and prepare it for the kernel."""
    from engine.runner import benchmark_history, load_window
    from engine.strategy_registry import warmup_bars

    if cfg.strategy.kind == "policy":
        raise ConfigError(
            "strategy.kind = 'policy' cannot be swept on the fast path: an RL policy observes its own position, "
            "unrealised return and bars held, so its actions depend on every fill and cost of the run and cannot "
            "be computed before the simulation. Sweepable keys for a policy: none. Backtest each setting with "
            "`sigtrade backtest CONFIG --set key=value`, or compare trained configurations with `sigtrade rl evaluate`"
        )
    if cfg.strategy.kind not in ("signal", "ensemble"):
        raise ConfigError(
            f"the fast path simulates the signal strategy; strategy.kind = '{cfg.strategy.kind}' can only "
            "be backtested (sigtrade backtest); set strategy.kind = \"signal\" and strategy.model"
        )
    symbols = cat.resolve_symbols(cfg.data.catalog, cfg.data.bar, cfg.data.symbols)
    window, full, history = load_window(
        cfg.data.catalog, symbols, cfg.data.bar, cfg.data.start, cfg.data.end, warmup_bars(cfg)
    )
    progress("load", 1.0)
    probs, horizon, threshold = score(cfg, history)
    progress("model", 1.0)
    bench = benchmark_history(cfg, history)
    return FastPath(cfg, window, full, history, probs, bench, horizon, threshold)


@dataclass
class Plan:
    """What a sweep will run and what it will hold in memory."""

    n_configs: int
    n_window: int
    keep_equity: bool
    chunk: int
    bytes_results: int
    bytes_equity: int

    @property
    def bytes_total(self) -> int:
        """Estimated peak memory of the sweep's outputs."""
        return self.bytes_results + self.bytes_equity

    def describe(self) -> str:
        """One line for the user."""
        gb = self.bytes_total / 2**30
        eq = f", equity paths {self.bytes_equity / 2**20:,.0f} MiB" if self.keep_equity else ""
        return (
            f"{self.n_configs:,} configurations x {self.n_window:,} bars: ~{gb:,.2f} GiB of results{eq}; "
            f"{-(-self.n_configs // self.chunk)} chunk(s) of {self.chunk:,}"
        )


def plan(fast: FastPath, n_configs: int, keep_equity: bool, max_bytes: int, chunk: int = 2048) -> Plan:
    """Estimate the sweep's memory (configs x timeline x bytes) and refuse what does not fit."""
    n_window = int(fast.in_window.sum())
    per_row = 8 * 40  # figures + swept values per configuration
    p = Plan(
        n_configs=n_configs,
        n_window=n_window,
        keep_equity=keep_equity,
        chunk=max(1, min(chunk, n_configs)),
        bytes_results=n_configs * per_row + chunk * fast.bytes_per_config(False),
        bytes_equity=n_configs * n_window * 8 if keep_equity else 0,
    )
    if p.bytes_total > max_bytes:
        hint = (
            "pass --no-stats to skip the overfitting statistics (they need every configuration's equity path), "
            if keep_equity else ""
        )
        raise ConfigError(
            f"the grid is too large for memory: {p.describe()} > the {max_bytes / 2**30:,.1f} GiB budget "
            f"(--max-memory). {hint}narrow an axis, or split the sweep"
        )
    return p


@dataclass
class SweepResult:
    """A finished sweep: one row per configuration, in grid order."""

    axes: list[Axis]
    results: pd.DataFrame
    equity: np.ndarray | None
    fast: FastPath
    raw: dict[str, Any]
    source: str
    skipped: int = 0
    skipped_example: str = ""
    seconds: float = 0.0
    jit_seconds: float = 0.0
    steps: int = 0
    notes: list[str] = field(default_factory=list)

    def config(self, row: int) -> BacktestConfig:
        """The configuration of a results row."""
        values = [self.results.loc[row, ax.key] for ax in self.axes]
        return config_for(self.raw, self.axes, [_py(v) for v in values], self.source)

    def ranked(self, metric: str) -> pd.DataFrame:
        """Results best first by *metric* (undefined figures last)."""
        return self.results.sort_values(metric, ascending=False, na_position="last", kind="stable")

    def returns(self) -> pd.DataFrame:
        """Per-bar returns of every configuration (columns = results rows), for the statistics."""
        if self.equity is None:
            raise ConfigError("the equity paths were not kept (--no-stats)")
        eq = self.equity
        with np.errstate(divide="ignore", invalid="ignore"):
            r = eq[:, 1:] / eq[:, :-1] - 1.0
        return pd.DataFrame(r.T, index=self.fast.window_index[1:], columns=self.results.index)

    def returns_of(self, config: Any) -> pd.Series:
        """Per-bar returns of one configuration (a column of :meth:`returns`, without building the others)."""
        if self.equity is None:
            raise ConfigError("the equity paths were not kept (--no-stats)")
        eq = self.equity[self.results.index.get_loc(config)]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = eq[1:] / eq[:-1] - 1.0
        return pd.Series(r, index=self.fast.window_index[1:], name=config)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def warm_kernel() -> float:
    """Compile (or load from numba's on-disk cache) the kernels; return the seconds it took."""
    from engine.sim import kernels_nb as K

    t = time.perf_counter()
    T, S = 3, 1
    z = np.zeros((T, S))
    state = np.full((T, S), K.ST_DECIDE, dtype=np.int8)
    args = (
        np.arange(T, dtype=np.int64), np.ones(T, dtype=np.bool_), np.zeros(T, dtype=np.int64), 0,
        np.arange(T + 1, dtype=np.int64), np.zeros(T, dtype=np.int64), state.ravel(),
        np.ones(T), np.ones(T), np.ones(T), np.ones(T), np.full(T, 0.5), z + 1.0, np.zeros((T, S), dtype=np.int64),
        np.ones((1, T, S)), np.ones((1, T, S)), np.ones((1, T, S)), np.ones((1, T, S)),
        np.ones((1, T), dtype=np.bool_), np.zeros(S, dtype=np.int64), 1000.0, 1.0, 0.0,
    )
    fp = np.zeros((1, K.N_FLOAT))
    ip = np.zeros((1, K.N_INT), dtype=np.int64)
    ip[0, K.I_ATR] = ip[0, K.I_MOVE] = -1
    K.sweep_nb(fp, ip, *args, False, np.zeros((1, 0)))
    K.trace_nb(fp[0], ip[0], *args, 4, T)
    return time.perf_counter() - t


def run_sweep(
    fast: FastPath,
    raw: dict[str, Any],
    axes: Sequence[Axis],
    source: str,
    p: Plan,
    progress: Progress = _noop,
    executor: Executor | None = None,
) -> SweepResult:
    """Simulate every combination of *axes* on top of the config *raw*, chunk by chunk.

    With an *executor* (``--cluster``) every chunk is a task of its own: see
    :func:`run_sweep_tasks`.
    """
    if executor is not None:
        return run_sweep_tasks(fast, raw, axes, source, p, executor)
    check_values(raw, axes, source)
    jit = warm_kernel()
    n = grid_size(axes)
    rows: list[tuple[Any, ...]] = []
    stats_parts: list[np.ndarray] = []
    eq_parts: list[np.ndarray] = []
    skipped = 0
    example = ""
    chunk_cfgs: list[BacktestConfig] = []
    chunk_vals: list[tuple[Any, ...]] = []
    done = 0
    sim_seconds = 0.0

    def flush() -> None:
        nonlocal sim_seconds
        if not chunk_cfgs:
            return
        fp, ip = fast.params(chunk_cfgs)
        t = time.perf_counter()
        stats, eq = fast.run(fp, ip, keep_equity=p.keep_equity)
        sim_seconds += time.perf_counter() - t
        stats_parts.append(stats)
        if p.keep_equity:
            eq_parts.append(eq)
        rows.extend(chunk_vals)
        chunk_cfgs.clear()
        chunk_vals.clear()

    for values in combinations(axes):
        try:
            cfg = config_for(raw, axes, values, source)
        except ConfigError as exc:
            skipped += 1
            example = example or str(exc).split(": ", 1)[-1]
            done += 1
            continue
        chunk_cfgs.append(cfg)  # sweepable keys only (engine.sim.grid): the universe cannot change
        chunk_vals.append(values)
        done += 1
        if len(chunk_cfgs) >= p.chunk:
            flush()
            progress("simulate", done / n)
    flush()
    progress("simulate", 1.0)
    if not rows:
        raise ConfigError(
            f"every one of the {n:,} combinations breaks a config rule ({example}); change the grid"
        )
    results = _results(fast, axes, rows, np.concatenate(stats_parts))
    equity = np.concatenate(eq_parts) if p.keep_equity else None
    steps = len(rows) * int((fast.state != 0).sum())
    return SweepResult(
        axes=list(axes), results=results, equity=equity, fast=fast, raw=raw, source=source,
        skipped=skipped, skipped_example=example, seconds=sim_seconds, jit_seconds=jit, steps=steps,
    )


def _results(fast: FastPath, axes: Sequence[Axis], rows: list[tuple[Any, ...]], stats: np.ndarray) -> pd.DataFrame:
    """The results table: swept values, then the figures of each configuration's statistics."""
    table = pd.DataFrame(rows, columns=[a.key for a in axes])
    results = pd.concat([table, fast.metrics(stats)], axis=1)
    results["costs"] = results["commission_paid"] + results["slippage_paid"]
    results.index.name = "config"
    return results


def task_chunk(p: Plan, cpus: int) -> int:
    """Configurations per task: at least 4 tasks per CPU, at most the plan's chunk, at least 16."""
    return max(1, min(p.chunk, max(16, -(-p.n_configs // (4 * max(1, cpus))))))


def run_sweep_tasks(
    fast: FastPath,
    raw: dict[str, Any],
    axes: Sequence[Axis],
    source: str,
    p: Plan,
    executor: Executor,
) -> SweepResult:
    """:func:`run_sweep` with every chunk of configurations a task of *executor*.

    The configurations are built and turned into kernel parameter rows here (which also
    fills the per-setting banks: quotes per slippage, ATR% per period, regime series...);
    the kernel's prepared arrays then go to the tasks once (Ray's object store) and each
    task simulates its rows (:func:`engine.cluster.tasks.sweep_chunk`). Rows come back
    keyed by chunk, in grid order: the results are :func:`run_sweep`'s, bit for bit.
    """
    from engine.cluster import tasks

    check_values(raw, axes, source)
    n = grid_size(axes)
    size = task_chunk(p, executor.cpus)
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    rows: list[tuple[Any, ...]] = []
    skipped = 0
    example = ""
    cfgs: list[BacktestConfig] = []
    for values in combinations(axes):
        try:
            cfg = config_for(raw, axes, values, source)
        except ConfigError as exc:
            skipped += 1
            example = example or str(exc).split(": ", 1)[-1]
            continue
        cfgs.append(cfg)
        rows.append(values)
        if len(cfgs) >= size:
            chunks.append(fast.params(cfgs))
            cfgs = []
    if cfgs:
        chunks.append(fast.params(cfgs))
    if not rows:
        raise ConfigError(
            f"every one of the {n:,} combinations breaks a config rule ({example}); change the grid"
        )
    n_win = int(fast.in_window.sum())
    t = time.perf_counter()
    parts = executor.map(
        tasks.sweep_chunk, chunks, shared=(fast.kernel_args(), p.keep_equity, n_win),
        label="sweep chunks",
    )
    wall = time.perf_counter() - t
    stats = np.concatenate([part[0] for part in parts])
    if len(stats) != len(rows):
        raise RuntimeError(f"sweep: {len(stats)} result rows for {len(rows)} configurations")
    results = _results(fast, axes, rows, stats)
    equity = np.concatenate([part[1] for part in parts]) if p.keep_equity else None
    steps = len(rows) * int((fast.state != 0).sum())
    return SweepResult(
        axes=list(axes), results=results, equity=equity, fast=fast, raw=raw, source=source,
        skipped=skipped, skipped_example=example, seconds=wall, jit_seconds=0.0, steps=steps,
        notes=[f"{len(chunks)} task(s) of up to {size:,} configurations"],
    )


def never_allowing_regimes(fast: FastPath, raw: dict[str, Any], axes: Sequence[Axis], source: str) -> list[str]:
    """Regime settings of the grid that never allow an entry in the window (each named once)."""
    keys = [a for a in axes if a.key.startswith("regime.")]
    out: list[str] = []
    base_axes = [a for a in axes if a.key.startswith("regime.")]
    inside = fast.ts >= fast.trade_from
    for values in combinations(keys) if keys else [()]:
        try:
            cfg = config_for(raw, base_axes, values, source) if keys else config_for(raw, [], [], source)
        except ConfigError:
            continue
        allow = fast.regime_series(cfg.regime)
        if not allow[inside].any():
            label = ", ".join(f"{a.key}={v}" for a, v in zip(keys, values, strict=True)) or "the configured [regime]"
            out.append(label)
    return out


def warm_independent() -> float:
    """Compile (or load from cache) the independent threshold kernels; return the seconds it took."""
    from engine.sim import kernels_nb as K

    t = time.perf_counter()
    n = 4
    p = np.full((1, n), 0.6)
    px = np.full((1, n), 10.0)
    first = np.zeros(1, dtype=np.int64)
    end = np.full(1, n - 2, dtype=np.int64)
    rest = (p, px, px, px, first, end, True, np.full(1, 10.0), 1000.0, 0.5, 0.0, 10.0, 0.0, 0.0, 1.0)
    one = np.array([0.5])
    K.independent_nb(one, np.zeros(1, dtype=np.int64), one, np.zeros(1, dtype=np.int64), *rest)
    K.independent_reference_nb(one, one, *rest)
    return time.perf_counter() - t
