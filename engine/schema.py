"""The checked schema of every sigtrade config: strict conversion and messages that teach.

Every config (backtest, sweep, training, tuning) is a tree of frozen msgspec structs. This
module is the one place that turns a plain dict read from TOML (or JSON, for recorded
configs) into such a tree, and turns every way that can fail into one
:class:`~engine.errors.ConfigError` that names the key, the value found, what was expected
and what to write instead:

* **types are strict**: a boolean is a TOML boolean (``"true"``, ``1`` and ``"yes"`` are
  refused with "write ``key = true``"), a whole number is written without a decimal point,
  a number is not a string;
* **every number has a stated range** with both ends (``msgspec.Meta`` bounds on the
  field), and must be finite: ``nan``, ``inf`` and values so large that NautilusTrader's
  fixed-point money or numba would overflow are refused when the config loads, with the
  allowed range in the message. :func:`numeric_fields` lists every numeric field with its
  bounds, so a test holds each config to this rule;
* **unknown keys** suggest the nearest valid one.

Cross-field rules stay in each config's ``__post_init__``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from engine.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=msgspec.Struct)

_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False,
               "1": True, "0": False, "y": True, "n": False, "t": True, "f": False}


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric field (``None`` on a side: unbounded)."""

    low: float | None
    low_open: bool
    high: float | None
    high_open: bool

    @property
    def complete(self) -> bool:
        """Both ends stated."""
        return self.low is not None and self.high is not None

    def contains(self, x: float) -> bool:
        """Whether *x* is finite and inside the range."""
        if not math.isfinite(x):
            return False
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))

    def describe(self) -> str:
        """``from 0 to 1,000`` / ``> 0 and <= 1e10``."""
        if self.low is not None and self.high is not None and not self.low_open and not self.high_open:
            return f"from {fmt_number(self.low)} to {fmt_number(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {fmt_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {fmt_number(self.high)}")
        return " and ".join(parts)


@dataclass(frozen=True)
class NumericField:
    """One numeric field of a config tree."""

    path: str
    kind: type
    bounds: Bounds
    optional: bool


def fmt_number(x: float) -> str:
    """A number as a user writes it: ``1000``, ``0.05``, ``1e10``."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if not math.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    if float(x).is_integer() and abs(x) < 1e16:
        n = int(x)
        digits = str(abs(n))
        if abs(n) >= 10**7 and digits.strip("0") == "1":  # 1e10, not 10,000,000,000
            return f"{'-' if n < 0 else ''}1e{len(digits) - 1}"
        return f"{n:,}"
    text = f"{x:g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def toml_repr(value: Any) -> str:
    """*value* as it would be written in TOML (strings quoted, booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e7:
        return f"{value:.1f}"
    if isinstance(value, int | float):
        return fmt_number(value).replace(",", "_")
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        inner = ", ".join(toml_repr(v) for v in value[:8])
        return f"[{inner}{', ...' if len(value) > 8 else ''}]"
    if isinstance(value, dict):
        return "a table {" + ", ".join(str(k) for k in list(value)[:8]) + "}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value)


# --- type introspection ---------------------------------------------------------------------


def _strip_annotated(tp: Any) -> tuple[Any, list[msgspec.Meta]]:
    metas: list[msgspec.Meta] = []
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        tp = args[0]
        metas.extend(m for m in args[1:] if isinstance(m, msgspec.Meta))
    return tp, metas


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _alternatives(tp: Any) -> tuple[Any, ...]:
    """The members of a union, each with its own ``Annotated`` bounds (``(tp,)`` otherwise)."""
    return (tp,) if typing.get_origin(tp) is typing.Annotated else _union_args(tp)


def bounds_of(tp: Any) -> Bounds:
    """The range stated on a (possibly ``Annotated``) numeric type."""
    _, metas = _strip_annotated(tp)
    low = high = None
    low_open = high_open = False
    for m in metas:
        if m.ge is not None:
            low, low_open = float(m.ge), False
        if m.gt is not None:
            low, low_open = float(m.gt), True
        if m.le is not None:
            high, high_open = float(m.le), False
        if m.lt is not None:
            high, high_open = float(m.lt), True
    return Bounds(low, low_open, high, high_open)


def _hints(struct: Any) -> dict[str, Any]:
    return typing.get_type_hints(struct, include_extras=True)


def _struct_in(tp: Any) -> type[msgspec.Struct] | None:
    for arg in _union_args(_strip_annotated(tp)[0]):
        arg, _ = _strip_annotated(arg)
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def numeric_fields(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[NumericField]:
    """Every int / float field of *struct* and its nested sections, with its bounds."""
    for name, tp in _hints(struct).items():
        if name.startswith("_"):
            continue
        path = f"{prefix}{name}"
        nested = _struct_in(tp)
        if nested is not None:
            yield from numeric_fields(nested, f"{path}.")
            continue
        args = _union_args(tp)
        optional = type(None) in args
        for arg in args:
            base, _ = _strip_annotated(arg)
            if base in (int, float):
                yield NumericField(path, base, bounds_of(arg), optional)
            elif typing.get_origin(base) in (list, tuple) or typing.get_origin(base) is dict:
                for inner in typing.get_args(base):
                    ibase, _ = _strip_annotated(inner)
                    if ibase in (int, float):
                        yield NumericField(f"{path}[]", ibase, bounds_of(inner), optional)


def field_type(struct: type[msgspec.Struct], path: list[str]) -> Any:
    """The annotation at *path* (section names, then a field), or None."""
    current: Any = struct
    tp: Any = None
    for part in path:
        if current is None:
            return None
        hints = _hints(current)
        if part not in hints:
            return None
        tp = hints[part]
        current = _struct_in(tp)
    return tp


def describe(tp: Any) -> str:
    """What a value of type *tp* looks like, in a user's words."""
    base, _ = _strip_annotated(tp)
    args = _union_args(base)
    if len(args) > 1:
        parts = [describe(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" (or leave the key out for the default)" if type(None) in args else "")
    if base is bool:
        return "true or false (a TOML boolean, without quotes)"
    if base is int:
        b = bounds_of(tp)
        return "a whole number" + (f" {b.describe()}" if b.low is not None or b.high is not None else "")
    if base is float:
        b = bounds_of(tp)
        return "a finite number" + (f" {b.describe()}" if b.low is not None or b.high is not None else "")
    if base is str:
        return "a string in quotes"
    if base is dt.date:
        return "a date written YYYY-MM-DD"
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
        return ("one of " if len(choices) > 1 else "") + ", ".join(toml_repr(c) for c in choices)
    if typing.get_origin(base) in (list, tuple):
        inner = typing.get_args(base)
        if inner and _strip_annotated(inner[0])[0] is str:
            return 'a list of strings, e.g. ["SPY", "AAPL"]'
        return f"a list of {describe(inner[0]) if inner else 'values'}".replace("a list of a ", "a list of ")
    if typing.get_origin(base) is dict:
        return "a table"
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        return "a table"
    return getattr(base, "__name__", str(base))


# --- conversion and messages ----------------------------------------------------------------


def _path_parts(text: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return parts


def _value_at(raw: Any, parts: list[str | int]) -> tuple[bool, Any]:
    node = raw
    for p in parts:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _hint_for(tp: Any, found: Any, key: str) -> str:
    base, _ = _strip_annotated(tp)
    bases = [_strip_annotated(a)[0] for a in _union_args(base)]
    if bool in bases and not isinstance(found, bool):
        word = str(found).strip().lower()
        if word in _BOOL_WORDS:
            return f"; write {key} = {'true' if _BOOL_WORDS[word] else 'false'} (no quotes)"
        return f"; write {key} = true or {key} = false"
    if int in bases and isinstance(found, float) and math.isfinite(found) and found.is_integer():
        if bounds_of(next(a for a in _alternatives(tp) if _strip_annotated(a)[0] is int)).contains(found):
            return f"; write {key} = {int(found)} (a whole number, no decimal point)"
        return ""
    if (int in bases or float in bases) and isinstance(found, str):
        try:
            float(found)
        except ValueError:
            return ""
        return f"; write {key} = {found.strip()} without quotes"
    if isinstance(found, float) and not math.isfinite(found):
        return "; nan and inf are not allowed in a config"
    return ""


def explain(
    exc: msgspec.ValidationError, raw: Any, struct: type[msgspec.Struct], source: str, prefix: str = ""
) -> ConfigError:
    """Turn a msgspec validation error into a ConfigError that names key, value and remedy.

    *prefix* is the dotted name of the table *raw* came from (``tune.space.gru.hidden``).
    """
    lead = f"{prefix}." if prefix else ""
    text = str(exc)
    at = re.search(r" - at `\$(?P<path>[^`]*)`$", text)
    parts = _path_parts(at.group("path")) if at else []
    message = text[: at.start()] if at else text
    unknown = re.match(r"Object contains unknown field `(?P<field>[^`]+)`", message)
    names = [p for p in parts if isinstance(p, str)]
    if unknown:
        field = unknown.group("field")
        section = struct if not names else _struct_in(field_type(struct, names))
        choices = list(section.__struct_fields__) if section else []
        where = lead + ".".join([*names, field])
        return ConfigError(
            f"{source}: unknown key '{where}'{did_you_mean(field, choices)} "
            f"(valid keys here: {', '.join(choices)})"
        )
    missing = re.match(r"Object missing required field `(?P<field>[^`]+)`", message)
    if missing:
        where = lead + ".".join([*names, missing.group("field")])
        return ConfigError(f"{source}: '{where}' is required: add it")
    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in parts).replace(".[", "[")
    tp = field_type(struct, names)
    ok, found = _value_at(raw, parts)
    if not where:
        return ConfigError(f"{source}: {prefix + ': ' if prefix else ''}{message}")
    where = lead + where
    if tp is None or (parts and isinstance(parts[-1], int)):
        # a list element: the message of msgspec says what it wanted
        shown = f" = {toml_repr(found)}" if ok else ""
        return ConfigError(f"{source}: {where}{shown} is not valid: {message}")
    expected = describe(tp)
    base = _strip_annotated(tp)[0]
    if typing.get_origin(base) is Literal or any(
        typing.get_origin(_strip_annotated(a)[0]) is Literal for a in _union_args(base)
    ):
        choices = [str(c) for a in _union_args(base) if typing.get_origin(_strip_annotated(a)[0]) is Literal
                   for c in typing.get_args(_strip_annotated(a)[0])]
        hint = did_you_mean(str(found), choices) if isinstance(found, str) else ""
        return ConfigError(f"{source}: {where} = {toml_repr(found)} is not a valid choice{hint} "
                           f"(expected {expected})")
    shown = toml_repr(found) if ok else "(missing)"
    key = str(names[-1]) if names else where
    return ConfigError(f"{source}: {where} = {shown} is not valid: expected {expected}{_hint_for(tp, found, key)}")


def convert(raw: Any, struct: type[T], source: str, prefix: str = "") -> T:
    """Validate *raw* (TOML / JSON builtins) into *struct*, strictly; ConfigError on any fault.

    *prefix* names the table *raw* is (``tune``), for messages about a sub-table.
    """
    if not isinstance(raw, dict):
        what = f"[{prefix}]" if prefix else "the config"
        raise ConfigError(f"{source}: {what} must be a table, found {toml_repr(raw)}")
    try:
        return msgspec.convert(raw, struct, strict=True)
    except msgspec.ValidationError as exc:
        raise explain(exc, raw, struct, source, prefix) from None
    except ConfigError as exc:  # a cross-field rule of a __post_init__
        text = str(exc)
        if text.startswith(f"{source}: "):
            raise
        raise type(exc)(f"{source}: {text}") from None


def check_unique(values: list[Any], where: str, what: str = "value") -> None:
    """Refuse an empty list or one that repeats an element (names the first repeat)."""
    if not values:
        raise ConfigError(f"{where} is empty: list at least one {what}")
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{where} lists {toml_repr(v)} twice: remove the repeat")
        seen.add(v)
