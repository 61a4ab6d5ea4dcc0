"""Walk-forward selection: choose on each training window, trade the next test window.

Spec syntax (the ``--walk-forward`` option): ``train=12M,test=3M[,step=3M]``; each value is
a positive integer and a unit ``D`` (days), ``W`` (weeks), ``M`` (calendar months) or
``Y`` (years = 12 months), case-insensitive. ``step`` (how far each window moves)
defaults to ``test``; it may not be shorter than ``test`` (tests never overlap) and must
use the same kind of unit as ``test`` (calendar ``M``/``Y`` or fixed ``D``/``W``), so that
"not shorter" holds in every month.

Windows are half-open ``[start, end)`` and anchored on calendar months: window ``k``
starts at ``anchor + k * step`` with ``anchor`` = midnight of the first day of the month of
the first timestamp (timezone kept); ``train = [start, start + train)``, ``test =
[train_end, train_end + test)``. Windows run while their test range contains data; the
last test window may be cut short by the end of the data. The first training window
may be short by the days before the first bar of its month.

Choosing uses the training rows only: the configuration with the highest metric there
(the first column on ties) is the one whose test-window returns go into the stitched
out-of-sample (OOS) series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError, did_you_mean
from engine.stats.scores import Score, apply_score, check_returns, resolve_score, sharpe_columns

UNITS = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}
KEYS = ("train", "test", "step")
_VALUE = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")
EXAMPLE = "train=12M,test=3M (optionally ,step=3M)"


@dataclass(frozen=True)
class Span:
    """A window length: ``count`` units of ``D``, ``W``, ``M`` or ``Y``."""

    count: int
    unit: str

    @property
    def calendar(self) -> bool:
        """True for calendar units (months, years), False for fixed ones (days, weeks)."""
        return self.unit in ("M", "Y")

    def size(self) -> int:
        """Length in months (calendar units) or days (fixed units)."""
        return self.count * {"D": 1, "W": 7, "M": 1, "Y": 12}[self.unit]

    def offset(self, times: int = 1) -> pd.DateOffset:
        """``times`` of this span as a pandas offset."""
        if self.calendar:
            return pd.DateOffset(months=self.size() * times)
        return pd.DateOffset(days=self.size() * times)

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


@dataclass(frozen=True)
class WalkForwardSpec:
    """Parsed ``train=..,test=..,step=..``."""

    train: Span
    test: Span
    step: Span

    def __str__(self) -> str:
        return f"train={self.train},test={self.test},step={self.step}"


def parse_span(key: str, value: str) -> Span:
    """Parse one ``key=value`` length such as ``train=12M`` (ConfigError with an example otherwise)."""
    return _parse_span(key, value)


def _parse_span(key: str, value: str) -> Span:
    m = _VALUE.match(value)
    if m is None:
        raise ConfigError(
            f"walk-forward {key}={value!r}: expected a whole number followed by a unit "
            f"D (days), W (weeks), M (months) or Y (years), e.g. {key}=12M"
        )
    count, unit = int(m.group(1)), m.group(2).upper()
    if unit not in UNITS:
        raise ConfigError(
            f"walk-forward {key}={value!r}: unknown unit {m.group(2)!r}; use D (days), "
            f"W (weeks), M (months) or Y (years), e.g. {key}={count}M"
        )
    if count <= 0:
        raise ConfigError(f"walk-forward {key}={value!r}: the length must be positive")
    return Span(count, unit)


def parse_walk_forward(text: str) -> WalkForwardSpec:
    """Parse a walk-forward spec such as ``"train=12M,test=3M"`` or ``"train=2Y,test=1M,step=1M"``.

    Raises
    ------
    ConfigError
        With what was expected and an example, on any malformed spec.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"walk-forward spec is empty; expected e.g. {EXAMPLE}")
    found: dict[str, Span] = {}
    for part in text.split(","):
        if not part.strip():
            raise ConfigError(f"walk-forward spec {text!r} has an empty item; expected e.g. {EXAMPLE}")
        if "=" not in part:
            raise ConfigError(
                f"walk-forward item {part.strip()!r} is not key=value; expected e.g. {EXAMPLE}"
            )
        key, value = (p.strip() for p in part.split("=", 1))
        key = key.lower()
        if key not in KEYS:
            raise ConfigError(
                f"walk-forward key {key!r} is unknown{did_you_mean(key, KEYS)}; "
                f"keys are train, test and step, e.g. {EXAMPLE}"
            )
        if key in found:
            raise ConfigError(f"walk-forward key {key!r} is given twice in {text!r}")
        found[key] = _parse_span(key, value)
    missing = [k for k in ("train", "test") if k not in found]
    if missing:
        raise ConfigError(
            f"walk-forward spec {text!r} lacks {' and '.join(missing)}; expected e.g. {EXAMPLE}"
        )
    test = found["test"]
    step = found.get("step", test)
    if step.calendar != test.calendar:
        raise ConfigError(
            f"walk-forward step={step} and test={test} mix calendar (M, Y) and fixed (D, W) "
            "units; give both in the same kind so test windows provably never overlap"
        )
    if step.size() < test.size():
        raise ConfigError(
            f"walk-forward step={step} is shorter than test={test}: test windows would "
            f"overlap and count some periods twice; use step >= test (default step={test})"
        )
    return WalkForwardSpec(found["train"], test, step)


def _as_spec(spec: WalkForwardSpec | str) -> WalkForwardSpec:
    return parse_walk_forward(spec) if isinstance(spec, str) else spec


Window = tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp, pd.Timestamp]


def walk_forward_windows(index: pd.DatetimeIndex, spec: WalkForwardSpec | str) -> list[Window]:
    """Rolling ``(train_start, train_end, test_start, test_end)`` windows, ends exclusive.

    Only windows whose test range ``[test_start, test_end)`` contains a timestamp of
    *index* are returned; the last may extend past the data.

    Raises
    ------
    DataError
        *index* is not a sorted DatetimeIndex, or too short for one window.
    """
    spec = _as_spec(spec)
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"walk-forward needs a DatetimeIndex, got {type(index).__name__}")
    if len(index) == 0:
        raise DataError("walk-forward: the return series is empty")
    if not index.is_monotonic_increasing:
        raise DataError("walk-forward: the index must be sorted in time (sort_index() first)")
    first, last = index[0], index[-1]
    anchor = first.normalize().replace(day=1)
    windows: list[Window] = []
    k = 0
    while True:
        train_start = anchor + spec.step.offset(k)
        test_start = train_start + spec.train.offset()
        if test_start > last:
            break
        test_end = test_start + spec.test.offset()
        if index.searchsorted(test_end) > index.searchsorted(test_start):
            windows.append((train_start, test_start, test_start, test_end))
        k += 1
    if not windows:
        raise DataError(
            f"walk-forward {spec}: the data run from {first} to {last}, shorter than one "
            f"training window ({spec.train}) plus a test period; use a shorter train window"
        )
    return windows


@dataclass(frozen=True)
class WindowChoice:
    """One walk-forward window: what was chosen on train and how it did on test."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    chosen: Any
    is_metric: float
    oos_metric: float
    """The chosen configuration's metric on the test rows (NaN when Sharpe has < 2 rows)."""
    oos_return: float
    n_train: int
    n_test: int


@dataclass(frozen=True)
class WalkForwardResult:
    """Per-window choices, the stitched OOS returns and a summary against the IS best."""

    spec: WalkForwardSpec
    metric: str
    windows: list[WindowChoice]
    oos_returns: pd.Series = field(repr=False)
    """The chosen configurations' returns on the test windows, concatenated in time."""
    oos_config: pd.Series = field(repr=False)
    """Which configuration produced each row of ``oos_returns``."""
    in_sample_best: Any
    """The configuration with the best metric over the whole period (hindsight)."""
    summary: dict[str, Any]

    def frame(self) -> pd.DataFrame:
        """One row per window, for printing."""
        return pd.DataFrame(
            [
                {
                    "train_start": w.train_start,
                    "train_end": w.train_end,
                    "test_start": w.test_start,
                    "test_end": w.test_end,
                    "chosen": w.chosen,
                    f"is_{self.metric}": w.is_metric,
                    f"oos_{self.metric}": w.oos_metric,
                    "oos_return": w.oos_return,
                    "n_train": w.n_train,
                    "n_test": w.n_test,
                }
                for w in self.windows
            ]
        )


def _figures(r: np.ndarray, periods_per_year: float | None) -> dict[str, float | None]:
    sharpe = float(sharpe_columns(r)[0]) if r.shape[0] >= 2 else None
    out: dict[str, float | None] = {
        "sharpe": sharpe,
        "total_return": float(np.prod(1.0 + r) - 1.0),
    }
    if periods_per_year is not None:
        out["sharpe_annualised"] = None if sharpe is None else sharpe * math.sqrt(periods_per_year)
    return out


Bounds = tuple[int, int, int, int]
"""A window's row bounds: train rows ``a:b``, test rows ``c:d``."""
WindowMapper = Callable[[np.ndarray, Score, list[Bounds]], list[tuple[int, float, float]]]
"""``(returns, metric, windows) -> [choose_in_window(returns, metric, *w) for w in windows]``, in order."""


def choose_in_window(x: np.ndarray, metric: Score, a: int, b: int, c: int, d: int) -> tuple[int, float, float]:
    """The column with the best *metric* on train rows ``a:b`` and its metric on test rows ``c:d``.

    Returns (chosen column, its in-sample metric, its out-of-sample metric; NaN for a
    Sharpe ratio of fewer than 2 test rows). The first column wins ties.
    """
    name, fn = resolve_score(metric)
    is_scores = apply_score(fn, x[a:b])
    j = int(np.argmax(is_scores))
    if name == "sharpe" and d - c < 2:
        oos = math.nan
    else:
        oos = float(apply_score(fn, x[c:d, j : j + 1])[0])
    return j, float(is_scores[j]), oos


def _local_windows(x: np.ndarray, metric: Score, windows: list[Bounds]) -> list[tuple[int, float, float]]:
    return [choose_in_window(x, metric, *w) for w in windows]


def walk_forward(
    perf: pd.DataFrame,
    spec: WalkForwardSpec | str,
    metric: Score = "sharpe",
    *,
    periods_per_year: float | None = None,
    map_windows: WindowMapper | None = None,
) -> WalkForwardResult:
    """Walk-forward selection over the columns (configurations) of *perf*.

    Parameters
    ----------
    perf
        ``(T, N)`` per-period returns, DatetimeIndex sorted in time, finite values.
    spec
        A :class:`WalkForwardSpec` or its text, e.g. ``"train=12M,test=3M"``.
    metric
        ``"sharpe"`` (per-period), ``"mean"``, ``"total_return"`` or a callable
        ``(m, N) -> (N,)`` used both to choose on train and to report on test.
    periods_per_year
        When given, the summary adds annualised Sharpe ratios (``* sqrt(P)``).
    map_windows
        Runs :func:`choose_in_window` for every window (default: one after another here;
        ``sigtrade sweep --cluster`` passes one that runs each window as a Ray task).

    Returns
    -------
    WalkForwardResult
        ``summary`` holds ``oos_*`` (stitched series) next to ``is_best_*`` (the
        hindsight-best configuration over the full period) and ``is_best_on_oos_*`` (the
        same configuration over exactly the stitched OOS rows).
    """
    if not isinstance(perf, pd.DataFrame):
        raise DataError(f"walk_forward needs a DataFrame of returns, got {type(perf).__name__}")
    if perf.shape[1] < 1:
        raise DataError("walk_forward: perf has no configuration columns")
    name, fn = resolve_score(metric)
    x = check_returns(perf.to_numpy(dtype=float), "perf")
    index = pd.DatetimeIndex(perf.index)
    windows = walk_forward_windows(index, spec)
    spec = _as_spec(spec)
    labels = list(perf.columns)

    bounds: list[Bounds] = []
    for train_start, train_end, test_start, test_end in windows:
        a, b = index.searchsorted(train_start), index.searchsorted(train_end)
        c, d = index.searchsorted(test_start), index.searchsorted(test_end)
        if b - a < 2:
            raise DataError(
                f"walk-forward window {train_start:%Y-%m-%d}..{train_end:%Y-%m-%d} has "
                f"{b - a} training row(s); need at least 2 (gap in the data?)"
            )
        bounds.append((int(a), int(b), int(c), int(d)))
    chosen = (map_windows or _local_windows)(x, metric, bounds)
    if len(chosen) != len(bounds):
        raise DataError(f"walk-forward: {len(chosen)} window result(s) for {len(bounds)} window(s)")

    choices: list[WindowChoice] = []
    pieces: list[np.ndarray] = []
    picks: list[int] = []
    rows_used: list[np.ndarray] = []
    for (train_start, train_end, test_start, test_end), (a, b, c, d), (j, is_metric, oos) in zip(
        windows, bounds, chosen, strict=True
    ):
        test = x[c:d, j]
        choices.append(
            WindowChoice(
                train_start, train_end, test_start, test_end, labels[j],
                is_metric, oos, float(np.prod(1.0 + test) - 1.0), b - a, d - c,
            )
        )
        pieces.append(test)
        picks.extend([j] * (d - c))
        rows_used.append(np.arange(c, d))

    rows = np.concatenate(rows_used)
    oos_returns = pd.Series(np.concatenate(pieces), index=index[rows], name="walk_forward_oos")
    oos_config = pd.Series([labels[j] for j in picks], index=index[rows], name="config")
    full = apply_score(fn, x) if (name != "sharpe" or x.shape[0] >= 2) else np.zeros(x.shape[1])
    best = int(np.argmax(full))
    summary: dict[str, Any] = {
        "spec": str(spec),
        "metric": name,
        "n_windows": len(choices),
        "n_configs": int(x.shape[1]),
        "oos_start": str(index[rows[0]]),
        "oos_end": str(index[rows[-1]]),
        "oos_periods": int(rows.shape[0]),
        "distinct_choices": len({c.chosen for c in choices}),
        "is_best_config": labels[best],
        f"is_best_{name}": float(full[best]),
    }
    for prefix, r in (
        ("oos", oos_returns.to_numpy()),
        ("is_best", x[:, best]),
        ("is_best_on_oos", x[rows, best]),
    ):
        for key, value in _figures(r, periods_per_year).items():
            summary[f"{prefix}_{key}"] = value
    return WalkForwardResult(
        spec=spec,
        metric=name,
        windows=choices,
        oos_returns=oos_returns,
        oos_config=oos_config,
        in_sample_best=labels[best],
        summary=summary,
    )
