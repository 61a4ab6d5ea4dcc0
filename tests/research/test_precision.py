"""``sigtrade export --precision bf16``: checked at export on real windows, recorded in the card, run by OpenVINO.

A small GRU is trained on real SPY and AAPL hourly bars and exported twice (fp32 and
bf16). The bf16 artifact must keep the fp32 graph, record its accuracy check, score the
validation windows within 1e-3 of fp32 (and differently from fp32: bf16 really runs),
bit-identically in every run and batch layout, and trade the same in batch and streaming
backtests. Refusals (tolerance exceeded, no OpenVINO, no bf16 on the CPU, an unknown
precision, a card that claims a failed check) are tested wherever they can run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from engine.cli.app import main  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from models.card import PRECISION_TOL, load_card, validate_artifact  # noqa: E402
from models.errors import ModelContractError  # noqa: E402
from models.onnx_model import OnnxSignalModel  # noqa: E402
from research import export as rexport  # noqa: E402
from research.config import train_config_from_dict  # noqa: E402
from research.train import prepare_data, train  # noqa: E402
from tests.conftest import need  # noqa: E402
from tests.research.conftest import tiny_raw  # noqa: E402

pytestmark = pytest.mark.research

RANGES = {"train": "2023-01-01..2023-06-30", "validation": "2023-07-01..2023-09-30", "test": "2023-10-01..2023-12-31"}
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _bf16_cpu() -> bool:
    if not HAS_OPENVINO:
        return False
    from models.openvino_runtime import bf16_supported

    return bf16_supported()


BF16_CPU = _bf16_cpu()
needs_bf16_cpu = pytest.mark.skipif(HAS_OPENVINO and not BF16_CPU,
                                    reason="this CPU has no bf16 instructions (AMX or AVX512_BF16)")


def _need_openvino() -> None:
    need(HAS_OPENVINO, "OpenVINO is not installed (pip install -e '.[openvino]')")


@pytest.fixture(scope="module")
def trained(real_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A GRU (2 x 24, attention, asset embedding) trained one epoch on real bars: (run folder, its data)."""
    root = tmp_path_factory.mktemp("precision")
    cfg = train_config_from_dict(tiny_raw(
        real_catalog, root / "run", data={**RANGES, "lookback": 16},
        model={"architecture": "gru", "hidden": 24, "layers": 2, "embedding_dim": 3},
        train={"epochs": 1, "batch_size": 256},
    ))
    data = prepare_data(cfg)
    train(cfg, data=data, command="pytest")
    return root / "run", data


@pytest.fixture(scope="module")
def exports(trained: tuple[Path, object]) -> tuple[Path, Path]:
    """(fp32 artifact, bf16 artifact) of the trained run."""
    _need_openvino()
    if not BF16_CPU:
        pytest.skip("this CPU has no bf16 instructions (AMX or AVX512_BF16)")
    run, _ = trained
    fp32 = rexport.export(run, run.parent / "fp32").path
    bf16 = rexport.export(run, run.parent / "bf16", precision="bf16").path
    return fp32, bf16


def _validation(data: object) -> tuple[np.ndarray, np.ndarray]:
    split = data.splits["validation"]  # type: ignore[attr-defined]
    windows = np.ascontiguousarray(data.windows("validation"))  # type: ignore[attr-defined]
    return windows, split.asset_ids.astype(np.int64)


@needs_bf16_cpu
def test_bf16_card_records_a_check_on_real_windows_and_keeps_the_fp32_graph(exports: tuple[Path, Path],
                                                                           trained: tuple[Path, object]) -> None:
    fp32, bf16 = exports
    c32, c16 = load_card(fp32), load_card(bf16)
    assert c32.precision is None
    low = c16.precision
    assert low is not None
    assert (low.dtype, low.runtime, low.tolerance) == ("bf16", "openvino", PRECISION_TOL)
    assert low.checked_on == f"validation split {RANGES['validation']}"
    _, data = trained
    assert low.windows == data.splits["validation"].n  # type: ignore[attr-defined]  # fewer than 20,000: all
    assert 0.0 < low.max_abs_diff <= PRECISION_TOL
    assert c16.training.command.endswith("--precision bf16")
    # the same graph and weights: only the card differs
    assert c16.onnx_sha256 == c32.onnx_sha256
    assert (bf16 / "model.onnx").read_bytes() == (fp32 / "model.onnx").read_bytes()
    validate_artifact(bf16)


@needs_bf16_cpu
def test_bf16_model_scores_real_windows_within_tolerance_and_deterministically(
        exports: tuple[Path, Path], trained: tuple[Path, object]) -> None:
    fp32, bf16 = exports
    _, data = trained
    m32, m16 = OnnxSignalModel.load(fp32), OnnxSignalModel.load(bf16)
    assert m16.provider == "OpenVINO CPU (bf16)"
    assert m32.provider == "CPUExecutionProvider"
    windows, ids = _validation(data)
    p32, p16 = m32.predict(windows, ids), m16.predict(windows, ids)
    diff = np.abs(p16 - p32)
    # the export's record is this very comparison (same windows, batch-independent scoring)
    assert float(diff.max()) == m16.card.precision.max_abs_diff
    assert diff.max() <= PRECISION_TOL
    assert diff.max() > 1e-6  # bf16 really runs: fp32 runtimes agree to ~1e-7
    flips = int(np.count_nonzero((p16 >= m16.card.threshold) != (p32 >= m16.card.threshold)))
    assert flips == m16.card.precision.decisions_changed
    # bit-identical whatever the batch layout: odd chunks, the universe call, two workers, a new session
    assert np.array_equal(m16.predict(windows, ids, chunk_size=97), p16)
    assert np.array_equal(m16.predict_universe(windows[:143], ids[:143]), p16[:143])
    two = OnnxSignalModel.load(bf16, workers=2)
    assert np.array_equal(two.predict(windows, ids, chunk_size=64), p16)
    assert np.array_equal(OnnxSignalModel.load(bf16).predict(windows, ids), p16)
    # a window with a NaN still gets NaN, as on onnxruntime
    bad = windows[:3].copy()
    bad[1, 2, 3] = np.nan
    got = m16.predict(bad, ids[:3])
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()


@needs_bf16_cpu
def test_bf16_model_trades_the_same_in_batch_and_streaming_backtests(
        exports: tuple[Path, Path], real_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, bf16 = exports
    config = tmp_path / "bt.toml"
    config.write_text(
        f'[data]\ncatalog = "{real_catalog}"\nsymbols = "all"\nstart = "2023-10-02"\nend = "2023-11-30"\n'
        f'[strategy]\nkind = "signal"\nmodel = "{bf16}"\n[benchmark]\nsymbol = "SPY"\n',
        encoding="utf-8")
    fills = {}
    for mode in ("batch", "streaming"):
        main(["backtest", str(config), "--set", f'strategy.mode="{mode}"', "--out", str(tmp_path / mode)])
        fills[mode] = pd.read_parquet(tmp_path / mode / "fills.parquet")
    capsys.readouterr()
    assert len(fills["batch"]) > 0
    pd.testing.assert_frame_equal(fills["batch"], fills["streaming"])


@needs_bf16_cpu
def test_export_refuses_bf16_beyond_the_tolerance_and_writes_nothing(
        trained: tuple[Path, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _need_openvino()
    run, _ = trained
    monkeypatch.setattr(rexport, "PRECISION_TOL", 1e-9)
    out = tmp_path / "never"
    with pytest.raises(ModelContractError, match=r"bf16 probabilities differ from fp32 by up to .* \(> 1e-09; "
                                                 r".*export this model in fp32"):
        rexport.export(run, out, precision="bf16")
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_export_refuses_bf16_on_a_cpu_without_bf16(trained: tuple[Path, object], monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    _need_openvino()
    from models import openvino_runtime

    run, _ = trained
    monkeypatch.setattr(openvino_runtime, "bf16_supported", lambda: False)
    with pytest.raises(ConfigError, match="this CPU has no bf16 instructions"):
        rexport.export(run, tmp_path / "never", precision="bf16")
    assert not (tmp_path / "never").exists()


def test_without_openvino_bf16_is_refused_with_the_install_command(
        trained: tuple[Path, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run, _ = trained
    fp32 = rexport.export(run, tmp_path / "fp32").path
    # a bf16 card as the export writes it, beside the same graph
    card = json.loads((fp32 / "card.json").read_text())
    card["precision"] = {"dtype": "bf16", "runtime": "openvino", "runtime_version": "2026.4.1",
                         "checked_on": "validation split x", "windows": 10, "max_abs_diff": 2e-4,
                         "tolerance": 1e-3, "decisions_changed": 0}
    (fp32 / "card.json").write_text(json.dumps(card))
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ModelContractError, match=r"runs on OpenVINO, which is not installed: "
                                                 r"pip install -e '\.\[openvino\]'"):
        OnnxSignalModel.load(fp32)
    with pytest.raises(ConfigError, match=r"export --precision bf16: .*pip install -e '\.\[openvino\]'"):
        rexport.export(run, tmp_path / "never", precision="bf16")
    assert not (tmp_path / "never").exists()


def test_a_card_that_claims_a_failed_check_is_refused(trained: tuple[Path, object], tmp_path: Path) -> None:
    run, _ = trained
    fp32 = rexport.export(run, tmp_path / "fp32").path
    card = json.loads((fp32 / "card.json").read_text())
    card["precision"] = {"dtype": "bf16", "runtime": "openvino", "runtime_version": "2026.4.1",
                         "checked_on": "validation split x", "windows": 10, "max_abs_diff": 0.004,
                         "tolerance": 1e-3, "decisions_changed": 3}
    (fp32 / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelContractError, match=r"field 'precision.max_abs_diff'.*<= 0.001"):
        load_card(fp32)
    card["precision"].update(max_abs_diff=5e-4, tolerance=1e-4)
    (fp32 / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelContractError, match=r"precision.max_abs_diff: expected <= precision.tolerance"):
        validate_artifact(fp32)


def test_cli_unknown_precision_and_policy_precision_are_refused_before_work(
        trained: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = trained
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run), "--out", str(tmp_path / "never"), "--precision", "bf61"])
    assert exc.value.code == 2
    assert "--precision 'bf61' is unknown - did you mean 'bf16'?" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    policy_run = tmp_path / "rl"
    policy_run.mkdir()
    (policy_run / "rl_config.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(policy_run), "--out", str(tmp_path / "never"), "--precision", "bf16"])
    assert exc.value.code == 2
    assert "an RL policy is exported in fp32" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
