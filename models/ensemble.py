"""Ensembles of ONNX signal models: an ensemble card and four combiners.

An ensemble is a folder ``models/<name>/`` with ``ensemble.json`` (:class:`EnsembleCard`)
listing member model folders (relative to the ensemble folder, or absolute) and a
combiner. Members may differ in architecture, feature columns and lookback (each gets its
own inputs) but must share the ensemble's bar size.

Combiners, applied bar by bar to the members' probabilities ``p_i`` (any member NaN ->
the ensemble is NaN: never a signal on a partial vote):

``weighted_mean``
    ``sum(w_i p_i) / sum(w_i)`` with the weights given in the card (all members, >= 0).
``f1_weighted``
    the same, with ``w_i`` = each member card's ``metrics["validation"]["f1"]`` (as the
    seed strategy did); a member without it is refused.
``rank_average``
    mean over members of the percentile rank of ``p_i`` in that member's *validation*
    probability distribution, stored in its card as ``metrics["validation"]
    ["prob_quantiles"]`` (101 values: the 0th, 1st, ..., 100th percentiles). The rank is
    the piecewise-linear inverse of those quantiles (mid-rank over ties), so it is in
    ``[0, 1]``. This is a *causal* definition, identical in backtests and live: ranking
    against the scored series itself would use future bars in a backtest and could not
    be computed one bar at a time. A member without the quantiles is refused at load.
``majority_vote``
    share of members whose ``p_i`` reaches its own card threshold, in ``[0, 1]``.

The ensemble's decision threshold is the card's ``threshold``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np

from models.card import CARD_FILE, atomic_write, decode_strict
from models.errors import CardMismatchError, ModelContractError
from models.onnx_model import OnnxSignalModel

__all__ = [
    "COMBINERS",
    "ENSEMBLE_FILE",
    "Ensemble",
    "EnsembleCard",
    "EnsembleMember",
    "load_ensemble",
    "load_ensemble_card",
    "rank_against_quantiles",
    "write_ensemble_card",
]

ENSEMBLE_FILE = "ensemble.json"
COMBINERS = ("weighted_mean", "f1_weighted", "rank_average", "majority_vote")
N_QUANTILES = 101
_GRID = np.linspace(0.0, 1.0, N_QUANTILES)


class EnsembleMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One member model of an ensemble."""

    path: str
    """Member model folder, relative to the ensemble folder or absolute."""
    weight: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    """Weight for ``weighted_mean`` (required there); must be null for other combiners."""


class EnsembleCard(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``ensemble.json``: members and how their probabilities are combined."""

    schema_version: Literal[1] = 1
    """Ensemble card schema version."""
    name: str
    """Ensemble name (usually the folder name)."""
    bar: str
    """Bar size every member must have been trained on, e.g. ``"1-HOUR"``."""
    members: Annotated[tuple[EnsembleMember, ...], msgspec.Meta(min_length=1)]
    """Member models."""
    combiner: Literal["weighted_mean", "f1_weighted", "rank_average", "majority_vote"]
    """How member probabilities are combined (see the module docstring)."""
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    """Default decision threshold on the combined score."""


def load_ensemble_card(path: Path | str) -> EnsembleCard:
    """Read and schema-check ``ensemble.json`` (*path* is the file or its folder)."""
    file = Path(path)
    if file.is_dir():
        file = file / ENSEMBLE_FILE
    if not file.is_file():
        raise ModelContractError(f"{file}: no ensemble card")
    card: EnsembleCard = decode_strict(file, file.read_bytes(), EnsembleCard)
    return card


def write_ensemble_card(card: EnsembleCard, path: Path | str) -> Path:
    """Write *card* as indented JSON, atomically; *path* is the file or its folder."""
    file = Path(path)
    if file.is_dir():
        file = file / ENSEMBLE_FILE
    return atomic_write(file, msgspec.json.format(msgspec.json.encode(card), indent=2) + b"\n")


def rank_against_quantiles(probs: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Percentile rank in ``[0, 1]`` of *probs* in a distribution given by 101 quantiles.

    Piecewise-linear between quantiles, 0 below the minimum, 1 above the maximum, the
    middle of the tied range where quantiles repeat. NaN stays NaN.
    """
    upper = np.interp(probs, quantiles, _GRID)
    lower = 1.0 - np.interp(-probs, -quantiles[::-1], _GRID)
    return 0.5 * (upper + lower)


class Ensemble:
    """Loaded member models, their weights or reference quantiles, and the combiner."""

    def __init__(
        self,
        card: EnsembleCard,
        path: Path,
        members: list[OnnxSignalModel],
        weights: np.ndarray | None,
        quantiles: list[np.ndarray] | None,
    ) -> None:
        self.card = card
        self.path = path
        self.members = members
        self.weights = weights
        self.quantiles = quantiles
        self.thresholds = np.array([m.card.threshold for m in members], dtype=np.float64)

    @property
    def name(self) -> str:
        """The ensemble's name."""
        return self.card.name

    def combine(self, probs: np.ndarray) -> np.ndarray:
        """Combine member probabilities ``(M, N)`` into ensemble scores ``(N,)``.

        A column with any NaN member gives NaN.
        """
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != len(self.members):
            raise ModelContractError(
                f"ensemble '{self.name}': expected probabilities of shape "
                f"({len(self.members)}, N), found {probs.shape}"
            )
        missing = np.isnan(probs).any(axis=0)
        combiner = self.card.combiner
        if combiner in ("weighted_mean", "f1_weighted"):
            assert self.weights is not None
            out = (self.weights @ probs) / self.weights.sum()
        elif combiner == "rank_average":
            assert self.quantiles is not None
            ranks = [rank_against_quantiles(p, q) for p, q in zip(probs, self.quantiles, strict=True)]
            out = np.mean(ranks, axis=0)
        else:  # majority_vote
            out = (probs >= self.thresholds[:, None]).mean(axis=0)
        out[missing] = np.nan
        return out


def _member_folder(ensemble_dir: Path, member: EnsembleMember) -> Path:
    path = Path(member.path)
    return path if path.is_absolute() else (ensemble_dir / path)


def load_ensemble(
    path: Path | str,
    threads: int = 1,
    providers: list[str] | tuple[str, ...] | None = None,
    workers: int = 1,
) -> Ensemble:
    """Load an ensemble folder: its card, every member (validated) and the combiner inputs.

    Raises
    ------
    ModelContractError
        A member fails validation, has another bar size than the ensemble, lacks the
        weight / F1 / quantiles its combiner needs, or has a weight its combiner ignores.
    """
    folder = Path(path)
    card = load_ensemble_card(folder)
    file = str(folder / ENSEMBLE_FILE)
    members: list[OnnxSignalModel] = []
    for i, member in enumerate(card.members):
        member_dir = _member_folder(folder, member)
        if not (member_dir / CARD_FILE).is_file():
            raise CardMismatchError(file, f"members[{i}].path", f"a model folder with {CARD_FILE}",
                                    f"{member.path!r} ({member_dir})",
                                    "members are single models; fix the path")
        model = OnnxSignalModel.load(member_dir, threads=threads, providers=providers,
                                     workers=workers)
        if model.card.bar != card.bar:
            raise CardMismatchError(file, f"members[{i}].bar ({model.card.name})", repr(card.bar),
                                    repr(model.card.bar),
                                    "every member must be trained on the ensemble's bar size")
        members.append(model)

    weights: np.ndarray | None = None
    quantiles: list[np.ndarray] | None = None
    given = [m.weight for m in card.members]
    if card.combiner != "weighted_mean":
        for i, w in enumerate(given):
            if w is not None:
                raise CardMismatchError(file, f"members[{i}].weight", f"null for combiner '{card.combiner}'",
                                        w, "only weighted_mean takes weights from the ensemble card")
    if card.combiner == "weighted_mean":
        for i, w in enumerate(given):
            if w is None:
                raise CardMismatchError(file, f"members[{i}].weight", "a weight >= 0", "null",
                                        "give every member a weight, or use combiner 'f1_weighted'")
        weights = np.array(given, dtype=np.float64)
    elif card.combiner == "f1_weighted":
        f1s = []
        for i, model in enumerate(members):
            f1 = model.card.validation_metric("f1")
            if not isinstance(f1, int | float) or not np.isfinite(f1) or f1 < 0:
                raise CardMismatchError(str(model.path / CARD_FILE), "metrics.validation.f1",
                                        "a validation F1 >= 0", f1,
                                        f"combiner 'f1_weighted' of ensemble '{card.name}' (member {i}) "
                                        "weights members by it; add it to the card or use weighted_mean")
            f1s.append(float(f1))
        weights = np.array(f1s, dtype=np.float64)
    elif card.combiner == "rank_average":
        quantiles = []
        for model in members:
            q = model.card.validation_metric("prob_quantiles")
            arr = np.asarray(q if isinstance(q, list) else [], dtype=np.float64)
            if arr.shape != (N_QUANTILES,) or not np.isfinite(arr).all() or (np.diff(arr) < 0).any():
                found = "missing" if q is None else f"{arr.size} values" + (
                    "" if arr.size != N_QUANTILES else " (not finite and non-decreasing)")
                raise CardMismatchError(str(model.path / CARD_FILE), "metrics.validation.prob_quantiles",
                                        f"{N_QUANTILES} non-decreasing validation-set probability percentiles",
                                        found,
                                        f"combiner 'rank_average' of ensemble '{card.name}' ranks each "
                                        "member against them; store them at export or use another combiner")
            quantiles.append(arr)
    if weights is not None and not weights.sum() > 0:
        raise CardMismatchError(file, "members[*].weight", "weights summing to more than 0",
                                weights.tolist(), "give at least one member a positive weight")
    return Ensemble(card, folder, members, weights, quantiles)
