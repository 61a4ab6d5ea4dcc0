"""numba kernels: the signal strategy with every overlay, for many configurations at once.

Pure functions on numpy arrays (no pandas, no NautilusTrader objects), ``cache=True``,
``parallel=True`` with ``prange`` over configurations. :mod:`engine.sim.fastpath` builds
the inputs and reads the outputs; the contract is *parity* with the event engine
(``strategies/base.py`` + ``strategies/signal.py`` on NautilusTrader): the same fills,
bit for bit, and the same equity curve (tests/engine/test_parity_real.py).

How each step mirrors the event engine:

* the union timeline is walked in time order; at each time the symbols that have a bar
  are visited in the runner's stream order (config order - the stream is sorted stably
  by ``ts_init`` with symbols inserted in config order);
* the first bar of a new time runs the portfolio rules on the strategy's books
  (``cash + sum(pos x last close)`` in symbol order), then each symbol updates its last
  close and runs the base's checks and the signal rule with exactly the same float
  operations, in the same order (``shares_for`` / ``floor_qty``, the gross-exposure cap,
  ATR sizing, the cost filter, the stops);
* orders sent at time ``T`` fill before the next time, in submission order (the venue's
  in-flight queue is FIFO), at the execution quote's price (``bid``/``ask`` as
  NautilusTrader ``Price`` values, precomputed) with the commission rounded to the cent
  as NautilusTrader's ``Money`` does (:func:`nt_round`: half away from zero on
  ``x * 10**p``, then back through the 1e16 fixed-point scale);
* the equity curve is sigtrade's ledger (:func:`engine.ledger.mark_to_market`): fills
  count from their economic time, cash is the running sum of their flows in (time,
  symbol name) order, positions are marked at the window bars' closes, summed in symbol
  name order - the same additions in the same order, so the curve is bit-identical too.

Positions only ever go ``0 -> q -> 0`` (no partial fills: quote sizes are 1e12), so the
books' ``round(pos + signed, 9)`` is the plain sum here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# float parameters, one row per configuration
F_ENTRY, F_EXIT, F_SHORT, F_COVER, F_POS_SIZE, F_COST_RATE, F_BPS, F_PER_SHARE, F_CMIN = range(9)
F_ATR_RISK, F_ATR_MULT, F_MAX_GROSS, F_SL, F_TP, F_TRAIL, F_COST_MULT, F_RT_RATE = range(9, 17)
F_DD_LIMIT, F_DAILY_LIMIT = 17, 18
N_FLOAT = 19
# integer parameters
I_MAX_POS, I_SLIP, I_ATR, I_MOVE, I_REGIME, I_MAX_HOLD, I_MIN_HOLD, I_COOLDOWN, I_DD_PAUSE = range(9)
N_INT = 9
# per-bar state codes of the symbol grid
ST_NONE, ST_WARM, ST_DECIDE, ST_END, ST_PAST = 0, 1, 2, 3, 4
# exit reason codes (engine.overlays.REASON_CODE)
R_SIGNAL, R_STOP, R_TP, R_TRAIL, R_TIME, R_DD, R_DAILY, R_END = 1, 2, 3, 4, 5, 6, 7, 8
# statistics, one row per configuration
S_FINAL, S_NRET, S_MEAN, S_M2, S_DOWN2, S_MDD, S_SUM_EQ, S_NEQ = range(8)
S_TRADES, S_FILLS, S_NOTIONAL, S_COMMISSION, S_SLIPPAGE, S_EXPOSED, S_LEDGER_CLASH = range(8, 15)
N_STAT = 15
_NEVER = 1_000_000_000


@njit(cache=True, inline="always")
def nt_round(x: float, scale: float, back: float) -> float:
    """NautilusTrader's float -> fixed-point -> float round trip (``Money``, ``Price``, ``Quantity``)."""
    v = x * scale
    r = math.floor(abs(v) + 0.5)
    if v < 0.0:
        r = -r
    return (r * back) / 1e16


@njit(cache=True, inline="always")
def floor_qty_nb(qty: float, scale: float) -> float:
    """engine.sizing.floor_qty."""
    if qty <= 0.0:
        return 0.0
    return math.floor(qty * scale + 1e-9) / scale


@njit(cache=True, inline="always")
def shares_for_nb(value: float, price: float, cash: float, cost_rate: float, scale: float) -> float:
    """engine.sizing.shares_for."""
    if price <= 0.0 or value <= 0.0 or cash <= 0.0:
        return 0.0
    affordable = cash / (price * (1.0 + cost_rate))
    q = value / price
    if affordable < q:
        q = affordable
    return floor_qty_nb(q, scale)


@njit(cache=True, inline="always")
def _insert(lst: np.ndarray, n: int, v: int, key: np.ndarray) -> int:
    """Insert *v* into ``lst[:n]`` kept sorted by ``key[.]``; return the new length."""
    i = n
    kv = key[v]
    while i > 0 and key[lst[i - 1]] > kv:
        lst[i] = lst[i - 1]
        i -= 1
    lst[i] = v
    return n + 1


@njit(cache=True, inline="always")
def _remove(lst: np.ndarray, n: int, v: int) -> int:
    """Remove *v* from ``lst[:n]`` keeping the order; return the new length."""
    i = 0
    while lst[i] != v:
        i += 1
    while i < n - 1:
        lst[i] = lst[i + 1]
        i += 1
    return n - 1


@njit(cache=True, inline="always")
def stop_exit_nb(
    p0: float, hi: float, lo: float, entry: float, extreme: float, sl: float, tp: float, trail: float
) -> tuple[int, float]:
    """The stop that closes a position of sign ``p0`` on a bar (0 = none) and the updated extreme.

    strategies.base.SigtradeStrategy._forced_exit, in its order: stop-loss, trailing stop,
    take-profit; the extreme (highest high of a long, lowest low of a short since the
    entry fill) is updated with this bar first.
    """
    reason = 0
    if p0 > 0.0:
        if hi > extreme:
            extreme = hi
        if sl > 0.0 and lo <= entry * (1.0 - sl):
            reason = R_STOP
        elif trail > 0.0 and lo <= extreme * (1.0 - trail):
            reason = R_TRAIL
        elif tp > 0.0 and hi >= entry * (1.0 + tp):
            reason = R_TP
    else:
        if lo < extreme:
            extreme = lo
        if sl > 0.0 and hi >= entry * (1.0 + sl):
            reason = R_STOP
        elif trail > 0.0 and hi >= extreme * (1.0 + trail):
            reason = R_TRAIL
        elif tp > 0.0 and lo <= entry * (1.0 - tp):
            reason = R_TP
    return reason, extreme


@njit(cache=True, inline="always")
def entry_qty_nb(side: float, value: float, price: float, cash: float, cost_rate: float, scale: float) -> float:
    """Shares of an entry worth about *value* (``enter``: shares_for; ``enter_short``: floor_qty)."""
    if not value > 0.0:
        value = 0.0
    if side > 0.0:
        return shares_for_nb(value, price, cash, cost_rate, scale)
    return floor_qty_nb(value / price, scale) if price > 0.0 else 0.0


@njit(cache=True, inline="always")
def fill_nb(
    qty: float, px: float, bps: float, per_share: float, cmin: float, scale: float, back: float
) -> tuple[float, float]:
    """A market fill as the venue books it: the quantity as a ``Quantity`` and the cent-rounded commission."""
    q = nt_round(qty, scale, back)
    fee = q * px * bps / 10_000.0 + q * per_share
    if cmin > fee:
        fee = cmin
    return q, nt_round(fee, 100.0, 1e14)


@njit(cache=True, inline="always")
def enqueue_nb(
    s: int, due_ts: int, flow: float, dq: float, lq: np.ndarray, nq: int, lq_ts: np.ndarray, lq_flow: np.ndarray,
    lq_dq: np.ndarray, due: int,
) -> tuple[int, int, int]:
    """Queue a fill for the ledger (it counts from *due_ts*); returns the queue length, next due time, clashes."""
    clash = 0
    for i in range(nq):
        if lq[i] == s:
            clash += 1
    lq[nq] = s
    nq += 1
    lq_ts[s] = due_ts
    lq_flow[s] = flow
    lq_dq[s] = dq
    if due_ts < due:
        due = due_ts
    return nq, due, clash


@njit(cache=True, inline="always")
def record_fill_nb(
    rec_fills: np.ndarray, rec_reason: np.ndarray, n: int, k: int, s: int, sgn: float, q: float, px: float,
    comm: float, reason: int,
) -> None:
    """Row *n* of the recorded fills: step, symbol, side, quantity, price, commission; and its exit reason."""
    rec_fills[n, 0] = k
    rec_fills[n, 1] = s
    rec_fills[n, 2] = sgn
    rec_fills[n, 3] = q
    rec_fills[n, 4] = px
    rec_fills[n, 5] = comm
    rec_reason[n] = reason


# the equity curve's running figures (mark_nb / finish_stats_nb), one float array per configuration
C_PREV, C_PEAK, C_MDD, C_NRET, C_MEAN, C_M2, C_DOWN2, C_SUM, C_NEQ = range(9)
N_CURVE = 9


@njit(cache=True, inline="always")
def settle_nb(
    t: int, lq: np.ndarray, nq: int, lq_ts: np.ndarray, lq_flow: np.ndarray, lq_dq: np.ndarray, rank_of: np.ndarray,
    lpos: np.ndarray, lh: np.ndarray, nlh: int, cum: float,
) -> tuple[int, int, float, int]:
    """The ledger: book the queued fills whose economic time is at or before *t*, in (time, symbol name) order.

    Returns the new queue length, held count, running cash flow and the next due time.
    """
    while True:
        bi = -1
        for i in range(nq):
            s = lq[i]
            if lq_ts[s] <= t:
                if bi < 0:
                    bi = i
                else:
                    b = lq[bi]
                    if lq_ts[s] < lq_ts[b] or (lq_ts[s] == lq_ts[b] and rank_of[s] < rank_of[b]):
                        bi = i
        if bi < 0:
            break
        s = lq[bi]
        cum += lq_flow[s]
        before = lpos[s]
        lpos[s] = before + lq_dq[s]
        if before == 0.0 and lpos[s] != 0.0:
            nlh = _insert(lh, nlh, s, rank_of)
        elif lpos[s] == 0.0 and before != 0.0:
            nlh = _remove(lh, nlh, s)
        nq -= 1
        lq[bi] = lq[nq]
    due = np.iinfo(np.int64).max
    for i in range(nq):
        if lq_ts[lq[i]] < due:
            due = lq_ts[lq[i]]
    return nq, nlh, cum, due


@njit(cache=True, inline="always")
def new_curve_nb() -> np.ndarray:
    """Running figures of an equity curve before its first point."""
    curve = np.zeros(N_CURVE)
    curve[C_PEAK] = -np.inf
    return curve


@njit(cache=True, inline="always")
def mark_nb(
    capital: float, cum: float, lpos: np.ndarray, mclose: np.ndarray, lh: np.ndarray, nlh: int, rf_p: float,
    curve: np.ndarray,
) -> float:
    """The ledger's equity at a window bar close (positions in name order) and the curve's running figures."""
    value = 0.0
    for i in range(nlh):
        s = lh[i]
        value += lpos[s] * mclose[s]
    eq = (capital + cum) + value
    if curve[C_NEQ] > 0:
        r_t = eq / curve[C_PREV] - 1.0
        if math.isfinite(r_t):
            curve[C_NRET] += 1
            delta = r_t - curve[C_MEAN]
            curve[C_MEAN] += delta / curve[C_NRET]
            curve[C_M2] += delta * (r_t - curve[C_MEAN])
            ex = r_t - rf_p
            if ex < 0.0:
                curve[C_DOWN2] += ex * ex
    if eq > curve[C_PEAK]:
        curve[C_PEAK] = eq
    dd = eq / curve[C_PEAK] - 1.0
    if dd < curve[C_MDD]:
        curve[C_MDD] = dd
    curve[C_SUM] += eq
    curve[C_NEQ] += 1
    curve[C_PREV] = eq
    return eq


@njit(cache=True, inline="always")
def finish_stats_nb(
    curve: np.ndarray, capital: float, stats: np.ndarray, trades: int, n_fills: int, notional: float,
    commission: float, slippage: float, exposed: int, ledger_clash: int,
) -> None:
    """Write a finished run's figures into its statistics row: the curve's and the run's counters."""
    stats[S_FINAL] = curve[C_PREV] if curve[C_NEQ] > 0 else capital
    stats[S_NRET] = curve[C_NRET]
    stats[S_MEAN] = curve[C_MEAN]
    stats[S_M2] = curve[C_M2]
    stats[S_DOWN2] = curve[C_DOWN2]
    stats[S_MDD] = curve[C_MDD]
    stats[S_SUM_EQ] = curve[C_SUM]
    stats[S_NEQ] = curve[C_NEQ]
    stats[S_TRADES] = trades
    stats[S_FILLS] = n_fills
    stats[S_NOTIONAL] = notional
    stats[S_COMMISSION] = commission
    stats[S_SLIPPAGE] = slippage
    stats[S_EXPOSED] = exposed
    stats[S_LEDGER_CLASH] = ledger_clash


@njit(cache=True)
def run_config_nb(
    fp: np.ndarray, ip: np.ndarray,
    ts: np.ndarray, in_window: np.ndarray, day: np.ndarray, trade_from: int,
    act_ptr: np.ndarray, act_sym: np.ndarray,
    state: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray, mark: np.ndarray, prob: np.ndarray,
    ref: np.ndarray, fill_ts: np.ndarray,
    bid: np.ndarray, ask: np.ndarray, atr: np.ndarray, move: np.ndarray, allow: np.ndarray,
    rank_of: np.ndarray, capital: float, qty_scale: float, rf_p: float,
    stats: np.ndarray,
    record: bool, rec_fills: np.ndarray, rec_reason: np.ndarray, rec_equity: np.ndarray,
) -> int:
    """Simulate one configuration; fill ``stats`` and, with ``record``, the fills and equity path.

    ``act_ptr``/``act_sym``: the symbols with a bar at each time, ascending (CSR layout);
    ``state``, ``close``, ``high``, ``low``, ``mark`` (the window close the ledger marks
    at, NaN outside the window) and ``prob`` are per bar in that same layout, so the
    time loop streams through them; ``ref`` and ``fill_ts`` are ``(T, S)``, read at fills.
    ``rank_of[s]``: the position of symbol ``s`` in name order (the ledger's order).
    ``rec_fills`` rows: step, symbol, side (+1 buy / -1 sell), qty, price, commission;
    ``rec_reason``: 0 for an entry, else the exit reason code. Returns the number of fills.
    """
    T = ts.shape[0]
    S = ref.shape[1]
    entry_thr = fp[F_ENTRY]
    exit_thr = fp[F_EXIT]
    short_thr = fp[F_SHORT]
    has_short = not math.isnan(short_thr)
    cover_thr = fp[F_COVER]
    pos_size = fp[F_POS_SIZE]
    cost_rate = fp[F_COST_RATE]
    bps = fp[F_BPS]
    per_share = fp[F_PER_SHARE]
    cmin = fp[F_CMIN]
    atr_risk = fp[F_ATR_RISK]
    atr_mult = fp[F_ATR_MULT]
    max_gross = fp[F_MAX_GROSS]
    sl = fp[F_SL]
    tp = fp[F_TP]
    trail = fp[F_TRAIL]
    any_stop = sl > 0.0 or tp > 0.0 or trail > 0.0
    cost_mult = fp[F_COST_MULT]
    rt_rate = fp[F_RT_RATE]
    dd_limit = fp[F_DD_LIMIT]
    daily_limit = fp[F_DAILY_LIMIT]
    max_pos = ip[I_MAX_POS]
    slip = ip[I_SLIP]
    atr_i = ip[I_ATR]
    move_i = ip[I_MOVE]
    reg_i = ip[I_REGIME]
    max_hold = ip[I_MAX_HOLD]
    min_hold = ip[I_MIN_HOLD]
    cooldown = ip[I_COOLDOWN]
    dd_pause = ip[I_DD_PAUSE]
    portfolio_rules = dd_limit > 0.0 or daily_limit > 0.0
    sized = atr_i >= 0 or max_gross > 0.0
    qty_back = 1e16 / qty_scale

    pos = np.zeros(S)
    lc = np.zeros(S)
    pend = np.zeros(S, dtype=np.int8)  # 0 none, 1 entry, 2 exit
    pend_side = np.zeros(S)
    pend_qty = np.zeros(S)
    pend_val = np.zeros(S)
    pend_reason = np.zeros(S, dtype=np.int8)
    entry_px = np.zeros(S)
    extreme = np.zeros(S)
    held = np.zeros(S, dtype=np.int64)
    flat = np.full(S, _NEVER, dtype=np.int64)
    must = np.zeros(S, dtype=np.int8)
    done = np.zeros(S, dtype=np.bool_)
    sub = np.empty(S, dtype=np.int64)
    ident = np.arange(S)
    bh = np.empty(S, dtype=np.int64)  # symbols held on the books, ascending
    nbh = 0
    # the ledger (engine.ledger.mark_to_market)
    lpos = np.zeros(S)
    mclose = np.zeros(S)
    lh = np.empty(S, dtype=np.int64)  # symbols held in the ledger, in name order
    nlh = 0
    lq = np.empty(S, dtype=np.int64)  # symbols with a fill not yet due
    nq = 0
    due = np.iinfo(np.int64).max
    lq_ts = np.zeros(S, dtype=np.int64)
    lq_flow = np.zeros(S)
    lq_dq = np.zeros(S)

    cash = capital
    cum = 0.0
    n_open = 0
    peak = capital
    paused_until = -1
    cur_day = -1
    day_start = 0.0
    halted = False
    n_fills = 0
    trades = 0
    notional = 0.0
    commission = 0.0
    slippage = 0.0
    curve = new_curve_nb()
    exposed = 0
    ledger_clash = 0
    j = 0

    for k in range(T):
        t = ts[k]
        win = in_window[k]
        # -- the ledger: fills whose economic time has come, in (time, symbol name) order ----
        if nq > 0 and t >= due:
            nq, nlh, cum, due = settle_nb(t, lq, nq, lq_ts, lq_flow, lq_dq, rank_of, lpos, lh, nlh, cum)
        # -- portfolio rules on the books, at the first bar of a new time -------------------
        if portfolio_rules and t >= trade_from:
            value = 0.0
            for i in range(nbh):
                s = bh[i]
                value += pos[s] * lc[s]
            eq = cash + value
            if daily_limit > 0.0:
                d = day[k]
                if d != cur_day:
                    cur_day = d
                    day_start = eq
                    halted = False
            if dd_limit > 0.0:
                if paused_until >= 0 and k > paused_until:
                    paused_until = -1
                    peak = eq
                if paused_until < 0:
                    if eq > peak:
                        peak = eq
                    if eq <= peak * (1.0 - dd_limit):
                        paused_until = k + dd_pause
                        for i in range(nbh):
                            if must[bh[i]] == 0:
                                must[bh[i]] = R_DD
            if daily_limit > 0.0 and not halted:
                if eq <= day_start * (1.0 - daily_limit):
                    halted = True
                    for i in range(nbh):
                        if must[bh[i]] == 0:
                            must[bh[i]] = R_DAILY
        # -- each symbol's bar, in stream order ------------------------------------------
        n_sub = 0
        for a in range(act_ptr[k], act_ptr[k + 1]):
            s = act_sym[a]
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
            p0 = pos[s]
            if p0 != 0.0:
                held[s] += 1
                if pend[s] == 0:
                    reason = 0
                    if must[s] != 0:
                        reason = must[s]
                    else:
                        if any_stop:
                            reason, extreme[s] = stop_exit_nb(
                                p0, high[a], low[a], entry_px[s], extreme[s], sl, tp, trail
                            )
                        if reason == 0 and max_hold > 0 and held[s] >= max_hold:
                            reason = R_TIME
                    if reason != 0:
                        pend[s] = 2
                        pend_side[s] = -1.0 if p0 > 0.0 else 1.0
                        pend_qty[s] = abs(p0)
                        pend_reason[s] = reason
                        sub[n_sub] = s
                        n_sub += 1
                        continue
            else:
                flat[s] += 1
            # -- the signal strategy's decision -------------------------------------------
            p = prob[a]
            if math.isnan(p) or pend[s] != 0:
                continue
            if p0 != 0.0:
                if (p0 > 0.0 and p < exit_thr) or (p0 < 0.0 and p > cover_thr):
                    if held[s] >= min_hold:
                        pend[s] = 2
                        pend_side[s] = -1.0 if p0 > 0.0 else 1.0
                        pend_qty[s] = abs(p0)
                        pend_reason[s] = R_SIGNAL
                        sub[n_sub] = s
                        n_sub += 1
                continue
            if p >= entry_thr:
                side = 1.0
            elif has_short and p <= short_thr:
                side = -1.0
            else:
                continue
            # enter / enter_short: the gates, in the base's order
            if not allow[reg_i, k]:
                continue
            if paused_until >= 0 or halted:
                continue
            if flat[s] <= cooldown:
                continue
            if n_open >= max_pos:
                continue
            price = lc[s]
            if move_i >= 0:
                edge = ((1.0 - 2.0 * p) if side < 0.0 else (2.0 * p - 1.0)) * move[move_i, k, s]
                cost = cost_mult * (rt_rate + 2.0 * per_share / price)
                if not edge > cost:
                    continue
            value = 0.0
            for i in range(nbh):
                u = bh[i]
                value += pos[u] * lc[u]
            eq = cash + value
            value = pos_size * eq
            if sized:
                if atr_i >= 0:
                    av = atr[atr_i, k, s]
                    value = eq * atr_risk / (atr_mult * av) if av > 0.0 else 0.0
                if max_gross > 0.0:
                    # |held| and entries in flight, summed in symbol order (a merge of two sorted lists)
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
            q = entry_qty_nb(side, value, price, cash, cost_rate, qty_scale)
            if q <= 0.0:
                continue
            pend[s] = 1
            pend_side[s] = side
            pend_qty[s] = q
            pend_val[s] = q * price
            pend_reason[s] = 0
            n_open += 1
            sub[n_sub] = s
            n_sub += 1
        # -- fills of this time's orders, in submission order --------------------------------
        for i in range(n_sub):
            s = sub[i]
            sgn = pend_side[s]
            px = ask[slip, k, s] if sgn > 0.0 else bid[slip, k, s]
            q, comm = fill_nb(pend_qty[s], px, bps, per_share, cmin, qty_scale, qty_back)
            signed = sgn * q
            before = pos[s]
            pos[s] = before + signed
            cash -= signed * px + comm
            if before == 0.0 and pos[s] != 0.0:
                entry_px[s] = px
                extreme[s] = px
                held[s] = 0
                nbh = _insert(bh, nbh, s, ident)
            elif pos[s] == 0.0:
                flat[s] = 0
                must[s] = 0
                n_open -= 1
                trades += 1
                nbh = _remove(bh, nbh, s)
            pend[s] = 0
            nv = q * px
            notional += nv
            commission += comm
            slippage += q * abs(px - ref[k, s])
            nq, due, clash = enqueue_nb(s, fill_ts[k, s], -(sgn * nv + comm), signed, lq, nq, lq_ts, lq_flow, lq_dq, due)
            ledger_clash += clash  # cannot happen: a fill is due by the symbol's next bar close
            if record and n_fills < rec_fills.shape[0]:
                record_fill_nb(rec_fills, rec_reason, n_fills, k, s, sgn, q, px, comm, pend_reason[s])
            n_fills += 1
        # -- the ledger's equity at this bar close ---------------------------------------------
        if win:
            eq = mark_nb(capital, cum, lpos, mclose, lh, nlh, rf_p, curve)
            if nlh > 0:
                exposed += 1
            if record:
                rec_equity[j] = eq
            j += 1
    finish_stats_nb(curve, capital, stats, trades, n_fills, notional, commission, slippage, exposed, ledger_clash)
    return n_fills


@njit(cache=True, parallel=True)
def sweep_nb(
    fp: np.ndarray, ip: np.ndarray,
    ts: np.ndarray, in_window: np.ndarray, day: np.ndarray, trade_from: int,
    act_ptr: np.ndarray, act_sym: np.ndarray,
    state: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray, mark: np.ndarray, prob: np.ndarray,
    ref: np.ndarray, fill_ts: np.ndarray,
    bid: np.ndarray, ask: np.ndarray, atr: np.ndarray, move: np.ndarray, allow: np.ndarray,
    rank_of: np.ndarray, capital: float, qty_scale: float, rf_p: float,
    keep_equity: bool, equity_out: np.ndarray,
) -> np.ndarray:
    """Run every configuration (rows of ``fp`` / ``ip``) in parallel; return their statistics.

    With ``keep_equity`` each configuration's equity path (one value per window bar close)
    is written into ``equity_out[c]`` (the overfitting statistics need it).
    """
    n = fp.shape[0]
    out = np.zeros((n, N_STAT))
    no_fills = np.zeros((0, 6))
    no_reason = np.zeros(0, dtype=np.int8)
    no_eq = np.zeros(0)
    for c in prange(n):
        run_config_nb(
            fp[c], ip[c], ts, in_window, day, trade_from, act_ptr, act_sym, state, close, high, low, mark, prob,
            ref, fill_ts, bid, ask, atr, move, allow, rank_of, capital, qty_scale, rf_p, out[c],
            keep_equity, no_fills, no_reason, equity_out[c] if keep_equity else no_eq,
        )
    return out


@njit(cache=True)
def trace_nb(
    fp: np.ndarray, ip: np.ndarray,
    ts: np.ndarray, in_window: np.ndarray, day: np.ndarray, trade_from: int,
    act_ptr: np.ndarray, act_sym: np.ndarray,
    state: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray, mark: np.ndarray, prob: np.ndarray,
    ref: np.ndarray, fill_ts: np.ndarray,
    bid: np.ndarray, ask: np.ndarray, atr: np.ndarray, move: np.ndarray, allow: np.ndarray,
    rank_of: np.ndarray, capital: float, qty_scale: float, rf_p: float,
    max_fills: int, n_window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One configuration with its fills and equity path recorded (for verification and reports)."""
    stats = np.zeros(N_STAT)
    fills = np.zeros((max_fills, 6))
    reasons = np.zeros(max_fills, dtype=np.int8)
    equity = np.zeros(n_window)
    n = run_config_nb(
        fp, ip, ts, in_window, day, trade_from, act_ptr, act_sym, state, close, high, low, mark, prob, ref, fill_ts,
        bid, ask, atr, move, allow, rank_of, capital, qty_scale, rf_p, stats,
        True, fills, reasons, equity,
    )
    return stats, fills[: min(n, max_fills)], reasons[: min(n, max_fills)], equity


@njit(cache=True, inline="always")
def _independent_column(
    e: float, x: float, p: np.ndarray, close: np.ndarray, bid: np.ndarray, ask: np.ndarray,
    first: int, end: int, end_counts: bool, mark_last: float, capital: float, pos_size: float, cost_rate: float,
    bps: float, per_share: float, cmin: float, qty_scale: float, out: np.ndarray,
) -> None:
    """One symbol, one configuration, its own capital: threshold entries and exits only.

    ``end_counts``: whether a fill decided on the last decision bar is due by the last
    bar close (next_open); with ``fill = "close"`` it lands after it, and the ledger's
    last equity marks the position at the last close instead.
    """
    qty_back = 1e16 / qty_scale
    cash = capital  # the strategy's books (sizing)
    cum = 0.0  # the ledger's running sum of fill flows (the equity curve's arithmetic)
    trades = 0
    fills = 0
    notional = 0.0
    costs = 0.0
    q = 0.0
    open_q = 0.0
    t = first
    while True:
        # flat: the first decision bar whose probability reaches the entry threshold
        while t < end and not p[t] >= e:
            t += 1
        if t >= end:
            break
        price = close[t]
        q = shares_for_nb(pos_size * cash, price, cash, cost_rate, qty_scale)
        if q <= 0.0:
            t += 1
            continue
        q = nt_round(q, qty_scale, qty_back)
        px = ask[t]
        fee = q * px * bps / 10_000.0 + q * per_share
        if cmin > fee:
            fee = cmin
        comm = nt_round(fee, 100.0, 1e14)
        nv = q * px
        cash -= q * px + comm
        cum += -(nv + comm)
        notional += nv
        costs += comm
        fills += 1
        t += 1
        # long: the first decision bar whose probability falls below the exit threshold
        while t < end and not p[t] < x:
            t += 1
        px = bid[t]  # the exit signal's bar, or the last decision bar (close_at_end)
        fee = q * px * bps / 10_000.0 + q * per_share
        if cmin > fee:
            fee = cmin
        comm = nt_round(fee, 100.0, 1e14)
        nv = q * px
        cash -= -q * px + comm
        if t == end and not end_counts:
            open_q = q
        else:
            cum += -(-nv + comm)
        notional += nv
        costs += comm
        fills += 1
        trades += 1
        q = 0.0
        t += 1
        if t > end:
            break
    out[0] = (capital + cum) + open_q * mark_last if open_q != 0.0 else capital + cum
    out[1] = trades
    out[2] = fills
    out[3] = notional
    out[4] = costs


@njit(cache=True, parallel=True)
def independent_nb(
    e_vals: np.ndarray, e_idx: np.ndarray, x_vals: np.ndarray, x_idx: np.ndarray,
    prob: np.ndarray, close: np.ndarray, bid: np.ndarray, ask: np.ndarray,
    first: np.ndarray, end: np.ndarray, end_counts: bool, mark_last: np.ndarray, capital: float, pos_size: float,
    cost_rate: float, bps: float, per_share: float, cmin: float, qty_scale: float,
) -> np.ndarray:
    """Threshold sweep with independent capital per symbol (no overlays), parallel over symbols.

    Configuration ``c`` enters at ``p >= e_vals[e_idx[c]]`` and exits at
    ``p < x_vals[x_idx[c]]`` (distinct thresholds listed once). Each (configuration,
    symbol) column is the signal strategy run alone on that symbol with ``capital``: the
    same decisions, sizes, fill prices and cent-rounded commissions as the event engine
    (and the shared-cash kernel on a one-symbol universe). Rows of ``prob``/``close``/
    ``bid``/``ask`` are symbols (padded with NaN), indexed by the symbol's own bars;
    ``first``/``end`` are each symbol's first and last decision bar, where every
    position is flattened (``close_at_end``, which this kernel assumes). Returns
    ``(C, S, 5)``: final equity (the ledger's, bit-identical to the event engine's), round
    trips, fills, traded notional, commissions.

    Between fills nothing but the probability matters, so each symbol first gets, per
    distinct threshold, the next bar at or after every bar where the probability
    crosses it (one backward pass per threshold); a column then jumps from fill to fill
    and does arithmetic only where a fill happens. Results are those of the bar-by-bar
    :func:`independent_reference_nb` (tested equal).
    """
    n_c = e_idx.shape[0]
    n_s = prob.shape[0]
    n_e = e_vals.shape[0]
    n_x = x_vals.shape[0]
    out = np.zeros((n_c, n_s, 5))
    qty_back = 1e16 / qty_scale
    for s in prange(n_s):
        f0 = first[s]
        e_end = end[s]
        p = prob[s]
        nxt_e = np.empty((n_e, e_end + 1), dtype=np.int32)
        nxt_x = np.empty((n_x, e_end + 1), dtype=np.int32)
        for u in range(n_e):
            thr = e_vals[u]
            row = nxt_e[u]
            nx = e_end
            row[e_end] = e_end
            for t in range(e_end - 1, f0 - 1, -1):
                if p[t] >= thr:
                    nx = t
                row[t] = nx
        for u in range(n_x):
            thr = x_vals[u]
            row = nxt_x[u]
            nx = e_end
            row[e_end] = e_end
            for t in range(e_end - 1, f0 - 1, -1):
                if p[t] < thr:
                    nx = t
                row[t] = nx
        cl = close[s]
        bi = bid[s]
        ak = ask[s]
        # columns advance in lockstep, one round trip per column per round, so that the
        # columns' independent chains of divisions overlap in the CPU
        B = 16
        t_b = np.empty(B, dtype=np.int64)
        cash_b = np.empty(B)
        cum_b = np.empty(B)
        not_b = np.empty(B)
        cost_b = np.empty(B)
        openq_b = np.empty(B)
        tr_b = np.empty(B, dtype=np.int64)
        for c0 in range(0, n_c, B):
            nb = min(B, n_c - c0)
            for b in range(nb):
                t_b[b] = f0
                cash_b[b] = capital
                cum_b[b] = 0.0
                not_b[b] = 0.0
                cost_b[b] = 0.0
                openq_b[b] = 0.0
                tr_b[b] = 0
            active = nb
            while active > 0:
                for b in range(nb):
                    t = t_b[b]
                    if t >= e_end:
                        continue
                    t = nxt_e[e_idx[c0 + b]][t]
                    if t >= e_end:
                        t_b[b] = t
                        active -= 1
                        continue
                    cash = cash_b[b]
                    price = cl[t]
                    q = shares_for_nb(pos_size * cash, price, cash, cost_rate, qty_scale)
                    if q <= 0.0:
                        t_b[b] = t + 1
                        if t + 1 >= e_end:
                            active -= 1
                        continue
                    q = nt_round(q, qty_scale, qty_back)
                    px = ak[t]
                    fee = q * px * bps / 10_000.0 + q * per_share
                    if cmin > fee:
                        fee = cmin
                    comm = nt_round(fee, 100.0, 1e14)
                    nv = q * px
                    cash -= q * px + comm
                    cum = cum_b[b] + -(nv + comm)
                    notional = not_b[b] + nv
                    costs = cost_b[b] + comm
                    t = nxt_x[x_idx[c0 + b]][t + 1]  # the exit signal's bar, or the last decision bar
                    px = bi[t]
                    fee = q * px * bps / 10_000.0 + q * per_share
                    if cmin > fee:
                        fee = cmin
                    comm = nt_round(fee, 100.0, 1e14)
                    nv = q * px
                    cash -= -q * px + comm
                    if t == e_end and not end_counts:
                        openq_b[b] = q
                    else:
                        cum += -(-nv + comm)
                    cash_b[b] = cash
                    cum_b[b] = cum
                    not_b[b] = notional + nv
                    cost_b[b] = costs + comm
                    tr_b[b] += 1
                    t_b[b] = t + 1
                    if t + 1 >= e_end:
                        active -= 1
            for b in range(nb):
                o = out[c0 + b, s]
                cu = cum_b[b]
                o[0] = (capital + cu) + openq_b[b] * mark_last[s] if openq_b[b] != 0.0 else capital + cu
                o[1] = tr_b[b]
                o[2] = 2 * tr_b[b]
                o[3] = not_b[b]
                o[4] = cost_b[b]
    return out


@njit(cache=True, parallel=True)
def independent_reference_nb(
    entry: np.ndarray, exit_: np.ndarray, prob: np.ndarray, close: np.ndarray, bid: np.ndarray, ask: np.ndarray,
    first: np.ndarray, end: np.ndarray, end_counts: bool, mark_last: np.ndarray, capital: float, pos_size: float,
    cost_rate: float, bps: float, per_share: float, cmin: float, qty_scale: float,
) -> np.ndarray:
    """:func:`independent_nb` one column at a time (the plain sequential form it is tested against)."""
    n_c = entry.shape[0]
    n_s = prob.shape[0]
    out = np.zeros((n_c, n_s, 5))
    for c in prange(n_c):
        for s in range(n_s):
            _independent_column(
                entry[c], exit_[c], prob[s], close[s], bid[s], ask[s], first[s], end[s], end_counts, mark_last[s],
                capital, pos_size, cost_rate, bps, per_share, cmin, qty_scale, out[c, s],
            )
    return out
