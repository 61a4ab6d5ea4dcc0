"""Honest evaluation of RL configurations: walk-forward folds x seeds, then the overfitting statistics.

:func:`evaluate_configs` (``sigtrade rl evaluate CONFIG... --folds K --seeds 0,1,2``):

1. **Folds.** The first config's ``data.test`` range is cut into ``K`` consecutive test
   ranges of equal numbers of NYSE sessions. Fold ``k`` validates on the ``val_months``
   calendar months before its test range and trains from the config's training start to
   the day before that (an expanding window): nothing of a fold's test range is seen
   before it is tested.
2. **Runs.** Every configuration x seed x fold is trained (:func:`research.rl.train.train_rl`,
   each an MLflow run in ``<out>/mlruns``), exported (ONNX + card) and backtested through
   the event engine on the fold's test range: every symbol of the config, one slot each
   (``max_positions = N``, ``position_size = 1/N``), the config's costs and fill timing,
   the policy strategy in batch mode. A finished run (``<out>/runs/.../result.json``) is
   not run again, so an interrupted evaluation resumes.
3. **Benchmarks** per fold, same engine, costs and window: SPY buy-and-hold and the
   equal-weight buy-and-hold of the config's universe.
4. **Statistics** on the stitched test returns (per bar, folds in order): every
   configuration x seed is one trial; the Deflated Sharpe Ratio of the best trial with
   ``N = seeds x configurations``; the PBO (CSCV) across configurations (each column the
   seed-mean return per bar); the distribution of net results per fold.

Results: ``<out>/summary.json`` and ``<out>/summary.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError
from research.config import parse_range
from research.rl.config import RLConfig, load_rl_config

__all__ = ["evaluate_configs", "fold_ranges", "parse_seeds"]

log = logging.getLogger(__name__)
Say = Callable[[str], None]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct non-negative integers)."""
    try:
        seeds = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds '{text}': expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds '{text}': expected distinct non-negative integers, e.g. 0,1,2")
    return seeds


def _months_before(day: dt.date, months: int) -> dt.date:
    y, m = day.year, day.month - months
    while m <= 0:
        m += 12
        y -= 1
    return dt.date(y, m, 1)


def fold_ranges(cfg: RLConfig, folds: int, val_months: int) -> list[dict[str, str]]:
    """The train / validation / test ranges of each fold (see the module docstring)."""
    from engine.sessions import calendar

    start, end = parse_range(cfg.data.test, "data.test")
    if start is None or end is None:
        raise ConfigError(f"data.test = '{cfg.data.test}': walk-forward folds need a closed test range START..END")
    train_start, _ = parse_range(cfg.data.train, "data.train")
    sessions = calendar().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    if len(sessions) < 2 * folds:
        raise ConfigError(f"data.test = '{cfg.data.test}' has {len(sessions)} sessions: too few for {folds} folds")
    chunks = np.array_split(np.arange(len(sessions)), folds)
    out = []
    for c in chunks:
        a, b = sessions[c[0]].date(), sessions[c[-1]].date()
        # validation: the val_months whole months before the test month (the fold's first session may be mid-month)
        v_start = _months_before(a.replace(day=1), val_months)
        v_end = a.replace(day=1) - dt.timedelta(days=1)
        t_end = v_start - dt.timedelta(days=1)
        out.append({"train": f"{train_start or ''}..{t_end}", "validation": f"{v_start}..{v_end}", "test": f"{a}..{b}"})
    return out


def _returns(equity: pd.Series) -> np.ndarray:
    eq = equity.to_numpy(dtype=np.float64)
    return eq[1:] / eq[:-1] - 1.0


def _bt_metrics(result: Any) -> dict[str, Any]:
    m = result.metrics
    return {k: m.get(k) for k in ("total_return", "sharpe", "max_drawdown", "trades", "turnover", "commission_paid",
                                  "slippage_paid", "exposure", "final_equity")}


def _backtest(cfg: RLConfig, test: str, symbols: list[str], kind: str, model: str | None) -> tuple[dict[str, Any], pd.Series]:
    from engine.config import load_config
    from engine.runner import run_backtest

    a, b = test.split("..")
    n = len(symbols)
    sets = [f'data.catalog="{cfg.data.catalog}"', f"data.symbols={json.dumps(symbols)}", f"data.start={a}",
            f"data.end={b}", f'data.bar="{cfg.data.bar}"', f"portfolio.capital={cfg.env.capital}",
            f"portfolio.max_positions={n}", f"portfolio.position_size={1.0 / n}",
            f"portfolio.fractional={str(cfg.env.fractional).lower()}", f'portfolio.account="{cfg.env.account}"',
            f'execution.fill="{cfg.env.fill}"', f"costs.commission_bps={cfg.costs.commission_bps}",
            f"costs.slippage_bps={cfg.costs.slippage_bps}", f"costs.commission_per_share={cfg.costs.commission_per_share}",
            f"costs.commission_min={cfg.costs.commission_min}", f'strategy.kind="{kind}"']
    if model is not None:
        sets += [f'strategy.model="{model}"', f"strategy.max_hold_bars={cfg.risk.max_hold_bars}"]
        sets += [f"risk.{k}={getattr(cfg.risk, k)}" for k in ("stop_loss", "take_profit", "trailing_stop",
                                                              "min_hold_bars", "cooldown_bars")]
    result = run_backtest(load_config(None, sets))
    return _bt_metrics(result), result.strategy.equity


def _write(path: Path, payload: Any) -> None:
    from engine.metrics import json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(payload), indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def evaluate_configs(
    configs: Sequence[str],
    *,
    folds: int = 3,
    seeds: Sequence[int] = (0, 1, 2),
    val_months: int = 3,
    overrides: Sequence[str] = (),
    out: str | Path = "runs/rl_evaluate",
    benchmarks: bool = True,
    track: bool = True,
    say: Say = lambda line: None,
) -> dict[str, Any]:
    """Run the walk-forward evaluation (see the module docstring); return and write the summary."""
    from engine.stats import deflated_sharpe_ratio, pbo_cscv, sharpe_ratio
    from research.rl.export import export_policy
    from research.rl.market import build_market
    from research.rl.train import train_rl, train_tracked

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfgs = {Path(c).stem: load_rl_config(c, list(overrides)) for c in configs}
    if len(cfgs) != len(configs):
        raise ConfigError("two configs share a file name: give each configuration its own name")
    first = next(iter(cfgs.values()))
    ranges = fold_ranges(first, folds, val_months)
    tracker = None
    if track:
        from research.tracking import Tracker

        tracker = Tracker(f"sqlite:///{(out / 'mlruns' / 'mlflow.db').resolve()}", experiment="sigtrade-rl-evaluate")
    rows: list[dict[str, Any]] = []
    curves: dict[tuple[str, int, int], pd.Series] = {}
    bench: dict[tuple[str, int], dict[str, Any]] = {}
    bench_curves: dict[tuple[str, int], pd.Series] = {}
    t_all = time.perf_counter()
    for k, rng in enumerate(ranges):
        say(f"fold {k}: train {rng['train']}, validation {rng['validation']}, test {rng['test']}")
        for name, base in cfgs.items():
            import msgspec

            data = msgspec.structs.replace(base.data, train=rng["train"], validation=rng["validation"], test=rng["test"])
            market = None
            for seed in seeds:
                run_dir = out / "runs" / name / f"fold{k}" / f"seed{seed}"
                done_file = run_dir / "result.json"
                if done_file.is_file():
                    row = json.loads(done_file.read_text())
                    rows.append(row)
                    curves[(name, seed, k)] = pd.read_parquet(run_dir / "equity.parquet")["equity"]
                    say(f"  {name} seed {seed}: done before ({row['total_return']:+.2%})")
                    continue
                cfg = msgspec.structs.replace(
                    base, data=data, train=msgspec.structs.replace(base.train, seed=seed),
                    output=msgspec.structs.replace(base.output, name=f"{name}-f{k}-s{seed}", run_dir=str(run_dir)),
                )
                if market is None:
                    market = build_market(cfg)
                t0 = time.perf_counter()
                command = f"sigtrade rl evaluate {' '.join(configs)} --folds {folds} --seeds {','.join(map(str, seeds))}"
                kwargs = {"market": market, "run_dir": run_dir, "command": command}
                result = (train_tracked(cfg, tracker, run_name=cfg.output.name, **kwargs) if tracker
                          else train_rl(cfg, **kwargs))
                policy = out / "policies" / name / f"fold{k}" / f"seed{seed}"
                export_policy(run_dir, policy, name=cfg.output.name)
                metrics, equity = _backtest(cfg, rng["test"], market.symbols, "policy", str(policy))
                row = {"name": name, "seed": seed, "fold": k, "test": rng["test"], **metrics,
                       "costs": float((metrics["commission_paid"] or 0) + (metrics["slippage_paid"] or 0)),
                       "status": result.status, "timesteps": result.timesteps, "best_timesteps": result.best_timesteps,
                       "val_net_sharpe": result.best_sharpe, "samples_per_s": result.samples_per_s,
                       "wall_s": time.perf_counter() - t0}
                equity.to_frame("equity").to_parquet(run_dir / "equity.parquet")
                _write(done_file, row)
                rows.append(row)
                curves[(name, seed, k)] = equity
                say(f"  {name} seed {seed}: {result.status} at {result.timesteps:,} steps ({result.samples_per_s:,.0f}/s), "
                    f"val Sharpe {result.best_sharpe:+.2f}; test {row['total_return']:+.2%}, Sharpe {row['sharpe']}, "
                    f"{row['trades']} trades, costs ${row['costs']:,.0f} [{row['wall_s']:.0f} s]")
            if benchmarks and market is not None and ("SPY buy-and-hold", k) not in bench:
                for bname, kind, syms in (("SPY buy-and-hold", "buy_and_hold", ["SPY"]),
                                          ("universe buy-and-hold", "buy_and_hold", market.symbols)):
                    m, eq = _backtest(base, rng["test"], syms, kind, None)
                    bench[(bname, k)] = {"name": bname, "fold": k, "test": rng["test"], **m,
                                         "costs": float((m["commission_paid"] or 0) + (m["slippage_paid"] or 0))}
                    bench_curves[(bname, k)] = eq
    # -- statistics -------------------------------------------------------------------------------
    names = list(cfgs)
    trials: dict[tuple[str, int], np.ndarray] = {}
    for name in names:
        for seed in seeds:
            parts = [_returns(curves[(name, seed, k)]) for k in range(folds) if (name, seed, k) in curves]
            if len(parts) == folds:
                trials[(name, seed)] = np.concatenate(parts)
    lines: list[str] = []
    stats: dict[str, Any] = {"n_trials": len(trials)}
    if trials:
        lengths = {len(v) for v in trials.values()}
        if len(lengths) != 1:
            raise ConfigError(f"the stitched test curves differ in length ({sorted(lengths)}): runs of different data")
        srs = {key: sharpe_ratio(v) for key, v in trials.items()}
        best = max(srs, key=lambda key: srs[key])
        from engine.sessions import periods_per_year

        ref = curves[(best[0], best[1], 0)]
        P = periods_per_year(pd.DatetimeIndex(ref.index))
        d = deflated_sharpe_ratio(trials[best], list(srs.values()), n_trials=len(trials)) if len(trials) > 1 else None
        stats.update({"best_trial": f"{best[0]} seed {best[1]}", "best_sharpe_annualised": srs[best] * math.sqrt(P),
                      "sharpe_annualised": {f"{n} seed {s}": v * math.sqrt(P) for (n, s), v in srs.items()}})
        if d is not None:
            stats.update({"dsr": d.dsr, "psr": d.psr, "sr0_annualised": d.sr0 * math.sqrt(P)})
            lines.append(f"trials: {len(trials)} (seeds x configurations); best {best[0]} seed {best[1]}: stitched test "
                         f"Sharpe {srs[best] * math.sqrt(P):.2f}; Deflated Sharpe Ratio {d.dsr:.3f} (PSR {d.psr:.3f}; "
                         f"expected best of {len(trials)} noise trials: Sharpe {d.sr0 * math.sqrt(P):.2f})")
        if len(names) >= 2:
            cols = [np.mean([trials[(n, s)] for s in seeds if (n, s) in trials], axis=0) for n in names]
            perf = np.column_stack(cols)
            blocks = 16 if perf.shape[0] >= 160 else 4
            pb = pbo_cscv(perf, n_blocks=blocks)
            stats.update({"pbo": pb.pbo, "pbo_blocks": blocks, "pbo_prob_oos_loss": pb.prob_oos_loss})
            lines.append(f"PBO across the {len(names)} configurations (CSCV, S={blocks}): {pb.pbo:.3f}; "
                         f"the in-sample winner's out-of-sample Sharpe is negative in {pb.prob_oos_loss:.0%} of splits")
    bench_rows = [bench[k] for k in sorted(bench, key=lambda x: (x[1], x[0]))]
    stitched: dict[str, float] = {}
    for bname in ("SPY buy-and-hold", "universe buy-and-hold"):
        parts = [_returns(bench_curves[(bname, k)]) for k in range(folds) if (bname, k) in bench_curves]
        if len(parts) == folds:
            r = np.concatenate(parts)
            stitched[bname] = float(np.prod(1.0 + r) - 1.0)
    for key, r in trials.items():
        stitched[f"{key[0]} seed {key[1]}"] = float(np.prod(1.0 + r) - 1.0)
    summary = {"configs": {n: str(c) for n, c in zip(names, configs, strict=True)}, "folds": ranges,
               "seeds": list(seeds), "rows": rows, "benchmarks": bench_rows, "stats": stats,
               "stitched_total_return": stitched, "lines": lines, "wall_s": time.perf_counter() - t_all}
    _write(out / "summary.json", summary)
    (out / "summary.md").write_text(_markdown(summary), encoding="utf-8")
    return summary


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:+.1f} %"


def _num(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _markdown(s: dict[str, Any]) -> str:
    lines = ["| run | fold | test | total return | Sharpe | max DD | trades | turnover | costs | val. net Sharpe |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(s["rows"], key=lambda r: (r["fold"], r["name"], r["seed"])):
        lines.append(f"| {r['name']} seed {r['seed']} | {r['fold']} | {r['test']} | {_pct(r['total_return'])} | "
                     f"{_num(r['sharpe'])} | {_pct(r['max_drawdown'])} | {r['trades']} | {_num(r['turnover'])} | "
                     f"${r['costs']:,.0f} | {_num(r['val_net_sharpe'])} |")
    for b in s["benchmarks"]:
        lines.append(f"| *{b['name']}* | {b['fold']} | {b['test']} | {_pct(b['total_return'])} | {_num(b['sharpe'])} | "
                     f"{_pct(b['max_drawdown'])} | {b['trades']} | {_num(b['turnover'])} | ${b['costs']:,.0f} | |")
    lines += ["", "Stitched over the folds (total return): "
              + "; ".join(f"{k} {_pct(v)}" for k, v in s["stitched_total_return"].items()), ""]
    lines += [f"- {x}" for x in s["lines"]]
    return "\n".join(lines) + "\n"
