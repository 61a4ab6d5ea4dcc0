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
