"""Model cards: everything needed to rebuild a model's inputs and read its output.

A model artifact is a folder ``models/<name>/`` holding ``model.onnx`` and ``card.json``.
The card (:class:`ModelCard`, a frozen strict msgspec struct: unknown fields are refused)
states the feature set and the ordered feature columns, the lookback, the bar size, the
scaler fitted on the training split, the asset-id map, the ONNX input and output tensors,
the label, the default decision threshold, where the training data came from, the
validation metrics and the sha256 of ``model.onnx``.

Tensor convention
-----------------
* input ``features``: ``[-1, L, F]`` float32 - ``L`` = ``lookback`` bars (oldest first),
  ``F`` = ``len(feature_set.features)`` scaled columns in the card's order;
* optional input ``asset_id``: ``[-1]`` int64, the row of the symbol in ``asset_map``;
  present exactly when the card has an ``asset_map``;
* output: ``[-1]`` or ``[-1, 1]`` float32, the **probability** that the label is positive.
  The sigmoid (or softmax) is part of the graph; the runtime never applies one.

:func:`validate_artifact` checks the card against the ONNX graph and the hash; every
mismatch is a :class:`~models.errors.CardMismatchError` that names the file, the field,
the expected and the found value.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from models.errors import CardMismatchError, FeatureSetError, ModelContractError
from models.feature_set import get_feature_set
from models.input_contract import check_contract
from models.sentiment import SentimentSpec

__all__ = [
    "CARD_FILE",
    "MODEL_FILE",
    "RECURRENT",
    "FeatureSetRef",
    "LabelSpec",
    "ModelCard",
    "OutputSpec",
    "PRECISION_TOL",
    "PrecisionSpec",
    "Scaler",
    "TensorSpec",
    "TrainingInfo",
    "atomic_write",
    "card_kind",
    "check_output_is_probability",
    "decode_strict",
    "load_card",
    "sha256_file",
    "validate_artifact",
    "write_card",
]

CARD_FILE = "card.json"
MODEL_FILE = "model.onnx"
RECURRENT = frozenset({"lstm", "gru", "cnn_lstm", "rnn"})
"""Architectures scored in small chunks (their cost per sample is high)."""

_BAR_RE = re.compile(r"^[1-9]\d*-(SECOND|MINUTE|HOUR|DAY|WEEK|MONTH)$")
_SHA_RE = "^[0-9a-f]{64}$"
_ONNX_DTYPES = {1: "float32", 7: "int64", 11: "float64", 6: "int32", 10: "float16"}
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(int64)": "int64",
    "tensor(double)": "float64",
    "tensor(int32)": "int32",
    "tensor(float16)": "float16",
}

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every card section: frozen, strict, keyword-only."""


class FeatureSetRef(_Struct, kw_only=True):
    """Which feature pipeline makes the inputs, and which of its columns, in order."""

    name: str
    """Feature-set family implemented in :mod:`models.feature_set`, e.g. ``"seed14"``."""
    version: str
    """Version of the feature definitions; a card for an unknown version is refused."""
    features: tuple[str, ...]
    """Columns fed to the model, in input order: the feature set's columns or a subset."""


class Scaler(_Struct, kw_only=True):
    """Per-feature standardisation fitted on the training split: ``(x - mean) / std``."""

    kind: Literal["standard"] = "standard"
    """Only ``"standard"`` (z-score) is defined."""
    mean: tuple[float, ...]
    """One mean per feature, in the card's feature order."""
    std: tuple[float, ...]
    """One standard deviation per feature (0 is read as 1)."""


class TensorSpec(_Struct, kw_only=True):
    """One ONNX input: name, shape (``-1`` = dynamic) and element type."""

    name: str
    """``"features"`` or ``"asset_id"``."""
    shape: tuple[int, ...]
    """``[-1, L, F]`` for features, ``[-1]`` for asset ids."""
    dtype: Literal["float32", "int64"]
    """Element type: float32 for features, int64 for asset ids."""


class OutputSpec(_Struct, kw_only=True):
    """The ONNX output read as the signal."""

    name: str
    """Name of the graph output."""
    shape: tuple[int, ...] = (-1,)
    """``[-1]`` or ``[-1, 1]``."""
    dtype: Literal["float32"] = "float32"
    """Element type of the output."""
    meaning: str = "probability that the label is positive"
    """What the number is; the sigmoid is inside the graph."""


class LabelSpec(_Struct, kw_only=True):
    """The training target the probability refers to."""

    kind: Literal["threshold", "triple_barrier"]
    """``threshold``: forward return above ``params["min_return"]``; ``triple_barrier``: upper barrier first."""
    horizon: PositiveInt
    """Bars ahead the label looks (the vertical barrier for triple-barrier labels)."""
    params: dict[str, float | int | str | bool] = {}
    """Label parameters (return threshold, barrier widths, ...)."""


class TrainingInfo(_Struct, kw_only=True):
    """Where the model came from, precisely enough to retrain it."""

    data_start: str
    """First bar of the data used (ISO date or timestamp)."""
    data_end: str
    """Last bar of the data used."""
    train: str
    """Training range, e.g. ``"2021-10-19..2024-06-30"``."""
    validation: str
    """Validation range (threshold and early stopping were chosen here)."""
    test: str
    """Test range, untouched until the final evaluation."""
    command: str
    """Exact command that reproduces the artifact."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    """Random seed of the run."""


PRECISION_TOL = 1e-3
"""Largest probability difference from fp32 a reduced-precision artifact may show on real windows."""


class PrecisionSpec(_Struct, kw_only=True):
    """A reduced-precision artifact: how it runs and the accuracy check it passed at export.

    ``model.onnx`` keeps the fp32 weights; the runtime computes in ``dtype`` (OpenVINO's
    CPU plugin: bf16 matmuls on AMX / AVX512_BF16, fp32 accumulation). Written only by
    ``sigtrade export --precision bf16``, which scored real windows of the training data's
    validation split in both precisions (see :mod:`research.export`).
    """

    dtype: Literal["bf16"]
    """Arithmetic the runtime uses (fp32 artifacts have no precision section)."""
    runtime: Literal["openvino"]
    """Runtime that executes the graph in ``dtype`` (the ``[openvino]`` extra)."""
    runtime_version: str
    """Version of that runtime at export."""
    checked_on: str
    """Which windows the check scored, e.g. ``"validation split 2023-01-01..2023-06-30"``."""
    windows: PositiveInt
    """How many real windows were scored in both precisions."""
    max_abs_diff: Annotated[float, msgspec.Meta(ge=0.0, le=PRECISION_TOL)]
    """Largest ``|p_dtype - p_fp32|`` over those windows (at most :data:`PRECISION_TOL`)."""
    tolerance: Annotated[float, msgspec.Meta(gt=0.0, le=PRECISION_TOL)] = PRECISION_TOL
    """The bound the check held the difference to."""
    decisions_changed: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Windows whose decision at the card's threshold (``p >= threshold``) differs from fp32."""


class ModelCard(_Struct, kw_only=True):
    """The contract of one ONNX signal model (``models/<name>/card.json``)."""

    schema_version: Literal[1] = 1
    """Card schema version."""
    name: str
    """Model name (usually the folder name)."""
    architecture: str
    """``mlp``, ``lstm``, ``gru``, ``cnn_lstm`` or another label; picks the default chunk size."""
    feature_set: FeatureSetRef
    """Feature pipeline, version and ordered columns."""
    lookback: PositiveInt
    """Bars per input window (``L``)."""
    bar: str
    """Bar size the model was trained on, e.g. ``"1-HOUR"``."""
    scaler: Scaler
    """Standardisation fitted on the training split."""
    asset_map: dict[str, int] | None = None
    """Symbol -> asset-id row, for models with an asset embedding; None otherwise."""
    inputs: tuple[TensorSpec, ...]
    """ONNX inputs (``features``, optionally ``asset_id``)."""
    output: OutputSpec
    """ONNX output holding the probability."""
    label: LabelSpec
    """Training target."""
    threshold: Probability = 0.5
    """Default decision threshold on the probability."""
    training: TrainingInfo
    """Data ranges, command and seed."""
    metrics: dict[str, dict[str, float | list[float]]] = {}
    """Split -> metric -> value, e.g. ``{"validation": {"f1": 0.55, "prob_quantiles": [...]}}``."""
    sentiment: SentimentSpec | None = None
    """How the sentiment column is made (scorer model, aggregation); None: the column is 0 (no news)."""
    precision: PrecisionSpec | None = None
    """Reduced-precision execution and its accuracy check; None: fp32 on onnxruntime."""
    onnx_sha256: Annotated[str, msgspec.Meta(pattern=_SHA_RE)]
    """Lowercase hex sha256 of ``model.onnx``."""
    opset: PositiveInt
    """ONNX opset (default domain) the model was exported with."""

    @property
    def n_features(self) -> int:
        """Number of input features ``F``."""
        return len(self.feature_set.features)

    @property
    def has_asset_ids(self) -> bool:
        """Whether the model takes an ``asset_id`` input."""
        return any(spec.name == "asset_id" for spec in self.inputs)

    def validation_metric(self, key: str) -> float | list[float] | None:
        """``metrics["validation"][key]`` or None."""
        return self.metrics.get("validation", {}).get(key)


# --- reading and writing -----------------------------------------------------------------


def _card_path(path: Path | str) -> Path:
    path = Path(path)
    return path / CARD_FILE if path.is_dir() else path


def _schema_fields(struct: Any, prefix: str = "") -> dict[str, str]:
    """Leaf and section names of a msgspec struct type, e.g. ``{"threshold": "threshold"}``."""
    out: dict[str, str] = {}
    for field in msgspec.structs.fields(struct):
        path = f"{prefix}{field.name}"
        out[field.name] = path
        inner = field.type
        for arg in getattr(inner, "__args__", ()):  # tuple[TensorSpec, ...], X | None
            inner = arg if isinstance(arg, type) and issubclass(arg, msgspec.Struct) else inner
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            out.update(_schema_fields(inner, f"{path}."))
    return out


def _value_at(raw: bytes, path: str) -> Any:
    """The JSON value at a msgspec error path such as ``$.inputs[0].shape``; KeyError if absent."""
    value: Any = msgspec.json.decode(raw)
    for key, index in re.findall(r"\.([A-Za-z_0-9]+)|\[(\d+)\]", path):
        value = value[key] if key else value[int(index)]
    return value


def _decode_error(
    file: Path, exc: msgspec.ValidationError | msgspec.DecodeError, raw: bytes, schema: Any
) -> ModelContractError:
    import difflib

    text = str(exc)
    message, _, at = text.partition(" - at `")
    at = at.rstrip("`")
    if not isinstance(exc, msgspec.ValidationError):
        return ModelContractError(f"{file}: not valid JSON ({message}); rewrite the file")
    field = at.removeprefix("$").lstrip(".") or "(top level)"
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    missing = re.match(r"Object missing required field `(.+)`", message)
    if unknown or missing:
        name = (unknown or missing).group(1)  # type: ignore[union-attr]
        field = f"{field}.{name}" if field != "(top level)" else name
        if unknown:
            known = _schema_fields(schema)
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            hint = f" - did you mean '{known[close[0]]}'?" if close else ""
            message = f"unknown field (the schema forbids extra fields){hint}"
        else:
            message = "required field is missing"
    elif "[...]" not in at and not message.startswith("Invalid enum value"):
        try:
            found = _value_at(raw, at)
            message = f"{message}, found {json_repr(found)}"
        except (KeyError, IndexError, TypeError, msgspec.DecodeError):
            pass
    return ModelContractError(
        f"{file}: field '{field}': {message}; fix the file (schema: {schema.__module__}.{schema.__name__})"
    )


def json_repr(value: Any, limit: int = 80) -> str:
    """Short JSON text of *value* for messages."""
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_strict(file: Path, raw: bytes, schema: Any) -> Any:
    """Decode JSON *raw* into the strict struct *schema*; errors name the field."""
    try:
        return msgspec.json.decode(raw, type=schema)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _decode_error(file, exc, raw, schema) from None


def load_card(path: Path | str) -> ModelCard:
    """Read and schema-check ``card.json`` (*path* is the file or its folder).

    Raises
    ------
    ModelContractError
        Missing file, invalid JSON, a missing, unknown or mistyped field; the message
        names the field.
    """
    file = _card_path(path)
    if not file.is_file():
        raise ModelContractError(
            f"{file}: no model card; a model folder holds {MODEL_FILE} and {CARD_FILE}"
        )
    raw = file.read_bytes()
    if card_kind(raw) == "policy":
        raise ModelContractError(
            f"{file}: this is an RL policy (kind = \"policy\"), not a signal model: use it with "
            "[strategy] kind = \"policy\"; `sigtrade models validate` checks it"
        )
    card: ModelCard = decode_strict(file, raw, ModelCard)
    return card


def card_kind(raw: bytes | Path | str) -> str:
    """``"policy"`` for an RL policy's card (it has ``kind = "policy"``), else ``"signal"``.

    *raw* is the card's bytes or the path of the card or its folder; unreadable JSON is
    reported as ``"signal"`` (the strict decoder then names the problem).
    """
    if not isinstance(raw, bytes):
        file = _card_path(raw)
        if not file.is_file():
            return "signal"
        raw = file.read_bytes()
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "signal"
    return "policy" if isinstance(value, dict) and value.get("kind") == "policy" else "signal"


def write_card(card: ModelCard, path: Path | str) -> Path:
    """Write *card* as indented JSON, atomically (temp file + rename); return the path."""
    file = Path(path)
    if file.is_dir():
        file = file / CARD_FILE
    return atomic_write(file, msgspec.json.format(msgspec.json.encode(card), indent=2) + b"\n")


def atomic_write(file: Path, blob: bytes) -> Path:
    """Write *blob* to *file* through a temp file in the same folder and a rename."""
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file


def sha256_file(path: Path | str) -> str:
    """Lowercase hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- validation ----------------------------------------------------------------------------


class _Graph(msgspec.Struct, frozen=True):
    """What validation needs from an ONNX graph: opset and tensor signatures."""

    opset: int | None
    inputs: dict[str, tuple[str, tuple[int | str | None, ...]]]
    outputs: dict[str, tuple[str, tuple[int | str | None, ...]]]
    metadata: dict[str, str] = {}
    """The model's ``metadata_props`` (the input contract of :mod:`models.input_contract`)."""


def _fmt_shape(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("-1" if d is None or isinstance(d, str) else str(d) for d in shape) + "]"


def _read_graph_onnx(blob: bytes, file: str) -> _Graph:
    import onnx  # optional: installed with the [research] extra

    try:
        model = onnx.load_from_string(blob)
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ... - all mean "not a valid model"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CardMismatchError(
            file, MODEL_FILE, "a valid ONNX model", f"a corrupt or invalid file ({first})",
            "re-export the model (research export) or restore the file",
        ) from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    init = {t.name for t in model.graph.initializer}

    def sig(value: Any) -> tuple[str, tuple[int | str | None, ...]]:
        tensor = value.type.tensor_type
        dtype = _ONNX_DTYPES.get(tensor.elem_type, f"onnx type {tensor.elem_type}")
        dims: tuple[int | str | None, ...] = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor.shape.dim
        )
        return dtype, dims

    return _Graph(
        opset=opset,
        inputs={v.name: sig(v) for v in model.graph.input if v.name not in init},
        outputs={v.name: sig(v) for v in model.graph.output},
        metadata={p.key: p.value for p in model.metadata_props},
    )


def _read_graph_ort(blob: bytes, file: str) -> _Graph:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CardMismatchError(
            file, MODEL_FILE, "a valid ONNX model", f"a file onnxruntime cannot load ({exc})",
            "re-export the model or restore the file",
        ) from None

    def sig(arg: Any) -> tuple[str, tuple[int | str | None, ...]]:
        return _ORT_DTYPES.get(arg.type, arg.type), tuple(arg.shape)

    return _Graph(
        opset=None,
        inputs={a.name: sig(a) for a in session.get_inputs()},
        outputs={a.name: sig(a) for a in session.get_outputs()},
        metadata=dict(session.get_modelmeta().custom_metadata_map),
    )


def _bad(file: str, field: str, expected: object, found: object, hint: str) -> CardMismatchError:
    return CardMismatchError(file, field, expected, found, hint)


def _check_header(card: ModelCard, file: str) -> None:
    """Card fields that need no graph: bar format and the feature set and its columns."""
    if not _BAR_RE.match(card.bar):
        raise _bad(file, "bar", "a bar size like '1-HOUR' or '30-MINUTE'", repr(card.bar),
                   "use the N-UNIT form sigtrade ingest writes")
    feats = card.feature_set.features
    if not feats:
        raise _bad(file, "feature_set.features", "at least one feature", "an empty list",
                   "list the input columns")
    dupes = sorted({f for f in feats if feats.count(f) > 1})
    if dupes:
        raise _bad(file, "feature_set.features", "unique column names", f"duplicates {dupes}",
                   "list each column once")
    try:
        spec = get_feature_set(card.feature_set.name, card.feature_set.version)
    except FeatureSetError as exc:
        raise FeatureSetError(f"{file}: field 'feature_set': {exc}") from None
    unknown = [f for f in feats if f not in spec.features]
    if unknown:
        raise _bad(file, "feature_set.features", f"columns of feature set '{spec.key}' {list(spec.features)}",
                   f"unknown {unknown}", "the data pipeline cannot make these columns; fix the card")


def _check_inputs(card: ModelCard, graph: _Graph, file: str, warnings: list[str]) -> None:
    """Card inputs against the graph, then lookback, features, scaler and asset map against them."""
    specs = {s.name: s for s in card.inputs}
    if len(specs) != len(card.inputs):
        raise _bad(file, "inputs", "unique input names", [s.name for s in card.inputs],
                   "list each input once")
    if set(graph.inputs) != set(specs):
        raise _bad(file, "inputs", f"the graph's inputs {sorted(graph.inputs)}",
                   f"{sorted(specs)} in the card", "the card must list exactly the graph inputs")
    extra = sorted(set(specs) - {"features", "asset_id"})
    if "features" not in specs or extra:
        raise _bad(file, "inputs", "'features' and optionally 'asset_id'", sorted(specs),
                   "name the graph inputs as the convention in models.card says and re-export")
    for name, spec in specs.items():
        _check_signature(f"inputs[{name}]", name, spec.dtype, spec.shape, graph.inputs[name],
                         file, warnings)
    feat = specs["features"]
    if feat.dtype != "float32" or len(feat.shape) != 3 or feat.shape[0] != -1:
        raise _bad(file, "inputs[features]", "shape [-1, lookback, n_features] float32",
                   f"shape {list(feat.shape)} {feat.dtype}", "re-export with the input convention")
    if feat.shape[1] != card.lookback:
        raise _bad(file, "lookback", f"{feat.shape[1]} (the window length of the features input)",
                   card.lookback, "the lookback must equal the graph's window length")
    n = card.n_features
    if feat.shape[2] != n:
        raise _bad(file, "feature_set.features", f"{feat.shape[2]} columns (the graph's feature axis)",
                   f"{n} columns", "list exactly the columns the model was trained on, in order")
    for field, values in (("scaler.mean", card.scaler.mean), ("scaler.std", card.scaler.std)):
        if len(values) != n:
            raise _bad(file, field, f"{n} values (one per feature)", f"{len(values)}",
                       "refit the scaler on the training split with the card's features")
        if not all(math.isfinite(v) for v in values):
            raise _bad(file, field, "finite numbers", list(values), "refit the scaler")
    if any(v < 0 for v in card.scaler.std):
        raise _bad(file, "scaler.std", "values >= 0", list(card.scaler.std), "refit the scaler")
    if "asset_id" in specs:
        aid = specs["asset_id"]
        if tuple(aid.shape) != (-1,) or aid.dtype != "int64":
            raise _bad(file, "inputs[asset_id]", "shape [-1] int64", f"shape {list(aid.shape)} {aid.dtype}",
                       "asset ids are one int64 per window")
    if card.has_asset_ids != (card.asset_map is not None):
        raise _bad(file, "asset_map",
                   "a symbol -> id map (the graph has an asset_id input)" if card.has_asset_ids
                   else "null (the graph has no asset_id input)",
                   "null" if card.asset_map is None else f"a map of {len(card.asset_map)} symbols",
                   "asset_map is present exactly when the graph has an 'asset_id' input")
    if card.asset_map is not None:
        ids = list(card.asset_map.values())
        if not card.asset_map or min(ids) < 0 or len(set(ids)) != len(ids):
            raise _bad(file, "asset_map", "distinct non-negative ids, at least one symbol",
                       dict(card.asset_map), "rebuild the asset map from training")


def _check_signature(
    field: str,
    name: str,
    want_dtype: str,
    want_shape: Sequence[int],
    found: tuple[str, tuple[int | str | None, ...]],
    file: str,
    warnings: list[str],
) -> None:
    dtype, dims = found
    if dtype != want_dtype:
        raise CardMismatchError(file, f"{field}.dtype", want_dtype, f"{dtype} in the graph",
                                f"export '{name}' as {want_dtype} or fix the card")
    if len(dims) != len(want_shape):
        raise CardMismatchError(file, f"{field}.shape", f"rank {len(want_shape)} {list(want_shape)}",
                                f"rank {len(dims)} {_fmt_shape(dims)} in the graph",
                                "the card and the graph disagree on the tensor rank")
    for axis, (want, got) in enumerate(zip(want_shape, dims, strict=True)):
        static = isinstance(got, int) and got > 0
        if want == -1 and static:
            raise CardMismatchError(file, f"{field}.shape[{axis}]", "a dynamic dimension (-1)",
                                    f"fixed size {got} in the graph",
                                    "export with a dynamic batch axis (dynamic_axes) or fix the card")
        if want != -1 and static and got != want:
            raise CardMismatchError(file, f"{field}.shape[{axis}]", want, f"{got} in the graph",
                                    "the card's lookback / feature count must match the graph")
        if want != -1 and not static:
            warnings.append(f"{field}.shape[{axis}]: the card says {want}, the graph leaves it dynamic")


def validate_artifact(
    path: Path | str, *, smoke: bool = True
) -> tuple[ModelCard, list[str]]:
    """Check a model folder: card schema, hash, ONNX graph against the card.

    Checks, in order: ``card.json`` schema (unknown or mistyped fields refused); bar
    format; the feature set is implemented and knows every listed column; sha256 of
    ``model.onnx``; the file is a valid ONNX model (``onnx.load`` + ``onnx.checker``); the
    graph's opset is at least the card's; the card's features, lookback, scaler and asset map
    equal the input contract recorded in ``model.onnx`` (:mod:`models.input_contract`); the graph inputs are exactly the card's
    (``features`` and optionally ``asset_id``) with matching dtypes, ranks and static
    dims (a dynamic batch axis); ``lookback`` and ``len(features)`` equal the graph's window
    and feature axes, ``len(scaler.mean) == len(scaler.std) == F`` and finite;
    ``asset_map`` is present exactly when an ``asset_id`` input exists; the output name,
    dtype and shape (``[-1]`` or ``[-1, 1]``) match. With ``smoke``,
    onnxruntime then scores two all-zero windows and checks the output has one value per
    window in ``[0, 1]`` (a probability).

    Returns
    -------
    (ModelCard, list of str)
        The card and non-fatal warnings (e.g. a dim the graph leaves dynamic, or the
        ``onnx`` package missing so the checker could not run).

    Raises
    ------
    ModelContractError
        The first mismatch; :class:`~models.errors.CardMismatchError` names file, field,
        expected and found.
    """
    folder = Path(path)
    if folder.name in (CARD_FILE, MODEL_FILE) and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise ModelContractError(f"{folder}: not a model folder (expected {MODEL_FILE} + {CARD_FILE})")
    card = load_card(folder)
    card_file = str(folder / CARD_FILE)
    warnings: list[str] = []
    _check_header(card, card_file)
    if card.precision is not None and card.precision.max_abs_diff > card.precision.tolerance:
        raise _bad(card_file, "precision.max_abs_diff", f"<= precision.tolerance ({card.precision.tolerance:g})",
                   card.precision.max_abs_diff, "the artifact failed its accuracy check; re-export it in fp32")

    onnx_path = folder / MODEL_FILE
    if not onnx_path.is_file():
        raise ModelContractError(f"{onnx_path}: missing; a model folder holds {MODEL_FILE} and {CARD_FILE}")
    blob = onnx_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != card.onnx_sha256:
        raise _bad(card_file, "onnx_sha256", card.onnx_sha256, f"{digest} ({MODEL_FILE})",
                   "the model file changed since the card was written; re-export both together "
                   "or restore the file")

    reader: Callable[[bytes, str], _Graph]
    try:
        import onnx  # noqa: F401

        reader = _read_graph_onnx
    except ImportError:
        reader = _read_graph_ort
        warnings.append("the onnx package is not installed: checker and opset checks skipped")
    graph = reader(blob, str(onnx_path))

    if graph.opset is not None and graph.opset < card.opset:
        raise _bad(card_file, "opset", f"<= {graph.opset} (the graph's opset)", card.opset,
                   "the card claims a newer opset than the file uses; fix the card")
    if graph.opset is not None and graph.opset > card.opset:
        warnings.append(f"opset: the graph uses {graph.opset}, the card says {card.opset}")

    try:
        _check_inputs(card, graph, card_file, warnings)
    except CardMismatchError as exc:
        if exc.field == "feature_set.features" and graph.metadata:
            check_contract(card, graph.metadata, card_file, str(onnx_path), str(folder))  # says which feature
        raise
    check_contract(card, graph.metadata, card_file, str(onnx_path), str(folder))
    if tuple(card.output.shape) not in ((-1,), (-1, 1)):
        raise _bad(card_file, "output.shape", "[-1] or [-1, 1]", list(card.output.shape),
                   "the model outputs one probability per window")
    if card.output.name not in graph.outputs:
        raise _bad(card_file, "output.name", f"one of the graph outputs {sorted(graph.outputs)}",
                   repr(card.output.name), "name the probability output in the card")
    _check_signature("output", card.output.name, card.output.dtype, card.output.shape,
                     graph.outputs[card.output.name], card_file, warnings)
    if smoke:
        import onnxruntime as ort

        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        check_output_is_probability(session, card, card_file)
    return card, warnings


def check_output_is_probability(session: Any, card: ModelCard, file: str) -> None:
    """Score two all-zero windows and check one value per window, each in ``[0, 1]``."""
    import numpy as np

    feeds: dict[str, Any] = {"features": np.zeros((2, card.lookback, card.n_features), np.float32)}
    if card.has_asset_ids:
        assert card.asset_map is not None
        feeds["asset_id"] = np.full(2, min(card.asset_map.values()), np.int64)
    try:
        out = np.asarray(session.run([card.output.name], feeds)[0])
    except Exception as exc:
        raise CardMismatchError(file, MODEL_FILE, "a graph that runs on the card's input shapes",
                                f"an onnxruntime error ({str(exc).splitlines()[0]})",
                                "re-export the model; check the lookback and feature count") from None
    if out.size != 2:
        raise CardMismatchError(file, "output.shape", "one value per window (2 for 2 windows)",
                                f"shape {list(out.shape)}", "the output must be [-1] or [-1, 1]")
    if not np.all((out >= 0.0) & (out <= 1.0)):
        raise CardMismatchError(file, "output.meaning", "probabilities in [0, 1]",
                                f"{out.reshape(-1).tolist()} for all-zero windows",
                                "put the sigmoid inside the graph before exporting")
