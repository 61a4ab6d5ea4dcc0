"""Section 7, the verdict: a short paragraph generated from the other sections' figures by stated rules.

Each rule reads figures already in the diagnosis and, when its condition holds, adds one
clause; a rule whose section does not apply adds nothing. No clause claims more than its
figures: significance words are used only where a standard error backs them. The rules,
in the order they are applied (also listed in ``diagnosis.json`` under ``verdict.rules``):
"""

from __future__ import annotations

from typing import Any

RULES: tuple[tuple[str, str], ...] = (
    ("costs", "no fills: that the run never traded; gross P&L > 0: the share of it that commissions and slippage took (or that they exceed it); gross P&L <= 0: that the run loses before costs"),
    ("break_even", "the break-even cost in bps per side against the configured one (and the event engine's result there, when re-run); or that there is none"),
    ("benchmark", "the run's net total return against the benchmark's buy-and-hold (beat / matched / trailed)"),
    ("top_decile", "the top probability decile's mean forward return against one round trip's cost"),
    ("threshold", "the entry threshold calls >= 80 % of bars positive, or the model's F1 does not beat always 'up'"),
    ("ic", "the mean monthly IC and its t-statistic; 'not distinguishable from zero' when |t| < 2"),
    ("churn", ">= 50 % of round trips shorter than the label horizon"),
    ("concentration", "the best of two or more traded symbols made >= 50 % of a positive net P&L"),
    ("universe", "whether the run's total return beat, matched (within 0.05 points) or trailed the universe buy-and-hold's"),
    ("random", "the run's percentile among the random N-name buy-and-holds by total return"),
    ("one_slot", "the same signals with one slot per symbol against the universe buy-and-hold"),
    ("sharpe_noise", "the Sharpe difference from the benchmark within two standard errors: 'not distinguishable'"),
    ("replay", "the fast path did not replay or reproduce the run: no cost curve or slot control, and why"),
)
"""(rule id, the condition and what it states)."""

__doc__ = (__doc__ or "") + "\n" + "\n".join(f"* ``{k}``: {v}." for k, v in RULES) + "\n"


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def _share(x: float) -> str:
    return f"{x * 100:.0f} %"


def _usd(x: float) -> str:
    return f"{'-' if x < 0 else ''}${abs(x):,.0f}"


TIE = 0.0005
"""Total returns closer than this (0.05 percentage points) are called a match, not a win or a loss."""


def _compare(a: float, b: float, above: str, below: str) -> str:
    if abs(a - b) < TIE:
        return "matched" if above == "beat" else "the same as"
    return above if a > b else below


def findings(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """The clauses whose conditions hold: ``{"rule", "text", "figures"}`` each."""
    out: list[dict[str, Any]] = []

    def add(rule: str, text: str, **figures: Any) -> None:
        out.append({"rule": rule, "text": text, "figures": figures})

    costs = sections.get("costs") or {}
    controls = sections.get("controls") or {}
    strat = controls.get("strategy") or {}
    gross, c = costs.get("gross_pnl"), costs.get("costs")
    traded = bool(costs.get("by_symbol"))
    if not traded:
        add("costs", "the run never traded")
    elif gross is not None and c is not None:
        if gross > 0 and c > gross:
            add("costs", f"costs ({_usd(c)}) exceed the gross P&L ({_usd(gross)}): the run earns before costs, not after",
                costs=c, gross_pnl=gross)
        elif gross > 0:
            add("costs", f"costs take {_share(c / gross)} of gross P&L ({_usd(c)} of {_usd(gross)})", costs=c, gross_pnl=gross)
        else:
            add("costs", f"the run loses money before costs (gross P&L {_usd(gross)}); costs add {_usd(c)}", costs=c, gross_pnl=gross)
    be = costs.get("break_even") or {}
    if be.get("applies"):
        tr = be.get("total_return") or {}
        paid = be.get("configured_bps")
        if tr.get("status") == "found":
            text = f"break-even at {tr['bps']:.1f} bps per side (the run pays {paid:g})"
            conf = be.get("confirmation") or {}
            if conf.get("ran") and conf.get("event_total_return") is not None:
                text += f"; the event engine gives {_pct(conf['event_total_return'])} there"
            add("break_even", text, bps=tr["bps"], configured_bps=paid)
        elif tr.get("status") == "loses before costs":
            add("break_even", "no break-even cost: the net total return is negative even at 0 bps", configured_bps=paid)
        elif tr.get("status") == "above the curve":
            add("break_even", f"still profitable at {be['max_bps']:g} bps per side (the run pays {paid:g})", configured_bps=paid)
    bench = controls.get("benchmark") or {}
    if strat.get("total_return") is not None and bench.get("total_return") is not None:
        word = _compare(strat["total_return"], bench["total_return"], "beat", "trailed")
        add("benchmark", f"the run ({_pct(strat['total_return'])}) {word} {bench.get('symbol', 'the benchmark')} buy-and-hold "
            f"({_pct(bench['total_return'])})", strategy=strat["total_return"], benchmark=bench["total_return"])
    sq = sections.get("signal_quality") or {}
    if sq.get("applies"):
        top = next((d for d in sq["deciles"] if d.get("decile") == 10 and d.get("count")), None)
        rt = sq["round_trip_cost_rate"]
        if top is not None:
            if top["mean_fwd"] < rt:
                add("top_decile", f"the top decile earns less than one round trip ({_pct(top['mean_fwd'])} per "
                    f"{sq['horizon']}-bar hold vs {rt * 100:.2f} % cost)", mean_fwd=top["mean_fwd"], round_trip=rt)
            else:
                add("top_decile", f"the top decile earns {top['mean_fwd'] / rt:.1f} round trips per {sq['horizon']}-bar hold "
                    f"({_pct(top['mean_fwd'])} vs {rt * 100:.2f} %)" if rt > 0 else
                    f"the top decile earns {_pct(top['mean_fwd'])} per {sq['horizon']}-bar hold", mean_fwd=top["mean_fwd"], round_trip=rt)
        rate = sq.get("predicted_positive_at_entry")
        cls = sq.get("classification") or {}
        f1 = (cls.get("model_at_entry_threshold") or cls.get("model_at_card_threshold") or {}).get("f1")
        up = (cls.get("always_up") or {}).get("f1")
        parts = []
        if rate is not None and rate >= 0.8:
            parts.append(f"the entry threshold calls {_share(rate)} of bars positive")
        if f1 is not None and up is not None and f1 <= up:
            parts.append(f"the model's F1 ({f1:.3f}) does not beat always \"up\" ({up:.3f})")
        if parts:
            add("threshold", "; ".join(parts), predicted_positive=rate, f1=f1, always_up_f1=up)
        ic, t = sq.get("mean_monthly_ic"), sq.get("monthly_ic_t")
        if ic is not None and t is not None:
            tail = ": not distinguishable from zero" if abs(t) < 2 else ""
            add("ic", f"the monthly IC averages {ic:+.3f} (t = {t:.1f}){tail}", mean_monthly_ic=ic, t=t)
    churn = (sections.get("churn") or {}).get("short_trades") or {}
    if churn.get("applies") and churn.get("share", 0) >= 0.5:
        add("churn", f"{_share(churn['share'])} of round trips are shorter than the {churn['horizon']}-bar label horizon "
            f"(net {_usd(churn['net_pnl'])})", share=churn["share"], net_pnl=churn["net_pnl"])
    conc = (sections.get("attribution") or {}).get("concentration") or {}
    if conc.get("applies") and conc["best_share"] >= 0.5 and (sections.get("attribution") or {}).get("symbols_traded", 0) >= 2:
        tail = " (the other symbols lost in sum)" if conc["best_share"] > 1 else ""
        add("concentration", f"{_share(conc['best_share'])} of the net P&L is one symbol ({conc['best_symbol']}){tail}",
            share=conc["best_share"], symbol=conc["best_symbol"])
    uni = controls.get("universe") or {}
    if uni.get("applies") and uni.get("total_return") is not None and strat.get("total_return") is not None:
        word = _compare(strat["total_return"], uni["total_return"], "beat", "trailed")
        add("universe", f"this run {word} the equal-weight universe buy-and-hold ({_pct(strat['total_return'])} vs "
            f"{_pct(uni['total_return'])})", universe=uni["total_return"], strategy=strat["total_return"])
    rnd = controls.get("random") or {}
    if rnd.get("applies") and rnd.get("strategy_percentile_total_return") is not None:
        q = rnd["strategy_percentile_total_return"]
        add("random", f"it sits at the {q * 100:.0f}th percentile of {rnd['draws']:,} random {rnd['n']}-name buy-and-holds "
            f"(median {_pct(rnd['total_return']['p50'])})", percentile=q)
    one = controls.get("one_slot") or {}
    if one.get("applies") and uni.get("applies") and one.get("total_return") is not None and uni.get("total_return") is not None:
        word = _compare(one["total_return"], uni["total_return"], "more than", "less than")
        add("one_slot", f"with one slot per symbol the same signals return {_pct(one['total_return'])}, {word} the "
            f"universe buy-and-hold", one_slot=one["total_return"], universe=uni["total_return"])
    risk = sections.get("risk") or {}
    d, z = risk.get("sharpe_difference"), risk.get("difference_in_se")
    if d is not None and z is not None and abs(z) < 2:
        add("sharpe_noise", f"the Sharpe ratio differs from the benchmark's by {d:+.2f}, within two standard errors "
            f"(s.e. {risk['sharpe_se']:.2f}): not distinguishable over this window", difference=d, in_se=z)
    rep = sections.get("replay") or {}
    if rep and not rep.get("reproduced"):
        add("replay", f"no cost curve or slot control: {rep.get('detail')}", detail=rep.get("detail"))
    return out


def section(sections: dict[str, Any]) -> dict[str, Any]:
    """The verdict: the paragraph, its clauses and the rules."""
    found = findings(sections)
    text = "; ".join(f["text"] for f in found)
    text = (text[:1].upper() + text[1:] + ".") if text else "No rule applies to this run."
    return {"applies": True, "text": text, "findings": found, "rules": [{"rule": k, "states": v} for k, v in RULES]}
