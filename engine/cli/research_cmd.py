"""CLI: ``sigtrade train CONFIG``, ``sigtrade export RUN --out models/NAME``, ``sigtrade evaluate MODEL``.

The research stack (torch, onnx, matplotlib) is the ``[research]`` extra. ``engine`` never
imports ``research`` or torch (a checked contract), so these commands load it by module
name at run time (:func:`_research`) and say how to install it when it is missing; the
help works on a core-only install.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.cluster_opts import CLUSTER_HELP
from engine.errors import ConfigError, MissingExtraError
from engine.outputs import check_output_dir

console = Console(stderr=True, emoji=False)
_INSTALL = "pip install -e '.[research]' (install torch first: see README)"


def _research(module: str, needs: tuple[str, ...] = ("torch", "onnx")) -> ModuleType:
    """Import ``research.<module>`` by name, or explain which extra is missing."""
    for dep in needs:
        if importlib.util.find_spec(dep) is None:
            raise MissingExtraError(f"this command needs {dep}, part of the research stack: {_INSTALL}")
    return importlib.import_module(f"research.{module}")


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.{digits}f}"
    return str(value)


def _command(verb: str, *args: str, sets: list[str] | None = None) -> str:
    parts = ["sigtrade", verb, *args]
    for item in sets or []:
        parts += ["--set", item]
    return shlex.join(parts)


def train(
    config: Annotated[Path, typer.Argument(help="Training config (TOML), e.g. config/train_demo_mlp.toml.")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: --set train.epochs=3 (repeatable).")] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-epoch table or progress bar.")] = False,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db).")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Record the run in MLflow (params, per-epoch metrics, checkpoint).")] = True,
    walk_forward: Annotated[str | None, typer.Option("--walk-forward", help="Retrain per fold: train=24M,validation=3M,test=3M[,step=3M]; one run per fold x seed.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="With --walk-forward: train.seed values, e.g. 1,2,3 (default: the config's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --walk-forward: run folders and walk_forward.csv/.json here (default runs/<name>/walk_forward).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help=CLUSTER_HELP)] = None,
) -> None:
    """Train a signal model; keep the best checkpoint in runs/<name>/best.pt (Ctrl-C keeps it too).

    With --walk-forward, every fold x seed is one training run (one after another here, one
    Ray task each with --cluster), all tracked in one MLflow URI.
    """
    rconfig = _research("config")
    rtrain = _research("train")
    cfg = rconfig.load_train_config(config, set_)
    check_output_dir(cfg.run_path, "output.run_dir" if cfg.output.run_dir else "the run folder",
                     protected=[cfg.data.catalog])
    command = _command("train", str(config), sets=set_)
    if walk_forward is not None:
        _train_walk_forward(cfg, config, command, walk_forward, seeds, out, cluster, tracking_uri if track else None, track)
        return
    if seeds is not None or out is not None:
        raise ConfigError("--seeds and --out go with --walk-forward; for one run use --set train.seed=N and output.run_dir")
    tracker = _research("tracking", needs=("mlflow",)).Tracker(tracking_uri) if track else None  # checked before any training
    with console.status("building labelled windows ..."):
        data = rtrain.prepare_data(cfg)
    device = rtrain.resolve_device(cfg.train.device)
    summary = Table(title=f"run '{cfg.run_name}' -> {cfg.run_path}", title_justify="left")
    for col in ("split", "range", "windows", "positive rate", "first decision bar", "last decision bar"):
        summary.add_column(col)
    for name, sp in data.splits.items():
        s = sp.summary()
        summary.add_row(name, s["range"], f"{s['samples']:,}", _fmt(s["pos_rate"], 3),
                        s["first_decision_bar"] or "-", s["last_decision_bar"] or "-")
    console.print(summary)
    console.print(
        f"{cfg.model.architecture} | {len(data.symbols)} symbols | lookback {data.lookback} | "
        f"{cfg.label.kind} label, horizon {data.horizon} | purge {data.purge} bars | device {device}",
        highlight=False,
    )
    show = not quiet
    progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True,
                        disable=quiet or not console.is_terminal)
    task = progress.add_task("train", total=1, epoch=1)

    def on_batch(epoch: int, batch: int, n_batches: int) -> None:
        progress.update(task, completed=batch, total=n_batches, epoch=epoch)

    def on_epoch(epoch: int, m: dict[str, float]) -> None:
        if show:
            console.print(
                f"epoch {epoch:>3}  loss {m['train_loss']:.4f}/{m['val_loss']:.4f}  "
                f"F1 {m['val_f1']:.4f}  PR-AUC {m['val_pr_auc']:.4f}  ROC-AUC {m['val_roc_auc']:.4f}  "
                f"lr {m['lr']:.2e}  {m['epoch_s']:.1f}s{'  *best' if m['best'] else ''}",
                highlight=False,
            )

    try:
        with progress:
            result = (tracker.train if tracker else rtrain.train)(cfg, data=data, command=command, on_epoch=on_epoch, on_batch=on_batch)
    except rtrain.TrainingInterrupted as exc:
        r = exc.result
        where = (f"best checkpoint kept: {r.checkpoint} (epoch {r.best_epoch}, "
                 f"{r.metric_name} {r.best_metric:.4f})" if r.checkpoint else "no epoch finished: nothing saved")
        console.print(f"[yellow]interrupted[/] after {r.epochs_run} epoch(s); {where}", highlight=False)
        sys.exit(130)
    v = result.validation
    console.print(
        f"[green]{result.status}[/] after {result.epochs_run} epoch(s): best epoch {result.best_epoch}, "
        f"validation {result.metric_name} {result.best_metric:.4f}; at threshold {v.get('threshold', 0.5):.2f}: "
        f"F1 {v.get('f1', float('nan')):.4f}, PR-AUC {v.get('pr_auc', float('nan')):.4f}, "
        f"ROC-AUC {v.get('roc_auc', float('nan')):.4f}\n"
        f"{result.samples_per_s:,.0f} training samples/s, data loading {result.data_share:.1%} of the "
        f"training time\ncheckpoint: {result.checkpoint}\nnext: sigtrade export {result.run_dir} "
        f"--out models/{cfg.run_name}" + (f"\nMLflow run {tracker.last_run_id} in {tracker.uri}" if tracker else ""),
        highlight=False,
    )


def _seeds(text: str | None, default: int) -> list[int]:
    if text is None:
        return [default]
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds '{text}': expected whole numbers separated by commas, e.g. 1,2,3") from None
    if not values or len(set(values)) != len(values) or any(v < 0 or v > 2**31 - 1 for v in values):
        raise ConfigError(f"--seeds '{text}': give distinct whole numbers from 0 to 2147483647, e.g. 1,2,3")
    return values


def _train_walk_forward(cfg: Any, config: Path, command: str, spec_text: str, seeds_text: str | None,
                        out: Path | None, cluster: str | None, tracking_uri: str | None, track: bool) -> None:
    """``sigtrade train --walk-forward``: one task per fold x seed, a results table at the end."""
    import dataclasses
    import json

    from engine.cli.cluster_opts import task_executor

    rwf = _research("walk_forward")
    rconfig = _research("config")
    spec = rwf.parse_fold_spec(spec_text)
    seeds = _seeds(seeds_text, cfg.train.seed)
    folds = rwf.plan_folds(cfg, spec, seeds)
    root = out if out is not None else cfg.run_path / "walk_forward"
    check_output_dir(root, "--out" if out is not None else "the walk-forward folder", protected=[cfg.data.catalog])
    tracker = None
    if track:
        tracker = _research("tracking", needs=("mlflow",)).Tracker(tracking_uri, experiment="sigtrade-walk-forward")
    job = rwf.FoldJob(config=rconfig.config_to_dict(cfg), source=str(config), out=str(root.resolve()),
                      command=command, tracking_uri=tracker.uri if tracker else None)
    console.print(f"walk-forward {spec}: {len({f.index for f in folds})} fold(s) x {len(seeds)} seed(s) = "
                  f"{len(folds)} training run(s) -> {root}", highlight=False)
    parent_ctx: Any = (tracker.run(cfg, f"{cfg.run_name} walk-forward", {"sigtrade.kind": "walk-forward-parent",
                                                                           "sigtrade.walk_forward": str(spec)},
                                   command=command + f" --walk-forward {spec_text}")
                       if tracker else None)
    with task_executor(cluster, console, local=True) as executor:
        if parent_ctx is not None:
            with parent_ctx as parent:
                job = dataclasses.replace(job, parent_run_id=parent.run_id)
                rows = executor.map(rwf.train_fold, folds, shared=job, label="fold x seed trainings")
        else:
            rows = executor.map(rwf.train_fold, folds, shared=job, label="fold x seed trainings")
    frame = rwf.results_frame(rows)
    root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "walk_forward.csv", index=False)
    (root / "walk_forward.json").write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    table = Table(title=f"walk-forward {spec}: {len(rows)} run(s)", title_justify="left")
    metric = f"best_{cfg.train.early_stopping_metric}"
    for col in ("fold", "seed", "train", "validation", "status", "epochs", metric, "val_roc_auc"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["fold"]), str(r["seed"]), r["train"], r["validation"], r["status"], str(r["epochs_run"]),
                      _fmt(r.get(metric)), _fmt(r.get("val_roc_auc")))
    Console(emoji=False).print(table)
    where = f"; MLflow {tracker.uri}" if tracker else ""
    console.print(f"results: {root / 'walk_forward.csv'}{where}", highlight=False)


def export(
    source: Annotated[Path, typer.Argument(help="Run folder (runs/<name>) or its best.pt.")],
    out: Annotated[Path, typer.Option("--out", help="Artifact folder, e.g. models/<name>.")],
    name: Annotated[str | None, typer.Option("--name", help="Model name in the card (default: the folder name).")] = None,
    gru_graph: Annotated[str, typer.Option(
        "--gru-graph",
        help="How a GRU network is written: 'unrolled' (default; about 2x faster on onnxruntime's CPU provider) "
             "or 'fused' (one ONNX GRU op, for runtimes with a fused kernel such as CUDA). Other architectures "
             "ignore it.",
    )] = "unrolled",
    precision: Annotated[str, typer.Option(
        "--precision",
        help="Arithmetic of the artifact: 'fp32' (default, onnxruntime) or 'bf16' (OpenVINO on a CPU with AMX or "
             "AVX512_BF16; needs the [openvino] extra and the training data: refused unless the validation windows "
             "score within 1e-3 of fp32, and the check is written to the card).",
    )] = "fp32",
) -> None:
    """Export a checkpoint (or an RL run's policy) to model.onnx + card.json and validate it."""
    if not source.exists():
        raise ConfigError(f"export: {source} does not exist: give a run folder (runs/<name>) or its best.pt")
    check_output_dir(out, "--out")
    command = _command("export", str(source), "--out", str(out), *(["--name", name] if name else []),
                       *(["--gru-graph", gru_graph] if gru_graph != "unrolled" else []),
                       *(["--precision", precision] if precision != "fp32" else []))
    if (source if source.is_dir() else source.parent).joinpath("rl_config.json").is_file():
        if precision != "fp32":
            raise ConfigError(f"export: --precision {precision} is for signal models; an RL policy is exported in "
                              f"fp32 (drop --precision)")
        _export_policy(source, out, name, command)
        return
    rexport = _research("export")
    result = rexport.export(source, out, name=name, command=command, gru_graph=gru_graph, precision=precision)
    card = result.card
    tracked = _research("tracking", needs=("mlflow",)).attach_export(source, out) if importlib.util.find_spec("mlflow") else None
    v = card.metrics.get("validation", {})
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(
        f"[green]valid[/]: {result.path} - {card.architecture}, lookback {card.lookback}, "
        f"{card.n_features} features{', asset ids' if card.has_asset_ids else ''}; threshold "
        f"{card.threshold:.2f}, validation F1 {_fmt(v.get('f1'))}, PR-AUC {_fmt(v.get('pr_auc'))}, "
        f"ROC-AUC {_fmt(v.get('roc_auc'))}; torch vs onnxruntime max |diff| {result.max_abs_diff:.1e}; "
        f"sha256 {card.onnx_sha256[:12]}..." + _precision_line(card) + (f"\n{tracked}" if tracked else ""),
        highlight=False,
    )


def _precision_line(card: Any) -> str:
    """The export's account of a bf16 card's accuracy check ('' for fp32)."""
    low = card.precision
    if low is None:
        return ""
    return (f"\n{low.dtype} on OpenVINO {low.runtime_version}: {low.windows:,} real windows of the {low.checked_on} "
            f"within {low.max_abs_diff:.1e} of fp32 (tolerance {low.tolerance:g}); {low.decisions_changed:,} "
            f"decision(s) at threshold {card.threshold:.2f} differ")


def _export_policy(source: Path, out: Path, name: str | None, command: str) -> None:
    rexport = _research("rl.export", needs=("torch", "onnx", "gymnasium", "stable_baselines3", "sb3_contrib"))
    result = rexport.export_policy(source, out, name=name, command=command)
    card = result.card
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    v = card.metrics.get("validation", {})
    console.print(
        f"[green]valid[/]: {result.path} - policy ({card.algorithm}), actions {'/'.join(card.actions)}, lookback "
        f"{card.lookback}, {card.n_features} features + {card.n_state} state inputs{', gate ' + card.gate.name if card.gate else ''}; "
        f"validation net Sharpe {_fmt(v.get('net_sharpe'), 3)}; torch vs onnxruntime max |diff| {result.max_abs_diff:.1e}; "
        f"sha256 {card.onnx_sha256[:12]}...\nuse: \\[strategy] kind = \"policy\", model = \"{result.path}\"",
        highlight=False,
    )


def evaluate(
    model: Annotated[Path, typer.Argument(help="Model folder (models/<name>).")],
    split: Annotated[str, typer.Option("--split", help="train, validation or test.")] = "test",
    config: Annotated[Path | None, typer.Option("--config", help="Training config, if the folder lacks train_config.json.")] = None,
    catalog: Annotated[str | None, typer.Option("--catalog", help="Read bars from this catalog instead of the training one.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default out/evaluate/<model>/<split>).")] = None,
) -> None:
    """Score a split with the exported model: metrics, threshold grid, PR and ROC curves."""
    revaluate = _research("evaluate", needs=("matplotlib",))
    if out is not None:
        check_output_dir(out, "--out", protected=[catalog] if catalog else [])
    with console.status(f"scoring the {split} split ..."):
        result = revaluate.evaluate(model, split, config=config, catalog=catalog, out=out)
    m = result.metrics
    table = Table(title=f"{m['model']} on {split} ({m['range']}): {m['samples']:,} windows, "
                        f"{m['pos_rate']:.1%} positive", title_justify="left")
    for col in ("metric", f"at card threshold {m['threshold']:.2f}", "at 0.5"):
        table.add_column(col, justify="right")
    for key in ("accuracy", "precision", "recall", "f1"):
        table.add_row(key, _fmt(m[key]), _fmt(m[f"{key}_at_0.5"]))
    table.add_row("PR-AUC", _fmt(m["pr_auc"]), "")
    table.add_row("ROC-AUC", _fmt(m["roc_auc"]), "")
    out_console = Console(emoji=False)
    out_console.print(table)
    grid = result.grid
    coarse = grid[(grid["threshold"] * 100).round().astype(int) % 5 == 0]
    gt = Table(title="threshold grid (every 0.05; 0.01 steps in threshold_grid.csv)", title_justify="left")
    for col in ("threshold", "precision", "recall", "F1", "predicted positive"):
        gt.add_column(col, justify="right")
    for row in coarse.itertuples(index=False):
        gt.add_row(f"{row.threshold:.2f}", _fmt(row.precision), _fmt(row.recall), _fmt(row.f1),
                   f"{row.predicted_pos_rate:.1%}")
    out_console.print(gt)
    out_console.print("written: " + ", ".join(str(f) for f in result.files), highlight=False)


def register(app: typer.Typer) -> None:
    """Register ``train``, ``export`` and ``evaluate`` on *app* (once)."""
    have = {info.name for info in app.registered_commands}
    for verb, func in (("train", train), ("export", export), ("evaluate", evaluate)):
        if verb not in have:
            app.command(verb)(func)
