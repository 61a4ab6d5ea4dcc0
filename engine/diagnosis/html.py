"""The Diagnosis section of report.html: plotly figures and tables drawn from a :class:`Diagnosis`.

:func:`section` returns the section's HTML and its figures by element id; ``engine.report``
places them in the page (same house look, same inline plotly, same render check). Every
plot id starts with ``diag-``; a part that does not apply shows its reason instead
(``class="na"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.diagnosis.build import Diagnosis
from engine.html_page import LAYOUT as _LAYOUT
from engine.html_page import esc as _e
from engine.html_page import facts as _facts_html
from engine.html_page import local_index as _local
from engine.html_page import pct as _pct
from engine.html_page import pct_plain as _pct_plain
from engine.html_page import ratio as _ratio
from engine.html_page import usd as _usd

_BLUE, _GREY, _RED, _GREEN, _ORANGE = "#1f5fbf", "#888888", "#c0392b", "#11774b", "#d98c1f"


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": title, **extra}


def _na(el_id: str, reason: Any) -> str:
    return f'<p class="note na" id="{_e(el_id)}-na">Does not apply: {_e(reason)}</p>'


def _table(el_id: str, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(head)}" class="empty">None.</td></tr>'
    return f'<table id="{_e(el_id)}" class="data compact-rows"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _facts(el_id: str, items: Sequence[tuple[str, str]]) -> str:
    return _facts_html(list(items), el_id)


def _num(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _plot(el_id: str) -> str:
    return f'<div id="{_e(el_id)}" class="plot"></div>'


# ----------------------------------------------------------------------------- sections


def _costs(d: Mapping[str, Any], s: Mapping[str, Any], equity: pd.Series, figs: dict[str, go.Figure]) -> str:
    parts = [_facts("diag-costs-facts", [
        ("Net P&L", _usd(d["net_pnl"])), ("Gross P&L", _usd(d["gross_pnl"])), ("Commission", _usd(d["commission"])),
        ("Slippage", _usd(d["slippage"])), ("Costs / gross P&L", _pct_plain(d.get("costs_share_of_gross"))),
        ("Costs / capital", _pct_plain(d.get("costs_share_of_capital"))),
    ])]
    gross = s.get("gross_equity")
    fig = go.Figure()
    x = _local(equity.index)
    fig.add_scatter(x=x, y=equity.to_numpy(), name="Net (the run)", line={"color": _BLUE, "width": 1.5})
    if gross is not None:
        fig.add_scatter(x=x, y=gross.to_numpy(), name="Gross (before commission and slippage)",
                        line={"color": _GREEN, "width": 1.2, "dash": "dot"})
    fig.update_layout(**_layout("Gross vs net equity (USD)", yaxis={"tickprefix": "$", "tickformat": ",.0f"}))
    fig.update_xaxes(type="date")
    figs["diag-gross-net-plot"] = fig
    parts.append(_plot("diag-gross-net-plot"))
    if d.get("monthly"):
        months = [r["month"] for r in d["monthly"]]
        fig = go.Figure()
        fig.add_bar(x=months, y=[r["commission"] for r in d["monthly"]], name="Commission", marker_color=_BLUE)
        fig.add_bar(x=months, y=[r["slippage"] for r in d["monthly"]], name="Slippage", marker_color=_ORANGE)
        fig.update_layout(**_layout("Costs per month (USD)", barmode="stack", hovermode="closest"))
        fig.update_xaxes(type="category")
        figs["diag-costs-month-plot"] = fig
        sym = d["by_symbol"][:30]
        fig = go.Figure()
        fig.add_bar(x=[r["symbol"] for r in sym], y=[r["commission"] for r in sym], name="Commission", marker_color=_BLUE)
        fig.add_bar(x=[r["symbol"] for r in sym], y=[r["slippage"] for r in sym], name="Slippage", marker_color=_ORANGE)
        fig.update_layout(**_layout("Commission vs slippage by symbol (USD)", barmode="group", hovermode="closest"))
        fig.update_xaxes(type="category")
        figs["diag-costs-symbol-plot"] = fig
        parts += [_plot("diag-costs-month-plot"), _plot("diag-costs-symbol-plot")]
    rt = d.get("round_trips") or {}
    if rt.get("applies"):
        parts.append(_facts("diag-edge-facts", [
            ("Round trips", f"{rt['trades']:,}"), ("Mean gross P&L / trip", _usd(rt["mean_gross_pnl"])),
            ("Mean cost / trip", _usd(rt["mean_cost"])), ("Edge / cost", _ratio(rt.get("edge_to_cost"))),
            ("Trips whose gross does not cover their cost", _pct_plain(rt["share_not_covering_cost"])),
        ]))
    be = d.get("break_even") or {}
    if not be.get("applies"):
        parts.append(_na("diag-cost-curve-plot", be.get("reason")))
        return "".join(parts)
    curve = be["curve"]
    bps = [c["bps"] for c in curve]
    fig = go.Figure()
    fig.add_scatter(x=bps, y=[c["sharpe"] for c in curve], name="Net Sharpe", line={"color": _BLUE}, yaxis="y")
    fig.add_scatter(x=bps, y=[c["total_return"] for c in curve], name="Net total return", line={"color": _GREEN}, yaxis="y2")
    fig.add_vline(x=be["configured_bps"], line={"color": _GREY, "dash": "dot"}, annotation_text="configured")
    tr, sr = be.get("total_return") or {}, be.get("sharpe") or {}
    if tr.get("bps") is not None:
        fig.add_vline(x=tr["bps"], line={"color": _RED}, annotation_text=f"break-even {tr['bps']:.1f} bps")
    fig.update_layout(**_layout(
        "Net Sharpe and total return vs cost (commission + slippage, bps per side)", hovermode="x",
        xaxis={"title": "bps per side"}, yaxis={"title": "Sharpe"},
        yaxis2={"title": "total return", "overlaying": "y", "side": "right", "tickformat": ".0%"},
    ))
    figs["diag-cost-curve-plot"] = fig
    parts.append(_plot("diag-cost-curve-plot"))
    conf = be.get("confirmation") or {}
    conf_text = (f"event engine at that cost: total return {_pct(conf.get('event_total_return'))}, "
                 f"Sharpe {_ratio(conf.get('event_sharpe'))}" if conf.get("ran") else conf.get("note", ""))
    parts.append(_facts("diag-break-even", [
        ("Break-even (total return)", _be(tr, be)), ("Break-even (Sharpe)", _be(sr, be)),
        ("Configured", f"{be['configured_bps']:g} bps per side"),
        ("Split", f"{be['commission_share'] * 100:.0f} % commission / {100 - be['commission_share'] * 100:.0f} % slippage"),
        ("Simulator", be.get("simulator", "")), ("Confirmation", conf_text),
    ]))
    return "".join(parts)


def _be(point: Mapping[str, Any], be: Mapping[str, Any]) -> str:
    if point.get("bps") is not None:
        return f"{point['bps']:.2f} bps per side"
    if point.get("status") == "above the curve":
        return f"above {be['max_bps']:g} bps per side"
    if point.get("status") == "no trades":
        return "none (no trades)"
    return "none (not positive before costs)"


def _churn(d: Mapping[str, Any], figs: dict[str, go.Figure]) -> str:
    hold = d.get("holding") or {}
    items = [("Turnover", "—" if d.get("turnover") is None else f"{d['turnover']:.1f}×/yr"),
             ("Round trips", f"{d['trades']:,}"), ("Trades per session", _num(d.get("trades_per_session"))),
             ("Median bars held", _num(hold.get("median"), 0)), ("Mean bars held", _num(hold.get("mean"), 1))]
    st, re = d.get("short_trades") or {}, d.get("reentries") or {}
    if st.get("applies"):
        items += [(f"Trips < {st['horizon']} bars (label horizon)", f"{st['count']:,} ({_pct_plain(st['share'])})"),
                  ("Their net P&L", _usd(st["net_pnl"]))]
    if re.get("applies"):
        items += [(f"Re-entries within {re['bars']} bars", f"{re['count']:,} ({_pct_plain(re['share'])})"),
                  ("Their net P&L", _usd(re["net_pnl"]))]
    out = [_facts("diag-churn-facts", items)]
    if not st.get("applies"):
        out.append(f'<p class="note">{_e(st.get("reason", ""))}</p>')
    if hold.get("histogram"):
        h = hold["histogram"]
        edges = h["edges"]
        labels = [f"{a}" if b - a == 1 else f"{a}–{b - 1}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        fig = go.Figure(go.Bar(x=labels, y=h["counts"], marker_color=_BLUE, name="round trips"))
        fig.update_layout(**_layout("Holding period (bars) of each round trip", hovermode="closest", showlegend=False))
        fig.update_xaxes(type="category")
        figs["diag-holding-plot"] = fig
        out.append(_plot("diag-holding-plot"))
    return "".join(out)


def _signal(d: Mapping[str, Any], figs: dict[str, go.Figure]) -> str:
    if not d.get("applies"):
        return _na("diag-deciles-plot", d.get("reason"))
    rows = [r for r in d["deciles"] if r.get("count")]
    rt = d["round_trip_cost_rate"]
    fig = go.Figure()
    fig.add_bar(x=[r["decile"] for r in rows], y=[r["mean_fwd"] for r in rows], name="mean forward return (gross)", marker_color=_BLUE)
    fig.add_bar(x=[r["decile"] for r in rows], y=[r["mean_fwd_net"] for r in rows], name="net of one round trip", marker_color=_ORANGE)
    fig.add_hline(y=rt, line={"color": _RED, "dash": "dot"}, annotation_text="one round trip")
    fig.update_layout(**_layout(f"Mean {d['horizon']}-bar forward return by probability decile", barmode="group",
                                hovermode="closest", yaxis={"tickformat": ".2%"}, xaxis={"title": "decile (1 = lowest p)", "dtick": 1}))
    figs["diag-deciles-plot"] = fig
    months = d["monthly_ic"]
    fig = go.Figure(go.Bar(x=[m["month"] for m in months], y=[m["ic"] for m in months],
                           marker_color=[_GREEN if (m["ic"] or 0) > 0 else _RED for m in months], name="IC"))
    fig.update_layout(**_layout("Spearman IC of p vs the forward return, per month", hovermode="closest", showlegend=False))
    fig.update_xaxes(type="category")
    figs["diag-ic-plot"] = fig
    table = _table("diag-deciles-table",
                   ["Decile", "Bars", "p range", "Hit rate", "Label rate", "Mean fwd", "Net of a round trip", "≥ entry"],
                   [[r["decile"], f"{r['count']:,}", f"{r['p_min']:.3f}–{r['p_max']:.3f}", _pct_plain(r["hit_rate"]),
                     _pct_plain(r["label_rate"]), _pct(r["mean_fwd"]), _pct(r["mean_fwd_net"]), _pct_plain(r["share_at_entry"])]
                    for r in rows])
    cls = d["classification"]
    names = {"model_at_card_threshold": f"model, card threshold {d['card_threshold']:.2f}",
             "model_at_entry_threshold": f"model, entry threshold {d['entry_threshold']:.2f}",
             "always_up": "always \"up\"", "base_rate": "base rate (constant p)"}
    ctable = _table("diag-classifiers-table", ["Classifier", "F1", "Precision", "Recall", "PR-AUC", "ROC-AUC", "Predicted +"],
                    [[names[k], _num(v.get("f1"), 3), _num(v.get("precision"), 3), _num(v.get("recall"), 3),
                      _num(v.get("pr_auc"), 3), _num(v.get("roc_auc"), 3), _pct_plain(v.get("predicted_pos_rate"))]
                     for k, v in cls.items()])
    facts = _facts("diag-signal-facts", [
        ("Model", d["model"]), ("Bars scored", f"{d['bars']:,}"), ("Label", f"{d['label']['kind']} at {d['horizon']} bars"),
        ("IC (whole window)", _num(d.get("ic"), 3)), ("Mean monthly IC", _num(d.get("mean_monthly_ic"), 3)),
        ("t of monthly IC", _num(d.get("monthly_ic_t"), 1)), ("Called positive at entry", _pct_plain(d.get("predicted_positive_at_entry"))),
    ])
    return facts + _plot("diag-deciles-plot") + table + _plot("diag-ic-plot") + ctable


_CONTROL_NAMES = {"strategy": "This run", "benchmark": "(a) benchmark buy-and-hold", "universe": "(b) universe buy-and-hold",
                  "one_slot": "(d) one slot per symbol"}


def _controls(d: Mapping[str, Any], s: Mapping[str, Any], figs: dict[str, go.Figure]) -> str:
    rows, names, values = [], [], []
    for key, label in _CONTROL_NAMES.items():
        c = d.get(key) or {}
        if key != "strategy" and not c.get("applies"):
            rows.append([label, "—", "—", "—", "—", "—", "—", f"does not apply: {c.get('reason', '')}"])
            continue
        if key == "benchmark":
            label = f"(a) buy-and-hold {c.get('symbol', '')}"
        rows.append([label, _pct(c.get("total_return")), _ratio(c.get("sharpe")), _pct(c.get("max_drawdown")),
                     "—" if c.get("trades") is None else f"{c['trades']:,}", _pct_plain(c.get("exposure")),
                     _usd(c.get("costs")), c.get("rules_out", "") and f"rules out {c['rules_out']}"])
        names.append(label)
        values.append(c.get("total_return"))
    table = _table("diag-controls-table",
                   ["Run", "Total return", "Sharpe", "Max DD", "Trades", "Exposure", "Costs", "What it rules out"], rows)
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=[_BLUE, *([_GREY] * (len(names) - 1))]))
    fig.update_layout(**_layout("Total return: the run and its controls", hovermode="closest", showlegend=False,
                                yaxis={"tickformat": ".0%"}))
    fig.update_xaxes(type="category")
    figs["diag-controls-plot"] = fig
    out = _plot("diag-controls-plot") + table
    rnd = d.get("random") or {}
    if rnd.get("applies") and s.get("random_total_return") is not None:
        fig = go.Figure(go.Histogram(x=np.asarray(s["random_total_return"]).tolist(), nbinsx=60, marker_color="#b8c2d1",
                                     name=f"{rnd['draws']:,} random {rnd['n']}-name buy-and-holds"))
        for key, color in (("strategy", _BLUE), ("universe", _GREEN), ("benchmark", _GREY)):
            v = (d.get(key) or {}).get("total_return")
            if v is not None:
                fig.add_vline(x=v, line={"color": color, "width": 2}, annotation_text=_CONTROL_NAMES[key].split(" ", 1)[-1])
        fig.update_layout(**_layout(f"(c) random {rnd['n']}-name buy-and-holds (seed {rnd['seed']}): total return",
                                    hovermode="closest", xaxis={"tickformat": ".0%"}))
        figs["diag-random-plot"] = fig
        out += _plot("diag-random-plot") + _facts("diag-random-facts", [
            ("This run's percentile (total return)", _pct_plain(rnd.get("strategy_percentile_total_return"))),
            ("… (Sharpe)", _pct_plain(rnd.get("strategy_percentile_sharpe"))),
            ("Median subset", _pct(rnd["total_return"]["p50"])), ("p5 – p95", f"{_pct(rnd['total_return']['p5'])} – {_pct(rnd['total_return']['p95'])}"),
            ("Rules out", rnd["rules_out"]),
        ])
    else:
        out += _na("diag-random-plot", rnd.get("reason"))
    return out


def _attribution(d: Mapping[str, Any], figs: dict[str, go.Figure]) -> str:
    top, bottom = d.get("top") or [], d.get("bottom") or []
    seen: dict[str, Mapping[str, Any]] = {r["symbol"]: r for r in [*top, *bottom]}
    ordered = sorted(seen.values(), key=lambda r: -r["net_pnl"])
    fig = go.Figure(go.Bar(x=[r["symbol"] for r in ordered], y=[r["net_pnl"] for r in ordered],
                           marker_color=[_GREEN if r["net_pnl"] > 0 else _RED for r in ordered]))
    fig.update_layout(**_layout("Net P&L by symbol: the best and worst ten (USD)", hovermode="closest", showlegend=False))
    fig.update_xaxes(type="category")
    figs["diag-symbols-plot"] = fig
    conc = d.get("concentration") or {}
    facts = _facts("diag-concentration", [
        ("Best symbol", f"{conc.get('best_symbol') or '—'} ({_usd(conc.get('best_pnl'))})"),
        ("Its share of net P&L", _pct_plain(conc.get("best_share")) if conc.get("applies") else "— (" + str(conc.get("reason", "")) + ")"),
        ("Top three's share", _pct_plain(conc.get("top3_share"))),
    ])
    groups = [[r.get("side") or r.get("reason"), f"{r['trades']:,}", _usd(r["net_pnl"]), _pct_plain(r["win_rate"]), _num(r["mean_bars"], 1)]
              for r in [*d.get("long_short", []), *d.get("exit_reason", [])]]
    gtable = _table("diag-groups-table", ["Side / exit reason", "Trades", "Net P&L", "Win rate", "Mean bars"], groups)
    reg = [[r["filter"], f"{r[k]['bars']:,}", _usd(r[k]["equity_change"]), f"{r[k]['trades']:,}", _usd(r[k]["trades_net_pnl"]), k]
           for r in d.get("regime", []) for k in ("allows", "blocks")]
    rtable = _table("diag-regime-table", ["Filter", "Bars", "Equity change", "Trades entered", "Their net P&L", "State"], reg)
    return _plot("diag-symbols-plot") + facts + gtable + rtable


def _risk(d: Mapping[str, Any], s: Mapping[str, Any], bench_symbol: str, figs: dict[str, go.Figure]) -> str:
    roll, band = s.get("rolling_sharpe"), s.get("rolling_band")
    fig = go.Figure()
    if roll is not None and len(roll):
        x = _local(roll.index)
        lo, hi = (roll - band).to_numpy(), (roll + band).to_numpy()
        fig.add_scatter(x=x, y=hi, line={"width": 0}, showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=x, y=lo, fill="tonexty", fillcolor="rgba(31,95,191,0.15)", line={"width": 0},
                        name="± 1 standard error")
        fig.add_scatter(x=x, y=roll.to_numpy(), name=f"Rolling Sharpe ({d['rolling_months']} months)", line={"color": _BLUE})
    fig.update_layout(**_layout("Rolling Sharpe ratio with its standard error"))
    fig.update_xaxes(type="date")
    figs["diag-rolling-sharpe-plot"] = fig
    short = roll is None or not roll.notna().any()
    note = (f'<p class="note" id="diag-rolling-note">The {d["rolling_months"]}-month window ({d["rolling_window_bars"]:,} bars) '
            "is longer than the run: no rolling value (diagnosis.rolling_months).</p>" if short else "")
    exp, bexp = s.get("exposure"), s.get("benchmark_exposure")
    fig = go.Figure()
    if exp is not None:
        fig.add_scatter(x=_local(exp.index), y=exp.to_numpy(), name="Strategy", line={"color": _BLUE, "width": 1})
    if bexp is not None:
        fig.add_scatter(x=_local(bexp.index), y=bexp.to_numpy(), name=f"Buy & hold {bench_symbol}", line={"color": _GREY, "width": 1})
    fig.update_layout(**_layout("Exposure (gross position value / equity)", yaxis={"tickformat": ".0%"}))
    fig.update_xaxes(type="date")
    figs["diag-exposure-plot"] = fig
    facts = _facts("diag-risk-facts", [
        ("Sharpe", f"{_ratio(d.get('sharpe'))} ± {_ratio(d.get('sharpe_se'))}"),
        ("s.e. with skew and kurtosis", _ratio(d.get("sharpe_se_nonnormal"))),
        ("Benchmark Sharpe", f"{_ratio(d.get('benchmark_sharpe'))} ± {_ratio(d.get('benchmark_sharpe_se'))}"),
        ("Difference in standard errors", _ratio(d.get("difference_in_se"))),
        ("Mean exposure", f"{_pct_plain(d.get('exposure_mean'))} vs {_pct_plain(d.get('benchmark_exposure_mean'))}"),
    ])
    dd = _table("diag-drawdowns-table", ["Start (peak)", "Trough", "Recovery", "Depth", "Days under water"],
                [[_day(r["start"]), _day(r["trough"]), _day(r["recovery"]) if r["recovery"] else "not recovered",
                  _pct(r["depth"]), _num(r["days_under_water"], 1)] for r in d.get("drawdowns", [])])
    return facts + _plot("diag-rolling-sharpe-plot") + note + dd + _plot("diag-exposure-plot")


def _day(iso: Any) -> str:
    return "—" if not iso else str(_local(pd.DatetimeIndex([pd.Timestamp(iso)]))[0].strftime("%Y-%m-%d %H:%M"))



def section(diag: Diagnosis, equity: pd.Series, bench_symbol: str) -> tuple[str, dict[str, go.Figure]]:
    """The section's HTML and its figures by element id."""
    d, s = diag.data, diag.series
    figs: dict[str, go.Figure] = {}
    rep = d.get("replay") or {}
    verdict = d["verdict"]
    blocks = [
        f'<section class="card" id="diag-verdict"><p class="verdict">{_e(verdict["text"])}</p>'
        f'<p class="note">Generated by the rules listed in diagnosis.json (verdict.rules) from the figures below. '
        f'Books: {_e(d.get("books", ""))}. Fast-path replay: {_e(rep.get("detail", ""))}.</p></section>',
        '<h3>1. Costs</h3><section class="card" id="diag-costs">' + _costs(d["costs"], s.get("costs", {}), equity, figs) + "</section>",
        '<h3>2. Churn</h3><section class="card" id="diag-churn">' + _churn(d["churn"], figs) + "</section>",
        '<h3>3. Signal quality, in money</h3><section class="card" id="diag-signal">' + _signal(d["signal_quality"], figs) + "</section>",
        '<h3>4. Controls</h3><section class="card" id="diag-controls">' + _controls(d["controls"], s.get("controls", {}), figs) + "</section>",
        '<h3>5. Where the P&amp;L came from</h3><section class="card" id="diag-attribution">' + _attribution(d["attribution"], figs) + "</section>",
        '<h3>6. Risk</h3><section class="card" id="diag-risk">' + _risk(d["risk"], s.get("risk", {}), bench_symbol, figs) + "</section>",
    ]
    return '<h2 id="diagnosis">Diagnosis</h2>' + "".join(blocks), figs


CSS = """
h3{font-size:15px;margin:18px 0 6px;color:#334}
.verdict{font-size:15px;line-height:1.5;margin:4px 0}
.na{color:#8a5a00;background:#fff7e6;border:1px solid #f0d9a8;padding:6px 10px;border-radius:4px}
table.compact-rows{margin:8px 0}
"""
"""Extra styles of the section."""
