"""Small ONNX policies built without torch (onnx.helper), with valid ``kind = "policy"`` cards.

:func:`make_policy_artifact` writes a linear policy: ``logits = flatten(features) @ W +
norm(state) @ V + c``, with the environment's state normalisation inside the graph (as
:mod:`research.rl.export` folds it in). The default weights make a momentum rule: prefer
``long`` when the last bar's scaled ``log_ret_1`` is positive, with some preference for
keeping the current position, so it trades often and every action is exercised.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.card import (
    CARD_FILE,
    MODEL_FILE,
    FeatureSetRef,
    Scaler,
    TensorSpec,
    TrainingInfo,
    write_card,
)
from models.feature_set import SEED14_V1
from models.policy import ObservationSpec, PolicyCard, StateField

OFFSET = np.array([0.0, 0.0, 0.0, 0.5], np.float32)
SCALE = np.array([1.0, 20.0, 0.01, 4.0], np.float32)
CLIP = np.array([1.0, 5.0, 5.0, 2.0], np.float32)
NAMES = ("position", "unrealised_return", "bars_held", "probability")


def policy_graph(lookback: int, n_features: int, n_state: int, w: np.ndarray, v: np.ndarray, c: np.ndarray,
                 metadata: dict[str, str] | None = None) -> bytes:
    """The linear policy graph as ONNX bytes (opset 17, dynamic batch)."""
    n_actions = w.shape[1]
    inits = [
        numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(v.astype(np.float32), "V"),
        numpy_helper.from_array(c.astype(np.float32), "C"),
        numpy_helper.from_array(OFFSET[:n_state], "off"), numpy_helper.from_array(SCALE[:n_state], "sc"),
        numpy_helper.from_array(CLIP[:n_state], "hi"), numpy_helper.from_array(-CLIP[:n_state], "lo"),
        numpy_helper.from_array(np.array([-1, lookback * n_features], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Reshape", ["features", "shape"], ["flat"]),
        helper.make_node("Sub", ["state", "off"], ["s0"]), helper.make_node("Mul", ["s0", "sc"], ["s1"]),
        helper.make_node("Min", ["s1", "hi"], ["s2"]), helper.make_node("Max", ["s2", "lo"], ["s3"]),
        helper.make_node("MatMul", ["flat", "W"], ["a"]), helper.make_node("MatMul", ["s3", "V"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["ab"]), helper.make_node("Add", ["ab", "C"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "policy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", lookback, n_features]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", n_state])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_actions])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_policy_artifact(
    folder: Path,
    *,
    lookback: int = 6,
    actions: tuple[str, ...] = ("flat", "long"),
    scaler: tuple[list[float], list[float]] | None = None,
    momentum: float = 4.0,
    stickiness: float = 0.5,
    gate: dict[str, Any] | None = None,
    bar: str = "1-HOUR",
    bias: float = 0.0,
    held_weight: float = 0.0,
) -> Path:
    """Write ``model.onnx`` + ``card.json`` of a linear momentum policy into *folder*; return it.

    *bias* favours ``long``; a negative *held_weight* makes a long position lose its appeal
    as its bars held grow (``bias=1, held_weight=-200``: enter, hold one bar, exit, repeat).
    """
    features = SEED14_V1.features
    n_features = len(features)
    n_state = 4 if gate else 3
    n_actions = len(actions)
    w = np.zeros((lookback * n_features, n_actions), np.float32)
    col = (lookback - 1) * n_features + features.index("log_ret_1")
    w[col, 1] = momentum
    if n_actions == 3 and not gate:
        w[col, 2] = -momentum
    v = np.zeros((n_state, n_actions), np.float32)
    v[0, 1] = stickiness
    if n_actions == 3 and not gate:
        v[0, 2] = -stickiness
    if gate:
        v[3, 1] = 1.0
    v[2, 1] = held_weight  # < 0: a long position is given up as it ages
    c = np.zeros(n_actions, np.float32)
    c[1] = bias
    mean, std = scaler or ([0.0] * n_features, [1.0] * n_features)
    meta = _contract(lookback, mean, std)
    blob = policy_graph(lookback, n_features, n_state, w, v, c, meta)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(blob)
    card = PolicyCard(
        name=folder.name, algorithm="linear-test-policy",
        feature_set=FeatureSetRef(name="seed14", version="1", features=features), lookback=lookback, bar=bar,
        scaler=Scaler(mean=tuple(mean), std=tuple(std)),
        observation=ObservationSpec(lookback=lookback, n_features=n_features, state=tuple(
            StateField(name=NAMES[u], offset=float(OFFSET[u]), scale=float(SCALE[u]), clip=float(CLIP[u]))  # type: ignore[arg-type]
            for u in range(n_state))),
        actions=actions,
        inputs=(TensorSpec(name="features", shape=(-1, lookback, n_features), dtype="float32"),
                TensorSpec(name="state", shape=(-1, n_state), dtype="float32")),
        output=TensorSpec(name="logits", shape=(-1, n_actions), dtype="float32"),
        gate=None if gate is None else gate["spec"],
        training=TrainingInfo(data_start="", data_end="", train="", validation="", test="",
                              command="tests.models.policy_factory.make_policy_artifact", seed=0),
        onnx_sha256=hashlib.sha256(blob).hexdigest(), opset=17,
    )
    write_card(card, folder / CARD_FILE)
    return folder


def _contract(lookback: int, mean: list[float], std: list[float]) -> dict[str, str]:
    try:
        from models.input_contract import contract_metadata
    except ImportError:  # before the input contract existed
        return {}
    return contract_metadata(feature_set="seed14", version="1", features=SEED14_V1.features, lookback=lookback,
                             scaler_mean=mean, scaler_std=std)
