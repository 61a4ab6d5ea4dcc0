"""``sigtrade paper`` end to end against the fake Alpaca (REST + WebSockets on 127.0.0.1).

Each test runs the real CLI in a subprocess (``python -m engine paper``) with the fake's
URLs and keys in its environment - the alpaca-py clients, the NautilusTrader
``TradingNode``, the Alpaca data/execution clients and the strategy are the production
ones - and drives the market by pushing minute bars of *future* sessions (every bar then
closes after the session started, so it is traded). Every test is bounded in time and
stops the session itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("alpaca")

from engine.replay import compare_decisions, read_jsonl, replay  # noqa: E402
from tests.fakes.paper_session import KEY, SECRET, PaperHarness  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def step(h: PaperHarness, day: int, hour: int, n_before: int, *, posts: bool = True) -> list[dict]:
    """Open clock hour *hour* (its first minute closes the previous bar), wait for those decisions, then its :30 minute."""
    h.hour(day, hour, minutes=(0,))
    got = h.wait_decisions(n_before + len(h.symbols))
    wanted = sum(1 for d in got if d["action"] != "hold") if posts else 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(1 for r in h.fake.requests_to("/v2/orders") if r.method == "POST") < wanted:
        time.sleep(0.05)  # every order decided has reached the broker (or been refused) before the next minute
    h.wait_orders_settled()
    h.hour(day, hour, minutes=(30,))
    time.sleep(0.4)  # fills of this minute reach the session
    return got


def run_hours(h: PaperHarness, day: int, hours: range) -> list[dict]:
    h.hour(day, hours.start, minutes=(0, 30))
    n = 0
    for hour in range(hours.start + 1, hours.stop):
        n = len(step(h, day, hour, n))
    return h.decisions()


def summary(h: PaperHarness) -> dict:
    return json.loads((h.out / "summary.json").read_text())


def fake_positions(h: PaperHarness) -> dict[str, float]:
    return {s: p.qty for s, p in h.fake.positions.items()}


def test_a_stream_bars_trade_and_reconcile_with_the_broker(tmp_path: Path) -> None:
    """(a) N hourly bars -> the NN ensemble trades -> orders, fills, positions and cash agree with the broker; replay gives the same decisions."""
    with PaperHarness(tmp_path) as h:
        h.start()
        decisions = run_hours(h, 0, range(10, 16))
        assert h.stop() == 0
        n_hours = 5  # 10:00 ... 14:00 closed; 15:00's bar is still open
        assert len(decisions) == n_hours * len(h.symbols)
        assert {d["symbol"] for d in decisions} == set(h.symbols)
        assert all(d["inputs"]["p"] == d["inputs"]["p"] for d in decisions), "a live decision on a NaN probability"
        actions = [d["action"] for d in decisions]
        assert actions.count("buy") >= 2 and any(a.startswith("sell") for a in actions), actions
        orders = read_jsonl(h.record / "orders.jsonl")
        assert len(orders) == len(h.fake.orders) == sum(a != "hold" for a in actions)
        assert {o["client_order_id"] for o in orders} == {o["client_order_id"] for o in h.fake.orders.values()}
        filled = [o for o in h.fake.orders.values() if o["status"] == "filled"]
        assert len(filled) == len(h.fake.orders), "every market order fills on the next minute bar"
        assert "| positions SPY" in h.log() and "| last p SPY 0." in h.log(), "no status line"
        s = summary(h)
        broker = fake_positions(h)
        assert {k: v for k, v in s["positions"].items() if v} == broker
        assert s["cash"] == pytest.approx(h.fake.cash, abs=1e-6)
        # the same bars through the backtest engine: the same decisions, bar by bar
        replayed = replay(h.record)
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replayed) == []
        # the CLI: sigtrade backtest --replay DIR (config "-" = the recorded one)
        cli = subprocess.run([sys.executable, "-m", "engine", "backtest", "-", "--replay", str(h.record)],
                             capture_output=True, text=True, timeout=120, cwd=h.tmp)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert f"{len(decisions)} decision(s)" in cli.stdout and "identical to the paper session" in cli.stdout
        # a tampered record is caught: one decision flipped
        lines = (h.record / "decisions.jsonl").read_text().splitlines()
        first = json.loads(lines[0])
        first["action"] = "hold" if first["action"] != "hold" else "buy"
        (h.record / "decisions.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
        cli = subprocess.run([sys.executable, "-m", "engine", "backtest", "-", "--replay", str(h.record)],
                             capture_output=True, text=True, timeout=120, cwd=h.tmp)
        assert cli.returncode == 1 and "1 difference(s)" in cli.stdout


def test_b_stream_drop_reconnect_backfills_without_duplicates(tmp_path: Path) -> None:
    """(b) The WebSocket drops mid-session: missed minutes come back by REST; no bar twice, none lost."""
    with PaperHarness(tmp_path) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        assert h.streams is not None
        data_connects = h.streams.connects["data"]
        h.streams.drop_connections()
        h.hour(0, 12, minutes=(0, 30), stream=False)  # while disconnected: only REST has them
        h.streams.wait_connects("data", data_connects + 1, timeout=30)
        h.streams.wait_subscribed(h.symbols[-1], timeout=30)
        time.sleep(1.0)
        h.hour(0, 13, minutes=(0,))  # live again: closes 13:00's bar
        decisions = h.wait_decisions(3 * len(h.symbols))
        time.sleep(0.5)
        assert h.stop() == 0
        keys = [(d["ts"], d["symbol"]) for d in decisions]
        assert len(keys) == len(set(keys)), "a bar was decided twice"
        closes = sorted({pd.Timestamp(d["ts"], tz="UTC").tz_convert("America/New_York").hour for d in decisions})
        assert closes == [11, 12, 13], "a bar was lost"
        bars = pd.read_parquet(h.record / "bars.parquet")
        live = bars[bars["live"]]
        assert not live.duplicated(["symbol", "ts"]).any()
        noon = live[pd.to_datetime(live["ts"], utc=True).dt.tz_convert("America/New_York").dt.hour == 13]
        for s in h.symbols:  # the 12:00-13:00 bar = its two REST-only minutes
            minutes = [b for b in h.minutes[s] if pd.Timestamp(b["t"]).tz_convert("America/New_York").hour == 12]
            row = noon[noon["symbol"] == s].iloc[0]
            assert row["open"] == pytest.approx(minutes[0]["o"]) and row["close"] == pytest.approx(minutes[-1]["c"])
            assert row["volume"] == sum(b["v"] for b in minutes)
        assert "back-filled 4 minute bar(s)" in h.log()


def test_c_rate_limit_then_success(tmp_path: Path) -> None:
    """(c) 429 on the start-up requests and on an order: waited out (X-RateLimit-Reset), then it works, one order."""
    with PaperHarness(tmp_path) as h:
        h.fake.fail_next(2, 429, reset_in=0.5)
        h.start()
        h.fake.refuse_next_order(429, "rate limit exceeded", 42910000)
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        time.sleep(1.5)
        assert h.stop() == 0
        assert "retry 1 of" in h.log() and "HTTP 429" in h.log()
        buys = [d for d in h.decisions() if d["action"] == "buy"]
        posts = h.fake.requests_to("/v2/orders")
        assert len(h.fake.orders) == len(buys)
        assert sum(1 for r in posts if r.method == "POST") == len(buys) + 1  # the 429 one was sent again


def test_d_server_error_on_submit_never_duplicates(tmp_path: Path) -> None:
    """(d) A 5xx after Alpaca took the order, and a 503 before: re-sent with the same client_order_id; one order each."""
    with PaperHarness(tmp_path) as h:
        h.start()
        h.fake.lose_next_submit_response(500)
        h.fake.refuse_next_order(503, "service unavailable", 50300000)
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        time.sleep(2.5)
        assert h.stop() == 0
        buys = [d for d in h.decisions() if d["action"] == "buy"]
        assert len(buys) == 2
        assert len(h.fake.orders) == 2, "an order was placed twice"
        ids = [o["client_order_id"] for o in h.fake.orders.values()]
        assert len(set(ids)) == 2
        assert "already at Alpaca" in h.log()
        assert fake_positions(h) == {k: v for k, v in summary(h)["positions"].items() if v}


def test_e_rejection_is_seen_and_not_retried_blindly(tmp_path: Path) -> None:
    """(e) Insufficient buying power (HTTP 403) and a venue rejection: the strategy sees them, does not resend that session."""
    with PaperHarness(tmp_path) as h:
        h.start()
        h.fake.refuse_next_order(403, "insufficient buying power", 40310000)
        h.fake.reject_next_order("symbol halted")
        h.hour(0, 10, minutes=(0, 30))
        for hour in (11, 12, 13):
            step(h, 0, hour, len(h.decisions()))
        assert h.stop() == 0
        log = h.log()
        assert "insufficient buying power" in log and "symbol halted" in log
        assert "no new entry in it for the rest of the session" in log
        posts = [r for r in h.fake.requests_to("/v2/orders") if r.method == "POST"]
        assert len(posts) == 2, "a refused entry was sent again"
        assert h.fake.positions == {}


def test_f_partial_fills(tmp_path: Path) -> None:
    """(f) An order filled 40 % then 60 %: no second order meanwhile; books equal the broker's."""
    with PaperHarness(tmp_path) as h:
        h.fake.set_partial_fills((0.4, 0.6))
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        step(h, 0, 12, len(h.decisions()))
        assert h.stop() == 0
        fills = h.fake.fills
        assert len(fills) >= 4 and len(h.fake.orders) == 2
        assert all(o["status"] == "filled" for o in h.fake.orders.values())
        assert fake_positions(h) == {k: v for k, v in summary(h)["positions"].items() if v}


def _stream_of(symbols: list[str], bars: list[dict]) -> tuple[object, dict[int, dict[str, float]]]:
    """A fresh demo-ensemble stream fed *bars* (deduplicated by symbol and time) one bar time per step."""
    from models.signal import load_signal_model
    from tests.fakes.paper_session import REPO

    seen: dict[tuple[int, str], dict] = {}
    for b in bars:
        seen.setdefault((int(b["ts"]), b["symbol"]), b)
    stream = load_signal_model(REPO / "models" / "demo_ensemble").stream(symbols)
    probs: dict[int, dict[str, float]] = {}
    for ts in sorted({t for t, _ in seen}):
        names = [s for s in symbols if (ts, s) in seen]
        rows = [[seen[ts, s][k] for k in ("open", "high", "low", "close", "volume")] for s in names]
        probs[ts] = dict(zip(names, stream.step(ts, np.array(rows), names).tolist(), strict=True))
    return stream, probs


def test_g_kill_and_restart_reconciles_without_duplicates(tmp_path: Path) -> None:
    """(g) SIGKILL mid-session with positions open; the restarted session takes them over, does not buy
    again, and continues the streaming features exactly where the killed one stood.

    The restart warms up on fewer REST bars (as a restart days later would: the warm-up is the
    last N bars), so recomputing the features from the warm-up alone gives other values; the
    resumed session equals, bit for bit, one stream fed every bar once (the record, both
    sessions, deduplicated) - its probabilities and its saved state.
    """
    with PaperHarness(tmp_path) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        held = fake_positions(h)
        assert len(held) == 2
        h.kill()
        first_bars = len(read_jsonl(h.record / "bars.jsonl"))
        assert (h.out / "features.state").is_file()
        n_orders = len(h.fake.orders)
        h.warmup = 60
        h.write_config()
        h.start()
        h.hour(0, 12, minutes=(0,))
        h.wait_decisions(2 * len(h.symbols))
        h.hour(0, 13, minutes=(0,))
        h.wait_decisions(3 * len(h.symbols))
        time.sleep(1.0)
        assert h.stop() == 0
        after = h.decisions()[len(h.symbols):]
        assert all(d["position"] == held[d["symbol"]] for d in after[: len(h.symbols)]), after
        assert all(d["action"] != "buy" for d in after[: len(h.symbols)]), "bought again what was already held"
        assert len(h.fake.orders) >= n_orders
        assert "reconciled from the broker" in h.log()
        # the features: the resumed session == one uninterrupted stream over every bar seen
        bars = read_jsonl(h.record / "bars.jsonl")
        straight, probs = _stream_of(h.symbols, bars)
        assert straight.state() == (h.out / "features.state").read_bytes()
        _, cold = _stream_of(h.symbols, bars[first_bars:])  # what a restart without the state computes
        assert len(after) == 2 * len(h.symbols)
        # decisions on the signal (a forced exit records the last probability the strategy decided on)
        decided = [d for d in after if d["action"].split(":")[-1] in ("hold", "buy", "sell", "signal")]
        assert len(decided) >= len(h.symbols)
        for d in decided:
            assert d["inputs"]["p"] == probs[d["ts"]][d["symbol"]], d
        assert any(d["inputs"]["p"] != cold[d["ts"]][d["symbol"]] for d in decided)
        assert "streaming features of 2 symbol(s) resumed" in h.log()


def test_ctrl_c_cancels_open_orders_and_flattens(tmp_path: Path) -> None:
    """Ctrl-C: open orders are cancelled; with paper.flatten_on_stop the positions are closed."""
    with PaperHarness(tmp_path, settings={"paper.flatten_on_stop": True}) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)  # entries filled
        h.fake.market_open = False  # the next decisions' orders cannot fill
        assert h.stop() == 0
        sells = [o for o in h.fake.orders.values() if o["side"] == "sell"]
        assert len(sells) == len(h.symbols), "flatten_on_stop sent one closing order per position"
        assert "flattening" in h.log()


def test_ctrl_c_cancels_orders_still_open(tmp_path: Path) -> None:
    """Ctrl-C with entry orders waiting at the broker (market closed): they are cancelled there."""
    with PaperHarness(tmp_path) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        h.fake.market_open = False
        h.hour(0, 11, minutes=(0,))
        h.wait_decisions(len(h.symbols))
        deadline = time.monotonic() + 20
        while len(h.fake.orders) < len(h.symbols) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [o["status"] for o in h.fake.orders.values()] == ["new"] * len(h.symbols)
        assert h.stop() == 0
        assert [o["status"] for o in h.fake.orders.values()] == ["canceled"] * len(h.symbols)
        assert h.fake.positions == {}


def test_pre_trade_limit_denies_entries(tmp_path: Path) -> None:
    with PaperHarness(tmp_path, settings={"paper.max_order_notional": 1000.0}) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0, posts=False)
        assert h.stop() == 0
        assert h.fake.orders == {}
        assert "exceeds max_order_notional $1,000.00" in h.log()


def test_keys_never_in_logs_or_outputs(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        assert h.stop() == 0
        texts = [h.log()] + [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".parquet"]
        for text in texts:
            assert KEY not in text and SECRET not in text


# ---- bad input: a clear message, a non-zero exit, nothing started ------------------------------
def _fail(h: PaperHarness, env: dict[str, str] | None = None, *args: str) -> tuple[int, str]:
    h.start(*args, wait=False, env=env)
    code = h.wait_exit(60)
    return code, h.log()


def test_missing_keys(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:
        env = {k: v for k, v in h.env().items() if not k.startswith("APCA_")}
        code, log = _fail(h, env)
        assert code == 5 and "APCA_API_KEY_ID" in log and "Traceback" not in log
        assert not (h.out / "decisions.jsonl").exists()


def test_wrong_keys(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:
        code, log = _fail(h, h.env(APCA_API_SECRET_KEY="wrong-secret"))
        assert code == 5 and "refused the keys (HTTP 403)" in log and "wrong-secret" not in log
    with PaperHarness(tmp_path / "401") as h:
        code, log = _fail(h, h.env(APCA_API_KEY_ID="PKWRONGKEY"))
        assert code == 5 and "refused the keys (HTTP 401)" in log and "PKWRONGKEY" not in log
        assert not (h.out / "decisions.jsonl").exists()


def test_unknown_and_non_tradable_symbols(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:
        h.fake.assets.pop("SYN01")
        code, log = _fail(h)
        assert code == 5 and "SYN01 (Alpaca does not know this symbol)" in log
    with PaperHarness(tmp_path / "2") as h:
        h.fake.add_asset("SYN01", tradable=False)
        code, log = _fail(h)
        assert code == 5 and "SYN01 (not tradable at Alpaca)" in log


def test_non_fractionable_with_fractional_portfolio(tmp_path: Path) -> None:
    with PaperHarness(tmp_path, settings={"portfolio.fractional": True}, fractionable=False) as h:
        code, log = _fail(h)
        assert code == 5 and "does not allow fractional shares of SPY, SYN01" in log


def test_market_closed_is_said_and_waited_for(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:
        h.fake.market_open = False
        h.start()
        time.sleep(0.5)
        assert h.stop() == 0
        assert "market closed, next open" in h.log()


def test_live_needs_the_confirming_variable(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:
        code, log = _fail(h, None, "--live")
        assert code == 2 and "SIGTRADE_LIVE_CONFIRM" in log
        assert h.fake.requests == [], "nothing may reach the broker before the confirmation"


def test_short_selling_on_a_margin_account(tmp_path: Path) -> None:
    """Shorts: sold, covered by the time stop, books = broker; refused when the account cannot short."""
    settings = {"portfolio.account": "margin", "strategy.entry_threshold": 0.99, "strategy.exit_threshold": 0.98,
                "strategy.short_threshold": 0.45, "strategy.cover_threshold": 0.9}
    with PaperHarness(tmp_path / "no", settings=settings) as h:
        code, log = _fail(h)
        assert code == 5 and "cannot (shorting_enabled = false" in log and h.fake.orders == {}
    with PaperHarness(tmp_path / "yes", settings=settings) as h:
        h.fake.shorting_enabled = True
        h.start()
        decisions = run_hours(h, 0, range(10, 15))
        assert h.stop() == 0
        sides = [(o["side"], o["symbol"]) for o in h.fake.orders.values()]
        assert ("sell", "SPY") in sides and ("buy", "SPY") in sides, sides
        assert any(d["action"] == "sell" and d["position"] == 0 for d in decisions)
        assert fake_positions(h) == {k: v for k, v in summary(h)["positions"].items() if v}
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replay(h.record)) == []


def test_overlays_and_regime_filters_run_live_and_replay_identically(tmp_path: Path) -> None:
    """Regime filters, cost filter, ATR sizing and the breakers get their inputs bar by bar live; replay agrees."""
    settings = {
        "regime.combine": "or", "regime.trend.sma": 20, "regime.breadth.sma": 10, "regime.breadth.min_share": 0.0,
        "risk.sizing": "atr", "risk.atr_risk": 0.002, "risk.drawdown_limit": 0.2, "risk.daily_loss_limit": 0.1,
        "risk.stop_loss": 0.05, "risk.max_gross_exposure": 0.5,
    }
    with PaperHarness(tmp_path, settings=settings) as h:
        h.start()
        decisions = run_hours(h, 0, range(10, 16))
        assert h.stop() == 0
        assert len(decisions) == 5 * len(h.symbols)
        orders = read_jsonl(h.record / "orders.jsonl")
        assert orders, "the overlays let nothing through: the test would prove nothing"
        replayed = replay(h.record)
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replayed) == []
    # the cost filter: p < 0.5 means a negative expected edge, so no entry at all
    with PaperHarness(tmp_path / "cost", settings={"risk.cost_filter": True}) as h:
        h.start()
        run_hours(h, 0, range(10, 13))
        assert h.stop() == 0
        assert h.fake.orders == {}
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replay(h.record)) == []


def test_shipped_paper_config_runs(tmp_path: Path) -> None:
    """config/paper_demo.toml, as the README shows it, against the fake Alpaca."""
    from tests.fakes.paper_session import REPO

    with PaperHarness(tmp_path, symbols=("SPY",)) as h:
        h.config = REPO / "config" / "paper_demo.toml"
        h.start()
        decisions = run_hours(h, 0, range(10, 13))
        assert h.stop() == 0
        assert [d["symbol"] for d in decisions] == ["SPY", "SPY"]
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replay(h.record)) == []


def test_fractional_orders_where_alpaca_allows_them(tmp_path: Path) -> None:
    with PaperHarness(tmp_path, settings={"portfolio.fractional": True}) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        step(h, 0, 11, 0)
        assert h.stop() == 0
        qtys = [float(o["qty"]) for o in h.fake.orders.values()]
        assert qtys and all(not q.is_integer() for q in qtys), qtys
        assert fake_positions(h) == pytest.approx({k: v for k, v in summary(h)["positions"].items() if v})


def test_regime_benchmark_streamed_when_not_traded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trend filter reads SPY, which the session does not trade: SPY is streamed, recorded and replayed too."""
    settings = {"regime.trend.sma": 10, "regime.volatility.window": 5, "regime.volatility.lookback": 50,
                "regime.combine": "or"}
    with PaperHarness(tmp_path, symbols=("SYN01", "SYN02"), market=("SPY",), settings=settings) as h:
        h.start()
        decisions = run_hours(h, 0, range(10, 14))
        assert h.stop() == 0
        assert {d["symbol"] for d in decisions} == {"SYN01", "SYN02"}
        bars = pd.read_parquet(h.record / "bars.parquet")
        spy = bars[bars["symbol"] == "SPY"]
        assert len(spy) > 100 and spy["extra"].all(), "the benchmark's bars were not recorded"
        assert not any(o["symbol"] == "SPY" for o in h.fake.orders.values())
        import engine.runner as runner

        seen: dict[str, pd.DataFrame] = {}
        original = runner.overlay_series

        def capture(cfg, full, history, horizon, bench=None, trade_from=0):  # type: ignore[no-untyped-def]
            seen["bench"] = bench
            return original(cfg, full, history, horizon, bench, trade_from)

        monkeypatch.setattr(runner, "overlay_series", capture)
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replay(h.record)) == []
        assert list(seen["bench"].index.asi8) == sorted(spy["ts"].tolist()), "the replay did not use the recorded SPY bars"


def test_g_restart_takes_over_open_orders(tmp_path: Path) -> None:
    """(g) Killed with entry orders still open at the broker: the restarted session waits for them, books their fills, sends nothing twice."""
    with PaperHarness(tmp_path) as h:
        h.start()
        h.hour(0, 10, minutes=(0, 30))
        h.fake.market_open = False  # the orders decided at 11:00 stay open
        h.hour(0, 11, minutes=(0,))
        h.wait_decisions(len(h.symbols))
        deadline = time.monotonic() + 20
        while len(h.fake.orders) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [o["status"] for o in h.fake.orders.values()] == ["new", "new"]
        h.kill()
        h.start()
        assert "an open order was reconciled from the broker" in h.log()
        h.fake.market_open = True
        h.hour(0, 11, minutes=(30,))  # the open orders fill now, while the new session runs
        time.sleep(1.0)
        h.hour(0, 12, minutes=(0,))
        decisions = h.wait_decisions(2 * len(h.symbols))
        time.sleep(0.5)
        assert h.stop() == 0
        assert len(h.fake.orders) == 2, "an order was sent again after the restart"
        # the record holds both sessions' bars (the restarted one appended; the Parquet copy too)
        from engine.replay import read_bars

        noon = pd.Timestamp(f"{h.days[0].date()} 12:00", tz="America/New_York").value
        for frame in (read_bars(h.record), pd.read_parquet(h.record / "bars.parquet")):
            assert set(frame.loc[frame["ts"] == noon, "symbol"]) == set(h.symbols)
        after = decisions[len(h.symbols):]
        held = fake_positions(h)
        assert all(d["action"] == "hold" and d["position"] == held[d["symbol"]] for d in after), after
        assert {k: v for k, v in summary(h)["positions"].items() if v} == held


def test_a_feed_the_plan_lacks_stops_the_session_with_a_message(tmp_path: Path) -> None:
    """paper.feed = "sip" on a plan without it: Alpaca answers 'insufficient subscription'; the session says so and exits 5."""
    with PaperHarness(tmp_path, settings={"paper.feed": "sip"}) as h:
        assert h.streams is not None
        h.streams.refused_feeds.add("sip")
        env = h.env(SIGTRADE_ALPACA_DATA_STREAM_URL=h.streams.data_url("sip"))
        code, log = _fail(h, env)
        assert code == 5, log[-2000:]
        assert "insufficient subscription" in log and 'paper.feed = "iex"' in log and "Traceback" not in log
        assert summary(h)["error"]
