"""``sigtrade paper`` with ``[strategy] kind = "policy"`` against the fake Alpaca (REST + WebSockets on 127.0.0.1).

The real CLI in a subprocess, the production TradingNode and Alpaca clients, a policy folder
(a small linear ONNX policy with a valid card, tests/models/policy_factory.py): the session
trades, its positions and cash reconcile with the broker, and `sigtrade backtest --replay`
of the recorded bars takes the same decisions - the same policy file from backtest to paper.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("alpaca")

from engine.replay import compare_decisions, read_jsonl, replay  # noqa: E402
from tests.engine.test_paper_alpaca import fake_positions, run_hours, summary  # noqa: E402
from tests.fakes.paper_session import PaperHarness  # noqa: E402
from tests.models.policy_factory import make_policy_artifact  # noqa: E402

pytestmark = [pytest.mark.timeout(180), pytest.mark.network]


def test_a_policy_paper_trades_reconciles_and_replays(tmp_path: Path) -> None:
    policy = make_policy_artifact(tmp_path / "policy", lookback=4, momentum=0.0, stickiness=0.0, bias=1.0,
                                  held_weight=-200.0)
    settings = {"strategy.kind": "policy", "strategy.model": str(policy), "strategy.max_hold_bars": 0}
    with PaperHarness(tmp_path / "s", settings=settings) as h:
        h.start()
        decisions = run_hours(h, 0, range(10, 16))
        assert h.stop() == 0
        assert len(decisions) == 5 * len(h.symbols)
        actions = [d["action"] for d in decisions]
        assert actions.count("buy") >= 2 and any(a.startswith("sell") for a in actions), actions
        assert all(d["inputs"]["action"] in ("flat", "long", "") for d in decisions)
        assert len(h.fake.orders) == sum(a != "hold" for a in actions)
        s = summary(h)
        assert {k: v for k, v in s["positions"].items() if v} == fake_positions(h)
        assert s["cash"] == pytest.approx(h.fake.cash, abs=1e-6)
        assert compare_decisions(read_jsonl(h.record / "decisions.jsonl"), replay(h.record)) == []
