"""``sigtrade ingest news`` against a fake Alpaca news endpoint on 127.0.0.1.

The production path runs unchanged: alpaca-py's ``NewsClient`` (``url_override`` ->
:class:`tests.fakes.alpaca_server.FakeAlpaca` with the route of
:mod:`tests.fakes.alpaca_news`) pages through the articles (10 a page here), under
sigtrade's retry policy. Checked: pagination, 429 honouring ``X-RateLimit-Reset``,
refused keys (no key values in messages), incremental fetches, updated articles,
articles with no symbols (dropped and counted), repeated ids, zone-less times (refused,
store unchanged), and the CLI in a subprocess with keys only in its environment.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from engine.adapters.alpaca.config import AlpacaConfig, RetryPolicy
from engine.adapters.alpaca.news import COLUMNS, fetch_news, to_news_frame
from engine.cli.app import main
from engine.errors import BrokerError, DataError
from tests.conftest import REAL_DATA, ROOT
from tests.fakes.alpaca_news import NEWS_PATH, FakeNews, article
from tests.fakes.alpaca_server import FakeAlpaca

pytestmark = pytest.mark.research  # the CLI writes through research.news.store (pandas + pyarrow)

KEY, SECRET = "PKFAKENEWSKEY0123456", "fakeNewsSecret-abcdefghijklmnop"
START = pd.Timestamp("2024-03-01", tz="UTC")
END = pd.Timestamp("2024-03-31", tz="UTC")
SAMPLE = REAL_DATA / "alpaca" / "rest_v1beta1_news.json"


def _articles(n: int = 25) -> list[dict]:
    """*n* articles, one every 7 hours from 2024-03-01 14:00Z, about AAPL, MSFT or both."""
    out = []
    for i in range(n):
        t = (pd.Timestamp("2024-03-01T14:00Z") + pd.Timedelta(hours=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        syms = [["AAPL"], ["MSFT"], ["AAPL", "MSFT"]][i % 3]
        out.append(article(1000 + i, syms, t, headline=f"news {i}"))
    return out


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAlpaca, FakeNews]]:
    with FakeAlpaca(KEY, SECRET, page_size=10) as server:
        news = FakeNews.install(server)
        news.add(*_articles())
        monkeypatch.setenv("APCA_API_KEY_ID", KEY)
        monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
        monkeypatch.setenv("SIGTRADE_ALPACA_DATA_URL", server.url)
        yield server, news


def _config(fake: FakeAlpaca, retries: int = 3) -> AlpacaConfig:
    return AlpacaConfig(data_url=fake.url, retry=RetryPolicy(max_retries=retries, backoff_s=0.05, timeout_s=5))


def _cli(catalog: Path, *extra: str, start: str = "2024-03-01", end: str = "2024-03-31") -> None:
    main(["ingest", "news", "--symbols", "AAPL,MSFT", "--start", start, "--end", end, "--catalog", str(catalog), *extra])


def _stored(catalog: Path) -> pd.DataFrame:
    from research.news.store import read_news

    return read_news(catalog)


def test_pages_followed_and_frame_in_store_schema(fake: tuple[FakeAlpaca, FakeNews]) -> None:
    server, _ = fake
    frame, notes = fetch_news(["aapl", "MSFT"], START, END, config=_config(server))
    reqs = server.requests_to(NEWS_PATH)
    assert len(reqs) == 3 and [r.status for r in reqs] == [200] * 3  # 25 articles, 10 a page
    assert "page_token" not in reqs[0].query and all(r.query.get("page_token") for r in reqs[1:])
    assert reqs[0].query["symbols"] == "AAPL,MSFT" and reqs[0].query["sort"] == "asc"
    assert pd.Timestamp(reqs[0].query["start"]) == START
    assert len(frame) == 25 and not notes
    assert tuple(frame.columns) == COLUMNS
    assert frame["id"].tolist() == [str(1000 + i) for i in range(25)]  # ids as strings, in time order
    assert frame.loc[2, "symbols"] == ["AAPL", "MSFT"]
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]" and str(frame["updated_at"].dtype) == "datetime64[ns, UTC]"


def test_real_alpaca_sample_article_converts() -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} not found")
    frame, notes = to_news_frame(json.loads(SAMPLE.read_text())["news"])
    row = frame.iloc[0]
    assert (row["id"], row["symbols"], row["headline"], row["source"]) == ("40432158", ["AAPL", "QCOM"], "headline", "source")
    assert row["created_at"] == pd.Timestamp("2024-08-18T20:15:44Z") and not notes


def test_rate_limit_waits_for_reset(fake: tuple[FakeAlpaca, FakeNews], caplog: pytest.LogCaptureFixture) -> None:
    server, _ = fake
    server.fail_next(1, 429, reset_in=1.0)
    caplog.set_level(logging.DEBUG)
    t0 = time.monotonic()
    frame, _ = fetch_news(["AAPL"], START, END, config=_config(server))
    assert 0.9 <= time.monotonic() - t0 < 10
    statuses = [r.status for r in server.requests_to(NEWS_PATH)]
    assert statuses[0] == 429 and statuses[1:] == [200] * (len(statuses) - 1)
    assert len(frame) == 17  # articles naming AAPL
    assert "429" in caplog.text and KEY not in caplog.text and SECRET not in caplog.text


def test_5xx_forever_is_bounded(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path) -> None:
    server, _ = fake
    server.fail_next(10, 503)
    with pytest.raises(BrokerError, match="retries exhausted"):
        fetch_news(["AAPL"], START, END, config=_config(server, retries=2))
    assert len(server.requests_to(NEWS_PATH)) == 3


def test_refused_keys_message_without_key_values(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "PKWRONGKEY999")
    with pytest.raises(BrokerError) as info:
        fetch_news(["AAPL"], START, END, config=_config(fake[0]))
    msg = str(info.value)
    assert "HTTP 401" in msg and "APCA_API_KEY_ID" in msg and "APCA_API_SECRET_KEY" in msg
    assert "PKWRONGKEY999" not in msg and SECRET not in msg
    with pytest.raises(SystemExit) as code:
        _cli(tmp_path / "cat")
    out = capsys.readouterr()
    assert code.value.code == BrokerError.exit_code and "Alpaca refused the keys" in out.err
    assert "PKWRONGKEY999" not in out.out + out.err and SECRET not in out.out + out.err
    assert not (tmp_path / "cat").exists()


def test_incremental_asks_from_latest_stored_and_updates_articles(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    server, news = fake
    cat = tmp_path / "cat"
    _cli(cat, end="2024-03-05")
    first = _stored(cat)
    assert len(first) == 16 and first["id"].is_unique  # created 03-01 14:00Z .. 03-05 23:00Z (New York day)
    n1 = len(server.requests_to(NEWS_PATH))
    latest = first["created_at"].max()

    # a later article, and an update of the latest stored one (same id, later updated_at)
    upd_id = int(first.loc[first["created_at"].idxmax(), "id"])
    upd = article(upd_id, ["AAPL"], latest.strftime("%Y-%m-%dT%H:%M:%SZ"), updated_at="2024-03-06T12:00:00Z",
                  headline="corrected headline")
    news.add(upd)
    capsys.readouterr()
    _cli(cat)
    later = server.requests_to(NEWS_PATH)[n1:]
    # not --start: from the latest stored article of the symbol with the older news (MSFT, 03-05 16:00Z), less 1 h
    msft_latest = first.loc[first["symbols"].map(lambda s: "MSFT" in s), "created_at"].max()
    assert msft_latest == pd.Timestamp("2024-03-05T16:00Z") < latest
    assert pd.Timestamp(later[0].query["start"]) == msft_latest - pd.Timedelta(hours=1)
    assert len(later) == 2  # 11 articles from there: 2 pages, not 3
    out = capsys.readouterr().out
    assert "incremental" in out and "9 new" in out and "1 updated" in out
    second = _stored(cat)
    assert len(second) == 25 and second["id"].is_unique
    row = second.set_index("id").loc[str(upd_id)]
    assert row["headline"] == "corrected headline" and row["updated_at"] == pd.Timestamp("2024-03-06T12:00Z")

    # an earlier --start than what is stored: the whole range is fetched again
    _cli(cat, start="2024-02-20")
    assert pd.Timestamp(server.requests_to(NEWS_PATH)[-1].query["start"]) <= pd.Timestamp("2024-02-20T05:00Z")
    assert len(_stored(cat)) == 25


def test_articles_without_symbols_are_dropped_and_counted(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, news = fake
    news.add(article(7001, [], "2024-03-02T15:00:00Z"), article(7002, [], "2024-03-03T15:00:00Z"))
    _cli(tmp_path / "cat")
    out = capsys.readouterr().out
    assert "dropped 2 article(s) with no symbols" in out and "7001" in out
    stored = _stored(tmp_path / "cat")
    assert len(stored) == 25 and stored["symbols"].map(len).min() >= 1


def test_no_articles_writes_nothing(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    main(["ingest", "news", "--symbols", "TSLA", "--start", "2024-03-01", "--catalog", str(tmp_path / "cat")])
    assert "no articles; nothing written" in capsys.readouterr().out
    assert not (tmp_path / "cat").exists()


def test_repeated_ids_keep_the_latest_update() -> None:
    raw = [article(5, ["AAPL"], "2024-03-01T14:00:00Z", headline="old"),
           article(5, ["AAPL"], "2024-03-01T14:00:00Z", updated_at="2024-03-01T15:00:00+00:00", headline="new"),
           article(6, ["msft"], "2024-03-01T16:00:00-05:00")]
    frame, notes = to_news_frame(raw)
    assert frame["id"].tolist() == ["5", "6"] and frame.loc[0, "headline"] == "new"
    assert frame.loc[1, "symbols"] == ["MSFT"] and frame.loc[1, "created_at"] == pd.Timestamp("2024-03-01T21:00Z")
    assert notes == ["1 repeated id(s) in Alpaca's answer: kept the latest updated_at of each"]


def test_zoneless_time_refused_store_unchanged(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    server, news = fake
    cat = tmp_path / "cat"
    _cli(cat, end="2024-03-05")
    before = (cat / "sigtrade_news" / "news.parquet").read_bytes()
    news.add(article(8001, ["AAPL"], "2024-03-20T14:00:00"))  # no zone
    capsys.readouterr()
    with pytest.raises(SystemExit) as code:
        _cli(cat)
    err = capsys.readouterr().err
    assert code.value.code == DataError.exit_code
    assert "without a time zone" in err and "8001" in err and "nothing was written" in err
    assert (cat / "sigtrade_news" / "news.parquet").read_bytes() == before
    assert [p.name for p in (cat / "sigtrade_news").iterdir()] == ["news.parquet"]  # no temporary file left
    with pytest.raises(DataError, match="without an id"):
        to_news_frame([{**article(1, ["AAPL"], "2024-03-01T14:00:00Z"), "id": None}])


def test_cli_subprocess_keys_only_in_env(fake: tuple[FakeAlpaca, FakeNews], tmp_path: Path) -> None:
    server, _ = fake

    def run(secret: str, catalog: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": secret,
               "SIGTRADE_ALPACA_DATA_URL": server.url, "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "engine", "ingest", "news", "--symbols", "AAPL,MSFT", "--start", "2024-03-01",
             "--end", "2024-03-31", "--catalog", str(catalog)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )

    ok = run(SECRET, tmp_path / "cat")
    out = ok.stdout + ok.stderr
    assert ok.returncode == 0, out
    assert "25 article(s) received; 25 new" in out
    assert KEY not in out and SECRET not in out
    assert len(_stored(tmp_path / "cat")) == 25

    bad = run("not-the-news-secret", tmp_path / "cat2")
    out = bad.stdout + bad.stderr
    assert bad.returncode == BrokerError.exit_code and "Traceback" not in out
    assert "Alpaca refused the keys" in out and KEY not in out and "not-the-news-secret" not in out
    assert not (tmp_path / "cat2").exists()
