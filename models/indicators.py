"""The ``seed14@1`` formulas: TA-Lib indicators and the dimensionless columns built on them.

Numpy in, numpy out; no pandas. Batch mode calls exactly these functions on whole
arrays. Streaming mode (:mod:`models.streaming`) does not re-run them on the history: its
numba kernels (:mod:`models.incremental_nb`) keep each indicator's running state and
replay TA-Lib's own arithmetic bar by bar, then apply the same element-wise column
formulas, so their rows equal these bit for bit:

* every TA-Lib function used here is sequential: its value at bar ``t`` over
  ``history[:t+1]`` equals its value at ``t`` over the full history (the running sums
  and EMA seeds start at the first bar in both cases);
* every column is then an element-wise function (IEEE ``+ - * /``, ``log``, ``clip``)
  of same-bar indicator values (:func:`assemble`).

Columns (``t`` is the bar, ``c``/``h``/``l``/``v`` its close/high/low/volume):

==============  ==========================================================================
sma_dist_20     ``c / SMA(c, 20) - 1``
ema_dist_50     ``c / EMA(c, 50) - 1``
rsi_14          ``RSI(c, 14) / 100``                                    (0..1)
macd            ``MACD(c, 12, 26, 9).macd / c``
macd_signal     ``MACD(c, 12, 26, 9).signal / c``
macd_hist       ``MACD(c, 12, 26, 9).hist / c``
bb_pctb_20      ``(c - lower) / (upper - lower)``, BBANDS(c, 20, 2σ); 0.5 when the bands
                are flat
bb_width_20     ``(upper - lower) / middle``
atr_pct_14      ``ATR(h, l, c, 14) / c``
adx_14          ``ADX(h, l, c, 14) / 100``                              (0..1); TA-Lib
                gives no directional move on an exact tie of +DM and -DM, so ADX is not
                exactly invariant to rescaling prices (a tie may round either way)
stoch_k         ``STOCH(h, l, c, 14, 3, 3).slowk / 100``                (0..1)
stoch_d         ``STOCH(h, l, c, 14, 3, 3).slowd / 100``                (0..1)
obv_change      ``(OBV_t - OBV_{t-20}) / SUM(v, 20)`` — signed volume share of the last
                20 bars, clipped to [-1, 1]; 0 when those bars traded no volume
volume_z_20     z-score of ``log1p(v)`` against its 20-bar SMA and population stddev;
                0 when the stddev is 0 (TA-Lib 0.8 reports a variance below 1e-12 of the
                window's mean square as 0)
log_ret_1       ``log(c_t / c_{t-1})``
log_ret_5       ``log(c_t / c_{t-5})``
dow_sin         ``sin(2π·dow / 5)``, dow = weekday of the bar's New York date (Mon=0)
dow_cos         ``cos(2π·dow / 5)``
sentiment       news sentiment of the bar, in [-1, 1] by convention; 0 when absent
==============  ==========================================================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import talib  # type: ignore[import-untyped]

Array = np.ndarray

N_FEATURES = 19
OBV_WINDOW = 20

# sin/cos of 2π·dow/5 for dow = 0..6 (weekends only for non-equity calendars); a lookup
# table so that batch and streaming take the very same float for a weekday.
_DOW = np.arange(7, dtype=np.float64) * (2.0 * np.pi / 5.0)
DOW_SIN: Array = np.sin(_DOW)
DOW_COS: Array = np.cos(_DOW)


class Indicators(NamedTuple):
    """Raw TA-Lib outputs, one array per series, aligned with the input bars."""

    sma20: Array
    ema50: Array
    rsi14: Array
    macd: Array
    macd_signal: Array
    macd_hist: Array
    bb_upper: Array
    bb_middle: Array
    bb_lower: Array
    atr14: Array
    adx14: Array
    slowk: Array
    slowd: Array
    obv: Array
    vol_sum20: Array
    logv_mean20: Array
    logv_std20: Array

    def tail(self) -> Indicators:
        """One-element views of the last bar of every series."""
        return Indicators(*(a[-1:] for a in self))


def indicators(
    high: Array, low: Array, close: Array, volume: Array, log_volume: Array
) -> Indicators:
    """Run the TA-Lib functions of ``seed14@1`` over contiguous float64 arrays."""
    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    bb_upper, bb_middle, bb_lower = talib.BBANDS(
        close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0
    )
    slowk, slowd = talib.STOCH(
        high,
        low,
        close,
        fastk_period=14,
        slowk_period=3,
        slowk_matype=0,
        slowd_period=3,
        slowd_matype=0,
    )
    return Indicators(
        sma20=talib.SMA(close, timeperiod=20),
        ema50=talib.EMA(close, timeperiod=50),
        rsi14=talib.RSI(close, timeperiod=14),
        macd=macd,
        macd_signal=macd_signal,
        macd_hist=macd_hist,
        bb_upper=bb_upper,
        bb_middle=bb_middle,
        bb_lower=bb_lower,
        atr14=talib.ATR(high, low, close, timeperiod=14),
        adx14=talib.ADX(high, low, close, timeperiod=14),
        slowk=slowk,
        slowd=slowd,
        obv=talib.OBV(close, volume),
        vol_sum20=talib.SUM(volume, timeperiod=OBV_WINDOW),
        logv_mean20=talib.SMA(log_volume, timeperiod=20),
        logv_std20=talib.STDDEV(log_volume, timeperiod=20, nbdev=1.0),
    )


def _ratio(num: Array, den: Array, fill: float) -> Array:
    """``num / den``; *fill* where ``den == 0`` and ``num`` is known; NaN stays NaN."""
    out = np.full(num.shape, np.nan)
    zero = den == 0.0
    np.divide(num, den, out=out, where=~zero)
    out[zero & ~np.isnan(num)] = fill
    return out


def assemble(
    ind: Indicators,
    close: Array,
    close_lag1: Array,
    close_lag5: Array,
    obv_lag20: Array,
    log_volume: Array,
    dow: Array,
    sentiment: Array,
) -> Array:
    """Build the ``(T, 19)`` float64 matrix from same-bar inputs (element-wise only).

    Lagged inputs are NaN where the lag reaches before the first bar.
    """
    out = np.empty((close.shape[0], N_FEATURES), dtype=np.float64)
    out[:, 0] = close / ind.sma20 - 1.0
    out[:, 1] = close / ind.ema50 - 1.0
    out[:, 2] = ind.rsi14 / 100.0
    out[:, 3] = ind.macd / close
    out[:, 4] = ind.macd_signal / close
    out[:, 5] = ind.macd_hist / close
    width = ind.bb_upper - ind.bb_lower
    out[:, 6] = _ratio(close - ind.bb_lower, width, 0.5)
    out[:, 7] = width / ind.bb_middle
    out[:, 8] = ind.atr14 / close
    out[:, 9] = ind.adx14 / 100.0
    out[:, 10] = ind.slowk / 100.0
    out[:, 11] = ind.slowd / 100.0
    out[:, 12] = np.clip(_ratio(ind.obv - obv_lag20, ind.vol_sum20, 0.0), -1.0, 1.0)
    out[:, 13] = _ratio(log_volume - ind.logv_mean20, ind.logv_std20, 0.0)
    out[:, 14] = np.log(close / close_lag1)
    out[:, 15] = np.log(close / close_lag5)
    out[:, 16] = DOW_SIN[dow]
    out[:, 17] = DOW_COS[dow]
    out[:, 18] = sentiment
    return out


def lagged(x: Array, k: int) -> Array:
    """``x`` shifted forward by *k* bars, NaN in front (batch helper)."""
    out = np.full(x.shape, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out
