"""What every section of the diagnosis reads: the run, its config and bars, the model's facts.

A :class:`Context` is built once per diagnosed run (:func:`engine.diagnosis.build.diagnose`)
and handed to each section. Its equity curve, fills and trades are the run's own - the
event engine's books for ``sigtrade backtest``, the fast path's (bit-identical) books for a
sweep's configurations - and every section derives its figures from them: sigtrade's
equity curve stays the single source of truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine import sessions
from engine.config import BacktestConfig
from engine.overlays import round_trip_rate
from engine.results import BacktestResult, RunInputs, RunResult

SignalLoader = Callable[[BacktestConfig, dict[str, pd.DataFrame]], Mapping[str, Any]]
"""(config, history frames) -> the model's description (``strategies.signal:diagnosis_inputs``)."""

SIGNAL_KINDS = ("signal", "ensemble")
"""Strategy kinds driven by a model's probabilities."""


@dataclass
class SignalInputs:
    """A model's batch probabilities and the facts of its card, as plain data (engine never imports models)."""

    model: str
    probabilities: dict[str, pd.Series]
    label_kind: str | None
    label_horizon: int | None
    label_params: dict[str, Any]
    card_threshold: float
    card_metrics: dict[str, Any] = field(default_factory=dict)
    members_agree: bool = True

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], probabilities: Mapping[str, pd.Series] | None = None) -> SignalInputs:
        """Read the dict a strategy plug-in returns (``strategies.signal.signal_description``)."""
        label = raw.get("label") or {}
        probs = probabilities if probabilities is not None else raw.get("probabilities")
        if probs is None:
            raise ValueError("the model description carries no probabilities")
        return cls(
            model=str(raw.get("model", "")),
            probabilities=dict(probs),
            label_kind=label.get("kind"),
            label_horizon=int(label["horizon"]) if label.get("horizon") else None,
            label_params=dict(label.get("params") or {}),
            card_threshold=float(raw.get("card_threshold", 0.5)),
            card_metrics=dict(raw.get("card_metrics") or {}),
            members_agree=bool(label.get("members_agree", True)),
        )


@dataclass
class Context:
    """One diagnosed run: its result, config, bars, the model facts and the run-level constants."""

    cfg: BacktestConfig
    result: BacktestResult
    inputs: RunInputs
    signal: SignalInputs | None
    source: str = "event engine"
    """Whose books the run is ("event engine" or "fast path (bit-identical to the event engine)")."""
    notes: list[str] = field(default_factory=list)

    @property
    def run(self) -> RunResult:
        """The strategy's books."""
        return self.result.strategy

    @property
    def kind(self) -> str:
        """The strategy kind."""
        return self.cfg.strategy.kind

    @property
    def capital(self) -> float:
        """Starting cash."""
        return float(self.run.capital)

    @property
    def horizon(self) -> int | None:
        """The card's label horizon in bars (None without a model)."""
        return self.signal.label_horizon if self.signal is not None else None

    @property
    def round_trip_rate(self) -> float:
        """Proportional cost of one round trip: 2 x (commission + slippage) bps / 1e4 (per-share parts excluded)."""
        return round_trip_rate(self.cfg)

    @property
    def bars_per_session(self) -> int:
        """A symbol's bars per NYSE session (the median over the universe; 7 for the shared hourly data)."""
        counts = [sessions.periods_per_year(pd.DatetimeIndex(f.index)) / 252.0 for f in self.inputs.window.values() if len(f)]
        return max(1, round(float(np.median(counts)))) if counts else 1

    @property
    def n_sessions(self) -> int:
        """NYSE sessions the window spans."""
        idx = pd.DatetimeIndex(self.run.equity.index)
        if not len(idx):
            return 0
        return int(len(np.unique(sessions.session_of(idx, side="right").asi8)))

    @property
    def periods_per_year(self) -> float:
        """The metrics' annualisation factor."""
        return float(self.result.metrics.get("periods_per_year") or 252.0)
