"""Risk overlays and regime filters in the event engine, on real hourly bars.

Each test pins one rule of engine/overlays.py as a user would see it in the trade list:
which bar an exit was decided on, why (``exit_reason``), and what was *not* traded.
Rule strategies (SMA cross, buy-and-hold) are used where a deterministic, frequently
trading rule makes the behaviour easy to read: every overlay applies to every strategy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import catalog as cat
from engine.config import load_config
from engine.overlays import atr_pct
from engine.regime import trend_allows
from engine.results import BacktestResult

SYMBOLS = ["SPY", "AAPL", "AMD"]
WINDOW = ["data.start=2024-01-02", "data.end=2024-03-28"]


def _run(catalog: Path, *overrides: str, kind: str = "sma_cross", symbols: list[str] = SYMBOLS) -> BacktestResult:
    from engine.runner import run_backtest

    base = [
        f'data.catalog="{catalog}"', f"data.symbols={json.dumps(symbols)}", *WINDOW,
        f'strategy.kind="{kind}"', "strategy.fast=5", "strategy.slow=20",
    ]
    return run_backtest(load_config(None, [*base, *overrides]))


def _frames(catalog: Path) -> dict[str, pd.DataFrame]:
    return {s: cat.read_frame(catalog, s, "1-HOUR") for s in SYMBOLS}


def _decision_bar(frame: pd.DataFrame, fill_ts: pd.Timestamp) -> int:
    """Index of the symbol's last bar that closed before the fill (the bar the order was decided on)."""
    return int(np.searchsorted(frame.index.asi8, fill_ts.value, side="left")) - 1


def _round_trips(fills: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
    """(entry fill, exit fill) pairs per symbol, in time order."""
    pairs = []
    for _, grp in fills.groupby("symbol"):
        rows = list(grp.sort_values("ts").itertuples(index=False))
        pairs += [(pd.Series(a._asdict()), pd.Series(b._asdict())) for a, b in zip(rows[::2], rows[1::2], strict=False)]
    return pairs


def test_stop_loss_exits_at_the_next_open_after_the_bar_whose_low_crosses_the_level(overlay_catalog: Path) -> None:
    sl = 0.004
    res = _run(overlay_catalog, f"risk.stop_loss={sl}", "costs.slippage_bps=0")
    frames = _frames(overlay_catalog)
    stops = 0
    for entry, exit_ in _round_trips(res.strategy.fills):
        if exit_.exit_reason != "stop_loss":
            continue
        stops += 1
        frame = frames[entry.symbol]
        level = entry.price * (1 - sl)
        first = _decision_bar(frame, entry.ts) + 1  # the bar the entry filled in
        d = _decision_bar(frame, exit_.ts)
        assert frame["low"].iloc[d] <= level, "the stop bar's low crossed the stop level"
        assert (frame["low"].iloc[first:d] > level).all(), "no earlier bar of the position crossed it"
        # no intrabar fill at the level: a market order at the next bar's open
        assert exit_.price == pytest.approx(frame["open"].iloc[d + 1], abs=1e-6)
    assert stops >= 3, "the tight stop should trigger on three months of hourly bars"


def test_when_stop_and_target_are_touched_in_one_bar_the_exit_is_the_stop(overlay_catalog: Path) -> None:
    sl = tp = 0.002
    res = _run(overlay_catalog, f"risk.stop_loss={sl}", f"risk.take_profit={tp}")
    frames = _frames(overlay_catalog)
    both = 0
    for entry, exit_ in _round_trips(res.strategy.fills):
        if exit_.exit_reason not in ("stop_loss", "take_profit"):
            continue
        bar = frames[entry.symbol].iloc[_decision_bar(frames[entry.symbol], exit_.ts)]
        hit_stop = bar["low"] <= entry.price * (1 - sl)
        hit_target = bar["high"] >= entry.price * (1 + tp)
        assert hit_stop or hit_target
        if hit_stop and hit_target:
            both += 1
            assert exit_.exit_reason == "stop_loss"
        else:
            assert exit_.exit_reason == ("stop_loss" if hit_stop else "take_profit")
    assert both >= 1, "with 0.2 % levels some hourly bar touches both"
    assert set(res.strategy.trades["exit_reason"]) >= {"stop_loss", "take_profit"}


def test_trailing_stop_trails_the_highest_high_since_entry(overlay_catalog: Path) -> None:
    tr = 0.006
    res = _run(overlay_catalog, f"risk.trailing_stop={tr}")
    frames = _frames(overlay_catalog)
    n = 0
    for entry, exit_ in _round_trips(res.strategy.fills):
        if exit_.exit_reason != "trailing_stop":
            continue
        n += 1
        frame = frames[entry.symbol]
        first, d = _decision_bar(frame, entry.ts) + 1, _decision_bar(frame, exit_.ts)
        peak = entry.price
        for i in range(first, d + 1):
            peak = max(peak, frame["high"].iloc[i])  # the bar's high first ...
            crossed = frame["low"].iloc[i] <= peak * (1 - tr)  # ... then its low
            assert crossed == (i == d), f"{entry.symbol}: the trailing stop fires on the first crossing"
    assert n >= 3


def test_time_stop_caps_the_holding_period_of_any_strategy(overlay_catalog: Path) -> None:
    res = _run(overlay_catalog, "strategy.max_hold_bars=4")
    trades = res.strategy.trades
    timed = trades[trades["exit_reason"] == "time_stop"]
    assert len(timed) >= 5
    assert (timed["bars_held"] == 4).all()
    assert (trades["bars_held"] <= 4).all()


def test_cooldown_blocks_reentry_for_n_bars(overlay_catalog: Path) -> None:
    frames = _frames(overlay_catalog)

    def gaps(res: BacktestResult) -> list[int]:
        out = []
        for sym, grp in res.strategy.fills.groupby("symbol"):
            rows = grp.sort_values("ts")
            t = frames[sym].index.asi8
            for ex, nxt in zip(rows.iloc[1::2].itertuples(), rows.iloc[2::2].itertuples(), strict=False):
                # bars of the symbol that closed between the exit fill and the next entry fill
                out.append(int(np.searchsorted(t, nxt.ts.value) - np.searchsorted(t, ex.ts.value)))
        return out

    free = gaps(_run(overlay_catalog, "strategy.max_hold_bars=2"))
    cooled = gaps(_run(overlay_catalog, "strategy.max_hold_bars=2", "risk.cooldown_bars=5"))
    assert min(free) == 1, "without a cooldown a time-stopped position is re-entered at once"
    assert min(cooled) >= 6, "exit fill bar + 5 cooldown bars before the next entry is decided"
    assert len(cooled) < len(free)


def test_min_hold_ignores_early_exit_signals_but_not_stops(overlay_catalog: Path, overlay_model: Path) -> None:
    common = ["strategy.entry_threshold=0.5", "strategy.exit_threshold=0.5", f'strategy.model="{overlay_model}"']
    churn = _run(overlay_catalog, *common, kind="signal").strategy.trades
    held = _run(overlay_catalog, *common, "risk.min_hold_bars=6", "risk.stop_loss=0.004", kind="signal").strategy.trades
    assert (churn["bars_held"] < 6).sum() > 10, "the unfiltered signal churns"
    signal_exits = held[held["exit_reason"] == "signal"]
    assert len(signal_exits) > 5
    assert (signal_exits["bars_held"] >= 6).all()
    early_stops = held[(held["exit_reason"] == "stop_loss") & (held["bars_held"] < 6)]
    assert len(early_stops) >= 1, "a stop overrides the minimum holding period"


def test_drawdown_breaker_flattens_everything_and_pauses_entries(overlay_catalog: Path) -> None:
    pause = 20
    # three symbols that bar on the same clock, so every one of them decides at the trip
    res = _run(
        overlay_catalog, "risk.drawdown_limit=0.004", f"risk.drawdown_pause_bars={pause}",
        "portfolio.position_size=0.3", symbols=["SPY", "AAPL", "MSFT"],
    )
    fills = res.strategy.fills
    dd = fills[fills["exit_reason"] == "drawdown"]
    assert len(dd) >= 1
    timeline = res.strategy.equity.index.asi8
    for trip_fill in sorted(set(dd["ts"])):
        before = fills[fills["ts"] < trip_fill]
        signed = np.where(before["side"] == "BUY", before["qty"], -before["qty"])
        net = pd.Series(signed, index=before["symbol"]).groupby(level=0).sum()
        open_syms = set(net[net.round(9) != 0].index)
        closed_now = fills[fills["ts"] == trip_fill]
        assert set(closed_now["symbol"]) == open_syms, "every open position is flattened at once"
        assert (closed_now["exit_reason"] == "drawdown").all()
        # entries are paused at the trip's timestamp and the next `pause` ones
        k0 = int(np.searchsorted(timeline, trip_fill.value)) - 1
        entries = fills[(fills["exit_reason"] == "") & (fills["ts"] > trip_fill)]
        if len(entries):
            assert entries["ts"].iloc[0].value > timeline[k0 + pause + 1]


def test_daily_loss_limit_stops_entries_for_the_rest_of_the_session(overlay_catalog: Path) -> None:
    from engine.sessions import session_of

    res = _run(overlay_catalog, "risk.daily_loss_limit=0.003", "portfolio.position_size=0.3")
    frames = _frames(overlay_catalog)
    fills = res.strategy.fills
    decided = pd.DatetimeIndex([frames[f.symbol].index[_decision_bar(frames[f.symbol], f.ts)] for f in fills.itertuples()])
    fills = fills.assign(decided=decided, session=session_of(decided, side="right"))
    halted = fills[fills["exit_reason"] == "daily_loss"]
    assert len(halted) >= 1
    for _, row in halted.iterrows():
        later = fills[(fills["decided"] >= row["decided"]) & (fills["session"] == row["session"])]
        assert (later["exit_reason"] != "").all(), "no entry decided after the halt in the same session"
    sessions_halted = set(halted["session"])
    next_day_entries = fills[(fills["exit_reason"] == "") & ~fills["session"].isin(sessions_halted)]
    assert len(next_day_entries) > 0, "entries resume in the following sessions"


def test_regime_filter_blocks_entries_but_never_exits(overlay_catalog: Path) -> None:
    res = _run(overlay_catalog, "regime.trend.sma=35")
    frames = _frames(overlay_catalog)
    spy = frames["SPY"]
    fills = res.strategy.fills
    blocked_exits = 0
    for f in fills.itertuples():
        decision = frames[f.symbol].index[_decision_bar(frames[f.symbol], f.ts)]
        allowed = trend_allows(spy, 35, np.array([decision.value]))[0]
        if f.exit_reason == "":
            assert allowed, f"{f.symbol} entered at {decision} while SPY was below its SMA"
        elif not allowed:
            blocked_exits += 1
    assert blocked_exits >= 1, "exits happen in the blocked regime too"
    plain = _run(overlay_catalog).strategy.fills
    blocked_entries = [
        f for f in plain[plain["exit_reason"] == ""].itertuples()
        if not trend_allows(spy, 35, np.array([frames[f.symbol].index[_decision_bar(frames[f.symbol], f.ts)].value]))[0]
    ]
    assert blocked_entries, "without the filter some entries are taken in the blocked regime"


def test_a_regime_that_never_allows_entry_warns_and_trades_nothing(
    overlay_catalog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.runner"):
        res = _run(overlay_catalog, "regime.trend.sma=1000000")
    assert "never allows an entry" in caplog.text
    assert len(res.strategy.fills) == 0


def test_atr_sizing_puts_the_same_risk_in_every_position(overlay_catalog: Path) -> None:
    risk, mult = 0.004, 2.0
    res = _run(
        overlay_catalog, 'risk.sizing="atr"', f"risk.atr_risk={risk}", f"risk.atr_multiple={mult}",
        "risk.max_gross_exposure=3", "portfolio.fractional=true", "portfolio.max_positions=1",
    )
    frames = _frames(overlay_catalog)
    entries = res.strategy.fills[res.strategy.fills["exit_reason"] == ""]
    assert len(entries) >= 5
    eq = res.strategy.equity
    values = []
    for f in entries.itertuples():
        frame = frames[f.symbol]
        d = _decision_bar(frame, f.ts)
        atr = atr_pct(frame.iloc[: d + 1], 14)[-1]
        close = frame["close"].iloc[d]
        # one position at a time: equity at the decision is the curve's point there (cash only)
        equity = eq.asof(frame.index[d])
        expected = equity * risk / (mult * atr)
        values.append(f.qty * close / expected)
    assert np.allclose(values, 1.0, atol=1e-5), "qty x close = equity x risk / (multiple x ATR%)"
    sizes = entries["qty"] * entries["ref_price"]
    assert sizes.max() / sizes.min() > 1.5, "the position value moves with volatility"


def test_gross_exposure_cap_cuts_the_last_entry(overlay_catalog: Path) -> None:
    res = _run(
        overlay_catalog, "risk.max_gross_exposure=0.5", "costs.slippage_bps=0", "costs.commission_bps=0",
        kind="buy_and_hold",
    )
    fills = res.strategy.fills
    buys = fills[fills["side"] == "BUY"]
    assert len(buys) == 3
    notional = (buys["qty"] * buys["price"]).sum()
    assert notional <= 0.5 * 100_000 + 1e-6
    assert notional > 0.5 * 100_000 - 3 * buys["price"].max(), "filled up to the cap, less share rounding"


def test_cost_filter_keeps_only_entries_whose_edge_beats_the_round_trip_cost(
    overlay_catalog: Path, overlay_model: Path
) -> None:
    common = ["strategy.entry_threshold=0.5", "strategy.exit_threshold=0.5", f'strategy.model="{overlay_model}"']
    plain = _run(overlay_catalog, *common, kind="signal").strategy.trades
    filtered = _run(
        overlay_catalog, *common, "risk.cost_filter=true", "risk.cost_filter_window=200", kind="signal"
    ).strategy.trades
    none = _run(overlay_catalog, *common, "risk.cost_filter=true", "risk.cost_multiple=1000", kind="signal").strategy.trades
    assert len(none) == 0, "no edge covers 1000 round trips"
    assert 0 < len(filtered) < len(plain)
