"""`sigtrade ingest csv`: readers, validation, repairs, atomic writes and the CLI.

Every test builds tiny files in ``tmp_path``; the real-data sweep is in
``test_ingest_real.py``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.catalog import list_symbols, read_frame
from engine.errors import ConfigError, DataError
from engine.ingest import ingest_files, read_bars_file, symbol_from_path
from engine.ingest.readers import RawBars

ROOT = Path(__file__).resolve().parents[2]
NY = "America/New_York"
DAYS = ("2024-01-02", "2024-01-03", "2024-01-04")  # three full NYSE sessions (EST, -05:00)
YF_TIMES = ("09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30")
IBKR_TIMES = ("09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00")
HEADER = "date,open,high,low,close,volume"


def bars(days: tuple[str, ...] = DAYS, times: tuple[str, ...] = YF_TIMES, *, utc: bool = False) -> pd.DataFrame:
    """Consistent hourly bars labelled by start, as vendors write them (ET offsets or UTC)."""
    starts = pd.DatetimeIndex([pd.Timestamp(f"{d} {t}", tz=NY) for d in days for t in times])
    k = np.arange(len(starts), dtype=float)
    open_ = 100.0 + k
    frame = pd.DataFrame(
        {"open": open_, "high": open_ + 1.5, "low": open_ - 0.5, "close": open_ + 0.5, "volume": 1000.0 + k},
        index=starts.tz_convert("UTC") if utc else starts,
    )
    frame.index.name = "date"
    return frame


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path)
    return path


def edit_lines(path: Path, fn: Callable[[list[str]], list[str]]) -> Path:
    """Rewrite a CSV's lines (index 0 = line 1 = the header)."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")
    return path


def set_field(lines: list[str], line_no: int, column: str, value: str) -> list[str]:
    cols = lines[0].split(",")
    cells = lines[line_no - 1].split(",")
    cells[cols.index(column)] = value
    lines[line_no - 1] = ",".join(cells)
    return lines


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def et(ts: pd.Timestamp) -> str:
    return ts.tz_convert(NY).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def spy(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "SPY_1h.csv", bars())


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return tmp_path / "catalogs" / "test"


# ---- happy paths and bar timestamps ----------------------------------------------------


def test_yfinance_bars_get_close_times_and_prices_round_trip(spy: Path, catalog: Path) -> None:
    report = ingest_files([spy], catalog)
    f = report.files[0]
    assert (f.symbol, f.rows_in_file, f.rows_written, f.rows_dropped) == ("SPY", 21, 21, 0)
    got = read_frame(catalog, "SPY", "1-HOUR")
    closes = [et(t) for t in got.index]
    assert closes[:2] == ["2024-01-02 10:30", "2024-01-02 11:30"]
    assert closes[6] == "2024-01-02 16:00"  # the 15:30 bar is half an hour long
    src = bars()
    np.testing.assert_allclose(got[["open", "high", "low", "close", "volume"]].to_numpy(), src.to_numpy(), atol=1e-6)


def test_ibkr_utc_bars_half_hour_first_bar(tmp_path: Path, catalog: Path) -> None:
    path = write_csv(tmp_path / "QQQ_1h.csv", bars(times=IBKR_TIMES, utc=True))
    assert "+00:00" in path.read_text().splitlines()[1]
    ingest_files([path], catalog)
    closes = [et(t) for t in read_frame(catalog, "QQQ", "1-HOUR").index]
    assert closes[:3] == ["2024-01-02 10:00", "2024-01-02 11:00", "2024-01-02 12:00"]
    assert closes[6] == "2024-01-02 16:00"


def test_mixed_offsets_in_one_file(tmp_path: Path, catalog: Path) -> None:
    ibkr = bars(days=DAYS[:2], times=IBKR_TIMES, utc=True)
    yf = bars(days=DAYS[2:], times=YF_TIMES)
    text = ibkr.to_csv() + "".join(yf.to_csv().splitlines(keepends=True)[1:])
    path = tmp_path / "SPY_1h.csv"
    path.write_text(text)
    report = ingest_files([path], catalog)
    assert report.files[0].rows_written == 21
    closes = [et(t) for t in read_frame(catalog, "SPY", "1-HOUR").index]
    assert closes[13] == "2024-01-03 16:00"
    assert closes[14] == "2024-01-04 10:30"


def test_early_close_clips_the_last_bar(tmp_path: Path, catalog: Path) -> None:
    path = write_csv(tmp_path / "SPY_1h.csv", bars(days=("2024-11-29",), times=IBKR_TIMES[:4]))
    report = ingest_files([path], catalog)
    assert not report.warnings
    closes = [et(t) for t in read_frame(catalog, "SPY", "1-HOUR").index]
    assert closes == ["2024-11-29 10:00", "2024-11-29 11:00", "2024-11-29 12:00", "2024-11-29 13:00"]


def test_columns_in_any_case_with_aliases(tmp_path: Path, catalog: Path) -> None:
    src = bars()
    frame = src.rename(columns=str.upper)
    frame["WAP"] = frame["CLOSE"]
    frame["Trades"] = 7
    frame["IsGap"] = False
    frame.index.name = "Timestamp"
    path = write_csv(tmp_path / "spy_hourly.csv", frame)
    raw = read_bars_file(path)
    assert raw.columns["vwap"] == "WAP"
    assert raw.columns["trade_count"] == "Trades"
    assert raw.symbol == "spy"
    report = ingest_files([path], catalog)
    assert "ignored column(s): IsGap" in report.files[0].notes
    np.testing.assert_allclose(read_frame(catalog, "spy", "1-HOUR")["close"].to_numpy(), src["close"].to_numpy())


def test_yfinance_three_line_header(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY.csv"
    path.write_text(
        "Price,Close,High,Low,Open,Volume\nTicker,SPY,SPY,SPY,SPY,SPY\nDate,,,,,\n"
        "2024-01-02,472.5,473.0,470.0,471.0,1000\n2024-01-03,468.0,471.0,467.0,470.0,2000\n"
        "2024-01-04,467.0,470.0,466.0,469.0,bad\n"
    )
    with pytest.raises(DataError, match="line 6"):  # header lines count: the third data row is line 6
        ingest_files([path], catalog, bar="1-DAY")
    path.write_text(path.read_text().replace("bad", "3000"))
    ingest_files([path], catalog, bar="1-DAY")
    got = read_frame(catalog, "SPY", "1-DAY")
    assert [et(t) for t in got.index] == ["2024-01-02 16:00", "2024-01-03 16:00", "2024-01-04 16:00"]
    assert got["open"].tolist() == [471.0, 470.0, 469.0]


def test_not_ohlcv_names_the_missing_columns(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY_dividends.csv"
    path.write_text("ex_date,dividend,raw_close_prev\n2024-03-15,1.59,510.0\n")
    with pytest.raises(DataError) as err:
        ingest_files([path], catalog, bar="1-DAY")
    msg = str(err.value)
    assert "SPY_dividends.csv" in msg
    assert "missing column(s)" in msg
    for col in ("date/datetime/timestamp", "open", "high", "low", "close", "volume"):
        assert col in msg
    assert not catalog.exists() or not list_symbols(catalog, "1-DAY")


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("BRK.B_1h.csv", "BRK.B"),
        ("SPY_1d.csv", "SPY"),
        ("QQQ_daily.csv", "QQQ"),
        ("IWM_HOURLY.csv", "IWM"),
        ("AAPL.csv", "AAPL"),
        ("MSFT.parquet", "MSFT"),
        ("SPY_hourly_2024.csv", "SPY_hourly_2024"),
    ],
)
def test_symbol_from_file_name(name: str, symbol: str) -> None:
    assert symbol_from_path(Path(name)) == symbol


# ---- time zones, dates, epochs, Parquet ---------------------------------------------------


def test_naive_times_need_tz(tmp_path: Path, catalog: Path) -> None:
    frame = bars()
    frame.index = frame.index.tz_localize(None)
    path = write_csv(tmp_path / "SPY_1h.csv", frame)
    with pytest.raises(DataError) as err:
        ingest_files([path], catalog)
    msg = str(err.value)
    assert "SPY_1h.csv line 2" in msg
    assert "2024-01-02 09:30:00" in msg
    assert "--tz America/New_York" in msg
    ingest_files([path], catalog, tz="America/New_York")
    closes = [et(t) for t in read_frame(catalog, "SPY", "1-HOUR").index]
    assert closes[0] == "2024-01-02 10:30"
    assert closes[6] == "2024-01-02 16:00"


def test_tz_shifts_naive_times(tmp_path: Path, catalog: Path) -> None:
    frame = bars(utc=True)
    frame.index = frame.index.tz_localize(None)  # naive UTC wall clock
    path = write_csv(tmp_path / "SPY_1h.csv", frame)
    ingest_files([path], catalog, tz="UTC")
    assert et(read_frame(catalog, "SPY", "1-HOUR").index[0]) == "2024-01-02 10:30"


def test_bad_tz_or_bar_is_a_config_error(spy: Path, catalog: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'America/New_York'"):
        ingest_files([spy], catalog, tz="America/New_Yrok")
    with pytest.raises(ConfigError, match="'1-HOURS' is not a bar size"):
        ingest_files([spy], catalog, bar="1-HOURS")


def test_daily_dates_need_no_tz_and_close_at_session_close(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY_1d.csv"
    path.write_text(HEADER + "\n2024-11-27,10,11,9,10.5,100\n2024-11-29,10.5,11,10,10.8,50\n2024-12-02,11,12,10,11.5,90\n")
    ingest_files([path], catalog, bar="1-DAY")
    got = read_frame(catalog, "SPY", "1-DAY")
    assert [et(t) for t in got.index] == ["2024-11-27 16:00", "2024-11-29 13:00", "2024-12-02 16:00"]


def test_daily_rows_at_utc_midnight_keep_their_date(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY_1d.csv"
    path.write_text(HEADER + "\n2024-01-02 00:00:00+00:00,10,11,9,10.5,100\n2024-01-03 00:00:00+00:00,10,11,9,10.5,100\n")
    ingest_files([path], catalog, bar="1-DAY")
    assert [et(t) for t in read_frame(catalog, "SPY", "1-DAY").index] == ["2024-01-02 16:00", "2024-01-03 16:00"]


def test_daily_file_with_hourly_bar_says_pass_1_day(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY.csv"
    path.write_text(HEADER + "\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10,11,9,10.5,100\n")
    with pytest.raises(DataError, match="pass --bar 1-DAY"):
        ingest_files([path], catalog)


def test_hourly_file_with_daily_bar_says_pass_1_hour(spy: Path, catalog: Path) -> None:
    with pytest.raises(DataError, match="pass --bar 1-HOUR"):
        ingest_files([spy], catalog, bar="1-DAY")


def test_bar_size_must_match_the_spacing(tmp_path: Path, catalog: Path) -> None:
    times = tuple(f"{h:02d}:{m:02d}" for h in range(10, 15) for m in (0, 30))
    path = write_csv(tmp_path / "SPY_30m.csv", bars(times=times))
    with pytest.raises(DataError, match="30 minutes apart.*pass --bar 30-MINUTE"):
        ingest_files([path], catalog)
    ingest_files([path], catalog, bar="30-MINUTE")
    assert et(read_frame(catalog, "SPY_30m", "30-MINUTE").index[0]) == "2024-01-02 10:30"


def test_epoch_seconds_and_separate_date_time_columns(tmp_path: Path, catalog: Path) -> None:
    src = bars()
    epoch = src.copy()
    epoch.index = pd.Index(src.index.tz_convert("UTC").asi8 // 10**9, name="timestamp")
    a = write_csv(tmp_path / "A.csv", epoch)
    split = src.copy()
    split.insert(0, "Time", src.index.strftime("%H:%M"))
    split.index = pd.Index(src.index.strftime("%Y-%m-%d"), name="Date")
    b = write_csv(tmp_path / "B.csv", split)
    ingest_files([a, b], catalog, tz="America/New_York")
    for sym in ("A", "B"):
        assert et(read_frame(catalog, sym, "1-HOUR").index[0]) == "2024-01-02 10:30"


def test_parquet_input(tmp_path: Path, catalog: Path) -> None:
    src = bars()
    aware = src.reset_index().rename(columns={"date": "Datetime"})
    aware.to_parquet(tmp_path / "SPY.parquet")
    naive = src.copy()
    naive.index = naive.index.tz_localize(None)
    naive.to_parquet(tmp_path / "QQQ_1h.parquet")  # time in a (naive) DatetimeIndex
    with pytest.raises(DataError, match="QQQ_1h.parquet row 1.*--tz"):
        ingest_files([tmp_path], catalog)
    report = ingest_files([tmp_path], catalog, tz=NY)
    assert sorted(f.symbol for f in report.files) == ["QQQ", "SPY"]
    for sym in ("QQQ", "SPY"):
        got = read_frame(catalog, sym, "1-HOUR")
        assert et(got.index[0]) == "2024-01-02 10:30"
        np.testing.assert_allclose(got["close"].to_numpy(), src["close"].to_numpy(), atol=1e-6)


def test_parquet_problem_rows_are_1_based(tmp_path: Path, catalog: Path) -> None:
    src = bars().reset_index()
    src.loc[4, "high"] = 1.0
    src.to_parquet(tmp_path / "SPY.parquet")
    with pytest.raises(DataError, match=r"SPY.parquet row 5: high '1.0' is below max\(open, close\)"):
        ingest_files([tmp_path / "SPY.parquet"], catalog)


# ---- hard problems: refused with file/line/value, repaired on request -------------------

IBKR_LINES = bars(times=IBKR_TIMES, utc=True).to_csv().splitlines()

# (kind, edit of the CSV lines, line reported, value quoted, {kind: dropped lines})
HARD_CASES = [
    ("bad_time", lambda ls: set_field(ls, 5, "date", "2024-01-02 25:99"), 5, "2024-01-02 25:99", {"bad_time": [5]}),
    ("bad_price", lambda ls: set_field(ls, 6, "close", "abc"), 6, "abc", {"bad_price": [6]}),
    ("bad_price", lambda ls: set_field(ls, 6, "open", ""), 6, "open ''", {"bad_price": [6]}),
    ("nonpositive_price", lambda ls: set_field(ls, 7, "low", "0"), 7, "low '0'", {"nonpositive_price": [7]}),
    ("negative_volume", lambda ls: set_field(ls, 7, "volume", "-5"), 7, "volume '-5'", {"negative_volume": [7]}),
    ("bad_volume", lambda ls: set_field(ls, 7, "volume", "n/a?"), 7, "volume 'n/a?'", {"bad_volume": [7]}),
    ("high_below", lambda ls: set_field(ls, 8, "high", "105.0"), 8, "high '105.0'", {"high_below": [8]}),
    ("low_above", lambda ls: set_field(ls, 9, "low", "107.2"), 9, "low '107.2'", {"low_above": [9]}),
    (
        "outside_session",
        lambda ls: [*ls, "2024-01-06 10:30:00-05:00,150,151,149,150.5,10"],  # a Saturday
        23, "2024-01-06 10:30:00-05:00", {"outside_session": [23]},
    ),
    (
        "outside_session",
        lambda ls: [*ls, "2024-01-04 17:30:00-05:00,150,151,149,150.5,10"],  # after the close
        23, "2024-01-04 17:30:00-05:00", {"outside_session": [23]},
    ),
    ("unsorted", lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], 4, "2024-01-02 10:30:00-05:00", {}),
    ("duplicate_time", lambda ls: [*ls[:5], ls[4].replace(",103.5,", ",103.75,"), *ls[5:]], 5, "2024-01-02 12:30:00-05:00", {"duplicate_time": [5]}),
    (
        "overlap",  # a 15:00 bar (15:00-16:00) between the 14:30 and 15:30 bars overlaps both
        lambda ls: [*ls[:7], "2024-01-02 15:00:00-05:00,105,106,104,105.5,10", *ls[7:]],
        8, "2024-01-02 15:00:00-05:00", {"overlap": [8]},
    ),
    (
        "overlap",  # as in the real IBKR files: a yfinance 15:30 row lands before IBKR's 15:00 bar
        lambda ls: [*IBKR_LINES[:7], "2024-01-02 15:30:00-05:00,106,107,105,106.5,10", *IBKR_LINES[7:]],
        8, "2024-01-02 15:30:00-05:00", {"overlap": [8]},
    ),
]


@pytest.mark.parametrize(("kind", "edit", "line", "value", "drops"), HARD_CASES, ids=[c[0] for c in HARD_CASES])
def test_hard_problem_is_refused_then_repaired(
    tmp_path: Path, catalog: Path, kind: str, edit: Callable[[list[str]], list[str]], line: int, value: str, drops: dict[str, list[int]]
) -> None:
    ingest_files([write_csv(tmp_path / "QQQ.csv", bars())], catalog)  # an existing catalog
    before = tree_hash(catalog)
    bad = edit_lines(write_csv(tmp_path / "SPY_1h.csv", bars()), edit)
    with pytest.raises(DataError) as err:
        ingest_files([bad], catalog)
    msg = str(err.value)
    assert f"SPY_1h.csv line {line}:" in msg
    assert value in msg
    assert kind in msg
    assert "--repair" in msg
    assert "nothing was written" in msg
    assert tree_hash(catalog) == before

    report = ingest_files([bad], catalog, repair=True)
    f = report.files[0]
    assert f.dropped == drops
    assert f.rows_written == f.rows_in_file - f.rows_dropped
    assert any(p.kind == kind for p in f.errors)
    if kind == "unsorted":
        assert f.resorted == 1
        assert any("sorted into time order" in r for r in f.repairs())
    else:
        assert any(r.startswith(f"{kind}: dropped") and f"line {line}" in r for r in f.repairs())
    got = read_frame(catalog, "SPY", "1-HOUR")
    assert got.index.is_monotonic_increasing
    assert len(got) == f.rows_written
    assert list_symbols(catalog, "1-HOUR") == ["QQQ", "SPY"]


def test_ibkr_bar_wins_over_an_overlapping_appended_row(tmp_path: Path, catalog: Path) -> None:
    lines = [*IBKR_LINES[:7], "2024-01-02 15:30:00-05:00,106,107,105,106.5,10", *IBKR_LINES[7:]]
    path = tmp_path / "SPY_1h.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest_files([path], catalog, repair=True)
    got = read_frame(catalog, "SPY", "1-HOUR")
    assert [et(t) for t in got.index[5:7]] == ["2024-01-02 15:00", "2024-01-02 16:00"]
    assert got["close"].iloc[6] == pytest.approx(106.5)
    assert got["volume"].iloc[6] == 1006


def test_two_daily_rows_for_one_session_overlap(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY.csv"
    path.write_text(HEADER + "\n2024-01-02,1,2,0.5,1.5,10\n2024-01-02 16:00:00-05:00,1,2,0.5,1.25,10\n2024-01-03,1,2,0.5,1.5,10\n")
    with pytest.raises(DataError, match=r"SPY.csv line 2: date '2024-01-02' \(session 2024-01-02\) overlaps the bar at line 3"):
        ingest_files([path], catalog, bar="1-DAY")
    report = ingest_files([path], catalog, bar="1-DAY", repair=True)
    assert report.files[0].dropped == {"overlap": [2]}
    assert read_frame(catalog, "SPY", "1-DAY")["close"].tolist() == [1.25, 1.5]


def test_duplicate_keeps_the_last_row(tmp_path: Path, catalog: Path) -> None:
    # line 4 is the 11:30 bar (close 102.5); a corrected copy is appended at the end
    path = edit_lines(write_csv(tmp_path / "SPY.csv", bars()), lambda ls: [*ls, ls[3].replace(",102.5,", ",102.75,")])
    report = ingest_files([path], catalog, repair=True)
    assert report.files[0].dropped == {"duplicate_time": [4]}
    got = read_frame(catalog, "SPY", "1-HOUR")
    assert got["close"].iloc[2] == pytest.approx(102.75)


def test_line_numbers_count_blank_lines(tmp_path: Path, catalog: Path) -> None:
    path = edit_lines(write_csv(tmp_path / "SPY.csv", bars()), lambda ls: [ls[0], ls[1], "", *ls[2:]])
    edit_lines(path, lambda ls: set_field(ls, 6, "close", "x"))
    with pytest.raises(DataError, match="SPY.csv line 6: close 'x' is not a number"):
        ingest_files([path], catalog)


def test_refusal_lists_a_sane_number_of_problems_with_the_total(tmp_path: Path, catalog: Path) -> None:
    path = write_csv(tmp_path / "SPY.csv", bars(days=("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08")))
    edit_lines(path, lambda ls: [ls[0], *[line.replace(",", ",-", 1) for line in ls[1:]]])
    with pytest.raises(DataError) as err:
        ingest_files([path], catalog)
    msg = str(err.value)
    assert "refused: 70 problem(s) in 1 file(s)" in msg  # open <= 0 and low > min(open, close), 35 rows
    assert len(msg.splitlines()) < 15
    assert "more nonpositive_price" in msg


def test_one_bad_file_writes_nothing(tmp_path: Path, catalog: Path) -> None:
    good = write_csv(tmp_path / "QQQ.csv", bars())
    bad = edit_lines(write_csv(tmp_path / "SPY.csv", bars()), lambda ls: set_field(ls, 3, "close", ""))
    with pytest.raises(DataError, match="SPY.csv line 3"):
        ingest_files([good, bad], catalog)
    assert not catalog.exists() or list_symbols(catalog, "1-HOUR") == []


def test_failed_write_leaves_catalog_unchanged(tmp_path: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_files([write_csv(tmp_path / "QQQ.csv", bars())], catalog)
    before = tree_hash(catalog)
    import engine.catalog as cat

    def boom(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(cat, "frame_to_bars", boom)
    with pytest.raises(RuntimeError):
        ingest_files([write_csv(tmp_path / "QQQ.csv", bars()), write_csv(tmp_path / "SPY.csv", bars())], catalog)
    assert tree_hash(catalog) == before


def test_bars_labelled_by_their_end_get_a_hint(tmp_path: Path, catalog: Path) -> None:
    frame = bars()
    frame.index = frame.index + pd.Timedelta(minutes=30)  # 10:00 ... 16:00: labelled by the end
    path = write_csv(tmp_path / "SPY.csv", frame)
    with pytest.raises(DataError, match="line 8: date '2024-01-02 16:00:00-05:00' .* labelled by their end"):
        ingest_files([path], catalog)


def test_header_only_file(tmp_path: Path, catalog: Path) -> None:
    path = tmp_path / "SPY.csv"
    path.write_text(HEADER + "\n")
    with pytest.raises(DataError, match="SPY.csv has a header but no data rows"):
        ingest_files([path], catalog)
    path.write_text("")
    with pytest.raises(DataError, match="SPY.csv: the file is empty"):
        ingest_files([path], catalog)


# ---- soft problems: warnings, never refused ----------------------------------------------


def test_gaps_zero_and_missing_volume_are_warnings(tmp_path: Path, catalog: Path) -> None:
    days = ("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05")
    frame = bars(days=days).drop(index=[pd.Timestamp(f"2024-01-03 {t}", tz=NY) for t in YF_TIMES])
    frame = frame.drop(index=pd.Timestamp("2024-01-04 12:30", tz=NY))
    path = write_csv(tmp_path / "SPY.csv", frame)
    edit_lines(path, lambda ls: set_field(set_field(ls, 3, "volume", "0"), 4, "volume", ""))
    report = ingest_files([path], catalog)
    f = report.files[0]
    kinds = {p.kind: p for p in f.warnings}
    assert set(kinds) == {"missing_session", "short_session", "zero_volume", "volume_missing"}
    assert kinds["missing_session"].value == "2024-01-03"
    assert str(kinds["short_session"]).startswith("SPY.csv line 9: '2024-01-04' has 6 of the 7 bars")
    assert str(kinds["zero_volume"]).startswith("SPY.csv line 3: volume '0'")
    assert f.rows_written == f.rows_in_file == 20
    assert read_frame(catalog, "SPY", "1-HOUR")["volume"].iloc[2] == 0.0


def test_unfinished_last_session_is_kept_or_dropped_with_repair(tmp_path: Path, catalog: Path) -> None:
    path = write_csv(tmp_path / "SPY.csv", bars().iloc[:-2])  # file ends at 13:30 on the last day
    report = ingest_files([path], catalog)
    warn = [p for p in report.warnings if p.kind == "partial_last_session"]
    assert len(warn) == 1
    assert "5 of 7 bars" in str(warn[0])
    assert "pass --repair" in str(warn[0])
    assert report.files[0].rows_written == 19
    report = ingest_files([path], catalog, repair=True)
    f = report.files[0]
    assert f.dropped == {"partial_last_session": [16, 17, 18, 19, 20]}
    assert f.rows_written == 14
    assert f.replaced
    assert et(read_frame(catalog, "SPY", "1-HOUR").index[-1]) == "2024-01-03 16:00"


# ---- arguments ---------------------------------------------------------------------------


def test_symbol_option(tmp_path: Path, spy: Path, catalog: Path) -> None:
    ingest_files([spy], catalog, symbol="SPX")
    assert list_symbols(catalog, "1-HOUR") == ["SPX"]
    other = write_csv(tmp_path / "QQQ.csv", bars())
    with pytest.raises(ConfigError, match="--symbol"):
        ingest_files([spy, other], catalog, symbol="SPX")


def test_two_files_one_symbol(tmp_path: Path, catalog: Path) -> None:
    (tmp_path / "a").mkdir()
    a = write_csv(tmp_path / "SPY_1h.csv", bars())
    b = write_csv(tmp_path / "a" / "SPY.csv", bars())
    with pytest.raises(DataError, match="symbol SPY is also given by"):
        ingest_files([a, b], catalog)


def test_catalog_must_be_a_catalog_or_new(spy: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a sigtrade catalog"):
        ingest_files([spy], odd)
    assert sorted(p.name for p in odd.iterdir()) == ["notes.txt"]


def test_missing_path_and_empty_dir(tmp_path: Path, catalog: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: no such file"):
        ingest_files([tmp_path / "nope.csv"], catalog)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .csv or .parquet files"):
        ingest_files([tmp_path / "empty"], catalog)


def test_reader_keeps_file_order_and_line_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "SPY.csv", bars())
    raw: RawBars = read_bars_file(path)
    assert raw.row_unit == "line"
    assert raw.row_numbers[0] == 2
    assert raw.row_numbers[-1] == 22
    assert raw.where(3) == "SPY.csv line 5"
    assert raw.starts[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")


# ---- the CLI -----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "ingest", "csv", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_ingests_and_refuses_without_traceback(tmp_path: Path, spy: Path, catalog: Path) -> None:
    ok = run_cli(str(spy), "--catalog", str(catalog))
    assert ok.returncode == 0, ok.stderr
    assert "ingested 1 file(s)" in ok.stdout
    assert "2024-01-02 10:30" in ok.stdout
    before = tree_hash(catalog)

    bad = edit_lines(write_csv(tmp_path / "QQQ_1h.csv", bars()), lambda ls: set_field(ls, 8, "high", "1"))
    listing = tmp_path / "problems.csv"
    refused = run_cli(str(bad), "--catalog", str(catalog), "--problems", str(listing))
    assert refused.returncode == 3
    assert "Traceback" not in refused.stderr + refused.stdout
    assert "QQQ_1h.csv line 8: high '1'" in refused.stderr
    assert "--repair" in refused.stderr
    assert tree_hash(catalog) == before
    problems = pd.read_csv(listing)
    assert problems[["kind", "unit", "row", "column"]].to_numpy().tolist() == [["high_below", "line", 8, "high"]]

    repaired = run_cli(str(bad), "--catalog", str(catalog), "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "high_below: dropped" in repaired.stdout
    assert "line 8" in repaired.stdout


def test_cli_user_mistakes_exit_non_zero_with_one_message(tmp_path: Path, catalog: Path) -> None:
    missing = run_cli(str(tmp_path / "nope.csv"), "--catalog", str(catalog))
    assert missing.returncode == 3
    assert "nope.csv: no such file" in missing.stderr
    no_catalog = run_cli(str(tmp_path / "nope.csv"))
    assert no_catalog.returncode == 2
    assert "--catalog DIR is required" in no_catalog.stderr
    for r in (missing, no_catalog):
        assert "Traceback" not in r.stderr + r.stdout
    assert not catalog.exists()
