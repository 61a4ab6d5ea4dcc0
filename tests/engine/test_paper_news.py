"""Paper trading with a model trained with news sentiment: Alpaca's live news stream feeds the column.

End to end, as tests/engine/test_paper_alpaca.py: the real CLI in a subprocess against
the fake Alpaca (REST + WebSockets, news stream included), a tiny seeded ONNX model
whose card has a sentiment spec, a catalog holding scored news, and a tiny local BERT
scorer (random encoder, classifier head fixed to "positive", so every live article
scores the same clear positive number). The back-fill after a stream drop and the
missing-extra message are checked in-process, without transformers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("alpaca")

from engine import catalog as cat  # noqa: E402
from engine.adapters.alpaca import news_stream  # noqa: E402
from engine.adapters.alpaca.config import AlpacaConfig  # noqa: E402
from engine.errors import MissingExtraError  # noqa: E402
from engine.replay import compare_decisions, news_notes, read_jsonl, read_news, replay  # noqa: E402
from models.features import compute_features  # noqa: E402
from models.sentiment import SentimentSpec  # noqa: E402
from tests.conftest import need  # noqa: E402
from tests.fakes.alpaca_news import FakeNews, article  # noqa: E402
from tests.fakes.alpaca_streams import FakeAlpacaStreams  # noqa: E402
from tests.fakes.alpaca_trading import FakeAlpacaTrading  # noqa: E402
from tests.fakes.paper_session import KEY, SAMPLE, SECRET, PaperHarness, recent_hour_starts  # noqa: E402
from tests.models.onnx_factory import fit_scaler, make_mlp_artifact  # noqa: E402
from tests.models.test_sentiment import with_sentiment, write_scored_news  # noqa: E402

pytestmark = pytest.mark.timeout(180)

SYMBOLS = ("SPY", "SYN01")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _need_research() -> None:
    have = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    need(have, "torch and transformers (the [research] extra) are not installed: the live news scorer needs them")


def _scorer(folder: Path) -> Path:
    """A tiny BERT classifier whose head always says 'positive' (score ~ +0.9), saved as a model folder."""
    import torch
    from transformers import BertForSequenceClassification

    from tests.research.test_news import _save_tiny

    _save_tiny(folder)
    net = BertForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([4.0, 0.0, 0.0]))
    net.save_pretrained(folder)
    return folder


def _catalog_news(catalog: Path, scorer: str) -> None:
    """A few scored articles over the warm-up bars' dates (what `sentiment score` would have stored)."""
    starts = recent_hour_starts(40)
    times = starts[::5] + pd.Timedelta(minutes=17)
    write_scored_news(catalog, pd.DataFrame({
        "id": [f"cat{i}" for i in range(len(times))],
        "symbols": [[SYMBOLS[i % 2]] for i in range(len(times))],
        "headline": [f"catalog headline {i}" for i in range(len(times))],
        "created_at": times,
        "score": np.linspace(-0.4, 0.4, len(times)),
    }), scorer)


def _model(folder: Path, spec: SentimentSpec) -> Path:
    """A seeded MLP whose scaler gives the sentiment column a unit of about 0.3."""
    frame = cat.read_frame(SAMPLE, "SPY", "1-HOUR").iloc[-400:]
    wave = pd.Series(0.3 * np.sin(np.arange(len(frame)) / 7.0), index=frame.index)
    scaler = fit_scaler(compute_features(frame, sentiment=wave).to_numpy())
    return with_sentiment(make_mlp_artifact(folder, lookback=4, seed=3, scaler=scaler), spec)


@pytest.fixture(scope="module")
def news_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _need_research()
    root = tmp_path_factory.mktemp("paper_news")
    scorer = _scorer(root / "scorer")
    catalog = root / "catalog"
    _catalog_news(catalog, str(scorer))
    model = _model(root / "news_model", SentimentSpec(model=str(scorer), half_life="6h"))
    broken = root / "not_a_model"  # a folder without config.json: load_scorer refuses it at once
    broken.mkdir()
    bad_catalog = root / "bad_catalog"
    _catalog_news(bad_catalog, str(broken))
    bad_model = _model(root / "bad_model", SentimentSpec(model=str(broken), half_life="6h"))
    return {"catalog": catalog, "model": model, "bad_catalog": bad_catalog, "bad_model": bad_model}


def _settings(model: Path, catalog: Path) -> dict[str, Any]:
    return {"strategy.kind": "signal", "strategy.model": str(model), "data.catalog": str(catalog)}


def _step(h: PaperHarness, hour: int, n_before: int) -> list[dict]:
    """Open clock hour *hour* of future day 0 (closes the previous bar), wait for its decisions, then its :30."""
    h.hour(0, hour, minutes=(0,))
    got = h.wait_decisions(n_before + len(h.symbols))
    h.hour(0, hour, minutes=(30,))
    time.sleep(0.3)
    return got


def _without(record: Path, dest: Path, keep: Any) -> Path:
    """A copy of a record directory whose news.jsonl keeps only the articles *keep* accepts."""
    shutil.copytree(record, dest)
    kept = [r for r in read_news(record) if keep(r)]
    (dest / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    return dest


def _differing(recorded: list[dict], replayed: list[dict]) -> set[tuple[int, str]]:
    rep = {(d["ts"], d["symbol"]): d["inputs"]["p"] for d in replayed}
    return {(d["ts"], d["symbol"]) for d in recorded if rep.get((d["ts"], d["symbol"])) != d["inputs"]["p"]}


def test_a_live_article_is_scored_recorded_and_moves_the_next_decision(tmp_path: Path,
                                                                        news_setup: dict[str, Path]) -> None:
    with PaperHarness(tmp_path, SYMBOLS, settings=_settings(news_setup["model"], news_setup["catalog"])) as h:
        h.start(env=h.env(**OFFLINE))
        assert h.streams is not None
        h.streams.wait_news_subscribed("SPY", timeout=30)
        h.hour(0, 10, minutes=(0, 30))
        first = _step(h, 11, 0)
        t1 = first[-1]["ts"]
        created = pd.Timestamp(t1, tz="UTC") + pd.Timedelta(minutes=15)  # before the next bar closes
        h.push_news({"id": 9001, "headline": "SPY profit rose to a record", "summary": "strong quarter",
                     "symbols": ["SPY"], "created_at": created})
        h.wait_news(1)
        second = _step(h, 12, len(first))
        t2 = second[-1]["ts"]
        # late: created before the 12:00 close, which was decided without it
        h.push_news({"id": 9002, "headline": "SYN01 shares fell", "symbols": ["SYN01"],
                     "created_at": pd.Timestamp(t2, tz="UTC") - pd.Timedelta(minutes=5)})
        h.wait_news(2)
        assert h.stop() == 0
        log = h.log()

    on_time, late = h.news_records()
    assert on_time["id"] == "9001" and on_time["symbols"] == ["SPY"] and on_time["late"] is False
    assert pd.Timestamp(on_time["created_at"]) == created and on_time["headline"].startswith("SPY profit")
    assert on_time["score"] > 0.8, "the tiny scorer's head says positive"
    assert late["id"] == "9002" and late["late"] is True and "may decide differently" in late["note"]
    assert "news " in log and "SPY: score +0." in log and "(late)" in log

    recorded = read_jsonl(h.record / "decisions.jsonl")
    assert {d["ts"] for d in recorded} == {t1, t2}
    # without the live articles the SPY decision of the bar after the article changes, nothing else
    blind = replay(_without(h.record, tmp_path / "blind", lambda r: False))
    assert _differing(recorded, blind) == {(t2, "SPY")}
    # with the articles that came in time, replay makes the same decisions, bit for bit
    in_time = _without(h.record, tmp_path / "in_time", lambda r: not r["late"])
    assert compare_decisions(recorded, replay(in_time)) == []
    # the late one: replay counts it from the bar the session had already decided, and says so
    assert news_notes(read_news(h.record)) and "may differ" in news_notes(read_news(h.record))[0]
    assert _differing(recorded, replay(h.record)) == {(t2, "SYN01")}


def test_b_a_scorer_that_cannot_be_loaded_stops_the_session_before_it_trades(tmp_path: Path,
                                                                              news_setup: dict[str, Path]) -> None:
    settings = _settings(news_setup["bad_model"], news_setup["bad_catalog"])
    with PaperHarness(tmp_path, SYMBOLS, settings=settings) as h:
        h.start(wait=False, env=h.env(**OFFLINE))
        rc = h.wait_exit(60)
        assert h.streams is not None
        connects = dict(h.streams.connects)
    log = h.log()
    assert rc != 0
    assert "trained with news sentiment scored by" in log and "cannot be loaded" in log and "no config.json" in log
    assert "Traceback" not in log
    assert connects == {"trading": 0, "data": 0, "news": 0} and not h.fake.orders and not h.decisions()


def test_c_a_model_without_sentiment_starts_no_news_stream(tmp_path: Path) -> None:
    with PaperHarness(tmp_path) as h:  # the demo ensemble: no sentiment spec
        h.start()
        time.sleep(1.0)
        assert h.stop() == 0
        assert h.streams is not None and h.streams.connects["news"] == 0
    assert read_news(h.record) == []
    assert "news sentiment" not in h.log()


# ---- in-process: back-fill after a drop, the missing extra -----------------------------------------
class _Strategy:
    """What LiveNews needs of a strategy: add_article, bar_sink, is_running."""

    def __init__(self) -> None:
        self.is_running = True
        self.bar_sink = None
        self.added: list[tuple[str, list[str], int, float]] = []

    def add_article(self, article_id: str, symbols: list[str], created_at: int, score: float) -> None:
        self.added.append((article_id, symbols, created_at, score))


def _wait(cond: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def test_d_after_a_stream_drop_missed_articles_are_back_filled_by_rest_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    with FakeAlpacaTrading(KEY, SECRET) as fake, FakeAlpacaStreams(fake) as ws:
        rest = FakeNews.install(fake)
        strategy, records, lines = _Strategy(), [], []
        news = news_stream.LiveNews(
            strategy, ["SPY"], AlpacaConfig(data_url=fake.url, news_stream_url=ws.news_url),
            score=lambda texts: [0.25] * len(texts), text=lambda h, s: h,
            write=lambda name, rec: records.append(rec), say=lines.append,
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(news.run(),), daemon=True)
        thread.start()
        try:
            ws.wait_news_subscribed("SPY", timeout=10)
            first = {"id": 1, "headline": "first", "symbols": ["SPY", "QQQ"], "created_at": now - pd.Timedelta(minutes=2)}
            ws.push_news(first)
            ws.push_news(first)  # the same version again: once
            _wait(lambda: len(records) == 1, "live article")
            rest.add(article(1, ["SPY"], (now - pd.Timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
                     article(2, ["SPY"], (now - pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                             headline="while the stream was down"))
            ws.drop_connections()
            ws.wait_news_subscribed("SPY", timeout=20)
            _wait(lambda: len(records) == 2, "back-filled article")
            time.sleep(0.3)
        finally:
            strategy.is_running = False
            thread.join(10)
            loop.close()
    assert [r["id"] for r in records] == ["1", "2"] and [r["source"] for r in records] == ["stream", "rest"]
    assert [a[0] for a in strategy.added] == ["1", "2"] and strategy.added[0][1] == ["QQQ", "SPY"]
    assert records[1]["headline"] == "while the stream was down" and records[1]["score"] == 0.25
    assert any("back-filled 1 article(s) by REST" in line for line in lines)
    assert not thread.is_alive(), "the news task ends when the strategy stops"


def test_e_without_the_research_extra_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"needs torch.*pip install 'sigtrade\[research\]'"):
        news_stream.load_news_scorer("ProsusAI/finbert")
