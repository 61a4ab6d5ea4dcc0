"""OnnxSignalModel: chunked scoring, series windows, NaN handling, bad inputs, providers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from models.errors import ModelContractError
from models.onnx_model import OnnxSignalModel, default_chunk_size, select_providers
from tests.models.onnx_factory import make_gru_artifact, make_mlp_artifact

L, F = 24, 19


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx_models")
    return {
        "mlp": make_mlp_artifact(root / "mlp"),
        "gru": make_gru_artifact(root / "gru", layers=2, attention=True),
        "gru_ids": make_gru_artifact(root / "gru_ids", lookback=12, with_asset_ids=True),
    }


@pytest.fixture(scope="module")
def mlp(artifacts: dict[str, Path]) -> OnnxSignalModel:
    return OnnxSignalModel.load(artifacts["mlp"])


@pytest.fixture(scope="module")
def gru(artifacts: dict[str, Path]) -> OnnxSignalModel:
    return OnnxSignalModel.load(artifacts["gru"])


@pytest.fixture(scope="module")
def gru_ids(artifacts: dict[str, Path]) -> OnnxSignalModel:
    return OnnxSignalModel.load(artifacts["gru_ids"])


def _windows(n: int, lookback: int = L, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, lookback, F)).astype(np.float32)


def _materialise(features: np.ndarray, lookback: int) -> np.ndarray:
    return np.stack([features[i : i + lookback] for i in range(len(features) - lookback + 1)])


# --- scoring -------------------------------------------------------------------------------


def test_default_chunk_sizes_follow_the_architecture(mlp: OnnxSignalModel, gru: OnnxSignalModel) -> None:
    assert (mlp.chunk_size, gru.chunk_size) == (1024, 128)
    assert default_chunk_size("cnn_lstm") == 128
    assert default_chunk_size("tcn") == 256


@pytest.mark.parametrize("name", ["mlp", "gru"])
def test_chunked_equals_unchunked(name: str, mlp: OnnxSignalModel, gru: OnnxSignalModel) -> None:
    model = {"mlp": mlp, "gru": gru}[name]
    x = _windows(1500)
    whole = model.predict(x, chunk_size=len(x))
    assert whole.dtype == np.float64
    assert whole.shape == (1500,)
    assert np.all((whole > 0) & (whole < 1))
    for chunk in (1, 7, 128, 1024):
        np.testing.assert_allclose(model.predict(x, chunk_size=chunk), whole, rtol=0, atol=1e-6)


def test_predict_accepts_a_zero_copy_sliding_view(gru: OnnxSignalModel) -> None:
    feats = np.random.default_rng(1).normal(size=(400, F)).astype(np.float32)
    view = np.lib.stride_tricks.sliding_window_view(feats, (L, F))[:, 0]
    assert np.shares_memory(view, feats)
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(gru.predict(view), gru.predict(_materialise(feats, L)))


def test_predict_series_matches_materialised_windows(gru: OnnxSignalModel) -> None:
    feats = np.random.default_rng(2).normal(size=(700, F)).astype(np.float32)
    series = gru.predict_series(feats, chunk_size=50)
    assert series.shape == (700,)
    assert np.isnan(series[: L - 1]).all()
    np.testing.assert_allclose(series[L - 1 :], gru.predict(_materialise(feats, L)), rtol=0, atol=1e-6)


def test_predict_series_is_nan_where_a_window_holds_nan(mlp: OnnxSignalModel) -> None:
    feats = np.random.default_rng(3).normal(size=(300, F)).astype(np.float32)
    feats[:49] = np.nan  # the feature warm-up
    feats[150, 4] = np.nan  # one bad value later on
    series = mlp.predict_series(feats)
    first = 49 + L - 1
    assert np.isnan(series[:first]).all()
    assert np.isfinite(series[first])
    # every window containing row 150 (ending at 150 .. 150 + L - 1) is NaN, no other
    assert np.isnan(series[150 : 150 + L]).all()
    assert np.isfinite(series[first:150]).all()
    assert np.isfinite(series[150 + L :]).all()
    clean = feats.copy()
    clean[150, 4] = 0.0
    reference = mlp.predict_series(clean)
    np.testing.assert_array_equal(series[first:150], reference[first:150])


def test_history_shorter_than_the_lookback_waits(mlp: OnnxSignalModel) -> None:
    feats = np.zeros((L - 1, F), np.float32)
    assert np.isnan(mlp.predict_series(feats)).all()
    assert mlp.predict_series(np.zeros((0, F), np.float32)).shape == (0,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_never_a_signal_on_nan(mlp: OnnxSignalModel, gru: OnnxSignalModel, bad: float) -> None:
    x = _windows(40)
    x[3, 5, 2] = bad
    x[17, 0, 0] = bad
    for model in (mlp, gru):
        for probs in (model.predict(x, chunk_size=8), model.predict_universe(x)):
            assert np.isnan(probs[[3, 17]]).all()
            assert np.isfinite(np.delete(probs, [3, 17])).all()


def test_universe_call_is_one_run_and_matches_batch(
    gru_ids: OnnxSignalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _windows(143, lookback=12)
    ids = np.arange(143) % 4
    batch = gru_ids.predict(x, ids, chunk_size=16)
    calls: list[int] = []
    real_run = gru_ids._session.run

    def counting_run(names: Any, feeds: dict[str, np.ndarray]) -> Any:
        calls.append(len(feeds["features"]))
        return real_run(names, feeds)

    monkeypatch.setattr(gru_ids._session, "run", counting_run)
    universe = gru_ids.predict_universe(x, ids)
    assert calls == [143]
    np.testing.assert_allclose(universe, batch, rtol=0, atol=1e-6)


def test_asset_ids_change_the_output(gru_ids: OnnxSignalModel) -> None:
    x = _windows(5, lookback=12)
    a = gru_ids.predict(x, np.zeros(5, np.int64))
    b = gru_ids.predict(x, 3)  # one id for all windows
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(gru_ids.predict_series(x[0], asset_id=3)[-1:], b[:1])


# --- bad inputs: refused before onnxruntime runs -------------------------------------------

BAD_WINDOWS = [
    ("rank 2", np.zeros((4, L * F), np.float32), r"shape \(N, lookback=24, features=19\).*rank 2"),
    ("rank 4", np.zeros((1, 4, L, F), np.float32), r"rank 4"),
    ("float64", np.zeros((4, L, F), np.float64), r"must be float32.*found float64"),
    ("lookback", np.zeros((4, 12, F), np.float32), r"found shape \(4, 12, 19\)"),
    ("features", np.zeros((4, L, 18), np.float32), r"found shape \(4, 24, 18\)"),
    ("list", [[0.0]], r"must be a numpy array"),
]


@pytest.mark.parametrize(("x", "message"), [(b[1], b[2]) for b in BAD_WINDOWS],
                         ids=[b[0] for b in BAD_WINDOWS])
def test_wrong_rank_or_dtype_is_refused_before_ort(
    artifacts: dict[str, Path], x: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = OnnxSignalModel.load(artifacts["mlp"])

    def never(*_: Any) -> None:
        raise AssertionError("onnxruntime was called")

    monkeypatch.setattr(model._session, "run", never)
    for call in (model.predict, model.predict_universe):
        with pytest.raises(ModelContractError, match=message):
            call(x)


def test_predict_series_wrong_inputs(mlp: OnnxSignalModel) -> None:
    with pytest.raises(ModelContractError, match=r"\(T, 19\) float32.*float64"):
        mlp.predict_series(np.zeros((100, F)))
    with pytest.raises(ModelContractError, match=r"\(T, 19\) float32"):
        mlp.predict_series(np.zeros((100, L, F), np.float32))


def test_asset_id_errors(mlp: OnnxSignalModel, gru_ids: OnnxSignalModel) -> None:
    x = _windows(3, lookback=12)
    with pytest.raises(ModelContractError, match="has an asset embedding: pass asset_ids"):
        gru_ids.predict(x)
    with pytest.raises(ModelContractError, match=r"asset ids must lie in 0\.\.3.*found 0\.\.9"):
        gru_ids.predict(x, np.array([0, 1, 9]))
    with pytest.raises(ModelContractError, match="must be integers"):
        gru_ids.predict(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ModelContractError, match=r"shape \(3,\)"):
        gru_ids.predict(x, np.array([0, 1]))
    with pytest.raises(ModelContractError, match="has no asset_id input"):
        mlp.predict(_windows(3), np.array([0, 1, 2]))


def test_corrupt_model_refuses_to_load(tmp_path: Path) -> None:
    folder = make_mlp_artifact(tmp_path / "m")
    (folder / "model.onnx").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelContractError, match="onnx_sha256"):
        OnnxSignalModel.load(folder)


# --- threads and providers -----------------------------------------------------------------


def test_threads_are_configurable(artifacts: dict[str, Path]) -> None:
    one = OnnxSignalModel.load(artifacts["gru"])
    two = OnnxSignalModel.load(artifacts["gru"], threads=2)
    assert one._session.get_session_options().intra_op_num_threads == 1
    assert two._session.get_session_options().intra_op_num_threads == 2
    x = _windows(64)
    np.testing.assert_allclose(one.predict(x), two.predict(x), rtol=0, atol=1e-6)
    with pytest.raises(ModelContractError, match="threads"):
        OnnxSignalModel.load(artifacts["gru"], threads=0)


def test_concurrent_runs_give_the_same_probabilities(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    one = OnnxSignalModel.load(artifacts["gru_ids"])
    two = OnnxSignalModel.load(artifacts["gru_ids"], workers=2)
    x = _windows(1000, lookback=12)
    x[500, 3, 3] = np.nan
    ids = np.arange(1000) % 4
    np.testing.assert_array_equal(two.predict(x, ids, chunk_size=64), one.predict(x, ids, chunk_size=64))
    feats = np.random.default_rng(9).normal(size=(900, F)).astype(np.float32)
    feats[:40] = np.nan
    np.testing.assert_array_equal(two.predict_series(feats, 2), one.predict_series(feats, 2))
    sizes: list[int] = []
    real_run = two._session.run

    def recording_run(names: Any, feeds: dict[str, np.ndarray]) -> Any:
        sizes.append(len(feeds["features"]))
        return real_run(names, feeds)

    monkeypatch.setattr(two._session, "run", recording_run)
    uni = two.predict_universe(x[:143], ids[:143])
    assert sorted(sizes) == [71, 72]  # the universe split across the two workers
    np.testing.assert_allclose(uni, one.predict_universe(x[:143], ids[:143]), rtol=0, atol=1e-6)
    with pytest.raises(ModelContractError, match="workers"):
        OnnxSignalModel.load(artifacts["gru"], workers=0)


def test_provider_is_logged(artifacts: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="models.onnx_model"):
        model = OnnxSignalModel.load(artifacts["mlp"])
    assert model.provider in ort.get_available_providers()
    assert any(model.provider in r.getMessage() and "runs on" in r.getMessage() for r in caplog.records)


def test_cuda_is_preferred_when_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert select_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert select_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ModelContractError, match=r"\[gpu\] extra"):
        select_providers(["CUDAExecutionProvider"])


def test_cuda_session_failure_falls_back_to_cpu(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = ort.InferenceSession

    def fake_session(blob: bytes, options: Any = None, providers: Any = None) -> Any:
        if providers and providers[0] == "CUDAExecutionProvider":
            raise RuntimeError("CUDA driver version is insufficient")
        return real(blob, options, providers=providers)

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    with caplog.at_level(logging.INFO, logger="models.onnx_model"):
        model = OnnxSignalModel.load(artifacts["mlp"])
    assert model.provider == "CPUExecutionProvider"
    assert any("falling back to CPUExecutionProvider" in r.getMessage() for r in caplog.records)
    assert np.isfinite(model.predict(_windows(4))).all()


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu (the [gpu] extra) and a GPU")
def test_gpu_agrees_with_cpu(artifacts: dict[str, Path]) -> None:
    x = _windows(2000)
    for name in ("mlp", "gru"):
        gpu = OnnxSignalModel.load(artifacts[name])
        cpu = OnnxSignalModel.load(artifacts[name], providers=["CPUExecutionProvider"])
        assert gpu.provider == "CUDAExecutionProvider"
        np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=0, atol=1e-5)
