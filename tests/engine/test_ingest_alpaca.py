"""``sigtrade ingest alpaca`` against a fake Alpaca server on 127.0.0.1.

The production path runs unchanged: alpaca-py's ``StockHistoricalDataClient`` (pointed
at :class:`tests.fakes.alpaca_server.FakeAlpaca` through ``url_override``) pages through
real SPY/AAPL hourly bars re-encoded as Alpaca bars (``t`` = bar start). Checked: the
catalog equals a CSV ingest of the same bars, pagination, 429 honouring
``X-RateLimit-Reset``, bounded 5xx retries, refused keys, unknown symbols, incremental
updates, the CLI, and that key values never reach messages, logs or output.
"""

from __future__ import annotations

import hashlib
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
from engine.adapters.alpaca.historical import ingest_alpaca
from engine.catalog import list_symbols, read_frame
from engine.errors import BrokerError, DataError
from engine.ingest.pipeline import ingest_files
from tests.conftest import ROOT
from tests.fakes.alpaca_server import ERRORS, FakeAlpaca

KEY, SECRET = "PKFAKEKEY0123456789", "fakeSecretValue-abcdefghijklmnop"
NY = "America/New_York"
START = pd.Timestamp("2024-03-01", tz=NY)
END = pd.Timestamp("2024-03-22 23:59", tz=NY)
BARS = "/v2/stocks/bars"


def _load(hourly_dir: Path, symbol: str) -> pd.DataFrame:
    df = pd.read_csv(hourly_dir / f"{symbol}_1h.csv", index_col=0)
    df.index = pd.to_datetime(df.index, utc=True)
    df = df[(df.index >= START) & (df.index <= END)].sort_index()
    return df.rename(columns={"wap": "vwap", "count": "trade_count"})


@pytest.fixture(scope="module")
def served(hourly_dir: Path) -> dict[str, pd.DataFrame]:
    """Regular-session bars (index = bar start) of SPY and AAPL, 2024-03-01 .. 03-22 (DST change inside)."""
    return {s: _load(hourly_dir, s) for s in ("SPY", "AAPL")}


def _extended(frame: pd.DataFrame) -> pd.DataFrame:
    """Pre-market (08:00 ET) and after-hours (17:00 ET) bars for each day of *frame*."""
    days = frame.index.tz_convert(NY).normalize().unique()
    first = frame.groupby(frame.index.tz_convert(NY).normalize()).first()
    rows = []
    for day in days:
        for hour in (8, 17):
            rows.append(first.loc[day].rename(day + pd.Timedelta(hours=hour)))
    out = pd.DataFrame(rows)
    out.index = pd.DatetimeIndex(out.index).tz_convert("UTC")
    return out


@pytest.fixture
def fake(served: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    """A fake Alpaca with SPY (plus extended-hours bars) and AAPL; 40 bars a page; keys in the env."""
    with FakeAlpaca(KEY, SECRET, page_size=40) as server:
        server.add_bars("SPY", pd.concat([served["SPY"], _extended(served["SPY"])]), "1Hour")
        server.add_bars("AAPL", served["AAPL"], "1Hour")
        monkeypatch.setenv("APCA_API_KEY_ID", KEY)
        monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
        yield server


def _config(fake: FakeAlpaca, retries: int = 3) -> AlpacaConfig:
    return AlpacaConfig(data_url=fake.url, retry=RetryPolicy(max_retries=retries, backoff_s=0.05, timeout_s=5))


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _csv_catalog(served: dict[str, pd.DataFrame], tmp: Path) -> Path:
    """The same bars ingested from CSV files: what the Alpaca ingest must produce."""
    files = []
    for sym, frame in served.items():
        f = tmp / f"{sym}_1h.csv"
        frame.to_csv(f, index_label="date")
        files.append(f)
    ingest_files(files, tmp / "csv_catalog", bar="1-HOUR")
    return tmp / "csv_catalog"


def test_two_symbols_paginated_equal_csv_ingest(fake: FakeAlpaca, served: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    report = ingest_alpaca(["SPY", "AAPL"], tmp_path / "cat", start=START, end=END, config=_config(fake))

    expected = _csv_catalog(served, tmp_path)
    for sym in ("SPY", "AAPL"):
        pd.testing.assert_frame_equal(read_frame(tmp_path / "cat", sym, "1-HOUR"), read_frame(expected, sym, "1-HOUR"))
    by_sym = {s.symbol: s for s in report.symbols}
    n_ext = len(_extended(served["SPY"]))
    assert by_sym["SPY"].extended_hours == n_ext > 0  # pre-market/after-hours bars dropped and counted
    assert by_sym["SPY"].received == len(served["SPY"]) + n_ext
    assert by_sym["AAPL"].extended_hours == 0
    # the 09:30 ET bar closes at 10:00 ET (bar start -> bar close)
    first = read_frame(tmp_path / "cat", "SPY", "1-HOUR").index[0]
    assert first.tz_convert(NY) == pd.Timestamp("2024-03-01 10:00", tz=NY)

    spy = [r for r in fake.requests_to(BARS) if r.query["symbols"] == "SPY"]
    assert len(spy) == -(-(len(served["SPY"]) + n_ext) // 40) >= 3
    assert "page_token" not in spy[0].query
    assert len({r.query["page_token"] for r in spy[1:]}) == len(spy) - 1  # each page asked once
    assert all(r.query["timeframe"] == "1Hour" and r.query["feed"] == "iex" and r.query["adjustment"] == "raw"
               for r in spy)
    assert all(r.status == 200 for r in fake.requests)


def test_rate_limit_waits_for_reset(fake: FakeAlpaca, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_next(1, 429, reset_in=1.0)
    caplog.set_level(logging.DEBUG)
    t0 = time.monotonic()
    ingest_alpaca(["AAPL"], tmp_path / "cat", start=START, end=END, config=_config(fake))
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 10
    statuses = [r.status for r in fake.requests]
    assert statuses[0] == 429 and statuses[1:] == [200] * (len(statuses) - 1)
    assert "429" in caplog.text
    assert KEY not in caplog.text and SECRET not in caplog.text


def test_5xx_retried_then_succeeds(fake: FakeAlpaca, tmp_path: Path) -> None:
    fake.fail_next(1, 500)
    fake.fail_next(1, 503)
    report = ingest_alpaca(["AAPL"], tmp_path / "cat", start=START, end=END, config=_config(fake))
    assert [r.status for r in fake.requests][:3] == [500, 503, 200]
    assert report.symbols[0].rows_written == len(read_frame(tmp_path / "cat", "AAPL", "1-HOUR")) > 0


def test_5xx_forever_bounded_and_catalog_unchanged(fake: FakeAlpaca, tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    ingest_alpaca(["SPY"], cat, start=START, end=END - pd.Timedelta(days=7), config=_config(fake))
    before = _tree_hash(cat)
    n0 = len(fake.requests)
    fake.fail_next(1000, 503)
    with pytest.raises(BrokerError, match=r"HTTP 503.*retries exhausted.*nothing was written") as exc:
        ingest_alpaca(["SPY", "AAPL"], cat, start=START, end=END, config=_config(fake, retries=2))
    assert len(fake.requests) - n0 == 3  # one try + 2 retries, then stop
    assert _tree_hash(cat) == before
    assert KEY not in str(exc.value) and SECRET not in str(exc.value)


@pytest.mark.parametrize(("key", "secret", "status"), [("wrong-key", SECRET, 401), (KEY, "wrong-secret", 403)])
def test_refused_keys(fake: FakeAlpaca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      key: str, secret: str, status: int) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
    with pytest.raises(BrokerError) as exc:
        ingest_alpaca(["SPY"], tmp_path / "cat", start=START, end=END, config=_config(fake))
    msg = str(exc.value)
    assert f"HTTP {status}" in msg and "APCA_API_KEY_ID" in msg and "APCA_API_SECRET_KEY" in msg
    assert key not in msg and secret not in msg
    assert [r.status for r in fake.requests] == [status]  # not retried
    assert not (tmp_path / "cat").exists()


def test_error_bodies_have_alpacas_shape(real_data: Path) -> None:
    sample = json.loads((real_data / "alpaca" / "rest_error_403_post_1033_tradeapi.json").read_text())
    assert all(set(body) == set(sample) for body in ERRORS.values())


def test_missing_keys(fake: FakeAlpaca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(BrokerError, match="set APCA_API_SECRET_KEY"):
        ingest_alpaca(["SPY"], tmp_path / "cat", start=START, end=END, config=_config(fake))
    assert fake.requests == []


def test_unknown_symbol_refused_nothing_written(fake: FakeAlpaca, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ZZZQ: Alpaca has no 1-HOUR bars.*unknown symbol") as exc:
        ingest_alpaca(["SPY", "ZZZQ"], tmp_path / "cat", start=START, end=END, config=_config(fake))
    assert "SPY" not in str(exc.value).split("written")[1]  # only the unknown one is blamed
    assert not (tmp_path / "cat").exists()


def test_incremental_fetches_only_the_missing_range(fake: FakeAlpaca, tmp_path: Path) -> None:
    cfg = _config(fake)
    one_shot = tmp_path / "one"
    ingest_alpaca(["SPY", "AAPL"], one_shot, start=START, end=END, config=cfg)

    inc = tmp_path / "inc"
    mid = pd.Timestamp("2024-03-13 15:30", tz="UTC")  # mid-session: the last bar (15:00-16:00 UTC) is kept
    ingest_alpaca(["SPY", "AAPL"], inc, start=START, end=mid, config=cfg)
    n0 = len(fake.requests)
    report = ingest_alpaca(["SPY", "AAPL"], inc, start=START, end=END, config=cfg)

    second = fake.requests[n0:]
    assert {r.query["start"] for r in second} == {"2024-03-13T15:00:00+00:00"}  # the last stored bar's start
    assert all(s.incremental for s in report.symbols)
    for sym in ("SPY", "AAPL"):
        pd.testing.assert_frame_equal(read_frame(inc, sym, "1-HOUR"), read_frame(one_shot, sym, "1-HOUR"))

    n1 = len(fake.requests)
    ingest_alpaca(["SPY"], inc, start=START, end=pd.Timestamp("2024-03-12", tz=NY), config=cfg)
    assert len(fake.requests) == n1  # already covered: nothing asked


def _cli(fake: FakeAlpaca, catalog: Path, key: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APCA_API_KEY_ID": key, "APCA_API_SECRET_KEY": secret,
           "SIGTRADE_ALPACA_DATA_URL": fake.url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "engine", "ingest", "alpaca", "--symbols", "SPY,AAPL", "--start", "2024-03-01",
         "--end", "2024-03-22", "--bar", "1-HOUR", "--feed", "iex", "--catalog", str(catalog)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_cli_ingests_and_never_shows_keys(fake: FakeAlpaca, tmp_path: Path) -> None:
    res = _cli(fake, tmp_path / "cat", KEY, SECRET)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "SPY" in out and "AAPL" in out and "outside the NYSE regular session" in out
    assert list_symbols(tmp_path / "cat", "1-HOUR") == ["AAPL", "SPY"]
    assert KEY not in out and SECRET not in out

    bad = _cli(fake, tmp_path / "cat2", KEY, "not-the-secret-xyz")
    out = bad.stdout + bad.stderr
    assert bad.returncode == BrokerError.exit_code
    assert "Alpaca refused the keys" in out and "APCA_API_SECRET_KEY" in out and "Traceback" not in out
    assert KEY not in out and "not-the-secret-xyz" not in out


def test_daily_bars_close_at_the_session_close_and_update(fake: FakeAlpaca, served: dict[str, pd.DataFrame],
                                                          tmp_path: Path) -> None:
    hourly = served["SPY"]
    day = hourly.index.tz_convert(NY).normalize()
    daily = hourly.groupby(day).agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    daily.index = pd.DatetimeIndex(daily.index).tz_convert("UTC")  # Alpaca stamps daily bars at New York midnight
    fake.add_bars("SPY", daily, "1Day")
    cat = tmp_path / "cat"
    ingest_alpaca(["SPY"], cat, start=START, end=pd.Timestamp("2024-03-12", tz=NY), bar="1-DAY", config=_config(fake))
    n0 = len(fake.requests)
    ingest_alpaca(["SPY"], cat, start=START, end=END, bar="1-DAY", config=_config(fake))
    assert {r.query["start"] for r in fake.requests[n0:]} == {"2024-03-12T04:00:00+00:00"}  # last stored session
    frame = read_frame(cat, "SPY", "1-DAY")
    assert len(frame) == len(daily)
    assert (frame.index.tz_convert(NY).time == pd.Timestamp("16:00").time()).all()
    assert frame["close"].tolist() == pytest.approx(daily["close"].tolist())


def test_unreachable_server_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeAlpaca(KEY, SECRET) as gone:
        url = gone.url  # a port that was just free and is now closed
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    cfg = AlpacaConfig(data_url=url, retry=RetryPolicy(max_retries=2, backoff_s=0.05, timeout_s=2))
    t0 = time.monotonic()
    with pytest.raises(BrokerError, match=r"no answer \(ConnectionError\), 3 time\(s\)"):
        ingest_alpaca(["SPY"], tmp_path / "cat", start=START, end=END, config=cfg)
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "cat").exists()
