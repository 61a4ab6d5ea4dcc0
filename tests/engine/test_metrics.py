"""Metrics from sigtrade's own equity curve, checked against hand figures and a plain re-derivation."""

from __future__ import annotations

import json
import math
import statistics

import pandas as pd
import pytest

from engine import sessions
from engine.metrics import (
    EXCESS_KEYS,
    EXTRA_KEYS,
    METRIC_KEYS,
    compare,
    compute_metrics,
    monthly_returns,
)
from engine.results import FILL_COLUMNS, TRADE_COLUMNS, RunResult

REQUIRED = {
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration", "calmar", "trades", "win_rate", "profit_factor", "avg_trade",
    "turnover", "exposure", "commission_paid", "slippage_paid",
}


def daily_closes(n: int, start: str = "2024-01-02") -> pd.DatetimeIndex:
    """The first *n* NYSE session closes from *start* (UTC)."""
    closes = sessions.schedule(start, "2026-12-31")["close"].iloc[:n]
    return pd.DatetimeIndex(closes).tz_convert("UTC")


def make_run(
    values: list[float],
    *,
    capital: float | None = None,
    index: pd.DatetimeIndex | None = None,
    pnl: list[float] | None = None,
    fills: pd.DataFrame | None = None,
    exposure: list[float] | None = None,
) -> RunResult:
    idx = index if index is not None else daily_closes(len(values))
    equity = pd.Series(values, index=idx, dtype="float64")
    expo = pd.Series(exposure if exposure is not None else [0.0] * len(values), index=idx)
    trades = pd.DataFrame({c: [] for c in TRADE_COLUMNS})
    if pnl:
        trades = pd.DataFrame(
            {
                "symbol": ["AAA"] * len(pnl),
                "entry_ts": idx[: len(pnl)],
                "exit_ts": idx[1 : len(pnl) + 1],
                "qty": 1.0,
                "entry_price": 100.0,
                "exit_price": [100.0 + p for p in pnl],
                "pnl": pnl,
                "return": [p / 100.0 for p in pnl],
                "commission": 0.0,
                "bars_held": 1,
            }
        )
    if fills is None:
        fills = pd.DataFrame({c: [] for c in FILL_COLUMNS})
    return RunResult(
        equity=equity, exposure=expo, fills=fills, trades=trades,
        capital=float(values[0] if capital is None else capital),
    )


# --- an independent, deliberately plain implementation ------------------------------


def plain_returns(values: list[float]) -> list[float]:
    return [values[i] / values[i - 1] - 1 for i in range(1, len(values))]


def plain_sharpe(values: list[float], p: float, rf: float = 0.0) -> float:
    r = plain_returns(values)
    rfp = (1 + rf) ** (1 / p) - 1
    return statistics.mean([x - rfp for x in r]) / statistics.stdev(r) * math.sqrt(p)


def plain_sortino(values: list[float], p: float, rf: float = 0.0) -> float:
    r = plain_returns(values)
    rfp = (1 + rf) ** (1 / p) - 1
    ex = [x - rfp for x in r]
    dd = math.sqrt(sum(min(x, 0.0) ** 2 for x in ex) / len(ex))
    return statistics.mean(ex) / dd * math.sqrt(p)


def days(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return (b - a).total_seconds() / 86400


# --- the curve ------------------------------------------------------------------------

# peaks:      100 110 110 110  121 121 121 121  125
# drawdown:     0   0 -.10 -.05  0  -.05 -.074 -.025 0
# under water: bars 1 -> 4 (3 bars, deepest -10 %) and bars 4 -> 8 (4 bars, shallower)
CURVE = [100.0, 110.0, 99.0, 104.5, 121.0, 115.0, 112.0, 118.0, 125.0]


def test_returns_and_risk_match_hand_figures() -> None:
    idx = daily_closes(len(CURVE))
    m = compute_metrics(make_run(CURVE, index=idx), periods_per_year=252)
    years = days(idx[0], idx[-1]) / 365.25

    assert m["total_return"] == pytest.approx(0.25)
    assert m["cagr"] == pytest.approx(1.25 ** (1 / years) - 1)
    assert m["volatility"] == pytest.approx(statistics.stdev(plain_returns(CURVE)) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(plain_sharpe(CURVE, 252))
    assert m["sortino"] == pytest.approx(plain_sortino(CURVE, 252))
    assert m["max_drawdown"] == pytest.approx(-0.10)
    # the longest spell is the shallower second one, 4 bars from the 121 peak to 125
    assert m["max_drawdown_duration_bars"] == 4
    assert m["max_drawdown_duration"] == pytest.approx(days(idx[4], idx[8]))
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.10)
    assert m["start"] == idx[0].isoformat()
    assert m["end"] == idx[-1].isoformat()
    assert m["final_equity"] == 125.0


def test_sharpe_by_hand_on_three_returns() -> None:
    # returns +10 %, -10 %, +20 %: mean 0.0667, sample std 0.1528, P = 4
    m = compute_metrics(make_run([100.0, 110.0, 99.0, 118.8]), periods_per_year=4)
    assert m["sharpe"] == pytest.approx((0.2 / 3) / 0.152753 * 2, rel=1e-5)
    # downside: only -0.10 counts, over all three periods -> sqrt(0.01 / 3)
    assert m["sortino"] == pytest.approx((0.2 / 3) / math.sqrt(0.01 / 3) * 2)
    assert m["volatility"] == pytest.approx(0.152753 * 2, rel=1e-5)


def test_risk_free_rate_lowers_sharpe() -> None:
    m0 = compute_metrics(make_run(CURVE), periods_per_year=252)
    m5 = compute_metrics(make_run(CURVE), periods_per_year=252, risk_free_rate=0.05)
    assert m5["sharpe"] == pytest.approx(plain_sharpe(CURVE, 252, rf=0.05))
    assert m5["sortino"] == pytest.approx(plain_sortino(CURVE, 252, rf=0.05))
    assert m5["sharpe"] < m0["sharpe"]
    assert m5["volatility"] == m0["volatility"]


def test_total_return_is_measured_from_capital_not_first_bar() -> None:
    # the first bar already paid 0.1 of commission; the return still counts from cash
    m = compute_metrics(make_run([99.9, 101.0, 110.0], capital=100.0), periods_per_year=252)
    assert m["total_return"] == pytest.approx(0.10)
    assert m["capital"] == 100.0


def test_unrecovered_drawdown_runs_to_the_end() -> None:
    idx = daily_closes(4)
    m = compute_metrics(make_run([100.0, 120.0, 90.0, 100.0], index=idx), periods_per_year=252)
    assert m["max_drawdown"] == pytest.approx(-0.25)
    assert m["max_drawdown_duration_bars"] == 2
    assert m["max_drawdown_duration"] == pytest.approx(days(idx[1], idx[3]))


def test_annualisation_follows_bar_frequency() -> None:
    daily = compute_metrics(make_run(CURVE))
    assert daily["periods_per_year"] == pytest.approx(252.0)
    # seven hourly closes a session (IBKR hourly: 10:00, 11:00, ..., 16:00 New York)
    local = [
        pd.Timestamp(f"2024-03-{d:02d} {h:02d}:00", tz="America/New_York")
        for d in (4, 5, 6) for h in range(10, 17)
    ]
    idx = pd.DatetimeIndex(local).tz_convert("UTC")
    values = [100.0 + (i % 5) for i in range(len(idx))]
    hourly = compute_metrics(make_run(values, index=idx))
    assert hourly["periods_per_year"] == pytest.approx(252.0 * 7)
    assert hourly["volatility"] == pytest.approx(
        statistics.stdev(plain_returns(values)) * math.sqrt(252 * 7)
    )


def test_flat_curve_has_zero_volatility_and_no_sharpe() -> None:
    m = compute_metrics(make_run([100.0] * 6), periods_per_year=252)
    assert m["volatility"] == 0.0
    assert m["sharpe"] is None
    assert m["sortino"] is None
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration"] == 0.0
    assert m["max_drawdown_duration_bars"] == 0
    assert m["calmar"] is None
    assert m["total_return"] == 0.0
    assert m["cagr"] == 0.0


def test_trade_statistics() -> None:
    pnl = [100.0, -50.0, 30.0, -20.0, 0.0]
    m = compute_metrics(make_run(CURVE, pnl=pnl), periods_per_year=252)
    assert m["trades"] == 5
    assert m["win_rate"] == pytest.approx(2 / 5)  # a zero-pnl trade is not a win
    assert m["profit_factor"] == pytest.approx(130 / 70)
    assert m["avg_trade"] == pytest.approx(12.0)


def test_no_trades() -> None:
    m = compute_metrics(make_run(CURVE), periods_per_year=252)
    assert m["trades"] == 0
    assert m["win_rate"] is None
    assert m["profit_factor"] is None
    assert m["avg_trade"] is None
    assert m["turnover"] == 0.0
    assert m["commission_paid"] == 0.0
    assert m["slippage_paid"] == 0.0


def test_no_losing_trade_leaves_profit_factor_undefined() -> None:
    m = compute_metrics(make_run(CURVE, pnl=[10.0, 5.0]), periods_per_year=252)
    assert m["win_rate"] == 1.0
    assert m["profit_factor"] is None
    assert m["avg_trade"] == pytest.approx(7.5)


def test_costs_turnover_and_exposure() -> None:
    idx = daily_closes(len(CURVE))
    fills = pd.DataFrame(
        {
            "ts": idx[[1, 3, 5]],
            "symbol": "AAA",
            "side": ["BUY", "SELL", "BUY"],
            "qty": [1.0, 1.0, 2.0],
            "price": [100.0, 110.0, 50.0],
            "ref_price": [99.9, 110.1, 49.9],
            "notional": [100.0, 110.0, 100.0],
            "commission": [0.10, 0.11, 0.10],
            "slippage": [0.10, 0.10, 0.20],
        }
    )
    exposure = [0.0, 0.5, 0.5, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    m = compute_metrics(
        make_run(CURVE, index=idx, fills=fills, exposure=exposure), periods_per_year=252
    )
    years = days(idx[0], idx[-1]) / 365.25
    assert m["commission_paid"] == pytest.approx(0.31)
    assert m["slippage_paid"] == pytest.approx(0.40)
    assert m["turnover"] == pytest.approx(310.0 / statistics.mean(CURVE) / years)
    assert m["exposure"] == pytest.approx(4 / 9)
    assert m["fills"] == 3


def test_compare_builds_the_json_object() -> None:
    strat = compute_metrics(make_run(CURVE, pnl=[10.0, -5.0]), periods_per_year=252)
    bench = compute_metrics(make_run([100.0, 101, 102, 100, 103, 104, 105, 104, 106]), periods_per_year=252)
    out = compare(strat, bench)

    assert set(out) == REQUIRED | set(EXTRA_KEYS) | {"benchmark", "excess"}
    assert REQUIRED == set(METRIC_KEYS)
    assert set(out["benchmark"]) == REQUIRED | set(EXTRA_KEYS)
    assert set(out["excess"]) == set(EXCESS_KEYS)
    assert out["total_return"] == strat["total_return"]
    assert out["benchmark"]["total_return"] == pytest.approx(0.06)
    assert out["excess"]["total_return"] == pytest.approx(0.25 - 0.06)
    assert out["excess"]["sharpe"] == pytest.approx(strat["sharpe"] - bench["sharpe"])
    assert out["excess"]["max_drawdown"] == pytest.approx(strat["max_drawdown"] - bench["max_drawdown"])
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out


def test_compare_with_undefined_figures_gives_none() -> None:
    flat = compute_metrics(make_run([100.0] * 5), periods_per_year=252)
    other = compute_metrics(make_run(CURVE), periods_per_year=252)
    out = compare(other, flat)
    assert out["excess"]["sharpe"] is None
    assert out["excess"]["calmar"] is None
    assert out["excess"]["volatility"] == pytest.approx(other["volatility"])


@pytest.mark.parametrize(
    "values",
    [
        [100.0],  # one bar: no returns, no years
        [100.0] * 4,  # flat
        [100.0, 50.0, 0.0],  # wiped out: the return after 0 is undefined
        [100.0, float("nan"), 120.0, 110.0],  # a hole in the curve
    ],
)
def test_no_nan_or_inf_reaches_json(values: list[float]) -> None:
    m = compute_metrics(make_run(values), periods_per_year=252)
    out = compare(m, m)
    json.dumps(out, allow_nan=False)  # raises on NaN / inf
    for v in [*out.values(), *out["benchmark"].values(), *out["excess"].values()]:
        assert v is None or isinstance(v, bool | int | float | str | dict)


def test_wiped_out_account() -> None:
    m = compute_metrics(make_run([100.0, 50.0, 0.0]), periods_per_year=252)
    assert m["total_return"] == -1.0
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == -1.0


def test_monthly_returns_compound_to_total_return() -> None:
    idx = daily_closes(70)  # January to mid-April 2024
    values = [100.0 * (1.002 ** i) * (1 + 0.01 * ((i % 7) - 3)) for i in range(70)]
    run = make_run(values, index=idx, capital=100.0)
    table = monthly_returns(run.equity, run.capital)
    assert list(table.index) == [2024]
    assert list(table.columns) == list(range(1, 13))
    cells = table.loc[2024].dropna()
    assert list(cells.index) == [1, 2, 3, 4]
    jan_last = values[max(i for i, t in enumerate(idx) if t.month == 1)]
    assert cells[1] == pytest.approx(jan_last / 100.0 - 1)
    total = compute_metrics(run, periods_per_year=252)["total_return"]
    assert math.prod(1 + x for x in cells) - 1 == pytest.approx(total)
