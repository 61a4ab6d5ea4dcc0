"""The Diagnosis of a backtest on real hourly bars, each figure against an independent computation.

One signal run (five real symbols of mixed alignment, Jan-Apr 2024, 2 slots, 1 + 1 bps per
side) is backtested in the event engine and diagnosed once (module fixture); the tests then
recompute what the diagnosis claims without its code: gross minus net equity from the
fills, the break-even cost in a fresh event-engine run, the decile table and monthly IC
with pandas/scipy, the random-subset control with plain numpy and NautilusTrader's own
price and money rounding, the universe buy-and-hold in the event engine; and the report
page renders every diagnosis plot in headless Chromium (screenshot kept in
``$SIGTRADE_ARTIFACTS``, default ``out/test-artifacts/``, as ``diagnosis_report.png``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.objects import Money, Price
from scipy.stats import spearmanr

from engine.config import load_config
from engine.diagnosis import diagnose
from engine.diagnosis.replay import with_costs
from engine.fills import execution_quotes
from engine.ledger import mark_to_market
from engine.report import write_outputs
from engine.results import BacktestResult
from engine.runner import run_backtest, simulate
from engine.sessions import periods_per_year
from tests.chromium import find_chromium, load_dom
from tests.conftest import ROOT
from tests.engine.conftest import OVERLAY_SYMBOLS
from tests.engine.test_report import PLOT_IDS

WINDOW = ["data.start=2024-01-02", "data.end=2024-04-30"]
DRAWS = 200


def _cfg(catalog: Path, model: Path, *extra: str) -> Any:
    return load_config(None, [
        f'data.catalog="{catalog}"', f"data.symbols={json.dumps(OVERLAY_SYMBOLS)}", *WINDOW,
        'strategy.kind="signal"', f'strategy.model="{model}"', "portfolio.max_positions=2",
        "costs.commission_bps=1", "costs.slippage_bps=1", f"diagnosis.random_draws={DRAWS}", "diagnosis.seed=7",
        "diagnosis.confirm_break_even=true", "diagnosis.rolling_months=1", *extra,
    ])


@pytest.fixture(scope="module")
def run(overlay_catalog: Path, overlay_model: Path) -> tuple[Any, BacktestResult]:
    cfg = _cfg(overlay_catalog, overlay_model)
    result = run_backtest(cfg)
    result.diagnosis = diagnose(result, cfg)
    return cfg, result


def test_every_section_is_there_and_json_ready(run: tuple[Any, BacktestResult]) -> None:
    _, result = run
    d = result.diagnosis.data
    for name in ("costs", "churn", "signal_quality", "controls", "attribution", "risk", "verdict"):
        assert d[name]["applies"], name
    assert d["replay"]["reproduced"], d["replay"]["detail"]
    json.loads(result.diagnosis.to_json())  # no NaN, no numpy scalars
    assert d["settings"]["seed"] == 7 and d["settings"]["random_draws"] == DRAWS
    # attribution sums to the run's own net P&L: one source of truth
    per = result.diagnosis.series["attribution"]["by_symbol"]
    net = float(result.strategy.equity.iloc[-1]) - result.strategy.capital
    assert per["net_pnl"].sum() == pytest.approx(net, abs=1e-6)


def test_gross_minus_net_is_the_recorded_costs_fill_by_fill(run: tuple[Any, BacktestResult]) -> None:
    _, result = run
    strat = result.strategy
    fills = strat.fills
    assert len(fills) > 50
    # slippage is adverse on every fill, so "at the reference price, no commission" is gross
    buy = fills["side"] == "BUY"
    assert (fills.loc[buy, "price"] >= fills.loc[buy, "ref_price"]).all()
    assert (fills.loc[~buy, "price"] <= fills.loc[~buy, "ref_price"]).all()
    costless = fills.assign(price=fills["ref_price"], commission=0.0)
    costless["notional"] = costless["qty"] * costless["price"]
    window = result.inputs.window
    independent, _ = mark_to_market(costless, window, strat.equity.index, strat.capital)
    gross = result.diagnosis.series["costs"]["gross_equity"]
    np.testing.assert_allclose(gross.to_numpy(), independent.to_numpy(), rtol=0, atol=1e-6)
    # at each fill's time the gap has grown by exactly that fill's commission + slippage
    gap = gross - strat.equity
    paid = 0.0
    for ts, grp in fills.groupby("ts", sort=True):
        paid += float((grp["commission"] + grp["slippage"]).sum())
        at = strat.equity.index.searchsorted(ts)  # the first bar close counting the fill
        if at < len(gap):
            assert gap.iloc[at] == pytest.approx(paid, abs=1e-6)
    c = result.diagnosis.data["costs"]
    assert c["gross_pnl"] - c["net_pnl"] == pytest.approx(fills["commission"].sum() + fills["slippage"].sum())


def test_break_even_cost_rerun_in_the_event_engine_is_flat(run: tuple[Any, BacktestResult]) -> None:
    cfg, result = run
    be = result.diagnosis.data["costs"]["break_even"]
    assert be["applies"] and len(be["curve"]) == 26 and be["curve"][-1]["bps"] == 50
    point = be["total_return"]
    assert point["status"] == "found", point
    assert 0 < point["bps"] < 50
    curve = pd.DataFrame(be["curve"])
    assert curve["total_return"].is_monotonic_decreasing  # more cost, less return
    at = run_backtest(with_costs(cfg, point["bps"], be["commission_share"]))
    total = at.metrics["total_return"]
    assert abs(total) < 0.005, total
    assert be["confirmation"]["ran"] and be["confirmation"]["event_total_return"] == pytest.approx(total, abs=1e-12)
    assert at.metrics["commission_paid"] > 0


def test_deciles_and_monthly_ic_equal_an_independent_computation(run: tuple[Any, BacktestResult]) -> None:
    cfg, result = run
    sq = result.diagnosis.data["signal_quality"]
    h = sq["horizon"]
    probs = result.strategy.signal["probabilities"]
    rows = []
    for s, win in result.inputs.window.items():
        hist = result.inputs.history[s]
        fwd = hist["close"].shift(-h) / hist["close"] - 1.0
        frame = pd.DataFrame({"p": probs[s].reindex(hist.index), "fwd": fwd}).loc[win.index].dropna()
        rows.append(frame)
    df = pd.concat(rows)
    assert sq["bars"] == len(df)
    cuts = np.quantile(df["p"], np.arange(1, 10) / 10)
    df["decile"] = pd.cut(df["p"], [-np.inf, *cuts, np.inf], right=False, labels=range(1, 11)).astype(int)
    rt = 2 * (cfg.costs.commission_bps + cfg.costs.slippage_bps) / 1e4
    for got in sq["deciles"]:
        g = df[df["decile"] == got["decile"]]
        assert got["count"] == len(g)
        assert got["mean_fwd"] == pytest.approx(g["fwd"].mean(), rel=1e-12)
        assert got["mean_fwd_net"] == pytest.approx(g["fwd"].mean() - rt, rel=1e-12, abs=1e-15)
        assert got["hit_rate"] == pytest.approx((g["fwd"] > 0).mean())
        assert got["p_min"] == g["p"].min() and got["p_max"] == g["p"].max()
    month = df.index.tz_convert("America/New_York").strftime("%Y-%m")
    expected = {m: spearmanr(df["p"][month == m], df["fwd"][month == m]).statistic for m in sorted(set(month))}
    got_ic = {r["month"]: r["ic"] for r in sq["monthly_ic"]}
    assert list(got_ic) == list(expected)
    for m, v in expected.items():
        assert got_ic[m] == pytest.approx(v, abs=1e-12)
    assert sq["ic"] == pytest.approx(spearmanr(df["p"], df["fwd"]).statistic, abs=1e-12)
    # the trivial classifier: always "up" has recall 1 and F1 = 2b / (1 + b) with b the base rate
    up = sq["classification"]["always_up"]
    b = up["pos_rate"]
    assert up["recall"] == 1.0 and up["f1"] == pytest.approx(2 * b / (1 + b))


def _numpy_buy_and_holds(cfg: Any, result: BacktestResult, n: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Final equity and Sharpe of random equal-weight n-name buy-and-holds, from the bars, in plain numpy.

    Prices and commissions go through NautilusTrader's own ``Price`` and ``Money``;
    shares are ``shares_for``'s rule written out; flows are added in (fill time, symbol)
    order as the ledger adds them.
    """
    window = result.inputs.window
    symbols = list(window)
    S = len(symbols)
    capital = cfg.portfolio.capital
    s = cfg.costs.slippage_bps / 1e4
    cost_rate = (cfg.costs.commission_bps + cfg.costs.slippage_bps) / 1e4
    index = result.strategy.equity.index
    P = periods_per_year(index)
    legs = {}
    for sym in symbols:
        q = execution_quotes(window[sym], "next_open", 60, 0.0)
        legs[sym] = (
            float(Price(float(window[sym]["close"].iloc[0]), 6).as_double()),  # decision close, first bar
            int(window[sym].index.asi8[0]),
            float(Price(q["ref"].iloc[0] * (1 + s), 6).as_double()), int(q["fill_ts"].iloc[0]),
            float(Price(q["ref"].iloc[-1] * (1 - s), 6).as_double()), int(q["fill_ts"].iloc[-1]),
        )
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((draws, S)), axis=1, kind="stable")[:, :n]
    finals, sharpes = np.empty(draws), np.empty(draws)
    for d in range(draws):
        members = [symbols[j] for j in sorted(picks[d])]
        each = capital / n
        cash = capital
        flows: list[tuple[int, str, float, float]] = []  # fill time, symbol, cash flow, signed qty
        for decision in sorted({legs[m][1] for m in members}):
            spent = 0.0
            for m in members:  # config order within a bar time; fills land before the next time
                close0, t0, ask, fill_in, bid, fill_out = legs[m]
                if t0 != decision:
                    continue
                qty = math.floor(min(each / close0, cash / (close0 * (1 + cost_rate))) + 1e-9)
                if qty <= 0:
                    continue
                fee_in = Money(qty * ask * cfg.costs.commission_bps / 1e4, USD).as_double()
                fee_out = Money(qty * bid * cfg.costs.commission_bps / 1e4, USD).as_double()
                flows.append((fill_in, m, -(qty * ask + fee_in), qty))
                flows.append((fill_out, m, -(-qty * bid + fee_out), -qty))
                spent += qty * ask + fee_in
            cash -= spent
        flows.sort(key=lambda f: (f[0], f[1]))
        cum = 0.0
        for f in flows:
            cum += f[2]
        finals[d] = capital + cum
        # the equity path on the run's bar closes: cash + positions at their last close
        t = index.asi8
        ts = np.array([f[0] for f in flows])
        flow = np.cumsum([0.0, *[f[2] for f in flows]])[np.searchsorted(ts, t, side="right")]
        value = np.zeros(len(t))
        for m in sorted(members):
            mine = [f for f in flows if f[1] == m]
            pos = np.cumsum([0.0, *[f[3] for f in mine]])[np.searchsorted([f[0] for f in mine], t, side="right")]
            value += pos * window[m]["close"].reindex(index).ffill().fillna(0.0).to_numpy()
        eq = capital + flow + value
        r = eq[1:] / eq[:-1] - 1
        sharpes[d] = r.mean() / r.std(ddof=1) * math.sqrt(P)
    return finals, sharpes


def test_random_subset_control_equals_a_direct_numpy_computation(run: tuple[Any, BacktestResult]) -> None:
    cfg, result = run
    rnd = result.diagnosis.data["controls"]["random"]
    assert rnd["applies"] and rnd["n"] == 2 and rnd["draws"] == DRAWS and rnd["seed"] == 7
    finals, sharpes = _numpy_buy_and_holds(cfg, result, 2, DRAWS, 7)
    got = result.diagnosis.series["controls"]["random_total_return"]
    np.testing.assert_array_equal(got, finals / cfg.portfolio.capital - 1.0)  # bit for bit, draw by draw
    np.testing.assert_allclose(result.diagnosis.series["controls"]["random_sharpe"], sharpes, rtol=1e-9)
    tr = result.metrics["total_return"]
    expected = (np.sum(finals / cfg.portfolio.capital - 1 < tr) + 0.5 * np.sum(finals / cfg.portfolio.capital - 1 == tr)) / DRAWS
    assert rnd["strategy_percentile_total_return"] == pytest.approx(expected)
    assert rnd["total_return"]["p50"] == pytest.approx(np.quantile(finals / cfg.portfolio.capital - 1, 0.5))


def test_universe_and_subset_buy_and_holds_equal_the_event_engine(run: tuple[Any, BacktestResult]) -> None:
    from engine.diagnosis.holdings import hold, universe_buy_and_hold
    from engine.sim.fastpath import FastPath

    cfg, result = run
    inp = result.inputs
    fast = FastPath(cfg, inp.window, inp.full, inp.history, {s: pd.Series(0.0, index=f.index) for s, f in inp.full.items()}, None)
    uni = universe_buy_and_hold(fast)
    event = simulate(cfg, inp.window, inp.window, "buy_and_hold", {}, overlays=False)
    assert (uni.equity.to_numpy() == event.equity.to_numpy()).all()
    assert uni.figures["final_equity"] == float(event.equity.iloc[-1])
    assert result.diagnosis.data["controls"]["universe"]["final_equity"] == float(event.equity.iloc[-1])
    sub = ["MSFT", "COST"]
    part = {s: inp.window[s] for s in sub}
    event2 = simulate(cfg, part, part, "buy_and_hold", {}, overlays=False)
    mine = hold(fast, sub)
    assert (mine.equity.reindex(event2.equity.index).to_numpy() == event2.equity.to_numpy()).all()


def test_one_slot_control_equals_the_event_engine(run: tuple[Any, BacktestResult]) -> None:
    from engine.diagnosis.replay import one_slot_config

    cfg, result = run
    one = result.diagnosis.data["controls"]["one_slot"]
    assert one["applies"] and one["max_positions"] == len(OVERLAY_SYMBOLS)
    assert one["position_size"] == pytest.approx(0.1 * 2 / 5)
    event = run_backtest(one_slot_config(cfg, len(OVERLAY_SYMBOLS)))
    assert one["final_equity"] == event.metrics["final_equity"]
    assert one["trades"] == event.metrics["trades"]


def test_verdict_states_only_what_the_figures_say(run: tuple[Any, BacktestResult]) -> None:
    _, result = run
    d = result.diagnosis.data
    v = d["verdict"]
    rules = {f["rule"] for f in v["findings"]}
    assert {"costs", "break_even", "benchmark", "universe", "random"} <= rules
    be = d["costs"]["break_even"]["total_return"]["bps"]
    assert f"break-even at {be:.1f} bps per side" in v["text"]
    uni, tr = d["controls"]["universe"]["total_return"], d["controls"]["strategy"]["total_return"]
    assert ("trailed the equal-weight universe" in v["text"]) == (uni - tr >= 0.0005)
    for f in v["findings"]:
        assert f["text"][1:] in v["text"]  # the first clause is capitalised


@pytest.mark.parametrize(("costs", "text"), [
    ({"gross_pnl": 1000.0, "costs": 1500.0}, "costs ($1,500) exceed the gross P&L ($1,000): the run earns before costs"),
    ({"gross_pnl": 1000.0, "costs": 420.0}, "costs take 42 % of gross P&L ($420 of $1,000)"),
    ({"gross_pnl": -10.0, "costs": 420.0}, "the run loses money before costs (gross P&L -$10); costs add $420"),
])
def test_the_cost_clause_follows_the_figures(costs: dict[str, float], text: str) -> None:
    from engine.diagnosis.verdict import findings

    clauses = {f["rule"]: f["text"] for f in findings({"costs": {**costs, "by_symbol": [{"symbol": "A"}]}})}
    assert clauses["costs"].startswith(text), clauses
    assert {f["rule"]: f["text"] for f in findings({"costs": {"by_symbol": []}})} == {"costs": "the run never traded"}


@pytest.mark.parametrize(("run_return", "universe_return", "word"), [
    (0.10, 0.12, "trailed"), (0.10, 0.1004, "matched"), (0.15, 0.12, "beat"),
])
def test_the_universe_clause_calls_a_tie_within_five_hundredths_of_a_point(run_return: float, universe_return: float,
                                                                           word: str) -> None:
    from engine.diagnosis.verdict import findings

    sections = {"costs": {"by_symbol": [{"symbol": "A"}]},
                "controls": {"strategy": {"total_return": run_return},
                             "universe": {"applies": True, "total_return": universe_return}}}
    clauses = {f["rule"]: f["text"] for f in findings(sections)}
    assert clauses["universe"].startswith(f"this run {word} the equal-weight universe buy-and-hold"), clauses


@pytest.mark.parametrize(
    ("extra", "replayed", "needle"),
    [
        (['strategy.kind="sma_cross"', "strategy.fast=5", "strategy.slow=30"], True, ""),
        # the averages see every close, also on a bar where a stop forces the exit: still replayed
        (['strategy.kind="sma_cross"', "strategy.fast=5", "strategy.slow=30", "risk.stop_loss=0.01",
          "strategy.max_hold_bars=20"], True, ""),
        (['strategy.kind="buy_and_hold"'], True, ""),
        (['strategy.kind="buy_and_hold"', "regime.trend.sma=50"], False, "[regime]"),
    ],
)
def test_rule_strategies_are_diagnosed_or_say_why_not(
    overlay_catalog: Path, overlay_model: Path, extra: list[str], replayed: bool, needle: str
) -> None:
    cfg = _cfg(overlay_catalog, overlay_model, *extra, "diagnosis.confirm_break_even=false")
    result = run_backtest(cfg)
    d = diagnose(result, cfg).data
    assert d["replay"]["reproduced"] is replayed, d["replay"]["detail"]
    if cfg.risk.stop_loss:  # forced exits happened, so the replay was put to the test
        assert result.strategy.trades["exit_reason"].isin(["stop_loss", "time_stop"]).sum() >= 3
    be = d["costs"]["break_even"]
    assert be["applies"] is replayed
    assert not d["signal_quality"]["applies"] and "no model probabilities" in d["signal_quality"]["reason"]
    if not replayed:
        assert needle in be["reason"] and needle in d["verdict"]["text"]
        assert not d["controls"]["one_slot"]["applies"]
    else:
        assert be["curve"][0]["total_return"] >= be["curve"][-1]["total_return"]
    if cfg.strategy.kind == "buy_and_hold":
        assert not d["controls"]["random"]["applies"]
        assert not d["controls"]["one_slot"]["applies"]
    assert d["controls"]["universe"]["applies"]  # the universe control never depends on the replay
    json.dumps(d, allow_nan=False)


def test_outputs_carry_the_diagnosis_and_drop_a_stale_one(run: tuple[Any, BacktestResult], tmp_path: Path) -> None:
    _, result = run
    out = tmp_path / "run"
    paths = write_outputs(result, out)
    assert "diagnosis.json" in paths
    saved = json.loads((out / "diagnosis.json").read_text())
    assert saved["verdict"]["text"] == result.diagnosis.data["verdict"]["text"]
    assert json.loads((out / "config.json").read_text())["diagnosis"]["seed"] == 7
    html = (out / "report.html").read_text()
    assert 'id="diagnosis"' in html and "diag-cost-curve-plot" in html
    plain = BacktestResult(strategy=result.strategy, benchmark=result.benchmark, metrics=result.metrics, config=result.config)
    write_outputs(plain, out)
    assert not (out / "diagnosis.json").exists()


DIAGNOSIS_PLOTS = (
    "diag-gross-net-plot", "diag-costs-month-plot", "diag-costs-symbol-plot", "diag-cost-curve-plot",
    "diag-holding-plot", "diag-deciles-plot", "diag-ic-plot", "diag-controls-plot", "diag-random-plot",
    "diag-symbols-plot", "diag-rolling-sharpe-plot", "diag-exposure-plot",
)
"""Every plot of the Diagnosis section (a run where every section applies draws all of them)."""


@pytest.mark.browser
def test_diagnosis_renders_every_plot_in_headless_chromium(run: tuple[Any, BacktestResult], tmp_path: Path) -> None:
    chromium = find_chromium()
    _, result = run
    out = tmp_path / "run"
    write_outputs(result, out)
    url = (out / "report.html").resolve().as_uri()
    shot = tmp_path / "diagnosis_report.png"
    dom, log = load_dom(chromium, url, tmp_path, shot=shot, height=9000)
    assert dom.text["js-errors"].strip() == "", dom.text["js-errors"]
    assert "render-ok" in dom.under, "the plots never finished drawing"
    assert not re.search(r"Uncaught|CONSOLE.*Error", log), log[-2000:]
    for plot in (*PLOT_IDS, *DIAGNOSIS_PLOTS):
        assert {"plot-container", "main-svg"} <= dom.classes(plot), f"{plot} was not drawn by plotly"
    assert not [k for k in dom.text if k.endswith("-na")], "a part of the diagnosis says it does not apply"
    assert dom.text["diag-verdict"].strip().startswith("Costs")
    assert dom.tags("diag-deciles-table").count("tr") == 11  # header + 10 deciles
    assert "rules out" in dom.text["diag-controls-table"]
    assert dom.tags("diag-cost-curve-plot").count("path") > 2  # two curves and axes
    assert shot.stat().st_size > 200_000  # the whole long page, not a blank one
    artifacts = Path(os.environ.get("SIGTRADE_ARTIFACTS", str(ROOT / "out" / "test-artifacts")))
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "diagnosis_report.png")
