"""Outputs of a backtest: metrics.json, Parquet tables and a report.html that renders offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from engine import sessions
from engine.metrics import METRIC_KEYS, compare, compute_metrics
from engine.report import MAX_TRADE_ROWS, OUTPUT_FILES, equity_frame, render_html, write_outputs
from engine.results import FILL_COLUMNS, TRADE_COLUMNS, BacktestResult, RunResult
from tests.chromium import find_chromium, load_dom

PLOT_IDS = ("equity-plot", "drawdown-plot", "monthly-heatmap")


def _closes(n: int) -> pd.DatetimeIndex:
    closes = sessions.schedule("2023-01-03", "2026-12-31")["close"].iloc[:n]
    return pd.DatetimeIndex(closes).tz_convert("UTC")


def _run(idx: pd.DatetimeIndex, seed: int, n_trades: int, capital: float = 100_000.0) -> RunResult:
    rng = np.random.default_rng(seed)
    equity = pd.Series(capital * np.cumprod(1 + rng.normal(0.0004, 0.01, len(idx))), index=idx)
    exposure = pd.Series(rng.choice([0.0, 0.5, 1.0], len(idx)), index=idx)
    entries = np.sort(rng.choice(len(idx) - 5, n_trades))
    held = rng.integers(1, 5, n_trades)
    qty = rng.integers(1, 100, n_trades).astype(float)
    px_in = rng.uniform(50, 500, n_trades)
    px_out = px_in * (1 + rng.normal(0, 0.03, n_trades))
    commission = (px_in + px_out) * qty * 0.001
    pnl = (px_out - px_in) * qty - commission
    symbols = rng.choice(["AAPL", "MSFT", "NVDA", "<b>&X"], n_trades)  # one symbol needs escaping
    trades = pd.DataFrame(
        {
            "symbol": symbols,
            "entry_ts": idx[entries],
            "exit_ts": idx[entries + held],
            "qty": qty,
            "entry_price": px_in,
            "exit_price": px_out,
            "pnl": pnl,
            "return": pnl / (px_in * qty),
            "commission": commission,
            "bars_held": held,
        }
    )[TRADE_COLUMNS]
    sides = [("BUY", "entry_ts", px_in), ("SELL", "exit_ts", px_out)]
    fills = pd.concat(
        [
            pd.DataFrame(
                {
                    "ts": trades[col].to_numpy(),
                    "symbol": symbols,
                    "side": side,
                    "qty": qty,
                    "price": px,
                    "ref_price": px * (0.9995 if side == "BUY" else 1.0005),
                    "notional": px * qty,
                    "commission": px * qty * 0.001,
                    "slippage": px * qty * 0.0005,
                }
            )
            for side, col, px in sides
        ],
        ignore_index=True,
    ).sort_values("ts", kind="stable", ignore_index=True)[FILL_COLUMNS]
    return RunResult(equity=equity, exposure=exposure, fills=fills, trades=trades, capital=capital)


def make_result(n_bars: int = 300, n_trades: int = 40, *, synthetic: bool = True) -> BacktestResult:
    idx = _closes(n_bars)
    strat = _run(idx, seed=1, n_trades=n_trades)
    bench = _run(idx, seed=2, n_trades=1)
    metrics = compare(compute_metrics(strat), compute_metrics(bench))
    config = {
        "data": {"catalog": "catalogs/sample", "symbols": ["AAPL", "MSFT", "NVDA"], "bar": "1-DAY"},
        "costs": {"commission_bps": 10.0, "slippage_bps": 5.0},
        "strategy": {"kind": "sma_cross", "fast": 20, "slow": 50},
        "benchmark": {"symbol": "SPY"},
        "metrics": {"risk_free_rate": 0.0},
    }
    return BacktestResult(
        strategy=strat, benchmark=bench, metrics=metrics, config=config, synthetic=synthetic,
        symbols=["AAPL", "MSFT", "NVDA"], benchmark_symbol="SPY", timings={"backtest": 1.23},
    )


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    return make_result()


# --- files -------------------------------------------------------------------------------


def test_writes_every_file_and_parquet_round_trips(result: BacktestResult, tmp_path: Path) -> None:
    out = tmp_path / "run"
    paths = write_outputs(result, out)
    assert set(paths) == set(OUTPUT_FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temp folder left behind

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == result.metrics
    assert set(METRIC_KEYS) <= set(metrics)
    assert set(METRIC_KEYS) <= set(metrics["benchmark"])

    eq = pd.read_parquet(out / "equity.parquet")
    assert list(eq.columns) == ["strategy", "benchmark", "exposure", "drawdown", "benchmark_drawdown"]
    pd.testing.assert_frame_equal(eq, equity_frame(result), check_freq=False)
    assert eq.index.tz is not None
    assert eq["drawdown"].min() == pytest.approx(metrics["max_drawdown"])

    pd.testing.assert_frame_equal(pd.read_parquet(out / "fills.parquet"), result.strategy.fills)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "trades.parquet"), result.strategy.trades)


def test_rewriting_replaces_files_in_place(result: BacktestResult, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("stale")
    (out / "notes.txt").write_text("mine")
    write_outputs(result, out)
    assert json.loads((out / "metrics.json").read_text())["trades"] == len(result.strategy.trades)
    assert (out / "notes.txt").read_text() == "mine"


def test_metrics_are_computed_when_missing(tmp_path: Path) -> None:
    res = make_result(n_trades=5)
    expected = res.metrics
    res.metrics = {}
    write_outputs(res, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == expected


def test_no_trades_still_writes_tables(tmp_path: Path) -> None:
    res = make_result(n_trades=0)
    write_outputs(res, tmp_path / "run")
    assert pd.read_parquet(tmp_path / "run" / "trades.parquet").columns.tolist() == TRADE_COLUMNS
    assert "No trades." in (tmp_path / "run" / "report.html").read_text()


# --- html (no browser) --------------------------------------------------------------------


def test_html_is_self_contained(result: BacktestResult) -> None:
    page = render_html(result)
    library = get_plotlyjs()
    assert page.count(library) == 1  # plotly.js inlined exactly once
    rest = page.replace(library, "")
    assert not re.search(r"(src|href)\s*=|https?://|cdn\.", rest)  # nothing fetched
    assert rest.count("Plotly.newPlot") == 1  # one drawing loop over all figures
    for element in (*PLOT_IDS, "metrics-table", "trades-table", "js-errors", "fills-count"):
        assert f'id="{element}"' in page
    assert "SYNTHETIC DATA" in page
    assert "<b>&X" not in page
    assert "&lt;b&gt;&amp;X" in page
    assert 'id="render-ok"' not in page  # only the browser adds it, after drawing


def test_real_data_report_has_no_synthetic_banner() -> None:
    assert "SYNTHETIC DATA" not in render_html(make_result(n_trades=3, synthetic=False))


def test_trade_list_is_capped() -> None:
    page = render_html(make_result(n_bars=400, n_trades=MAX_TRADE_ROWS + 500))
    table = page[page.index('id="trades-table"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == MAX_TRADE_ROWS + 1  # + header row
    assert f"first {MAX_TRADE_ROWS:,} of {MAX_TRADE_ROWS + 500:,}" in page


# --- headless Chromium --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


@pytest.mark.browser
def test_report_renders_in_headless_chromium(result: BacktestResult, tmp_path: Path, chromium: str) -> None:
    out = tmp_path / "run"
    write_outputs(result, out)
    url = (out / "report.html").resolve().as_uri()

    dom, log = load_dom(chromium, url, tmp_path, shot=tmp_path / "report.png")
    assert dom.text["js-errors"].strip() == "", dom.text["js-errors"]
    assert "render-ok" in dom.under, "the plots never finished drawing"
    assert not re.search(r"Uncaught|CONSOLE.*Error", log), log[-2000:]
    for plot in PLOT_IDS:
        classes = dom.classes(plot)
        assert {"plot-container", "main-svg"} <= classes, f"{plot} was not drawn by plotly"
    assert dom.tags("equity-plot").count("path") > 2  # two traces and axes
    assert "heatmaplayer" in dom.classes("monthly-heatmap")
    assert dom.tags("trades-table").count("tr") == len(result.strategy.trades) + 1
    assert dom.tags("metrics-table").count("tr") >= 17
    assert "Sharpe" in dom.text["metrics-table"]
    assert "SYNTHETIC DATA" in dom.text["synthetic-banner"]
