"""The embedded SYNTHETIC sample: deterministic, on the NYSE calendar, with real stylised facts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.catalog import list_symbols, read_frame, read_index
from engine.errors import ConfigError, DataError
from engine.sample import (
    BENCHMARK,
    SampleSpec,
    generate_sample,
    is_current,
    stored_spec,
    write_sample,
)
from engine.sessions import schedule, session_of

ROOT = Path(__file__).resolve().parents[2]
SMALL = SampleSpec(seed=3, n_symbols=4, start="2024-11-01", end="2024-12-31")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """The default sample (24 symbols, 2023-2025 hourly)."""
    return generate_sample(SampleSpec())


@pytest.fixture(scope="module")
def hourly_returns(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Close-to-close log returns of every bar (the overnight gap is in each day's first bar)."""
    closes = pd.DataFrame({s: f["close"] for s, f in frames.items()})
    return np.log(closes).diff().dropna()


@pytest.fixture(scope="module")
def daily_returns(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Close-to-close log returns of each session."""
    closes = pd.DataFrame({s: f["close"] for s, f in frames.items()})
    sessions = session_of(closes.index, side="right")
    return np.log(closes.groupby(sessions).last()).diff().dropna()


def _acf1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.dot(x[1:], x[:-1]) / np.dot(x, x))


def _excess_kurtosis(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.mean(x**4) / np.mean(x**2) ** 2 - 3.0)


# --- determinism ---------------------------------------------------------------------------


def test_same_spec_gives_bit_identical_frames(frames: dict[str, pd.DataFrame]) -> None:
    again = generate_sample(SampleSpec())
    assert list(again) == list(frames)
    for symbol, frame in frames.items():
        pd.testing.assert_frame_equal(again[symbol], frame, check_exact=True)


def test_another_seed_gives_other_prices() -> None:
    a = generate_sample(SMALL)
    b = generate_sample(SampleSpec(seed=4, n_symbols=4, start=SMALL.start, end=SMALL.end))
    assert not np.array_equal(a["SYN01"]["close"].to_numpy(), b["SYN01"]["close"].to_numpy())


def test_catalog_bars_identical_across_two_writes(tmp_path: Path) -> None:
    write_sample(tmp_path / "a", SMALL)
    write_sample(tmp_path / "b", SMALL)
    expected = generate_sample(SMALL)
    for symbol in SMALL.symbols:
        a = read_frame(tmp_path / "a", symbol, SMALL.bar)
        b = read_frame(tmp_path / "b", symbol, SMALL.bar)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        # and they are the generated bars (up to the catalog's fixed-point decoding)
        assert a.index.equals(expected[symbol].index)
        np.testing.assert_allclose(a.to_numpy(), expected[symbol].to_numpy(), rtol=0, atol=1e-6)


# --- universe and calendar -----------------------------------------------------------------


def test_universe_is_large_enough_and_long_enough(frames: dict[str, pd.DataFrame]) -> None:
    assert len(frames) >= 20
    assert list(frames)[0] == BENCHMARK
    assert all(s.startswith("SYN") for s in list(frames)[1:])
    spy = frames[BENCHMARK]
    assert spy.index[-1] - spy.index[0] >= pd.Timedelta(days=2 * 365)
    index = spy.index
    for frame in frames.values():
        assert frame.index.equals(index)
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
        assert frame.dtypes.eq(np.float64).all()


def test_every_bar_closes_inside_a_real_nyse_session(frames: dict[str, pd.DataFrame]) -> None:
    index = frames[BENCHMARK].index
    assert str(index.tz) == "UTC"
    assert index.is_monotonic_increasing
    assert not index.has_duplicates
    sessions = session_of(index, side="right")
    assert not sessions.isna().any()
    sched = schedule(SampleSpec().start, SampleSpec().end)
    assert set(sessions) == set(sched.index)  # every session present, no extra day
    # bars are aligned on the open: each close is open + k hours, or the session's close
    opens = pd.DatetimeIndex(sched["open"].reindex(sessions)).asi8
    closes = pd.DatetimeIndex(sched["close"].reindex(sessions)).asi8
    on_the_hour = (index.asi8 - opens) % 3_600_000_000_000 == 0
    assert np.all(on_the_hour | (index.asi8 == closes))
    per_session = pd.Series(1, index=sessions).groupby(level=0).sum()
    assert per_session.max() == 7  # 09:30-10:30, ..., 14:30-15:30, 15:30-16:00
    # the first bar of every session closes at 10:30 New York time, across DST changes
    first = pd.Series(index, index=sessions).groupby(level=0).first()
    local = pd.DatetimeIndex(first).tz_convert("America/New_York")
    assert set(local.strftime("%H:%M")) == {"10:30"}


def test_early_close_and_holiday(frames: dict[str, pd.DataFrame]) -> None:
    index = frames[BENCHMARK].index
    day_after_thanksgiving = index[index.normalize() == pd.Timestamp("2024-11-29", tz="UTC")]
    assert day_after_thanksgiving[-1] == pd.Timestamp("2024-11-29 18:00", tz="UTC")
    assert len(day_after_thanksgiving) == 4  # 09:30-10:30, ..., 12:30-13:00 New York
    assert not (index.normalize() == pd.Timestamp("2024-07-04", tz="UTC")).any()
    july_3 = index[index.normalize() == pd.Timestamp("2024-07-03", tz="UTC")]
    assert july_3[-1] == pd.Timestamp("2024-07-03 17:00", tz="UTC")


# --- bars a backtest can trust -------------------------------------------------------------


def test_ohlc_consistent_positive_and_rounded(frames: dict[str, pd.DataFrame]) -> None:
    for symbol, f in frames.items():
        body_hi = np.maximum(f["open"], f["close"])
        body_lo = np.minimum(f["open"], f["close"])
        assert (f["high"] >= body_hi).all(), symbol
        assert (f["low"] <= body_lo).all(), symbol
        assert (f["low"] > 0).all(), symbol
        assert (f["volume"] >= 1).all(), symbol
        assert (f["volume"] == np.round(f["volume"])).all(), symbol
        prices = f[["open", "high", "low", "close"]].to_numpy()
        np.testing.assert_array_equal(prices, np.round(prices, 4))
        assert (f["high"] > f["low"]).mean() > 0.99, symbol  # bars have a range


def test_bars_open_at_previous_close_except_at_the_session_open(
    frames: dict[str, pd.DataFrame],
) -> None:
    f = frames["SYN01"]
    sessions = session_of(f.index, side="right")
    same_session = sessions[1:] == sessions[:-1]
    prev_close = f["close"].to_numpy()[:-1]
    opens = f["open"].to_numpy()[1:]
    assert np.array_equal(opens[same_session], prev_close[same_session])
    gaps = opens[~same_session] != prev_close[~same_session]
    assert gaps.mean() > 0.95  # an overnight gap at (almost) every open


# --- stylised facts ------------------------------------------------------------------------


def test_fat_tails(hourly_returns: pd.DataFrame, daily_returns: pd.DataFrame) -> None:
    kurt = hourly_returns.apply(lambda c: _excess_kurtosis(c.to_numpy()))
    assert (kurt > 1.0).all(), kurt.round(2).to_dict()
    assert kurt.median() > 3.0
    daily_kurt = _excess_kurtosis(daily_returns[BENCHMARK].to_numpy())
    assert daily_kurt > 1.0


def test_volatility_clustering_without_return_autocorrelation(
    hourly_returns: pd.DataFrame,
) -> None:
    acf_r = hourly_returns.apply(lambda c: _acf1(c.to_numpy()))
    acf_abs = hourly_returns.apply(lambda c: _acf1(np.abs(c.to_numpy())))
    assert (acf_r.abs() < 0.1).all(), acf_r.round(3).to_dict()
    assert acf_r.abs().median() < 0.05
    assert (acf_abs > 0.04).all(), acf_abs.round(3).to_dict()
    assert acf_abs.median() > 0.08  # ~0 without GARCH; real hourly equities 0.1-0.25
    assert (acf_abs > acf_r.abs()).mean() > 0.9


def test_common_market_factor(daily_returns: pd.DataFrame) -> None:
    corr = daily_returns.corr().to_numpy()
    n = len(corr)
    mean_pairwise = (corr.sum() - n) / (n * n - n)
    assert mean_pairwise > 0.2
    equal_weight = daily_returns.drop(columns=BENCHMARK).mean(axis=1)
    assert np.corrcoef(daily_returns[BENCHMARK], equal_weight)[0, 1] > 0.8


def test_benchmark_looks_like_an_index(
    daily_returns: pd.DataFrame, frames: dict[str, pd.DataFrame]
) -> None:
    vols = daily_returns.std() * np.sqrt(252)
    assert 0.08 < vols[BENCHMARK] < 0.30
    assert vols[BENCHMARK] < vols.drop(BENCHMARK).median()  # diversified: calmer than a stock
    spy = frames[BENCHMARK]
    assert spy["close"].iloc[-1] > 0.3 * spy["close"].iloc[0]


def test_volume_u_shape_and_reaction_to_moves(frames: dict[str, pd.DataFrame]) -> None:
    f = frames["SYN02"]
    local = f.index.tz_convert("America/New_York").strftime("%H:%M")
    per_hour = f["volume"].groupby(local).mean()
    assert per_hour["10:30"] > per_hour["13:30"] < per_hour["15:30"]
    abs_ret = np.abs(np.log(f["close"] / f["open"]))
    assert np.corrcoef(abs_ret, f["volume"])[0, 1] > 0.2


# --- catalog and CLI -----------------------------------------------------------------------


def test_catalog_is_labelled_synthetic_and_records_the_spec(tmp_path: Path) -> None:
    cat = tmp_path / "sample"
    assert write_sample(cat, SMALL) is True
    index = read_index(cat)
    assert index.synthetic is True
    assert "SYNTHETIC" in index.note
    assert all("synthetic" in info["source"] for info in index.symbols.values())
    assert stored_spec(cat) == SMALL
    assert is_current(cat, SMALL)
    assert write_sample(cat, SMALL) is False  # idempotent
    assert write_sample(cat, SMALL, force=True) is True


def test_changed_spec_replaces_the_whole_sample(tmp_path: Path) -> None:
    cat = tmp_path / "sample"
    write_sample(cat, SMALL)
    smaller = SampleSpec(seed=3, n_symbols=2, start=SMALL.start, end=SMALL.end)
    assert not is_current(cat, smaller)
    assert write_sample(cat, smaller) is True
    assert list_symbols(cat, smaller.bar) == ["SPY", "SYN01"]  # no stale SYN02, SYN03
    assert sorted(read_index(cat).symbols) == ["SPY", "SYN01"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no leftovers


def test_refuses_to_replace_a_directory_it_did_not_write(tmp_path: Path) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(DataError, match="not a sample catalog"):
        write_sample(tmp_path, SMALL)
    assert keep.read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_symbols": 0}, "symbol count"),
        ({"start": "2025-01-01", "end": "2024-01-01"}, "before its start"),
        ({"start": "yesterday-ish"}, "start date"),
        ({"start": "2024-07-06", "end": "2024-07-07"}, "no NYSE session"),
        ({"bar": "1-DAY"}, "N-MINUTE or N-HOUR"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_spec_is_a_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SampleSpec(**kwargs)  # type: ignore[arg-type]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "sample", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_cli_writes_once_then_is_idempotent(tmp_path: Path) -> None:
    cat = tmp_path / "sample"
    first = _cli("--catalog", str(cat))
    assert first.returncode == 0, first.stderr
    assert "synthetic" in first.stdout.lower()
    assert read_index(cat).synthetic
    assert len(list_symbols(cat, "1-HOUR")) == SampleSpec().n_symbols
    stamp = (cat / "sigtrade.json").stat().st_mtime_ns
    second = _cli("--catalog", str(cat))
    assert second.returncode == 0, second.stderr
    assert "already up to date" in " ".join(second.stdout.split())
    assert "synthetic" in second.stdout.lower()
    assert (cat / "sigtrade.json").stat().st_mtime_ns == stamp  # nothing rewritten


def test_cli_rejects_bad_arguments_without_a_traceback(tmp_path: Path) -> None:
    bad = _cli("--catalog", str(tmp_path / "x"), "--symbols", "0")
    assert bad.returncode == ConfigError.exit_code
    assert "symbol count" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()


def test_cli_defaults_are_the_spec_defaults() -> None:
    """`sigtrade sample` keeps its defaults literal (for a fast --help); they must equal SampleSpec()'s."""
    from engine.cli import sample_cmd
    from engine.sample import BENCHMARK, SampleSpec

    spec = SampleSpec()
    assert sample_cmd.DEFAULTS == {k: getattr(spec, k) for k in sample_cmd.DEFAULTS}
    assert sample_cmd.BENCHMARK == BENCHMARK
