"""Diagnoses of saved runs: a ``sigtrade backtest --out`` folder and a ``sigtrade sweep --out`` folder.

A backtest folder holds ``diagnosis.json`` (written with the run) and ``config.json``;
:func:`confirm_saved` re-runs the event engine at its break-even cost. A sweep folder holds
``results.parquet``, ``overfitting.json`` (axes, metric) and ``config.json`` (the base
config as the sweep read it); :func:`diagnose_sweep` rebuilds its universe once, replays
each of the best configurations on the fast path - fills and equity bit-identical to the
event engine's (tests/engine/test_parity_real.py) - and diagnoses each like a backtest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine import catalog as cat
from engine.config import BacktestConfig, config_from_dict, config_to_dict
from engine.diagnosis.build import Diagnosis, diagnose
from engine.diagnosis.context import SignalInputs, SignalLoader
from engine.diagnosis.replay import FAST_BOOKS
from engine.errors import ConfigError, DataError
from engine.jsonfiles import read_json as read_saved_json
from engine.outputs import atomic_write_text
from engine.report import DIAGNOSIS_FILE

Progress = Callable[[str, float], None]


def _noop(_: str, __: float) -> None:
    return None


def read_json(path: Path) -> Any:
    """A JSON file of a saved run (an object), or a DataError naming it."""
    return read_saved_json(path, fix="re-run the command that wrote it", expect=dict)


def folder_kind(folder: Path) -> str:
    """``"backtest"`` or ``"sweep"``; a ConfigError that says what the folder lacks otherwise."""
    if not folder.is_dir():
        raise ConfigError(f"'{folder}' is not a folder: pass the --out folder of `sigtrade backtest` or `sigtrade sweep`")
    if (folder / "results.parquet").is_file() and (folder / "overfitting.json").is_file():
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"{folder} is a sweep folder without config.json (written by an older sigtrade): re-run "
                "`sigtrade sweep CONFIG ... --out DIR` to diagnose its configurations"
            )
        return "sweep"
    if (folder / DIAGNOSIS_FILE).is_file():
        return "backtest"
    if (folder / "metrics.json").is_file():
        raise ConfigError(
            f"{folder} holds a backtest without {DIAGNOSIS_FILE} (diagnosis.enabled = false, or an older sigtrade): "
            "re-run `sigtrade backtest CONFIG --out DIR`"
        )
    raise ConfigError(f"{folder} holds neither a backtest ({DIAGNOSIS_FILE}) nor a sweep (results.parquet): pass an --out folder")


def saved_config(folder: Path) -> BacktestConfig:
    """The config a backtest folder was run with (its config.json)."""
    return config_from_dict(read_json(folder / "config.json"), str(folder / "config.json"))


def confirm_saved(folder: Path) -> dict[str, Any]:
    """Re-run the event engine at the saved break-even cost; record it in diagnosis.json; return the diagnosis."""
    from engine.diagnosis import verdict
    from engine.diagnosis.costs import confirm
    from engine.metrics import compute_metrics, json_safe
    from engine.runner import run_backtest

    data = read_json(folder / DIAGNOSIS_FILE)
    cfg = saved_config(folder)
    be = data["costs"]["break_even"]

    def run(c: BacktestConfig) -> dict[str, Any]:
        return compute_metrics(run_backtest(c).strategy, risk_free_rate=c.metrics.risk_free_rate)

    be["confirmation"] = json_safe(confirm(cfg, be, run))
    data["verdict"] = verdict.section(data)
    atomic_write_text(folder / DIAGNOSIS_FILE, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return dict(data)


@dataclass
class SweepFolder:
    """A saved sweep: its base config, axes, metric and results table."""

    raw: dict[str, Any]
    source: str
    axes: list[Any]
    metric: str
    results: pd.DataFrame

    def best(self, top: int, metric: str | None = None) -> list[tuple[int, BacktestConfig]]:
        """The *top* configurations by *metric* (default: the sweep's), best first, as configs."""
        from engine.sim.grid import config_for

        m = metric or self.metric
        if m not in self.results.columns:
            raise ConfigError(f"--metric '{m}' is not a column of results.parquet ({', '.join(map(str, self.results.columns))})")
        ranked = self.results.sort_values(m, ascending=False, na_position="last", kind="stable").head(top)
        out = []
        for cid, row in ranked.iterrows():
            values = [row[a.key].item() if hasattr(row[a.key], "item") else row[a.key] for a in self.axes]
            out.append((int(cid), config_for(self.raw, self.axes, values, self.source)))
        return out


def read_sweep(folder: Path) -> SweepFolder:
    """Load a sweep --out folder."""
    from engine.sim.grid import Axis

    saved = read_json(folder / "config.json")
    over = read_json(folder / "overfitting.json")
    try:
        results = pd.read_parquet(folder / "results.parquet")
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / 'results.parquet'} is not readable ({exc}); re-run the sweep") from exc
    axes = [Axis(key, tuple(values)) for key, values in (over.get("axes") or {}).items()]
    return SweepFolder(raw=dict(saved["config"]), source=str(saved.get("source", folder / "config.json")),
                       axes=axes, metric=str(over.get("metric", "sharpe")), results=results)


def diagnose_sweep(
    folder: Path, top: int, metric: str | None, loader: SignalLoader, progress: Progress = _noop
) -> list[tuple[int, Any, Diagnosis]]:
    """Diagnose the *top* configurations of a sweep folder: ``(config id, BacktestResult, Diagnosis)`` each."""
    from engine.metrics import compare, compute_metrics
    from engine.results import BacktestResult, RunInputs
    from engine.runner import benchmark_frames, benchmark_history, load_window, run_benchmark
    from engine.sim.fastpath import FastPath
    from engine.strategy_registry import warmup_bars

    sw = read_sweep(folder)
    chosen = sw.best(top, metric)
    base = config_from_dict(sw.raw, sw.source)
    symbols = cat.resolve_symbols(base.data.catalog, base.data.bar, base.data.symbols)
    window, full, history = load_window(base.data.catalog, symbols, base.data.bar, base.data.start, base.data.end, warmup_bars(base))
    progress("load", 1.0)
    described = loader(base, history)
    sig = SignalInputs.from_mapping(described)
    progress("model", 1.0)
    bench_sym = base.benchmark.symbol
    b_frames = benchmark_frames(base, window, history)
    bench_hist = b_frames[2][bench_sym]
    fast = FastPath(base, window, full, history, sig.probabilities, benchmark_history(base, history), sig.label_horizon,
                    sig.card_threshold)
    bench_run = run_benchmark(base, b_frames)
    synthetic = cat.read_index(base.data.catalog).synthetic
    out = []
    for i, (cid, cfg) in enumerate(chosen):
        run, _, _ = fast.trace(cfg)
        run.signal = dict(described)
        rf = cfg.metrics.risk_free_rate
        result = BacktestResult(
            strategy=run, benchmark=bench_run,
            metrics=compare(compute_metrics(run, risk_free_rate=rf), compute_metrics(bench_run, risk_free_rate=rf)),
            config=config_to_dict(cfg), synthetic=synthetic, symbols=symbols, benchmark_symbol=bench_sym,
            inputs=RunInputs(window=window, full=full, history=history, bench_history=bench_hist),
        )
        result.diagnosis = diagnose(result, cfg, fast=fast, source=FAST_BOOKS)
        out.append((cid, result, result.diagnosis))
        progress("diagnose", (i + 1) / len(chosen))
    return out
