"""Property tests: any value in any section of a backtest or sweep config loads or is named.

Hypothesis feeds random values - valid ones, NaN / inf, huge and tiny numbers, numbers
just outside their range, booleans written as strings, quoted numbers, empty and repeated
lists, unknown keys - into every section. The property: the config either loads and the
run gives finite, sane figures, or it is refused with a ConfigError that names the key.
Never another exception (which the CLI would turn into exit 70).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.config import BacktestConfig, config_from_dict
from engine.errors import ConfigError, SigtradeError
from engine.metrics import json_safe
from models.errors import ModelContractError
from tests.config_values import is_finite_number_or_none, leaves, set_path, value_for, wrong_for

ROOT = Path(__file__).resolve().parents[2]
BASE_FIELDS = leaves(BacktestConfig)
# what a run needs fixed to stay small and meaningful; everything else is fuzzed
RUN_FIXED = ("data.catalog", "data.bar", "data.start", "data.end", "strategy.model", "paper.warmup_bars")
RUN_FIELDS = [f for f in BASE_FIELDS if f.path not in RUN_FIXED and not f.path.startswith("paper.")]


def _named(exc: ConfigError, paths: list[str]) -> bool:
    text = str(exc)
    return any(p in text or p.rsplit(".", 1)[-1] in text for p in paths)


@st.composite
def raw_configs(draw: st.DrawFn, fields: list[Any], base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=6, unique_by=lambda f: f.path))
    paths = []
    for field in chosen:
        set_path(raw, field.path, draw(value_for(field.tp)))
        paths.append(field.path)
    if draw(st.integers(0, 9)) == 0:  # an unknown key somewhere
        section = draw(st.sampled_from(["", "data", "costs", "risk", "regime.trend"]))
        name = draw(st.sampled_from(["slipage_bps", "capitol", "foo", "Threshold"]))
        set_path(raw, f"{section}.{name}" if section else name, 1)
        paths.append(name)
    return raw, paths


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(case=raw_configs(BASE_FIELDS, {}))
def test_any_backtest_config_loads_or_names_the_field(case: tuple[dict[str, Any], list[str]]) -> None:
    raw, paths = case
    try:
        cfg = config_from_dict(raw, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: "), str(exc)
        assert _named(exc, paths), f"{exc} names none of {paths}"
        assert "\n" not in str(exc)
        return
    # loaded: every number is finite and inside its range, every flag a real boolean
    assert isinstance(cfg.portfolio.fractional, bool) and isinstance(cfg.execution.close_at_end, bool)
    assert math.isfinite(cfg.portfolio.capital) and 0 < cfg.portfolio.capital <= 1e10
    assert math.isfinite(cfg.metrics.risk_free_rate) and math.isfinite(cfg.costs.slippage_bps)


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.sample import SampleSpec, write_sample

    root = tmp_path_factory.mktemp("fuzz") / "sample"
    write_sample(root, SampleSpec(n_symbols=3, start="2024-01-02", end="2024-03-28"))
    return root


def _sane(metrics: dict[str, Any]) -> None:
    safe = json_safe(metrics)
    for side in (safe, safe["benchmark"]):
        for key, value in side.items():
            if key in ("benchmark", "excess"):
                continue
            assert is_finite_number_or_none(value), (key, value)
        assert side["trades"] >= 0 and side["commission_paid"] >= 0 and side["slippage_paid"] >= 0
        assert side["total_return"] is not None and side["total_return"] > -10
        assert side["max_drawdown"] is None or -10 <= side["max_drawdown"] <= 0  # a fall, <= 0


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_config_that_loads_runs_to_finite_sane_figures(tiny_catalog: Path, data: st.DataObject) -> None:
    from engine.runner import run_backtest

    kind = data.draw(st.sampled_from(["sma_cross", "buy_and_hold", "signal"]))
    base = {"data": {"catalog": str(tiny_catalog), "start": "2024-02-01"},
            "strategy": {"kind": kind, "fast": 5, "slow": 20, "model": str(ROOT / "models" / "demo_mlp")}}
    raw, _ = data.draw(raw_configs([f for f in RUN_FIELDS if f.path != "strategy.kind"], base))
    # long indicator windows are valid, but only make this tiny universe trade nothing
    try:
        cfg = config_from_dict(raw, "fuzz.toml")
    except ConfigError:
        assume(False)
        return
    try:
        result = run_backtest(cfg)
    except (SigtradeError, ModelContractError) as exc:  # a user error the CLI prints in one line
        assert "\n" not in str(exc).strip() or "symbol" in str(exc), str(exc)
        return
    _sane(result.metrics)
    equity = result.strategy.equity.to_numpy()
    assert np.isfinite(equity).all() and len(equity) > 0


# --- sweeps ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastpath(tiny_catalog: Path) -> Any:
    from engine.cli.sweep_cmd import _score
    from engine.sim.sweep import load_fastpath

    raw = {"data": {"catalog": str(tiny_catalog), "start": "2024-02-01"},
           "strategy": {"kind": "signal", "model": str(ROOT / "models" / "demo_mlp")}}
    return raw, load_fastpath(config_from_dict(raw), _score)


SWEEPABLE = ["strategy.entry_threshold", "strategy.exit_threshold", "strategy.max_hold_bars",
             "portfolio.position_size", "portfolio.max_positions", "costs.slippage_bps", "costs.commission_bps",
             "risk.stop_loss", "risk.take_profit", "risk.cooldown_bars", "risk.cost_multiple",
             "risk.cost_filter", "regime.trend.sma", "regime.volatility.quantile", "risk.atr_period"]


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    return repr(value) if isinstance(value, str) else str(value)


@st.composite
def grids(draw: st.DrawFn) -> list[str]:
    by_path = {f.path: f for f in BASE_FIELDS}
    keys = draw(st.lists(st.sampled_from(SWEEPABLE), min_size=1, max_size=2, unique=True))
    texts = []
    for key in keys:
        tp = by_path[key].tp
        if draw(st.booleans()):
            values = draw(st.lists(value_for(tp), min_size=1, max_size=3))
            texts.append(f"{key}=" + ",".join(_token(v) for v in values))
        else:
            a, b = draw(value_for(tp)), draw(value_for(tp))
            step = draw(st.sampled_from([0.05, 1, 0, -1, math.nan, 1e-12]))
            texts.append(f"{key}={_token(a)}:{_token(b)}:{_token(step)}")
    if draw(st.integers(0, 7)) == 0:
        texts.append(draw(st.sampled_from(["strategy.entry_threshold", "data.catalog=x,y", "risk.stop_los=0,1"])))
    return texts


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts=grids())
def test_any_grid_sweeps_to_finite_rows_or_names_the_key(fastpath: Any, texts: list[str]) -> None:
    from engine.sim.grid import grid_size, parse_grid
    from engine.sim.sweep import plan, run_sweep

    raw, fast = fastpath
    try:
        axes = parse_grid(texts)
        p = plan(fast, grid_size(axes), True, 2**28)
        res = run_sweep(fast, raw, axes, "fuzz.toml", p)
    except ConfigError as exc:
        keys = [t.split("=", 1)[0] for t in texts]
        named = any(k in str(exc) or k.rsplit(".", 1)[-1] in str(exc) for k in keys)
        assert named or "the grid is too large for memory" in str(exc), f"{exc} names none of {keys}"
        return
    frame = res.results
    assert len(frame) + res.skipped == grid_size(axes)
    for col in ("total_return", "trades", "costs", "turnover"):
        assert np.isfinite(frame[col].to_numpy(dtype=float)).all(), col
    assert (frame["trades"] >= 0).all() and (frame["costs"] >= 0).all()
    wrong = wrong_for(float)  # keep the helper honest: it draws values of every kind
    assert wrong is not None
