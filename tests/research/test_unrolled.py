"""The unrolled GRU export: same probabilities as torch and as the fused ONNX GRU op on real windows, same weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from engine.catalog import read_frame  # noqa: E402
from models.features import feature_matrix, scale  # noqa: E402
from models.onnx_model import OnnxSignalModel  # noqa: E402
from research.export import PARITY_TOL, onnx_bytes, with_metadata  # noqa: E402
from research.nets import RecurrentNet  # noqa: E402
from research.unrolled import graph_parameters, net_from_artifact  # noqa: E402
from tests.models.onnx_factory import fit_scaler, write_artifact  # noqa: E402

pytestmark = pytest.mark.research

ROOT = Path(__file__).resolve().parents[2]
LOOKBACK = 24


def _ops(blob: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(blob).graph.node}


@pytest.fixture(scope="module")
def real_features(real_catalog: Path) -> dict[str, np.ndarray]:
    """Unscaled seed14 feature rows of SPY and AAPL's real hourly bars up to 2023-12-31."""
    return {s: feature_matrix(read_frame(real_catalog, s, "1-HOUR").loc[:"2023-12-31"]) for s in ("SPY", "AAPL")}


def _windows(raw: dict[str, np.ndarray], mean: object, std: object) -> dict[str, np.ndarray]:
    """Scaled (N, 24, 19) windows over the last 1,200 bars of each symbol."""
    out = {}
    for symbol, x in raw.items():
        x = scale(x, mean, std)[-1200:]
        x = x[np.isfinite(x).all(axis=1)]
        out[symbol] = np.ascontiguousarray(
            np.lib.stride_tricks.sliding_window_view(x, LOOKBACK, axis=0).transpose(0, 2, 1))
    return out


@pytest.fixture(scope="module")
def real_windows(real_features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Windows scaled with the features' own mean and std."""
    return _windows(real_features, *fit_scaler(np.vstack(list(real_features.values()))))


def _artifact(folder: Path, blob: bytes, n_assets: int) -> OnnxSignalModel:
    from models.features import FEATURE_SET

    asset_map = {f"A{i}": i for i in range(n_assets)} if n_assets else None
    path = write_artifact(folder, onnx.load_from_string(blob), architecture="gru", lookback=LOOKBACK,
                          features=FEATURE_SET.features, asset_map=asset_map, output_shape=(-1,))
    return OnnxSignalModel.load(path)


@pytest.mark.parametrize(
    ("hidden", "layers", "attention", "n_assets"), [(32, 1, True, 5), (16, 2, False, 0)],
    ids=["demo-shaped: 1x32, attention, asset embedding", "2x16, last state"],
)
def test_unrolled_graph_scores_real_windows_as_torch_and_the_fused_gru_op(
    hidden: int, layers: int, attention: bool, n_assets: int, real_windows: dict[str, np.ndarray], tmp_path: Path
) -> None:
    torch.manual_seed(3)
    net = RecurrentNet(LOOKBACK, 19, hidden=hidden, layers=layers, cell="gru", attention=attention,
                       n_assets=n_assets, embedding_dim=4 if n_assets else 0).eval()
    unrolled, fused = onnx_bytes(net), onnx_bytes(net, gru_graph="fused")
    assert "GRU" not in _ops(unrolled)
    assert "Gemm" in _ops(unrolled)
    assert "GRU" in _ops(fused)
    # the graph holds the trained tensors themselves, under their state_dict names
    params = graph_parameters(onnx.load_from_string(unrolled))
    state = net.state_dict()
    assert params.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(params[key], value.numpy(), err_msg=key)

    new = _artifact(tmp_path / "unrolled", unrolled, n_assets)
    old = _artifact(tmp_path / "fused", fused, n_assets)
    for k, (symbol, windows) in enumerate(real_windows.items()):
        ids = np.full(len(windows), k % n_assets, np.int64) if n_assets else None
        got = new.predict(windows, ids, chunk_size=97)  # odd chunks: the batch axis is dynamic
        before = old.predict(windows, ids, chunk_size=97)
        with torch.no_grad():
            want = net(torch.from_numpy(windows), None if ids is None else torch.from_numpy(ids)).double().numpy()
        assert len(windows) > 1000, symbol
        assert float(np.std(want)) > 1e-3  # the windows exercise the network, not a constant
        np.testing.assert_allclose(got, want, rtol=0, atol=PARITY_TOL)
        np.testing.assert_allclose(got, before, rtol=0, atol=PARITY_TOL)
        # the streaming path (one window per symbol, one call) gives the same numbers
        np.testing.assert_allclose(new.predict_universe(windows[-143:], None if ids is None else ids[-143:]),
                                   got[-143:], rtol=0, atol=1e-7)


def test_shipped_demo_gru_is_the_unrolled_graph_of_its_weights(real_features: dict[str, np.ndarray],
                                                               tmp_path: Path) -> None:
    """The shipped demo_gru scores real windows as its weights do in torch and as the fused GRU op did."""
    folder = ROOT / "models" / "demo_gru"
    shipped = OnnxSignalModel.load(folder)
    real_windows = _windows(real_features, shipped.card.scaler.mean, shipped.card.scaler.std)
    asset_ids = np.array(sorted(shipped.card.asset_map.values()), np.int64)
    blob = (folder / "model.onnx").read_bytes()
    assert "GRU" not in _ops(blob)
    net = net_from_artifact(folder)  # the weights, read back from the graph
    meta = {p.key: p.value for p in onnx.load_from_string(blob).metadata_props}
    assert with_metadata(onnx_bytes(net), meta) == blob  # the shipped file is exactly the export of its weights
    fused = tmp_path / "demo_gru_fused"
    fused.mkdir()
    fused_blob = with_metadata(onnx_bytes(net, gru_graph="fused"), meta)  # as sigtrade export wrote it before
    (fused / "model.onnx").write_bytes(fused_blob)
    card = json.loads((folder / "card.json").read_text())
    card["onnx_sha256"] = hashlib.sha256(fused_blob).hexdigest()
    (fused / "card.json").write_text(json.dumps(card))
    before = OnnxSignalModel.load(fused)
    for windows in real_windows.values():
        ids = np.resize(asset_ids, len(windows))  # every row of the embedding table
        got = shipped.predict(windows, ids)
        with torch.no_grad():
            want = net(torch.from_numpy(windows), torch.from_numpy(ids)).double().numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=PARITY_TOL)
        np.testing.assert_allclose(got, before.predict(windows, ids), rtol=0, atol=PARITY_TOL)
