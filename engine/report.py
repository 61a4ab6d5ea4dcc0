"""Write a backtest's outputs: metrics.json, Parquet tables and a self-contained report.html.

``write_outputs(result, out_dir)`` writes into a temporary folder beside *out_dir* and
then moves each file into place, so a reader never sees a half-written file.

``report.html`` opens from disk in any browser with no server and no network: plotly.js
is inlined once and every figure is drawn from inline JSON. Element ids are stable
(``metrics-table``, ``equity-plot``, ``drawdown-plot``, ``monthly-heatmap``,
``trades-table``); a small inline script records script errors into ``#js-errors`` and
adds ``#render-ok`` once every plot has drawn, so a headless browser can check the page.
"""

from __future__ import annotations

import html
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
import plotly.io as pio
from plotly.offline import get_plotlyjs

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

OUTPUT_FILES = ("metrics.json", "equity.parquet", "fills.parquet", "trades.parquet", "report.html")
"""Every file ``write_outputs`` writes."""

_TZ = "America/New_York"


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
        (tmp / "report.html").write_text(render_html(result, metrics), encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in OUTPUT_FILES:
            os.replace(tmp / name, out / name)
            paths[name] = out / name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


# ----------------------------------------------------------------------------- formatting


def _pct(x: Any) -> str:
    return "—" if x is None else f"{x * 100:+.2f} %"


def _pct_plain(x: Any) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def _ratio(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}"


def _usd(x: Any) -> str:
    return "—" if x is None else f"{'−' if x < 0 else ''}${abs(x):,.2f}"


def _days(x: Any) -> str:
    return "—" if x is None else f"{x:,.1f} d"


def _days_diff(x: Any) -> str:
    return "—" if x is None else f"{x:+,.1f} d"


def _int(x: Any) -> str:
    return "—" if x is None else f"{int(x):,}"


def _turn(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}×/yr"


_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("total_return", "Total return", _pct),
    ("cagr", "CAGR", _pct),
    ("volatility", "Volatility (ann.)", _pct_plain),
    ("sharpe", "Sharpe", _ratio),
    ("sortino", "Sortino", _ratio),
    ("max_drawdown", "Max drawdown", _pct),
    ("max_drawdown_duration", "Longest drawdown", _days),
    ("calmar", "Calmar", _ratio),
    ("trades", "Trades (round trips)", _int),
    ("win_rate", "Win rate", _pct_plain),
    ("profit_factor", "Profit factor", _ratio),
    ("avg_trade", "Average trade", _usd),
    ("turnover", "Turnover", _turn),
    ("exposure", "Exposure", _pct_plain),
    ("commission_paid", "Commission paid", _usd),
    ("slippage_paid", "Slippage paid", _usd),
    ("final_equity", "Final equity", _usd),
]


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _metrics_table(metrics: Mapping[str, Any], bench_symbol: str) -> str:
    bench = metrics.get("benchmark") or {}
    excess = metrics.get("excess") or {}
    rows = []
    for key, label, fmt in _ROWS:
        diff_fmt = _days_diff if key == "max_drawdown_duration" else _ratio if fmt is _ratio else _pct
        diff = diff_fmt(excess.get(key)) if key in EXCESS_KEYS else ""
        rows.append(
            f'<tr data-key="{_e(key)}"><th scope="row">{_e(label)}</th>'
            f"<td>{_e(fmt(metrics.get(key)))}</td><td>{_e(fmt(bench.get(key)))}</td>"
            f"<td>{_e(diff)}</td></tr>"
        )
    return (
        '<table id="metrics-table" class="data">'
        f"<thead><tr><th></th><th>Strategy</th><th>Buy &amp; hold {_e(bench_symbol)}</th>"
        "<th>Difference</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _config_summary(result: BacktestResult, metrics: Mapping[str, Any]) -> str:
    symbols = result.symbols
    shown = ", ".join(symbols[:20]) + (f" … (+{len(symbols) - 20})" if len(symbols) > 20 else "")
    facts = [
        ("Period", f"{_short_ts(metrics.get('start'))} → {_short_ts(metrics.get('end'))}"),
        ("Symbols", f"{len(symbols)}: {shown}" if symbols else "—"),
        ("Benchmark", f"buy & hold {result.benchmark_symbol}"),
        ("Capital", _usd(metrics.get("capital"))),
        ("Fills", _int(metrics.get("fills"))),
        ("Periods / year", _ratio(metrics.get("periods_per_year"))),
        ("Risk-free rate", _pct_plain(metrics.get("risk_free_rate"))),
    ]
    facts += [(f"time: {k}", f"{v:.2f} s") for k, v in result.timings.items()]
    cfg = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _flatten(result.config)
    )
    top = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    return (
        f'<dl id="summary" class="facts">{top}</dl>'
        '<details id="config"><summary>Configuration</summary>'
        f'<table id="config-table" class="data compact">{cfg}</table></details>'
    )


def _short_ts(iso: Any) -> str:
    if not iso:
        return "—"
    ts = pd.Timestamp(iso)
    ts = ts.tz_convert(_TZ) if ts.tz is not None else ts
    return ts.strftime("%Y-%m-%d %H:%M")


def _local(ts: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(ts)
    return idx.tz_convert(_TZ).tz_localize(None) if idx.tz is not None else idx


def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


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
        entry = _local(t["entry_ts"]).strftime("%Y-%m-%d %H:%M")
        exit_ = _local(t["exit_ts"]).strftime("%Y-%m-%d %H:%M")
        rows = []
        records = t.to_dict("records")
        for i, (rec, en, ex) in enumerate(zip(records, entry, exit_, strict=True)):
            pnl = float(rec["pnl"])
            cls = "pos" if pnl > 0 else "neg" if pnl < 0 else ""
            rows.append(
                f"<tr><td>{i + 1}</td><td>{_e(rec['symbol'])}</td><td>{en}</td><td>{ex}</td>"
                f"<td>{float(rec['qty']):,.6g}</td><td>{float(rec['entry_price']):,.4f}</td>"
                f"<td>{float(rec['exit_price']):,.4f}</td><td class=\"{cls}\">{_usd(pnl)}</td>"
                f"<td class=\"{cls}\">{_pct(_finite(rec['return']))}</td>"
                f"<td>{_usd(_finite(rec['commission']))}</td><td>{_int(rec['bars_held'])}</td>"
                f"<td>{_e(rec.get('exit_reason', ''))}</td></tr>"
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

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": 1.08, "x": 0},
    "height": 380,
}


def _equity_figure(frame: pd.DataFrame, bench_symbol: str) -> go.Figure:
    x = _local(frame.index)
    fig = go.Figure()
    fig.add_scatter(x=x, y=frame["strategy"], name="Strategy", line={"color": "#1f5fbf", "width": 1.6})
    fig.add_scatter(
        x=x, y=frame["benchmark"], name=f"Buy & hold {bench_symbol}",
        line={"color": "#888888", "width": 1.2},
    )
    fig.update_layout(title="Equity (USD)", yaxis={"tickprefix": "$", "tickformat": ",.0f"}, **_LAYOUT)
    fig.update_xaxes(type="date")
    return fig


def _drawdown_figure(frame: pd.DataFrame, bench_symbol: str) -> go.Figure:
    x = _local(frame.index)
    fig = go.Figure()
    fig.add_scatter(
        x=x, y=frame["drawdown"], name="Strategy", fill="tozeroy",
        line={"color": "#c0392b", "width": 1}, fillcolor="rgba(192,57,43,0.25)",
    )
    fig.add_scatter(
        x=x, y=frame["benchmark_drawdown"], name=f"Buy & hold {bench_symbol}",
        line={"color": "#888888", "width": 1, "dash": "dot"},
    )
    fig.update_layout(title="Drawdown from running peak", yaxis={"tickformat": ".0%"}, **_LAYOUT)
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
    layout = {**_LAYOUT, "hovermode": "closest", "height": max(220, 60 + 40 * len(labels))}
    fig.update_layout(title="Monthly returns (strategy)", **layout)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", side="top")
    return fig


def _fig_json(fig: go.Figure) -> str:
    text = str(pio.to_json(fig, validate=False))
    # JSON inside <script>: no "</script>" or "<!--" can close or confuse the element.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ----------------------------------------------------------------------------- page

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px}
.banner{background:#b00020;color:#fff;font-weight:700;font-size:22px;text-align:center;
padding:14px;letter-spacing:.08em}
.banner small{display:block;font-weight:400;font-size:13px;letter-spacing:0}
.card{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:12px 16px;margin:12px 0}
.facts{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0}.facts dt{font-size:11px;color:#667;
text-transform:uppercase}.facts dd{margin:0;font-weight:600}
table.data{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
table.data th,table.data td{padding:4px 10px;border-bottom:1px solid #eceef2;text-align:right}
table.data th:first-child,table.data td:first-child{text-align:left}
table.data thead th{background:#f0f2f5;position:sticky;top:0}
#metrics-table{min-width:560px}#metrics-table tbody th{font-weight:500}
.compact{font-size:12px}.compact th{text-align:left!important;color:#556}
.pos{color:#11774b}.neg{color:#b3261e}.empty{text-align:center!important;color:#889}
.note{font-size:12px;color:#667;margin:4px 0}
.scroll{max-height:520px;overflow:auto}
details summary{cursor:pointer;font-size:13px;color:#445;margin-top:8px}
#js-errors{display:none}
"""

_ERROR_TRAP = """
(function(){
  var box = document.getElementById('js-errors');
  function note(msg){ var d = document.createElement('div'); d.textContent = String(msg);
    box.appendChild(d); box.style.display = 'block'; }
  window.addEventListener('error', function(e){
    note((e.message || 'error') + (e.filename ? ' @ ' + e.filename + ':' + e.lineno : '')); });
  window.addEventListener('unhandledrejection', function(e){
    note('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
})();
"""

_DRAW = """
(function(){
  var figs = JSON.parse(document.getElementById('figures').textContent);
  var cfg = {responsive: true, displaylogo: false};
  var jobs = Object.keys(figs).map(function(id){
    var f = figs[id]; return Plotly.newPlot(id, f.data, f.layout, cfg); });
  Promise.all(jobs).then(function(){
    var ok = Object.keys(figs).every(function(id){
      return document.querySelector('#' + id + ' .main-svg') !== null; });
    if (!ok) { throw new Error('a plot did not render'); }
    var d = document.createElement('div'); d.id = 'render-ok'; d.hidden = true;
    d.setAttribute('data-plots', String(Object.keys(figs).length));
    document.body.appendChild(d);
  });
})();
"""


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
    figs_json = "{" + ",".join(f'"{k}":{_fig_json(v)}' for k, v in figures.items()) + "}"
    kind = (result.config.get("strategy") or {}).get("kind", "strategy")
    title = f"sigtrade backtest — {kind} vs buy & hold {bench}"
    banner = (
        '<div class="banner" id="synthetic-banner">SYNTHETIC DATA'
        "<small>These bars were generated, not recorded: the figures say nothing about real "
        "markets.</small></div>"
        if result.synthetic
        else ""
    )
    n_fills = len(strat.fills)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<div id="js-errors"></div>
<script>{_ERROR_TRAP}</script>
{banner}
<main>
<h1>{_e(title)}</h1>
<section class="card">{_config_summary(result, metrics)}</section>
<h2>Figures</h2>
<section class="card">{_metrics_table(metrics, bench)}
<p class="note">Returns are fractions of starting capital shown as %; volatility, Sharpe and
Sortino are annualised with {_ratio(metrics.get("periods_per_year"))} periods a year;
turnover is traded notional (both sides) / mean equity per year.</p></section>
<h2>Equity</h2><section class="card"><div id="equity-plot" class="plot"></div></section>
<h2>Drawdown</h2><section class="card"><div id="drawdown-plot" class="plot"></div></section>
<h2>Monthly returns</h2><section class="card"><div id="monthly-heatmap" class="plot"></div></section>
<h2>Trades</h2><section class="card">
<p class="note" id="fills-count">{n_fills:,} fills (every fill is in fills.parquet).</p>
<div class="scroll">{_trades_table(strat.trades)}</div></section>
</main>
<script type="application/json" id="figures">{figs_json}</script>
<script>{get_plotlyjs()}</script>
<script>{_DRAW}</script>
</body></html>
"""
