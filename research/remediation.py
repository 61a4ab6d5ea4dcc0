"""The remediation study: thresholds x regime filters x anti-churn overlays for the campaign ensemble.

Protocol (see docs/remediation.md):

(a) Selection: ``sigtrade sweep`` of the campaign's F1-weighted ensemble over a 1,728-config
    grid on the VALIDATION window (2023-07-03 .. 2023-09-29), ranked by Sharpe; the sweep prints
    and writes the DSR of the best and the PBO (CSCV) of the grid. The validation-best config is
    re-run once in the event engine (``--verify-top 1``).
(b) Test: that single config, the untreated campaign ensemble, SPY buy-and-hold and the
    equal-weight 30-name buy-and-hold run once each through the event engine on the TEST window
    (2023-10-02 .. 2025-10-01), 0.10 %/side + 5 bps, next-open fills.
(c) Diagnostics that select ON TEST DATA (labelled as such): the same grid swept on the test
    window with ``--walk-forward train=12M,test=3M`` and ``train=6M,test=3M``; DSR/PBO of that
    sweep; validation-vs-test Sharpe of every config.
(d) Controls of the two test runs (the validation-best config and the untreated ensemble) from
    ``sigtrade diagnose runs/remediation/backtests/<run> --json``: the universe buy-and-hold,
    random 10-name buy-and-holds, one slot per symbol, the break-even cost. The table between
    the ``<!-- diagnose:controls -->`` markers of docs/remediation.md is rewritten from them.

Run: ``.venv/bin/python -m research.remediation`` (outputs in runs/remediation/, figures in
docs/remediation/). About a minute on 2 CPU cores once the numba kernels are cached.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
VAL_CONFIG = Path("config/remediation/validation.toml")
TEST_CONFIG = Path("config/remediation/test.toml")
OUT = Path("runs/remediation")
FIGS = Path("docs/remediation")
SIGTRADE = str(Path(sys.executable).parent / "sigtrade")

GRID = [
    "strategy.entry_threshold=0.40:0.70:0.02",
    "risk.min_hold_bars=0,6,24",
    "risk.cooldown_bars=0,6,24",
    "regime.trend.sma=0,200,700",
    "risk.cost_filter=false,true",
    "risk.stop_loss=0,0.05",
]
AXES = [g.split("=", 1)[0] for g in GRID]
DIAGNOSED = ("validation_best", "untreated_ensemble")
"""The test-window runs whose controls come from ``sigtrade diagnose``."""
DOC = Path("docs/remediation.md")


def _say(msg: str) -> None:
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] [remediation] {msg}\n")
    sys.stdout.flush()


def _grid_args() -> list[str]:
    return [x for g in GRID for x in ("--grid", g)]


def run_sweep(config: Path, name: str, extra: list[str]) -> dict[str, Any]:
    """Run one ``sigtrade sweep`` through the CLI; keep its log, its outputs and its wall time."""
    out = OUT / name
    cmd = [SIGTRADE, "sweep", str(config), *_grid_args(), "--top", "15", "--out", str(out), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - t0
    (OUT / f"{name}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        raise SystemExit(
            f"sweep {name} failed (rc {done.returncode}): {shlex.join(cmd)}\n{done.stderr[-3000:]}"
        )
    over = json.loads((out / "overfitting.json").read_text())
    _say(f"sweep {name}: {over['configs']} configs in {wall:.1f}s")
    return {
        "command": shlex.join(["sigtrade", *cmd[1:]]),
        "wall_s": wall,
        "overfitting": over["overfitting"],
        "results": str(out / "results.parquet"),
    }


def _sets_of(row: pd.Series) -> list[str]:
    sets = []
    for ax in AXES:
        v = row[ax]
        if isinstance(v, (bool, np.bool_)):
            sets.append(f"{ax}={'true' if v else 'false'}")
        else:
            sets.append(
                f"{ax}={float(v):g}"
                if ax in ("strategy.entry_threshold", "risk.stop_loss")
                else f"{ax}={int(v)}"
            )
    return sets


def run_backtest(config: Path, sets: list[str]) -> tuple[Any, float, Any]:
    """One event-engine run of ``config`` with ``--set``-style overrides: (result, wall seconds, write_outputs)."""
    from engine.config import load_config
    from engine.report import write_outputs
    from engine.runner import run_backtest as _run

    cfg = load_config(config, sets)
    t0 = time.perf_counter()
    result = _run(cfg)
    wall = time.perf_counter() - t0
    return result, wall, write_outputs


def backtests(chosen_sets: list[str]) -> dict[str, Any]:
    runs = {
        "validation_best": (TEST_CONFIG, chosen_sets),
        "untreated_ensemble": (TEST_CONFIG, []),
        "spy_buy_and_hold": (TEST_CONFIG, ['strategy.kind="buy_and_hold"', 'data.symbols=["SPY"]']),
        "universe_buy_and_hold": (TEST_CONFIG, ['strategy.kind="buy_and_hold"']),
        "validation_best_on_validation": (VAL_CONFIG, chosen_sets),
        "untreated_on_validation": (VAL_CONFIG, []),
    }
    rows: dict[str, Any] = {}
    curves: dict[str, pd.Series] = {}
    from engine.config import load_config
    from engine.diagnosis import diagnose
    from strategies.signal import diagnosis_inputs

    for name, (config, sets) in runs.items():
        result, wall, write_outputs = run_backtest(config, sets)
        if name in DIAGNOSED:  # what `sigtrade backtest --out` adds
            cfg = load_config(config, sets)
            result.diagnosis = diagnose(result, cfg, signal_loader=diagnosis_inputs)
        write_outputs(result, OUT / "backtests" / name)
        m = dict(result.metrics)
        capital = float(m["capital"])
        net = float(m["final_equity"]) - capital
        costs = float(m["commission_paid"] or 0.0) + float(m["slippage_paid"] or 0.0)
        keep = {
            k: m.get(k)
            for k in (
                "total_return",
                "cagr",
                "sharpe",
                "max_drawdown",
                "trades",
                "turnover",
                "commission_paid",
                "slippage_paid",
                "final_equity",
                "exposure",
                "time_in_market",
            )
        }
        keep.update(
            {
                "net_pnl": net,
                "costs": costs,
                "gross_pnl": net + costs,
                "wall_s": wall,
                "command": shlex.join(
                    ["sigtrade", "backtest", str(config), *[x for s in sets for x in ("--set", s)]]
                ),
            }
        )
        rows[name] = json.loads(json.dumps(keep, default=float))
        curves[name] = result.strategy.equity
        _say(
            f"backtest {name}: {m['total_return']:+.2%}, Sharpe {float(m['sharpe'] or np.nan):.2f}, "
            f"maxDD {m['max_drawdown']:.2%}, {m['trades']} trades, costs ${costs:,.0f} [{wall:.1f}s]"
        )
    return {"runs": rows, "curves": curves}


def control_table(diagnoses: dict[str, dict[str, Any]]) -> str:
    """The markdown control table of the diagnosed test runs (``sigtrade diagnose --json``)."""
    from research.campaign import _f, _pct, _spct, _usd, break_even_text

    head = ("| test run | total return | (a) SPY buy-and-hold | (b) universe buy-and-hold | (c) percentile among "
            "random 10-name buy-and-holds (total return / Sharpe) | (d) one slot per symbol | break-even cost "
            "(bps per side) | costs / gross |\n|---|---|---|---|---|---|---|---|")
    rows = [head]
    for name, d in diagnoses.items():
        c = d["controls"]
        r = c["random"]
        bps = break_even_text(d["costs"]["break_even"])
        rows.append(
            f"| {name} | {_spct(c['strategy']['total_return'])} | {_spct(c['benchmark']['total_return'])} | "
            f"{_spct(c['universe']['total_return'])} (Sharpe {_f(c['universe']['sharpe'], 2)}) | "
            f"{_pct(r['strategy_percentile_total_return'], 0)} / {_pct(r['strategy_percentile_sharpe'], 0)} | "
            f"{_spct(c['one_slot']['total_return'])} (gross {_usd(c['one_slot']['gross_pnl'])}) | {bps} | "
            f"{_pct(d['costs']['costs_share_of_gross'], 0)} |"
        )
    first = next(iter(diagnoses.values()))["controls"]["random"]
    q = first["total_return"]
    rows += ["", f"Random subsets: {first['draws']:,} draws of {first['n']} names (seed {first['seed']}), same costs and fills: "
             f"total return p5 {_spct(q['p5'])}, median {_spct(q['p50'])}, p95 {_spct(q['p95'])}. Generated by "
             "`research/remediation.py` from `sigtrade diagnose runs/remediation/backtests/<run> --json`."]
    return "\n".join(rows) + "\n"


def figures(
    curves: dict[str, pd.Series], val: pd.DataFrame, test: pd.DataFrame, best: int
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    FIGS.mkdir(parents=True, exist_ok=True)
    files = []
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=80)
    styles = {
        "spy_buy_and_hold": {"color": "black", "linewidth": 1.8},
        "universe_buy_and_hold": {"color": "grey", "linestyle": "--"},
        "untreated_ensemble": {"color": "tab:orange"},
        "validation_best": {"color": "tab:blue", "linewidth": 1.6},
    }
    for name, st in styles.items():
        eq = curves[name]
        ax.plot(eq.index.tz_convert("America/New_York"), eq.to_numpy() / 1000.0, label=name, **st)
    ax.set(
        ylabel="equity (k$)", title="Test 2023-10-02 .. 2025-10-01, after 0.10 % + 5 bps per side"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    files.append(str(FIGS / "equity_test.png"))
    fig.savefig(files[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.6), dpi=80)
    ax.scatter(val["sharpe"], test["sharpe"], s=5, alpha=0.4, label="1,728 configs")
    ax.scatter(
        [val.loc[best, "sharpe"]],
        [test.loc[best, "sharpe"]],
        s=60,
        color="red",
        marker="*",
        label=f"validation best (config {best})",
    )
    ax.scatter(
        [val.loc[0, "sharpe"]],
        [test.loc[0, "sharpe"]],
        s=40,
        color="tab:orange",
        marker="s",
        label="config 0 = untreated (0.40, no overlays)",
    )
    rho = val["sharpe"].corr(test["sharpe"], method="spearman")
    ax.set(
        xlabel="validation Sharpe (Jul-Sep 2023)",
        ylabel="test Sharpe (Oct 2023 - Sep 2025)",
        title=f"Does validation rank test? Spearman rho = {rho:.2f}",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(str(FIGS / "val_vs_test_sharpe.png"))
    fig.savefig(files[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=80)
    for d, lab in ((val, "validation"), (test, "test")):
        g = d.groupby("strategy.entry_threshold")["sharpe"]
        ax.plot(
            g.median().index,
            g.median().to_numpy(),
            marker="o",
            label=f"{lab}: median over overlays",
        )
        ax.fill_between(
            g.median().index, g.quantile(0.1).to_numpy(), g.quantile(0.9).to_numpy(), alpha=0.15
        )
    ax.set(
        xlabel="entry threshold",
        ylabel="Sharpe",
        title="Sharpe by entry threshold (band: p10-p90 of 108 overlay combos)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(str(FIGS / "sharpe_by_threshold.png"))
    fig.savefig(files[-1])
    plt.close(fig)
    return files


def main() -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    sweeps = {
        "sweep_validation": run_sweep(VAL_CONFIG, "sweep_validation", ["--verify-top", "1"]),
        "sweep_test_wf12": run_sweep(
            TEST_CONFIG, "sweep_test_wf12", ["--walk-forward", "train=12M,test=3M"]
        ),
        "sweep_test_wf6": run_sweep(
            TEST_CONFIG, "sweep_test_wf6", ["--walk-forward", "train=6M,test=3M"]
        ),
    }
    val = pd.read_parquet(sweeps["sweep_validation"]["results"])
    test = pd.read_parquet(sweeps["sweep_test_wf12"]["results"])
    assert (val[AXES].reset_index(drop=True) == test[AXES].reset_index(drop=True)).all().all()
    best = int(sweeps["sweep_validation"]["overfitting"]["best_config"])
    assert best == int(val["sharpe"].idxmax())
    chosen = _sets_of(val.loc[best])
    _say(f"validation-best config {best}: {chosen}")
    bt = backtests(chosen)
    rho = float(val["sharpe"].corr(test["sharpe"], method="spearman"))
    rank_on_test = int((test["sharpe"] > test.loc[best, "sharpe"]).sum()) + 1
    summary = {
        "grid": GRID,
        "n_configs": int(len(val)),
        "chosen_config": best,
        "chosen_sets": chosen,
        "chosen_val_row": json.loads(val.loc[best].to_json()),
        "chosen_test_sweep_row": json.loads(test.loc[best].to_json()),
        "chosen_rank_on_test": rank_on_test,
        "spearman_val_test_sharpe": rho,
        "test_sharpe_quantiles": test["sharpe"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).to_dict(),
        "val_sharpe_quantiles": val["sharpe"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).to_dict(),
        "sweeps": {
            k: {kk: vv for kk, vv in v.items() if kk != "results"} for k, v in sweeps.items()
        },
        "backtests": bt["runs"],
    }
    from research.campaign import diagnose_json, replace_block

    diagnoses = {name: diagnose_json(OUT / "backtests" / name) for name in DIAGNOSED}
    summary["controls"] = {name: d["controls"] for name, d in diagnoses.items()}
    summary["break_even"] = {name: d["costs"]["break_even"].get("total_return") for name, d in diagnoses.items()}
    replace_block(DOC, "diagnose:controls", control_table(diagnoses))
    summary["figures"] = figures(bt["curves"], val, test, best)
    summary["wall_s"] = time.perf_counter() - t_all
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    _say(
        f"done in {summary['wall_s']:.0f}s; spearman(val, test Sharpe) = {rho:.2f}; "
        f"chosen config ranks {rank_on_test} of {len(test)} on test"
    )
    return summary


if __name__ == "__main__":
    main()
