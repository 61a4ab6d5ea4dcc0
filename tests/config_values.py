"""Hypothesis strategies for config values: valid ones, and every kind of wrong one.

:func:`leaves` walks a msgspec config tree; :func:`value_for` draws, for one leaf, either a
valid value (inside its stated range, one of its choices, ...) or a wrong one: NaN, +-inf,
huge and tiny numbers, a number just outside the range, a boolean written as a string or
a number, a whole number written with a decimal point, a quoted number, an empty or
repeated list, a table where a value belongs, None. The config property tests feed these
into every section and check that each config either loads or is refused with a message
naming the key.
"""

from __future__ import annotations

import datetime as dt
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from hypothesis import strategies as st

from engine.schema import Bounds, _alternatives, _strip_annotated, _struct_in, bounds_of

WRONG_SCALARS: list[Any] = [math.nan, math.inf, -math.inf, 1e300, -1e300, 1e-300, -1, 0, 2.5, "1", "true",
                            "yes", "", True, False, [], [1, 1], {"x": 1}, None]


@dataclass(frozen=True)
class Leaf:
    """One settable field of a config tree."""

    path: str
    tp: Any


def leaves(struct: type[msgspec.Struct], prefix: str = "", skip: tuple[str, ...] = ()) -> list[Leaf]:
    """Every non-section field of *struct* (depth first), except the dotted paths in *skip*."""
    out: list[Leaf] = []
    for name, tp in typing.get_type_hints(struct, include_extras=True).items():
        path = f"{prefix}{name}"
        if path in skip or name.startswith("_"):
            continue
        nested = _struct_in(tp)
        if nested is not None and typing.get_origin(_strip_annotated(tp)[0]) is not dict:
            out.extend(leaves(nested, f"{path}.", skip))
        else:
            out.append(Leaf(path, tp))
    return out


def _numbers(kind: type, b: Bounds) -> st.SearchStrategy[Any]:
    lo = -1e12 if b.low is None else b.low
    hi = 1e12 if b.high is None else b.high
    if kind is int:
        lo_i = math.ceil(lo) + (1 if b.low_open and float(lo).is_integer() else 0)
        hi_i = math.floor(hi) - (1 if b.high_open and float(hi).is_integer() else 0)
        return st.integers(lo_i, hi_i)
    return st.floats(lo, hi, exclude_min=b.low_open, exclude_max=b.high_open, allow_nan=False, allow_infinity=False)


def _outside(kind: type, b: Bounds) -> list[Any]:
    out: list[Any] = []
    if b.low is not None:
        out.append(int(b.low) - 1 if kind is int else b.low - max(1e-9, abs(b.low) * 1e-6))
    if b.high is not None:
        out.append(int(b.high) + 1 if kind is int else b.high * 2 + 1)
    return out


def valid_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values of type *tp* inside its stated range."""
    options: list[st.SearchStrategy[Any]] = []
    for alt in _alternatives(tp):
        base, _ = _strip_annotated(alt)
        if base is type(None):
            options.append(st.none())
        elif base is bool:
            options.append(st.booleans())
        elif base in (int, float):
            options.append(_numbers(base, bounds_of(alt)))
        elif base is str:
            options.append(st.text("abcdefgh_-.0123456789", min_size=1, max_size=12))
        elif base is dt.date:
            options.append(st.dates(dt.date(2020, 1, 1), dt.date(2027, 12, 31)))
        elif typing.get_origin(base) is Literal:
            options.append(st.sampled_from(typing.get_args(base)))
        elif typing.get_origin(base) in (list, tuple):
            inner = typing.get_args(base)[0]
            options.append(st.lists(valid_for(inner), min_size=1, max_size=4, unique=True))
    return st.one_of(*options) if options else st.nothing()


def wrong_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values a user might write for *tp* that are wrong (or valid by accident: the test accepts both)."""
    extra: list[Any] = []
    for alt in _alternatives(tp):
        base, _ = _strip_annotated(alt)
        if base in (int, float):
            extra += _outside(base, bounds_of(alt))
            extra += [3.0, 1e9] if base is int else ["0.5"]
        if typing.get_origin(base) in (list, tuple):
            extra += [[], ["SPY", "SPY"], "SPY"]
        if typing.get_origin(base) is Literal:
            extra += [str(typing.get_args(base)[0]).upper(), str(typing.get_args(base)[0]) + "x"]
    return st.sampled_from(WRONG_SCALARS + extra)


def value_for(tp: Any) -> st.SearchStrategy[Any]:
    """Mostly valid values, often wrong ones."""
    return st.one_of(valid_for(tp), valid_for(tp), wrong_for(tp))


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted *path* of the nested dict *raw* to *value*."""
    *sections, key = path.split(".")
    node = raw
    for part in sections:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node[key] = value


def is_finite_number_or_none(x: Any) -> bool:
    """A metric a user can read: a finite number, or None / NaN for 'not defined'."""
    if x is None:
        return True
    if isinstance(x, bool | int):
        return True
    if isinstance(x, float):
        return not math.isinf(x)
    return True
