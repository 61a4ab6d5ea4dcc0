"""CLI: ``sigtrade backtest CONFIG [--set key=value]... [--out DIR] [--json]``.

With ``--out`` each run is also diagnosed (``[diagnosis]``, :mod:`engine.diagnosis`): the
report gets a Diagnosis section and the folder a ``diagnosis.json`` that ``sigtrade
diagnose DIR`` prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.cluster_opts import CLUSTER_HELP, task_executor

_PHASES = {"load": "loading bars", "prepare": "building the event stream", "model": "scoring the model", "simulate": "event loop",
           "metrics": "metrics", "diagnosis": "diagnosis (fast path: cost curve, controls)"}


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
    configs: list[Path] = typer.Argument(..., help="Backtest config(s) (TOML), e.g. config/demo.toml; several = a batch."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set costs.slippage_bps=0 (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Write metrics.json, config.json, curves, fills, trades, report.html and diagnosis.json here (a batch: one folder per run + summary.csv/.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout (a batch: a list)."),
    replay_dir: Path | None = typer.Option(None, "--replay", help="Replay a recorded paper session's bars (sigtrade paper --record DIR) and compare decisions."),
    grid: list[str] = typer.Option([], "--grid", help="A batch: key=v1,v2,... or a range key=0.1:0.5:0.1 (inclusive) over any config key, one backtest per combination (repeatable)."),
    cluster: str | None = typer.Option(None, "--cluster", help=CLUSTER_HELP),
) -> None:
    """Run an event-driven backtest and compare it with buy-and-hold of the benchmark.

    Several CONFIG files and/or --grid make a batch: every file x grid combination is one
    backtest (one after another here, or one Ray task each with --cluster), each writing
    its own --out folder, with one summary table for all.
    """
    from engine.config import load_config

    if replay_dir is not None:
        if len(configs) != 1 or grid:
            from engine.errors import ConfigError

            raise ConfigError("--replay takes one CONFIG (or '-') and no --grid")
        _replay(configs[0], set_, replay_dir, out)
        return
    if len(configs) > 1 or grid or cluster is not None:
        _batch(configs, set_, grid, out, as_json, cluster)
        return
    from engine.report import write_outputs
    from engine.runner import run_backtest

    config = configs[0]
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
        if out is not None and cfg.diagnosis.enabled:
            from engine.cli.diagnose_cmd import signal_loader
            from engine.diagnosis import diagnose

            progress("diagnosis", 0.0)
            result.diagnosis = diagnose(result, cfg, signal_loader=signal_loader())
            result.timings["diagnosis"] = result.diagnosis.data["timings"]["total"]
            progress("diagnosis", 1.0)
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
    if result.diagnosis is not None:
        stdout.print(f"[bold]diagnosis:[/] {result.diagnosis.data['verdict']['text']}", highlight=False, soft_wrap=True)
    if out is not None:
        stdout.print(f"report: {out / 'report.html'}" + (f" (diagnosis: sigtrade diagnose {out})" if result.diagnosis is not None else ""),
                     highlight=False)


def _batch(configs: list[Path], sets: list[str], grid: list[str], out: Path | None, as_json: bool, cluster: str | None) -> None:
    """Several backtests: plan and validate all, run each as a task, write each folder and the summary."""
    from engine.batch import plan_batch, summary_frame, write_batch
    from engine.cluster import tasks
    from engine.metrics import json_safe
    from engine.outputs import check_output_dir
    from engine.sim.grid import parse_grid

    axes = parse_grid(grid, fast_path=False)
    runs = plan_batch(configs, sets, axes)
    if out is not None:
        check_output_dir(out, "--out", protected=sorted({r.cfg.data.catalog for r in runs if r.cfg is not None}))
    console = Console(stderr=True, emoji=False)
    with task_executor(cluster, console, local=True) as executor:
        results = executor.map(  # every run written with --out is diagnosed, where it runs
            tasks.backtest, [r.cfg for r in runs], shared={"diagnose": out is not None}, label="backtests", isolate=True
        )
    if out is not None:
        write_batch(out, runs, results)
    if as_json:
        payload = [{"run": r.name, "command": r.command(), "metrics": res.metrics} for r, res in zip(runs, results, strict=True)]
        sys.stdout.write(json.dumps(json_safe(payload), indent=2) + "\n")
        return
    frame = summary_frame(runs, results)
    synthetic = any(res.synthetic for res in results)
    table = Table(title=f"{'SYNTHETIC DATA - ' if synthetic else ''}{len(runs)} backtest(s)", title_justify="left")
    cols = ["run", "total_return", "sharpe", "max_drawdown", "trades", "commission_paid", "benchmark_total_return", "excess_total_return"]
    for c in cols:
        table.add_column(c, justify="left" if c == "run" else "right")
    for row in frame.to_dict("records"):
        key = {"benchmark_total_return": "total_return", "excess_total_return": "total_return"}
        table.add_row(*[str(row["run"]) if c == "run" else _fmt(key.get(c, c), row.get(c)) for c in cols])
    stdout = Console(emoji=False) if Console(emoji=False).is_terminal else Console(width=200, emoji=False)
    stdout.print(table)
    if out is not None:
        stdout.print(f"summary: {out / 'summary.csv'}, {out / 'summary.json'}; one folder per run in {out}", highlight=False)


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
        from engine.outputs import atomic_write_text

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
