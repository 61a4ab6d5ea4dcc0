"""The one feature pipeline: batch == streaming bit for bit, causal, warm-up, errors.

Real bars come from ``../shared/data/equities/hourly/market-base`` (read here with plain
pandas, indexed by the vendor's bar-start labels: the features do not depend on the
labelling, only on the bar order and the New York date of each label).
"""

from __future__ import annotations

import logging
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
    check_history,
    compute_features,
    feature_matrix,
    get_feature_set,
    scale,
    warmup_bars,
)

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


def stream(frame: pd.DataFrame, sentiment: np.ndarray | None = None, **kwargs: int) -> np.ndarray:
    """Feed *frame* bar by bar through :class:`StreamingFeatures`; stack the rows."""
    sf = StreamingFeatures(**kwargs)
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
    rows = stream(real, max_history=len(real) + 1)
    np.testing.assert_array_equal(rows, batch)  # NaN positions must match too
    assert np.isnan(rows[:WARMUP]).any(axis=1).all()
    assert np.isfinite(rows[WARMUP:]).all()


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
    assert sf.exact


def test_beyond_max_history_warns_once_and_matches_trailing_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past max_history the row equals batch over the trailing max_history bars."""
    frame = synthetic_bars(200)
    max_history = 120
    with caplog.at_level(logging.WARNING, logger="models.streaming"):
        rows = stream(frame, max_history=max_history)
    warnings = [r for r in caplog.records if "max_history" in r.getMessage()]
    assert len(warnings) == 1
    full = compute_features(frame).to_numpy()
    np.testing.assert_array_equal(rows[:max_history], full[:max_history])
    for t in (max_history, 150, 199):
        window = compute_features(frame.iloc[t - max_history + 1 : t + 1]).to_numpy()[-1]
        np.testing.assert_array_equal(rows[t], window)
    assert not np.array_equal(rows[max_history:], full[max_history:])  # documented drift


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
    with pytest.raises(ModelContractError, match="max_history"):
        StreamingFeatures(max_history=WARMUP)


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
