"""Numba kernels of the incremental ``seed14@1`` features: one bar of many symbols per call.

Each symbol owns one row of three arrays - a bar counter ``n``, a float state row ``st``
(the running sums and recurrences listed under ``S_*``) and ring buffers ``ring`` of the
last :data:`RING` values of a few series (``R_*``) - so a bar costs the same whatever the
length of the history, and a symbol's memory is ``8 * (N_SLOTS + N_RING * RING)`` bytes.

The arithmetic is that of the TA-Lib C library bundled with the ``TA-Lib`` 0.8 wheels,
operation for operation and in the same order (read off its machine code), so every
value equals, bit for bit, what :func:`models.indicators.indicators` returns over the
whole history:

* SMA / SUM / the BBANDS middle band: one running total from the first bar on
  (``total += x``; the output reads it; then ``total -= x[t - P + 1]``), never re-summed;
* BBANDS and STDDEV: a *shifted* running variance (sums of ``x - K`` and ``(x - K)**2``)
  that re-centres ``K`` on the window mean and re-sums the window when cancellation
  threatens (``var < 1e-6 * mean of squares``), when an outgoing square dominates, or
  every ``32 * P`` bars; a re-centred variance below ``1e-12`` of the mean square is 0;
* EMA / MACD: seeded with the sum of the first ``P`` values divided by ``P``, then
  ``prev = fma(k, x - prev, prev)``, ``k = 2 / (P + 1)``; the MACD fast EMA is seeded on the bars ``14..25``
  (both EMAs start on the slow one's first output), the signal EMA on the MACD line of
  bars ``25..33``;
* RSI: Wilder smoothing by the reciprocal, ``prev = (prev * 13 + x) * (1 / 14)``;
* ATR: ``prev = fma(prev, 13 / 14, tr * (1 - 13 / 14))``, seeded with the mean true range
  of bars ``1..14``;
* ADX: ``prev - prev / 14 + x`` for +DM, -DM and the true range, DX only where the true
  range is positive and ``|+DI + -DI| >= 1e-14``;
* STOCH: raw %K ``(c - lo) / (hi - lo) * 100`` from the exact 14-bar low and high (0
  when ``|hi - lo| <= 1e-14 * (|hi| + |lo|)``), then two running 3-bar SMAs.

The ``k * (x - prev) + prev`` of EMA / MACD and the ``prev * a + tr * b`` of ATR are
single fused multiply-adds (TA-Lib calls C's ``fma``; the library's FMA and non-FMA CPU
variants give the same numbers), here LLVM's ``llvm.fma.f64``, exact on every CPU.

:func:`step_nb` then applies the element-wise formulas of
:func:`models.indicators.assemble`. The two logarithms (``log_ret_1``, ``log_ret_5``) are
left to the caller as ratios: numpy's vectorised ``log`` and the C library's ``log``
differ in the last bit, and batch mode uses numpy's. ``log1p(volume)`` comes in computed
by numpy for the same reason.

Pure functions on numpy arrays; no pandas, no Python objects.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic

RING = 32
"""Ring-buffer length per series (a power of two above the longest lag, 20)."""
_MASK = RING - 1

# ring series
R_C, R_H, R_L, R_V, R_LV, R_OBV, R_K, R_SK = range(8)
N_RING = 8

# float state slots
(
    S_SUM_C,  # SMA(c, 20) running sum (also the BBANDS middle band)
    S_BB_K,  # BBANDS shifted variance: shift, sum, sum of squares, bars to re-centring
    S_BB_S1,
    S_BB_S2,
    S_BB_CNT,
    S_SUM_V,  # SUM(v, 20)
    S_SUM_LV,  # SMA(log1p v, 20) running sum
    S_LV_K,  # STDDEV(log1p v, 20) shifted variance, as for BBANDS
    S_LV_S1,
    S_LV_S2,
    S_LV_CNT,
    S_EMA50,  # EMA(c, 50): the seed sum, then the EMA
    S_SLOW,  # MACD slow EMA(26)
    S_FAST,  # MACD fast EMA(12)
    S_SIGNAL,  # MACD signal EMA(9) of the MACD line
    S_GAIN,  # RSI average gain
    S_LOSS,  # RSI average loss
    S_ATR,  # ATR(14)
    S_PDM,  # ADX smoothed +DM
    S_MDM,  # ADX smoothed -DM
    S_TR,  # ADX smoothed true range
    S_SUMDX,  # ADX sum of the first 14 DX
    S_ADX,  # ADX
    S_SUM_K,  # STOCH slow-K running sum of raw %K
    S_SUM_SK,  # STOCH slow-D running sum of slow %K
    S_OBV,  # OBV
) = range(26)
N_SLOTS = 26

N_OUT = 19
_P20 = 20
_R20 = 1.0 / 20.0
_RECENTRE = 32.0 * 20.0
_K50 = 2.0 / 51.0
_K26 = 2.0 / 27.0
_K12 = 2.0 / 13.0
_K9 = 2.0 / 10.0
_R14 = 1.0 / 14.0
_A14 = 13.0 / 14.0
_B14 = 1.0 - _A14
_NAN = math.nan


@intrinsic
def _fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``a * b + c`` with one rounding (LLVM's ``llvm.fma.f64``)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        dbl = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [dbl], ir.FunctionType(dbl, [dbl, dbl, dbl]))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, inline="always")
def _ema_nb(prev: float, x: float, k: float) -> float:
    return _fma(k, x - prev, prev)


@njit(cache=True, inline="always")
def _ratio_nb(num: float, den: float, fill: float) -> float:
    if den == 0.0:
        return _NAN if math.isnan(num) else fill
    return num / den


@njit(cache=True, inline="always")
def _rolling_var_nb(s: np.ndarray, rg: np.ndarray, series: int, k: int, x: float, t: int) -> float:
    """TA-Lib's shifted 20-bar variance of ring *series* at bar *t* (state ``s[k:k+4]``).

    ``x`` (bar *t*'s value) is already in the ring. NaN before the first full window.
    """
    if t < _P20 - 1:
        if t == 0:
            s[k] = x
        d = x - s[k]
        s[k + 1] += d
        s[k + 2] += d * d
        return _NAN
    if t == _P20 - 1:
        s[k + 3] = _RECENTRE
    shift = s[k]
    d = x - shift
    s1 = s[k + 1] + d
    s2 = s[k + 2] + d * d
    m = _R20 * s1
    var = _R20 * s2 - m * m
    trail = t - _P20 + 1
    d_out = rg[series, trail & _MASK] - shift
    d_out2 = d_out * d_out
    s2 = s2 - d_out2
    recentre = False
    if not ((_R20 * s2) * 0.000001 <= var):
        recentre = True
    elif d_out2 > s2 * 1000000.0:
        recentre = True
    else:
        s[k + 3] -= 1.0
        if s[k + 3] == 0.0:
            recentre = True
        else:
            s1 = s1 - d_out
    if recentre:
        total = 0.0
        for j in range(trail, t + 1):
            total += rg[series, j & _MASK]
        shift = total * _R20
        s1 = 0.0
        s2 = 0.0
        for j in range(trail, t + 1):
            d = rg[series, j & _MASK] - shift
            s1 += d
            s2 += d * d
        m = _R20 * s1
        q = _R20 * s2
        var = q - m * m
        if var < q * 1e-12:
            var = 0.0
        d_out = rg[series, trail & _MASK] - shift
        s1 -= d_out
        s2 -= d_out * d_out
        s[k + 3] = _RECENTRE
        s[k] = shift
    s[k + 1] = s1
    s[k + 2] = s2
    return var


# error codes of step_nb (err[0]); err[1] = the offending row j, err[2] = the column
E_OK, E_TWICE, E_LATE, E_VALUE, E_SENTIMENT = range(5)


@njit(cache=True)
def check_nb(
    rows: np.ndarray,
    ts: np.ndarray,
    bars: np.ndarray,
    sentiment: np.ndarray,
    last_ts: np.ndarray,
    mark: np.ndarray,
    stamp: int,
    err: np.ndarray,
) -> bool:
    """Validate one step before anything is added; False with ``err`` = (code, row j, column).

    ``mark`` is a per-symbol scratch array; *stamp* a number never passed before (a symbol
    met twice in the call carries it already).
    """
    for j in range(rows.shape[0]):
        r = rows[j]
        if r < 0 or r >= last_ts.shape[0]:
            err[0], err[1], err[2] = E_VALUE, j, -1
            return False
        if mark[r] == stamp:
            err[0], err[1], err[2] = E_TWICE, j, -1
            return False
        mark[r] = stamp
        if ts[j] <= last_ts[r]:
            err[0], err[1], err[2] = E_LATE, j, -1
            return False
        for col in range(5):
            x = bars[j, col]
            if not (math.isfinite(x) and (x >= 0.0 if col == 4 else x > 0.0)):
                err[0], err[1], err[2] = E_VALUE, j, col
                return False
        if math.isinf(sentiment[j]):
            err[0], err[1], err[2] = E_SENTIMENT, j, -1
            return False
    return True


@njit(cache=True)
def step_nb(
    rows: np.ndarray,
    ts: np.ndarray,
    bars: np.ndarray,
    log_volume: np.ndarray,
    dow: np.ndarray,
    sentiment: np.ndarray,
    n: np.ndarray,
    last_ts: np.ndarray,
    st: np.ndarray,
    ring: np.ndarray,
    dow_sin: np.ndarray,
    dow_cos: np.ndarray,
    out: np.ndarray,
    ratios: np.ndarray,
) -> None:
    """Add bar ``j`` (``bars[j] = open, high, low, close, volume``, closing at ``ts[j]``) to symbol ``rows[j]``.

    Writes the feature row of each bar into ``out[j]`` (``log_ret_1`` / ``log_ret_5``
    left NaN) and the close ratios ``c / c[t-1]``, ``c / c[t-5]`` into ``ratios[0, j]``,
    ``ratios[1, j]`` (NaN where the lag reaches before the first bar). A NaN sentiment is
    0. The bars must have passed :func:`check_nb`.
    """
    for j in range(rows.shape[0]):
        r = rows[j]
        t = n[r]
        s = st[r]
        rg = ring[r]
        h = bars[j, 1]
        lo = bars[j, 2]
        c = bars[j, 3]
        v = bars[j, 4]
        lv = log_volume[j]
        pos = t & _MASK
        prev = (t - 1) & _MASK
        c_prev = rg[R_C, prev]
        h_prev = rg[R_H, prev]
        l_prev = rg[R_L, prev]
        rg[R_C, pos] = c
        rg[R_H, pos] = h
        rg[R_L, pos] = lo
        rg[R_V, pos] = v
        rg[R_LV, pos] = lv

        # --- SMA(c, 20) = BBANDS middle, SUM(v, 20), SMA(log1p v, 20): running totals
        s[S_SUM_C] += c
        s[S_SUM_V] += v
        s[S_SUM_LV] += lv
        sma20 = _NAN
        vol_sum = _NAN
        lv_mean = _NAN
        if t >= _P20 - 1:
            old = (t - _P20 + 1) & _MASK
            sma20 = s[S_SUM_C] / 20.0
            s[S_SUM_C] -= rg[R_C, old]
            vol_sum = s[S_SUM_V]
            s[S_SUM_V] -= rg[R_V, old]
            lv_mean = s[S_SUM_LV] / 20.0
            s[S_SUM_LV] -= rg[R_LV, old]

        # --- BBANDS(c, 20, 2, 2) bands and STDDEV(log1p v, 20)
        var = _rolling_var_nb(s, rg, R_C, S_BB_K, c, t)
        upper = _NAN
        lower = _NAN
        if t >= _P20 - 1:
            sd = 0.0 if var == 0.0 else math.sqrt(var)
            dev = 2.0 * sd
            upper = sma20 + dev
            lower = sma20 - dev
        var = _rolling_var_nb(s, rg, R_LV, S_LV_K, lv, t)
        lv_std = math.sqrt(var)

        # --- EMA(c, 50)
        ema50 = _NAN
        if t < 50:
            s[S_EMA50] += c
            if t == 49:
                s[S_EMA50] = s[S_EMA50] / 50.0
                ema50 = s[S_EMA50]
        else:
            s[S_EMA50] = _ema_nb(s[S_EMA50], c, _K50)
            ema50 = s[S_EMA50]

        # --- MACD(12, 26, 9)
        macd = _NAN
        signal = _NAN
        hist = _NAN
        if t <= 25:
            s[S_SLOW] += c
            if t >= 14:
                s[S_FAST] += c
            if t == 25:
                s[S_SLOW] = s[S_SLOW] / 26.0
                s[S_FAST] = s[S_FAST] / 12.0
        else:
            s[S_SLOW] = _ema_nb(s[S_SLOW], c, _K26)
            s[S_FAST] = _ema_nb(s[S_FAST], c, _K12)
        if t >= 25:
            line = s[S_FAST] - s[S_SLOW]
            if t <= 33:
                s[S_SIGNAL] += line
                if t == 33:
                    s[S_SIGNAL] = s[S_SIGNAL] / 9.0
            else:
                s[S_SIGNAL] = _ema_nb(s[S_SIGNAL], line, _K9)
            if t >= 33:
                macd = line
                signal = s[S_SIGNAL]
                hist = line - signal

        # --- RSI(14), ATR(14), ADX(14), OBV: from the second bar on
        rsi = _NAN
        atr = _NAN
        adx = _NAN
        if t == 0:
            s[S_OBV] = v
        else:
            d = c - c_prev
            if t <= 14:
                if d < 0.0:
                    s[S_LOSS] -= d
                else:
                    s[S_GAIN] += d
                if t == 14:
                    s[S_LOSS] *= _R14
                    s[S_GAIN] *= _R14
            else:
                s[S_LOSS] *= 13.0
                s[S_GAIN] *= 13.0
                if d < 0.0:
                    s[S_LOSS] -= d
                else:
                    s[S_GAIN] += d
                s[S_LOSS] *= _R14
                s[S_GAIN] *= _R14
            if t >= 14:
                tot = s[S_GAIN] + s[S_LOSS]
                rsi = (s[S_GAIN] / tot) * 100.0 if tot > 0.0 else 0.0

            tr = max(max(abs(c_prev - h), h - lo), abs(c_prev - lo))
            if t <= 14:
                s[S_ATR] += tr
                if t == 14:
                    s[S_ATR] = s[S_ATR] / 14.0
            else:
                s[S_ATR] = _fma(s[S_ATR], _A14, tr * _B14)
            if t >= 14:
                atr = s[S_ATR]

            diff_p = h - h_prev
            diff_m = l_prev - lo
            if t >= 14:
                s[S_MDM] -= s[S_MDM] / 14.0
                s[S_PDM] -= s[S_PDM] / 14.0
            if diff_m > 0.0 and diff_p < diff_m:
                s[S_MDM] += diff_m
            elif diff_p > 0.0 and diff_p > diff_m:
                s[S_PDM] += diff_p
            if t < 14:
                s[S_TR] += tr
            else:
                s[S_TR] = s[S_TR] - s[S_TR] / 14.0 + tr
                if s[S_TR] > 0.0:
                    minus_di = (s[S_MDM] / s[S_TR]) * 100.0
                    plus_di = (s[S_PDM] / s[S_TR]) * 100.0
                    tot = minus_di + plus_di
                    if not (-1e-14 < tot < 1e-14):
                        dx = (abs(minus_di - plus_di) / tot) * 100.0
                        if t <= 27:
                            s[S_SUMDX] += dx
                        else:
                            s[S_ADX] = (s[S_ADX] * 13.0 + dx) / 14.0
                if t == 27:
                    s[S_ADX] = s[S_SUMDX] / 14.0
                if t >= 27:
                    adx = s[S_ADX]

            if c > c_prev:
                s[S_OBV] += v
            elif c < c_prev:
                s[S_OBV] -= v
        obv = s[S_OBV]
        rg[R_OBV, pos] = obv

        # --- STOCH(14, 3, 3)
        slowk = _NAN
        slowd = _NAN
        if t >= 13:
            lowest = lo
            highest = h
            for back in range(1, 14):
                q = (t - back) & _MASK
                if rg[R_L, q] < lowest:
                    lowest = rg[R_L, q]
                if rg[R_H, q] > highest:
                    highest = rg[R_H, q]
            span = highest - lowest
            if (abs(highest) + abs(lowest)) * 1e-14 < abs(span):
                raw_k = ((c - lowest) / span) * 100.0
            else:
                raw_k = 0.0
            rg[R_K, pos] = raw_k
            s[S_SUM_K] += raw_k
            if t >= 15:
                sk = s[S_SUM_K] / 3.0
                s[S_SUM_K] -= rg[R_K, (t - 2) & _MASK]
                rg[R_SK, pos] = sk
                s[S_SUM_SK] += sk
                if t >= 17:
                    slowk = sk
                    slowd = s[S_SUM_SK] / 3.0
                    s[S_SUM_SK] -= rg[R_SK, (t - 2) & _MASK]

        obv_lag = rg[R_OBV, (t - 20) & _MASK] if t >= 20 else _NAN
        ratios[0, j] = c / c_prev if t >= 1 else _NAN
        ratios[1, j] = c / rg[R_C, (t - 5) & _MASK] if t >= 5 else _NAN

        # --- the columns (models.indicators.assemble)
        o = out[j]
        o[0] = c / sma20 - 1.0
        o[1] = c / ema50 - 1.0
        o[2] = rsi / 100.0
        o[3] = macd / c
        o[4] = signal / c
        o[5] = hist / c
        width = upper - lower
        o[6] = _ratio_nb(c - lower, width, 0.5)
        o[7] = width / sma20
        o[8] = atr / c
        o[9] = adx / 100.0
        o[10] = slowk / 100.0
        o[11] = slowd / 100.0
        x = _ratio_nb(obv - obv_lag, vol_sum, 0.0)
        if x < -1.0:
            x = -1.0
        elif x > 1.0:
            x = 1.0
        o[12] = x
        o[13] = _ratio_nb(lv - lv_mean, lv_std, 0.0)
        o[14] = _NAN
        o[15] = _NAN
        o[16] = dow_sin[dow[j]]
        o[17] = dow_cos[dow[j]]
        o[18] = 0.0 if math.isnan(sentiment[j]) else sentiment[j]
        n[r] = t + 1
        last_ts[r] = ts[j]


@njit(cache=True)
def checked_step_nb(
    rows: np.ndarray,
    ts: np.ndarray,
    bars: np.ndarray,
    log_volume: np.ndarray,
    dow: np.ndarray,
    sentiment: np.ndarray,
    n: np.ndarray,
    last_ts: np.ndarray,
    st: np.ndarray,
    ring: np.ndarray,
    mark: np.ndarray,
    stamp: int,
    dow_sin: np.ndarray,
    dow_cos: np.ndarray,
    out: np.ndarray,
    ratios: np.ndarray,
    err: np.ndarray,
) -> bool:
    """:func:`check_nb`, then :func:`step_nb` only if every bar passed (one call from Python)."""
    if not check_nb(rows, ts, bars, sentiment, last_ts, mark, stamp, err):
        return False
    step_nb(rows, ts, bars, log_volume, dow, sentiment, n, last_ts, st, ring, dow_sin, dow_cos, out, ratios)
    return True


@njit(cache=True)
def series_nb(
    row: int,
    ts: np.ndarray,
    bars: np.ndarray,
    log_volume: np.ndarray,
    dow: np.ndarray,
    sentiment: np.ndarray,
    n: np.ndarray,
    last_ts: np.ndarray,
    st: np.ndarray,
    ring: np.ndarray,
    dow_sin: np.ndarray,
    dow_cos: np.ndarray,
    out: np.ndarray,
    ratios: np.ndarray,
) -> None:
    """Feed the bars ``(T, 5)`` of ONE symbol (state row *row*) in order: :func:`step_nb` per bar."""
    rows = np.full(1, row, dtype=np.int64)
    for i in range(bars.shape[0]):
        step_nb(rows, ts[i : i + 1], bars[i : i + 1], log_volume[i : i + 1], dow[i : i + 1], sentiment[i : i + 1],
                n, last_ts, st, ring, dow_sin, dow_cos, out[i : i + 1], ratios[:, i : i + 1])


@njit(cache=True)
def push_windows_nb(
    windows: np.ndarray,
    finite_run: np.ndarray,
    rows: np.ndarray,
    features: np.ndarray,
    columns: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
) -> None:
    """Shift the window ``windows[rows[j]]`` (``(L, F)`` float32) one bar and append feature row *j*, scaled.

    The new row is ``(float32(features[j, columns]) - mean) / std`` in float32 - the
    arithmetic of :func:`models.features.scale` (``std`` with its zeros already made 1).
    ``finite_run[rows[j]]`` counts the trailing all-finite rows of the window (0 after a
    row with a NaN or an infinity): the window is finite when it reaches ``L``.
    """
    n_steps = windows.shape[1]
    n_feat = windows.shape[2]
    for j in range(rows.shape[0]):
        r = rows[j]
        w = windows[r]
        for i in range(n_steps - 1):
            for f in range(n_feat):
                w[i, f] = w[i + 1, f]
        finite = True
        for f in range(n_feat):
            y = (np.float32(features[j, columns[f]]) - mean[f]) / std[f]
            w[n_steps - 1, f] = y
            if not math.isfinite(y):
                finite = False
        finite_run[r] = finite_run[r] + 1 if finite else 0
