"""The RL environment's parity contract, on real hourly bars: for fixed action sequences its fills and
equity equal the event engine's (a strategy replaying the same targets), bit for bit.

Each case is one symbol (IBKR SPY on the clock hour, yfinance AMD on the half hour) over a
few months, a seeded random target sequence that persists a few bars, and a seeded random
environment: both fill modes, whole and fractional shares, shorts on a margin account,
commissions with a per-share part and a minimum, slippage, stop loss, take profit, trailing
stop, time stop, minimum hold and cooldown. The event engine runs
``strategies.target:ReplayTargets`` (the same ``enter`` / ``exit`` path the policy
strategy uses) through :func:`engine.runner.simulate`; fills (time, side, quantity,
price, commission, exit reason) and the equity curve are compared with ``==``.
Also: no look-ahead in observations (truncate the bars at t: the observation at t is
unchanged), and the Python one-episode reference environment equals the numba one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config import load_config
from engine.overlays import EXIT_REASONS
from engine.runner import load_window, simulate
from research.rl.config import rl_config_from_dict
from research.rl.env import episode_trace
from research.rl.market import build_market
from tests.research.rl.conftest import RL_SYMBOLS, rl_raw

N_CASES = 14
WINDOW = ("2024-01-02", "2024-03-28")
FILL_COLS = ["ts", "symbol", "side", "qty", "price", "commission", "exit_reason"]


def random_case(rng: random.Random) -> dict[str, Any]:
    """One random environment (RL config sections) and whether its actions may short."""
    short = rng.random() < 0.35
    env: dict[str, Any] = {"fill": rng.choice(["next_open", "close"]), "position_size": rng.choice([1.0, 0.5, 0.3])}
    if short:
        env.update(account="margin", short=True)
    elif rng.random() < 0.5:
        env["fractional"] = True
    costs = {"commission_bps": rng.choice([0, 1, 10]), "slippage_bps": rng.choice([0, 2.5, 5, 10])}
    if rng.random() < 0.3:
        costs["commission_per_share"] = rng.choice([0.005, 0.01])
    if rng.random() < 0.3:
        costs["commission_min"] = rng.choice([1.0, 2.5])
    risk: dict[str, Any] = {}
    for key, values in (("stop_loss", [0.003, 0.01]), ("take_profit", [0.004, 0.01]), ("trailing_stop", [0.005, 0.01]),
                        ("max_hold_bars", [3, 8, 20]), ("min_hold_bars", [1, 2, 5]), ("cooldown_bars", [1, 3, 10])):
        if rng.random() < 0.45:
            risk[key] = rng.choice(values)
    return {"env": env, "costs": costs, "risk": risk, "symbol": rng.choice(RL_SYMBOLS), "seed": rng.randrange(10**6)}


CASES = [random_case(random.Random(500 + i)) for i in range(N_CASES)]


def _actions(n: int, short: bool, seed: int) -> np.ndarray:
    """Targets that persist: each bar keeps the previous one with probability 0.8."""
    rng = np.random.default_rng(seed)
    choices = [0, 1, 2] if short else [0, 1]
    out = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        out[i] = out[i - 1] if rng.random() < 0.8 else rng.choice(choices)
    return out


def _backtest_overrides(case: dict[str, Any], catalog: Path) -> list[str]:
    env, costs, risk = case["env"], case["costs"], case["risk"]
    o = [f'data.catalog="{catalog}"', f'data.symbols=["{case["symbol"]}"]', f"data.start={WINDOW[0]}",
         f"data.end={WINDOW[1]}", "portfolio.capital=100000", f"portfolio.position_size={env['position_size']}",
         "portfolio.max_positions=1", f"portfolio.fractional={str(env.get('fractional', False)).lower()}",
         f'portfolio.account="{env.get("account", "cash")}"', f'execution.fill="{env["fill"]}"']
    o += [f"costs.{k}={v}" for k, v in costs.items()]
    for k, v in risk.items():
        o.append(f"strategy.max_hold_bars={v}" if k == "max_hold_bars" else f"risk.{k}={v}")
    return o


@pytest.fixture(scope="module")
def markets(rl_catalog: Path) -> dict[tuple[Any, ...], Any]:
    return {}


def _market(case: dict[str, Any], catalog: Path, cache: dict[tuple[Any, ...], Any]) -> tuple[Any, Any]:
    raw = rl_raw(catalog, env=case["env"], costs=case["costs"], risk=case["risk"])
    cfg = rl_config_from_dict(raw)
    key = (case["env"].get("fractional", False), case["env"]["fill"], case["costs"]["slippage_bps"])
    if key not in cache:
        cache[key] = build_market(cfg)
    return cfg, cache[key]


REASONS: dict[str, int] = {}


@pytest.mark.parametrize("i", range(N_CASES))
def test_environment_fills_and_equity_equal_the_event_engines(i: int, rl_catalog: Path,
                                                               markets: dict[tuple[Any, ...], Any]) -> None:
    case = CASES[i]
    cfg, market = _market(case, rl_catalog, markets)
    s = case["symbol"]
    start, end = market.rows_between(s, *WINDOW)
    actions = _actions(end - start + 1, bool(case["env"].get("short")), case["seed"])
    trace = episode_trace(market, cfg, start, end, actions)

    bt = load_config(None, _backtest_overrides(case, rl_catalog))
    window, full, history = load_window(bt.data.catalog, [s], bt.data.bar, bt.data.start, bt.data.end, 0)
    assert len(window[s]) == end - start + 1
    targets = [(0, 1, -1)[a] for a in actions]
    event = simulate(bt, window, full, "target_replay",
                     {"target_ts": {s: window[s].index.asi8.tolist()}, "targets": {s: targets}}, history=history)

    ef = event.fills[FILL_COLS].reset_index(drop=True)
    kf = pd.DataFrame({
        "ts": pd.to_datetime([int(market.fill_ts[f[0]]) for f in trace["fills"]], utc=True),
        "symbol": s,
        "side": ["BUY" if f[1] > 0 else "SELL" for f in trace["fills"]],
        "qty": [f[2] for f in trace["fills"]],
        "price": [f[3] for f in trace["fills"]],
        "commission": [f[4] for f in trace["fills"]],
        "exit_reason": ["" if f[5] == 0 else EXIT_REASONS[f[5] - 1] for f in trace["fills"]],
    }).astype({"symbol": object, "side": object, "exit_reason": object})
    assert len(ef) >= 6, f"case {i} traded too little to be a test: {len(ef)} fills"
    for reason, n in ef["exit_reason"].value_counts().items():
        REASONS[reason] = REASONS.get(reason, 0) + int(n)
    if not (len(ef) == len(kf) and (ef == kf).all().all()):
        n = min(len(ef), len(kf))
        same = (ef.iloc[:n] == kf.iloc[:n]).all(axis=1).to_numpy()
        j = int(np.argmin(same)) if not same.all() else n
        pytest.fail(f"case {i} {case}: fills differ ({len(ef)} event vs {len(kf)} env) from row {j}:\n"
                    f"event:\n{ef.iloc[j:j + 3].to_string()}\nenv:\n{kf.iloc[j:j + 3].to_string()}")
    assert np.array_equal(event.equity.to_numpy(), trace["equity"]), (
        f"case {i}: equity differs, max |diff| {np.abs(event.equity.to_numpy() - trace['equity']).max()}")
    # the rewards telescope to the log of the terminal equity (no penalties configured)
    assert np.sum(trace["rewards"]) == pytest.approx(np.log(trace["terminal"] / 100_000.0), abs=1e-9)
    # the itemised info adds up: commissions and slippage are the fills', net P&L the equity change
    infos = trace["infos"]
    assert sum(x["commission"] for x in infos) == pytest.approx(ef["commission"].sum(), abs=1e-6)
    assert sum(x["slippage"] for x in infos) == pytest.approx(event.fills["slippage"].sum(), rel=1e-9, abs=1e-6)
    net = sum(x["gross_pnl"] - x["commission"] - x["slippage"] for x in infos)
    assert net == pytest.approx(trace["terminal"] - 100_000.0, abs=1e-6)


def test_every_exit_reason_occurred() -> None:
    """Runs after the cases (file order): stops, time stop, signal exits and end-of-episode flattens all happened."""
    if len(REASONS) == 0:
        pytest.skip("run with the parity cases")
    assert set(REASONS) >= {"", "signal", "stop_loss", "take_profit", "trailing_stop", "time_stop", "end"}, REASONS


def test_the_cases_cover_every_rule() -> None:
    text = repr(CASES)
    for needle in ("'next_open'", "'close'", "'fractional': True", "'short': True", "commission_per_share",
                   "commission_min", "stop_loss", "take_profit", "trailing_stop", "max_hold_bars", "min_hold_bars",
                   "cooldown_bars"):
        assert needle in text, f"no case sets {needle}"
