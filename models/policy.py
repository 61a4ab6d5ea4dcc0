"""The ONNX policy contract: an RL policy as ``model.onnx`` + ``card.json`` with ``kind = "policy"``.

A policy folder holds the graph, its card (:class:`PolicyCard`) and, in gate mode, the
supervised signal model it gates in ``gate/`` (so one folder goes from training to
paper). The graph's tensors:

* input ``features``: ``[-1, L, F]`` float32 - the feature window, scaled with the card's
  scaler, exactly as a signal model's input (:func:`models.features.scale`);
* input ``state``: ``[-1, S]`` float32 - the **raw** state, in the order of
  ``observation.state``: position sign (-1 / 0 / 1), unrealised return (fraction),
  bars held (count) and, in gate mode, the signal model's probability. The graph
  normalises it itself (``clip((x - offset) x scale, -clip, clip)``, the constants are
  recorded in the card): the normalisation is folded into the graph;
* ``metadata_props``: the input contract of :mod:`models.input_contract` (ordered
  features, feature set, lookback, scaler), checked against the card on load as for a
  signal model;
* output ``logits``: ``[-1, A]`` float32, one per entry of ``actions``. The action is the
  arg-max over the actions allowed at that bar (:meth:`PolicyModel.act`), which is what
  the deterministic policy chose in training.

:func:`validate_policy` checks the card against the graph and the hash, as
:func:`models.card.validate_artifact` does for signal models (which dispatches here for a
policy card). :class:`PolicyModel` scores observations; :class:`PolicyStream` keeps each
symbol's scaled feature window bar by bar with the shared streaming features, for the
strategy's streaming mode and paper trading.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from models.card import (
    CARD_FILE,
    MODEL_FILE,
    FeatureSetRef,
    Scaler,
    TensorSpec,
    TrainingInfo,
    _bad,
    _check_header,
    _check_signature,
    _read_graph_onnx,
    _read_graph_ort,
    decode_strict,
)
from models.errors import CardMismatchError, ModelContractError
from models.feature_set import get_feature_set
from models.features import StreamingFeatures, compute_features, scale, warmup_bars
from models.input_contract import check_contract

__all__ = [
    "GATE_DIR",
    "GateSpec",
    "ObservationSpec",
    "PolicyCard",
    "PolicyModel",
    "PolicyStream",
    "StateField",
    "load_policy",
    "validate_policy",
]

logger = logging.getLogger(__name__)

GATE_DIR = "gate"
"""Sub-folder of a gate-mode policy holding its signal model (model.onnx + card.json)."""
STATE_FIELDS = ("position", "unrealised_return", "bars_held", "probability")
ACTION_SETS = (("flat", "long"), ("flat", "long", "short"), ("skip", "trade"))


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every policy card section: frozen, strict, keyword-only."""


class StateField(_Struct, kw_only=True):
    """One raw state input and how the graph normalises it: ``clip((x - offset) x scale, -clip, clip)``."""

    name: Literal["position", "unrealised_return", "bars_held", "probability"]
    """What the number is (see the module docstring)."""
    offset: float
    scale: float
    clip: float


class ObservationSpec(_Struct, kw_only=True):
    """What the policy observes: the feature window and the raw state."""

    lookback: Annotated[int, msgspec.Meta(ge=1, le=512)]
    """Bars of the feature window (``L``)."""
    n_features: Annotated[int, msgspec.Meta(ge=1, le=1024)]
    """Columns of the feature window (``F`` = ``len(feature_set.features)``)."""
    state: tuple[StateField, ...]
    """The ``state`` input's columns, in order."""


class GateSpec(_Struct, kw_only=True):
    """Gate mode: the signal model whose proposed entries the policy lets through or skips."""

    folder: str = GATE_DIR
    """The signal model's folder, relative to the policy folder."""
    name: str
    """The signal model's name."""
    onnx_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    """sha256 of the gate model's model.onnx (checked on load)."""
    entry_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
    """A long entry is proposed when p >= this."""
    exit_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
    """A long is closed when p < this (not gated)."""


class PolicyCard(_Struct, kw_only=True):
    """The contract of one ONNX policy (``models/<name>/card.json`` with ``kind = "policy"``)."""

    kind: Literal["policy"] = "policy"
    """Always ``"policy"`` (a signal model's card has no ``kind``)."""
    schema_version: Literal[1] = 1
    """Card schema version."""
    name: str
    """Policy name (usually the folder name)."""
    algorithm: str
    """What trained it, e.g. ``MaskablePPO`` (Stable-Baselines3 / sb3-contrib)."""
    architecture: str = "mlp"
    """Network family of the policy head."""
    feature_set: FeatureSetRef
    """Feature pipeline, version and ordered columns of the feature window."""
    lookback: Annotated[int, msgspec.Meta(ge=1, le=512)]
    """Bars per feature window (``L``)."""
    bar: str
    """Bar size the policy was trained on."""
    scaler: Scaler
    """Standardisation of the features, fitted on the training split (applied before the graph)."""
    observation: ObservationSpec
    """The observation: window shape and the state's columns with their in-graph normalisation."""
    actions: tuple[str, ...]
    """Action map: output column -> meaning (``flat``/``long``[/``short``] or ``skip``/``trade``)."""
    masks: bool = True
    """Whether training masked the actions the rules refuse (the strategy always masks them)."""
    inputs: tuple[TensorSpec, ...]
    """ONNX inputs: ``features`` and ``state``."""
    output: TensorSpec
    """ONNX output: ``logits`` ``[-1, A]`` float32."""
    gate: GateSpec | None = None
    """Gate mode: the signal model (in ``gate/``) and its thresholds; None otherwise."""
    environment: dict[str, Any] = {}
    """The training environment's settings (fill, costs, overlays, reward, episode length), for the record."""
    training: TrainingInfo
    """Data ranges, command and seed."""
    metrics: dict[str, dict[str, float]] = {}
    """Split -> metric -> value, e.g. ``{"validation": {"net_sharpe": 0.4}}``."""
    onnx_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    """Lowercase hex sha256 of ``model.onnx``."""
    opset: Annotated[int, msgspec.Meta(ge=1, le=100)]
    """ONNX opset the graph was exported with."""

    @property
    def n_features(self) -> int:
        """Feature columns ``F``."""
        return len(self.feature_set.features)

    @property
    def n_state(self) -> int:
        """State columns ``S``."""
        return len(self.observation.state)

    @property
    def asset_map(self) -> None:
        """Policies take no asset id (the input contract's ``asset_map`` is absent)."""
        return None

    @property
    def allows_short(self) -> bool:
        """Whether an action targets a short position."""
        return "short" in self.actions


def _folder(path: Path | str) -> Path:
    folder = Path(path)
    if folder.name in (CARD_FILE, MODEL_FILE) and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise ModelContractError(f"{folder}: not a policy folder (expected {MODEL_FILE} + {CARD_FILE})")
    return folder


def load_policy_card(path: Path | str) -> PolicyCard:
    """Read and schema-check a policy's ``card.json`` (unknown or mistyped fields refused)."""
    file = _folder(path) / CARD_FILE
    if not file.is_file():
        raise ModelContractError(f"{file}: no card; a policy folder holds {MODEL_FILE} and {CARD_FILE}")
    card: PolicyCard = decode_strict(file, file.read_bytes(), PolicyCard)
    return card


def validate_policy(path: Path | str, *, smoke: bool = True) -> tuple[PolicyCard, list[str]]:
    """Check a policy folder: card schema, hash, the graph against the card's observation and actions.

    Checks, in order: the card's schema; bar format, feature set and columns (as for a
    signal model); the observation's window shape equals ``lookback`` x the feature
    columns and its state columns are the known ones in order, ending with
    ``probability`` exactly in gate mode; the action map is one of the known sets; the
    sha256 of ``model.onnx``; the file is a valid ONNX model; its inputs are exactly
    ``features [-1, L, F]`` and ``state [-1, S]`` float32 and its output ``logits
    [-1, A]`` float32 matches the action map; in gate mode the gate folder holds a
    valid signal model with the recorded sha256 and bar. With *smoke*, onnxruntime scores
    two all-zero observations and checks finite logits of the right shape.

    Raises
    ------
    ModelContractError
        The first mismatch (a :class:`~models.errors.CardMismatchError` names the field).
    """
    folder = _folder(path)
    card = load_policy_card(folder)
    file = str(folder / CARD_FILE)
    warnings: list[str] = []
    _check_header(card, file)
    obs = card.observation
    if (obs.lookback, obs.n_features) != (card.lookback, card.n_features):
        raise _bad(file, "observation", f"a window of lookback {card.lookback} x {card.n_features} features "
                   "(the card's lookback and feature list)", f"{obs.lookback} x {obs.n_features}",
                   "the observation spec must describe the card's feature window; re-export the policy")
    names = tuple(f.name for f in obs.state)
    want = STATE_FIELDS if card.gate is not None else STATE_FIELDS[:3]
    if names != want:
        raise _bad(file, "observation.state", list(want), list(names),
                   "the state columns are fixed by the environment (probability only in gate mode)")
    bad_norm = [f.name for f in obs.state if not all(math.isfinite(v) for v in (f.offset, f.scale, f.clip)) or f.clip <= 0]
    if bad_norm:
        raise _bad(file, "observation.state", "finite offset / scale and clip > 0", bad_norm, "re-export the policy")
    if card.actions not in ACTION_SETS or (card.gate is not None) != (card.actions == ("skip", "trade")):
        raise _bad(file, "actions", " or ".join(str(list(a)) for a in ACTION_SETS) + " (skip/trade exactly in gate mode)",
                   list(card.actions), "the action map is fixed by the environment")
    for field, values in (("scaler.mean", card.scaler.mean), ("scaler.std", card.scaler.std)):
        if len(values) != card.n_features or not all(math.isfinite(v) for v in values):
            raise _bad(file, field, f"{card.n_features} finite values", len(values), "re-export the policy")
    blob_path = folder / MODEL_FILE
    if not blob_path.is_file():
        raise ModelContractError(f"{blob_path}: missing; a policy folder holds {MODEL_FILE} and {CARD_FILE}")
    blob = blob_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != card.onnx_sha256:
        raise _bad(file, "onnx_sha256", card.onnx_sha256, f"{digest} ({MODEL_FILE})",
                   "the graph changed since the card was written; re-export both together")
    try:
        import onnx  # noqa: F401

        graph = _read_graph_onnx(blob, str(blob_path))
    except ImportError:
        graph = _read_graph_ort(blob, str(blob_path))
        warnings.append("the onnx package is not installed: checker and opset checks skipped")
    specs = {s.name: s for s in card.inputs}
    expected = {"features": (-1, card.lookback, card.n_features), "state": (-1, card.n_state)}
    if set(specs) != set(expected) or set(graph.inputs) != set(expected):
        raise _bad(file, "inputs", sorted(expected), f"card {sorted(specs)}, graph {sorted(graph.inputs)}",
                   "a policy graph takes exactly 'features' and 'state'; re-export it")
    for name, shape in expected.items():
        spec = specs[name]
        if tuple(spec.shape) != shape or spec.dtype != "float32":
            raise _bad(file, f"inputs[{name}]", f"shape {list(shape)} float32", f"{list(spec.shape)} {spec.dtype}",
                       "the observation spec and the input tensors must agree; re-export the policy")
        _check_signature(f"inputs[{name}]", name, spec.dtype, spec.shape, graph.inputs[name], file, warnings)
    out = card.output
    if tuple(out.shape) != (-1, len(card.actions)) or out.dtype != "float32":
        raise _bad(file, "output", f"shape [-1, {len(card.actions)}] float32 (one logit per action)",
                   f"{list(out.shape)} {out.dtype}", "re-export the policy")
    if out.name not in graph.outputs:
        raise _bad(file, "output.name", f"one of the graph outputs {sorted(graph.outputs)}", repr(out.name),
                   "name the logits output in the card")
    _check_signature("output", out.name, out.dtype, out.shape, graph.outputs[out.name], file, warnings)
    if graph.opset is not None and graph.opset < card.opset:
        raise _bad(file, "opset", f"<= {graph.opset} (the graph's)", card.opset, "fix the card")
    check_contract(card, graph.metadata, file, str(blob_path), str(folder))
    if card.gate is not None:
        _check_gate(folder, card)
    if smoke:
        import onnxruntime as ort

        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        feeds = {"features": np.zeros((2, card.lookback, card.n_features), np.float32),
                 "state": np.zeros((2, card.n_state), np.float32)}
        try:
            logits = np.asarray(session.run([out.name], feeds)[0])
        except Exception as exc:
            raise CardMismatchError(file, MODEL_FILE, "a graph that runs on the card's input shapes",
                                    f"an onnxruntime error ({str(exc).splitlines()[0]})", "re-export the policy") from None
        if logits.shape != (2, len(card.actions)) or not np.isfinite(logits).all():
            raise CardMismatchError(file, "output", f"finite logits of shape (2, {len(card.actions)})",
                                    f"{logits.shape}", "re-export the policy")
    return card, warnings


def _check_gate(folder: Path, card: PolicyCard) -> None:
    from models.card import validate_artifact

    assert card.gate is not None
    gate_dir = folder / card.gate.folder
    file = str(folder / CARD_FILE)
    if not (gate_dir / CARD_FILE).is_file():
        raise _bad(file, "gate.folder", f"a signal model in {gate_dir}", "no card there",
                   "a gate-mode policy carries its signal model; re-export it")
    gate_card, _ = validate_artifact(gate_dir, smoke=False)
    digest = hashlib.sha256((gate_dir / MODEL_FILE).read_bytes()).hexdigest()
    if digest != card.gate.onnx_sha256:
        raise _bad(file, "gate.onnx_sha256", card.gate.onnx_sha256, digest,
                   "the gate's signal model is not the one the policy was trained on; re-export the policy")
    if gate_card.bar != card.bar:
        raise _bad(file, "gate", f"a signal model on {card.bar} bars", gate_card.bar, "re-export the policy")


class PolicyModel:
    """One validated policy and its onnxruntime session (build it with :func:`load_policy`)."""

    def __init__(self, card: PolicyCard, session: Any, path: Path) -> None:
        self.card = card
        self.session = session
        self.path = path
        spec = get_feature_set(card.feature_set.name, card.feature_set.version)
        self.feature_set = spec
        self.columns = np.array([spec.features.index(f) for f in card.feature_set.features], dtype=np.intp)
        self.mean = np.asarray(card.scaler.mean, dtype=np.float32)
        self.std = np.asarray(card.scaler.std, dtype=np.float32)
        self.warmup = warmup_bars(spec) + card.lookback - 1
        """Leading bars without a complete feature window."""
        self._out = [card.output.name]

    @property
    def name(self) -> str:
        """The card's name."""
        return self.card.name

    @property
    def lookback(self) -> int:
        """Feature window length ``L``."""
        return self.card.lookback

    @property
    def actions(self) -> tuple[str, ...]:
        """The action map."""
        return self.card.actions

    @property
    def gate_path(self) -> Path | None:
        """The gate's signal model folder, or None."""
        return None if self.card.gate is None else self.path / self.card.gate.folder

    def scaled_features(self, frame: Any, sentiment: Any = None) -> np.ndarray:
        """Batch: every bar's scaled feature row ``(T, F)`` float32 (warm-up rows NaN)."""
        rows = compute_features(frame, sentiment, self.feature_set).to_numpy(dtype=np.float64)
        return scale(rows[:, self.columns], self.mean, self.std)

    def logits(self, windows: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Logits ``(N, A)`` of windows ``(N, L, F)`` float32 and raw states ``(N, S)``."""
        feeds = {"features": np.ascontiguousarray(windows, dtype=np.float32),
                 "state": np.ascontiguousarray(state, dtype=np.float32).reshape(len(windows), self.card.n_state)}
        return np.asarray(self.session.run(self._out, feeds)[0], dtype=np.float64)

    def act(self, window: np.ndarray, state: Sequence[float], allowed: Sequence[bool]) -> int:
        """The action (index into :attr:`actions`) for one observation: arg-max over the allowed ones."""
        z = self.logits(window[None], np.asarray(state, dtype=np.float32)[None])[0]
        ok = np.asarray(allowed, dtype=bool)
        if not ok.any():
            raise ModelContractError(f"policy '{self.name}': no action is allowed (mask {list(allowed)})")
        return int(np.argmax(np.where(ok, z, -np.inf)))

    def stream(self, symbols: Sequence[str]) -> PolicyStream:
        """A bar-by-bar window keeper for *symbols* (see :class:`PolicyStream`)."""
        return PolicyStream(self, symbols)


class PolicyStream:
    """Each symbol's scaled feature window, updated one bar at a time with the shared streaming features.

    The rows are :class:`models.features.StreamingFeatures` rows (bit-identical to the batch
    pipeline) scaled with the card's scaler, so the window at a bar equals the batch
    window at that bar.
    """

    def __init__(self, model: PolicyModel, symbols: Sequence[str]) -> None:
        self.model = model
        self._features = {s: StreamingFeatures(model.feature_set) for s in symbols}
        self._windows = {s: np.full((model.lookback, len(model.columns)), np.nan, np.float32) for s in symbols}
        self._n = dict.fromkeys(symbols, 0)

    def update(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, v: float,  # noqa: E741
               sentiment: float = 0.0) -> np.ndarray:
        """Add one closed bar; return the symbol's window ``(L, F)`` (NaN rows while warming up)."""
        row = self._features[symbol].update(ts, o, h, l, c, v, sentiment)
        x = scale(row[self.model.columns][None, :], self.model.mean, self.model.std)[0]
        window = self._windows[symbol]
        window[:-1] = window[1:]
        window[-1] = x
        self._n[symbol] += 1
        return window


def load_policy(path: Path | str, bar: str | None = None) -> PolicyModel:
    """Validate the policy folder *path* and open its onnxruntime session (CPU, one thread).

    Raises
    ------
    ModelContractError
        Any validation failure, or a bar size other than the policy's.
    """
    import onnxruntime as ort

    folder = _folder(path)
    card, warnings = validate_policy(folder, smoke=True)
    for w in warnings:
        logger.info("%s: %s", folder, w)
    if bar is not None and bar != card.bar:
        raise CardMismatchError(str(folder / CARD_FILE), "bar", repr(card.bar), f"{bar!r} (the data)",
                                "run the policy on the bar size it was trained on, or retrain it")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession((folder / MODEL_FILE).read_bytes(), options, providers=["CPUExecutionProvider"])
    return PolicyModel(card, session, folder)
