"""CLI: ``sigtrade rl train CONFIG`` and ``sigtrade rl evaluate CONFIG...`` - reinforcement learning.

Like the other research commands, the stack (torch, Stable-Baselines3, sb3-contrib,
gymnasium, MLflow) is loaded by module name when a command runs, so ``--help`` works on a
core-only install and a missing extra is a :class:`~engine.errors.MissingExtraError`
saying what to install. ``sigtrade export RUN --out models/NAME`` exports a policy;
``sigtrade tune`` accepts RL configs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.research_cmd import _command, _research

console = Console(stderr=True)
rl_app = typer.Typer(name="rl", help="Reinforcement learning on the engine's own fills and costs (PPO).",
                     no_args_is_help=True)
RL_NEEDS = ("torch", "onnx", "gymnasium", "stable_baselines3", "sb3_contrib")


def _f(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.{digits}f}"
    return str(value)


@rl_app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="RL config (TOML), e.g. config/rl_demo.toml.")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set train.timesteps=50000 (repeatable).")] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-validation lines or progress bar.")] = False,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db).")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Record the run in MLflow.")] = True,
) -> None:
    """Train a PPO policy (MaskablePPO with masks) on the numba environment; best policy in runs/<name>/best.zip."""
    rconfig = _research("rl.config", needs=RL_NEEDS)
    cfg = rconfig.load_rl_config(config, set_)  # a bad config fails here, before the heavy imports
    rtrain = _research("rl.train", needs=RL_NEEDS)
    rmarket = _research("rl.market", needs=RL_NEEDS)
    command = _command("rl train", str(config), sets=set_)
    tracker = _research("tracking", needs=("mlflow",)).Tracker(tracking_uri, experiment="sigtrade-rl") if track else None
    with console.status("preparing the environment (features, quotes, segments) ..."):
        market = rmarket.build_market(cfg)
    segs = market.segments
    console.print(
        f"{cfg.algorithm} | {len(market.symbols)} symbols | actions {'/'.join(cfg.actions)} | lookback {cfg.data.lookback} "
        f"| fill {cfg.env.fill} | costs {cfg.costs.commission_bps:g} bps + {cfg.costs.slippage_bps:g} bps slippage | "
        f"{cfg.env.n_envs} episodes x {cfg.env.episode_bars} bars | train {len(segs.get('train', []))} segment(s), "
        f"validation {len(segs.get('validation', []))} | {cfg.train.timesteps:,} timesteps -> {cfg.run_path}",
        highlight=False,
    )
    progress = Progress(TextColumn("timesteps"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=quiet or not console.is_terminal)
    task = progress.add_task("train", total=cfg.train.timesteps)

    def on_progress(t: int, total: int) -> None:
        progress.update(task, completed=min(t, total))

    def on_eval(t: int, m: dict[str, float]) -> None:
        if not quiet:
            console.print(
                f"{t:>10,} steps  validation net Sharpe {m['net_sharpe']:+.3f}  return {m['net_return']:+.2%}  "
                f"trades {m['trades']:,.0f}  costs ${m['commission'] + m['slippage']:,.0f}  exposure {m['exposure']:.0%}"
                f"{'  *best' if m['best'] else ''}", highlight=False,
            )

    kwargs = {"market": market, "on_eval": on_eval, "on_progress": on_progress, "command": command}
    try:
        with progress:
            result = rtrain.train_tracked(cfg, tracker, **kwargs) if tracker else rtrain.train_rl(cfg, **kwargs)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]; the best policy so far is kept in {cfg.run_path / 'best.zip'}")
        sys.exit(130)
    console.print(
        f"[green]{result.status}[/] after {result.timesteps:,} timesteps ({result.samples_per_s:,.0f} samples/s end to "
        f"end): best validation net Sharpe {result.best_sharpe:+.3f} at {result.best_timesteps:,}\n"
        f"policy: {result.checkpoint}\nnext: sigtrade export {result.run_dir} --out models/{cfg.run_name}"
        + (f"\nMLflow run {tracker.last_run_id} in {tracker.uri}" if tracker else ""),
        highlight=False,
    )


@rl_app.command("evaluate")
def evaluate(
    configs: Annotated[list[Path], typer.Argument(help="One RL config (TOML) per configuration compared.")],
    folds: Annotated[int, typer.Option("--folds", min=1, max=12, help="Walk-forward folds over the test range.")] = 3,
    seeds: Annotated[str, typer.Option("--seeds", help="Training seeds, comma-separated.")] = "0,1,2",
    val_months: Annotated[int, typer.Option("--val-months", min=1, max=24, help="Validation months before each fold.")] = 3,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field of every config (repeatable).")] = [],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", help="Output folder (summary.json, summary.md, runs, policies).")] = Path("runs/rl_evaluate"),
    benchmarks: Annotated[bool, typer.Option("--benchmarks/--no-benchmarks", help="Also backtest SPY and the universe buy-and-hold per fold.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-run lines.")] = False,
) -> None:
    """Retrain on walk-forward folds with several seeds; net results per fold, DSR (trials = seeds x configs), PBO."""
    revaluate = _research("rl.evaluate", needs=RL_NEEDS)
    seed_list = revaluate.parse_seeds(seeds)
    say = (lambda line: None) if quiet else (lambda line: console.print(line, highlight=False, markup=False))
    summary = revaluate.evaluate_configs([str(c) for c in configs], folds=folds, seeds=seed_list, val_months=val_months,
                                         overrides=set_, out=out, benchmarks=benchmarks, say=say)
    table = Table(title=f"walk-forward test results ({folds} folds x {len(seed_list)} seeds; net of costs)",
                  title_justify="left")
    for col in ("run", "fold", "test range", "return", "Sharpe", "max DD", "trades", "costs"):
        table.add_column(col, justify="right")
    for row in summary["rows"]:
        table.add_row(row["name"], str(row["fold"]), row["test"], f"{row['total_return']:+.2%}", _f(row["sharpe"], 2),
                      f"{row['max_drawdown']:.1%}", str(row["trades"]), f"${row['costs']:,.0f}")
    Console().print(table)
    for line in summary["lines"]:
        Console().print(line, highlight=False, soft_wrap=True)
    Console().print(f"written: {out / 'summary.json'}, {out / 'summary.md'}", highlight=False)


def register(app: typer.Typer) -> None:
    """Register the ``rl`` sub-app on *app* (once)."""
    if not any(group.typer_instance is rl_app for group in app.registered_groups):
        app.add_typer(rl_app, name="rl")
