"""Section 6, risk: how noisy the Sharpe ratio is, the worst drawdowns, exposure against the benchmark.

Definitions (``r`` = the equity curve's per-bar returns, ``n`` of them, ``P`` periods a year):

``Sharpe standard error``
    Lo (2002) for independent returns: ``sqrt((1 + SR_p**2 / 2) / n)`` for the per-bar
    ``SR_p``, annualised by ``sqrt(P)`` - i.e. about ``sqrt((1 + SR**2 / 2) / T)`` with SR and
    the window length T in the same unit. ``se_nonnormal`` adds the skewness ``g3`` and
    (non-excess) kurtosis ``g4`` of the returns (Mertens 2002, as the PSR of
    :mod:`engine.stats.sharpe` does): ``sqrt((1 - g3 SR_p + (g4 - 1) / 4 SR_p**2) / (n - 1))``.
    The difference from the benchmark's Sharpe is given in units of
    ``sqrt(se_strategy**2 + se_benchmark**2)`` (correlation ignored: a rough scale of noise).
``rolling Sharpe``
    mean / std (ddof 1) of the last ``W`` returns, annualised, with ``W`` =
    ``diagnosis.rolling_months`` x 21 sessions x the curve's points per session; its band
    is +/- one standard error ``sqrt((1 + SR_p**2 / 2) / W)`` annualised.
``drawdowns``
    spells under water: from the last bar at the running peak to the first bar back at or
    above it (None while not recovered); depth = trough / peak - 1. The five deepest.
``exposure``
    gross position value / equity of the strategy and of the benchmark, per bar.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from engine.diagnosis.context import Context
from engine.html_page import finite
from engine.metrics import rate_per_period, returns
from engine.stats.sharpe import higher_moments


def sharpe_se(r: np.ndarray, periods_per_year: float, rf_p: float = 0.0) -> tuple[float | None, float | None, float | None]:
    """(annualised Sharpe, iid standard error, non-normal standard error) of per-bar returns *r* over *rf_p* per bar."""
    r = r[np.isfinite(r)]
    if r.size < 3:
        return None, None, None
    sd = float(np.std(r, ddof=1))
    if sd == 0:
        return None, None, None
    sr_p = float(np.mean(r - rf_p)) / sd
    root = math.sqrt(periods_per_year)
    iid = math.sqrt((1.0 + sr_p**2 / 2.0) / r.size) * root
    g3, g4 = higher_moments(r)
    var = (1.0 - g3 * sr_p + (g4 - 1.0) / 4.0 * sr_p**2) / (r.size - 1)
    return sr_p * root, iid, math.sqrt(var) * root if var > 0 else None


def worst_drawdowns(equity: pd.Series, k: int = 5) -> list[dict[str, Any]]:
    """The *k* deepest spells under water (see the module docstring)."""
    e = equity.to_numpy(dtype=np.float64)
    idx = pd.DatetimeIndex(equity.index)
    spells = []
    peak, peak_i, trough, trough_i = -np.inf, 0, np.inf, 0
    under = False
    for i, v in enumerate(e):
        if v >= peak:
            if under:
                spells.append((peak_i, trough_i, i, trough / peak - 1.0))
            peak, peak_i, under = v, i, False
            trough, trough_i = v, i
        else:
            under = True
            if v < trough:
                trough, trough_i = v, i
    if under:
        spells.append((peak_i, trough_i, None, trough / peak - 1.0))
    spells.sort(key=lambda x: x[3])
    out = []
    for p, t, rec, depth in spells[:k]:
        end = rec if rec is not None else len(e) - 1
        out.append({
            "start": idx[p].isoformat(), "trough": idx[t].isoformat(),
            "recovery": idx[rec].isoformat() if rec is not None else None, "depth": float(depth),
            "bars_to_trough": int(t - p), "bars_under_water": int(end - p),
            "days_under_water": float((idx[end] - idx[p]).total_seconds() / 86_400),
        })
    return out


def section(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The risk section: (JSON figures, series for the plots)."""
    P = ctx.periods_per_year
    eq = ctx.run.equity.astype("float64")
    r = returns(eq)
    rf_p = rate_per_period(ctx.cfg.metrics.risk_free_rate, P)
    sr, se, se_nn = sharpe_se(r, P, rf_p)
    bench_eq = ctx.result.benchmark.equity.astype("float64")
    P_b = float((ctx.result.metrics.get("benchmark") or {}).get("periods_per_year") or P)
    b_sr, b_se, _ = sharpe_se(returns(bench_eq), P_b, rate_per_period(ctx.cfg.metrics.risk_free_rate, P_b))
    diff = sr - b_sr if sr is not None and b_sr is not None else None
    scale = math.sqrt(se**2 + b_se**2) if se is not None and b_se is not None else None
    per_session = P / 252.0
    w = max(3, round(ctx.cfg.diagnosis.rolling_months * 21 * per_session))
    rs = pd.Series(r, index=eq.index[1:])
    roll = rs.rolling(w, min_periods=w)
    sr_p = (roll.mean() - rf_p) / roll.std(ddof=1)
    rolling = sr_p * math.sqrt(P)
    band = np.sqrt((1.0 + sr_p**2 / 2.0) / w) * math.sqrt(P)
    bench_exp = ctx.result.benchmark.exposure.astype("float64").reindex(eq.index).ffill().fillna(0.0)
    strat_exp = ctx.run.exposure.astype("float64")
    data: dict[str, Any] = {
        "applies": True,
        "returns": int(np.isfinite(r).sum()),
        "years": ctx.result.metrics.get("years"),
        "sharpe": sr, "sharpe_se": se, "sharpe_se_nonnormal": se_nn,
        "benchmark_sharpe": b_sr, "benchmark_sharpe_se": b_se,
        "sharpe_difference": diff,
        "difference_in_se": diff / scale if diff is not None and scale else None,
        "rolling_window_bars": int(w), "rolling_months": ctx.cfg.diagnosis.rolling_months,
        "rolling_sharpe_last": _last(rolling), "rolling_sharpe_min": finite(rolling.min()), "rolling_sharpe_max": finite(rolling.max()),
        "drawdowns": worst_drawdowns(eq),
        "exposure_mean": float(strat_exp.mean()) if len(strat_exp) else None,
        "benchmark_exposure_mean": float(bench_exp.mean()) if len(bench_exp) else None,
    }
    return data, {"rolling_sharpe": rolling, "rolling_band": band, "exposure": strat_exp, "benchmark_exposure": bench_exp}


def _last(s: pd.Series) -> float | None:
    s = s.dropna()
    return finite(s.iloc[-1]) if len(s) else None
