"""Every config number has a stated range, every type is strict, every message names the key."""

from __future__ import annotations

import math

import msgspec
import pytest

from engine.config import MAX_CAPITAL, BacktestConfig, config_from_dict
from engine.errors import ConfigError
from engine.schema import Bounds, fmt_number, numeric_fields

ENGINE_CONFIGS = [BacktestConfig]


def configs() -> list[type[msgspec.Struct]]:
    from engine.adapters.alpaca.config import AlpacaConfig
    from models.ensemble import EnsembleCard
    from models.sentiment import SentimentSpec

    return [BacktestConfig, AlpacaConfig, EnsembleCard, SentimentSpec]


@pytest.mark.parametrize("struct", configs(), ids=lambda s: s.__name__)
def test_no_numeric_field_is_without_a_stated_range(struct: type[msgspec.Struct]) -> None:
    unbounded = [f.path for f in numeric_fields(struct) if not f.bounds.complete]
    assert not unbounded, f"{struct.__name__}: numeric fields without both bounds: {unbounded}"


def test_the_walk_finds_every_section() -> None:
    paths = {f.path for f in numeric_fields(BacktestConfig)}
    for needle in ("portfolio.capital", "costs.slippage_bps", "metrics.risk_free_rate", "regime.trend.sma",
                   "regime.volatility.quantile", "paper.flush_delay_s", "risk.cost_filter_horizon"):
        assert needle in paths
    assert len(paths) >= 40


def test_capital_stays_inside_nautilus_fixed_point_money() -> None:
    from nautilus_trader.model.objects import MONEY_MAX, QUANTITY_MAX

    # capital x a 1,000-fold gain still fits, and whole shares of a 1-cent stock too
    assert MAX_CAPITAL * 1_000 < MONEY_MAX and MAX_CAPITAL / 0.01 < QUANTITY_MAX


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -1e300])
def test_non_finite_and_huge_numbers_are_refused_for_every_numeric_field(value: float) -> None:
    for field in numeric_fields(BacktestConfig):
        section, _, key = field.path.rpartition(".")
        raw: dict = {}
        node = raw
        for part in section.split("."):
            node = node.setdefault(part, {})
        node[key] = value if field.kind is float else value
        with pytest.raises(ConfigError) as info:
            config_from_dict(raw, "bt.toml")
        text = str(info.value)
        assert field.path in text, text
        assert "bt.toml" in text


@pytest.mark.parametrize(("given", "advice"), [
    ("true", "write fractional = true (no quotes)"),
    ("yes", "write fractional = true (no quotes)"),
    ("0", "write fractional = false (no quotes)"),
    (1, "write fractional = true (no quotes)"),
    ("maybe", "write fractional = true or fractional = false"),
])
def test_booleans_are_toml_booleans(given: object, advice: str) -> None:
    with pytest.raises(ConfigError, match="portfolio.fractional") as info:
        config_from_dict({"portfolio": {"fractional": given}})
    assert advice in str(info.value)


def test_whole_numbers_and_quoted_numbers() -> None:
    with pytest.raises(ConfigError, match=r"max_positions = 2\.0 .*write max_positions = 2 \(a whole number"):
        config_from_dict({"portfolio": {"max_positions": 2.0}})
    with pytest.raises(ConfigError, match=r"slippage_bps = \"5\" .*write slippage_bps = 5 without quotes"):
        config_from_dict({"costs": {"slippage_bps": "5"}})
    with pytest.raises(ConfigError, match=r"strategy.slow = 1e9 is not valid: expected a whole number from 2 to 1,000,000$"):
        config_from_dict({"strategy": {"slow": 1e9}})


def test_range_is_stated_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"portfolio": {"capital": 1e15}})
    assert "portfolio.capital = 1e15 is not valid: expected a finite number > 0 and <= 1e10" in str(info.value)
    with pytest.raises(ConfigError, match=r"metrics.risk_free_rate = nan .* from -0.5 to 1"):
        config_from_dict({"metrics": {"risk_free_rate": math.nan}})


@pytest.mark.parametrize(("symbols", "needle"), [
    ([], "data.symbols is empty"),
    (["SPY", "AAPL", "SPY"], 'data.symbols lists "SPY" twice'),
    ("SPY", 'expected a list of strings, e.g. ["SPY", "AAPL"] or "all"'),
    ([1, 2], "data.symbols[0] = 1 is not valid"),
])
def test_empty_and_repeated_symbol_lists_are_refused(symbols: object, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"symbols": symbols}}, "bt.toml")
    assert needle in str(info.value)


def test_a_section_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"bt.toml: costs = 5 is not valid: expected a table"):
        config_from_dict({"costs": 5}, "bt.toml")


def test_bounds_and_numbers_read_as_a_user_writes_them() -> None:
    assert Bounds(0, True, 1e10, False).describe() == "> 0 and <= 1e10"
    assert Bounds(0, False, 1000, False).describe() == "from 0 to 1,000"
    assert [fmt_number(x) for x in (2**32 - 1, 0.05, 1e-12, 1e12)] == ["4,294,967,295", "0.05", "1e-12", "1e12"]
    assert not Bounds(0, False, 1, False).contains(math.nan)
