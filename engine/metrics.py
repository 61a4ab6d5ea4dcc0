"""Performance figures computed from sigtrade's own mark-to-market equity curve.

NautilusTrader's portfolio analyzer is not used: its Sharpe ratio changed meaning between
releases (see DESIGN.md). Every figure here is a function of a :class:`RunResult` only.

Definitions (``E_0 .. E_n`` is the equity curve, stamped at bar closes; ``E_0`` is the
first bar's close, ``C`` the starting cash; ``P`` the periods per year):

``total_return``
    ``E_n / C - 1``.
``cagr``
    ``(1 + total_return) ** (1 / years) - 1`` with ``years`` = calendar days between the
    first and the last timestamp / 365.25. None when ``years`` is 0 or equity ends <= 0
    (then -1.0 when it ends exactly at 0).
``volatility``
    ``std(r, ddof=1) * sqrt(P)`` with per-bar returns ``r_t = E_t / E_{t-1} - 1``
    (t = 1..n; the step from ``C`` to ``E_0`` is not a return of the curve).
``sharpe``
    ``mean(r - rf_p) / std(r, ddof=1) * sqrt(P)`` with ``rf_p = (1 + rf) ** (1 / P) - 1``
    and ``rf`` the annual risk-free rate (default 0). None when ``std(r)`` is 0.
``sortino``
    ``mean(r - rf_p) / DD * sqrt(P)`` with the downside deviation
    ``DD = sqrt(mean(min(r - rf_p, 0) ** 2))`` averaged over *all* periods. None when DD is 0.
``P`` (``periods_per_year``)
    Given, or ``sessions.periods_per_year(equity.index)`` = 252 x curve points per NYSE
    session (252 for daily bars, about 1,764 for hourly bars of 6.5-hour sessions).
``max_drawdown``
    ``min_t(E_t / max_{s<=t} E_s - 1)``: a negative fraction (-0.23 = 23 % below the
    running peak of the curve); 0.0 when the curve never falls.
``max_drawdown_duration``
    The longest time under water: from the bar of a peak to the first bar at or above
    that peak again (or to the last bar if never recovered), in calendar days (float).
    ``max_drawdown_duration_bars`` gives the same span in bars. It need not be the span
    of the deepest drawdown.
``calmar``
    ``cagr / |max_drawdown|``; None when there is no drawdown or no CAGR.
``trades``
    Number of round trips (rows of ``trades``).
``win_rate``
    Share of round trips with ``pnl > 0`` (pnl net of commissions); None without trades.
``profit_factor``
    Sum of positive pnl / |sum of negative pnl|; None when no trade lost (or no trades).
``avg_trade``
    Mean round-trip pnl in USD; None without trades.
``turnover``
    Annualised: total traded notional, buys and sells both counted (``sum |notional|`` of
    the fills), / mean equity / years. 2.0 = the book was bought and sold once a year.
    None when ``years`` is 0.
``exposure``
    Mean of the exposure series (gross position value / equity; 0 = flat, 1 = fully
    invested).
``commission_paid``, ``slippage_paid``
    Sums of the fills' ``commission`` and ``slippage`` columns, USD.

Extra keys: ``start``, ``end`` (ISO timestamps), ``years``, ``capital``, ``final_equity``,
``periods_per_year``, ``risk_free_rate``, ``max_drawdown_duration_bars``, ``fills``.

Every value is JSON-ready: Python floats, ints, strings or None; NaN and inf never
appear (an undefined figure is None).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from engine import sessions
from engine.results import RunResult

METRIC_KEYS: tuple[str, ...] = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration", "calmar", "trades", "win_rate", "profit_factor", "avg_trade",
    "turnover", "exposure", "commission_paid", "slippage_paid",
)
"""The figures every metrics object carries (the ``--json`` contract, less ``benchmark``)."""

EXTRA_KEYS: tuple[str, ...] = (
    "start", "end", "years", "capital", "final_equity", "periods_per_year", "risk_free_rate",
    "max_drawdown_duration_bars", "fills",
)
"""Context added next to the figures."""

EXCESS_KEYS: tuple[str, ...] = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration", "calmar", "exposure",
)
"""Return and risk figures whose difference strategy - benchmark goes in ``excess``."""

_DAY_NS = 86_400 * 1_000_000_000
_YEAR_DAYS = 365.25


def _num(x: Any) -> float | None:
    """Return *x* as a finite float, or None."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def rate_per_period(annual_rate: float, periods_per_year: float) -> float:
    """An annual rate as the rate per period that compounds to it: ``(1 + rate) ** (1 / P) - 1``."""
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def returns(equity: pd.Series) -> np.ndarray:
    """Per-bar simple returns ``E_t / E_{t-1} - 1`` of an equity curve (length n - 1)."""
    e: np.ndarray = np.asarray(equity, dtype="float64")
    if e.size < 2:
        return np.empty(0, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = e[1:] / e[:-1] - 1.0
    return out


def drawdown(equity: pd.Series) -> pd.Series:
    """Fractional distance below the running peak, ``E_t / max_{s<=t} E_s - 1`` (<= 0)."""
    e = equity.astype("float64")
    peak = e.cummax()
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = e / peak - 1.0
    return dd.fillna(0.0).rename("drawdown")


def drawdown_spell(equity: pd.Series) -> tuple[int, int]:
    """Return ``(peak_bar, end_bar)`` of the longest spell under water (``(0, 0)`` if none).

    A spell starts at the last bar at the running peak and ends at the first bar back at
    or above that peak, or at the last bar when the curve never recovers.
    """
    e = np.asarray(equity, dtype="float64")
    best = (0, 0)
    peak_i = 0
    peak = -np.inf
    under = False
    for i, v in enumerate(e):
        if v >= peak:
            if under and i - peak_i > best[1] - best[0]:
                best = (peak_i, i)
            peak, peak_i, under = v, i, False
        else:
            under = True
    if under and len(e) - 1 - peak_i > best[1] - best[0]:
        best = (peak_i, len(e) - 1)
    return best


def monthly_returns(equity: pd.Series, capital: float) -> pd.DataFrame:
    """Calendar-month returns (New York time) as a year x month (1..12) table of fractions.

    Each month is its last equity over the previous month's last equity; the first month
    is measured from *capital*, so compounding every cell gives ``total_return``.
    """
    if equity.empty:
        return pd.DataFrame(columns=list(range(1, 13)), dtype="float64")
    idx = pd.DatetimeIndex(equity.index)
    local = idx.tz_convert("America/New_York") if idx.tz is not None else idx
    s = pd.Series(np.asarray(equity, dtype="float64"), index=local)
    month_end = s.groupby([local.year, local.month]).last()
    prev = month_end.shift(1)
    prev.iloc[0] = capital
    rets = month_end / prev - 1.0
    table = rets.unstack(level=1).reindex(columns=list(range(1, 13)))
    table.index.name = "year"
    table.columns.name = "month"
    return table


def _iso(ts: Any) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)) or ts is pd.NaT:
        return None
    return pd.Timestamp(ts).isoformat()


def compute_metrics(
    run: RunResult,
    *,
    risk_free_rate: float = 0.0,
    periods_per_year: float | None = None,
) -> dict[str, Any]:
    """Compute every figure of the module docstring for one account.

    Parameters
    ----------
    run
        The account's equity curve, exposure, fills and trades.
    risk_free_rate
        Annual risk-free rate as a fraction (0.04 = 4 %), used by Sharpe and Sortino.
    periods_per_year
        Annualisation factor ``P``; default ``sessions.periods_per_year(equity.index)``.

    Returns
    -------
    dict
        ``METRIC_KEYS`` + ``EXTRA_KEYS``, JSON-ready (None where undefined).

    """
    equity = run.equity.astype("float64")
    capital = float(run.capital)
    n = len(equity)
    idx = pd.DatetimeIndex(equity.index)

    if periods_per_year is None:
        periods_per_year = sessions.periods_per_year(idx) if n else 252.0
    P = float(periods_per_year)

    final = float(equity.iloc[-1]) if n else capital
    total = final / capital - 1.0 if capital else None
    years = (idx[-1].value - idx[0].value) / _DAY_NS / _YEAR_DAYS if n >= 2 else 0.0

    cagr: float | None = None
    if total is not None and years > 0:
        growth = 1.0 + total
        cagr = growth ** (1.0 / years) - 1.0 if growth > 0 else (-1.0 if growth == 0 else None)

    r = returns(equity)
    r = r[np.isfinite(r)]
    rf_p = rate_per_period(risk_free_rate, P)
    vol: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    if r.size >= 2:
        sd = float(np.std(r, ddof=1))
        vol = sd * math.sqrt(P)
        excess = r - rf_p
        mean_ex = float(np.mean(excess))
        if sd > 0:
            sharpe = mean_ex / sd * math.sqrt(P)
        downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
        if downside > 0:
            sortino = mean_ex / downside * math.sqrt(P)

    mdd = float(drawdown(equity).min()) if n else 0.0
    peak_i, end_i = drawdown_spell(equity) if n else (0, 0)
    dd_days = (idx[end_i].value - idx[peak_i].value) / _DAY_NS if n else 0.0
    calmar = cagr / abs(mdd) if (cagr is not None and mdd < 0) else None

    trades = run.trades
    pnl = np.asarray(trades["pnl"], dtype="float64") if len(trades) else np.empty(0)
    n_trades = int(pnl.size)
    win_rate = float(np.mean(pnl > 0)) if n_trades else None
    gross_loss = float(-pnl[pnl < 0].sum())
    profit_factor = float(pnl[pnl > 0].sum()) / gross_loss if gross_loss > 0 else None
    avg_trade = float(pnl.mean()) if n_trades else None

    fills = run.fills
    if len(fills):
        traded = float(np.abs(np.asarray(fills["notional"], dtype="float64")).sum())
        commission = float(np.asarray(fills["commission"], dtype="float64").sum())
        slippage = float(np.asarray(fills["slippage"], dtype="float64").sum())
    else:
        traded = commission = slippage = 0.0
    mean_equity = float(equity.mean()) if n else capital
    turnover = traded / mean_equity / years if (years > 0 and mean_equity > 0) else None
    exposure = float(run.exposure.mean()) if len(run.exposure) else None

    out: dict[str, Any] = {
        "total_return": total,
        "cagr": cagr,
        "volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "max_drawdown_duration": dd_days,
        "calmar": calmar,
        "trades": n_trades,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "avg_trade": avg_trade,
        "turnover": turnover,
        "exposure": exposure,
        "commission_paid": commission,
        "slippage_paid": slippage,
        "start": _iso(idx[0]) if n else None,
        "end": _iso(idx[-1]) if n else None,
        "years": years,
        "capital": capital,
        "final_equity": final,
        "periods_per_year": P,
        "risk_free_rate": float(risk_free_rate),
        "max_drawdown_duration_bars": int(end_i - peak_i),
        "fills": int(len(fills)),
    }
    return cast(dict[str, Any], json_safe(out))


def compare(strategy_metrics: Mapping[str, Any], benchmark_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Build the full results object: the strategy's figures, ``benchmark`` and ``excess``.

    ``excess`` holds strategy - benchmark for each of ``EXCESS_KEYS`` (None when either
    side is undefined). For ``max_drawdown`` a positive difference means a shallower one.
    """
    out: dict[str, Any] = {k: v for k, v in strategy_metrics.items() if k not in ("benchmark", "excess")}
    bench = {k: v for k, v in benchmark_metrics.items() if k not in ("benchmark", "excess")}
    excess: dict[str, Any] = {}
    for key in EXCESS_KEYS:
        a, b = _num(strategy_metrics.get(key)), _num(benchmark_metrics.get(key))
        excess[key] = a - b if (a is not None and b is not None) else None
    out["benchmark"] = bench
    out["excess"] = excess
    return cast(dict[str, Any], json_safe(out))


def json_safe(obj: Any) -> Any:
    """Return *obj* as JSON builtins: NaN/inf -> None, numpy scalars -> Python, times -> ISO."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | np.ndarray | pd.Index):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _num(obj)
    if isinstance(obj, pd.Timestamp | dt.datetime | dt.date):
        return None if obj is pd.NaT else obj.isoformat()
    if isinstance(obj, pd.Timedelta | dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
