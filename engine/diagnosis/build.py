"""Put the seven sections together: :func:`diagnose` a finished run.

Order: the run's replay on the fast path is prepared and checked first (it feeds the
break-even curve and control (d)); then costs, churn, signal quality, controls,
attribution and risk; the event-engine confirmation of the break-even point when asked;
the verdict last, from the others' figures. Each section's time is recorded.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from engine.config import BacktestConfig
from engine.diagnosis import attribution, churn, controls, costs, risk, signal_quality, verdict
from engine.diagnosis.context import SIGNAL_KINDS, Context, SignalInputs, SignalLoader
from engine.diagnosis.replay import build_replay
from engine.errors import ConfigError
from engine.metrics import compute_metrics, json_safe
from engine.results import BacktestResult
from engine.sim.fastpath import FastPath

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the diagnosis.json layout."""
SECTIONS = ("costs", "churn", "signal_quality", "controls", "attribution", "risk", "verdict")
"""The sections, in the order the page and the CLI show them."""


@dataclass
class Diagnosis:
    """A run's diagnosis: the JSON figures (``data``) and, per section, the series its plots draw."""

    data: dict[str, Any]
    series: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        """diagnosis.json's text."""
        return json.dumps(self.data, indent=2, allow_nan=False) + "\n"


def signal_inputs(cfg: BacktestConfig, result: BacktestResult, loader: SignalLoader | None) -> SignalInputs | None:
    """The model facts of a signal run: what its strategy kept, else what *loader* computes."""
    if cfg.strategy.kind not in SIGNAL_KINDS:
        return None
    raw = result.strategy.signal
    if raw is not None and raw.get("probabilities") is not None:
        return SignalInputs.from_mapping(raw)
    if loader is None or result.inputs is None:
        return None
    loaded = loader(cfg, result.inputs.history)
    return SignalInputs.from_mapping(raw or loaded, loaded.get("probabilities"))


def _event_metrics(ctx: Context) -> Any:
    from engine.runner import decision_bounds, simulate
    from engine.strategy_registry import strategy_params

    inp = ctx.inputs

    def run(cfg: BacktestConfig) -> dict[str, Any]:
        r = simulate(cfg, inp.window, inp.full, cfg.strategy.kind, strategy_params(cfg), history=inp.history,
                     bench_history=inp.bench_history, bounds=decision_bounds(cfg, inp.window))
        return compute_metrics(r, risk_free_rate=cfg.metrics.risk_free_rate)

    return run


def diagnose(
    result: BacktestResult,
    cfg: BacktestConfig,
    *,
    signal_loader: SignalLoader | None = None,
    fast: FastPath | None = None,
    source: str = "event engine",
) -> Diagnosis:
    """Explain one finished run (see :mod:`engine.diagnosis`).

    Parameters
    ----------
    result
        The run, with its bars (``result.inputs``, set by ``engine.runner.run_backtest``).
    cfg
        The run's config (``[diagnosis]`` holds the settings).
    signal_loader
        For signal strategies whose run did not keep its batch probabilities (streaming
        mode, a sweep's configurations): ``strategies.signal:diagnosis_inputs``, wired in
        by the CLI (the engine never imports models).
    fast
        An already prepared fast path of the same universe and signal (a sweep's).
    source
        Whose books the run is, shown on the page.
    """
    if result.inputs is None:
        raise ConfigError("the diagnosis needs the run's bars: run it with engine.runner.run_backtest")
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    ctx = Context(cfg=cfg, result=result, inputs=result.inputs, signal=signal_inputs(cfg, result, signal_loader), source=source)
    t = time.perf_counter()
    replay = build_replay(ctx, fast)
    timings["replay"] = time.perf_counter() - t
    data: dict[str, Any] = {}
    series: dict[str, dict[str, Any]] = {}
    for name, fn in (("costs", lambda: costs.section(ctx, replay)), ("churn", lambda: churn.section(ctx)),
                     ("signal_quality", lambda: signal_quality.section(ctx)),
                     ("controls", lambda: controls.section(ctx, replay)),
                     ("attribution", lambda: attribution.section(ctx)), ("risk", lambda: risk.section(ctx))):
        t = time.perf_counter()
        data[name], series[name] = fn()
        timings[name] = time.perf_counter() - t
    be = data["costs"]["break_even"]
    if cfg.diagnosis.confirm_break_even and be.get("applies"):
        t = time.perf_counter()
        be["confirmation"] = costs.confirm(cfg, be, _event_metrics(ctx))
        timings["confirm_break_even"] = time.perf_counter() - t
    data["replay"] = {
        "built": replay is not None,
        "simulator": None if replay is None else ("signal kernel" if replay.kind == "signal" else "buy-and-hold kernel"),
        "reproduced": bool(replay is not None and replay.reproduced),
        "detail": "no fast-path replay of this strategy" if replay is None else replay.detail,
    }
    data["verdict"] = verdict.section(data)
    timings["total"] = time.perf_counter() - t_all
    d = cfg.diagnosis
    head = {
        "schema_version": SCHEMA_VERSION,
        "strategy_kind": cfg.strategy.kind,
        "books": source,
        "settings": {"max_cost_bps": d.max_cost_bps, "cost_levels": d.cost_levels, "random_draws": d.random_draws,
                     "seed": d.seed, "rolling_months": d.rolling_months, "reentry_bars": d.reentry_bars,
                     "confirm_break_even": d.confirm_break_even},
        "notes": ctx.notes,
        "timings": timings,
    }
    return Diagnosis(data=json_safe({**head, **data}), series=series)
