"""Backtest batches: several config files and/or a ``--grid`` of overrides, one event-engine run each.

``sigtrade backtest A.toml B.toml --grid costs.slippage_bps=0,5 --out OUT`` plans
``2 x 2`` runs (each config file, in the order given, times every grid combination, the
last axis varying fastest). Each run is exactly ``sigtrade backtest FILE --set ... --set
KEY=VALUE``: the same config, validated before anything runs, and the same
:func:`engine.runner.run_backtest`. With ``--out`` each run writes its usual files into
``OUT/<run name>/`` and the batch writes ``OUT/summary.csv`` and ``OUT/summary.json`` (one
row per run: its name, file, overrides and headline metrics next to the benchmark's).

Runs are independent: without ``--cluster`` they run one after another in this process;
with it each is a Ray task, alone in its worker process (a fresh NautilusTrader engine,
never beside another one). The results are the same either way.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import BacktestConfig, load_config
from engine.errors import ConfigError
from engine.outputs import atomic_write_text
from engine.results import BacktestResult
from engine.sim.grid import Axis, toml_value

SUMMARY_METRICS = (
    "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "trades", "win_rate",
    "turnover", "exposure", "commission_paid", "slippage_paid", "final_equity",
)
"""Strategy metrics in the summary table (plus the benchmark's return and Sharpe and the excess return)."""
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class BatchRun:
    """One backtest of a batch."""

    name: str
    """Folder name under ``--out`` (unique in the batch)."""
    config_path: Path
    overrides: tuple[str, ...]
    """The ``--set`` items of the command, then this run's grid values."""
    grid: dict[str, Any] = field(default_factory=dict)
    cfg: BacktestConfig | None = None

    def command(self) -> str:
        """The single ``sigtrade backtest`` command that reproduces this run."""
        import shlex

        parts = ["sigtrade", "backtest", str(self.config_path)]
        for item in self.overrides:
            parts += ["--set", item]
        return shlex.join(parts)


def _label(axes: Sequence[Axis], values: Sequence[Any]) -> str:
    bits = [f"{a.key.rpartition('.')[2]}={v}" for a, v in zip(axes, values, strict=True)]
    return _SAFE.sub("_", ",".join(bits)).strip("_")


def plan_batch(configs: Sequence[Path], sets: Sequence[str], axes: Sequence[Axis]) -> list[BatchRun]:
    """Every (config file x grid combination) run, each config loaded and validated now.

    Raises
    ------
    ConfigError
        A file or an override is wrong (naming the run), or the batch is empty.
    """
    if not configs:
        raise ConfigError("backtest needs at least one CONFIG file")
    combos = list(itertools.product(*(a.values for a in axes))) if axes else [()]
    runs: list[BatchRun] = []
    seen: dict[str, int] = {}
    for path in configs:
        for values in combos:
            grid_items = [f"{a.key}={toml_value(v)}" for a, v in zip(axes, values, strict=True)]
            overrides = (*sets, *grid_items)
            try:
                cfg = load_config(path, list(overrides))
            except ConfigError as exc:
                where = f" with {', '.join(grid_items)}" if grid_items else ""
                raise ConfigError(f"batch run {path}{where}: {exc}") from None
            base = _SAFE.sub("_", Path(path).stem).strip("_") or "run"
            name = f"{base}__{_label(axes, values)}" if axes else base
            if name in seen:
                seen[name] += 1
                name = f"{name}-{seen[name]}"
            else:
                seen[name] = 1
            runs.append(BatchRun(name, Path(path), overrides, dict(zip((a.key for a in axes), values, strict=True)), cfg))
    return runs


def summary_row(run: BatchRun, result: BacktestResult) -> dict[str, Any]:
    """One row of the summary table."""
    m = result.metrics
    bench = m.get("benchmark", {}) or {}
    excess = m.get("excess", {}) or {}
    row: dict[str, Any] = {"run": run.name, "config": str(run.config_path), "overrides": " ".join(run.overrides)}
    row.update({k: v for k, v in run.grid.items()})
    row.update({k: m.get(k) for k in SUMMARY_METRICS})
    row["benchmark_total_return"] = bench.get("total_return")
    row["benchmark_sharpe"] = bench.get("sharpe")
    row["excess_total_return"] = excess.get("total_return")
    return row


def summary_frame(runs: Sequence[BatchRun], results: Sequence[BacktestResult]) -> pd.DataFrame:
    """The batch's summary, one row per run, in batch order."""
    return pd.DataFrame([summary_row(r, res) for r, res in zip(runs, results, strict=True)])


def write_batch(out: Path, runs: Sequence[BatchRun], results: Sequence[BacktestResult]) -> dict[str, Path]:
    """Each run's outputs in ``out/<name>/`` and ``summary.csv`` / ``summary.json`` in *out*."""
    from engine.metrics import json_safe
    from engine.report import write_outputs

    out.mkdir(parents=True, exist_ok=True)
    for run, result in zip(runs, results, strict=True):
        write_outputs(result, out / run.name)
    frame = summary_frame(runs, results)
    atomic_write_text(out / "summary.csv", frame.to_csv(index=False))
    payload = [
        {"run": r.name, "config": str(r.config_path), "overrides": list(r.overrides), "grid": r.grid,
         "command": r.command(), "metrics": res.metrics}
        for r, res in zip(runs, results, strict=True)
    ]
    atomic_write_text(out / "summary.json", json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")
    return {"summary.csv": out / "summary.csv", "summary.json": out / "summary.json"}
