"""Sweep grids: ``--grid key=a:b:step`` / ``--grid key=v1,v2,...`` -> configurations.

``a:b:step`` is an inclusive range computed with integer steps on exact decimals
(``0.50:0.90:0.02`` is 21 values, the last exactly 0.9, never 0.9000000000000001);
the end is included when a whole number of steps reaches it. ``v1,v2,...`` lists values,
each read as a TOML value (bare words are strings: ``regime.combine=and,or``).

Only keys the fast path can vary are accepted (:data:`SWEEPABLE`); an unknown key is an
error that suggests the nearest valid one, a known key the kernel cannot vary is an
error that says how to run it instead. Every value is validated against the config
schema on its own before anything runs; combinations that break a rule spanning
fields (an exit threshold above the entry threshold) are skipped and counted.
"""

from __future__ import annotations

import difflib
import itertools
import math
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from engine.config import BacktestConfig, apply_overrides, config_from_dict
from engine.errors import ConfigError, did_you_mean

SWEEPABLE_FIELDS: dict[str, tuple[str, ...] | None] = {
    "strategy": ("entry_threshold", "exit_threshold", "short_threshold", "cover_threshold", "max_hold_bars"),
    "portfolio": ("position_size", "max_positions"),
    "costs": None,  # every field
    "risk": None,
    "regime": None,
}
"""Sections (and fields) the kernel can vary between configurations; None = all fields."""


def _leaves(struct: type[msgspec.Struct], prefix: str = "") -> list[str]:
    out: list[str] = []
    for f in msgspec.structs.fields(struct):
        t = f.type
        if isinstance(t, type) and issubclass(t, msgspec.Struct):
            out += _leaves(t, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


ALL_KEYS: tuple[str, ...] = tuple(_leaves(BacktestConfig))
"""Every leaf key of the backtest config, dotted."""


def _sweepable(key: str) -> bool:
    section, _, name = key.partition(".")
    if section not in SWEEPABLE_FIELDS:
        return False
    allowed = SWEEPABLE_FIELDS[section]
    return allowed is None or name in allowed


SWEEPABLE: tuple[str, ...] = tuple(k for k in ALL_KEYS if _sweepable(k))
"""Every key a sweep accepts."""
SWEEPABLE_HELP = (
    "strategy.entry_threshold, exit_threshold, short_threshold, cover_threshold, max_hold_bars; "
    "portfolio.position_size, max_positions; every costs.*, risk.* and regime.* key"
)


MAX_AXIS_VALUES = 100_000
"""Most values one ``--grid`` axis may have (counted before any is made)."""


@dataclass(frozen=True)
class Axis:
    """One swept key and its values, in order."""

    key: str
    values: tuple[Any, ...]

    @property
    def label(self) -> str:
        """The key without its section when that is unambiguous enough for a column name."""
        return self.key


def _toml_value(raw: str) -> Any:
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _decimal(raw: str, what: str, text: str) -> Decimal:
    try:
        d = Decimal(raw.strip())
    except InvalidOperation as exc:
        raise ConfigError(f"--grid '{text}': {what} '{raw}' is not a number (a:b:step needs numbers)") from exc
    if not d.is_finite():
        raise ConfigError(f"--grid '{text}': {what} '{raw}' is not a finite number")
    return d


def _range(text: str, spec: str) -> list[Any]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise ConfigError(f"--grid '{text}': a range is start:end:step, e.g. 0.50:0.90:0.02")
    a, b, step = (_decimal(p, w, text) for p, w in zip(parts, ("start", "end", "step"), strict=True))
    if step <= 0:
        raise ConfigError(f"--grid '{text}': the step must be positive")
    if b < a:
        raise ConfigError(f"--grid '{text}': the end ({b}) is before the start ({a}); the grid has no values")
    if b - a >= step * MAX_AXIS_VALUES:  # compared before dividing: the count may not even fit
        raise ConfigError(
            f"--grid '{text}' gives more than {MAX_AXIS_VALUES:,} values on one axis: "
            "use a coarser step or a narrower range"
        )
    n = int((b - a) // step)
    values = [a + i * step for i in range(n + 1)]
    integral = all(d == d.to_integral_value() for d in (a, b, step)) and "." not in spec
    return [int(v) if integral else float(v) for v in values]


def _suggest(key: str) -> str:
    hint = did_you_mean(key, ALL_KEYS)
    if hint:
        return hint
    by_name: dict[str, str] = {}
    for k in SWEEPABLE:
        by_name.setdefault(k.rpartition(".")[2], k)
    match = difflib.get_close_matches(key.rpartition(".")[2], list(by_name), n=1, cutoff=0.6)
    return f" - did you mean '{by_name[match[0]]}'?" if match else ""


def parse_axis(text: str, *, fast_path: bool = True) -> Axis:
    """Parse one ``--grid`` option (see the module docstring).

    With ``fast_path=False`` (event-engine backtest batches) every config key may be varied.
    """
    if "=" not in text:
        raise ConfigError(f"--grid '{text}' is not key=values, e.g. strategy.entry_threshold=0.50:0.90:0.02")
    key, _, spec = text.partition("=")
    key = key.strip()
    if key not in ALL_KEYS:
        known = f"sweepable: {SWEEPABLE_HELP}" if fast_path else "any [section] key of the backtest config"
        raise ConfigError(f"--grid: unknown key '{key}'{_suggest(key)}; {known}")
    if fast_path and key not in SWEEPABLE:
        raise ConfigError(
            f"--grid: '{key}' cannot be swept by the fast path (it fixes the universe, the fill "
            f"model or the strategy kind); run one sweep per value with --set {key}=..."
        )
    spec = spec.strip()
    if not spec or not spec.strip(","):
        raise ConfigError(f"--grid '{text}' has no values: give a:b:step or v1,v2,...")
    if ":" in spec and "," not in spec:
        values = _range(text, spec)
    else:
        tokens = [t for t in spec.split(",")]
        if any(not t.strip() for t in tokens):
            raise ConfigError(f"--grid '{text}' has an empty value between commas")
        values = [_toml_value(t) for t in tokens]
    if not values:
        raise ConfigError(f"--grid '{text}' has no values")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"--grid '{text}' repeats a value")
    return Axis(key, tuple(values))


def parse_grid(texts: Sequence[str], *, fast_path: bool = True) -> list[Axis]:
    """Parse every ``--grid`` option; a key may be given once (``fast_path``: see :func:`parse_axis`)."""
    if not texts and fast_path:
        raise ConfigError("sweep needs at least one --grid key=values, e.g. --grid strategy.entry_threshold=0.50:0.90:0.02")
    axes = [parse_axis(t, fast_path=fast_path) for t in texts]
    seen: set[str] = set()
    for ax in axes:
        if ax.key in seen:
            raise ConfigError(f"--grid: '{ax.key}' is given twice; put all its values in one option")
        seen.add(ax.key)
    return axes


def grid_size(axes: Sequence[Axis]) -> int:
    """Number of combinations of the axes."""
    return math.prod(len(a.values) for a in axes)


def _set(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return apply_overrides(raw, [f"{key}={_toml(value)}"])


def toml_value(value: Any) -> str:
    """*value* written as a TOML value (what ``--set key=...`` reads back)."""
    return _toml(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def check_values(raw: dict[str, Any], axes: Sequence[Axis], source: str) -> None:
    """Validate each value of each axis on its own against the config schema."""
    for ax in axes:
        for v in ax.values:
            trial = _set(raw, ax.key, v)
            try:
                msgspec.convert(trial, BacktestConfig, strict=True)
            except msgspec.ValidationError:
                try:
                    config_from_dict(trial, source)
                except ConfigError as exc:
                    raise ConfigError(f"--grid {ax.key}={_toml(v)}: {exc}") from exc
            except ConfigError:
                pass  # a rule spanning fields: judged per combination


def combinations(axes: Sequence[Axis]) -> Iterator[tuple[Any, ...]]:
    """Every combination of values, the last axis varying fastest."""
    return itertools.product(*(a.values for a in axes))


def config_for(raw: dict[str, Any], axes: Sequence[Axis], values: Sequence[Any], source: str) -> BacktestConfig:
    """The configuration of one combination (ConfigError if it breaks a cross-field rule)."""
    items = [f"{a.key}={_toml(v)}" for a, v in zip(axes, values, strict=True)]
    return config_from_dict(apply_overrides(raw, items), source)
