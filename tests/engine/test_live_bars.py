"""Minute bars -> the strategy's bars, on the grid of Alpaca's REST bars (engine.adapters.alpaca.bars)."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.adapters.alpaca.bars import MinuteAggregator, bucket_of, warmup_start

NY = "America/New_York"


def t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=NY).tz_convert("UTC")


def ns(text: str) -> int:
    return int(t(text).value)


def test_hourly_buckets_follow_alpaca_rest_grid() -> None:
    # 09:30-09:59 belong to Alpaca's 09:00 hourly bar, whose start is outside the session: dropped, as ingest drops it
    assert bucket_of(t("2024-03-05 09:45"), 60) is None
    assert bucket_of(t("2024-03-05 10:00"), 60) == (ns("2024-03-05 10:00"), ns("2024-03-05 11:00"))
    assert bucket_of(t("2024-03-05 15:59"), 60) == (ns("2024-03-05 15:00"), ns("2024-03-05 16:00"))
    assert bucket_of(t("2024-03-05 16:05"), 60) is None  # after hours
    # early close (day after Thanksgiving 2024: 13:00): the 12:00 bar closes at 13:00, nothing after
    assert bucket_of(t("2024-11-29 12:30"), 60) == (ns("2024-11-29 12:00"), ns("2024-11-29 13:00"))
    assert bucket_of(t("2024-11-29 13:10"), 60) is None
    # 30-minute bars start at the open
    assert bucket_of(t("2024-03-05 09:31"), 30) == (ns("2024-03-05 09:30"), ns("2024-03-05 10:00"))
    # daily bars: the session
    assert bucket_of(t("2024-03-05 12:00"), 390) == (ns("2024-03-05 09:30"), ns("2024-03-05 16:00"))


def test_aggregates_emits_in_universe_order_and_deduplicates() -> None:
    agg = MinuteAggregator(["SPY", "AAPL", "MSFT"], "1-HOUR")
    assert agg.add("AAPL", t("2024-03-05 10:00"), 10, 11, 9, 10.5, 100) == []
    assert agg.add("SPY", t("2024-03-05 10:00"), 50, 51, 49, 50.5, 10) == []
    assert agg.add("SPY", t("2024-03-05 10:59"), 50.5, 52, 50, 51, 20) == []
    assert agg.add("SPY", t("2024-03-05 10:59"), 99, 99, 99, 99, 99) == []  # the same minute again: ignored
    assert agg.duplicates == 1
    out = agg.add("AAPL", t("2024-03-05 11:00"), 10.5, 10.6, 10.4, 10.5, 5)  # any symbol's next-hour minute closes the hour
    assert [(b.symbol, b.ts) for b in out] == [("SPY", ns("2024-03-05 11:00")), ("AAPL", ns("2024-03-05 11:00"))]
    spy = out[0]
    assert (spy.open, spy.high, spy.low, spy.close, spy.volume) == (50, 52, 49, 51, 30)
    # a late minute (MSFT's first, of an hour already emitted) is dropped, not merged into the next bar
    assert agg.add("MSFT", t("2024-03-05 10:30"), 1, 1, 1, 1, 1) == []
    assert agg.late == 1
    # an older minute than the symbol's last one counts as a duplicate
    assert agg.add("SPY", t("2024-03-05 10:30"), 1, 1, 1, 1, 1) == []
    assert agg.duplicates == 2


def test_warmup_bars_are_not_rebuilt_and_wall_clock_flush() -> None:
    agg = MinuteAggregator(["SPY"], "1-HOUR")
    agg.start_after(ns("2024-03-05 11:00"))
    assert agg.add("SPY", t("2024-03-05 10:45"), 1, 1, 1, 1, 1) == []
    assert agg.late == 1
    agg.add("SPY", t("2024-03-05 15:10"), 1, 2, 0.5, 1.5, 7)
    since = ns("2024-03-05 09:00")
    assert agg.flush_due(ns("2024-03-05 16:00:04"), 5_000_000_000, since) == []  # not yet: close + 5 s
    out = agg.flush_due(ns("2024-03-05 16:00:05"), 5_000_000_000, since)
    assert [(b.ts, b.volume) for b in out] == [(ns("2024-03-05 16:00"), 7)]
    # a bucket that closed before the session started is never flushed by the clock (REST has it)
    agg.add("SPY", t("2024-03-06 10:10"), 1, 1, 1, 1, 1)
    assert agg.flush_due(ns("2024-03-07 12:00"), 0, ns("2024-03-07 00:00")) == []


def test_warmup_start_covers_enough_sessions() -> None:
    end = t("2024-03-05 12:00")
    start = warmup_start(end, "1-HOUR", 60)
    assert start < end - pd.Timedelta(days=10)


@pytest.mark.parametrize("bar", ["1-HOUR", "15-MINUTE", "1-DAY"])
def test_every_minute_of_a_session_lands_in_one_bar(bar: str) -> None:
    agg = MinuteAggregator(["X"], bar)
    minutes = pd.date_range(t("2024-03-05 09:30"), t("2024-03-05 15:59"), freq="1min")
    out = []
    for m in minutes:
        out += agg.add("X", m, 1, 1, 1, 1, 1)
    out += agg.add("X", t("2024-03-06 09:30"), 1, 1, 1, 1, 1)
    kept = sum(b.volume for b in out)
    expected = {"1-HOUR": 360, "15-MINUTE": 390, "1-DAY": 390}[bar]  # hourly: 09:30-09:59 is Alpaca's dropped 09:00 bar
    assert kept == expected


def test_a_record_continued_by_a_restart_is_read_whole(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each session appends bars.jsonl and rewrites bars.parquet at a clean exit; replay reads every session's bars."""
    import json

    from engine.replay import finish_record, read_bars

    def append(ts: int, close: float) -> None:
        with (tmp_path / "bars.jsonl").open("a") as fh:
            fh.write(json.dumps({"symbol": "SPY", "ts": ts, "open": 1, "high": 2, "low": 0.5, "close": close,
                                 "volume": 10, "live": True}) + "\n")

    append(1, 1.0)
    finish_record(tmp_path)  # first session ends cleanly
    append(1, 9.0)  # the restarted session's warm-up repeats a bar: the first recorded one is kept
    append(2, 2.0)
    with (tmp_path / "bars.jsonl").open("a") as fh:
        fh.write('{"symbol": "SPY", "ts": 3, "op')  # a line cut short by a kill
    assert read_bars(tmp_path)[["ts", "close"]].values.tolist() == [[1, 1.0], [2, 2.0]]
    finish_record(tmp_path)
    assert pd.read_parquet(tmp_path / "bars.parquet")[["ts", "close"]].values.tolist() == [[1, 1.0], [2, 2.0]]
