"""The one feature pipeline: batch == streaming bit for bit, causal, warm-up, errors.

Real bars come from ``../shared/data/equities/hourly/market-base`` (read here with plain
pandas, indexed by the vendor's bar-start labels: the features do not depend on the
labelling, only on the bar order and the New York date of each label).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.errors import FeatureSetError, ModelContractError, ModelDataError
from models.features import (
    FEATURE_SET,
    FeatureSetSpec,
    StreamingFeatures,
    UniverseFeatures,
    check_history,
    compute_features,
    feature_matrix,
    get_feature_set,
    scale,
    warmup_bars,
)
from models.streaming import talib_agrees

OHLCV = ["open", "high", "low", "close", "volume"]
IBKR_FILE = "AAPL_1h.csv"  # IBKR bars (+ yfinance tail)
YF_FILE = "INTC_1h.csv"  # yfinance bars, 11 zero-volume bars
WARMUP = 49


def read_bars(path: Path) -> pd.DataFrame:
    """A vendor CSV as a frame: UTC index, sorted, duplicate timestamps dropped."""
    raw = pd.read_csv(path)
    time_col = next(c for c in ("date", "datetime", "timestamp") if c in raw.columns)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop(time_col), utc=True, format="mixed"))
    raw = raw.sort_index()
    frame = raw.loc[~raw.index.duplicated(keep="first"), OHLCV].astype(np.float64)
    frame.attrs["symbol"] = path.name.split("_")[0]
    return frame


def synthetic_bars(n: int, seed: int = 7) -> pd.DataFrame:
    """Random-walk hourly bars on weekdays (for tests that need no real data)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-02 15:30", periods=n * 3, freq="h", tz="UTC")
    index = index[index.dayofweek < 5][:n]
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.005, n)) * close
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(0, 5_000, n).astype(np.float64),
        },
        index=index,
    )


def stream(frame: pd.DataFrame, sentiment: np.ndarray | None = None) -> np.ndarray:
    """Feed *frame* bar by bar through :class:`StreamingFeatures`; stack the rows."""
    sf = StreamingFeatures()
    ts = frame.index.asi8
    bars = frame[OHLCV].to_numpy()
    sent = np.zeros(len(frame)) if sentiment is None else sentiment
    return np.vstack(
        [sf.update(int(ts[i]), *bars[i], sentiment=sent[i]) for i in range(len(frame))]
    )


@pytest.fixture(scope="module")
def ibkr(hourly_dir: Path) -> pd.DataFrame:
    return read_bars(hourly_dir / IBKR_FILE).iloc[:3000]


@pytest.fixture(scope="module")
def yfin(hourly_dir: Path) -> pd.DataFrame:
    frame = read_bars(hourly_dir / YF_FILE)
    assert (frame["volume"] == 0).sum() > 0, "the yfinance file should carry zero-volume bars"
    return frame


@pytest.fixture(params=["ibkr", "yfin"])
def real(request: pytest.FixtureRequest) -> pd.DataFrame:
    return request.getfixturevalue(request.param)


# ---------------------------------------------------------------- the feature set


def test_feature_set_is_seed14_v1_with_sentiment_last() -> None:
    assert (FEATURE_SET.name, FEATURE_SET.version) == ("seed14", "1")
    assert FEATURE_SET.features[:14] == (
        "sma_dist_20", "ema_dist_50", "rsi_14", "macd", "macd_signal", "macd_hist",
        "bb_pctb_20", "bb_width_20", "atr_pct_14", "adx_14", "stoch_k", "stoch_d",
        "obv_change", "volume_z_20",
    )  # fmt: skip
    assert FEATURE_SET.features[14:] == (
        "log_ret_1",
        "log_ret_5",
        "dow_sin",
        "dow_cos",
        "sentiment",
    )
    assert get_feature_set("seed14", "1") is FEATURE_SET


def test_features_are_scale_free(ibkr: pd.DataFrame) -> None:
    """One model serves many symbols: the price level does not enter any feature."""
    base = compute_features(ibkr)
    for factor in (4.0, 37.0):
        scaled_bars = ibkr.copy()
        scaled_bars[["open", "high", "low", "close"]] *= factor
        scaled = compute_features(scaled_bars)
        if factor == 4.0:  # a power of two scales every float exactly: bit-identical
            pd.testing.assert_frame_equal(scaled, base, check_exact=True)
        else:  # rounding may break exact ties of +DM/-DM, which ADX resolves discontinuously
            cols = [c for c in FEATURE_SET.features if c != "adx_14"]
            np.testing.assert_allclose(scaled[cols], base[cols], rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- batch == streaming


def test_streaming_is_bit_identical_to_batch(real: pd.DataFrame) -> None:
    assert len(real) >= 1500
    batch = compute_features(real).to_numpy()
    rows = stream(real)
    np.testing.assert_array_equal(rows, batch)  # NaN positions must match too
    assert np.isnan(rows[:WARMUP]).any(axis=1).all()
    assert np.isfinite(rows[WARMUP:]).all()


def _by_bar_time(frames: dict[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every bar of every frame as (ts, symbol row, OHLCV), in (bar time, universe) order."""
    ts = np.concatenate([f.index.asi8 for f in frames.values()])
    rows = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames.values())])
    bars = np.vstack([f[OHLCV].to_numpy() for f in frames.values()])
    order = np.lexsort((rows, ts))
    return ts[order], rows[order], bars[order]


def test_universe_steps_equal_batch_on_every_real_file_at_every_bar(hourly_dir: Path) -> None:
    """The whole real hourly universe, one kernel call per bar time: TA-Lib's values bit for bit.

    The IBKR and yfinance files bar at different minutes, so most bar times step a part
    of the universe; histories run to 8,476 bars.
    """
    frames = {p.name.split("_")[0]: read_bars(p) for p in sorted(hourly_dir.glob("*_1h.csv"))}
    assert len(frames) >= 30
    universe = UniverseFeatures(list(frames))
    ts, rows, bars = _by_bar_time(frames)
    got = {s: np.empty((len(f), FEATURE_SET.n_features)) for s, f in frames.items()}
    names = list(frames)
    filled = dict.fromkeys(names, 0)
    cuts = np.flatnonzero(np.diff(ts)) + 1
    steps = 0
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ts)], strict=True):
        out = universe.step(int(ts[lo]), bars[lo:hi], rows[lo:hi])
        steps += 1
        for j, r in enumerate(rows[lo:hi]):
            s = names[r]
            got[s][filled[s]] = out[j]
            filled[s] += 1
    assert steps > 10_000 and max(len(f) for f in frames.values()) > 8_000
    for s, f in frames.items():
        np.testing.assert_array_equal(got[s], compute_features(f).to_numpy(), err_msg=s)
    assert (universe.n_bars == [len(f) for f in frames.values()]).all()
    assert talib_agrees() == (True, 0.0)


def test_a_long_history_stays_exact_in_constant_memory() -> None:
    """50,000 bars (flat stretches, zero volume, large and tiny prices): exact at every bar; state size fixed."""
    rng = np.random.default_rng(11)
    parts = []
    for seed, (level, vol) in enumerate([(100.0, 0.01), (40_000.0, 0.002), (0.05, 0.03), (3.0, 0.02)]):
        frame = synthetic_bars(12_500, seed=seed + 20)
        factor = level * np.exp(np.cumsum(rng.normal(0.0, vol, 12_500))) / frame["close"].to_numpy()
        frame[["open", "high", "low", "close"]] = frame[["open", "high", "low", "close"]].mul(factor, axis=0)
        frame.iloc[200:240, :4] = frame["close"].iloc[200]  # flat: the variance's zero tests
        frame.iloc[200:240, 4] = 0.0
        parts.append(frame)
    frame = pd.concat(parts)
    frame.index = pd.date_range("2010-01-04 15:00", periods=len(frame), freq="h", tz="UTC")
    universe = UniverseFeatures(["X"])
    sizes = []
    ts, bars = frame.index.asi8, frame[OHLCV].to_numpy()
    got = np.empty((len(frame), FEATURE_SET.n_features))
    row = np.zeros(1, dtype=np.intp)
    for i in range(len(frame)):
        got[i] = universe.step(int(ts[i]), bars[i : i + 1], row)[0]
        if i in (499, 49_999):
            sizes.append(len(universe.state()))
    np.testing.assert_array_equal(got, compute_features(frame).to_numpy())
    assert sizes[0] == sizes[1]


def test_streaming_ready_flips_exactly_after_warmup() -> None:
    frame = synthetic_bars(80)
    sf = StreamingFeatures()
    ready = []
    for ts, bar in zip(frame.index.asi8, frame[OHLCV].to_numpy(), strict=True):
        row = sf.update(int(ts), *bar)
        ready.append(sf.ready)
        assert sf.ready == bool(np.isfinite(row).all())
    assert ready.index(True) == warmup_bars()
    assert all(ready[warmup_bars() :])
    assert sf.n_bars == 80


def test_saved_state_resumes_exactly_where_it_stopped(ibkr: pd.DataFrame, yfin: pd.DataFrame) -> None:
    """Stop anywhere (in the warm-up, in a window's first bars, deep in the history), save, restore, continue."""
    frames = {"AAPL": ibkr, "INTC": yfin.iloc[:3000]}
    want = {s: compute_features(f).to_numpy() for s, f in frames.items()}
    bars = {s: f[OHLCV].to_numpy() for s, f in frames.items()}
    stamps = {s: f.index.asi8 for s, f in frames.items()}
    for cut in (7, 33, 1234, 2999):
        u = UniverseFeatures(list(frames))
        for i in range(cut):
            for r, s in enumerate(frames):
                u.step(int(stamps[s][i]), bars[s][i : i + 1], [r])
        blob = u.state()
        resumed = UniverseFeatures.from_state(blob)
        assert resumed.symbols == ["AAPL", "INTC"]
        # restore by name into a universe of another order with an extra symbol
        other = UniverseFeatures(["SPY", "INTC", "AAPL"])
        assert other.restore(blob) == ["AAPL", "INTC"]
        for i in range(cut, 3000):
            for s in frames:
                bar = bars[s][i : i + 1]
                a = resumed.step(int(stamps[s][i]), bar, resumed.rows([s]))[0]
                b = other.step(int(stamps[s][i]), bar, other.rows([s]))[0]
                np.testing.assert_array_equal(a, want[s][i], err_msg=f"{s} bar {i} after a cut at {cut}")
                np.testing.assert_array_equal(b, want[s][i])
        assert other.n_bars[0] == 0  # SPY was not in the state
    single = StreamingFeatures()
    for i in range(100):
        single.update(int(stamps["AAPL"][i]), *bars["AAPL"][i])
    again = StreamingFeatures.from_state(single.state())
    assert again.n_bars == 100 and again.ready
    np.testing.assert_array_equal(again.update(int(stamps["AAPL"][100]), *bars["AAPL"][100]), want["AAPL"][100])


def test_a_bad_state_is_refused_with_what_to_do() -> None:
    u = UniverseFeatures(["A"])
    with pytest.raises(ModelContractError, match="not readable.*delete the state file"):
        u.restore(b"not a state")
    import msgspec

    blob = msgspec.msgpack.decode(u.state())
    for field, value, match in (
        ("version", 99, "version 99, this sigtrade reads 'sigtrade.features' version 1"),
        ("feature_set", "seed14@2", "feature set seed14@2"),
        ("ring", b"\0" * 8, "truncated or corrupt \\(ring"),
    ):
        with pytest.raises(ModelContractError, match=match):
            u.restore(msgspec.msgpack.encode({**blob, field: value}))


def test_a_universe_step_refuses_bad_bars_and_adds_none() -> None:
    u = UniverseFeatures(["A", "B"])
    good = np.array([[10.0, 11.0, 9.0, 10.5, 100.0], [20.0, 21.0, 19.0, 20.5, 50.0]])
    u.step(1_000, good)
    bad_low = good.copy()
    bad_low[0, 2] = -1.0
    bad_volume = good.copy()
    bad_volume[1, 4] = np.inf
    for ts, bars, rows, match in (
        (2_000, good, [0, 0], "symbol A appears twice"),
        (np.array([2_000, 1_000]), good, None, "B: bar at .* does not come after"),
        (2_000, bad_low, None, "A: bar at .* has low=-1.0: expected a finite price > 0"),
        (2_000, bad_volume, None, "B: bar at .* has volume=inf"),
    ):
        with pytest.raises(ModelDataError, match=match):
            u.step(ts, bars, rows)
    with pytest.raises(ModelDataError, match="sentiment=inf"):
        u.step(2_000, good, sentiment=np.array([0.0, np.inf]))
    with pytest.raises(ModelContractError, match="not in this feature stream"):
        u.rows(["C"])
    assert (u.n_bars == [1, 1]).all()


# ---------------------------------------------------------------- causality


def test_prefix_equals_full_history_at_random_cut_points(real: pd.DataFrame) -> None:
    full = compute_features(real).to_numpy()
    rng = np.random.default_rng(20240611)
    cuts = rng.choice(np.arange(WARMUP, len(real) - 1), size=12, replace=False)
    for t in cuts:
        prefix = compute_features(real.iloc[: t + 1]).to_numpy()
        np.testing.assert_array_equal(prefix[-1], full[t], err_msg=f"cut at bar {t}")
        np.testing.assert_array_equal(prefix, full[: t + 1], err_msg=f"cut at bar {t}")


def test_poisoning_the_future_changes_no_past_row(real: pd.DataFrame) -> None:
    full = compute_features(real).to_numpy()
    rng = np.random.default_rng(3)
    for t in (WARMUP, 700, len(real) - 2):
        poisoned = real.copy()
        n_after = len(real) - t - 1
        garbage = rng.uniform(1.0, 1e6, size=(n_after, 5))
        poisoned.iloc[t + 1 :, :] = garbage
        out = compute_features(poisoned).to_numpy()
        np.testing.assert_array_equal(out[: t + 1], full[: t + 1], err_msg=f"cut at bar {t}")
        assert not np.array_equal(out[t + 1 :], full[t + 1 :], equal_nan=True)


# ---------------------------------------------------------------- warm-up and finiteness


def test_warmup_constant_is_the_measured_leading_nan_count(real: pd.DataFrame) -> None:
    feats = compute_features(real).to_numpy()
    any_nan = np.isnan(feats).any(axis=1)
    measured = int(np.argmin(any_nan))
    assert measured == warmup_bars() == WARMUP
    assert any_nan[:measured].all()
    assert np.isfinite(feats[measured:]).all()


def test_history_of_exactly_warmup_bars_is_all_nan_one_more_is_finite() -> None:
    short = compute_features(synthetic_bars(WARMUP))
    assert short.shape == (WARMUP, FEATURE_SET.n_features)
    assert short.isna().any(axis=1).all()
    enough = compute_features(synthetic_bars(WARMUP + 1)).to_numpy()
    assert np.isfinite(enough[-1]).all()
    three = compute_features(synthetic_bars(3))
    assert three.drop(columns=["log_ret_1", "dow_sin", "dow_cos", "sentiment"]).isna().all().all()
    assert three["log_ret_1"].iloc[1:].notna().all()


def test_every_real_hourly_file_is_finite_after_warmup(hourly_dir: Path) -> None:
    """Zero-volume yfinance bars and flat stretches must not produce inf or NaN."""
    files = sorted(hourly_dir.glob("*_1h.csv"))
    assert len(files) >= 20
    zero_volume_bars = 0
    for path in files:
        frame = read_bars(path)
        zero_volume_bars += int((frame["volume"] == 0).sum())
        feats = compute_features(frame).to_numpy()
        bad = ~np.isfinite(feats[WARMUP:])
        assert not bad.any(), f"{path.name}: non-finite {np.argwhere(bad)[:3] + [WARMUP, 0]}"
        assert np.isnan(feats[:WARMUP]).any(axis=1).all(), path.name
    assert zero_volume_bars > 0


def test_flat_prices_and_zero_volume_stay_finite() -> None:
    index = pd.date_range("2024-01-02 15:30", periods=120, freq="h", tz="UTC")
    flat = pd.DataFrame(dict.fromkeys(["open", "high", "low", "close"], 50.0), index=index)
    flat["volume"] = 0.0
    feats = compute_features(flat)
    assert np.isfinite(feats.iloc[WARMUP:].to_numpy()).all()
    assert (feats["bb_pctb_20"].iloc[WARMUP:] == 0.5).all()
    assert (feats["volume_z_20"].iloc[WARMUP:] == 0.0).all()
    assert (feats["obv_change"].iloc[WARMUP:] == 0.0).all()


def test_day_of_week_uses_the_new_york_date() -> None:
    frame = synthetic_bars(2)
    # Friday 15:00 ET, and Sunday 21:00 ET (already Monday in UTC)
    frame.index = pd.DatetimeIndex(["2024-03-08 20:00", "2024-03-11 01:00"], tz="UTC")
    feats = compute_features(frame)
    fri, sun = 4, 6
    assert feats["dow_sin"].tolist() == pytest.approx(
        [np.sin(2 * np.pi * fri / 5), np.sin(2 * np.pi * sun / 5)]
    )
    assert feats["dow_cos"].tolist() == pytest.approx(
        [np.cos(2 * np.pi * fri / 5), np.cos(2 * np.pi * sun / 5)]
    )
    np.testing.assert_array_equal(stream(frame), feats.to_numpy())


# ---------------------------------------------------------------- sentiment


def test_sentiment_is_neutral_when_absent(ibkr: pd.DataFrame) -> None:
    feats = compute_features(ibkr.iloc[:300])
    assert (feats["sentiment"] == 0.0).all()


def test_sentiment_is_aligned_on_bar_times_and_streams_identically(ibkr: pd.DataFrame) -> None:
    frame = ibkr.iloc[:300]
    idx = frame.index
    given = pd.Series(
        [0.8, -0.5, np.nan, 0.3],
        index=pd.DatetimeIndex([idx[10], idx[120], idx[121], idx[0] - pd.Timedelta(days=3)]),
    ).tz_convert("America/New_York")  # same instants in another zone still align
    feats = compute_features(frame, sentiment=given)
    expected = np.zeros(len(frame))
    expected[10], expected[120] = 0.8, -0.5
    np.testing.assert_array_equal(feats["sentiment"].to_numpy(), expected)
    other = feats.drop(columns="sentiment")
    pd.testing.assert_frame_equal(other, compute_features(frame).drop(columns="sentiment"))
    np.testing.assert_array_equal(stream(frame, sentiment=expected), feats.to_numpy())


# ---------------------------------------------------------------- contract errors


def test_a_card_naming_another_version_is_refused() -> None:
    with pytest.raises(FeatureSetError, match=r"seed14@2.*available: seed14@1"):
        get_feature_set("seed14", "2")
    with pytest.raises(FeatureSetError, match=r"seed15@1"):
        get_feature_set("seed15", "1")
    other = FeatureSetSpec(name="seed14", version="2", features=FEATURE_SET.features)
    with pytest.raises(FeatureSetError):
        compute_features(synthetic_bars(60), feature_set=other)
    with pytest.raises(FeatureSetError):
        StreamingFeatures(feature_set=other)
    with pytest.raises(FeatureSetError):
        warmup_bars(other)
    reordered = FeatureSetSpec("seed14", "1", FEATURE_SET.features[::-1])
    with pytest.raises(FeatureSetError, match="new version"):
        compute_features(synthetic_bars(60), feature_set=reordered)
    assert FeatureSetError("x").exit_code == 4


def test_missing_column_is_named() -> None:
    frame = synthetic_bars(60).drop(columns="volume")
    frame.attrs["symbol"] = "AAPL"
    with pytest.raises(
        ModelDataError, match=r"frame for AAPL lacks column 'volume'.*sigtrade ingest"
    ):
        compute_features(frame)


def test_short_history_for_a_lookback_is_refused_with_the_numbers() -> None:
    assert check_history(WARMUP + 20, lookback=20) == WARMUP + 20
    with pytest.raises(
        ModelDataError, match=r"at least 69 bars \(feature warm-up 49 \+ lookback 20\), got 68"
    ):
        check_history(68, lookback=20)
    with pytest.raises(ModelContractError, match="lookback"):
        check_history(500, lookback=0)


def test_non_finite_price_names_the_first_bad_row() -> None:
    frame = synthetic_bars(60)
    frame.iloc[33, frame.columns.get_loc("close")] = np.nan
    frame.iloc[40, frame.columns.get_loc("high")] = np.inf
    with pytest.raises(ModelDataError, match=re.escape(f"close=nan at row 33 ({frame.index[33]})")):
        compute_features(frame)


def test_bad_index_is_refused() -> None:
    frame = synthetic_bars(60)
    with pytest.raises(ModelDataError, match="tz-aware"):
        compute_features(frame.tz_localize(None))
    with pytest.raises(ModelDataError, match="strictly increasing"):
        compute_features(frame.iloc[[0, 2, 1, 3]])


def test_streaming_refuses_bad_bars_without_adding_them() -> None:
    frame = synthetic_bars(3)
    ts = frame.index.asi8
    sf = StreamingFeatures()
    sf.update(int(ts[1]), 10.0, 11.0, 9.0, 10.5, 100.0)
    with pytest.raises(ModelDataError, match="strictly increasing"):
        sf.update(int(ts[0]), 10.0, 11.0, 9.0, 10.5, 100.0)
    with pytest.raises(ModelDataError, match="close=nan"):
        sf.update(int(ts[2]), 10.0, 11.0, 9.0, float("nan"), 100.0)
    with pytest.raises(ModelDataError, match="volume=-1.0"):
        sf.update(int(ts[2]), 10.0, 11.0, 9.0, 10.0, -1.0)
    assert sf.n_bars == 1
    sf.update(int(ts[2]), 10.0, 11.0, 9.0, 10.0, 100.0)
    assert sf.n_bars == 2


# ---------------------------------------------------------------- inference helpers


def test_feature_matrix_is_contiguous_float32(ibkr: pd.DataFrame) -> None:
    frame = ibkr.iloc[:400]
    x = feature_matrix(frame)
    assert x.dtype == np.float32
    assert x.shape == (400, FEATURE_SET.n_features)
    assert x.flags.c_contiguous
    np.testing.assert_array_equal(x, compute_features(frame).to_numpy().astype(np.float32))


def test_scale_standardises_and_treats_zero_std_as_one() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    mean = np.array([3.0, 1.0, 0.0, -1.0])
    std = np.array([2.0, 0.5, 0.0, 4.0])
    out = scale(x, mean, std)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    expected = (x - mean.astype(np.float32)) / np.array([2.0, 0.5, 1.0, 4.0], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)
    windows = np.stack([x[:10], x[10:20]])  # (N, L, F)
    np.testing.assert_array_equal(scale(windows, mean, std), np.stack([out[:10], out[10:20]]))
    with pytest.raises(ModelContractError, match="4 columns"):
        scale(x, mean[:3], std[:3])
