"""The Alpaca execution client's limit / replace / cancel paths, in a TradingNode against the fake Alpaca."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("alpaca")

from tests.fakes.paper_session import REPO, PaperHarness  # noqa: E402

pytestmark = pytest.mark.timeout(90)


def test_limit_order_replaced_then_cancelled(tmp_path: Path) -> None:
    with PaperHarness(tmp_path, symbols=("SPY",)) as h:
        run = subprocess.run([sys.executable, "-m", "tests.fakes.limit_session", "SPY"], cwd=REPO, env=h.env(),
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr[-3000:]
        events = json.loads(run.stdout.strip().splitlines()[-1])["events"]
        orders = list(h.fake.orders.values())
    assert events[0] == "accepted" and events[1].startswith("updated 2 @ 101.00") and events[-1] == "canceled", events
    assert [o["status"] for o in orders] == ["replaced", "canceled"]
    first, second = orders
    assert (first["qty"], first["limit_price"]) == ("1", "100")
    assert (second["qty"], second["limit_price"], second["replaces"]) == ("2", "101", first["id"])
    assert f"venue {second['id']}" in events[1]


def test_quote_ticks_from_the_data_stream(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    with PaperHarness(tmp_path, symbols=("SPY",)) as h:
        proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.limit_session", "SPY", "quotes"], cwd=REPO,
                                env=h.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert h.streams is not None
            h.streams.wait_subscribed("SPY", channel="quotes", timeout=40)
            h.streams.push_quote("SPY", datetime(2026, 12, 1, 15, 0, 1, tzinfo=UTC), 600.01, 600.03, 3, 5)
            out, err = proc.communicate(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err[-3000:]
    events = json.loads(out.strip().splitlines()[-1])["events"]
    assert events == [f"quote 600.010000 600.030000 3 5 {int(datetime(2026, 12, 1, 15, 0, 1, tzinfo=UTC).timestamp()) * 10**9}"]


def test_an_order_is_accepted_once_when_rest_and_the_stream_both_report_it() -> None:
    """The REST answer and the stream's 'new' may both arrive while the cache still says SUBMITTED."""
    from types import SimpleNamespace

    from nautilus_trader.model.identifiers import ClientOrderId, VenueOrderId

    from engine.adapters.alpaca.execution import AlpacaExecutionClient

    client = AlpacaExecutionClient.__new__(AlpacaExecutionClient)  # only the bookkeeping under test
    client._accepted = set()
    sent: list[tuple] = []
    client.generate_order_accepted = lambda *args: sent.append(args)
    first = SimpleNamespace(strategy_id="S-1", instrument_id="SPY.XNYS", client_order_id=ClientOrderId("O-1"))
    second = SimpleNamespace(strategy_id="S-1", instrument_id="SPY.XNYS", client_order_id=ClientOrderId("O-2"))
    for order, ts in ((first, 1), (first, 2), (second, 3), (first, 4)):
        client._accept(order, VenueOrderId(f"v-{order.client_order_id}"), ts)
    assert [(a[2].value, a[4]) for a in sent] == [("O-1", 1), ("O-2", 3)]
