"""Property tests for training and tuning configs: every value loads, or is refused by name.

Like tests/engine/test_config_fuzz.py for backtests: random values (valid ones, NaN / inf,
huge and tiny, out of range, wrong types, empty and repeated lists, unknown keys) in every
section. A config that loads trains (one small epoch) to finite losses and metrics, or
stops with a ConfigError-family message - never another exception.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytest.importorskip("torch")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.errors import ConfigError, SigtradeError  # noqa: E402
from engine.schema import numeric_fields  # noqa: E402
from research.config import TrainConfig, train_config_from_dict  # noqa: E402
from research.tune import ParamSpec, TuneConfig, tune_config_from_dict  # noqa: E402
from tests.config_values import leaves, set_path, value_for  # noqa: E402
from tests.research.conftest import tiny_raw  # noqa: E402

FIELDS = leaves(TrainConfig)


@pytest.mark.parametrize("struct", [TrainConfig, TuneConfig, ParamSpec], ids=lambda s: s.__name__)
def test_no_numeric_field_is_without_a_stated_range(struct: type[msgspec.Struct]) -> None:
    unbounded = [f.path for f in numeric_fields(struct) if not f.bounds.complete]
    assert not unbounded, f"{struct.__name__}: numeric fields without both bounds: {unbounded}"


@st.composite
def cases(draw: st.DrawFn, fields: list[Any], base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=5, unique_by=lambda f: f.path))
    for field in chosen:
        set_path(raw, field.path, draw(value_for(field.tp)))
    paths = [f.path for f in chosen]
    if draw(st.integers(0, 9)) == 0:
        section = draw(st.sampled_from(["data", "model", "train", "label"]))
        set_path(raw, f"{section}.learning_rat", 0.1)
        paths.append("learning_rat")
    return raw, paths


def _named(exc: Exception, paths: list[str]) -> bool:
    return any(p in str(exc) or p.rsplit(".", 1)[-1] in str(exc) for p in paths)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(FIELDS, {}))
def test_any_training_config_loads_or_names_the_field(case: tuple[dict[str, Any], list[str]]) -> None:
    raw, paths = case
    try:
        cfg = train_config_from_dict(raw, "fuzz.toml")
    except ConfigError as exc:
        assert _named(exc, paths), f"{exc} names none of {paths}"
        assert "\n" not in str(exc)
        return
    assert math.isfinite(cfg.train.lr) and cfg.train.lr > 0
    assert isinstance(cfg.model.attention, bool)


# sizes a test can afford; every other field is fuzzed across its whole range
RUN_FIXED = ("data.catalog", "data.train", "data.validation", "data.test", "data.bar", "data.purge",
             "data.lookback", "label.horizon", "model.hidden", "model.layers", "model.embedding_dim",
             "model.kernel_size", "train.epochs", "train.batch_size", "train.threads", "train.device",
             "train.patience", "output.name", "output.run_dir", "features.set", "features.version")
RUN_FIELDS = [f for f in FIELDS if f.path not in RUN_FIXED and not f.path.startswith("sentiment.")]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_training_config_that_loads_trains_to_finite_figures(
    tiny_catalog: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    from research.train import train

    run_dir = tmp_path_factory.mktemp("fuzz-run")
    base = tiny_raw(tiny_catalog, run_dir, model={"hidden": 8, "layers": 1}, train={"epochs": 1, "batch_size": 128})
    raw, _ = data.draw(cases(RUN_FIELDS, base))
    arch = data.draw(st.sampled_from(["mlp", "gru"]))
    set_path(raw, "model.architecture", arch)
    try:
        cfg = train_config_from_dict(raw, "fuzz.toml")
    except ConfigError:
        assume(False)
        return
    try:
        result = train(cfg)
    except SigtradeError as exc:  # e.g. a label that is never positive, a run that diverged
        assert "\n" not in str(exc), str(exc)
        return
    for row in result.history:
        assert math.isfinite(row["train_loss"]), row
        for key in ("val_f1", "val_accuracy"):
            assert 0.0 <= row[key] <= 1.0, (key, row[key])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_tune_table_loads_or_names_the_field(data: st.DataObject) -> None:
    cfg = train_config_from_dict(tiny_raw(Path("unused")))
    spec_fields = leaves(ParamSpec)
    raw: dict[str, Any] = {}
    for field in data.draw(st.lists(st.sampled_from(leaves(TuneConfig, skip=("space",))), max_size=3,
                                    unique_by=lambda f: f.path)):
        set_path(raw, field.path, data.draw(value_for(field.tp)))
    name = data.draw(st.sampled_from(["train.lr", "model.hidden", "dropout", "model.layers"]))
    spec: dict[str, Any] = {"type": data.draw(st.sampled_from(["int", "float", "categorical", "fancy"]))}
    for field in data.draw(st.lists(st.sampled_from(spec_fields), max_size=4, unique_by=lambda f: f.path)):
        spec[field.path] = data.draw(value_for(field.tp))
    raw["space"] = {"all": {name: spec}}
    try:
        tune = tune_config_from_dict(raw, cfg, "fuzz.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    for specs in tune.space.values():
        for s in specs.values():
            for v in (s.low, s.high, s.step):
                assert v is None or math.isfinite(v)
