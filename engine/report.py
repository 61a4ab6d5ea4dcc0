"""Write a backtest's outputs: metrics.json, config.json, Parquet tables, report.html and diagnosis.json.

``write_outputs(result, out_dir)`` writes into a temporary folder beside *out_dir* and
then moves each file into place, so a reader never sees a half-written file.

``report.html`` opens from disk in any browser with no server and no network: plotly.js
is inlined once and every figure is drawn from inline JSON. Element ids are stable
(``metrics-table``, ``equity-plot``, ``drawdown-plot``, ``monthly-heatmap``,
``trades-table``, and ``diag-*`` for the Diagnosis section drawn by :mod:`engine.diagnosis.html`
when the result carries one); the page frame, stylesheet and scripts are the house style of
:mod:`engine.html_page` (``#js-errors`` records script errors, ``#render-ok`` appears once
every plot has drawn, so a headless browser can check the page). ``config.json`` is the
run's effective config (what ``sigtrade diagnose --confirm`` re-runs).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.html_page import (
    LAYOUT,
    config_details,
    esc,
    facts,
    finite,
    integer,
    local_index,
    page,
    pct,
    pct_plain,
    ratio,
    short_ts,
    synthetic_banner,
    usd,
)
from engine.metrics import (
    EXCESS_KEYS,
    compare,
    compute_metrics,
    drawdown,
    json_safe,
    monthly_returns,
)
from engine.results import FILL_COLUMNS, TRADE_COLUMNS, BacktestResult

log = logging.getLogger(__name__)

MAX_TRADE_ROWS = 2_000
"""Trades listed in the HTML table; the full list is in trades.parquet."""

OUTPUT_FILES = ("metrics.json", "config.json", "equity.parquet", "fills.parquet", "trades.parquet", "report.html")
"""Every file ``write_outputs`` writes (plus :data:`DIAGNOSIS_FILE` when the result carries a diagnosis)."""
DIAGNOSIS_FILE = "diagnosis.json"
"""The diagnosis' figures (``engine.diagnosis``); removed from a folder rewritten without one."""


# ----------------------------------------------------------------------------- outputs


def results_object(result: BacktestResult) -> dict[str, Any]:
    """Return the metrics object of *result*, computed from its curves when ``result.metrics`` is empty."""
    if result.metrics:
        return cast(dict[str, Any], json_safe(result.metrics))
    rf = float((result.config.get("metrics") or {}).get("risk_free_rate", 0.0))
    return compare(
        compute_metrics(result.strategy, risk_free_rate=rf),
        compute_metrics(result.benchmark, risk_free_rate=rf),
    )


def equity_frame(result: BacktestResult) -> pd.DataFrame:
    """Strategy and benchmark equity, exposure and both drawdowns on the strategy's bar times."""
    strat = result.strategy.equity.astype("float64")
    bench = result.benchmark.equity.astype("float64").reindex(strat.index).ffill()
    frame = pd.DataFrame(
        {
            "strategy": strat,
            "benchmark": bench,
            "exposure": result.strategy.exposure.astype("float64").reindex(strat.index),
            "drawdown": drawdown(strat),
            "benchmark_drawdown": drawdown(bench.dropna()).reindex(strat.index),
        },
        index=strat.index,
    )
    frame.index.name = "ts"
    return frame


def _table(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """*frame* with at least the contract *columns* (extra columns kept, after them)."""
    out = frame.copy()
    for col in columns:
        if col not in out.columns:
            out[col] = pd.Series(dtype="float64")
    return out[[*columns, *[c for c in out.columns if c not in columns]]].reset_index(drop=True)


def write_outputs(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write metrics.json, equity/fills/trades Parquet files and report.html into *out_dir*.

    Files are written into a temporary folder beside *out_dir* and renamed into place
    one by one. Returns the path of each file by name.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics = results_object(result)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "metrics.json").write_text(
            json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        equity_frame(result).to_parquet(tmp / "equity.parquet")
        _table(result.strategy.fills, FILL_COLUMNS).to_parquet(tmp / "fills.parquet", index=False)
        _table(result.strategy.trades, TRADE_COLUMNS).to_parquet(tmp / "trades.parquet", index=False)
        (tmp / "config.json").write_text(
            json.dumps(json_safe(result.config), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        (tmp / "report.html").write_text(render_html(result, metrics), encoding="utf-8")
        names = list(OUTPUT_FILES)
        if result.diagnosis is not None:
            (tmp / DIAGNOSIS_FILE).write_text(result.diagnosis.to_json(), encoding="utf-8")
            names.append(DIAGNOSIS_FILE)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in names:
            os.replace(tmp / name, out / name)
            paths[name] = out / name
        if result.diagnosis is None:
            (out / DIAGNOSIS_FILE).unlink(missing_ok=True)  # never leave an earlier run's diagnosis beside this one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


# ----------------------------------------------------------------------------- formatting


def _days(x: Any) -> str:
    return "—" if x is None else f"{x:,.1f} d"


def _days_diff(x: Any) -> str:
    return "—" if x is None else f"{x:+,.1f} d"


def _turn(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}×/yr"


_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("total_return", "Total return", pct),
    ("cagr", "CAGR", pct),
    ("volatility", "Volatility (ann.)", pct_plain),
    ("sharpe", "Sharpe", ratio),
    ("sortino", "Sortino", ratio),
    ("max_drawdown", "Max drawdown", pct),
    ("max_drawdown_duration", "Longest drawdown", _days),
    ("calmar", "Calmar", ratio),
    ("trades", "Trades (round trips)", integer),
    ("win_rate", "Win rate", pct_plain),
    ("profit_factor", "Profit factor", ratio),
    ("avg_trade", "Average trade", usd),
    ("turnover", "Turnover", _turn),
    ("exposure", "Exposure", pct_plain),
    ("commission_paid", "Commission paid", usd),
    ("slippage_paid", "Slippage paid", usd),
    ("final_equity", "Final equity", usd),
]


def _metrics_table(metrics: Mapping[str, Any], bench_symbol: str) -> str:
    bench = metrics.get("benchmark") or {}
    excess = metrics.get("excess") or {}
    rows = []
    for key, label, fmt in _ROWS:
        diff_fmt = _days_diff if key == "max_drawdown_duration" else ratio if fmt is ratio else pct
        diff = diff_fmt(excess.get(key)) if key in EXCESS_KEYS else ""
        rows.append(
            f'<tr data-key="{esc(key)}"><th scope="row">{esc(label)}</th>'
            f"<td>{esc(fmt(metrics.get(key)))}</td><td>{esc(fmt(bench.get(key)))}</td>"
            f"<td>{esc(diff)}</td></tr>"
        )
    return (
        '<table id="metrics-table" class="data">'
        f"<thead><tr><th></th><th>Strategy</th><th>Buy &amp; hold {esc(bench_symbol)}</th>"
        "<th>Difference</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _config_summary(result: BacktestResult, metrics: Mapping[str, Any]) -> str:
    symbols = result.symbols
    shown = ", ".join(symbols[:20]) + (f" … (+{len(symbols) - 20})" if len(symbols) > 20 else "")
    items = [
        ("Period", f"{short_ts(metrics.get('start'))} → {short_ts(metrics.get('end'))}"),
        ("Symbols", f"{len(symbols)}: {shown}" if symbols else "—"),
        ("Benchmark", f"buy & hold {result.benchmark_symbol}"),
        ("Capital", usd(metrics.get("capital"))),
        ("Fills", integer(metrics.get("fills"))),
        ("Periods / year", ratio(metrics.get("periods_per_year"))),
        ("Risk-free rate", pct_plain(metrics.get("risk_free_rate"))),
    ]
    items += [(f"time: {k}", f"{v:.2f} s") for k, v in result.timings.items()]
    return facts(items) + config_details(result.config)


def _trades_table(trades: pd.DataFrame) -> str:
    n = len(trades)
    head = (
        "<thead><tr><th>#</th><th>Symbol</th><th>Entry (NY)</th><th>Exit (NY)</th><th>Qty</th>"
        "<th>Entry price</th><th>Exit price</th><th>P&amp;L</th><th>Return</th>"
        "<th>Commission</th><th>Bars</th><th>Exit reason</th></tr></thead>"
    )
    if n == 0:
        body = '<tr><td colspan="12" class="empty">No trades.</td></tr>'
        note = ""
    else:
        t = trades.iloc[:MAX_TRADE_ROWS]
        entry = local_index(t["entry_ts"]).strftime("%Y-%m-%d %H:%M")
        exit_ = local_index(t["exit_ts"]).strftime("%Y-%m-%d %H:%M")
        rows = []
        records = t.to_dict("records")
        for i, (rec, en, ex) in enumerate(zip(records, entry, exit_, strict=True)):
            pnl = float(rec["pnl"])
            cls = "pos" if pnl > 0 else "neg" if pnl < 0 else ""
            rows.append(
                f"<tr><td>{i + 1}</td><td>{esc(rec['symbol'])}</td><td>{en}</td><td>{ex}</td>"
                f"<td>{float(rec['qty']):,.6g}</td><td>{float(rec['entry_price']):,.4f}</td>"
                f"<td>{float(rec['exit_price']):,.4f}</td><td class=\"{cls}\">{usd(pnl)}</td>"
                f"<td class=\"{cls}\">{pct(finite(rec['return']))}</td>"
                f"<td>{usd(finite(rec['commission']))}</td><td>{integer(rec['bars_held'])}</td>"
                f"<td>{esc(rec.get('exit_reason', ''))}</td></tr>"
            )
        body = "".join(rows)
        note = (
            f'<p class="note" id="trades-note">Showing the first {MAX_TRADE_ROWS:,} of {n:,} '
            "trades; the full list is in trades.parquet.</p>"
            if n > MAX_TRADE_ROWS
            else f'<p class="note" id="trades-note">{n:,} trades.</p>'
        )
    return f'{note}<table id="trades-table" class="data">{head}<tbody>{body}</tbody></table>'


# ----------------------------------------------------------------------------- figures

def _equity_figure(frame: pd.DataFrame, bench_symbol: str) -> go.Figure:
    x = local_index(frame.index)
    fig = go.Figure()
    fig.add_scatter(x=x, y=frame["strategy"], name="Strategy", line={"color": "#1f5fbf", "width": 1.6})
    fig.add_scatter(
        x=x, y=frame["benchmark"], name=f"Buy & hold {bench_symbol}",
        line={"color": "#888888", "width": 1.2},
    )
    fig.update_layout(title="Equity (USD)", yaxis={"tickprefix": "$", "tickformat": ",.0f"}, **LAYOUT)
    fig.update_xaxes(type="date")
    return fig


def _drawdown_figure(frame: pd.DataFrame, bench_symbol: str) -> go.Figure:
    x = local_index(frame.index)
    fig = go.Figure()
    fig.add_scatter(
        x=x, y=frame["drawdown"], name="Strategy", fill="tozeroy",
        line={"color": "#c0392b", "width": 1}, fillcolor="rgba(192,57,43,0.25)",
    )
    fig.add_scatter(
        x=x, y=frame["benchmark_drawdown"], name=f"Buy & hold {bench_symbol}",
        line={"color": "#888888", "width": 1, "dash": "dot"},
    )
    fig.update_layout(title="Drawdown from running peak", yaxis={"tickformat": ".0%"}, **LAYOUT)
    fig.update_xaxes(type="date")
    return fig


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _heatmap_figure(table: pd.DataFrame) -> go.Figure:
    yearly = (1.0 + table).prod(axis=1, min_count=1) - 1.0
    labels = [f"{y} ({v * 100:+.1f} %)" for y, v in yearly.items()]
    z = table.to_numpy(dtype="float64")
    z_list = [[None if not np.isfinite(v) else float(v) for v in row] for row in z]
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.01
    fig = go.Figure(
        go.Heatmap(
            z=z_list, x=_MONTHS, y=labels, zmid=0.0, zmin=-lim, zmax=lim,
            colorscale="RdYlGn", texttemplate="%{z:.1%}", hoverongaps=False,
            hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>",
            colorbar={"tickformat": ".0%"}, xgap=2, ygap=2,
        )
    )
    layout = {**LAYOUT, "hovermode": "closest", "height": max(220, 60 + 40 * len(labels))}
    fig.update_layout(title="Monthly returns (strategy)", **layout)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", side="top")
    return fig


def render_html(result: BacktestResult, metrics: Mapping[str, Any] | None = None) -> str:
    """Return the self-contained report page of *result*."""
    metrics = results_object(result) if metrics is None else metrics
    frame = equity_frame(result)
    bench = result.benchmark_symbol
    strat = result.strategy
    figures = {
        "equity-plot": _equity_figure(frame, bench),
        "drawdown-plot": _drawdown_figure(frame, bench),
        "monthly-heatmap": _heatmap_figure(monthly_returns(strat.equity, strat.capital)),
    }
    diagnosis_html, extra_css = "", ""
    if result.diagnosis is not None:
        from engine.diagnosis import html as diagnosis_html_mod

        diagnosis_html, diag_figures = diagnosis_html_mod.section(result.diagnosis, strat.equity, bench)
        figures.update(diag_figures)
        extra_css = diagnosis_html_mod.CSS
    kind = (result.config.get("strategy") or {}).get("kind", "strategy")
    title = f"sigtrade backtest — {kind} vs buy & hold {bench}"
    n_fills = len(strat.fills)
    body = f"""<section class="card">{_config_summary(result, metrics)}</section>
<h2>Figures</h2>
<section class="card">{_metrics_table(metrics, bench)}
<p class="note">Returns are fractions of starting capital shown as %; volatility, Sharpe and
Sortino are annualised with {ratio(metrics.get("periods_per_year"))} periods a year;
turnover is traded notional (both sides) / mean equity per year.</p></section>
<h2>Equity</h2><section class="card"><div id="equity-plot" class="plot"></div></section>
<h2>Drawdown</h2><section class="card"><div id="drawdown-plot" class="plot"></div></section>
<h2>Monthly returns</h2><section class="card"><div id="monthly-heatmap" class="plot"></div></section>
{diagnosis_html}
<h2>Trades</h2><section class="card">
<p class="note" id="fills-count">{n_fills:,} fills (every fill is in fills.parquet).</p>
<div class="scroll">{_trades_table(strat.trades)}</div></section>"""
    return page(title, body, figures, banner=synthetic_banner(result.synthetic), css=extra_css)
