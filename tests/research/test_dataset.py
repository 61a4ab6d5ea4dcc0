"""Labels, windows and splits: no overlap, purge gaps, no look-ahead, train-only scaler, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError, DataError
from models.errors import ModelDataError
from models.features import feature_matrix, scale
from research.config import load_train_config, parse_range, train_config_from_dict
from research.dataset import DatasetSpec, build_windows
from research.labels import make_labels, threshold_labels, triple_barrier_labels
from tests.research.conftest import tiny_raw

pytestmark = pytest.mark.research

NY = "America/New_York"


def _data(catalog: Path, **sections):
    cfg = train_config_from_dict(tiny_raw(catalog, **sections))
    return cfg, build_windows(DatasetSpec.from_config(cfg))


# --- labels ---------------------------------------------------------------------------------


def test_threshold_labels_read_the_close_h_bars_ahead() -> None:
    close = np.array([100.0, 101.0, 99.0, 102.0, 103.0])
    got = threshold_labels(close, horizon=2, threshold=0.0)
    # t0: 99/100 - 1 < 0 -> 0; t1: 102/101 > 1 -> 1; t2: 103/99 -> 1; last 2 bars unlabeled
    np.testing.assert_array_equal(got[:3], [0.0, 1.0, 1.0])
    assert np.isnan(got[3:]).all()
    # a return must exceed the threshold
    assert threshold_labels(np.array([100.0, 100.99]), 1, 0.01)[0] == 0.0
    assert threshold_labels(np.array([100.0, 101.01]), 1, 0.01)[0] == 1.0


def test_triple_barrier_takes_the_first_barrier_touched() -> None:
    close = np.array([100.0, 100.5, 101.2, 98.0, 99.0, 99.5, 99.6, 99.4])
    got = triple_barrier_labels(close, horizon=3, take_profit=0.01, stop_loss=0.01)
    # t0: +1 % (101) reached at k=2 before -1 % (99) -> 1
    # t1: 101.505 never; 99.495 reached at k=2 (98) -> 0
    # t2: base 101.2: stop 100.188 hit at k=1 -> 0
    # t3: base 98: take 98.98 hit at k=1 (99) -> 1
    # t4: base 99: 99.99 / 98.01 never within 3 bars -> vertical barrier -> 0
    np.testing.assert_array_equal(got[:5], [1.0, 0.0, 0.0, 1.0, 0.0])
    assert np.isnan(got[5:]).all()


def test_labels_depend_only_on_the_next_h_bars() -> None:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    for kind in ("threshold", "triple_barrier"):
        full = make_labels(close, kind, 5, threshold=0.001, take_profit=0.01, stop_loss=0.01)
        for t in (10, 100, 250):
            # truncating right after t+H gives the same label: nothing beyond t+H is read
            cut = make_labels(close[: t + 6], kind, 5, threshold=0.001, take_profit=0.01, stop_loss=0.01)
            assert cut[t] == full[t]
            # nothing before t matters either, except close[t] itself as the reference
            poisoned = close.copy()
            poisoned[:t] *= 3.0
            again = make_labels(poisoned, kind, 5, threshold=0.001, take_profit=0.01, stop_loss=0.01)
            assert again[t] == full[t]


# --- splits and windows ---------------------------------------------------------------------


def test_splits_never_overlap_and_keep_a_purge_gap(tiny_catalog: Path) -> None:
    cfg, data = _data(tiny_catalog)
    L, H, P = data.lookback, data.horizon, data.purge
    assert P == H == 3  # the default purge is the label horizon
    ranges = {name: parse_range(getattr(cfg.data, name)) for name in ("train", "validation", "test")}
    for s, symbol in enumerate(data.symbols):
        lo, hi = data.offsets[s], data.offsets[s + 1]
        times = pd.DatetimeIndex(data.times[lo:hi], tz="UTC")
        dates = times.tz_convert(NY).date
        touched = {}
        for name, sp in data.splits.items():
            seg = [g for g in sp.segments if g.symbol == symbol]
            assert len(seg) == 1
            ends = sp.ends[seg[0].start : seg[0].stop] - lo
            assert np.all(np.diff(ends) == 1)
            first, last = int(ends.min()) - L + 1, int(ends.max()) + H  # every bar any sample touches
            touched[name] = (first, last)
            start, end = ranges[name]
            # the whole window AND the label horizon lie inside the split's date range
            assert start is None or dates[first] >= start
            assert end is None or dates[last] <= end
        order = ["train", "validation", "test"]
        for a, b in zip(order, order[1:], strict=False):
            gap = touched[b][0] - touched[a][1] - 1
            assert gap >= P, f"{symbol}: only {gap} bars between {a} and {b}"
    # no decision bar in two splits
    all_ends = np.concatenate([sp.ends for sp in data.splits.values()])
    assert np.unique(all_ends).size == all_ends.size


def test_a_longer_purge_widens_the_gap_and_a_shorter_one_is_refused(tiny_catalog: Path) -> None:
    _, base = _data(tiny_catalog)
    _, wide = _data(tiny_catalog, data={"purge": 20})
    assert wide.splits["validation"].ends.min() - base.splits["validation"].ends.min() == 17
    assert wide.splits["train"].n == base.splits["train"].n  # the first split needs no purge
    with pytest.raises(ConfigError, match="purge = 2 bars is shorter than label.horizon = 3"):
        train_config_from_dict(tiny_raw(tiny_catalog, data={"purge": 2}))


def test_windows_use_no_bar_after_the_decision_bar(tiny_catalog: Path, tiny_frames) -> None:
    _, data = _data(tiny_catalog)
    sp = data.splits["validation"]
    view = data.windows("validation")
    for i in (0, sp.n // 2, sp.n - 1):
        symbol = data.symbols[int(sp.asset_ids[i])]
        frame = tiny_frames[symbol]
        t = int(np.searchsorted(frame.index.asi8, sp.times[i]))
        assert frame.index.asi8[t] == sp.times[i]
        # features of a frame cut at the decision bar, future poisoned away entirely
        past = scale(feature_matrix(frame.iloc[: t + 1]), data.mean, data.std)[-data.lookback :]
        np.testing.assert_allclose(view[i], past, rtol=0, atol=1e-6)


def test_scaler_is_fitted_on_training_rows_only(tiny_catalog: Path, tiny_frames) -> None:
    cfg, data = _data(tiny_catalog)
    spec = DatasetSpec.from_config(cfg)
    # poison everything after the training range: the scaler must not move
    _, train_end = parse_range(cfg.data.train)
    poisoned = {}
    for symbol, frame in tiny_frames.items():
        f = frame.copy()
        late = f.index.tz_convert(NY).date > train_end
        f.loc[late, ["open", "high", "low", "close"]] *= 7.0
        f.loc[late, "volume"] *= 50.0
        poisoned[symbol] = f
    again = build_windows(spec, frames=poisoned)
    np.testing.assert_array_equal(again.mean, data.mean)
    np.testing.assert_array_equal(again.std, data.std)
    # and it is exactly the mean of the rows the training windows cover
    raw_rows = []
    for s, symbol in enumerate(data.symbols):
        ends = data.splits["train"].ends
        ends = ends[(ends >= data.offsets[s]) & (ends < data.offsets[s + 1])] - data.offsets[s]
        raw = feature_matrix(tiny_frames[symbol]).astype(np.float64)
        raw_rows.append(raw[ends.min() - data.lookback + 1 : ends.max() + 1])
    rows = np.concatenate(raw_rows)
    np.testing.assert_allclose(data.mean, rows.mean(axis=0), rtol=1e-9, atol=1e-12)
    assert data.std[-1] == 1.0  # the all-zero sentiment column is not divided by 0


def test_asset_ids_and_class_weights(tiny_catalog: Path) -> None:
    _, data = _data(tiny_catalog, label={"threshold": 0.004})
    assert data.asset_map == {s: i for i, s in enumerate(data.symbols)}
    sp = data.splits["train"]
    assert set(np.unique(sp.asset_ids)) == set(range(len(data.symbols)))
    assert 0.0 < sp.pos_rate < 0.5  # imbalanced on purpose
    w = sp.sample_weights()
    np.testing.assert_allclose(w[sp.labels == 1].sum(), w[sp.labels == 0].sum())


def test_segment_windows_are_views_not_copies(tiny_catalog: Path) -> None:
    _, data = _data(tiny_catalog)
    for seg, windows in data.segment_windows("test"):
        assert np.shares_memory(windows, data.features)
        assert windows.shape == (seg.stop - seg.start, data.lookback, data.n_features)
        first = data.splits["test"].ends[seg.start]
        np.testing.assert_array_equal(windows[0], data.features[first - data.lookback + 1 : first + 1])


# --- bad input: clear errors before any training ----------------------------------------------


def test_too_little_history_is_a_clear_error(tiny_frames) -> None:
    short = {s: f.iloc[:60] for s, f in tiny_frames.items()}
    cfg = train_config_from_dict(tiny_raw(Path("unused")))
    with pytest.raises(DataError, match=r"has 60 1-HOUR bars; one labelled window needs at least 64"):
        build_windows(DatasetSpec.from_config(cfg), frames=short)


def test_a_split_without_windows_is_a_clear_error(tiny_catalog: Path) -> None:
    with pytest.raises(DataError, match=r"data.test = '2024-01-01..' holds no complete labelled window"):
        _data(tiny_catalog, data={"test": "2024-01-01.."})


def test_a_split_with_one_class_is_a_clear_error(tiny_catalog: Path) -> None:
    with pytest.raises(DataError, match=r"data.train = '..2023-03-31' has no positive labels"):
        _data(tiny_catalog, label={"threshold": 0.5})


def test_non_finite_prices_and_features_are_refused(tiny_catalog: Path, tiny_frames, monkeypatch) -> None:
    cfg = train_config_from_dict(tiny_raw(tiny_catalog))
    spec = DatasetSpec.from_config(cfg)
    bad = {s: f.copy() for s, f in tiny_frames.items()}
    bad["SYN01"].iloc[400, bad["SYN01"].columns.get_loc("close")] = np.nan
    with pytest.raises(ModelDataError, match="frame for SYN01 has close=nan at row 400"):
        build_windows(spec, frames=bad)

    import research.dataset as ds

    def poisoned(frame, **kw):
        x = feature_matrix(frame, **kw)
        x[500, 3] = np.inf
        return x

    monkeypatch.setattr(ds, "feature_matrix", poisoned)
    with pytest.raises(DataError, match=r"SPY: feature 'macd' is inf at .* training needs finite features"):
        build_windows(spec)


def test_unknown_names_suggest_the_right_one(tiny_catalog: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.architecture = \"gruu\" is not a valid choice - did you mean 'gru'\?"):
        train_config_from_dict(tiny_raw(tiny_catalog, model={"architecture": "gruu"}))
    with pytest.raises(ConfigError, match=r"unknown key 'train.learning_rate'.*valid keys here: epochs"):
        train_config_from_dict(tiny_raw(tiny_catalog, train={"learning_rate": 0.1}))
    with pytest.raises(ConfigError, match=r"unknown key 'model.hiden' - did you mean 'hidden'\?"):
        train_config_from_dict(tiny_raw(tiny_catalog, model={"hiden": 8}))
    with pytest.raises(ConfigError, match=r"train.loss = \"focall\" .* did you mean 'focal'\?"):
        train_config_from_dict(tiny_raw(tiny_catalog, train={"loss": "focall"}))
    with pytest.raises(ConfigError, match="must be chronological and disjoint"):
        train_config_from_dict(tiny_raw(tiny_catalog, data={"validation": "2023-03-01..2023-05-15"}))
    toml = tmp_path / "t.toml"
    toml.write_text('[data]\ncatalog = "x"\n[model]\narchitecture = "lstm"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key 'trian' - did you mean 'train'\?"):
        load_train_config(toml, ["trian.epochs=3"])
    cfg = load_train_config(toml, ["model.hidden=8", "train.optimizer=adam"])
    assert (cfg.model.hidden, cfg.train.optimizer, cfg.output.name) == (8, "adam", "t")
