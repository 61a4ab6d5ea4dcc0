"""CLI: ``sigtrade tune CONFIG --trials N [--storage URL] [--study NAME]`` - Optuna search.

Like the other research commands, the research stack (torch, optuna, mlflow) is loaded
by module name at run time, so ``engine`` never imports it and ``--help`` works on a
core-only install; a missing extra is a :class:`~engine.errors.MissingExtraError` with
the install hint. Several processes given the same ``--storage`` (a PostgreSQL or MySQL
URL) and ``--study`` join one study, on one machine or many.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.cluster_opts import CLUSTER_HELP
from engine.cli.research_cmd import _research

console = Console(stderr=True, emoji=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    return str(value)


def tune(
    config: Annotated[Path, typer.Argument(help="Training config (TOML) with an optional \\[tune] table, e.g. config/train_demo_gru.toml.")],
    trials: Annotated[int, typer.Option("--trials", min=1, max=1_000_000, help="Trials this process runs (other workers add theirs).")] = 20,
    storage: Annotated[str | None, typer.Option("--storage", help="Optuna storage (SQLAlchemy URL), e.g. postgresql+psycopg2://user:pass@host:5432/db. Default: sqlite:///runs/optuna.db (beside output.run_dir when the config names one).")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name; workers with the same storage and name join it. Default: the config's name.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set train.epochs=5 or --set tune.pruner=hyperband (repeatable).")] = [],  # noqa: B006
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db).")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Record every trial as an MLflow run.")] = True,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1, max=1e7, help="Stop starting trials after this many seconds.")] = None,
    export_best: Annotated[Path | None, typer.Option("--export-best", help="Export the study's best trial to this folder, e.g. models/<name>.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-trial lines or progress bar.")] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help=CLUSTER_HELP + " Each trial is a task joining the one study: use an RDB every node reaches (--storage).")] = None,
) -> None:
    """Search hyper-parameters with Optuna (TPE, median or Hyperband pruning); every trial is an MLflow run."""
    needs = ("torch", "onnx", "optuna", "mlflow") if track else ("torch", "onnx", "optuna")
    rl = _research("rl.config", needs=needs).is_rl_config(config)
    if rl:
        needs = (*needs, "gymnasium", "stable_baselines3", "sb3_contrib")
    rtune = _research("rl.tune" if rl else "tune", needs=needs)
    cfg, tune_cfg = rtune.load_tune_config(config, set_)
    from engine.outputs import check_output_dir

    check_output_dir(rtune.tune_root(cfg) / "tune", "output.run_dir" if cfg.output.run_dir else "runs/tune",
                     protected=[cfg.data.catalog])
    if export_best is not None:
        check_output_dir(export_best, "--export-best", protected=[cfg.data.catalog])
    with console.status("opening the study and the tracking store ..."):
        session = rtune.TuneSession(cfg, tune_cfg, storage=storage, study_name=study,
                                    tracking_uri=tracking_uri, track=track, config_path=str(config),
                                    overrides=set_)
    with console.status("building labelled windows ..." if not rl else "preparing the environment ..."):
        data = session.prepare()
    where = f"tracking {session.tracker.uri}" if session.tracker is not None else "no tracking"
    if rl:
        console.print(
            f"study '{session.study_name}' in {session.storage_shown} | maximise validation net Sharpe of "
            f"{cfg.algorithm} | pruner {tune_cfg.pruner} | {', '.join(tune_cfg.space)} | {len(data.symbols)} symbols | "
            f"{where} | worker {session.worker}", highlight=False,
        )
    archs = ", ".join(tune_cfg.architectures or [cfg.model.architecture]) if not rl else ""
    if not rl:
        console.print(
            f"study '{session.study_name}' in {session.storage_shown} | maximise validation {tune_cfg.metric} | "
            f"pruner {tune_cfg.pruner} | {archs} | {len(data.symbols)} symbols, "
            f"{data.splits['train'].n:,} train windows | {where} | worker {session.worker}",
            highlight=False,
        )
    show = not quiet
    progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=quiet or not console.is_terminal)
    task = progress.add_task("tune", total=trials)

    def on_trial(frozen: Any) -> None:
        progress.advance(task)
        if not show:
            return
        attrs = frozen.user_attrs
        state = frozen.state.name.lower()
        value = _fmt(frozen.value) if frozen.value is not None else "-"
        if state == "fail":
            detail = frozen.system_attrs.get("fail_reason", "")
            console.print(f"trial {frozen.number:>4} [red]failed[/]: {detail}", highlight=False)
            return
        params = "  ".join(f"{k}={_fmt(v)}" for k, v in frozen.params.items())
        console.print(
            f"trial {frozen.number:>4} {state:<8} {tune_cfg.metric} {value:<7} "
            f"epochs {attrs.get('epochs_run', '-')}  {params}",
            highlight=False,
        )

    from engine.cluster.address import parse_cluster

    if parse_cluster(cluster) is not None:
        _tune_on_cluster(rtune, session, cfg, tune_cfg, config, set_, trials, cluster, track, show)
        if export_best is not None:
            summary = session.summarize()
            result = session.export_best(summary, export_best)
            console.print(f"[green]exported[/] trial {summary.best_number} to {result.path}", highlight=False)
        return
    interrupted = False
    try:
        with progress:
            summary = session.optimize(trials, timeout=timeout, on_trial=on_trial)
    except KeyboardInterrupt:
        interrupted = True
        summary = session.summarize()
    _print_summary(summary, tune_cfg.metric)
    if interrupted:
        console.print("[yellow]interrupted[/]: the running trial is marked failed (its MLflow run "
                      "killed, its best checkpoint kept); the study keeps every finished trial",
                      highlight=False)
        sys.exit(130)
    if export_best is not None:
        result = session.export_best(summary, export_best)
        console.print(f"[green]exported[/] trial {summary.best_number} to {result.path} "
                      f"(torch vs onnxruntime max |diff| {result.max_abs_diff:.1e})", highlight=False)


def _tune_on_cluster(rtune: Any, session: Any, cfg: Any, tune_cfg: Any, config: Path, set_: list[str], trials: int,
                     cluster: str | None, track: bool, show: bool) -> None:
    """``tune --cluster``: every trial a Ray task joining the one RDB study and the one MLflow store."""
    from engine.cli.cluster_opts import task_executor

    job = rtune.TrialJob(
        cfg=cfg, tune=tune_cfg, storage=str(session.storage.url), study_name=session.study_name,
        tracking_uri=session.tracker.uri if session.tracker is not None else None, track=track,
        config_path=str(config), overrides=tuple(set_), out_root=str(session.out_dir.parent.resolve()),
    )
    with task_executor(cluster, console) as executor:
        if getattr(executor, "nodes", 1) > 1 and str(session.storage.url).startswith("sqlite"):
            console.print("[yellow]warning:[/] a SQLite study is shared only by the nodes that see its file; "
                          "give --storage a PostgreSQL/MySQL URL for a multi-machine cluster", highlight=False)
        outcomes = executor.map(rtune.run_trial, list(range(trials)), shared=job, label="trials")
    if show:
        for o in sorted(outcomes, key=lambda o: (o["number"] is None, o["number"])):
            params = "  ".join(f"{k}={_fmt(v)}" for k, v in (o.get("params") or {}).items())
            console.print(f"trial {str(o['number']):>4} {o['state']:<8} {tune_cfg.metric} {_fmt(o['value'])}  {params}  "
                          f"[dim]{o['worker']}[/]", highlight=False)
    _print_summary(session.summarize(), tune_cfg.metric)


def _print_summary(summary: Any, metric: str) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items())) or "no trials"
    out = Console(emoji=False)
    if summary.best_number is None:
        out.print(f"study '{summary.study}': {counts}; no completed trial yet", highlight=False)
    else:
        table = Table(title=f"study '{summary.study}': best trial {summary.best_number}, validation "
                            f"{metric} {summary.best_value:.4f} ({counts})", title_justify="left")
        table.add_column("hyper-parameter")
        table.add_column("best value", justify="right")
        for name, value in summary.best_params.items():
            table.add_row(name, _fmt(value))
        out.print(table)
        out.print(f"reproduce: {summary.best_command}", highlight=False, soft_wrap=True)
        if summary.best_run_id:
            out.print(f"MLflow run of the best trial: {summary.best_run_id}", highlight=False)
    out.print("written: " + ", ".join(str(f) for f in summary.files), highlight=False)


def register(app: typer.Typer) -> None:
    """Register ``tune`` on *app* (once)."""
    if "tune" not in {info.name for info in app.registered_commands}:
        app.command("tune")(tune)
