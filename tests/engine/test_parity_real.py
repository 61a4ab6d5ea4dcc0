"""The two simulators, one truth: the numba kernel against the event engine, on real hourly bars.

For 24 seeded random configurations of the signal strategy - together covering every
risk overlay, every regime filter and both ways to combine them, both fill modes, whole
and fractional shares, shorts on a margin account, commissions with a per-share part and
a minimum, ``close_at_end`` on and off - over five real symbols of mixed alignment (three
bar on the hour, two on the half hour), the kernel's fills equal the event engine's
exactly: timestamp, symbol, side, quantity, price, commission and exit reason.

The equity curve is compared **exactly** (``==`` on float64), not to a tolerance: the
kernel replays sigtrade's ledger (engine/ledger.py) with the same additions in the same
order - cash as the running sum of fill flows in (time, symbol) order, positions marked
at the window closes and summed in symbol-name order - so there is no summation-order
difference to allow for. Derived figures (Sharpe, Sortino, drawdown, turnover) are
computed by different code (online moments in the kernel, numpy in engine/metrics.py)
and agree to 1e-9 relative.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config import load_config
from engine.metrics import compute_metrics
from engine.runner import benchmark_history, load_window, run_backtest
from engine.sim import kernels_nb as K
from engine.sim.fastpath import FastPath
from engine.strategy_registry import warmup_bars
from tests.engine.conftest import OVERLAY_SYMBOLS

N_CONFIGS = 24
WINDOW = ["data.start=2024-01-02", "data.end=2024-04-30"]
FILL_COLS = ["ts", "symbol", "side", "qty", "price", "commission", "exit_reason"]


def random_overrides(rng: random.Random) -> list[str]:
    """One random configuration: every overlay is on with a fair chance, at levels that trigger."""
    o: list[str] = []
    entry = rng.uniform(0.45, 0.56)
    exit_ = entry - rng.uniform(0.0, 0.03)
    o += [f"strategy.entry_threshold={entry:.4f}", f"strategy.exit_threshold={exit_:.4f}"]
    o.append(f'execution.fill="{rng.choice(["next_open", "close"])}"')
    if rng.random() < 0.5:
        o.append("portfolio.fractional=true")
    if rng.random() < 0.3:
        o += [
            'portfolio.account="margin"', f"strategy.short_threshold={exit_ - rng.uniform(0.0, 0.03):.4f}",
            f"strategy.cover_threshold={exit_:.4f}",
        ]
    o.append(f"portfolio.position_size={rng.choice([0.1, 0.2, 0.3, 0.5])}")
    o.append(f"portfolio.max_positions={rng.choice([1, 2, 3, 10])}")
    o.append(f"costs.slippage_bps={rng.choice([0, 2.5, 5, 10])}")
    o.append(f"costs.commission_bps={rng.choice([0, 1, 10])}")
    if rng.random() < 0.3:
        o.append(f"costs.commission_per_share={rng.choice([0.005, 0.01])}")
    if rng.random() < 0.3:
        o.append(f"costs.commission_min={rng.choice([1.0, 2.5])}")
    if rng.random() < 0.4:
        o += ['risk.sizing="atr"', f"risk.atr_period={rng.choice([7, 14])}", f"risk.atr_risk={rng.choice([0.005, 0.01])}"]
    o.append(f"risk.max_gross_exposure={rng.choice([0.3, 0.6, 1.0, 2.0])}")
    if rng.random() < 0.5:
        o.append(f"risk.stop_loss={rng.choice([0.003, 0.01, 0.02])}")
    if rng.random() < 0.5:
        o.append(f"risk.take_profit={rng.choice([0.004, 0.01, 0.03])}")
    if rng.random() < 0.5:
        o.append(f"risk.trailing_stop={rng.choice([0.005, 0.01])}")
    if rng.random() < 0.5:
        o.append(f"strategy.max_hold_bars={rng.choice([3, 8, 20])}")
    if rng.random() < 0.5:
        o.append(f"risk.min_hold_bars={rng.choice([1, 2, 5])}")
    if rng.random() < 0.5:
        o.append(f"risk.cooldown_bars={rng.choice([1, 3, 10])}")
    if rng.random() < 0.4:
        o += [
            "risk.cost_filter=true", f"risk.cost_multiple={rng.choice([0.05, 0.2, 0.5])}",
            f"risk.cost_filter_window={rng.choice([50, 200])}",
        ]
    if rng.random() < 0.4:
        o += [f"risk.drawdown_limit={rng.choice([0.005, 0.01, 0.02])}", f"risk.drawdown_pause_bars={rng.choice([0, 5, 30])}"]
    if rng.random() < 0.4:
        o.append(f"risk.daily_loss_limit={rng.choice([0.002, 0.005])}")
    if rng.random() < 0.3:
        o.append(f"regime.trend.sma={rng.choice([20, 100])}")
    if rng.random() < 0.3:
        o += [
            f"regime.volatility.window={rng.choice([10, 20])}", f"regime.volatility.lookback={rng.choice([100, 300])}",
            f"regime.volatility.quantile={rng.choice([0.5, 0.8])}",
        ]
    if rng.random() < 0.3:
        o += [f"regime.breadth.sma={rng.choice([10, 50])}", f"regime.breadth.min_share={rng.choice([0.4, 0.6])}"]
    if rng.random() < 0.5:
        o.append('regime.combine="or"')
    if rng.random() < 0.2:
        o.append("execution.close_at_end=false")
    return o


CONFIGS = [random_overrides(random.Random(1000 + i)) for i in range(N_CONFIGS)]


def _universe_key(cfg: Any) -> tuple[Any, ...]:
    return (cfg.execution.fill, cfg.portfolio.fractional, cfg.portfolio.account, cfg.execution.close_at_end)


@pytest.fixture(scope="module")
def base(overlay_catalog: Path, overlay_model: Path) -> list[str]:
    return [
        f'data.catalog="{overlay_catalog}"', f"data.symbols={json.dumps(OVERLAY_SYMBOLS)}", *WINDOW,
        'strategy.kind="signal"', f'strategy.model="{overlay_model}"',
    ]


@pytest.fixture(scope="module")
def inputs(base: list[str]) -> dict[str, Any]:
    """Bars and batch probabilities, computed once, exactly as the runner and the strategy do."""
    from strategies.signal import _load, batch_probabilities, label_horizon

    cfg = load_config(None, base)
    window, full, history = load_window(
        cfg.data.catalog, list(cfg.data.symbols), cfg.data.bar, cfg.data.start, cfg.data.end, warmup_bars(cfg)
    )
    model = _load(cfg.strategy.model, cfg.data.bar)
    return {
        "window": window, "full": full, "history": history, "bench": benchmark_history(cfg, history),
        "probs": batch_probabilities(model, history), "horizon": label_horizon(model), "threshold": model.threshold,
    }


def _fastpath(cfg: Any, inputs: dict[str, Any], cache: dict[Any, FastPath]) -> FastPath:
    key = _universe_key(cfg)
    if key not in cache:
        cache[key] = FastPath(
            cfg, inputs["window"], inputs["full"], inputs["history"], inputs["probs"], inputs["bench"],
            inputs["horizon"], inputs["threshold"],
        )
    return cache[key]


def test_the_configurations_cover_every_overlay_and_filter() -> None:
    text = " ".join(" ".join(o) for o in CONFIGS)
    for needle in (
        'fill="next_open"', 'fill="close"', "fractional=true", 'account="margin"', "commission_per_share",
        "commission_min", 'sizing="atr"', "max_gross_exposure", "stop_loss", "take_profit", "trailing_stop",
        "max_hold_bars", "min_hold_bars", "cooldown_bars", "cost_filter=true", "drawdown_limit",
        "daily_loss_limit", "trend.sma", "volatility.window", "breadth.sma", 'combine="or"', "close_at_end=false",
    ):
        assert needle in text, f"no random configuration sets {needle}"
    assert sum("fractional=true" not in " ".join(o) for o in CONFIGS) > 0, "whole shares too"


def test_kernel_fills_and_equity_equal_the_event_engines(base: list[str], inputs: dict[str, Any]) -> None:
    cache: dict[Any, FastPath] = {}
    reasons: dict[str, int] = {}
    failures: list[str] = []
    traced: dict[int, np.ndarray] = {}
    for i, overrides in enumerate(CONFIGS):
        cfg = load_config(None, [*base, *overrides])
        fast = _fastpath(cfg, inputs, cache)
        kernel_run, kernel_equity, stats = fast.trace(cfg)
        traced[i] = stats
        event = run_backtest(cfg).strategy
        ef = event.fills[FILL_COLS].reset_index(drop=True)
        kf = kernel_run.fills[FILL_COLS].reset_index(drop=True)
        for r, n in ef["exit_reason"].value_counts().items():
            reasons[r] = reasons.get(r, 0) + n
        if len(ef) < 20:
            failures.append(f"config {i} traded too little to be a test ({len(ef)} fills): {overrides}")
        if not (len(ef) == len(kf) and (ef == kf).all().all()):
            n = min(len(ef), len(kf))
            same = (ef.iloc[:n] == kf.iloc[:n]).all(axis=1).to_numpy()
            j = int(np.argmin(same)) if not same.all() else n
            failures.append(
                f"config {i} {overrides}: fills differ ({len(ef)} event vs {len(kf)} kernel) from row {j}:\n"
                f"event:\n{ef.iloc[j:j + 3].to_string()}\nkernel:\n{kf.iloc[j:j + 3].to_string()}"
            )
            continue
        if not np.array_equal(event.equity.to_numpy(), kernel_equity.to_numpy()):
            failures.append(f"config {i}: equity differs, max |diff| {np.abs(event.equity - kernel_equity).max()}")
        pd.testing.assert_series_equal(event.equity, kernel_run.equity, check_exact=True)
        pd.testing.assert_frame_equal(event.trades, kernel_run.trades, check_exact=True)
        em = compute_metrics(event, risk_free_rate=cfg.metrics.risk_free_rate)
        km = fast.metrics(stats[None, :]).iloc[0]
        for key in ("sharpe", "sortino", "total_return", "max_drawdown", "turnover", "commission_paid", "slippage_paid"):
            if em[key] is not None:
                assert km[key] == pytest.approx(em[key], rel=1e-9, abs=1e-12), (i, key)
        assert km["trades"] == em["trades"]
        assert km["fills"] == em["fills"]
    assert not failures, "\n\n".join(failures)
    assert set(reasons) >= {
        "", "signal", "stop_loss", "take_profit", "trailing_stop", "time_stop", "drawdown", "daily_loss", "end",
    }, f"every exit reason must occur somewhere: {reasons}"

    # the parallel sweep kernel gives every configuration the same statistics as its trace
    for key, fast in cache.items():
        idx = [i for i, o in enumerate(CONFIGS) if _universe_key(load_config(None, [*base, *o])) == key]
        cfgs = [load_config(None, [*base, *CONFIGS[i]]) for i in idx]
        fp, ip = fast.params(cfgs)
        stats, _ = fast.run(fp, ip)
        for row, i in zip(stats, idx, strict=True):
            assert np.array_equal(row, traced[i]), f"config {i}: sweep and trace disagree"


def test_sweep_equity_paths_are_the_traced_curves(base: list[str], inputs: dict[str, Any]) -> None:
    cfgs = [load_config(None, [*base, "strategy.entry_threshold=0.5", f"risk.stop_loss={sl}"]) for sl in (0, 0.005, 0.01)]
    fast = _fastpath(cfgs[0], inputs, {})
    fp, ip = fast.params(cfgs)
    stats, paths = fast.run(fp, ip, keep_equity=True)
    assert paths.shape == (3, len(fast.window_index))
    for c, cfg in enumerate(cfgs):
        _, equity, _ = fast.trace(cfg)
        assert np.array_equal(paths[c], equity.to_numpy())
        assert stats[c, K.S_FINAL] == equity.iloc[-1]


@pytest.mark.parametrize(
    "extra",
    [[], ["portfolio.fractional=true", 'execution.fill="close"', "costs.commission_per_share=0.01", "costs.commission_min=1"]],
    ids=["whole-next_open", "fractional-close-per_share-min"],
)
def test_independent_threshold_kernel_is_one_symbol_backtests(base: list[str], inputs: dict[str, Any], extra: list[str]) -> None:
    """Each (thresholds, symbol) column equals a one-symbol backtest with its own capital."""
    from engine.sim.independent import IndependentSweep

    common = [*base, "portfolio.capital=10000", "portfolio.position_size=0.5", *extra]
    cfg = load_config(None, common)
    window, full, history = inputs["window"], inputs["full"], inputs["history"]
    ind = IndependentSweep(cfg, window, inputs["probs"])
    rng = np.random.default_rng(7)
    entry = np.round(rng.uniform(0.42, 0.6, 40), 3)
    exit_ = np.round(entry - rng.uniform(0.0, 0.06, 40), 3)
    out = ind.run(entry, exit_)
    assert np.array_equal(out, ind.run_reference(entry, exit_)), "the jump-table kernel equals the bar-by-bar one"
    assert out[:, :, 1].sum() > 1000
    for j, s in enumerate(OVERLAY_SYMBOLS):
        one = [*common, f'data.symbols=["{s}"]']
        fast = FastPath(
            load_config(None, one), {s: window[s]}, {s: full[s]}, {s: history[s]}, inputs["probs"], None,
            inputs["horizon"], inputs["threshold"],
        )
        cfgs = [load_config(None, [*one, f"strategy.entry_threshold={e}", f"strategy.exit_threshold={x}"]) for e, x in zip(entry, exit_, strict=True)]
        stats, _ = fast.run(*fast.params(cfgs))
        assert np.array_equal(stats[:, K.S_FINAL], out[:, j, 0]), s
        assert np.array_equal(stats[:, K.S_TRADES], out[:, j, 1]), s
        assert np.array_equal(stats[:, K.S_COMMISSION], out[:, j, 4]), s
    # and one column straight against the event engine
    s, c = "AMD", 3
    event = run_backtest(load_config(None, [
        *common, f'data.symbols=["{s}"]', f"strategy.entry_threshold={entry[c]}", f"strategy.exit_threshold={exit_[c]}",
    ])).strategy
    j = OVERLAY_SYMBOLS.index(s)
    assert event.equity.iloc[-1] == out[c, j, 0]
    assert len(event.trades) == out[c, j, 1]


def test_independent_sweep_refuses_what_it_does_not_simulate(base: list[str], inputs: dict[str, Any]) -> None:
    from engine.errors import ConfigError
    from engine.sim.independent import IndependentSweep

    cfg = load_config(None, [*base, "risk.stop_loss=0.01", "regime.trend.sma=50"])
    with pytest.raises(ConfigError, match=r"risk.stop_loss, \[regime\]"):
        IndependentSweep(cfg, inputs["window"], inputs["probs"])
