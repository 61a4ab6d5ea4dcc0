"""CLI: ``sigtrade backtest CONFIG [--set key=value]... [--out DIR] [--json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_PHASES = {"load": "loading bars", "prepare": "building the event stream", "model": "scoring the model", "simulate": "event loop", "metrics": "metrics"}


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure"}:
        return f"{value * 100:,.2f} %"
    if key in {"commission_paid", "slippage_paid", "avg_trade"}:
        return f"${value:,.2f}"
    if key == "max_drawdown_duration":
        return f"{value:,.1f} d"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


SUMMARY_KEYS = [
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration", "calmar", "trades", "win_rate", "profit_factor", "avg_trade",
    "turnover", "exposure", "commission_paid", "slippage_paid",
]


def summary_table(metrics: dict[str, Any], title: str, benchmark_symbol: str) -> Table:
    """A rich table: strategy, benchmark and difference side by side."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("strategy", justify="right")
    table.add_column(f"buy & hold {benchmark_symbol}", justify="right")
    table.add_column("difference", justify="right")
    bench = metrics.get("benchmark", {})
    excess = metrics.get("excess", {})
    for key in SUMMARY_KEYS:
        table.add_row(key, _fmt(key, metrics.get(key)), _fmt(key, bench.get(key)), _fmt(key, excess.get(key)))
    return table


def backtest(
    config: Path = typer.Argument(..., help="Backtest config (TOML), e.g. config/demo.toml."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set costs.slippage_bps=0 (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Write metrics.json, curves, fills, trades and report.html here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout."),
    replay_dir: Path | None = typer.Option(None, "--replay", help="Replay a recorded paper session's bars (sigtrade paper --record DIR) and compare decisions."),
) -> None:
    """Run an event-driven backtest and compare it with buy-and-hold of the benchmark."""
    from engine.config import load_config

    if replay_dir is not None:
        _replay(config, set_, replay_dir, out)
        return
    from engine.report import write_outputs
    from engine.runner import run_backtest

    cfg = load_config(config, set_)
    if out is not None:
        from engine.outputs import check_output_dir

        check_output_dir(out, "--out", protected=[cfg.data.catalog])
    console = Console(stderr=True, emoji=False)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("backtest", total=1.0)

        def progress(phase: str, frac: float) -> None:
            bar.update(task, description=_PHASES.get(phase, phase), completed=frac)

        result = run_backtest(cfg, progress=progress)
    if out is not None:
        write_outputs(result, out)
    if as_json:
        sys.stdout.write(json.dumps(result.metrics, indent=2, sort_keys=False) + "\n")
        return
    stdout = Console(emoji=False)
    label = "SYNTHETIC DATA - " if result.synthetic else ""
    title = f"{label}{cfg.strategy.kind} on {len(result.symbols)} symbol(s), {cfg.data.bar} bars"
    stdout.print(summary_table(result.metrics, title, result.benchmark_symbol))
    if result.synthetic:
        stdout.print("[bold yellow]These results come from the synthetic sample catalog, not from market data.[/]")
    if out is not None:
        stdout.print(f"report: {out / 'report.html'}")


def _replay(config: Path, set_: list[str], path: Path, out: Path | None) -> None:
    """Replay *path*'s bars with *config* (the recorded one when CONFIG is '-'); exit 1 on any difference."""
    from engine.config import load_config
    from engine.replay import compare_decisions, read_jsonl, replay

    cfg = None if str(config) == "-" else load_config(config, set_)
    if out is not None:
        from engine.outputs import check_output_dir

        check_output_dir(out, "--out", protected=[path])
    replayed = replay(path, cfg)
    recorded = read_jsonl(path / "decisions.jsonl")
    diffs = compare_decisions(recorded, replayed)
    stdout = Console(emoji=False)
    if out is not None:
        from engine.catalog import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "replay_decisions.json", json.dumps(replayed, indent=1))
    actions = sum(1 for r in replayed if r["action"] != "hold")
    if diffs:
        stdout.print(f"replay of {path}: {len(diffs)} difference(s) between the paper session and the backtest:",
                     markup=False, soft_wrap=True)
        for line in diffs[:50]:
            stdout.print(f"  {line}", markup=False)
        raise typer.Exit(1)
    stdout.print(f"replay of {path}: {len(replayed)} decision(s) ({actions} order(s)) identical to the paper session's",
                 markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Register ``backtest`` on *app*."""
    app.command("backtest")(backtest)
