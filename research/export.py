"""Export a training checkpoint to a model artifact the engine loads: ``model.onnx`` + ``card.json``.

The graph follows the contract in :mod:`models.card`: input ``features`` ``[-1, L, F]``
float32 (already scaled), input ``asset_id`` ``[-1]`` int64 when the network has an
asset embedding, output ``probability`` ``[-1]`` float32 with the sigmoid inside the
graph; ONNX opset 17, dynamic batch axis. The card records the scaler fitted on the
training split, the asset map, the label, the decision threshold (the grid threshold
with the best validation F1 among those calling 1-95 % of windows positive, see
:func:`engine.stats.classification.best_threshold`), the data ranges, the exact command that reproduces the
artifact, and the best epoch's validation metrics including ``f1`` (at that threshold)
and ``prob_quantiles`` (101 percentiles of the validation probabilities, used by
``rank_average`` ensembles).

GRU networks (without a convolution front-end) are exported by default in the unrolled
form of :mod:`research.unrolled` (``gru_graph = "unrolled"``: the same parameters, a graph
of GEMMs that onnxruntime's CPU provider runs about twice as fast as its fused ``GRU``
kernel); ``gru_graph = "fused"`` (``sigtrade export --gru-graph fused``) writes the single
ONNX ``GRU`` op instead - for runtimes with a fast fused kernel (cuDNN through the CUDA
provider). The choice is recorded in the card's command. Other architectures are exported
as traced, whatever *gru_graph* says.

``precision = "bf16"`` (``sigtrade export --precision bf16``, the ``[openvino]`` extra) keeps
the same fp32 graph and records in the card (:class:`models.card.PrecisionSpec`) that it
runs on OpenVINO in bf16 (AMX / AVX512_BF16 matmuls, fp32 accumulation; about 2x the
fp32 rate for a seed-sized GRU, ``benchmarks/live.py``). It is an explicit option, never a
default, and it is refused unless it passes its accuracy check: the training data's
validation windows (real bars, rebuilt from the checkpoint's config, at most
:data:`PRECISION_WINDOWS` evenly spaced) scored in fp32 (onnxruntime) and in bf16 must
agree within :data:`models.card.PRECISION_TOL` (1e-3); the largest difference and the
number of decisions that flip at the card's threshold are written to the card. On a CPU
without bf16 instructions the option is refused (OpenVINO would compute in fp32 and the
check would prove nothing).

Before returning, the export scores seeded random windows with torch and onnxruntime
(max abs difference must be <= 1e-5) and runs :func:`models.card.validate_artifact`.
The resolved training config is written beside the card as ``train_config.json`` so
``sigtrade evaluate`` can rebuild the same splits.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from engine.errors import ConfigError, SigtradeError, did_you_mean
from models.card import (
    CARD_FILE,
    MODEL_FILE,
    PRECISION_TOL,
    FeatureSetRef,
    LabelSpec,
    ModelCard,
    OutputSpec,
    PrecisionSpec,
    Scaler,
    TensorSpec,
    TrainingInfo,
    validate_artifact,
    write_card,
)
from models.errors import ModelContractError
from models.input_contract import contract_metadata
from research.config import MODEL_CONFIG_FILE, TrainConfig
from research.nets import SignalNet
from research.train import load_checkpoint, net_from_checkpoint
from research.unrolled import UnrolledGRU, supports_unrolled

__all__ = ["GRU_GRAPHS", "OPSET", "PARITY_TOL", "PRECISIONS", "ExportResult", "export", "onnx_bytes"]

OPSET = 17
PARITY_TOL = 1e-5
OUTPUT_NAME = "probability"
GRU_GRAPHS = ("unrolled", "fused")
"""How a GRU network is written: unrolled over the lookback (default) or one fused ONNX ``GRU`` op."""
PRECISIONS = ("fp32", "bf16")
"""Arithmetic of the artifact: fp32 on onnxruntime (default) or bf16 on OpenVINO (checked at export)."""
PRECISION_WINDOWS = 20_000
"""At most this many validation windows (evenly spaced) are scored in both precisions."""


@dataclass(frozen=True)
class ExportResult:
    """Where the artifact went and what it says."""

    path: Path
    card: ModelCard
    max_abs_diff: float
    warnings: list[str]


class _WithIds(nn.Module):
    def __init__(self, net: SignalNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, asset_id: torch.Tensor) -> torch.Tensor:
        return self.net(features, asset_id)


class _NoIds(nn.Module):
    def __init__(self, net: SignalNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def check_option(flag: str, value: str, choices: tuple[str, ...]) -> str:
    """*value* if it is one of *choices*, else a ConfigError naming the export's option *flag*."""
    if value not in choices:
        raise ConfigError(
            f"export: {flag} '{value}' is unknown{did_you_mean(value, choices)} "
            f"(choose one of {', '.join(choices)})"
        )
    return value


def _score(run: Any, windows: np.ndarray, ids: np.ndarray | None, chunk: int = 512) -> np.ndarray:
    """float64 probabilities of *windows* through ``run(feeds)``, *chunk* windows a call."""
    out = []
    for start in range(0, len(windows), chunk):
        feeds: dict[str, np.ndarray] = {"features": np.ascontiguousarray(windows[start : start + chunk])}
        if ids is not None:
            feeds["asset_id"] = np.ascontiguousarray(ids[start : start + chunk])
        out.append(np.asarray(run(feeds)).reshape(-1).astype(np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def _precision_check(blob: bytes, dtype: str, cfg: TrainConfig, uses_ids: bool, threshold: float,
                     source: str | Path) -> PrecisionSpec:
    """Score the validation windows of *cfg*'s data in fp32 and in *dtype*; the card's record of it.

    Raises ConfigError when the check cannot run here (no OpenVINO, no bf16 on this CPU, the
    training data cannot be rebuilt) and ModelContractError when the probabilities differ by
    more than :data:`PRECISION_TOL`.
    """
    import onnxruntime as ort

    from models.openvino_runtime import OpenVinoSession, bf16_supported, openvino_version
    from research.train import prepare_data

    what = f"export --precision {dtype}"
    assert dtype == "bf16", dtype  # the one reduced precision (check_option)
    try:
        version = openvino_version()
        native = bf16_supported()
    except ModelContractError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    if not native:
        raise ConfigError(
            f"{what}: this CPU has no bf16 instructions (AMX or AVX512_BF16), so OpenVINO would compute "
            f"in fp32 and the accuracy check would prove nothing; export in fp32 (no --precision) here, "
            f"or export on a CPU that has them"
        )
    try:
        data = prepare_data(cfg)
    except SigtradeError as exc:
        raise ConfigError(
            f"{what} checks the model on the validation windows of its training data, which could not "
            f"be rebuilt from {source}'s config: {exc}"
        ) from None
    split = data.splits["validation"]
    if split.n == 0:
        raise ConfigError(f"{what}: the training config's validation range holds no windows to check on")
    pick = np.unique(np.linspace(0, split.n - 1, min(split.n, PRECISION_WINDOWS)).round().astype(np.int64))
    windows = data.window_view()[split.ends[pick] - (data.lookback - 1)]
    ids = split.asset_ids[pick].astype(np.int64) if uses_ids else None
    fp32 = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    low = OpenVinoSession(blob, dtype, 1, 1, f"{source} ({dtype})")
    want = _score(lambda f: fp32.run([OUTPUT_NAME], f)[0], windows, ids)
    got = _score(lambda f: low.run([OUTPUT_NAME], f)[0], windows, ids)
    diff = float(np.max(np.abs(got - want)))
    flips = int(np.count_nonzero((got >= threshold) != (want >= threshold)))
    checked_on = f"validation split {split.range_text or cfg.data.validation}"
    if not diff <= PRECISION_TOL:
        raise ModelContractError(
            f"{what}: on {pick.size:,} real windows of the {checked_on} the {dtype} probabilities differ "
            f"from fp32 by up to {diff:.2e} (> {PRECISION_TOL:g}; {flips:,} decisions at threshold "
            f"{threshold:.2f} flip); export this model in fp32 (no --precision)"
        )
    return PrecisionSpec(dtype="bf16", runtime="openvino", runtime_version=version, checked_on=checked_on,
                         windows=int(pick.size), max_abs_diff=diff, tolerance=PRECISION_TOL,
                         decisions_changed=flips)


def onnx_bytes(net: SignalNet, n_assets: int = 0, gru_graph: str = "unrolled") -> bytes:
    """Serialise *net* (eval mode) to ONNX bytes with the card's input and output names.

    A GRU network is written unrolled (:class:`research.unrolled.UnrolledGRU`, its
    parameters stored as torch holds them) unless ``gru_graph = "fused"``.
    """
    net = net.eval()
    unrolled = check_option("--gru-graph", gru_graph, GRU_GRAPHS) == "unrolled" and supports_unrolled(net)
    x = torch.zeros(2, net.lookback, net.n_features)
    dynamic: dict[str, dict[int, str]] = {"features": {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if net.uses_asset_id:
        module: nn.Module = UnrolledGRU(net) if unrolled else _WithIds(net)
        args: tuple[torch.Tensor, ...] = (x, torch.zeros(2, dtype=torch.long))
        names = ["features", "asset_id"]
        dynamic["asset_id"] = {0: "batch"}
    else:
        module = UnrolledGRU(net) if unrolled else _NoIds(net)
        args, names = (x,), ["features"]
    module.eval()  # the exporter restores the wrapper's mode afterwards: it must be eval too
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation, tracer and GRU batch notes
        torch.onnx.export(
            module, args, buf, dynamo=False, input_names=names, output_names=[OUTPUT_NAME],
            opset_version=OPSET, dynamic_axes=dynamic,
            # unrolled: keep the parameters as they are; onnxruntime folds their rearrangement
            do_constant_folding=not unrolled,
        )
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "sigtrade.research"
    model.doc_string = f"sigtrade {net.architecture} signal model: probability that the label is positive"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _parity(blob: bytes, net: SignalNet, n_assets: int, seed: int = 0, n: int = 64) -> float:
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, net.lookback, net.n_features)).astype(np.float32)
    feeds: dict[str, np.ndarray] = {"features": x}
    ids = None
    if net.uses_asset_id:
        ids = rng.integers(0, n_assets, n).astype(np.int64)
        feeds["asset_id"] = ids
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    net.eval()
    got = np.asarray(session.run([OUTPUT_NAME], feeds)[0]).reshape(-1)
    with torch.no_grad():
        want = net(torch.from_numpy(x), None if ids is None else torch.from_numpy(ids)).numpy()
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


def _write_bytes(file: Path, blob: bytes) -> None:
    """Write through a temp file in the same folder and a rename (never a half-written file)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite_metrics(values: dict[str, Any]) -> dict[str, float | list[float]]:
    out: dict[str, float | list[float]] = {}
    for key, value in values.items():
        if isinstance(value, list):
            out[key] = [float(v) for v in value]
        elif isinstance(value, int | float) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def export(
    source: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    command: str | None = None,
    gru_graph: str = "unrolled",
    precision: str = "fp32",
) -> ExportResult:
    """Export the checkpoint at *source* (a run folder or a ``best.pt``) to the folder *out*.

    Parameters
    ----------
    source : path
        ``runs/<name>`` or ``runs/<name>/best.pt``.
    out : path
        Artifact folder, e.g. ``models/<name>``; created if needed, files replaced.
    name : str, optional
        The card's model name; default the folder's name.
    command : str, optional
        How the export was run (appended to the training command in the card).
    gru_graph : {"unrolled", "fused"}
        How a GRU network is written (see the module docstring); other architectures
        ignore it.
    precision : {"fp32", "bf16"}
        Arithmetic of the artifact (see the module docstring); ``bf16`` needs the
        ``[openvino]`` extra, a CPU with bf16 instructions and the training data.

    Raises
    ------
    ConfigError
        No checkpoint at *source*, an unknown *gru_graph* or *precision*, or a bf16
        check that cannot run here.
    ModelContractError
        The ONNX graph disagrees with torch beyond 1e-5, a bf16 graph with fp32 beyond
        1e-3 on the validation windows, or the artifact fails validation.
    """
    check_option("--gru-graph", gru_graph, GRU_GRAPHS)
    check_option("--precision", precision, PRECISIONS)
    ckpt = load_checkpoint(source)
    net, cfg = net_from_checkpoint(ckpt)
    out = Path(out)
    n_assets = int(ckpt["n_assets"])
    fs = ckpt["feature_set"]
    lookback = int(ckpt["lookback"])
    asset_map = {str(k): int(v) for k, v in ckpt["asset_map"].items()} if net.uses_asset_id else None
    scaler = Scaler(mean=tuple(float(v) for v in ckpt["scaler"]["mean"]),
                    std=tuple(float(v) for v in ckpt["scaler"]["std"]))
    blob = with_metadata(onnx_bytes(net, n_assets, gru_graph), contract_metadata(
        feature_set=fs["name"], version=str(fs["version"]), features=fs["features"], lookback=lookback,
        scaler_mean=scaler.mean, scaler_std=scaler.std, asset_map=asset_map,
    ))
    diff = _parity(blob, net, n_assets)
    if not diff <= PARITY_TOL:
        raise ModelContractError(
            f"ONNX export of {source} disagrees with torch by {diff:.2e} (> {PARITY_TOL:g}) on "
            "random windows; report this with the checkpoint"
        )
    validation = dict(ckpt.get("validation") or {})
    if "f1" not in validation or "prob_quantiles" not in validation:
        raise ConfigError(f"checkpoint {ckpt['path']} has no validation metrics; retrain it")
    n_features = int(ckpt["n_features"])
    inputs = [TensorSpec(name="features", shape=(-1, lookback, n_features), dtype="float32")]
    if net.uses_asset_id:
        inputs.append(TensorSpec(name="asset_id", shape=(-1,), dtype="int64"))
    data = ckpt["data"]
    train_cmd = ckpt.get("command") or "research.train.train(config) from Python (no CLI command recorded)"
    export_cmd = command or f"sigtrade export {source} --out {out}" + (
        f" --gru-graph {gru_graph}" if gru_graph != "unrolled" else "") + (
        f" --precision {precision}" if precision != "fp32" else "")
    threshold = float(validation.get("threshold", 0.5))
    low = None if precision == "fp32" else _precision_check(
        blob, precision, cfg, net.uses_asset_id, threshold, source)
    card = ModelCard(
        name=name or out.name,
        architecture=str(ckpt["architecture"]),
        feature_set=FeatureSetRef(name=fs["name"], version=str(fs["version"]), features=tuple(fs["features"])),
        lookback=lookback,
        bar=cfg.data.bar,
        scaler=scaler,
        asset_map=asset_map,
        inputs=tuple(inputs),
        output=OutputSpec(name=OUTPUT_NAME, shape=(-1,)),
        label=LabelSpec(kind=ckpt["label"]["kind"], horizon=int(ckpt["label"]["horizon"]),
                        params=dict(ckpt["label"]["params"])),
        threshold=threshold,
        training=TrainingInfo(
            data_start=str(data.get("data_start", "")), data_end=str(data.get("data_end", "")),
            train=str(data.get("train", "")), validation=str(data.get("validation", "")),
            test=str(data.get("test", "")), command=f"{train_cmd} && {export_cmd}",
            seed=int(ckpt["seed"]),
        ),
        metrics={"validation": {**_finite_metrics(validation), "epoch": float(ckpt["epoch"])}},
        sentiment=cfg.sentiment.spec() if cfg.sentiment is not None else None,
        precision=low,
        onnx_sha256=hashlib.sha256(blob).hexdigest(),
        opset=OPSET,
    )
    # written and validated in a staging folder beside *out*, then moved in: a failed
    # export leaves *out* as it was
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        _write_bytes(staging / MODEL_FILE, blob)
        write_card(card, staging / CARD_FILE)
        config = json.dumps(ckpt["config"], indent=2, sort_keys=True) + "\n"
        _write_bytes(staging / MODEL_CONFIG_FILE, config.encode("utf-8"))
        for file in (MODEL_FILE, CARD_FILE, MODEL_CONFIG_FILE):
            (staging / file).chmod(0o644)  # temp files are created 0600
        card, warns = validate_artifact(staging)
        out.mkdir(parents=True, exist_ok=True)
        for file in (MODEL_FILE, CARD_FILE, MODEL_CONFIG_FILE):
            os.replace(staging / file, out / file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(path=out, card=card, max_abs_diff=diff, warnings=warns)


def with_metadata(blob: bytes, metadata: dict[str, str]) -> bytes:
    """*blob* with its ONNX ``metadata_props`` set to *metadata* (the input contract)."""
    model = onnx.load_from_string(blob)
    onnx.helper.set_model_props(model, metadata)
    return model.SerializeToString()
