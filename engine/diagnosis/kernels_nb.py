"""numba kernels of the diagnosis: buy-and-holds of symbol subsets, and the SMA-cross signal.

Pure functions on numpy arrays, ``cache=True``. :mod:`engine.diagnosis.controls` builds
their inputs from a :class:`engine.sim.fastpath.FastPath` (the same bar prices, execution
quotes, fill times and ledger layout the signal kernel reads) and reads their outputs.

:func:`buy_and_hold_nb` replays ``strategies.buy_and_hold.BuyAndHold`` operation for
operation, for many symbol subsets at once: each member is bought on its first bar in the
trading window with ``capital / n_members`` (cut to ``max_gross x equity - gross`` when a
gross-exposure cap is given, as ``strategies.base`` does; ``shares_for`` sizing at the
decision close with the cost rate), filled at its execution quote, and sold on its last
decision bar (``close_at_end``). Its books, fills and equity follow the same rules, in the
same float operations, as :mod:`engine.sim.kernels_nb` (the ledger's additions in (time,
symbol name) order, positions marked at window closes and summed in name order), so one
subset's final equity and equity path equal the event engine's buy-and-hold of those
symbols (tests/engine/test_diagnosis.py).

:func:`sma_signal_nb` is ``strategies.sma_cross``'s pair of running averages (the same
running sums, in the same order), as a 0/1 "probability": 1.0 where the fast SMA is above
the slow one, 0.0 where not, NaN while the slow one is filling. Fed to the signal kernel
with entry and exit thresholds of 0.5 it makes the SMA cross's decisions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.sim.kernels_nb import (
    N_STAT,
    ST_END,
    ST_PAST,
    ST_WARM,
    _insert,
    _remove,
    enqueue_nb,
    entry_qty_nb,
    fill_nb,
    finish_stats_nb,
    mark_nb,
    new_curve_nb,
    record_fill_nb,
    settle_nb,
)

R_END = 8
"""Exit reason code of the end-of-data flattening (engine.overlays.REASON_CODE["end"])."""


@njit(cache=True)
def _hold_subset_nb(
    member: np.ndarray, n_members: int,
    ts: np.ndarray, in_window: np.ndarray, act_ptr: np.ndarray, act_sym: np.ndarray,
    state: np.ndarray, close: np.ndarray, mark: np.ndarray,
    ref: np.ndarray, fill_ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, rank_of: np.ndarray,
    capital: float, qty_scale: float, cost_rate: float, bps: float, per_share: float, cmin: float,
    max_gross: float, rf_p: float,
    stats: np.ndarray, record: bool, rec_fills: np.ndarray, rec_reason: np.ndarray, rec_equity: np.ndarray,
) -> int:
    """One subset (``member[s]`` True): fill ``stats`` and, with ``record``, its fills and equity path."""
    T = ts.shape[0]
    S = ref.shape[1]
    qty_back = 1e16 / qty_scale
    each = capital / n_members
    pos = np.zeros(S)
    lc = np.zeros(S)
    entered = np.zeros(S, dtype=np.bool_)
    done = np.zeros(S, dtype=np.bool_)
    pend = np.zeros(S, dtype=np.int8)
    pend_side = np.zeros(S)
    pend_qty = np.zeros(S)
    pend_val = np.zeros(S)
    pend_reason = np.zeros(S, dtype=np.int8)
    sub = np.empty(S, dtype=np.int64)
    ident = np.arange(S)
    bh = np.empty(S, dtype=np.int64)
    nbh = 0
    lpos = np.zeros(S)
    mclose = np.zeros(S)
    lh = np.empty(S, dtype=np.int64)
    nlh = 0
    lq = np.empty(S, dtype=np.int64)
    nq = 0
    due = np.iinfo(np.int64).max
    lq_ts = np.zeros(S, dtype=np.int64)
    lq_flow = np.zeros(S)
    lq_dq = np.zeros(S)
    cash = capital
    cum = 0.0
    n_fills = 0
    trades = 0
    notional = 0.0
    commission = 0.0
    slippage = 0.0
    curve = new_curve_nb()
    exposed = 0
    clash = 0
    j = 0
    for k in range(T):
        t = ts[k]
        win = in_window[k]
        # -- the ledger: fills whose economic time has come, in (time, symbol name) order
        if nq > 0 and t >= due:
            nq, nlh, cum, due = settle_nb(t, lq, nq, lq_ts, lq_flow, lq_dq, rank_of, lpos, lh, nlh, cum)
        # -- the members' bars, in stream order
        n_sub = 0
        for a in range(act_ptr[k], act_ptr[k + 1]):
            s = act_sym[a]
            if not member[s]:
                continue
            st = state[a]
            lc[s] = close[a]
            if win:
                m = mark[a]
                if not math.isnan(m):
                    mclose[s] = m
            if st == ST_WARM or done[s] or st == ST_PAST:
                continue
            if st == ST_END:
                done[s] = True
                if pend[s] == 0 and pos[s] != 0.0:
                    pend[s] = 2
                    pend_side[s] = -1.0 if pos[s] > 0.0 else 1.0
                    pend_qty[s] = abs(pos[s])
                    pend_reason[s] = R_END
                    sub[n_sub] = s
                    n_sub += 1
                continue
            if entered[s]:
                continue
            entered[s] = True
            value = each
            if max_gross > 0.0:
                held = 0.0
                for i in range(nbh):
                    u = bh[i]
                    held += pos[u] * lc[u]
                eq = cash + held
                gross = 0.0
                i = 0
                i2 = 0
                while True:
                    while i2 < n_sub and pend[sub[i2]] != 1:
                        i2 += 1
                    if i < nbh and (i2 >= n_sub or bh[i] < sub[i2]):
                        u = bh[i]
                        gross += abs(pos[u] * lc[u])
                        i += 1
                    elif i2 < n_sub:
                        gross += pend_val[sub[i2]]
                        i2 += 1
                    else:
                        break
                room = max_gross * eq - gross
                if room < value:
                    value = room
            price = lc[s]
            q = entry_qty_nb(1.0, value, price, cash, cost_rate, qty_scale)
            if q <= 0.0:
                continue
            pend[s] = 1
            pend_side[s] = 1.0
            pend_qty[s] = q
            pend_val[s] = q * price
            pend_reason[s] = 0
            sub[n_sub] = s
            n_sub += 1
        # -- fills of this time's orders, in submission order
        for i in range(n_sub):
            s = sub[i]
            sgn = pend_side[s]
            px = ask[k, s] if sgn > 0.0 else bid[k, s]
            q, comm = fill_nb(pend_qty[s], px, bps, per_share, cmin, qty_scale, qty_back)
            signed = sgn * q
            before = pos[s]
            pos[s] = before + signed
            cash -= signed * px + comm
            if before == 0.0 and pos[s] != 0.0:
                nbh = _insert(bh, nbh, s, ident)
            elif pos[s] == 0.0:
                trades += 1
                nbh = _remove(bh, nbh, s)
            pend[s] = 0
            nv = q * px
            notional += nv
            commission += comm
            slippage += q * abs(px - ref[k, s])
            nq, due, c = enqueue_nb(s, fill_ts[k, s], -(sgn * nv + comm), signed, lq, nq, lq_ts, lq_flow, lq_dq, due)
            clash += c
            if record and n_fills < rec_fills.shape[0]:
                record_fill_nb(rec_fills, rec_reason, n_fills, k, s, sgn, q, px, comm, pend_reason[s])
            n_fills += 1
        # -- the ledger's equity at this bar close
        if win:
            eq = mark_nb(capital, cum, lpos, mclose, lh, nlh, rf_p, curve)
            if nlh > 0:
                exposed += 1
            if record:
                rec_equity[j] = eq
            j += 1
    finish_stats_nb(curve, capital, stats, trades, n_fills, notional, commission, slippage, exposed, clash)
    return n_fills


@njit(cache=True, parallel=True)
def buy_and_hold_nb(
    members: np.ndarray, n_members: np.ndarray,
    ts: np.ndarray, in_window: np.ndarray, act_ptr: np.ndarray, act_sym: np.ndarray,
    state: np.ndarray, close: np.ndarray, mark: np.ndarray,
    ref: np.ndarray, fill_ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, rank_of: np.ndarray,
    capital: float, qty_scale: float, cost_rate: float, bps: float, per_share: float, cmin: float,
    max_gross: float, rf_p: float,
) -> np.ndarray:
    """Buy-and-hold of every subset (row ``d``: ``members[d, :n_members[d]]``), in parallel.

    Returns the statistics rows of :mod:`engine.sim.kernels_nb` (``S_*`` columns), one per
    subset, so :meth:`engine.sim.fastpath.FastPath.metrics` turns them into figures.
    """
    n = members.shape[0]
    S = ref.shape[1]
    out = np.zeros((n, N_STAT))
    no_fills = np.zeros((0, 6))
    no_reason = np.zeros(0, dtype=np.int8)
    no_eq = np.zeros(0)
    for d in prange(n):
        member = np.zeros(S, dtype=np.bool_)
        for i in range(n_members[d]):
            member[members[d, i]] = True
        _hold_subset_nb(
            member, n_members[d], ts, in_window, act_ptr, act_sym, state, close, mark, ref, fill_ts, bid, ask,
            rank_of, capital, qty_scale, cost_rate, bps, per_share, cmin, max_gross, rf_p, out[d],
            False, no_fills, no_reason, no_eq,
        )
    return out


@njit(cache=True)
def buy_and_hold_trace_nb(
    member: np.ndarray, n_members: int,
    ts: np.ndarray, in_window: np.ndarray, act_ptr: np.ndarray, act_sym: np.ndarray,
    state: np.ndarray, close: np.ndarray, mark: np.ndarray,
    ref: np.ndarray, fill_ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, rank_of: np.ndarray,
    capital: float, qty_scale: float, cost_rate: float, bps: float, per_share: float, cmin: float,
    max_gross: float, rf_p: float, n_window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One subset with its fills (step, symbol, side, qty, price, commission), exit reasons and equity path."""
    stats = np.zeros(N_STAT)
    max_fills = 2 * n_members + 1
    fills = np.zeros((max_fills, 6))
    reasons = np.zeros(max_fills, dtype=np.int8)
    equity = np.zeros(n_window)
    n = _hold_subset_nb(
        member, n_members, ts, in_window, act_ptr, act_sym, state, close, mark, ref, fill_ts, bid, ask,
        rank_of, capital, qty_scale, cost_rate, bps, per_share, cmin, max_gross, rf_p, stats,
        True, fills, reasons, equity,
    )
    return stats, fills[: min(n, max_fills)], reasons[: min(n, max_fills)], equity


@njit(cache=True)
def sma_signal_nb(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """``strategies.sma_cross``'s signal per bar: 1.0 (fast SMA > slow SMA), 0.0, NaN while warming up.

    Each average is the strategy's running sum: once ``n`` values are held, the oldest is
    subtracted before the new one is added; the value is ``sum / n``.
    """
    n = close.shape[0]
    out = np.full(n, np.nan)
    fbuf = np.zeros(fast)
    sbuf = np.zeros(slow)
    ftot = 0.0
    stot = 0.0
    fcount = 0
    scount = 0
    for i in range(n):
        x = close[i]
        if fcount == fast:
            ftot -= fbuf[i % fast]
        else:
            fcount += 1
        fbuf[i % fast] = x
        ftot += x
        if scount == slow:
            stot -= sbuf[i % slow]
        else:
            scount += 1
        sbuf[i % slow] = x
        stot += x
        if scount == slow:
            out[i] = 1.0 if ftot / fast > stot / slow else 0.0
    return out
