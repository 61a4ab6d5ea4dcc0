"""CLI: ``sigtrade sweep CONFIG --grid key=a:b:step [--grid key=v1,v2 ...] [options]``.

Runs every combination of the grid on the fast path (the numba kernel, parity-tested
against the event engine), prints a ranked table with trades, turnover and costs per
row and, under it, the overfitting statistics of choosing the best: the number of
configurations tried, the Deflated Sharpe Ratio of the best, the PBO by CSCV and,
with ``--walk-forward``, the stitched out-of-sample result of choosing on each training
window. ``--out DIR`` writes ``results.parquet``, ``results.csv``, ``overfitting.json``
and ``heatmaps.html`` (every pair of swept axes, self-contained); ``--verify-top K``
re-runs the K best in the event engine and shows both results side by side.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

_PHASES = {"load": "loading bars", "model": "scoring the model", "simulate": "simulating configurations"}
_FIG = {
    "sharpe": "Sharpe", "sortino": "Sortino", "total_return": "return", "calmar": "Calmar",
    "max_drawdown": "max DD", "trades": "trades", "turnover": "turnover", "costs": "costs",
}


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:,.2f} %"


def _num(x: Any, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _score(cfg: Any, history: dict[str, Any]) -> tuple[dict[str, Any], int | None, float]:
    """Probabilities exactly as the signal strategy's batch mode computes them (a plug-in, like strategies)."""
    from engine.strategy_registry import resolve

    return resolve("strategies.signal:sweep_inputs")(cfg, history)  # type: ignore[no-any-return]


def _ranked_table(res: Any, metric: str, top: int) -> Table:
    ranked = res.ranked(metric).head(top)
    table = Table(title=f"best {len(ranked)} of {len(res.results):,} by {metric}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("config", justify="right")
    for ax in res.axes:
        table.add_column(ax.key.split(".", 1)[1] if ax.key.count(".") else ax.key, justify="right")
    for key in ("sharpe", "total_return", "max_drawdown", "calmar", "trades", "turnover", "costs"):
        table.add_column(_FIG[key] + (" *" if key == metric else ""), justify="right")
    for i, (cid, row) in enumerate(ranked.iterrows(), start=1):
        cells = [str(i), str(cid), *[_value(row[ax.key]) for ax in res.axes]]
        cells += [
            _num(row["sharpe"]), _pct(row["total_return"]), _pct(row["max_drawdown"]), _num(row["calmar"]),
            f"{int(row['trades']):,}", _num(row["turnover"], 1), f"${row['costs']:,.0f}",
        ]
        table.add_row(*cells)
    return table


def _stats_lines(res: Any, report: Any, metric: str) -> list[str]:
    P = res.fast.periods_per_year
    root = math.sqrt(P)
    lines = [f"configurations tried: {len(res.results):,}" + (f" ({res.skipped:,} combinations skipped: {res.skipped_example})" if res.skipped else "")]
    if report is None:
        return lines
    d = report.dsr
    best = report.best_config
    lines.append(
        f"best by Sharpe: config {best} (Sharpe {report.best_sharpe * root:,.2f} annualised"
        + (f"; the table is ranked by {metric})" if metric != "sharpe" else ")")
    )
    if d is not None:
        lines.append(
            f"Deflated Sharpe Ratio of the best: {d.dsr:.3f} (probability its true Sharpe > 0 after "
            f"{d.n_trials:,} trials; the best of {d.n_trials:,} pure-noise trials is expected at Sharpe "
            f"{d.sr0 * root:,.2f}; PSR without deflation {d.psr:.3f})"
        )
    if report.pbo is not None:
        pb = report.pbo
        verdict = "likely overfit" if pb.pbo > 0.5 else "not obviously overfit" if pb.pbo < 0.2 else "doubtful"
        lines.append(
            f"PBO (CSCV, S={pb.n_blocks}, {pb.n_combinations:,} splits): {pb.pbo:.3f} - {verdict}; "
            f"the in-sample winner's out-of-sample Sharpe is negative in {pb.prob_oos_loss * 100:.0f} % of splits"
        )
    wf = report.walk_forward
    if wf is not None:
        s = wf.summary
        lines.append(
            f"walk-forward {s['spec']}: {s['n_windows']} windows, {s['distinct_choices']} distinct choice(s); "
            f"stitched out-of-sample Sharpe {_num(s.get('oos_sharpe_annualised'))}, return {_pct(s.get('oos_total_return'))} "
            f"vs in-sample best (config {s['is_best_config']}) on the same bars: Sharpe "
            f"{_num(s.get('is_best_on_oos_sharpe_annualised'))}, return {_pct(s.get('is_best_on_oos_total_return'))}"
        )
    lines += [f"note: {n}" for n in report.notes]
    return lines


def _heatmaps(res: Any, metric: str, path: Path) -> None:
    import plotly.graph_objects as go
    import plotly.io as pio

    keys = [a.key for a in res.axes if len(a.values) > 1]
    parts: list[str] = []
    figs: list[Any] = []
    df = res.results
    if len(keys) == 1:
        best = df.groupby(keys[0])[metric].max()
        figs.append(go.Figure(go.Scatter(x=best.index, y=best.to_numpy(), mode="lines+markers"))
                    .update_layout(title=f"{metric} by {keys[0]}", xaxis_title=keys[0], yaxis_title=metric))
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            pivot = df.pivot_table(index=a, columns=b, values=metric, aggfunc="max")
            figs.append(
                go.Figure(go.Heatmap(z=pivot.to_numpy(), x=[str(c) for c in pivot.columns], y=[str(r) for r in pivot.index],
                                     colorscale="RdYlGn", colorbar={"title": metric}))
                .update_layout(title=f"best {metric} over the other axes: {a} x {b}", xaxis_title=b, yaxis_title=a,
                               xaxis_type="category", yaxis_type="category")
            )
    for j, fig in enumerate(figs):
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs="inline" if j == 0 else False))
    body = "\n".join(parts) or "<p>Only one value per axis: nothing to plot.</p>"
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>sigtrade sweep heatmaps</title></head>"
        f"<body><h1>sigtrade sweep: {metric}</h1>{body}</body></html>",
        encoding="utf-8",
    )


def _write(res: Any, report: Any, metric: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    res.results.to_parquet(out / "results.parquet")
    res.results.to_csv(out / "results.csv")
    _heatmaps(res, metric, out / "heatmaps.html")
    summary = {
        "configs": len(res.results),
        "skipped": res.skipped,
        "axes": {a.key: list(a.values) for a in res.axes},
        "metric": metric,
        "overfitting": None if report is None else report.summary(),
    }
    from engine.metrics import json_safe

    (out / "overfitting.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")


def _verify(res: Any, metric: str, k: int, console: Console) -> bool:
    """Re-run the K best in the event engine; show kernel vs engine; True when all match."""
    from engine.metrics import compute_metrics
    from engine.runner import run_backtest

    cols = ["ts", "symbol", "side", "qty", "price", "commission", "exit_reason"]
    table = Table(title=f"top {k} by {metric} re-run in the event engine", title_justify="left")
    for c in ("#", "config", "simulator", "Sharpe", "return", "max DD", "trades", "fills", "final equity", "identical"):
        table.add_column(c, justify="right")
    ok_all = True
    for i, (cid, _row) in enumerate(res.ranked(metric).head(k).iterrows(), start=1):
        cfg = res.config(cid)
        kernel, kernel_eq, stats = res.fast.trace(cfg)
        km = res.fast.metrics(stats[None, :]).iloc[0]
        event = run_backtest(cfg).strategy
        em = compute_metrics(event, risk_free_rate=cfg.metrics.risk_free_rate)
        a, b = kernel.fills[cols].reset_index(drop=True), event.fills[cols].reset_index(drop=True)
        same = len(a) == len(b) and bool((a == b).all().all()) and bool((kernel_eq.to_numpy() == event.equity.to_numpy()).all())
        ok_all &= same
        verdict = "[green]fills and equity: yes[/]" if same else "[bold red]NO[/]"
        for name, m, n_fills, mark in (("kernel", km, len(a), ""), ("event engine", em, len(b), verdict)):
            table.add_row(
                str(i) if name == "kernel" else "", str(cid) if name == "kernel" else "", name,
                _num(m["sharpe"]), _pct(m["total_return"]), _pct(m["max_drawdown"]), f"{int(m['trades']):,}",
                f"{n_fills:,}", f"{m['final_equity']:,.2f}", mark,
            )
    console.print(table)
    return ok_all


def sweep(
    config: Path = typer.Argument(..., help="Backtest config (TOML) of a signal strategy."),
    grid: list[str] = typer.Option([], "--grid", help="key=a:b:step (inclusive) or key=v1,v2,... (repeatable)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field of the base config (repeatable)."),
    metric: str = typer.Option("sharpe", "--metric", help="Rank by sharpe, total_return, calmar or sortino."),
    top: int = typer.Option(20, "--top", min=1, help="Rows of the ranked table."),
    out: Path | None = typer.Option(None, "--out", help="Write results.parquet/.csv, overfitting.json, heatmaps.html here."),
    verify_top: int = typer.Option(0, "--verify-top", min=0, help="Re-run the K best in the event engine, side by side."),
    jobs: int = typer.Option(0, "--jobs", min=0, help="numba threads (0 = all cores)."),
    walk_forward: str | None = typer.Option(None, "--walk-forward", help="e.g. train=12M,test=3M: choose on each train window, report the stitched test result."),
    pbo_blocks: int = typer.Option(16, "--pbo-blocks", min=2, help="CSCV blocks S of the PBO (even)."),
    no_stats: bool = typer.Option(False, "--no-stats", help="Skip DSR / PBO / walk-forward (no equity paths kept)."),
    max_memory: float = typer.Option(4.0, "--max-memory", min=0.01, help="Memory budget of the results, GiB."),
) -> None:
    """Sweep a signal strategy's thresholds, overlays and regime filters on the fast path."""
    import tomllib

    from engine.config import apply_overrides, load_config
    from engine.errors import ConfigError
    from engine.sim.grid import check_values, grid_size, parse_grid
    from engine.sim.sweep import METRICS, load_fastpath, never_allowing_regimes, plan, run_sweep

    if metric not in METRICS:
        from engine.errors import did_you_mean

        raise ConfigError(f"--metric '{metric}' is not one of {', '.join(METRICS)}{did_you_mean(metric, METRICS)}")
    if walk_forward is not None and no_stats:
        raise ConfigError("--walk-forward needs the equity paths: drop --no-stats")
    spec = None
    if walk_forward is not None:
        from engine.stats import parse_walk_forward

        spec = parse_walk_forward(walk_forward)
    axes = parse_grid(grid)
    base_cfg = load_config(config, set_)  # validates the file and the overrides
    if out is not None:
        from engine.outputs import check_output_dir

        check_output_dir(out, "--out", protected=[base_cfg.data.catalog])
    raw = apply_overrides(tomllib.loads(Path(config).read_text(encoding="utf-8")), set_)
    check_values(raw, axes, str(config))  # every swept value, before the model is scored
    if jobs:
        import numba

        numba.set_num_threads(min(jobs, numba.config.NUMBA_NUM_THREADS))
    console = Console(stderr=True, emoji=False)
    stdout = Console(emoji=False) if Console(emoji=False).is_terminal else Console(width=200, emoji=False)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("sweep", total=1.0)

        def progress(phase: str, frac: float) -> None:
            bar.update(task, description=_PHASES.get(phase, phase), completed=frac)

        fast = load_fastpath(base_cfg, _score, progress)
        p = plan(fast, grid_size(axes), not no_stats, int(max_memory * 2**30))
        console.print(f"[dim]{p.describe()}[/]", highlight=False)
        for label in never_allowing_regimes(fast, raw, axes, str(config)):
            console.print(f"[bold yellow]warning:[/] the regime filter never allows an entry with {label}: those configurations cannot trade", highlight=False)
        t0 = time.perf_counter()
        res = run_sweep(fast, raw, axes, str(config), p, progress)
        wall = time.perf_counter() - t0
    stdout.print(_ranked_table(res, metric, top))
    rate = res.steps / res.seconds if res.seconds > 0 else float("nan")
    stdout.print(
        f"[dim]{len(res.results):,} configurations in {res.seconds:,.2f} s of simulation "
        f"({rate:,.3g} bar x symbol steps/s on {os.environ.get('NUMBA_NUM_THREADS') or _threads()} thread(s)); "
        f"kernel ready in {res.jit_seconds:,.2f} s (JIT or cache); {wall:,.1f} s in all[/]",
        highlight=False,
    )
    report = None
    if not no_stats:
        from engine.errors import DataError
        from engine.stats import overfitting_report

        try:
            report = overfitting_report(
                res.returns(), n_blocks=pbo_blocks, walk_forward_spec=spec, periods_per_year=fast.periods_per_year
            )
        except DataError as exc:
            stdout.print(f"[yellow]overfitting statistics not computed: {exc}[/]", highlight=False)
    for line in _stats_lines(res, report, metric):
        stdout.print(line, highlight=False, soft_wrap=True)
    if out is not None:
        _write(res, report, metric, out)
        stdout.print(f"results: {out / 'results.parquet'}, {out / 'results.csv'}, {out / 'heatmaps.html'}")
    if verify_top:
        if not _verify(res, metric, verify_top, stdout):
            stdout.print("[bold red]the event engine disagrees with the kernel: this is a bug, please report it[/]")
            raise typer.Exit(1)


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def register(app: typer.Typer) -> None:
    """Register ``sweep`` on *app*."""
    app.command("sweep")(sweep)
