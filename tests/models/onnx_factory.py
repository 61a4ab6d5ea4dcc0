"""Tiny ONNX signal models built with ``onnx.helper`` - no torch - and their model cards.

Two architectures, shaped like what ``research`` exports from torch:

* **MLP**: ``features (N, L, F)`` -> Flatten -> [concat asset embedding] -> Gemm -> Relu ->
  Gemm -> Relu -> Gemm -> Sigmoid -> ``probability (N, 1)``.
* **GRU**: ``features (N, L, F)`` -> Transpose to time-major -> ``layers`` stacked ONNX ``GRU``
  ops (``linear_before_reset=1`` as torch exports) -> last hidden state, or attention pooling
  over the time steps -> [concat asset embedding] -> Gemm -> Sigmoid -> ``probability (N,)``.

Weights are random but seeded (Glorot-scaled, so probabilities stay away from 0 and 1 on
standardised inputs). ``make_mlp_artifact`` / ``make_gru_artifact`` write a complete
artifact folder (``model.onnx`` + a matching ``card.json``) that passes
``models.card.validate_artifact``; tests and benchmarks import them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.card import (
    FeatureSetRef,
    LabelSpec,
    ModelCard,
    OutputSpec,
    Scaler,
    TensorSpec,
    TrainingInfo,
    write_card,
)
from models.features import FEATURE_SET
from models.input_contract import contract_metadata

OPSET = 17


def _glorot(rng: np.random.Generator, *shape: int) -> np.ndarray:
    fan = shape[-1] + shape[-2] if len(shape) >= 2 else shape[-1]
    return rng.normal(0.0, np.sqrt(2.0 / fan), size=shape).astype(np.float32)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def _inputs(lookback: int, n_features: int, with_asset_ids: bool) -> list[onnx.ValueInfoProto]:
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", lookback, n_features])]
    if with_asset_ids:
        inputs.append(helper.make_tensor_value_info("asset_id", TensorProto.INT64, ["batch"]))
    return inputs


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    output: onnx.ValueInfoProto,
    inits: list[onnx.TensorProto],
    name: str,
    opset: int,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, [output], initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="sigtrade-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def build_mlp(
    lookback: int = 24,
    n_features: int = 14,
    hidden: Sequence[int] = (256, 128),
    seed: int = 0,
    n_assets: int = 0,
    embed_dim: int = 8,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """An MLP over the flattened window; an asset embedding is concatenated when ``n_assets``."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Flatten", ["features"], ["x0"], axis=1)]
    inits: list[onnx.TensorProto] = []
    width = lookback * n_features
    x = "x0"
    if n_assets:
        inits.append(_init("asset_embedding", rng.normal(0, 0.5, (n_assets, embed_dim)).astype(np.float32)))
        nodes += [
            helper.make_node("Gather", ["asset_embedding", "asset_id"], ["emb"], axis=0),
            helper.make_node("Concat", ["x0", "emb"], ["xc"], axis=1),
        ]
        x, width = "xc", width + embed_dim
    for i, h in enumerate(hidden):
        inits += [_init(f"w{i}", _glorot(rng, h, width)), _init(f"b{i}", rng.normal(0, 0.05, h).astype(np.float32))]
        nodes += [
            helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"g{i}"], transB=1),
            helper.make_node("Relu", [f"g{i}"], [f"h{i}"]),
        ]
        x, width = f"h{i}", h
    inits += [_init("w_out", _glorot(rng, 1, width)), _init("b_out", np.zeros(1, np.float32))]
    nodes += [
        helper.make_node("Gemm", [x, "w_out", "b_out"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])
    return _model(nodes, _inputs(lookback, n_features, bool(n_assets)), out, inits, "mlp", opset)


def build_gru(
    lookback: int = 24,
    n_features: int = 14,
    hidden: int = 32,
    layers: int = 1,
    attention: bool = False,
    seed: int = 0,
    n_assets: int = 0,
    embed_dim: int = 8,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """Stacked GRU (torch-style gates) with last-state or attention pooling and a sigmoid head."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Transpose", ["features"], ["x_tm"], perm=[1, 0, 2])]
    inits: list[onnx.TensorProto] = []
    x, width = "x_tm", n_features
    for k in range(layers):
        inits += [
            _init(f"gru{k}_W", _glorot(rng, 1, 3 * hidden, width)),
            _init(f"gru{k}_R", _glorot(rng, 1, 3 * hidden, hidden)),
            _init(f"gru{k}_B", rng.normal(0, 0.05, (1, 6 * hidden)).astype(np.float32)),
            _init(f"axes{k}", np.array([1], np.int64)),
        ]
        nodes += [
            helper.make_node(
                "GRU",
                [x, f"gru{k}_W", f"gru{k}_R", f"gru{k}_B"],
                [f"y{k}", f"yh{k}"],
                hidden_size=hidden,
                linear_before_reset=1,
            ),
            helper.make_node("Squeeze", [f"y{k}", f"axes{k}"], [f"s{k}"]),  # (L, N, H)
        ]
        x, width = f"s{k}", hidden
    inits.append(_init("axis0", np.array([0], np.int64)))
    if attention:
        inits += [_init("att_w", _glorot(rng, hidden, 1)), _init("att_b", np.zeros(1, np.float32))]
        nodes += [
            helper.make_node("MatMul", [x, "att_w"], ["att_s0"]),  # (L, N, 1)
            helper.make_node("Add", ["att_s0", "att_b"], ["att_s"]),
            helper.make_node("Softmax", ["att_s"], ["att_p"], axis=0),
            helper.make_node("Mul", [x, "att_p"], ["att_y"]),
            helper.make_node("ReduceSum", ["att_y", "axis0"], ["pooled"], keepdims=0),  # (N, H)
        ]
    else:
        nodes.append(helper.make_node("Squeeze", [f"yh{layers - 1}", "axis0"], ["pooled"]))
    x = "pooled"
    if n_assets:
        inits.append(_init("asset_embedding", rng.normal(0, 0.5, (n_assets, embed_dim)).astype(np.float32)))
        nodes += [
            helper.make_node("Gather", ["asset_embedding", "asset_id"], ["emb"], axis=0),
            helper.make_node("Concat", ["pooled", "emb"], ["pc"], axis=1),
        ]
        x, width = "pc", width + embed_dim
    inits += [
        _init("w_out", _glorot(rng, 1, width)),
        _init("b_out", np.zeros(1, np.float32)),
        _init("flat", np.array([-1], np.int64)),
    ]
    nodes += [
        helper.make_node("Gemm", [x, "w_out", "b_out"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["p2"]),
        helper.make_node("Reshape", ["p2", "flat"], ["probability"]),
    ]
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"])
    return _model(nodes, _inputs(lookback, n_features, bool(n_assets)), out, inits, "gru", opset)


def identity_scaler(n_features: int) -> tuple[list[float], list[float]]:
    """Mean 0, std 1: inputs pass through unscaled."""
    return [0.0] * n_features, [1.0] * n_features


def fit_scaler(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Column mean and std of the finite rows of *x* ``(T, F)`` (std 1 where a column is flat)."""
    rows = x[np.isfinite(x).all(axis=1)].astype(np.float64)
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std[~(std > 0)] = 1.0
    return mean.tolist(), std.tolist()


def write_artifact(
    directory: Path | str,
    model: onnx.ModelProto,
    *,
    architecture: str,
    lookback: int,
    features: Sequence[str],
    feature_set_name: str = FEATURE_SET.name,
    feature_set_version: str = FEATURE_SET.version,
    asset_map: dict[str, int] | None = None,
    bar: str = "1-HOUR",
    f1: float | None = 0.55,
    threshold: float = 0.5,
    scaler: tuple[Sequence[float], Sequence[float]] | None = None,
    prob_quantiles: Sequence[float] | None = None,
    output_shape: Sequence[int] = (-1, 1),
    seed: int = 0,
    contract: bool = True,
) -> Path:
    """Write ``model.onnx`` and a card matching it into *directory*; return the directory.

    The graph carries the input contract of :mod:`models.input_contract` (as an export
    writes it) unless ``contract`` is False (a model exported before the contract existed).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mean, std = scaler if scaler is not None else identity_scaler(len(features))
    if contract:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        onnx.helper.set_model_props(model, contract_metadata(
            feature_set=feature_set_name, version=feature_set_version, features=features, lookback=lookback,
            scaler_mean=[float(m) for m in mean], scaler_std=[float(s) for s in std], asset_map=asset_map,
        ))
    blob = model.SerializeToString()
    (directory / "model.onnx").write_bytes(blob)
    inputs = [TensorSpec(name="features", shape=(-1, lookback, len(features)), dtype="float32")]
    if asset_map is not None:
        inputs.append(TensorSpec(name="asset_id", shape=(-1,), dtype="int64"))
    validation: dict[str, float | list[float]] = {"roc_auc": 0.55}
    if f1 is not None:
        validation["f1"] = f1
    if prob_quantiles is not None:
        validation["prob_quantiles"] = [float(q) for q in prob_quantiles]
    card = ModelCard(
        name=directory.name,
        architecture=architecture,
        feature_set=FeatureSetRef(
            name=feature_set_name, version=feature_set_version, features=tuple(features)
        ),
        lookback=lookback,
        bar=bar,
        scaler=Scaler(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std)),
        asset_map=asset_map,
        inputs=tuple(inputs),
        output=OutputSpec(name="probability", shape=tuple(output_shape)),
        label=LabelSpec(kind="threshold", horizon=1, params={"min_return": 0.0}),
        threshold=threshold,
        training=TrainingInfo(
            data_start="2021-10-19",
            data_end="2026-08-01",
            train="2021-10-19..2024-06-30",
            validation="2024-07-01..2025-06-30",
            test="2025-07-01..2026-08-01",
            command=f"tests.models.onnx_factory (seed {seed}): random weights, not trained",
            seed=seed,
        ),
        metrics={"validation": validation},
        sentiment=None,
        onnx_sha256=hashlib.sha256(blob).hexdigest(),
        opset=next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
    )
    write_card(card, directory / "card.json")
    return directory


def make_mlp_artifact(
    directory: Path | str,
    lookback: int = 24,
    features: Sequence[str] = FEATURE_SET.features,
    seed: int = 0,
    with_asset_ids: bool = False,
    asset_map: dict[str, int] | None = None,
    bar: str = "1-HOUR",
    f1: float | None = 0.55,
    *,
    hidden: Sequence[int] = (64, 32),
    threshold: float = 0.5,
    scaler: tuple[Sequence[float], Sequence[float]] | None = None,
    prob_quantiles: Sequence[float] | None = None,
) -> Path:
    """Write a seeded MLP artifact (``architecture="mlp"``, output shape ``[-1, 1]``).

    ``with_asset_ids`` adds an ``asset_id`` input (embedding table of ``len(asset_map)``
    rows); without an ``asset_map`` one is made up (``SYM0``, ``SYM1``, ...).
    """
    asset_map = _asset_map(with_asset_ids, asset_map)
    model = build_mlp(lookback, len(features), hidden, seed, n_assets=len(asset_map or {}))
    return write_artifact(
        directory, model, architecture="mlp", lookback=lookback, features=features,
        asset_map=asset_map, bar=bar, f1=f1, threshold=threshold, scaler=scaler,
        prob_quantiles=prob_quantiles, output_shape=(-1, 1), seed=seed,
    )


def make_gru_artifact(
    directory: Path | str,
    lookback: int = 24,
    features: Sequence[str] = FEATURE_SET.features,
    seed: int = 0,
    with_asset_ids: bool = False,
    asset_map: dict[str, int] | None = None,
    bar: str = "1-HOUR",
    f1: float | None = 0.55,
    *,
    hidden: int = 16,
    layers: int = 1,
    attention: bool = False,
    threshold: float = 0.5,
    scaler: tuple[Sequence[float], Sequence[float]] | None = None,
    prob_quantiles: Sequence[float] | None = None,
) -> Path:
    """Write a seeded GRU artifact (``architecture="gru"``, output shape ``[-1]``)."""
    asset_map = _asset_map(with_asset_ids, asset_map)
    model = build_gru(
        lookback, len(features), hidden, layers, attention, seed, n_assets=len(asset_map or {})
    )
    return write_artifact(
        directory, model, architecture="gru", lookback=lookback, features=features,
        asset_map=asset_map, bar=bar, f1=f1, threshold=threshold, scaler=scaler,
        prob_quantiles=prob_quantiles, output_shape=(-1,), seed=seed,
    )


def _asset_map(with_asset_ids: bool, asset_map: dict[str, int] | None) -> dict[str, int] | None:
    if not with_asset_ids and asset_map is None:
        return None
    return asset_map if asset_map is not None else {f"SYM{i}": i for i in range(4)}
