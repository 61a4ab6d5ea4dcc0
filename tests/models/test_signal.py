"""The signal facade on real hourly bars: batch == streaming, warm-up, symbols, errors.

Real bars come from ``../shared/data/equities/hourly/market-base`` (plain pandas, indexed
by the vendor's bar labels; the features depend only on bar order and New York dates).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.ensemble import EnsembleCard, EnsembleMember, write_ensemble_card
from models.errors import CardMismatchError, ModelContractError, ModelDataError
from models.features import FEATURE_SET, compute_features, feature_matrix, scale, warmup_bars
from models.signal import SignalModel, load_signal_model
from tests.models.onnx_factory import fit_scaler, make_gru_artifact, make_mlp_artifact

OHLCV = ["open", "high", "low", "close", "volume"]
SYMBOLS = ("AAPL", "INTC", "SPY")  # IBKR, yfinance, ETF
N_BARS = 700
SUBSET = FEATURE_SET.features[:8] + FEATURE_SET.features[14:16]


def read_bars(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("date"), utc=True, format="mixed"))
    raw = raw.sort_index()
    return raw.loc[~raw.index.duplicated(keep="first"), OHLCV].astype(np.float64)


@pytest.fixture(scope="module")
def frames(hourly_dir: Path) -> dict[str, pd.DataFrame]:
    return {s: read_bars(hourly_dir / f"{s}_1h.csv").iloc[:N_BARS] for s in SYMBOLS}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("signal_models")
    train = np.vstack([feature_matrix(f) for f in frames.values()])
    mean, std = fit_scaler(train)
    cols = [FEATURE_SET.features.index(c) for c in SUBSET]
    sub = ([mean[i] for i in cols], [std[i] for i in cols])
    asset_map = {s: i for i, s in enumerate(SYMBOLS)}
    dirs = {
        "mlp": make_mlp_artifact(root / "mlp", scaler=(mean, std), f1=0.6),
        "gru": make_gru_artifact(root / "gru", lookback=12, features=SUBSET, scaler=sub,
                                 with_asset_ids=True, asset_map=asset_map, f1=0.5),
    }
    ens = root / "ens"
    ens.mkdir()
    write_ensemble_card(
        EnsembleCard(name="ens", bar="1-HOUR", combiner="f1_weighted",
                     members=(EnsembleMember(path="../mlp"), EnsembleMember(path="../gru"))),
        ens,
    )
    dirs["ens"] = ens
    return dirs


@pytest.fixture(scope="module")
def models(model_dirs: dict[str, Path]) -> dict[str, SignalModel]:
    return {name: load_signal_model(path) for name, path in model_dirs.items()}


def _replay(model: SignalModel, frames: dict[str, pd.DataFrame],
            sentiment: dict[str, np.ndarray] | None = None, n: int = N_BARS) -> dict[str, np.ndarray]:
    """Feed every symbol bar by bar (interleaved) and score the universe after each round."""
    stream = model.stream(list(frames))
    out = {s: np.empty(n) for s in frames}
    arrays = {s: f[OHLCV].to_numpy() for s, f in frames.items()}
    for i in range(n):
        for s, f in frames.items():
            sent = 0.0 if sentiment is None else float(sentiment[s][i])
            stream.update(s, f.index[i], *arrays[s][i], sentiment=sent)
        for s, p in stream.score().items():
            out[s][i] = p
    return out


@pytest.mark.parametrize("name", ["mlp", "gru", "ens"])
def test_streaming_equals_batch_on_real_bars(
    name: str, models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    model = models[name]
    streamed = _replay(model, frames)
    for symbol, frame in frames.items():
        batch = model.probabilities(frame, symbol)
        assert batch.index.equals(frame.index)
        assert batch.name == model.name
        b = batch.to_numpy()
        np.testing.assert_array_equal(np.isnan(streamed[symbol]), np.isnan(b))
        np.testing.assert_allclose(streamed[symbol], b, rtol=0, atol=1e-6, equal_nan=True)
        # warm-up: NaN exactly for the first warmup_bars bars, then a probability every bar
        assert np.isnan(b[: model.warmup_bars]).all()
        assert np.isfinite(b[model.warmup_bars :]).all()
        assert ((b[model.warmup_bars :] > 0) & (b[model.warmup_bars :] < 1)).all()


def test_warmup_is_feature_warmup_plus_lookback(models: dict[str, SignalModel]) -> None:
    w = warmup_bars(FEATURE_SET)
    assert models["mlp"].warmup_bars == w + 24 - 1
    assert models["gru"].warmup_bars == w + 12 - 1
    assert models["ens"].warmup_bars == w + 24 - 1  # the slowest member
    assert models["ens"].kind == "ensemble"
    assert models["mlp"].kind == "single"
    assert [m.name for m in models["ens"].models] == ["mlp", "gru"]


def test_ensemble_is_the_f1_weighted_mean_of_its_members(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    frame = frames["SPY"]
    mlp = models["mlp"].probabilities(frame, "SPY")
    gru = models["gru"].probabilities(frame, "SPY")
    ens = models["ens"].probabilities(frame, "SPY")
    expected = (0.6 * mlp + 0.5 * gru) / 1.1
    np.testing.assert_allclose(ens.to_numpy(), expected.to_numpy(), rtol=1e-12, equal_nan=True)


def test_sentiment_reaches_the_model_in_both_modes(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    rng = np.random.default_rng(5)
    sent = {s: np.round(rng.uniform(-1, 1, N_BARS), 2) for s in frames}
    model = models["mlp"]
    streamed = _replay(model, frames, sent)
    for symbol, frame in frames.items():
        batch = model.probabilities(frame, symbol, pd.Series(sent[symbol], index=frame.index))
        np.testing.assert_allclose(streamed[symbol], batch.to_numpy(), rtol=0, atol=1e-6, equal_nan=True)
        plain = model.probabilities(frame, symbol)
        assert not np.allclose(batch.to_numpy()[100:], plain.to_numpy()[100:])


class _CountCalls:
    """Count the windows of each member's scoring call while inside the ``with``."""

    def __init__(self, model: SignalModel) -> None:
        self.model, self.calls = model, []

    def __enter__(self) -> list[int]:
        for member in self.model.models:
            real = member.score_prepared

            def counting(windows: np.ndarray, ids: np.ndarray | None = None, _real=real) -> np.ndarray:
                self.calls.append(len(windows))
                return _real(windows, ids)

            member.score_prepared = counting  # type: ignore[method-assign]
        return self.calls

    def __exit__(self, *exc: object) -> None:
        for member in self.model.models:
            del member.score_prepared


def test_score_a_subset_in_one_call_per_member(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    model = models["ens"]
    stream = model.stream(list(frames))
    for i in range(200):
        for s, f in frames.items():
            stream.update(s, int(f.index[i].value), *f[OHLCV].iloc[i])
    with _CountCalls(model) as calls:
        subset = stream.score(["SPY", "AAPL"])
    assert calls == [2, 2]
    assert list(subset) == ["SPY", "AAPL"]
    assert stream.n_bars("SPY") == 200
    for s in ("SPY", "AAPL"):
        batch = model.probabilities(frames[s].iloc[:200], s).iloc[-1]
        assert subset[s] == pytest.approx(batch, abs=1e-6)


def test_still_warming_up_scores_nan(models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]) -> None:
    model = models["mlp"]
    stream = model.stream(["AAPL"])
    f = frames["AAPL"]
    for i in range(model.warmup_bars):
        stream.update("AAPL", f.index[i], *f[OHLCV].iloc[i])
        assert np.isnan(stream.score()["AAPL"])
    stream.update("AAPL", f.index[model.warmup_bars], *f[OHLCV].iloc[model.warmup_bars])
    assert np.isfinite(stream.score()["AAPL"])


def test_short_history_is_all_nan_with_a_warning(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    model = models["mlp"]
    with caplog.at_level(logging.WARNING, logger="models.signal"):
        probs = model.probabilities(frames["AAPL"].iloc[: model.warmup_bars], "AAPL")
    assert probs.isna().all()
    assert any("fewer than the 73 needed" in r.getMessage() for r in caplog.records)


def test_unknown_symbol_for_an_asset_embedding(models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]) -> None:
    for model in (models["gru"], models["ens"]):
        with pytest.raises(ModelContractError, match=r"does not know symbol 'TSLA' \(known: AAPL, INTC, SPY\)"):
            model.probabilities(frames["AAPL"], "TSLA")
        with pytest.raises(ModelContractError, match="known: AAPL, INTC, SPY"):
            model.stream(["AAPL", "TSLA"])
    # a model without an embedding scores any symbol
    assert models["mlp"].probabilities(frames["AAPL"], "TSLA").notna().any()


def test_stream_errors(models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]) -> None:
    stream = models["mlp"].stream(["AAPL"])
    with pytest.raises(ModelContractError, match="symbol 'MSFT' is not in this signal stream"):
        stream.update("MSFT", 1, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ModelContractError, match="not in this signal stream"):
        stream.score(["MSFT"])
    with pytest.raises(ModelContractError, match="no timezone"):
        stream.update("AAPL", pd.Timestamp("2024-01-02 15:00"), 1.0, 1.0, 1.0, 1.0, 1.0)


def test_missing_column_in_the_data(models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ModelDataError, match="lacks column 'volume'"):
        models["mlp"].probabilities(frames["AAPL"].drop(columns="volume"), "AAPL")


def test_bar_size_and_folder_checks(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    assert load_signal_model(model_dirs["mlp"], bar="1-HOUR").bar == "1-HOUR"
    with pytest.raises(CardMismatchError, match=r"bar: expected '1-HOUR', found '1-DAY' \(the data\)"):
        load_signal_model(model_dirs["ens"], bar="1-DAY")
    with pytest.raises(ModelContractError, match="not a model folder"):
        load_signal_model(tmp_path)


def test_probabilities_many_in_worker_processes_matches(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    model = models["ens"]
    local = model.probabilities_many(frames)
    pooled = model.probabilities_many(frames, processes=2)
    assert list(pooled) == list(frames)
    for s in frames:
        pd.testing.assert_series_equal(pooled[s], local[s])


def _stepped(model: SignalModel, frames: dict[str, pd.DataFrame], start: int = 0, stop: int = N_BARS,
             stream=None) -> tuple[object, dict[str, np.ndarray]]:
    """Feed bar times start..stop-1 with SignalStream.step (all symbols per call)."""
    stream = stream or model.stream(list(frames))
    bars = np.stack([f[OHLCV].to_numpy() for f in frames.values()], axis=1)  # (T, S, 5)
    stamps = np.stack([f.index.asi8 for f in frames.values()], axis=1)  # (T, S): per-symbol close times
    out = {s: np.full(N_BARS, np.nan) for s in frames}
    for i in range(start, stop):
        probs = stream.step(stamps[i], bars[i])
        for s, p in zip(frames, probs, strict=True):
            out[s][i] = p
    return stream, out


def test_a_step_scores_the_universe_in_one_call_per_member(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    model = models["ens"]
    with _CountCalls(model) as calls:
        stream, stepped = _stepped(model, frames, stop=300)
    assert calls == [3] * 600  # 300 steps x 2 members, 3 windows each
    replayed = _replay(model, frames, n=300)
    for r, s in enumerate(frames):
        np.testing.assert_array_equal(stepped[s][:300], replayed[s][:300])  # same windows, same batch shape
        batch = compute_features(frames[s].iloc[:300]).to_numpy()
        np.testing.assert_array_equal(stream.features(s), batch[-1])
        assert stream.last_ts(s) == frames[s].index[299].value
        for member, windows in zip(model.models, stream._windows, strict=True):  # the scaled windows, bit for bit
            cols = [FEATURE_SET.features.index(c) for c in member.card.feature_set.features]
            want = scale(batch[-member.lookback :, cols], member.card.scaler.mean, member.card.scaler.std)
            np.testing.assert_array_equal(windows[r], want)


@pytest.mark.parametrize("into", ["ens", "gru"])
def test_a_saved_stream_resumes_exactly(
    into: str, models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    """Save an ensemble's stream, restore it into a fresh stream (of the ensemble or of its GRU
    member: the state holds feature rows, not scaled windows), continue: same probabilities as
    a stream that never stopped."""
    cut = 150  # inside the MLP's lookback window after the feature warm-up
    first, _ = _stepped(models["ens"], frames, stop=cut)
    blob = first.state()
    target = models[into]
    fresh = target.stream(["SPY", *frames])  # another order and an extra row: restored by name
    assert sorted(fresh.restore(blob)) == sorted(frames)
    _, resumed = _stepped(target, frames, start=cut, stream=_Reorder(fresh, list(frames)))
    _, straight = _stepped(target, frames)
    for s in frames:
        np.testing.assert_array_equal(resumed[s][cut:], straight[s][cut:])
        assert np.isfinite(straight[s][cut:]).all()
    cold = target.stream(list(frames))  # without the state: a cold start (NaN for the warm-up)
    _, cold_probs = _stepped(target, frames, start=cut, stream=cold)
    assert np.isnan(cold_probs["AAPL"][cut : cut + 40]).all()
    with pytest.raises(ModelContractError, match="not readable"):
        fresh.restore(b"\x00")


class _Reorder:
    """A stream whose step takes rows in the order of *names* (the fixture's frames)."""

    def __init__(self, stream, names: list[str]) -> None:
        self.stream, self.rows = stream, stream.rows(names)

    def step(self, ts: np.ndarray, bars: np.ndarray) -> np.ndarray:
        return self.stream.step(ts, bars, rows=self.rows)


def test_warming_a_stream_from_history_equals_feeding_it_bar_by_bar(
    models: dict[str, SignalModel], frames: dict[str, pd.DataFrame]
) -> None:
    """SignalStream.warm (one kernel call per feature set) leaves the very state update() leaves."""
    model, f = models["ens"], frames["INTC"]
    bars, stamps = f[OHLCV].to_numpy(), f.index.asi8
    for cut in (3, 40, 90, 600):
        by_bar, warmed = model.stream(["INTC"]), model.stream(["INTC"])
        for i in range(cut):
            by_bar.update("INTC", int(stamps[i]), *bars[i])
        warmed.warm("INTC", stamps[:cut], bars[:cut])
        assert warmed.state() == by_bar.state()
        after = [(a.step(int(stamps[cut]), bars[cut : cut + 1])[0]) for a in (by_bar, warmed)]
        np.testing.assert_array_equal(after[0], after[1])
    with pytest.raises(ModelDataError, match="does not come after"):
        warmed.warm("INTC", stamps[:5], bars[:5])
