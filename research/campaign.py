"""The seed's campaign on real data, end to end: ``python -m research.campaign``.

From a fresh checkout (run it from the repository root):

1. **Catalog** - if ``catalogs/real`` is missing or incomplete, ingest the 30 hourly CSVs
   of ``$SIGTRADE_REAL_DATA/equities/hourly/market-base`` (default ``../shared/data``)
   with ``sigtrade ingest csv ... --repair``.
2. **Tune** - for each architecture (``config/campaign/train_{mlp,lstm,gru}.toml``), an
   Optuna study in ``<out>/optuna.db`` (SQLite) with every trial tracked in MLflow
   (``<out>/mlruns/mlflow.db``); trial run folders in ``<out>/tune/<study>/``. A study
   that already holds ``--trials`` finished trials is not run again (re-running the
   campaign resumes; a study created from another config or ``--epochs`` is refused:
   use a new ``--out``).
3. **Export** - the best trial of each study to ``<out>/models/<arch>`` (ONNX + card).
4. **Evaluate** - each artifact on the validation and test splits (onnxruntime, the card's
   scaler and threshold), plus a per-source breakdown of the test split (the 18 IBKR
   symbols the models were trained on vs the 12 yfinance symbols they never saw).
5. **Ensemble** - ``<out>/models/ensemble/ensemble.json``: ``f1_weighted`` (weights = the
   members' validation F1 at their card thresholds); its threshold is the F1-best one on
   the *validation* split of the combined probability (same rule as a single model's card).
6. **Backtests** - ``config/campaign/backtest.toml`` through :func:`engine.runner.run_backtest`
   once per model, for the ensemble, for SPY buy-and-hold and for an equal-weight
   buy-and-hold of the whole universe, each with ``--set``-style overrides; outputs
   (metrics.json, Parquet tables, report.html with its Diagnosis, diagnosis.json) in
   ``<out>/backtests/<name>/``. **Controls come from ``sigtrade diagnose <dir> --json``**
   (:mod:`engine.diagnosis`, on the fast path): the universe buy-and-hold, 20,000 random
   10-name buy-and-holds through the same costs (``[diagnosis]`` of the backtest config),
   the same signals with one slot per symbol, and the break-even cost - no control is
   computed by hand here any more.
7. **Summary** - ``<out>/summary.json``, ``<out>/summary.md`` (the side-by-side table and
   the control tables) and figures (equity curves, gross P&L vs costs, the controls) in
   ``--figures`` (default ``<out>/figures``); with ``--doc docs/campaign.md`` the control
   tables between its ``<!-- diagnose:controls -->`` markers are rewritten from the
   diagnoses.

Options: ``--trials N`` (per architecture, default 8), ``--epochs N`` (override every
config's ``train.epochs``), ``--out DIR`` (default ``runs/campaign``), ``--archs``,
``--catalog``, ``--figures DIR``, ``--doc FILE``, ``--no-track``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError

log = logging.getLogger("research.campaign")

ARCHS = ("mlp", "lstm", "gru")
CONFIG_DIR = Path("config/campaign")
BACKTEST_CONFIG = CONFIG_DIR / "backtest.toml"
N_SYMBOLS = 30
HOURLY_DIR = Path("equities/hourly/market-base")


# --- helpers ------------------------------------------------------------------------------------


def _say(msg: str) -> None:
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8")


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN/inf -> None, numpy -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- 1. catalog ---------------------------------------------------------------------------------


def ensure_catalog(catalog: str) -> dict[str, Any]:
    """Ingest the real hourly CSVs into *catalog* unless it already holds the 30 symbols."""
    from engine.catalog import list_symbols

    have = list_symbols(Path(catalog), "1-HOUR") if Path(catalog).is_dir() else []
    if len(have) >= N_SYMBOLS:
        return {"catalog": catalog, "ingested": False, "symbols": len(have)}
    source = Path(os.environ.get("SIGTRADE_REAL_DATA", "../shared/data")) / HOURLY_DIR
    if not source.is_dir():
        raise DataError(f"no real hourly data at {source}: set SIGTRADE_REAL_DATA to the shared data folder")
    cmd = [sys.executable, "-m", "engine", "ingest", "csv", str(source), "--catalog", catalog, "--repair"]
    _say("ingest: " + shlex.join(cmd))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DataError(f"ingest failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    have = list_symbols(Path(catalog), "1-HOUR")
    return {"catalog": catalog, "ingested": True, "symbols": len(have), "command": shlex.join(cmd),
            "wall_s": time.perf_counter() - t0}


# --- 2./3. tune and export ----------------------------------------------------------------------


def tune_and_export(arch: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run (or resume) the study of *arch*, export its best trial; return what happened."""
    import optuna

    from research.tune import TuneSession, load_tune_config

    config = CONFIG_DIR / f"train_{arch}.toml"
    overrides = [f"data.catalog={json.dumps(args.catalog)}"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    cfg, tune_cfg = load_tune_config(config, overrides)
    study = f"campaign_{arch}"
    t0 = time.perf_counter()
    session = TuneSession(
        cfg, tune_cfg, storage=f"sqlite:///{(out / 'optuna.db').resolve()}", study_name=study,
        tracking_uri=f"sqlite:///{(out / 'mlruns' / 'mlflow.db').resolve()}", track=not args.no_track,
        config_path=str(config), overrides=overrides, out_root=out / "tune",
    )
    data = session.prepare()
    finished = [t for t in session.study.get_trials(deepcopy=False) if t.state.is_finished()]
    todo = max(0, args.trials - len(finished))
    _say(f"tune {arch}: study '{study}', {len(data.symbols)} symbols, {data.splits['train'].n:,} train / "
         f"{data.splits['validation'].n:,} validation windows; {len(finished)} trial(s) done, running {todo}")

    def on_trial(frozen: optuna.trial.FrozenTrial) -> None:
        value = "-" if frozen.value is None else f"{frozen.value:.4f}"
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in frozen.params.items())
        _say(f"  {arch} trial {frozen.number}: {frozen.state.name.lower()} {tune_cfg.metric} {value} "
             f"epochs {frozen.user_attrs.get('epochs_run', '-')} {params}")

    summary = session.optimize(todo, on_trial=on_trial) if todo else session.summarize()
    tune_s = time.perf_counter() - t0
    trials = [t for t in session.study.get_trials(deepcopy=False) if t.state.is_finished()]
    trials_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                   if t.datetime_complete is not None and t.datetime_start is not None)
    epochs_run = sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials)
    model_dir = out / "models" / arch
    t1 = time.perf_counter()
    result = session.export_best(summary, model_dir)
    export_s = time.perf_counter() - t1
    _say(f"tune {arch}: best trial {summary.best_number} (validation {tune_cfg.metric} "
         f"{summary.best_value:.4f}) exported to {model_dir} in {export_s:.1f}s; tuning took {tune_s:.0f}s")
    card = result.card
    return {
        "arch": arch, "config": str(config), "overrides": overrides, "study": study,
        "trials": summary.counts, "best_trial": summary.best_number, "best_value": summary.best_value,
        "metric": tune_cfg.metric, "best_params": summary.best_params, "best_command": summary.best_command,
        "model_dir": str(model_dir), "threshold": card.threshold,
        "validation": {k: v for k, v in card.metrics.get("validation", {}).items() if k != "prob_quantiles"},
        "tune_s": tune_s, "export_s": export_s, "epochs": cfg.train.epochs,
        "trials_wall_s": trials_s, "epochs_run": epochs_run,
    }


# --- 4./5. evaluation and ensemble ---------------------------------------------------------------


def _test_groups(model_dir: Path, catalog: str) -> tuple[np.ndarray, dict[str, list[str]]]:
    """A group label per test window (IBKR-trained symbols vs yfinance-only symbols)."""
    from research.dataset import DatasetSpec, build_windows
    from research.evaluate import load_model_config

    cfg = load_model_config(model_dir)
    spec = DatasetSpec.from_config(cfg)
    from dataclasses import replace

    spec = replace(spec, catalog=catalog)
    data = build_windows(spec, require=("train", "test"))
    trained = {seg.symbol for seg in data.splits["train"].segments}
    sp = data.splits["test"]
    group = np.empty(sp.n, dtype=object)
    for seg in sp.segments:
        group[seg.start : seg.stop] = "trained" if seg.symbol in trained else "unseen"
    groups = {"trained": sorted(trained), "unseen": sorted({s.symbol for s in sp.segments} - trained)}
    return group, groups


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    from engine.stats.classification import classification_metrics

    m = classification_metrics(y, p, threshold)
    half = classification_metrics(y, p, 0.5)
    return _clean({**m, "f1_at_0.5": half["f1"], "samples": int(y.size)})


def evaluate_models(archs: list[str], out: Path, catalog: str) -> dict[str, Any]:
    """Validation and test metrics of each artifact, the ensemble card and its metrics."""
    from engine.stats.classification import best_threshold
    from models.ensemble import EnsembleCard, EnsembleMember, write_ensemble_card
    from research.evaluate import evaluate

    t0 = time.perf_counter()
    evals: dict[str, Any] = {}
    probs: dict[str, dict[str, np.ndarray]] = {"validation": {}, "test": {}}
    labels: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    for arch in archs:
        model_dir = out / "models" / arch
        evals[arch] = {}
        for split in ("validation", "test"):
            r = evaluate(model_dir, split, catalog=catalog, out=out / "evaluate" / arch / split)
            probs[split][arch] = r.probs
            if split in labels and not np.array_equal(labels[split], r.labels):
                raise DataError(f"{arch}: the {split} windows differ from the other models' (same data config expected)")
            labels[split] = r.labels
            evals[arch][split] = _clean(dict(r.metrics))
            thresholds[arch] = float(r.metrics["threshold"])
        card = json.loads((model_dir / "card.json").read_text(encoding="utf-8"))
        weights[arch] = float(card["metrics"]["validation"]["f1"])
        _say(f"evaluate {arch}: test F1 {evals[arch]['test']['f1']:.4f} PR-AUC {evals[arch]['test']['pr_auc']:.4f} "
             f"ROC-AUC {evals[arch]['test']['roc_auc']:.4f} at threshold {thresholds[arch]:.2f}")

    # the ensemble: f1-weighted mean, threshold chosen on validation like a single card's
    w = np.array([weights[a] for a in archs])
    combined = {s: sum(weights[a] * probs[s][a] for a in archs) / w.sum() for s in probs}
    thr, val_f1 = best_threshold(labels["validation"], combined["validation"])
    ens_dir = out / "models" / "ensemble"
    ens_dir.mkdir(parents=True, exist_ok=True)
    write_ensemble_card(
        EnsembleCard(name="ensemble", bar="1-HOUR", combiner="f1_weighted", threshold=round(thr, 4),
                     members=tuple(EnsembleMember(path=f"../{a}") for a in archs)),
        ens_dir,
    )
    evals["ensemble"] = {s: _metrics(labels[s], combined[s], thr) for s in combined}
    for s in combined:
        evals["ensemble"][s]["threshold"] = thr
    _say(f"ensemble: f1_weighted {dict(zip(archs, np.round(w / w.sum(), 4).tolist(), strict=True))}, "
         f"threshold {thr:.2f} (validation F1 {val_f1:.4f}); test F1 {evals['ensemble']['test']['f1']:.4f}")

    # per-source breakdown of the test split
    group, groups = _test_groups(out / "models" / archs[0], catalog)
    y = labels["test"]
    if group.size != y.size:
        raise DataError("the test windows of the breakdown differ from the evaluated ones")
    by_group: dict[str, Any] = {}
    for name in ("trained", "unseen"):
        mask = group == name
        if not mask.any():
            continue
        by_group[name] = {"symbols": groups[name], "samples": int(mask.sum())}
        for arch in archs:
            by_group[name][arch] = _metrics(y[mask], probs["test"][arch][mask], thresholds[arch])
        by_group[name]["ensemble"] = _metrics(y[mask], combined["test"][mask], thr)
    return {"models": evals, "weights": weights, "ensemble_threshold": thr, "ensemble_validation_f1": val_f1,
            "test_by_source": by_group, "wall_s": time.perf_counter() - t0}


# --- 6. backtests -------------------------------------------------------------------------------


def backtest_runs(archs: list[str], out: Path, catalog: str) -> dict[str, list[str]]:
    """Name -> ``--set`` overrides of config/campaign/backtest.toml."""
    base = [f"data.catalog={json.dumps(catalog)}"]
    runs = {a: [*base, 'strategy.kind="signal"', f"strategy.model={json.dumps(str(out / 'models' / a))}"]
            for a in archs}
    runs["ensemble"] = [*base, 'strategy.kind="ensemble"',
                        f"strategy.model={json.dumps(str(out / 'models' / 'ensemble'))}"]
    runs["spy_buy_and_hold"] = [*base, 'strategy.kind="buy_and_hold"', 'data.symbols=["SPY"]']
    runs["universe_buy_and_hold"] = [*base, 'strategy.kind="buy_and_hold"']
    return runs


def run_backtests(archs: list[str], out: Path, catalog: str) -> dict[str, Any]:
    """Run every backtest with its Diagnosis, write its outputs, return its figures (plus gross P&L and cost shares)."""
    from engine.config import load_config
    from engine.diagnosis import diagnose
    from engine.report import write_outputs
    from engine.runner import run_backtest
    from strategies.signal import diagnosis_inputs

    results: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    for name, sets in backtest_runs(archs, out, catalog).items():
        cfg = load_config(BACKTEST_CONFIG, sets)
        t0 = time.perf_counter()
        result = run_backtest(cfg)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        result.diagnosis = diagnose(result, cfg, signal_loader=diagnosis_inputs)  # what `sigtrade backtest --out` adds
        diag_wall = time.perf_counter() - t1
        write_outputs(result, out / "backtests" / name)
        m = dict(result.metrics)
        capital = float(m["capital"])
        net = float(m["final_equity"]) - capital
        costs = float(m["commission_paid"] or 0.0) + float(m["slippage_paid"] or 0.0)
        gross = net + costs
        trades = result.strategy.trades
        by_symbol = (trades.groupby("symbol")["pnl"].sum().sort_values(ascending=False)
                     if len(trades) else None)
        m.update({
            "pnl_by_symbol": {str(k): float(v) for k, v in by_symbol.items()} if by_symbol is not None else {},
            "net_pnl": net, "costs": costs, "gross_pnl": gross,
            "costs_share_of_gross": costs / gross if gross > 0 else None,
            "avg_bars_held": float(trades["bars_held"].mean()) if len(trades) else None,
            "wall_s": wall, "diagnosis_wall_s": diag_wall, "timings": result.timings,
            "command": shlex.join(["sigtrade", "backtest", str(BACKTEST_CONFIG),
                                   *[x for s in sets for x in ("--set", s)], "--out", str(out / "backtests" / name)]),
        })
        results[name] = _clean(m)
        curves[name] = result.strategy.equity
        curves.setdefault("_benchmark", result.benchmark.equity)
        _say(f"backtest {name}: total return {m['total_return']:+.2%}, Sharpe {_num(m['sharpe']) or float('nan'):.2f}, "
             f"max DD {m['max_drawdown']:.2%}, {m['trades']} trades, costs ${costs:,.0f} "
             f"(gross P&L ${gross:,.0f}); SPY B&H {m['benchmark']['total_return']:+.2%} [{wall:.0f}s + diagnosis {diag_wall:.0f}s]")
    return {"runs": results, "curves": curves}


def diagnose_json(folder: Path) -> dict[str, Any]:
    """``sigtrade diagnose FOLDER --json``, as a user runs it: the controls and costs the tables are made of."""
    cmd = [sys.executable, "-m", "engine", "diagnose", str(folder), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DataError(f"sigtrade diagnose {folder} failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def break_even_text(be: dict[str, Any]) -> str:
    """The break-even cost of a diagnosis as a table cell."""
    point = be.get("total_return") or {}
    if point.get("bps") is not None:
        return f"{point['bps']:.1f}"
    if point.get("status") == "above the curve":
        return f"> {be['max_bps']:g}"
    return str(point.get("status") or be.get("reason"))


def control_tables(names: list[str], diagnoses: dict[str, dict[str, Any]]) -> str:
    """The markdown control tables of *names*' diagnoses (``sigtrade diagnose --json``)."""

    def row(label: str, c: dict[str, Any]) -> str:
        costs = f"{_usd(c['commission_paid'])} + {_usd(c['slippage_paid'])}"
        return (f"| {label} | {_spct(c['total_return'])} | {_pct(c['cagr'])} | {_f(c['sharpe'], 2)} | "
                f"{_pct(c['max_drawdown'])} | {c['trades']:,} | {_f(c['turnover'], 1)} | {_pct(c['exposure'], 0)} | "
                f"{costs} | {_usd(c['gross_pnl'])} | {_pct(c['costs_share_of_gross'], 0)} |")

    first = diagnoses[names[0]]["controls"]
    rnd0 = first["random"]
    uni = first["universe"]
    head = ("| run | total return | CAGR | Sharpe | max DD | trades | turnover (×/yr) | exposure | "
            "commissions + slippage | gross P&L | costs / gross |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"**(d) One slot per symbol** (`max_positions` = {first['one_slot']['max_positions']}, `position_size` = "
             f"{first['one_slot']['position_size']:.4f}: the run's most gross spread over every symbol), on the fast path:", "", head]
    lines += [row(n, diagnoses[n]["controls"]["one_slot"]) for n in names]
    lines.append(row(f"(b) universe buy-and-hold ({uni['symbols']} × 1/{uni['symbols']})", uni))
    q = rnd0["total_return"]
    lines += [
        "",
        f"**(c) Random {rnd0['n']}-name buy-and-holds**: {rnd0['draws']:,} equal-weight subsets (seed {rnd0['seed']}) through "
        f"the same costs and fills: total return p5 {_spct(q['p5'])}, median {_spct(q['p50'])}, p95 {_spct(q['p95'])}; "
        f"Sharpe median {_f(rnd0['sharpe']['p50'], 2)}.",
        "",
        "| run (10 slots) | total return | percentile by total return | percentile by Sharpe | "
        "break-even cost (bps per side) | costs / gross | edge / cost per round trip |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in names:
        d = diagnoses[n]
        c, r = d["controls"], d["controls"]["random"]
        bps = break_even_text(d["costs"]["break_even"])
        lines.append(f"| {n} | {_spct(c['strategy']['total_return'])} | {_pct(r['strategy_percentile_total_return'], 0)} | "
                     f"{_pct(r['strategy_percentile_sharpe'], 0)} | {bps} | {_pct(d['costs']['costs_share_of_gross'], 0)} | "
                     f"{_f(d['costs']['round_trips'].get('edge_to_cost'), 2)} |")
    bench = first["benchmark"]
    lines += ["", f"(a) {bench['symbol']} buy-and-hold: {_spct(bench['total_return'])}, Sharpe {_f(bench['sharpe'], 2)}. "
              f"Generated by `research/campaign.py` from `sigtrade diagnose runs/campaign/backtests/<run> --json`."]
    return "\n".join(lines) + "\n"


def replace_block(doc: Path, marker: str, text: str) -> None:
    """Rewrite the text between ``<!-- marker -->`` and ``<!-- /marker -->`` in *doc*."""
    body = doc.read_text(encoding="utf-8")
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in body or end not in body:
        raise DataError(f"{doc} has no {start} ... {end} block to rewrite")
    head, rest = body.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{start}\n{text}{end}{tail}", encoding="utf-8")


# --- 7. summary ---------------------------------------------------------------------------------


def _pct(x: Any, digits: int = 1) -> str:
    v = _num(x)
    return "-" if v is None else f"{v * 100:.{digits}f} %"


def _spct(x: Any, digits: int = 1) -> str:
    v = _num(x)
    return "-" if v is None else f"{v * 100:+.{digits}f} %"


def _f(x: Any, digits: int = 3) -> str:
    v = _num(x)
    return "-" if v is None else f"{v:.{digits}f}"


def _usd(x: Any) -> str:
    v = _num(x)
    return "-" if v is None else f"${v:,.0f}"


def summary_table(names: list[str], evals: dict[str, Any], backtests: dict[str, Any]) -> str:
    """The side-by-side markdown table: test classification metrics | trading metrics."""
    head = ("| model | test F1 | PR-AUC | ROC-AUC | precision | recall | threshold || total return | CAGR | "
            "Sharpe | max DD | trades | turnover (x/yr) | commissions + slippage | gross P&L |")
    rows = [head, "|" + "---|" * 17]
    for name in names:
        e = evals.get(name, {}).get("test", {})
        b = backtests[name]
        cls = (f"{_f(e.get('f1'))} | {_f(e.get('pr_auc'))} | {_f(e.get('roc_auc'))} | {_f(e.get('precision'))} | "
               f"{_f(e.get('recall'))} | {_f(e.get('threshold'), 2)}") if e else "- | - | - | - | - | -"
        rows.append(
            f"| {name} | {cls} || {_pct(b['total_return'])} | {_pct(b['cagr'])} | {_f(b['sharpe'], 2)} | "
            f"{_pct(b['max_drawdown'])} | {b['trades']:,} | {_f(b['turnover'], 1)} | "
            f"{_usd(b['commission_paid'])} + {_usd(b['slippage_paid'])} | {_usd(b['gross_pnl'])} |"
        )
    return "\n".join(rows) + "\n"


def write_figures(curves: dict[str, Any], backtests: dict[str, Any], names: list[str], folder: Path) -> list[str]:
    """Equity curves of every run and a gross P&L vs costs bar chart."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    for name in names:
        eq = curves[name]
        idx = eq.index.tz_convert("America/New_York")
        style = {"color": "black", "linewidth": 2.0} if name == "spy_buy_and_hold" else {"linewidth": 1.1}
        ax.plot(idx, eq.to_numpy() / 1000.0, label=name, **style)
    ax.set(ylabel="equity (k$, start 100)", title="Test window 2023-10-02 .. 2025-10-01, after costs (0.10 % + 5 bps)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    files.append(str(folder / "equity.png"))
    fig.savefig(files[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    x = np.arange(len(names))
    gross = [backtests[n]["gross_pnl"] / 1000.0 for n in names]
    costs = [backtests[n]["costs"] / 1000.0 for n in names]
    net = [backtests[n]["net_pnl"] / 1000.0 for n in names]
    ax.bar(x - 0.27, gross, 0.27, label="gross P&L (before costs)")
    ax.bar(x, [-c for c in costs], 0.27, label="- commissions - slippage")
    ax.bar(x + 0.27, net, 0.27, label="net P&L")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set(ylabel="k$", title="Where the P&L went (test window)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(str(folder / "costs.png"))
    fig.savefig(files[-1])
    plt.close(fig)
    return files


def write_control_figure(diagnoses: dict[str, dict[str, Any]], models: list[str], folder: Path) -> str:
    """Left: random 10-name buy-and-holds vs the 10-slot runs; right: 10 slots vs one slot per symbol vs the universe."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    first = diagnoses[models[0]]["controls"]
    rnd = first["random"]
    edges = np.asarray(rnd["histogram"]["edges"]) * 100.0
    left.stairs(rnd["histogram"]["counts"], edges, fill=True, color="lightgrey", edgecolor="grey")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(models):
        v = diagnoses[name]["controls"]["strategy"]["total_return"] * 100.0
        left.axvline(v, color=colors[i % len(colors)], linewidth=1.6, label=f"{name} {v:+.0f} %")
    b = first["benchmark"]["total_return"] * 100.0
    left.axvline(b, color="black", linewidth=1.6, label=f"{first['benchmark']['symbol']} buy-and-hold {b:+.0f} %")
    left.set(xlabel="total return over the test window (%), after costs", ylabel=f"random {rnd['n']}-name subsets",
             title=f"10-slot runs vs {rnd['draws']:,} random {rnd['n']}-name buy-and-holds")
    left.legend(fontsize=8)
    x = np.arange(len(models))
    ten = [diagnoses[n]["controls"]["strategy"]["total_return"] * 100.0 for n in models]
    one = [diagnoses[n]["controls"]["one_slot"]["total_return"] * 100.0 for n in models]
    right.bar(x - 0.2, ten, 0.4, label="10 slots (the run)")
    right.bar(x + 0.2, one, 0.4, label="one slot per symbol (control d)")
    right.axhline(first["universe"]["total_return"] * 100.0, color="purple", linewidth=2.0, label="universe buy-and-hold (b)")
    right.axhline(b, color="black", linewidth=1.2, linestyle="--", label=f"{first['benchmark']['symbol']} buy-and-hold (a)")
    right.set_xticks(x, models)
    right.set(ylabel="total return (%)", title="The same signals with one slot per symbol")
    right.grid(axis="y", alpha=0.3)
    right.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    file = folder / "controls.png"
    fig.savefig(file)
    plt.close(fig)
    return str(file)


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m research.campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8, help="Optuna trials per architecture (default 8).")
    p.add_argument("--epochs", type=int, default=0, help="Override train.epochs of every config (0 = the configs').")
    p.add_argument("--out", type=Path, default=Path("runs/campaign"), help="Output folder (default runs/campaign).")
    p.add_argument("--archs", default=",".join(ARCHS), help="Architectures, comma-separated (default mlp,lstm,gru).")
    p.add_argument("--catalog", default="catalogs/real", help="Catalog of the real hourly bars (default catalogs/real).")
    p.add_argument("--figures", type=Path, default=None, help="Folder of the figures (default <out>/figures).")
    p.add_argument("--doc", type=Path, default=None, help="Rewrite the control tables of this markdown file (docs/campaign.md).")
    p.add_argument("--no-track", action="store_true", help="Do not record trials in MLflow.")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the whole campaign; return (and write) the summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", "research.campaign", *(argv or sys.argv[1:])])
    wall: dict[str, float] = {}
    t_all = time.perf_counter()
    _say(f"campaign: {command} -> {out}")

    t0 = time.perf_counter()
    catalog = ensure_catalog(args.catalog)
    wall["catalog"] = time.perf_counter() - t0

    tuned = {}
    for arch in archs:
        tuned[arch] = tune_and_export(arch, args, out)
        wall[f"tune_{arch}"] = tuned[arch]["tune_s"] + tuned[arch]["export_s"]

    evaluation = evaluate_models(archs, out, args.catalog)
    wall["evaluate"] = evaluation["wall_s"]

    t0 = time.perf_counter()
    bt = run_backtests(archs, out, args.catalog)
    wall["backtests"] = time.perf_counter() - t0
    names = [*archs, "ensemble", "spy_buy_and_hold", "universe_buy_and_hold"]
    models = [*archs, "ensemble"]
    figures = write_figures(bt["curves"], bt["runs"], names, args.figures or out / "figures")
    t0 = time.perf_counter()
    diagnoses = {n: diagnose_json(out / "backtests" / n) for n in models}
    wall["diagnose"] = time.perf_counter() - t0
    for n in models:
        bt["runs"][n]["percentile_among_random_subsets"] = diagnoses[n]["controls"]["random"]["strategy_percentile_total_return"]
    figures.append(write_control_figure(diagnoses, models, args.figures or out / "figures"))
    controls = control_tables(models, diagnoses)
    if args.doc is not None:
        replace_block(args.doc, "diagnose:controls", controls)
    wall["total"] = time.perf_counter() - t_all

    summary = _clean({
        "command": command, "out": str(out), "catalog": catalog, "archs": archs, "trials": args.trials,
        "tuning": tuned, "evaluation": {k: v for k, v in evaluation.items() if k != "wall_s"},
        "backtests": bt["runs"], "figures": figures, "wall_s": wall,
        "controls": {n: diagnoses[n]["controls"] for n in models},
        "break_even": {n: diagnoses[n]["costs"]["break_even"].get("total_return") for n in models},
    })
    _write_json(out / "summary.json", summary)
    table = summary_table(names, evaluation["models"], bt["runs"])
    (out / "summary.md").write_text(
        f"# Campaign summary\n\n`{command}` - total wall time {wall['total'] / 60:.1f} min\n\n{table}\n"
        f"## Controls (from `sigtrade diagnose`)\n\n{controls}", encoding="utf-8")
    sys.stdout.write(table)
    _say(f"campaign done in {wall['total'] / 60:.1f} min: {out / 'summary.json'}, {out / 'summary.md'}")
    return summary


if __name__ == "__main__":
    main()
