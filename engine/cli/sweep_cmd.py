"""CLI: ``sigtrade sweep CONFIG --grid key=a:b:step [--grid key=v1,v2 ...] [options]``.

Runs every combination of the grid on the fast path (the numba kernel, parity-tested
against the event engine), prints a ranked table with trades, turnover and costs per
row and, under it, the overfitting statistics of choosing the best: the number of
configurations tried, the Deflated Sharpe Ratio of the best, the PBO by CSCV and,
with ``--walk-forward``, the stitched out-of-sample result of choosing on each training
window. ``--out DIR`` writes ``results.parquet``, ``results.csv``, ``overfitting.json``,
``config.json`` (the base config, for ``sigtrade diagnose DIR``) and ``report.html`` (:mod:`engine.sweep_report`: the ranked table with the benchmark's
buy-and-hold, the overfitting statistics, the walk-forward, heat maps of every pair of
swept axes and the verify-top comparison, self-contained; ``heatmaps.html`` forwards to
its heat maps); ``--verify-top K`` re-runs the K best in the event engine and shows both
results side by side, and with ``--out`` writes each re-run's own backtest outputs under
``DIR/verify/<config>/``.
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

from engine.cli.cluster_opts import CLUSTER_HELP, task_executor

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


def _write(res: Any, report: Any, metric: str, out: Path) -> None:
    """results.parquet, results.csv, overfitting.json and config.json, each renamed into place once complete.

    config.json is the base config as the sweep read it (file + ``--set``): ``sigtrade diagnose DIR``
    rebuilds the best configurations from it.
    """
    import tempfile

    from engine.metrics import json_safe
    from engine.sweep_report import overfitting_summary

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        res.results.to_parquet(tmp / "results.parquet")
        res.results.to_csv(tmp / "results.csv")
        summary = overfitting_summary(res, report, metric)
        (tmp / "overfitting.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (tmp / "config.json").write_text(
            json.dumps(json_safe({"source": res.source, "config": res.raw}), indent=2) + "\n", encoding="utf-8"
        )
        for name in ("results.parquet", "results.csv", "overfitting.json", "config.json"):
            os.replace(tmp / name, out / name)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _page(
    res: Any, report: Any, metric: str, top: int, out: Path, verify: list[Any] | None, wall: float,
    stats_reason: str | None, console: Console,
) -> Path:
    """Run the benchmark's buy-and-hold and write report.html (and the heatmaps.html that forwards to it)."""
    from engine import catalog as cat
    from engine.errors import DataError
    from engine.runner import benchmark_frames, run_benchmark
    from engine.sweep_report import RunFacts, render_sweep_html, write_sweep_pages

    cfg = res.fast.cfg
    notes: list[str] = []
    try:
        bench = run_benchmark(cfg, benchmark_frames(cfg, res.fast.window, res.fast.history))
    except DataError as exc:  # a sweep needs no benchmark unless a regime filter reads it
        bench = None
        notes.append(f"no buy & hold {cfg.benchmark.symbol} reference: {exc}")
        console.print(f"[yellow]{notes[-1]}[/]", highlight=False)
    refs = _references(res, bench)
    facts = RunFacts(
        wall_seconds=wall, threads=int(os.environ.get("NUMBA_NUM_THREADS") or _threads()),
        synthetic=cat.read_index(cfg.data.catalog).synthetic, stats_reason=stats_reason, notes=notes,
    )
    html = render_sweep_html(
        res, report, metric=metric, top=top, run_facts=facts, references=refs, benchmark=bench, verify=verify
    )
    return write_sweep_pages(out, html)["report.html"]


def _references(res: Any, bench: Any | None) -> list[Any]:
    """The ranked table's reference rows: the benchmark's and the traded universe's buy-and-holds."""
    from engine.sweep_report import reference_row

    cfg = res.fast.cfg
    swept_costs = [a.key for a in res.axes if a.key.startswith("costs.")]
    note = (
        "the event engine over the same window with the same fill timing and the base configuration's costs"
        + (f" (the sweep varies {', '.join(swept_costs)})" if swept_costs else "")
        + ", without the strategy's overlays, as sigtrade backtest runs it"
    )
    from engine.diagnosis import universe_buy_and_hold
    from engine.ledger import build_run

    fast = res.fast
    universe = universe_buy_and_hold(fast)
    universe_run = build_run(universe.fills, fast.window, fast.window_index, fast.capital)
    rows = [] if bench is None else [
        reference_row(
            "benchmark", f"buy & hold {cfg.benchmark.symbol} (benchmark)", bench,
            risk_free_rate=cfg.metrics.risk_free_rate, note=note,
        ),
    ]
    return [
        *rows,
        reference_row(
            "universe", f"equal-weight buy & hold of the {len(universe.symbols)} traded symbols", universe_run,
            risk_free_rate=cfg.metrics.risk_free_rate,
            note="the fast path (numba), equal to the event engine's buy_and_hold of the same symbols, "
                 "bought on the first bar through the base configuration's costs; what a model must beat "
                 "to be worth more than owning its own universe",
        ),
    ]


def _verify(res: Any, metric: str, k: int, console: Console, out: Path | None, executor: Any = None) -> list[Any]:
    """Re-run the K best in the event engine; show kernel vs engine; write each re-run's outputs under OUT/verify/.

    With an *executor* (``--cluster``) each re-run is a task, alone in its worker process.
    """
    from engine.metrics import compute_metrics
    from engine.report import write_outputs
    from engine.runner import run_backtest
    from engine.sweep_report import VerifyRow

    best = list(res.ranked(metric).head(k).index)
    cfgs = [res.config(cid) for cid in best]
    if executor is None:
        results = [run_backtest(cfg) for cfg in cfgs]
    else:
        from engine.cluster import tasks

        results = executor.map(tasks.backtest, cfgs, label="verify-top re-runs", isolate=True, announced=True)

    from engine.sim.fastpath import run_identical

    table = Table(title=f"top {k} by {metric} re-run in the event engine", title_justify="left")
    for c in ("#", "config", "simulator", "Sharpe", "return", "max DD", "trades", "fills", "final equity", "identical"):
        table.add_column(c, justify="right")
    rows: list[Any] = []
    for i, (cid, cfg, result) in enumerate(zip(best, cfgs, results, strict=True), start=1):
        a, kernel_eq, stats = res.fast.trace_fills(cfg)  # the fills are compared; no round trips needed
        km = res.fast.metrics(stats[None, :]).iloc[0]
        event = result.strategy
        em = compute_metrics(event, risk_free_rate=cfg.metrics.risk_free_rate)
        b = event.fills
        same = run_identical(a, kernel_eq, b, event.equity)
        link = None
        if out is not None:
            write_outputs(result, out / "verify" / str(cid))
            link = f"verify/{cid}/report.html"
        keys = ("sharpe", "total_return", "max_drawdown", "trades", "final_equity")
        rows.append(
            VerifyRow(
                rank=i, config=cid, identical=same, report=link,
                kernel={**{key: km[key] for key in keys}, "fills": len(a)},
                event={**{key: em[key] for key in keys}, "fills": len(b)},
            )
        )
        verdict = "[green]fills and equity: yes[/]" if same else "[bold red]NO[/]"
        for name, m, n_fills, mark in (("kernel", km, len(a), ""), ("event engine", em, len(b), verdict)):
            table.add_row(
                str(i) if name == "kernel" else "", str(cid) if name == "kernel" else "", name,
                _num(m["sharpe"]), _pct(m["total_return"]), _pct(m["max_drawdown"]), f"{int(m['trades']):,}",
                f"{n_fills:,}", f"{m['final_equity']:,.2f}", mark,
            )
    console.print(table)
    return rows


def sweep(
    config: Path = typer.Argument(..., help="Backtest config (TOML) of a signal strategy."),
    grid: list[str] = typer.Option([], "--grid", help="key=LOW:HIGH:STEP (inclusive) or key=v1,v2,... (repeatable)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field of the base config (repeatable)."),
    metric: str = typer.Option("sharpe", "--metric", help="Rank by sharpe, total_return, calmar or sortino."),
    top: int = typer.Option(20, "--top", min=1, max=100_000, help="Rows of the ranked table."),
    out: Path | None = typer.Option(None, "--out", help="Write results.parquet/.csv, overfitting.json and report.html here."),
    verify_top: int = typer.Option(0, "--verify-top", min=0, max=1_000, help="Re-run the K best in the event engine, side by side (with --out: each re-run's outputs in DIR/verify/<config>/)."),
    jobs: int = typer.Option(0, "--jobs", min=0, max=1_024, help="numba threads (0 = all cores)."),
    walk_forward: str | None = typer.Option(None, "--walk-forward", help="e.g. train=12M,test=3M: choose on each train window, report the stitched test result."),
    pbo_blocks: int = typer.Option(16, "--pbo-blocks", min=2, max=24, help="CSCV blocks S of the PBO (even)."),
    no_stats: bool = typer.Option(False, "--no-stats", help="Skip DSR / PBO / walk-forward (no equity paths kept)."),
    max_memory: float = typer.Option(4.0, "--max-memory", min=0.01, max=1_024, help="Memory budget of the results, GiB."),
    cluster: str | None = typer.Option(None, "--cluster", help=CLUSTER_HELP),
) -> None:
    """Sweep a signal strategy's thresholds, overlays and regime filters on the fast path.

    With --cluster the grid is split into chunks, one Ray task each (the prepared arrays go
    to the object store once); walk-forward windows and --verify-top re-runs are tasks too.
    The results are the same, bit for bit.
    """

    t_start = time.perf_counter()
    from engine.config import apply_overrides, load_config, read_toml
    from engine.errors import ConfigError
    from engine.sim.grid import check_values, parse_grid
    from engine.sim.sweep import METRICS

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
    raw = apply_overrides(read_toml(config), set_)
    check_values(raw, axes, str(config))  # every swept value, before the model is scored
    if jobs:
        import numba

        numba.set_num_threads(min(jobs, numba.config.NUMBA_NUM_THREADS))
    console = Console(stderr=True, emoji=False)
    stdout = Console(emoji=False) if Console(emoji=False).is_terminal else Console(width=200, emoji=False)
    with task_executor(cluster, console) as executor:
        _run(base_cfg, raw, axes, config, spec, metric, top, out, verify_top, pbo_blocks, no_stats, max_memory,
             console, stdout, executor, t_start)


def _walk_forward_windows(index: Any, spec: Any) -> int:
    """How many walk-forward windows the data hold: at least one, or a ConfigError before any kernel runs."""
    from engine.errors import ConfigError, DataError
    from engine.stats.walk_forward import walk_forward_windows

    try:
        return len(walk_forward_windows(index, spec))
    except DataError as exc:  # its message starts "walk-forward <spec>: ..."
        raise ConfigError(f"--{exc}") from None


def _run(
    base_cfg: Any, raw: dict[str, Any], axes: Any, config: Path, spec: Any, metric: str, top: int, out: Path | None,
    verify_top: int, pbo_blocks: int, no_stats: bool, max_memory: float, console: Console, stdout: Console,
    executor: Any, t_start: float,
) -> None:
    from engine.sim.grid import grid_size
    from engine.sim.sweep import load_fastpath, never_allowing_regimes, plan, run_sweep

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal or executor is not None,
    ) as bar:
        task = bar.add_task("sweep", total=1.0)

        def progress(phase: str, frac: float) -> None:
            bar.update(task, description=_PHASES.get(phase, phase), completed=frac)

        fast = load_fastpath(base_cfg, _score, progress)
        n_windows = _walk_forward_windows(fast.window_index[1:], spec) if spec is not None else 0
        p = plan(fast, grid_size(axes), not no_stats, int(max_memory * 2**30))
        console.print(f"[dim]{p.describe()}[/]", highlight=False)
        for label in never_allowing_regimes(fast, raw, axes, str(config)):
            console.print(f"[bold yellow]warning:[/] the regime filter never allows an entry with {label}: those configurations cannot trade", highlight=False)
        if executor is not None:
            executor.expect(n_windows + min(verify_top, p.n_configs))  # one bar over all the tasks
        t0 = time.perf_counter()
        res = run_sweep(fast, raw, axes, str(config), p, progress, executor=executor)
        wall = time.perf_counter() - t0
    stdout.print(_ranked_table(res, metric, top))
    rate = res.steps / res.seconds if res.seconds > 0 else float("nan")
    if executor is None:
        where = f"on {os.environ.get('NUMBA_NUM_THREADS') or _threads()} thread(s)); kernel ready in {res.jit_seconds:,.2f} s (JIT or cache"
    else:
        where = f"on {executor.cpus} cluster CPU(s), {'; '.join(res.notes)}"
    stdout.print(
        f"[dim]{len(res.results):,} configurations in {res.seconds:,.2f} s of simulation "
        f"({rate:,.3g} bar x symbol steps/s {where}); {wall:,.1f} s in all[/]",
        highlight=False,
    )
    report = None
    stats_reason = "the sweep ran with --no-stats (no equity paths kept); run it without --no-stats for the DSR, the PBO and the walk-forward" if no_stats else None
    if not no_stats:
        from engine.errors import DataError
        from engine.stats import overfitting_report

        mapper = None
        if executor is not None and spec is not None:
            from engine.cluster import tasks

            def mapper(x: Any, m: Any, windows: Any) -> Any:
                return executor.map(tasks.walk_forward_window, windows, shared=(x, m), label="walk-forward windows", announced=True)

        try:
            report = overfitting_report(
                res.returns(), n_blocks=pbo_blocks, walk_forward_spec=spec, periods_per_year=fast.periods_per_year,
                map_windows=mapper,
            )
        except DataError as exc:
            stats_reason = str(exc)
            stdout.print(f"[yellow]overfitting statistics not computed: {exc}[/]", highlight=False)
    for line in _stats_lines(res, report, metric):
        stdout.print(line, highlight=False, soft_wrap=True)
    if out is not None:
        _write(res, report, metric, out)
        stdout.print(f"results: {out / 'results.parquet'}, {out / 'results.csv'}, {out / 'overfitting.json'}")
    rows = _verify(res, metric, verify_top, stdout, out, executor) if verify_top else None
    if out is not None:
        page = _page(res, report, metric, top, out, rows, time.perf_counter() - t_start, stats_reason, stdout)
        stdout.print(f"report: {page}")
    if rows is not None and not all(r.identical for r in rows):
        stdout.print("[bold red]the event engine disagrees with the kernel: this is a bug, please report it[/]")
        raise typer.Exit(1)


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def register(app: typer.Typer) -> None:
    """Register ``sweep`` on *app*."""
    app.command("sweep")(sweep)
