"""Real-data sweep: every OHLCV CSV under ``../shared/data/equities`` ingests.

Files with real defects are refused first (the refusal names them) and ingest with
``repair=True``; the report's drops account for every row. Close times are checked on an
IBKR file (09:30 bar closes 10:00 ET), a yfinance file (15:30 bar closes 16:00 ET) and an
early-close day, and prices read back from the catalog equal the CSV to 1e-6.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.catalog import read_frame
from engine.errors import DataError
from engine.ingest import IngestReport, ingest_files

NY = "America/New_York"
IBKR = (
    "AAPL AMZN BRK.B COIN GOOG HOOD KO LLY MCD META MSFT MU NVDA QQQ SPY TSLA TSM UNH".split()
)
# directory -> (bar, {file refused without --repair: kinds of its hard problems})
GROUPS: dict[str, tuple[str, dict[str, set[str]]]] = {
    # IBKR rows with a yfinance 15:30 row of 2026-08-04 misplaced among them: it is out of
    # order and overlaps IBKR's 15:00-16:00 bar
    "hourly/market-base": ("1-HOUR", {f"{s}_1h.csv": {"unsorted", "overlap"} for s in IBKR}),
    "hourly/quantumflow": ("1-HOUR", {}),
    "hourly/live-signal-detector": ("1-HOUR", {}),
    "hourly/russ-backtests": ("1-HOUR", {}),
    # forming last bars whose high/low do not bracket open/close (SOURCES.md)
    "daily/market-base": ("1-DAY", {"UNH.csv": {"low_above"}}),
    "daily/stock-indicator-pipeline": ("1-DAY", {"MA.csv": {"low_above"}, "UNH.csv": {"high_below"}}),
    "daily/market-data-mirror": ("1-DAY", {}),
    "daily/market-correction-watch": ("1-DAY", {}),
    "daily/russ-backtests": ("1-DAY", {}),
    "daily/stocksight": ("1-DAY", {}),
    "daily/bee2026": ("1-DAY", {}),
}
NOT_BARS = "derived"  # SPY_dividends_implied.csv: the one file that must be refused


def header_lines(path: Path) -> int:
    return 3 if path.read_text().startswith("Price,") else 1


def data_rows(path: Path) -> int:
    lines = path.read_text().splitlines()
    return sum(1 for line in lines[header_lines(path):] if line.strip())


@pytest.fixture(scope="module")
def ingested(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Ingest a group once per module: (report, catalog, refusal message or None)."""
    cache: dict[str, tuple[IngestReport, Path, str | None]] = {}

    def get(group: str) -> tuple[IngestReport, Path, str | None]:
        if group not in cache:
            bar = GROUPS[group][0]
            src = real_data / "equities" / group
            catalog = tmp_path_factory.mktemp(group.replace("/", "_")) / "catalog"
            refusal = None
            try:
                report = ingest_files([src], catalog, bar=bar)
            except DataError as exc:
                refusal = str(exc)
                report = ingest_files([src], catalog, bar=bar, repair=True)
            cache[group] = (report, catalog, refusal)
        return cache[group]

    return get


def test_every_csv_directory_is_covered(real_data: Path) -> None:
    root = real_data / "equities"
    dirs = {str(p.parent.relative_to(root)) for p in root.rglob("*.csv")}
    assert dirs == {*GROUPS, NOT_BARS}


@pytest.mark.parametrize("group", list(GROUPS))
def test_group_ingests_and_drops_account_for_every_row(real_data: Path, ingested: Any, group: str) -> None:
    bar, expected = GROUPS[group]
    report, catalog, refusal = ingested(group)
    files = sorted(p.name for p in (real_data / "equities" / group).glob("*.csv"))
    assert sorted(f.path.name for f in report.files) == files

    refused = {f.path.name: {p.kind for p in f.errors} for f in report.files if f.errors}
    assert refused == expected
    if expected:
        assert refusal is not None
        assert "--repair" in refusal
        for name in expected:
            assert name in refusal or "..." in refusal  # the message lists up to 10 file names
    else:
        assert refusal is None

    for f in report.files:
        assert f.rows_in_file == data_rows(f.path), f.path
        assert f.rows_written == f.rows_in_file - f.rows_dropped, f.path
        listed = sorted(r for rows in f.dropped.values() for r in rows)
        assert len(listed) == len(set(listed)) == f.rows_dropped
        frame = read_frame(catalog, f.symbol, bar)
        assert len(frame) == f.rows_written
        assert frame.index[0] == f.first_close
        assert frame.index[-1] == f.last_close


def test_derived_non_ohlcv_file_is_refused(real_data: Path, tmp_path: Path) -> None:
    path = real_data / "equities" / NOT_BARS / "SPY_dividends_implied.csv"
    with pytest.raises(DataError, match="missing column\\(s\\) date/datetime/timestamp, open, high, low, close, volume"):
        ingest_files([path], tmp_path / "cat", bar="1-DAY")
    assert not (tmp_path / "cat").exists()


def closes_on(frame: pd.DataFrame, day: str) -> list[str]:
    local = frame.index.tz_convert(NY)
    return [t.strftime("%H:%M") for t in local[local.strftime("%Y-%m-%d") == day]]


def test_ibkr_bars_close_times(ingested: Any) -> None:
    report, catalog, _ = ingested("hourly/market-base")
    spy = read_frame(catalog, "SPY", "1-HOUR")
    assert spy.index[0] == pd.Timestamp("2021-10-19 10:00", tz=NY)  # the 09:30-10:00 half-hour bar
    assert closes_on(spy, "2021-10-19") == ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
    assert closes_on(spy, "2024-11-29") == ["10:00", "11:00", "12:00", "13:00"]  # early close
    # the repaired overlap: IBKR's 15:00-16:00 bar is kept, the misplaced yfinance 15:30 row dropped
    assert closes_on(spy, "2026-08-04") == ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
    assert closes_on(spy, "2026-08-05")[0] == "10:30"  # yfinance rows after the switch
    assert spy.index[-1] == pd.Timestamp("2026-08-21 16:00", tz=NY)
    f = next(f for f in report.files if f.symbol == "SPY")
    assert f.dropped == {"overlap": [8382]}
    assert f.resorted == 1


def test_yfinance_bars_close_times(ingested: Any) -> None:
    _, catalog, _ = ingested("hourly/market-base")
    abbv = read_frame(catalog, "ABBV", "1-HOUR")
    assert abbv.index[0] == pd.Timestamp("2023-09-08 10:30", tz=NY)
    assert closes_on(abbv, "2024-01-02") == ["10:30", "11:30", "12:30", "13:30", "14:30", "15:30", "16:00"]
    assert abbv.index[-1] == pd.Timestamp("2026-08-21 16:00", tz=NY)  # the 15:30-16:00 bar


def test_unfinished_last_session_is_reported(ingested: Any) -> None:
    report, _, _ = ingested("hourly/quantumflow")
    for f in report.files:  # the downloads stop at 14:30 on 2026-06-23
        partial = [p for p in f.warnings if p.kind == "partial_last_session"]
        assert len(partial) == 1, f.path
        assert partial[0].value == "2026-06-23", f.path
        assert et_last(f.last_close) == "2026-06-23 15:30"


def et_last(ts: pd.Timestamp | None) -> str:
    assert ts is not None
    return ts.tz_convert(NY).strftime("%Y-%m-%d %H:%M")


def test_daily_bars_close_at_the_session_close(ingested: Any) -> None:
    _, catalog, _ = ingested("daily/market-data-mirror")
    spy = read_frame(catalog, "SPY", "1-DAY")
    assert spy.index[0] == pd.Timestamp("1993-01-29 16:00", tz=NY)
    assert closes_on(spy, "2024-11-27") == ["16:00"]
    assert closes_on(spy, "2024-11-29") == ["13:00"]


def read_csv_independently(path: Path, dropped: list[int]) -> pd.DataFrame:
    """The CSV's bars in time order, by plain pandas, without the rows ingest dropped."""
    skip = header_lines(path)
    if skip == 3:
        names = ["date", *[c.lower() for c in path.read_text().splitlines()[0].split(",")[1:]]]
        df = pd.read_csv(path, skiprows=3, header=None, names=names)
    else:
        df = pd.read_csv(path)
        df.columns = [c.lower() for c in df.columns]
    df["line"] = np.arange(len(df)) + skip + 1
    df = df[~df["line"].isin(dropped)]
    time_col = next(c for c in ("timestamp", "datetime", "date") if c in df.columns)
    df["t"] = pd.to_datetime(df[time_col], utc=True, format="mixed")
    return df.sort_values("t", kind="stable")


@pytest.mark.parametrize(
    ("group", "name"),
    [
        ("hourly/market-base", "SPY_1h.csv"),
        ("hourly/market-base", "BRK.B_1h.csv"),
        ("hourly/market-base", "ABBV_1h.csv"),
        ("hourly/quantumflow", "SPX500_1h.csv"),
        ("hourly/live-signal-detector", "QQQ_1h.csv"),
        ("hourly/russ-backtests", "SPY_hourly.csv"),
        ("daily/bee2026", "SPY.csv"),
        ("daily/stock-indicator-pipeline", "UNH.csv"),
        ("daily/stocksight", "AAPL.csv"),
    ],
)
def test_prices_read_back_equal_the_csv(real_data: Path, ingested: Any, group: str, name: str) -> None:
    report, catalog, _ = ingested(group)
    f = next(f for f in report.files if f.path.name == name)
    src = read_csv_independently(real_data / "equities" / group / name, [r for v in f.dropped.values() for r in v])
    got = read_frame(catalog, f.symbol, GROUPS[group][0])
    assert len(got) == len(src)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_allclose(got[col].to_numpy(), src[col].to_numpy(), rtol=0, atol=1e-6, err_msg=col)
    np.testing.assert_allclose(got["volume"].to_numpy(), src["volume"].round().to_numpy(), rtol=0, atol=0.5)
    # every bar closes after it starts, and no later than an hour (a session) after
    lag = (got.index - pd.DatetimeIndex(src["t"])).total_seconds().to_numpy()
    limit = 3600 if GROUPS[group][0] == "1-HOUR" else 24 * 3600
    assert (lag > 0).all()
    assert (lag <= limit).all()
