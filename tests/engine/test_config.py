"""The backtest config: strict, typed, documented, overridable from the command line."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.config import BacktestConfig, load_config, parse_override
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_configs_load() -> None:
    # training configs (train_*.toml) and RL configs (rl_*.toml, config/rl/) are research's; the rest are backtests
    for path in sorted(p for p in (ROOT / "config").rglob("*.toml")
                       if not p.name.startswith(("train_", "rl_")) and p.parent.name != "rl"):
        cfg = load_config(path)
        assert isinstance(cfg, BacktestConfig), path


def test_defaults_are_what_a_user_expects() -> None:
    cfg = load_config(None)
    assert cfg.execution.fill == "next_open"
    assert cfg.costs.commission_bps == 10 and cfg.costs.slippage_bps == 5
    assert cfg.portfolio.capital == 100_000 and cfg.portfolio.fractional is False
    assert cfg.benchmark.symbol == "SPY" and cfg.metrics.risk_free_rate == 0.0


def test_set_overrides_any_field_with_toml_typed_values() -> None:
    cfg = load_config(None, ["costs.slippage_bps=0", 'data.symbols=["SPY","QQQ"]', "data.start=2024-01-02", "portfolio.fractional=true"])
    assert cfg.costs.slippage_bps == 0.0
    assert cfg.data.symbols == ["SPY", "QQQ"]
    assert str(cfg.data.start) == "2024-01-02"
    assert cfg.portfolio.fractional is True
    assert parse_override("strategy.kind=sma_cross") == (["strategy", "kind"], "sma_cross")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("costs.slipage_bps=1", "did you mean 'slippage_bps'"),
        ("strategy.fsat=3", "did you mean 'fast'"),
        ("portfolio.capitel=5", "did you mean 'capital'"),
        ("dta.catalog=x", "did you mean 'data'"),
    ],
)
def test_unknown_keys_are_errors_that_suggest_the_right_name(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("costs.slippage_bps=-1", "costs.slippage_bps"),
        ('execution.fill="tomorrow"', "execution.fill"),
        ("portfolio.position_size=1.5", "portfolio.position_size"),
        ('data.bar="1H"', "N-MINUTE, N-HOUR or N-DAY"),
        ("strategy.kind=\"sma_cross\"", None),
    ],
)
def test_bad_values_name_the_field(override: str, needle: str | None) -> None:
    if needle is None:
        with pytest.raises(ConfigError, match="fast .* shorter than strategy.slow"):
            load_config(None, [override, "strategy.fast=50", "strategy.slow=20"])
        return
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


def test_start_after_end_is_refused() -> None:
    with pytest.raises(ConfigError, match="after data.end"):
        load_config(None, ["data.start=2025-01-02", "data.end=2024-01-02"])


def test_config_is_frozen() -> None:
    cfg = load_config(None)
    with pytest.raises((AttributeError, TypeError)):
        cfg.costs.slippage_bps = 1.0  # type: ignore[misc]


def test_every_field_is_documented() -> None:
    import inspect

    import engine.config as mod

    source = inspect.getsource(mod)
    for section in msgspec.structs.fields(BacktestConfig):
        for f in msgspec.structs.fields(section.type):
            # each field is followed by a docstring line in the module source
            idx = source.find(f"    {f.name}:")
            assert idx >= 0, f.name
            assert '"""' in source[idx : idx + 400].split("\n", 2)[1], f"{section.name}.{f.name} lacks a docstring"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\ncatalog = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
