"""Model cards: schema, the artifact checks, and the messages a user sees when one fails."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from models.card import load_card, validate_artifact, write_card
from models.errors import CardMismatchError, FeatureSetError, ModelContractError
from tests.models.onnx_factory import (
    build_mlp,
    make_gru_artifact,
    make_mlp_artifact,
    write_artifact,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mlp_dir(tmp_path: Path) -> Path:
    return make_mlp_artifact(tmp_path / "mlp")


@pytest.fixture
def gru_ids_dir(tmp_path: Path) -> Path:
    return make_gru_artifact(tmp_path / "gru", lookback=12, with_asset_ids=True,
                             asset_map={"AAPL": 0, "MSFT": 1, "SPY": 2})


def _edit(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    card = json.loads((folder / "card.json").read_text())
    change(card)
    (folder / "card.json").write_text(json.dumps(card, indent=2))


def _rehash(folder: Path) -> None:
    digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    _edit(folder, lambda c: c.__setitem__("onnx_sha256", digest))


# --- the good path -----------------------------------------------------------------------


def test_factory_artifacts_validate_without_warnings(mlp_dir: Path, gru_ids_dir: Path) -> None:
    for folder in (mlp_dir, gru_ids_dir):
        card, warnings = validate_artifact(folder)
        assert warnings == []
        assert card.name == folder.name
    card = load_card(gru_ids_dir)
    assert card.has_asset_ids
    assert card.asset_map == {"AAPL": 0, "MSFT": 1, "SPY": 2}
    assert [s.name for s in card.inputs] == ["features", "asset_id"]
    assert card.inputs[0].shape == (-1, 12, 19)


def test_write_card_round_trips_and_leaves_no_temp_file(mlp_dir: Path, tmp_path: Path) -> None:
    card = load_card(mlp_dir)
    out = write_card(card, tmp_path / "copy" / "card.json")
    assert load_card(out) == card
    assert [p.name for p in out.parent.iterdir()] == ["card.json"]
    # a card is JSON a human can read and diff
    assert json.loads(out.read_text())["lookback"] == 24


# --- every card field, tampered: the message names it --------------------------------------

TAMPER: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("schema_version", lambda c: c.update(schema_version=2), "schema_version"),
    ("name", lambda c: c.update(name=7), "'name'"),
    ("architecture", lambda c: c.pop("architecture"), "architecture"),
    ("feature_set.name", lambda c: c["feature_set"].update(name="seed99"), "seed99@1"),
    ("feature_set.version", lambda c: c["feature_set"].update(version="9"), "seed14@9"),
    ("feature_set.features unknown", lambda c: c["feature_set"]["features"].__setitem__(0, "rsi_99"),
     "rsi_99"),
    ("feature_set.features dropped", lambda c: c["feature_set"]["features"].pop(), "feature_set.features"),
    ("lookback", lambda c: c.update(lookback=48), "lookback"),
    ("lookback type", lambda c: c.update(lookback="24"), "lookback"),
    ("bar", lambda c: c.update(bar="hourly"), "bar"),
    ("scaler.kind", lambda c: c["scaler"].update(kind="minmax"), "scaler.kind"),
    ("scaler.mean", lambda c: c["scaler"]["mean"].pop(), "scaler.mean"),
    ("scaler.std", lambda c: c["scaler"]["std"].append(1.0), "scaler.std"),
    ("scaler.std negative", lambda c: c["scaler"]["std"].__setitem__(3, -1.0), "scaler.std"),
    ("asset_map", lambda c: c.update(asset_map={"AAPL": 0}), "asset_map"),
    ("inputs name", lambda c: c["inputs"][0].update(name="x"), "inputs"),
    ("inputs dtype", lambda c: c["inputs"][0].update(dtype="int64"), "inputs[features].dtype"),
    ("inputs rank", lambda c: c["inputs"][0].update(shape=[-1, 456]), "inputs[features].shape"),
    ("inputs window", lambda c: c["inputs"][0].update(shape=[-1, 12, 19]), "inputs[features].shape[1]"),
    ("output.name", lambda c: c["output"].update(name="logits"), "output.name"),
    ("output.shape", lambda c: c["output"].update(shape=[-1, 2]), "output.shape"),
    ("output.dtype", lambda c: c["output"].update(dtype="float64"), "output.dtype"),
    ("label.kind", lambda c: c["label"].update(kind="sign"), "label.kind"),
    ("label.horizon", lambda c: c["label"].update(horizon=0), "label.horizon"),
    ("threshold", lambda c: c.update(threshold=1.5), "threshold"),
    ("training.command", lambda c: c["training"].pop("command"), "training.command"),
    ("metrics", lambda c: c.update(metrics={"validation": {"f1": "high"}}), "metrics"),
    ("onnx_sha256 other", lambda c: c.update(onnx_sha256="0" * 64), "onnx_sha256"),
    ("onnx_sha256 not hex", lambda c: c.update(onnx_sha256="abc"), "onnx_sha256"),
    ("opset", lambda c: c.update(opset=21), "opset"),
    ("unknown field", lambda c: c.update(threshhold=0.5), "threshhold"),
    ("unknown nested field", lambda c: c["training"].update(gpu="A100"), "training.gpu"),
]


@pytest.mark.parametrize(("change", "field"), [(t[1], t[2]) for t in TAMPER],
                         ids=[t[0] for t in TAMPER])
def test_tampered_card_is_refused_naming_the_field(
    mlp_dir: Path, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    _edit(mlp_dir, change)
    with pytest.raises(ModelContractError) as info:
        validate_artifact(mlp_dir)
    message = str(info.value)
    assert field in message
    assert str(mlp_dir / "card.json") in message


def test_mismatch_names_expected_and_found(mlp_dir: Path) -> None:
    _edit(mlp_dir, lambda c: c.update(lookback=48))
    with pytest.raises(CardMismatchError) as info:
        validate_artifact(mlp_dir)
    err = info.value
    assert (err.field, err.found) == ("lookback", 48)
    assert "expected 24" in str(err)
    assert "found 48" in str(err)


def test_unknown_feature_set_version_is_a_feature_set_error(mlp_dir: Path) -> None:
    _edit(mlp_dir, lambda c: c["feature_set"].update(version="2"))
    with pytest.raises(FeatureSetError, match=r"seed14@2.*available: seed14@1"):
        validate_artifact(mlp_dir)


def test_asset_map_missing_for_a_model_with_asset_ids(gru_ids_dir: Path) -> None:
    _edit(gru_ids_dir, lambda c: c.update(asset_map=None))
    with pytest.raises(CardMismatchError, match="asset_map") as info:
        validate_artifact(gru_ids_dir)
    assert "asset_id input" in str(info.value)


def test_asset_id_input_missing_from_the_card(gru_ids_dir: Path) -> None:
    _edit(gru_ids_dir, lambda c: c.update(inputs=c["inputs"][:1], asset_map=None))
    with pytest.raises(CardMismatchError, match=r"inputs: expected the graph's inputs \['asset_id', 'features'\]"):
        validate_artifact(gru_ids_dir)


# --- the ONNX file -------------------------------------------------------------------------


def test_changed_model_file_fails_the_hash(mlp_dir: Path, tmp_path: Path) -> None:
    other = make_mlp_artifact(tmp_path / "other", seed=1)
    (mlp_dir / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    with pytest.raises(CardMismatchError, match="onnx_sha256: expected") as info:
        validate_artifact(mlp_dir)
    assert "re-export" in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_onnx_is_a_contract_error(mlp_dir: Path, damage: str) -> None:
    blob = (mlp_dir / "model.onnx").read_bytes()
    bad = blob[: len(blob) // 3] if damage == "truncate" else b"\x08\x07not an onnx model" * 50
    (mlp_dir / "model.onnx").write_bytes(bad)
    _rehash(mlp_dir)  # the card agrees with the file: only the content is wrong
    with pytest.raises(CardMismatchError, match=r"model.onnx: expected a valid ONNX model, found a corrupt"):
        validate_artifact(mlp_dir)


def test_missing_files(mlp_dir: Path, tmp_path: Path) -> None:
    (mlp_dir / "model.onnx").unlink()
    with pytest.raises(ModelContractError, match=r"model.onnx: missing"):
        validate_artifact(mlp_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelContractError, match="no model card"):
        validate_artifact(tmp_path / "empty")


def test_graph_with_a_fixed_batch_axis_is_refused(tmp_path: Path) -> None:
    model = build_mlp(24, 19, (16,))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    write_artifact(tmp_path / "fixed", model, architecture="mlp", lookback=24,
                   features=load_features())
    with pytest.raises(CardMismatchError, match=r"inputs\[features\].shape\[0\]: expected a dynamic"):
        validate_artifact(tmp_path / "fixed")


def test_graph_with_float64_input_is_refused(tmp_path: Path) -> None:
    model = build_mlp(24, 19, (16,))
    graph = model.graph
    graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    graph.node.insert(0, helper.make_node("Cast", ["features"], ["features_f"], to=TensorProto.FLOAT))
    graph.node[1].input[0] = "features_f"
    onnx.checker.check_model(model)
    write_artifact(tmp_path / "f64", model, architecture="mlp", lookback=24, features=load_features())
    with pytest.raises(CardMismatchError, match=r"inputs\[features\].dtype: expected float32, found float64"):
        validate_artifact(tmp_path / "f64")


def test_output_without_sigmoid_is_not_a_probability(tmp_path: Path) -> None:
    model = build_mlp(24, 19, (16,))
    sigmoid = model.graph.node[-1]
    assert sigmoid.op_type == "Sigmoid"
    model.graph.initializer.append(onnx.numpy_helper.from_array(_np_float(3.0), "three"))
    model.graph.node.remove(sigmoid)
    model.graph.node.append(helper.make_node("Add", ["logit", "three"], ["probability"]))
    write_artifact(tmp_path / "logits", model, architecture="mlp", lookback=24, features=load_features())
    with pytest.raises(CardMismatchError, match=r"output.meaning: expected probabilities in \[0, 1\]"):
        validate_artifact(tmp_path / "logits")
    # the structural checks alone pass: only the smoke run catches it
    validate_artifact(tmp_path / "logits", smoke=False)


def _np_float(value: float) -> Any:
    import numpy as np

    return np.array([value], dtype=np.float32)


def load_features() -> tuple[str, ...]:
    from models.features import FEATURE_SET

    return FEATURE_SET.features


# --- CLI -----------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", "models", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_validate_ok_and_broken(mlp_dir: Path) -> None:
    ok = _cli("validate", str(mlp_dir))
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout
    _edit(mlp_dir, lambda c: c.update(lookback=48))
    bad = _cli("validate", str(mlp_dir))
    assert bad.returncode == 4
    assert "lookback" in bad.stderr
    assert "expected 24" in bad.stderr
    assert "Traceback" not in bad.stderr
    # messages with brackets survive the rich console verbatim
    _edit(mlp_dir, lambda c: c.update(lookback=24) or c["inputs"][0].update(dtype="int64"))
    bracket = _cli("validate", str(mlp_dir))
    assert bracket.returncode == 4
    assert "inputs[features].dtype: expected int64" in " ".join(bracket.stderr.split())


def test_cli_list_and_inspect(tmp_path: Path) -> None:
    make_mlp_artifact(tmp_path / "alpha", f1=0.61)
    broken = make_gru_artifact(tmp_path / "beta")
    (broken / "model.onnx").write_bytes(b"junk")
    listed = _cli("list", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    out = " ".join(listed.stdout.split())
    assert "alpha" in out
    assert "beta" in out
    assert "0.610" in out
    assert "yes" in out
    assert "no" in out
    shown = _cli("inspect", str(tmp_path / "alpha"))
    assert shown.returncode == 0, shown.stderr
    assert '"lookback": 24' in shown.stdout
    assert "valid" in shown.stdout
    assert '"sma_dist_20"' in shown.stdout
    missing = _cli("validate", str(tmp_path / "nowhere"))
    assert missing.returncode == 4
    assert "not a model folder" in missing.stderr
