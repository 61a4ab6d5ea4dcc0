"""CLI: ``sigtrade diagnose DIR [--json] [--confirm] [--top K] [--metric M]``.

``DIR`` is the ``--out`` folder of ``sigtrade backtest`` (its ``diagnosis.json`` is printed as
tables; ``--confirm`` re-runs the event engine at the break-even cost and records the
result) or of ``sigtrade sweep`` (its ``--top`` best configurations by ``--metric`` are
replayed on the fast path, diagnosed, printed, and written to
``DIR/diagnosis/config_<id>/`` with a full report each).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table


def signal_loader() -> Any:
    """The model plug-in the diagnosis reads probabilities and card facts through (engine never imports models)."""
    from engine.strategy_registry import resolve

    return resolve("strategies.signal:diagnosis_inputs")


def _pct(x: Any, sign: bool = True) -> str:
    return "-" if x is None else (f"{x * 100:+,.2f} %" if sign else f"{x * 100:,.2f} %")


def _usd(x: Any) -> str:
    return "-" if x is None else f"{'-' if x < 0 else ''}${abs(x):,.2f}"


def _num(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _kv(title: str, rows: list[tuple[str, str]]) -> Table:
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    return t


def _grid(title: str, head: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    return t


def _best_and_worst(at: Mapping[str, Any], k: int = 5) -> list[Mapping[str, Any]]:
    best = list(at["top"][:k])
    shown = {r["symbol"] for r in best}
    worst = [r for r in at["bottom"][:k] if r["symbol"] not in shown]
    return [*best, *worst[::-1]]


def tables(d: Mapping[str, Any]) -> list[Any]:
    """The diagnosis as rich renderables, section by section."""
    out: list[Any] = []
    c = d["costs"]
    be = c.get("break_even") or {}
    rows = [("net P&L", _usd(c["net_pnl"])), ("gross P&L", _usd(c["gross_pnl"])), ("commission", _usd(c["commission"])),
            ("slippage", _usd(c["slippage"])), ("costs / gross P&L", _pct(c.get("costs_share_of_gross"), False))]
    rt = c.get("round_trips") or {}
    if rt.get("applies"):
        rows += [("mean gross P&L per round trip", _usd(rt["mean_gross_pnl"])), ("mean cost per round trip", _usd(rt["mean_cost"])),
                 ("edge / cost", _num(rt.get("edge_to_cost")))]
    if be.get("applies"):
        for key, label in (("total_return", "break-even (net total return = 0)"), ("sharpe", "break-even (net Sharpe = 0)")):
            p = be.get(key) or {}
            rows.append((label, f"{p['bps']:.2f} bps/side" if p.get("bps") is not None else str(p.get("status"))))
        rows.append(("configured", f"{be['configured_bps']:g} bps/side"))
        conf = be.get("confirmation") or {}
        rows.append(("event engine at break-even", _pct(conf.get("event_total_return")) if conf.get("ran") else "not run (--confirm)"))
    else:
        rows.append(("break-even", f"does not apply: {be.get('reason')}"))
    out.append(_kv("1. costs", rows))
    if be.get("applies"):
        out.append(_grid("   cost curve (fast path)", ["bps/side", "total return", "Sharpe", "trades"],
                         [[f"{p['bps']:g}", _pct(p["total_return"]), _num(p["sharpe"]), f"{p['trades']:,}"] for p in be["curve"]]))
    ch = d["churn"]
    rows = [("turnover", _num(ch.get("turnover"), 1) + " x/yr"), ("round trips", f"{ch['trades']:,}"),
            ("trades per session", _num(ch.get("trades_per_session")))]
    if ch.get("holding"):
        rows += [("median / mean bars held", f"{ch['holding']['median']:g} / {ch['holding']['mean']:.1f}")]
    st = ch.get("short_trades") or {}
    rows.append(("shorter than the label horizon", f"{st['count']:,} ({_pct(st['share'], False)}), net {_usd(st['net_pnl'])}"
                 if st.get("applies") else f"n/a: {st.get('reason')}"))
    re = ch.get("reentries") or {}
    if re.get("applies"):
        rows.append((f"re-entries within {re['bars']} bars", f"{re['count']:,} ({_pct(re['share'], False)}), net {_usd(re['net_pnl'])}"))
    out.append(_kv("2. churn", rows))
    sq = d["signal_quality"]
    if sq.get("applies"):
        out.append(_grid(f"3. signal quality: {sq['horizon']}-bar forward return by probability decile "
                         f"(one round trip = {sq['round_trip_cost_rate'] * 100:.2f} %)",
                         ["decile", "bars", "p range", "hit rate", "mean fwd", "net of a round trip"],
                         [[str(r["decile"]), f"{r['count']:,}", f"{r['p_min']:.3f}-{r['p_max']:.3f}", _pct(r["hit_rate"], False),
                           _pct(r["mean_fwd"]), _pct(r["mean_fwd_net"])] for r in sq["deciles"] if r.get("count")]))
        cls = sq["classification"]
        out.append(_grid(f"   classifiers on the window (IC {_num(sq.get('ic'), 3)}, mean monthly IC "
                         f"{_num(sq.get('mean_monthly_ic'), 3)}, t {_num(sq.get('monthly_ic_t'), 1)})",
                         ["classifier", "F1", "precision", "recall", "ROC-AUC", "predicted +"],
                         [[k, _num(v.get("f1"), 3), _num(v.get("precision"), 3), _num(v.get("recall"), 3), _num(v.get("roc_auc"), 3),
                           _pct(v.get("predicted_pos_rate"), False)] for k, v in cls.items()]))
    else:
        out.append(f"3. signal quality: does not apply ({sq.get('reason')})")
    ct = d["controls"]
    rows_c = []
    for key, label in (("strategy", "this run"), ("benchmark", "(a) benchmark"), ("universe", "(b) universe buy-and-hold"),
                       ("one_slot", "(d) one slot per symbol")):
        x = ct.get(key) or {}
        if key != "strategy" and not x.get("applies"):
            rows_c.append([label, "-", "-", "-", "-", f"n/a: {x.get('reason')}"])
            continue
        rows_c.append([label, _pct(x.get("total_return")), _num(x.get("sharpe")), _pct(x.get("max_drawdown")),
                       "-" if x.get("trades") is None else f"{x['trades']:,}", _usd(x.get("gross_pnl"))])
    out.append(_grid("4. controls", ["run", "total return", "Sharpe", "max DD", "trades", "gross P&L / note"], rows_c))
    rnd = ct.get("random") or {}
    if rnd.get("applies"):
        q = rnd["total_return"]
        out.append(f"   (c) {rnd['draws']:,} random {rnd['n']}-name buy-and-holds (seed {rnd['seed']}): total return p5 "
                   f"{_pct(q['p5'])}, median {_pct(q['p50'])}, p95 {_pct(q['p95'])}; this run at the "
                   f"{_pct(rnd['strategy_percentile_total_return'], False)} percentile (Sharpe: "
                   f"{_pct(rnd['strategy_percentile_sharpe'], False)})")
    else:
        out.append(f"   (c) random subsets: n/a ({rnd.get('reason')})")
    at = d["attribution"]
    out.append(_grid("5. net P&L by symbol: best and worst", ["symbol", "net P&L", "gross P&L", "costs", "trades"],
                     [[r["symbol"], _usd(r["net_pnl"]), _usd(r["gross_pnl"]), _usd(r["costs"]), f"{r['trades']:,}"]
                      for r in _best_and_worst(at)]))
    conc = at.get("concentration") or {}
    if conc.get("applies"):
        out.append(f"   concentration: {conc['best_symbol']} made {_pct(conc['best_share'], False)} of the net P&L")
    rk = d["risk"]
    out.append(_kv("6. risk", [
        ("Sharpe ± s.e.", f"{_num(rk.get('sharpe'))} ± {_num(rk.get('sharpe_se'))}"),
        ("benchmark Sharpe ± s.e.", f"{_num(rk.get('benchmark_sharpe'))} ± {_num(rk.get('benchmark_sharpe_se'))}"),
        ("difference in standard errors", _num(rk.get("difference_in_se"))),
        ("worst drawdown", _pct(rk["drawdowns"][0]["depth"]) if rk.get("drawdowns") else "-"),
        ("mean exposure (benchmark)", f"{_pct(rk.get('exposure_mean'), False)} ({_pct(rk.get('benchmark_exposure_mean'), False)})"),
    ]))
    out.append(f"7. verdict: {d['verdict']['text']}")
    return out


def diagnose(
    folder: Path = typer.Argument(..., help="The --out folder of `sigtrade backtest` or `sigtrade sweep`."),
    as_json: bool = typer.Option(False, "--json", help="Print diagnosis.json (a list of them for a sweep folder)."),
    confirm: bool = typer.Option(False, "--confirm", help="Backtest folder: re-run the event engine at the break-even cost and record it."),
    top: int = typer.Option(3, "--top", min=1, max=50, help="Sweep folder: how many of the best configurations to diagnose."),
    metric: str | None = typer.Option(None, "--metric", help="Sweep folder: rank by this results column (default: the sweep's)."),
) -> None:
    """Explain a saved backtest or a sweep's best configurations: costs, churn, signal, controls, P&L, risk, verdict."""
    from engine.diagnosis.saved import diagnose_sweep, folder_kind, read_json
    from engine.report import DIAGNOSIS_FILE, write_outputs

    kind = folder_kind(folder)
    stdout = Console() if Console().is_terminal else Console(width=160)
    if kind == "backtest":
        if confirm:
            from engine.diagnosis.saved import confirm_saved

            data = confirm_saved(folder)
        else:
            data = read_json(folder / DIAGNOSIS_FILE)
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        stdout.print(f"diagnosis of {folder} ({data.get('strategy_kind')}; books: {data.get('books')})", highlight=False)
        for item in tables(data):
            stdout.print(item, highlight=False, soft_wrap=isinstance(item, str))
        return
    if confirm:
        from engine.errors import ConfigError

        raise ConfigError("--confirm applies to a backtest folder; for a sweep run `sigtrade sweep ... --verify-top K`")
    console = Console(stderr=True)
    with console.status("diagnosing the sweep's best configurations", spinner="dots") if console.is_terminal else nullcontext():
        found = diagnose_sweep(folder, top, metric, signal_loader())
    written = []
    for cid, result, _diag in found:
        out = folder / "diagnosis" / f"config_{cid}"
        write_outputs(result, out)
        written.append(out)
    if as_json:
        sys.stdout.write(json.dumps([{"config": cid, **diag.data} for cid, _, diag in found], indent=2) + "\n")
        return
    from engine.diagnosis.saved import read_sweep

    axes = read_sweep(folder).axes  # read once for every printed configuration
    for (cid, result, diag), out in zip(found, written, strict=True):
        sets = ", ".join(f"{a.key}={v}" for a, v in _axes_values(axes, result))
        stdout.print(f"\n[bold]config {cid}[/] ({sets}) - books: {diag.data['books']}; report: {out / 'report.html'}", highlight=False)
        for item in tables(diag.data):
            stdout.print(item, highlight=False, soft_wrap=isinstance(item, str))


def _axes_values(axes: list[Any], result: Any) -> list[tuple[Any, Any]]:
    """Each swept axis with its value in the configuration *result* ran."""
    out = []
    for a in axes:
        section, _, name = a.key.partition(".")
        node: Any = result.config.get(section, {})
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out.append((a, node))
    return out


def register(app: typer.Typer) -> None:
    """Register ``diagnose`` on *app*."""
    app.command("diagnose")(diagnose)
