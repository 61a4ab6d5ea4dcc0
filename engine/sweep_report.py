"""The sweep's ``report.html``: ranked table, overfitting statistics, walk-forward and heat maps in one page.

:func:`render_sweep_html` builds the page from a finished sweep
(:class:`engine.sim.sweep.SweepResult`), its overfitting report
(:class:`engine.stats.OverfittingReport`, or None under ``--no-stats``), the reference rows
(:class:`ReferenceRow`: the benchmark's buy-and-hold, and any other control a caller adds)
and the ``--verify-top`` comparison (:class:`VerifyRow`). :func:`write_sweep_pages` writes
it as ``report.html`` next to a ``heatmaps.html`` that forwards to its heat maps (the
file earlier versions wrote), atomically.

The page has the house look of the backtest report (:mod:`engine.html_page`): it opens
from disk with no server, plotly.js is inlined once. Its sections have stable ids
(``summary``, ``ranked``, ``overfitting``, ``walk-forward``, ``heatmaps``, ``verify``); a
section whose figures were not computed (one swept axis, ``--no-stats``, no
``--walk-forward``, no ``--verify-top``) holds one ``p.absent`` line saying why. Every
figure the page shows is also in the ``#sweep-data`` JSON object: ``overfitting`` is the
exact content of ``overfitting.json``, ``ranked`` the shown rows of ``results.parquet``.

The view is kept in the URL's fragment, so a link reopens it: ``#metric=trades`` picks the
heat maps' metric, ``#sort=total_return&dir=desc`` sorts the ranked table.

Heat maps: each cell of an ``a x b`` map is the configuration ranked best (by the sweep's
``--metric``) among those with that value of ``a`` and of ``b``, whatever the other axes;
its Sharpe, return, max drawdown and trades are shown by the metric selector, on one colour
scale per metric across every map.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.config import config_to_dict
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
from engine.metrics import compute_metrics, json_safe
from engine.results import RunResult
from engine.sim.grid import Axis
from engine.sim.sweep import SweepResult
from engine.stats import OverfittingReport, sharpe_ratio

PAGE_FILES = ("report.html", "heatmaps.html")
"""The pages :func:`write_sweep_pages` writes."""

FIGURES = ("sharpe", "total_return", "max_drawdown", "trades", "turnover", "costs", "time_in_market")
"""Columns of the ranked table after the swept values (the ranking metric is added when not among them)."""

HEATMAP_METRICS = ("sharpe", "total_return", "max_drawdown", "trades")
"""Metrics the heat maps' selector offers (the ranking metric is added when not among them)."""

MAX_ANNOTATED_CELLS = 900
"""Heat maps with more cells than this are drawn without the value in each cell."""

_LABELS = {
    "sharpe": "Sharpe", "sortino": "Sortino", "calmar": "Calmar", "total_return": "Return",
    "max_drawdown": "Max DD", "trades": "Trades", "turnover": "Turnover", "costs": "Costs",
    "time_in_market": "Time in market",
}
_TEXT = {  # plotly d3-format of a value in a heat-map cell
    "sharpe": ".2f", "sortino": ".2f", "calmar": ".2f", "total_return": ".1%", "max_drawdown": ".1%",
    "trades": ",.0f",
}


def _turnover(x: Any) -> str:
    return "—" if x is None else f"{x:,.1f}×/yr"


def _costs(x: Any) -> str:
    return "—" if x is None else f"${x:,.0f}"


_FORMAT = {
    "sharpe": ratio, "sortino": ratio, "calmar": ratio, "total_return": pct, "max_drawdown": pct,
    "trades": integer, "turnover": _turnover, "costs": _costs, "time_in_market": pct_plain,
}


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ReferenceRow:
    """A row of the ranked table that is not a configuration of the grid: a control to beat.

    Attributes
    ----------
    key : stable id (``benchmark``, ``universe``...), the row's ``data-ref``.
    label : what the row is, shown in place of the swept values.
    figures : the ranked table's figures (:data:`FIGURES` keys; None when undefined).
    note : one line on how it was computed, under the table.
    """

    key: str
    label: str
    figures: Mapping[str, float | None]
    note: str = ""


def reference_row(key: str, label: str, run: RunResult, *, risk_free_rate: float = 0.0, note: str = "") -> ReferenceRow:
    """A reference row from any simulated account, with the figures of :mod:`engine.metrics`.

    ``time_in_market`` is the share of the account's bar closes with a position, as the
    sweep kernel counts it.
    """
    m = compute_metrics(run, risk_free_rate=risk_free_rate)
    cost = (m.get("commission_paid") or 0.0) + (m.get("slippage_paid") or 0.0)
    held = float((run.exposure.to_numpy(dtype=float) > 0).mean()) if len(run.exposure) else None
    figures = {
        "sharpe": m.get("sharpe"), "sortino": m.get("sortino"), "calmar": m.get("calmar"),
        "total_return": m.get("total_return"), "max_drawdown": m.get("max_drawdown"),
        "trades": m.get("trades"), "turnover": m.get("turnover"), "costs": cost, "time_in_market": held,
    }
    return ReferenceRow(key=key, label=label, figures=figures, note=note)


@dataclass(frozen=True)
class VerifyRow:
    """One ``--verify-top`` configuration: the kernel's and the event engine's figures side by side.

    ``kernel`` / ``event`` hold ``sharpe``, ``total_return``, ``max_drawdown``, ``trades``,
    ``fills`` and ``final_equity``; ``report`` is the re-run's ``report.html`` relative to
    the sweep's folder (None when it was not written).
    """

    rank: int
    config: Any
    kernel: Mapping[str, Any]
    event: Mapping[str, Any]
    identical: bool
    report: str | None = None


@dataclass(frozen=True)
class RunFacts:
    """How the sweep ran, for the page's header."""

    wall_seconds: float
    threads: int
    synthetic: bool = False
    stats_reason: str | None = None
    """Why there are no overfitting statistics (``--no-stats``, or the error that stopped them)."""
    notes: list[str] = field(default_factory=list)
    """Lines shown at the end of the page (e.g. why a reference row is missing)."""


def overfitting_summary(res: SweepResult, report: OverfittingReport | None, metric: str) -> dict[str, Any]:
    """The content of ``overfitting.json`` (JSON-ready)."""
    summary = {
        "configs": len(res.results),
        "skipped": res.skipped,
        "axes": {a.key: list(a.values) for a in res.axes},
        "metric": metric,
        "overfitting": None if report is None else report.summary(),
    }
    return json_safe(summary)  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- helpers


def _value(v: Any) -> str:
    v = v.item() if isinstance(v, np.generic) else v
    return f"{v:g}" if isinstance(v, float) else str(v)


def _short(key: str) -> str:
    return key.split(".", 1)[1] if "." in key else key


def _cell(key: str, v: Any) -> str:
    """A ``<td>`` with the shown text and the exact value in ``data-value``."""
    f = finite(v) if not isinstance(v, str) else None
    raw = "" if f is None else repr(int(v) if key == "trades" else f)
    text = _FORMAT[key](None if f is None else (int(v) if key == "trades" else f))
    cls = ""
    if key in ("sharpe", "total_return") and f is not None:
        cls = ' class="pos"' if f > 0 else ' class="neg"' if f < 0 else ""
    return f'<td data-key="{key}" data-value="{raw}"{cls}>{esc(text)}</td>'


def _annual(x: float | None, root: float) -> float | None:
    return None if x is None or not math.isfinite(x) else x * root


def _span(el_id: str, value: float | None, text: str) -> str:
    raw = "" if value is None else repr(float(value))
    return f'<strong id="{el_id}" data-value="{raw}">{esc(text)}</strong>'


def _absent(el_id: str, text: str) -> str:
    return f'<p class="absent note" id="{el_id}">{esc(text)}</p>'


def _ranked_metrics(metric: str, base: Sequence[str]) -> list[str]:
    return [*base, metric] if metric not in base else list(base)


# ----------------------------------------------------------------------------- header


def _header(res: SweepResult, facts_: RunFacts, metric: str) -> str:
    fast = res.fast
    cfg = fast.cfg
    idx = fast.window_index
    symbols = fast.symbols
    shown = ", ".join(symbols[:20]) + (f" … (+{len(symbols) - 20})" if len(symbols) > 20 else "")
    co = cfg.costs
    swept_costs = [a.key for a in res.axes if a.key.startswith("costs.")]
    costs = (
        f"commission {co.commission_bps:g} bps + ${co.commission_per_share:g}/share (min ${co.commission_min:g}); "
        f"slippage {co.slippage_bps:g} bps per side" + (f" (swept: {', '.join(swept_costs)})" if swept_costs else "")
    )
    n = len(res.results)
    rate = res.steps / res.seconds if res.seconds > 0 else float("nan")
    per_s = n / res.seconds if res.seconds > 0 else float("nan")
    items = [
        ("Window", f"{short_ts(idx[0]) if len(idx) else '—'} → {short_ts(idx[-1]) if len(idx) else '—'} ({len(idx):,} bar closes, NY time)"),
        ("Universe", f"{len(symbols)} symbols ({cfg.data.bar}): {shown}"),
        ("Benchmark", f"buy & hold {cfg.benchmark.symbol}"),
        ("Costs", costs),
        ("Fills", f"{cfg.execution.fill}" + ("; flat at the end" if cfg.execution.close_at_end else "")),
        ("Capital", usd(cfg.portfolio.capital)),
        ("Configurations", f"{n:,}" + (f" (+{res.skipped:,} skipped: {res.skipped_example})" if res.skipped else "")),
        ("Ranked by", metric),
        (
            "Simulation",
            f"{res.seconds:,.2f} s: {rate:,.3g} bar×symbol steps/s, {per_s:,.0f} configurations/s on "
            f"{facts_.threads} thread(s); kernel ready in {res.jit_seconds:,.2f} s; {facts_.wall_seconds:,.1f} s in all",
        ),
    ]
    grid = "".join(
        f'<tr data-key="{esc(a.key)}"><th>{esc(a.key)}</th><td>{len(a.values)}</td>'
        f"<td>{esc(', '.join(_value(v) for v in a.values))}</td></tr>"
        for a in res.axes
    )
    return (
        facts(items)
        + '<h3>Grid</h3><table id="grid-table" class="data compact"><thead><tr><th>key</th><th>n</th>'
        f"<th>values</th></tr></thead><tbody>{grid}</tbody></table>"
        + config_details(config_to_dict(cfg), "Base configuration")
    )


# ----------------------------------------------------------------------------- ranked table


def _ranked(res: SweepResult, metric: str, top: int, refs: Sequence[ReferenceRow]) -> tuple[str, list[dict[str, Any]]]:
    ranked = res.ranked(metric).head(top)
    keys = _ranked_metrics(metric, FIGURES)
    head = '<th data-key="rank">#</th><th data-key="config">config</th>'
    head += "".join(f'<th data-key="{esc(a.key)}" title="{esc(a.key)}">{esc(_short(a.key))}</th>' for a in res.axes)
    head += "".join(f'<th data-key="{k}">{esc(_LABELS[k])}{" ★" if k == metric else ""}</th>' for k in keys)
    rows: list[str] = []
    records: list[dict[str, Any]] = []
    for i, rec in enumerate(ranked.reset_index().to_dict("records"), start=1):
        cid = rec["config"]
        cells = [f'<td data-key="rank" data-value="{i}">{i}</td>', f'<td data-key="config" data-value="{cid}">{cid}</td>']
        for a in res.axes:
            raw = _value(rec[a.key])
            cells.append(f'<td data-key="{esc(a.key)}" data-value="{esc(raw)}">{esc(raw)}</td>')
        cells += [_cell(k, rec[k]) for k in keys]
        rows.append(f'<tr data-config="{cid}" data-rank="{i}">' + "".join(cells) + "</tr>")
        records.append({"rank": i, **rec})
    ref_rows = []
    for r in refs:
        cells = [f'<td colspan="{2 + len(res.axes)}" class="ref-label">{esc(r.label)}</td>']
        cells += [_cell(k, r.figures.get(k)) for k in keys]
        ref_rows.append(f'<tr data-ref="{esc(r.key)}" class="ref">' + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note" data-ref-note="{esc(r.key)}">{esc(r.label)}: {esc(r.note)}</p>' for r in refs if r.note)
    table = (
        f'<p class="note">The best {len(ranked):,} of {len(res.results):,} configurations by {esc(metric)} '
        "(click a column to sort; every configuration is in results.parquet). Sharpe is annualised; "
        "turnover is traded notional / mean equity per year; costs are commission + slippage in USD; "
        "time in market is the share of bar closes with a position.</p>"
        f'<div class="scroll"><table id="ranked-table" class="data sortable"><thead><tr>{head}</tr></thead>'
        f'<tbody id="ranked-rows">{"".join(rows)}</tbody>'
        f'<tbody id="reference-rows">{"".join(ref_rows)}</tbody></table></div>{notes}'
    )
    return table, records


# ----------------------------------------------------------------------------- overfitting


def _logit_histogram(logits: np.ndarray, per_side: int = 12) -> dict[str, Any]:
    """Counts of the CSCV logits in right-closed bins ``(e[i-1], e[i]]`` with 0 an edge.

    The bins with right edge <= 0 hold exactly the splits with logit <= 0, so their share
    of the total is the PBO.
    """
    lim = float(np.max(np.abs(logits))) if len(logits) else 1.0
    lim = lim if lim > 0 else 1.0
    edges = np.linspace(-lim, lim, 2 * per_side + 1)
    edges[per_side] = 0.0
    where = np.clip(np.searchsorted(edges, logits, side="left"), 1, 2 * per_side)
    counts = np.bincount(where - 1, minlength=2 * per_side)
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist(), "zero_bin": per_side}


def _overfitting(
    res: SweepResult, report: OverfittingReport | None, facts_: RunFacts, metric: str
) -> tuple[str, dict[str, go.Figure], dict[str, Any]]:
    if report is None:
        reason = facts_.stats_reason or "the overfitting statistics were not computed"
        return _absent("overfitting-absent", f"Not computed: {reason}."), {}, {}
    root = math.sqrt(res.fast.periods_per_year)
    parts: list[str] = []
    figs: dict[str, go.Figure] = {}
    extra: dict[str, Any] = {}
    d = report.dsr
    best = report.best_config
    first = res.ranked(metric).index[0]
    parts.append(
        f'<p>Best by Sharpe: config <strong id="best-config" data-value="{esc(best)}">{esc(best)}</strong>, Sharpe '
        + _span("best-sharpe", _annual(report.best_sharpe, root), ratio(_annual(report.best_sharpe, root)))
        + f" (annualised) of <strong id=\"n-trials\" data-value=\"{report.n_trials}\">{report.n_trials:,}</strong> configurations tried"
        + (
            f" (the statistics choose by Sharpe over every bar, where a flat configuration scores 0; the ranked "
            f"table's first, by {esc(metric)}, is config {esc(first)})" if first != best else ""
        )
        + ".</p>"
    )
    if d is not None:
        parts.append(
            '<h3>Deflated Sharpe Ratio</h3><p id="dsr">DSR of the best: '
            + _span("dsr-value", d.dsr, f"{d.dsr:.3f}")
            + "; the best of "
            + f"{d.n_trials:,} pure-noise trials is expected at Sharpe "
            + _span("sr0-value", _annual(d.sr0, root), ratio(_annual(d.sr0, root)))
            + " (annualised); PSR without deflation "
            + _span("psr-value", d.psr, f"{d.psr:.3f}")
            + ".</p><p class=\"note\">How to read it: the DSR is the probability that the best configuration's true "
            "Sharpe ratio is above zero once the number of configurations tried is accounted for (the PSR is the same "
            "probability as if it had been the only one tried); above 0.95 is evidence of skill, below 0.5 is none.</p>"
        )
    pb = report.pbo
    if pb is None:
        why = "; ".join(n for n in report.notes if n.startswith("PBO not computed")) or "PBO not computed"
        parts.append("<h3>Probability of Backtest Overfitting</h3>" + _absent("pbo-absent", why + "."))
    else:
        hist = _logit_histogram(pb.logits)
        extra["pbo_histogram"] = hist
        verdict = "likely overfit" if pb.pbo > 0.5 else "not obviously overfit" if pb.pbo < 0.2 else "doubtful"
        parts.append(
            "<h3>Probability of Backtest Overfitting</h3><p id=\"pbo\">PBO by CSCV: "
            + _span("pbo-value", pb.pbo, f"{pb.pbo:.3f}")
            + f" ({esc(verdict)}) over {pb.n_combinations:,} splits of {pb.n_blocks} blocks of {pb.block_size:,} bars; "
            "the in-sample winner's out-of-sample Sharpe is negative in "
            + _span("prob-oos-loss", pb.prob_oos_loss, f"{pb.prob_oos_loss * 100:.0f} %")
            + " of splits.</p>"
            '<div id="pbo-histogram" class="plot"></div>'
            '<p class="note">How to read it: each split halves the bars into an in-sample and an out-of-sample set; '
            "the logit is where the in-sample winner ranks out of sample (above 0: better than the median "
            "configuration, below: worse). The PBO is the share of splits at or below 0 (the red bars): near 0 the "
            "in-sample choice holds up, above 0.5 choosing the best in-sample does worse than picking at random.</p>"
            '<div id="pbo-scatter" class="plot"></div>'
            '<p class="note">How to read it: one point per split, the in-sample winner\'s Sharpe in-sample (x) and '
            "out of sample (y), annualised. Points below 0 are splits where the winner lost money out of sample; a "
            "line falling to the right means that the better a configuration looked in-sample, the worse it did "
            "after.</p>"
        )
        figs["pbo-histogram"] = _histogram_figure(hist)
        figs["pbo-scatter"] = _scatter_figure(pb.is_metric * root, pb.oos_metric * root, pb.degradation_slope, pb.degradation_intercept, root)
    parts += [f'<p class="note">note: {esc(n)}</p>' for n in report.notes]
    return "".join(parts), figs, extra


def _histogram_figure(hist: Mapping[str, Any]) -> go.Figure:
    edges = np.asarray(hist["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    colours = ["#c0392b" if right <= 0 else "#11774b" for right in edges[1:]]
    fig = go.Figure(
        go.Bar(
            x=centres.tolist(), y=hist["counts"], width=np.diff(edges).tolist(), marker={"color": colours},
            hovertemplate="logit %{x:.2f}: %{y:,} splits<extra></extra>", name="splits",
        )
    )
    fig.add_vline(x=0.0, line={"color": "#333", "width": 1, "dash": "dot"})
    fig.update_layout(
        title="CSCV logits of the in-sample winner", xaxis_title="logit of its out-of-sample rank",
        yaxis_title="splits", showlegend=False, **{**LAYOUT, "hovermode": "closest", "height": 320},
    )
    return fig


def _scatter_figure(x: np.ndarray, y: np.ndarray, slope: float | None, intercept: float | None, root: float) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=np.asarray(x, dtype=float), y=np.asarray(y, dtype=float), mode="markers", name="splits",
            marker={"size": 4, "color": "#1f5fbf", "opacity": 0.35},
            hovertemplate="in-sample %{x:.2f}, out-of-sample %{y:.2f}<extra></extra>",
        )
    )
    if slope is not None and intercept is not None and len(x):
        lo, hi = float(np.min(x)), float(np.max(x))
        fig.add_scatter(
            x=[lo, hi], y=[intercept * root + slope * lo, intercept * root + slope * hi], mode="lines",
            name=f"OLS: OOS = {intercept * root:.2f} {'−' if slope < 0 else '+'} {abs(slope):.2f} × IS",
            line={"color": "#c0392b", "width": 1.5},
        )
    fig.add_hline(y=0.0, line={"color": "#888", "width": 1, "dash": "dot"})
    fig.update_layout(
        title="In-sample vs out-of-sample Sharpe of the in-sample winner, per split",
        xaxis_title="in-sample Sharpe (annualised)", yaxis_title="out-of-sample Sharpe (annualised)",
        **{**LAYOUT, "hovermode": "closest", "height": 380},
    )
    return fig


# ----------------------------------------------------------------------------- walk-forward


def _bench_returns(res: SweepResult, bench: RunResult | None) -> pd.Series | None:
    if bench is None or not len(bench.equity):
        return None
    idx = res.fast.window_index
    eq = bench.equity.astype("float64").reindex(idx.union(bench.equity.index)).ffill().reindex(idx)
    eq = eq.fillna(float(bench.capital))
    return eq.pct_change().iloc[1:]


def _walk_forward(
    res: SweepResult, report: OverfittingReport | None, bench: RunResult | None, bench_symbol: str, facts_: RunFacts
) -> tuple[str, dict[str, go.Figure], dict[str, Any]]:
    wf = None if report is None else report.walk_forward
    if wf is None:
        if report is None:
            why = f"Not run: {facts_.stats_reason or 'no overfitting statistics'}."
        else:
            why = "Not run: pass --walk-forward train=12M,test=3M (for example) to choose on each training window and trade the next test window."
        return _absent("walk-forward-absent", why), {}, {}
    root = math.sqrt(res.fast.periods_per_year)
    cap = res.fast.capital
    oos = wf.oos_returns
    best_r = res.returns_of(wf.in_sample_best).reindex(oos.index)
    b_r = _bench_returns(res, bench)
    lines = {"walk-forward (stitched out-of-sample)": oos, f"in-sample best (config {wf.in_sample_best}), same bars": best_r}
    if b_r is not None:
        lines[f"buy & hold {bench_symbol}, same bars"] = b_r.reindex(oos.index)
    fig = go.Figure()
    colours = ["#1f5fbf", "#e67e22", "#888888"]
    x = local_index(oos.index)
    for (name, r), colour in zip(lines.items(), colours, strict=False):
        eq = cap * np.cumprod(1.0 + r.to_numpy(dtype=float))
        kw: dict[str, Any] = {}
        if name.startswith("walk-forward"):
            kw = {"customdata": [str(c) for c in wf.oos_config.to_numpy()], "hovertemplate": "%{y:$,.0f} (config %{customdata})"}
        fig.add_scatter(x=x, y=eq.tolist(), name=name, line={"color": colour, "width": 1.6 if colour == colours[0] else 1.2}, **kw)
    for w in wf.windows:
        fig.add_vline(x=local_index([max(w.test_start, oos.index[0])])[0], line={"color": "#bbb", "width": 1, "dash": "dot"})
    fig.update_layout(title="Equity over the test windows (USD, from the capital)", yaxis={"tickprefix": "$", "tickformat": ",.0f"}, **LAYOUT)
    fig.update_xaxes(type="date")

    s = wf.summary
    figures: dict[str, Any] = {
        "oos": {"sharpe": s.get("oos_sharpe_annualised"), "total_return": s.get("oos_total_return")},
        "is_best": {"sharpe": s.get("is_best_on_oos_sharpe_annualised"), "total_return": s.get("is_best_on_oos_total_return")},
    }
    if b_r is not None:
        rb = b_r.reindex(oos.index).to_numpy(dtype=float)
        figures["benchmark"] = {
            "sharpe": sharpe_ratio(rb) * root if len(rb) >= 2 else None,
            "total_return": float(np.prod(1.0 + rb) - 1.0),
        }
    rows = []
    axes = [a.key for a in res.axes]
    for i, w in enumerate(wf.windows, start=1):
        vals = _records(res.results.loc[[w.chosen]])[0] if w.chosen in res.results.index else None
        swept = ", ".join(f"{_short(k)}={_value(vals[k])}" for k in axes) if vals is not None else ""
        rows.append(
            f'<tr data-window="{i}" data-config="{esc(w.chosen)}"><td>{i}</td>'
            f"<td>{w.train_start:%Y-%m-%d} → {w.train_end:%Y-%m-%d}</td><td>{w.test_start:%Y-%m-%d} → {w.test_end:%Y-%m-%d}</td>"
            f"<td>{esc(w.chosen)}</td><td>{esc(swept)}</td>"
            f"<td>{ratio(_annual(w.is_metric, root))}</td><td>{ratio(_annual(w.oos_metric, root))}</td>"
            f"<td>{pct(finite(w.oos_return))}</td><td>{w.n_test:,}</td></tr>"
        )
    summary_rows = "".join(
        f'<tr data-line="{key}"><th>{esc(label)}</th>{_cell("sharpe", figures[key]["sharpe"])}{_cell("total_return", figures[key]["total_return"])}</tr>'
        for key, label in (
            ("oos", "walk-forward, stitched out-of-sample"),
            ("is_best", f"in-sample best (config {wf.in_sample_best}), same bars"),
            ("benchmark", f"buy & hold {bench_symbol}, same bars"),
        )
        if key in figures
    )
    html = (
        f'<p>{esc(s["spec"])}: {s["n_windows"]} windows, {s["distinct_choices"]} distinct choice(s), '
        f"{s['oos_periods']:,} out-of-sample bars ({esc(short_ts(s['oos_start']))} → {esc(short_ts(s['oos_end']))}).</p>"
        '<table id="walk-forward-summary" class="data"><thead><tr><th></th><th>Sharpe</th><th>Return</th></tr></thead>'
        f"<tbody>{summary_rows}</tbody></table>"
        '<div id="walk-forward-equity" class="plot"></div>'
        '<p class="note">How to read it: each test window trades the configuration that had the best Sharpe on the '
        "training window before it; the stitched line is what choosing that way would have earned. The in-sample "
        "best is the hindsight choice over the whole sweep on the same bars (no user could have picked it in "
        "advance); buy &amp; hold is the benchmark. A stitched line far below the in-sample best says the ranking "
        "does not carry forward.</p>"
        '<table id="walk-forward-windows" class="data"><thead><tr><th>#</th><th>train</th><th>test</th><th>chosen</th>'
        "<th>swept values</th><th>train Sharpe</th><th>test Sharpe</th><th>test return</th><th>test bars</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    data = {"summary": figures, "windows": [{"chosen": w.chosen, "test_start": w.test_start.isoformat()} for w in wf.windows]}
    return html, {"walk-forward-equity": fig}, data


# ----------------------------------------------------------------------------- heat maps


def _scale(metric: str, values: np.ndarray) -> dict[str, Any]:
    v = values[np.isfinite(values)]
    if metric == "trades":
        return {"colorscale": "Blues", "zmin": 0.0, "zmax": float(v.max()) if len(v) and v.max() > 0 else 1.0}
    if metric == "max_drawdown":
        return {"colorscale": "RdYlGn", "zmin": float(v.min()) if len(v) and v.min() < 0 else -0.01, "zmax": 0.0}
    lim = float(np.abs(v).max()) if len(v) else 0.0
    lim = lim if lim > 0 else 1.0
    return {"colorscale": "RdYlGn", "zmin": -lim, "zmax": lim}


Record = dict[str, Any]


def _records(frame: pd.DataFrame) -> list[Record]:
    """Rows as dicts of native values (each column keeps its type), ``config`` included."""
    return frame.reset_index().to_dict("records")  # type: ignore[return-value]


def _best_per_cell(res: SweepResult, metric: str, keys: Sequence[str]) -> dict[tuple[Any, ...], Record]:
    """For each combination of the *keys*' values, the configuration ranked best by *metric*."""
    ranked = res.ranked(metric)
    first = ranked.groupby(list(keys), sort=False, dropna=False).head(1)
    return {tuple(r[k] for k in keys): r for r in _records(first)}


def _describe(rec: Record, res: SweepResult) -> str:
    return f"config {rec['config']}: " + ", ".join(f"{_short(a.key)}={_value(rec[a.key])}" for a in res.axes)


def _marks(res: SweepResult, report: OverfittingReport | None, metric: str) -> tuple[Record, list[tuple[Record, list[int]]]]:
    best = _records(res.ranked(metric).head(1))[0]
    wf = None if report is None else report.walk_forward
    windows: dict[Any, list[int]] = {}
    for i, w in enumerate(wf.windows if wf is not None else [], start=1):
        windows.setdefault(w.chosen, []).append(i)
    recs = {r["config"]: r for r in _records(res.results.loc[list(windows)])} if windows else {}
    return best, [(recs[c], ws) for c, ws in windows.items()]


def _hover(rec: Record, res: SweepResult, metric: str, best: Record, choices: Sequence[tuple[Record, list[int]]]) -> str:
    lines = [_describe(rec, res)]
    if rec["config"] == best["config"]:
        lines.append(f"★ best by {metric}")
    lines += [
        "chosen by walk-forward window(s) " + ", ".join(map(str, ws)) for c, ws in choices if c["config"] == rec["config"]
    ]
    return "<br>".join(esc(x) for x in lines)


def _heatmaps(
    res: SweepResult, report: OverfittingReport | None, metric: str
) -> tuple[str, dict[str, go.Figure], dict[str, Any]]:
    swept = [a for a in res.axes if len(a.values) > 1]
    if not swept:
        return _absent("heatmaps-absent", "Every swept axis has a single value: there is nothing to map."), {}, {}
    metrics = _ranked_metrics(metric, HEATMAP_METRICS)
    best, choices = _marks(res, report, metric)
    grids: list[tuple[str, list[Axis], dict[tuple[Any, ...], Record]]] = []
    if len(swept) == 1:
        grids.append(("axis-line", swept, _best_per_cell(res, metric, [swept[0].key])))
    pairs = [(a, b) for i, a in enumerate(swept) for b in swept[i + 1 :]]
    for j, (a, b) in enumerate(pairs):
        grids.append((f"heatmap-{j}", [a, b], _best_per_cell(res, metric, [a.key, b.key])))
    scales = {
        m: _scale(m, np.array([finite(r[m]) if finite(r[m]) is not None else np.nan for _, _, g in grids for r in g.values()]))
        for m in metrics
    }
    figs: dict[str, go.Figure] = {}
    for el_id, axes, cells in grids:
        if len(axes) == 1:
            figs[el_id] = _line_figure(res, cells, axes[0], metrics, metric, best, choices)
        else:
            figs[el_id] = _heatmap_figure(res, cells, axes, metrics, metric, scales, best, choices)
    options = "".join(
        f'<option value="{m}"{" selected" if m == metric else ""}>{esc(_LABELS[m])}</option>' for m in metrics
    )
    framed = len(swept) > 1
    marks = f"★{' and a black frame' if framed else ''} mark the best configuration by {esc(metric)} (config {esc(best['config'])})"
    if choices:
        marks += f"; W1, W2…{' and a dashed blue frame' if framed else ''} the configuration each walk-forward window chose"
    if len(swept) == 1:
        lead = (
            f"One swept axis ({esc(swept[0].key)}): a line instead of a heat map; each point is the best configuration "
            f"by {esc(metric)} with that value."
        )
        divs = '<div id="axis-line" class="plot metric-plot"></div>'
    else:
        lead = (
            f"Every pair of swept axes; each cell is the configuration ranked best by {esc(metric)} among those with "
            "that pair of values (the other axes free), with its value written in; one colour scale per metric "
            "across every map; a blank cell has no configuration or an undefined figure (no trades, no Sharpe)."
        )
        divs = "".join(f'<div id="heatmap-{j}" class="plot metric-plot"></div>' for j in range(len(pairs)))
    html = (
        f'<p class="note">{lead} {marks}.</p>'
        f'<label class="selector">Metric <select id="metric-select">{options}</select></label>{divs}'
    )
    return html, figs, {"heatmap_metrics": metrics}


def _heatmap_figure(
    res: SweepResult, cells: Mapping[tuple[Any, ...], Record], axes: Sequence[Axis], metrics: list[str], metric: str,
    scales: Mapping[str, dict[str, Any]], best: Record, choices: Sequence[tuple[Record, list[int]]],
) -> go.Figure:
    ay, ax = axes
    ylab, xlab = [_value(v) for v in ay.values], [_value(v) for v in ax.values]
    annotate = len(ylab) * len(xlab) <= MAX_ANNOTATED_CELLS

    def at(rec: Record) -> tuple[int, int]:
        return ay.values.index(rec[ay.key]), ax.values.index(rec[ax.key])

    # the walk-forward choices by cell (a cell shows its best configuration, which may not be the one chosen)
    chosen: dict[tuple[int, int], list[tuple[Any, list[int]]]] = {}
    for rec, windows in choices:
        chosen.setdefault(at(rec), []).append((rec["config"], windows))
    grid = [[cells.get((vy, vx)) for vx in ax.values] for vy in ay.values]
    hover = [
        [
            "<br>".join(
                [_hover(r, res, metric, best, choices) if r is not None else "no configuration"]
                + [
                    esc(f"walk-forward window(s) {', '.join(map(str, ws))} chose config {c}, in this cell")
                    for c, ws in chosen.get((i, j), []) if r is None or c != r["config"]
                ]
            )
            for j, r in enumerate(row)
        ]
        for i, row in enumerate(grid)
    ]
    fig = go.Figure()
    for m in metrics:
        z = [[finite(r[m]) if r is not None else None for r in row] for row in grid]
        fig.add_heatmap(
            z=z, x=xlab, y=ylab, meta=m, visible=m == metric, name=_LABELS[m], text=hover,
            texttemplate=f"%{{z:{_TEXT.get(m, '.2f')}}}" if annotate else None, hoverongaps=False,
            hovertemplate=f"%{{text}}<br>{_LABELS[m]}: %{{z:{_TEXT.get(m, '.3f')}}}<extra></extra>",
            colorbar={"title": {"text": _LABELS[m]}, "tickformat": _TEXT.get(m, ".2f")}, xgap=2, ygap=2,
            **scales[m],
        )

    def frame(i: int, j: int, style: dict[str, Any], inset: float) -> None:
        fig.add_shape(type="rect", x0=j - 0.5 + inset, x1=j + 0.5 - inset, y0=i - 0.5 + inset, y1=i + 0.5 - inset,
                      line=style, xref="x", yref="y", layer="above")

    i, j = at(best)
    frame(i, j, {"color": "#111", "width": 3}, 0.02)
    fig.add_annotation(x=j - 0.42, y=i + 0.3, text="★", showarrow=False, xanchor="left", font={"size": 13, "color": "#111"})
    for (i, j), picks in chosen.items():
        frame(i, j, {"color": "#1f5fbf", "width": 2, "dash": "dash"}, 0.1)
        windows = sorted(w for _, ws in picks for w in ws)
        fig.add_annotation(x=j + 0.4, y=i + 0.3, text="W" + ",".join(map(str, windows)), showarrow=False,
                           xanchor="right", font={"size": 10, "color": "#0b2f6b"})
    layout = {**LAYOUT, "hovermode": "closest", "height": max(300, 120 + 34 * len(ylab))}
    fig.update_layout(title=f"{ay.key} × {ax.key}", xaxis_title=ax.key, yaxis_title=ay.key, showlegend=False, **layout)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=xlab, range=[-0.5, len(xlab) - 0.5])
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=ylab, range=[-0.5, len(ylab) - 0.5])
    return fig


def _line_figure(
    res: SweepResult, cells: Mapping[tuple[Any, ...], Record], axis: Axis, metrics: list[str], metric: str,
    best: Record, choices: Sequence[tuple[Record, list[int]]],
) -> go.Figure:
    labels = [_value(v) for v in axis.values]
    recs = [cells.get((v,)) for v in axis.values]
    hover = [_hover(r, res, metric, best, choices) if r is not None else "no configuration" for r in recs]
    fig = go.Figure()
    for m in metrics:
        y = [finite(r[m]) if r is not None else None for r in recs]
        fig.add_scatter(
            x=labels, y=y, mode="lines+markers+text", meta=m, visible=m == metric, name=_LABELS[m],
            text=[None if v is None else format(v, _TEXT.get(m, ".2f")) for v in y], textposition="top center",
            hovertext=hover, line={"color": "#1f5fbf"},
            hovertemplate=f"%{{hovertext}}<br>{_LABELS[m]}: %{{y:{_TEXT.get(m, '.3f')}}}<extra></extra>",
        )
    # the marks sit on the ranking metric's line: shown with it
    fig.add_scatter(
        x=[_value(best[axis.key])], y=[finite(best[metric])], mode="markers", meta=metric, name="best",
        marker={"symbol": "star", "size": 18, "color": "#111", "line": {"color": "#fff", "width": 1.5}},
        hovertext=[_hover(best, res, metric, best, choices)], hovertemplate="%{hovertext}<extra></extra>",
    )
    if choices:
        by_value: dict[Any, tuple[Record, list[int]]] = {}
        for r, ws in choices:  # the point shows the best configuration of its value: one mark per value
            by_value.setdefault(r[axis.key], (cells.get((r[axis.key],)) or r, []))[1].extend(ws)
        marked = list(by_value.values())
        fig.add_scatter(
            x=[_value(r[axis.key]) for r, _ in marked], y=[finite(r[metric]) for r, _ in marked], meta=metric,
            mode="markers+text", name="walk-forward choices", text=["W" + ",".join(map(str, sorted(ws))) for _, ws in marked],
            textposition="bottom center", marker={"symbol": "circle-open", "size": 16, "color": "#1f5fbf", "line": {"width": 2}},
            hovertext=[_hover(r, res, metric, best, choices) for r, _ in marked], hovertemplate="%{hovertext}<extra></extra>",
        )
    fig.update_layout(
        title=f"best configuration by {metric} per value of {axis.key}", xaxis_title=axis.key, showlegend=False,
        **{**LAYOUT, "hovermode": "closest"},
    )
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels)
    return fig


# ----------------------------------------------------------------------------- verify-top


def _verify(rows: Sequence[VerifyRow] | None) -> str:
    if not rows:
        return _absent(
            "verify-absent",
            "Not run: pass --verify-top K to re-run the K best configurations in the event engine and compare them "
            "with the kernel fill by fill.",
        )
    head = (
        "<thead><tr><th>#</th><th>config</th><th>simulator</th><th>Sharpe</th><th>Return</th><th>Max DD</th>"
        "<th>Trades</th><th>Fills</th><th>Final equity</th><th>identical</th><th>report</th></tr></thead>"
    )
    body = []
    for r in rows:
        for name, m in (("kernel", r.kernel), ("event engine", r.event)):
            first = name == "kernel"
            same = ("fills and equity: yes" if r.identical else "NO") if not first else ""
            cls = "" if first else (' class="pos"' if r.identical else ' class="neg"')
            link = (
                f'<a href="{esc(r.report)}">report.html</a>' if (r.report and not first) else ""
            )
            body.append(
                f'<tr data-config="{esc(r.config)}" data-simulator="{"kernel" if first else "event"}">'
                f"<td>{r.rank if first else ''}</td><td>{esc(r.config) if first else ''}</td><td>{name}</td>"
                + _cell("sharpe", m.get("sharpe")) + _cell("total_return", m.get("total_return"))
                + _cell("max_drawdown", m.get("max_drawdown")) + _cell("trades", m.get("trades"))
                + f"<td>{integer(m.get('fills'))}</td><td>{usd(finite(m.get('final_equity')))}</td>"
                f"<td{cls}>{same}</td><td>{link}</td></tr>"
            )
    ok = all(r.identical for r in rows)
    verdict = (
        f"All {len(rows)} re-run(s) match the kernel fill for fill (time, symbol, side, quantity, price, commission, "
        "exit reason) and bar for bar in equity."
        if ok
        else "The event engine disagrees with the kernel for at least one configuration: this is a bug, please report it."
    )
    return (
        f'<p id="verify-verdict" class="{"pos" if ok else "neg"}">{esc(verdict)}</p>'
        f'<table id="verify-table" class="data">{head}<tbody>{"".join(body)}</tbody></table>'
    )


# ----------------------------------------------------------------------------- page

_SWEEP_CSS = """
table.sortable thead th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=descending]::after{content:" ▼";font-size:10px}
table.sortable th[aria-sort=ascending]::after{content:" ▲";font-size:10px}
tr.ref td{background:#f7f3e8;font-style:italic}td.ref-label{text-align:left!important}
.selector{font-size:13px;color:#445}.selector select{margin-left:6px;font-size:13px}
.absent{font-size:13px}.card p{font-size:14px}.card p.note{font-size:12px}
"""

_SWEEP_JS = """
(function(){
  var data = JSON.parse(document.getElementById('sweep-data').textContent);
  function params(){ var out = {};
    location.hash.replace(/^#/, '').split('&').forEach(function(p){ var kv = p.split('=');
      if (kv[0]) { out[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ''); } });
    return out; }
  function save(values){ var p = params(); Object.keys(values).forEach(function(k){ p[k] = values[k]; });
    var h = Object.keys(p).map(function(k){ return encodeURIComponent(k) + '=' + encodeURIComponent(p[k]); }).join('&');
    history.replaceState(null, '', '#' + h); }
  function showMetric(m){
    var sel = document.getElementById('metric-select');
    if (!sel) { return Promise.resolve(); }
    if (data.heatmap_metrics.indexOf(m) < 0) { m = data.metric; }
    sel.value = m;
    document.getElementById('heatmaps').setAttribute('data-metric', m);
    return Promise.all(Array.prototype.map.call(document.querySelectorAll('.metric-plot'), function(gd){
      return Plotly.restyle(gd, {visible: gd.data.map(function(t){ return t.meta === m; })});
    }));
  }
  function sortBy(key, dir){
    var table = document.getElementById('ranked-table');
    var th = table.querySelector('thead th[data-key="' + key + '"]');
    if (!th) { return; }
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var body = document.getElementById('ranked-rows');
    var rows = Array.prototype.slice.call(body.rows);
    var sign = dir === 'asc' ? 1 : -1;
    function val(r){ var v = r.cells[col].getAttribute('data-value');
      if (v === null || v === '') { return null; } var x = Number(v); return isNaN(x) ? v : x; }
    rows.sort(function(a, b){
      var x = val(a), y = val(b);
      if ((x === null) !== (y === null)) { return x === null ? 1 : -1; }
      if (x !== null && x !== y) {
        if (typeof x === 'number' && typeof y === 'number') { return sign * (x - y); }
        return sign * String(x).localeCompare(String(y));
      }
      return Number(a.getAttribute('data-rank')) - Number(b.getAttribute('data-rank'));
    });
    rows.forEach(function(r){ body.appendChild(r); });
    table.querySelectorAll('thead th').forEach(function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
    table.setAttribute('data-sort', key + ':' + dir);
  }
  document.querySelectorAll('#ranked-table thead th[data-key]').forEach(function(th){
    th.addEventListener('click', function(){
      var key = th.getAttribute('data-key');
      var dir = th.getAttribute('aria-sort') === 'descending' ? 'asc' : 'desc';
      sortBy(key, dir); save({sort: key, dir: dir}); });
  });
  var sel = document.getElementById('metric-select');
  if (sel) { sel.addEventListener('change', function(){ save({metric: sel.value}); showMetric(sel.value); }); }
  var p = params();
  if (p.sort) { sortBy(p.sort, p.dir === 'asc' ? 'asc' : 'desc'); }
  window.sigtradeAfterDraw.push(function(){ return showMetric(p.metric || data.metric); });
})();
"""


def render_sweep_html(
    res: SweepResult,
    report: OverfittingReport | None,
    *,
    metric: str,
    top: int,
    run_facts: RunFacts,
    references: Sequence[ReferenceRow] = (),
    benchmark: RunResult | None = None,
    verify: Sequence[VerifyRow] | None = None,
) -> str:
    """Return the self-contained sweep report page.

    Parameters
    ----------
    res, report
        The sweep and its overfitting statistics (None under ``--no-stats``).
    metric, top
        What the sweep ranks by and how many rows the ranked table shows.
    run_facts
        How the sweep ran (wall time, threads, synthetic data, why statistics are missing).
    references
        Rows under the ranked table that are not grid configurations (the benchmark's
        buy-and-hold, other controls).
    benchmark
        The benchmark's buy-and-hold account, drawn on the walk-forward's bars.
    verify
        The ``--verify-top`` comparison, best first.
    """
    bench_symbol = res.fast.cfg.benchmark.symbol
    ranked_html, records = _ranked(res, metric, top, references)
    over_html, over_figs, over_data = _overfitting(res, report, run_facts, metric)
    wf_html, wf_figs, wf_data = _walk_forward(res, report, benchmark, bench_symbol, run_facts)
    hm_html, hm_figs, hm_data = _heatmaps(res, report, metric)
    body = (
        f'<section class="card" id="summary-card">{_header(res, run_facts, metric)}</section>'
        f'<h2>Ranked configurations</h2><section class="card" id="ranked">{ranked_html}</section>'
        f'<h2>Overfitting</h2><section class="card" id="overfitting">{over_html}</section>'
        f'<h2>Walk-forward</h2><section class="card" id="walk-forward">{wf_html}</section>'
        f'<h2>Heat maps</h2><section class="card" id="heatmaps">{hm_html}</section>'
        f'<h2>Kernel vs event engine</h2><section class="card" id="verify">{_verify(verify)}</section>'
        + "".join(f'<p class="note">note: {esc(n)}</p>' for n in run_facts.notes)
    )
    data = {
        "metric": metric,
        "top": top,
        "overfitting": overfitting_summary(res, report, metric),
        "ranked": json_safe(records),
        "references": json_safe([{"key": r.key, "label": r.label, **r.figures} for r in references]),
        "walk_forward": json_safe(wf_data) or None,
        "heatmap_metrics": hm_data.get("heatmap_metrics", []),
        "verify": json_safe(
            [
                {"rank": r.rank, "config": r.config, "kernel": dict(r.kernel), "event": dict(r.event),
                 "identical": r.identical, "report": r.report}
                for r in verify or []
            ]
        ),
        **json_safe(over_data),
    }
    n = len(res.results)
    title = f"sigtrade sweep — {n:,} configurations ranked by {metric}"
    figures = {**over_figs, **wf_figs, **hm_figs}
    return page(
        title, body, figures, banner=synthetic_banner(run_facts.synthetic), css=_SWEEP_CSS,
        data={"sweep-data": data}, script=_SWEEP_JS,
    )


_REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sigtrade sweep: heat maps</title>
<meta http-equiv="refresh" content="0; url=report.html#heatmaps"></head>
<body><p>The heat maps are now part of the sweep report:
<a href="report.html#heatmaps">report.html</a>.</p></body></html>
"""


def write_sweep_pages(out: str | Path, html: str) -> dict[str, Path]:
    """Write ``report.html`` and ``heatmaps.html`` (which forwards to its heat maps) into *out*, atomically.

    Both are written into a temporary folder beside *out* and renamed into place, so a
    reader never sees a half-written page.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    paths: dict[str, Path] = {}
    try:
        (tmp / "report.html").write_text(html, encoding="utf-8")
        (tmp / "heatmaps.html").write_text(_REDIRECT, encoding="utf-8")
        for name in PAGE_FILES:
            os.replace(tmp / name, out / name)
            paths[name] = out / name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths
