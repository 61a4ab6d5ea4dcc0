"""numba kernels of the RL environment: many single-position episodes stepped at once.

Pure functions on numpy arrays, ``cache=True``. Every fill, commission, size and stop is
computed by the shared helpers of :mod:`engine.sim.kernels_nb` (``fill_nb``,
``entry_qty_nb``, ``stop_exit_nb``), the very arithmetic the sweep kernel uses and that
tests/engine/test_parity_real.py pins to the event engine; this module only decides
*when* they run, following ``strategies/base.py`` and ``strategies/target.py`` for one
symbol with its own capital:

* at each decision bar ``k`` (before the agent acts, :func:`prepare_nb`): a held position
  counts one more bar and the forced exits are checked on the bar's high and low (stop
  loss, trailing stop, take profit, then the time stop); a flat one counts one more bar
  of cooldown;
* the agent's action (a target position, or trade / skip in gate mode) becomes at most
  one market order, refused as the base refuses it (an exit before ``min_hold_bars``, an
  entry within ``cooldown_bars``); a forced exit takes precedence;
* the order fills at the execution quote of bar ``k`` (bar k+1's open under
  ``next_open``, bar k's close under ``close``) at the ``Price`` the venue shows, with the
  cent-rounded commission;
* the ledger's equity is marked at bar k+1's close: ``(capital + cash flows) + position x
  close``, the additions of :func:`engine.ledger.mark_to_market`, bit for bit;
* the episode's last decision bar flattens the position (``close_at_end``); the final
  step's reward runs to the equity after that fill.

Reward of a step: ``log(equity_after / equity_before)`` minus ``turnover_penalty x
traded notional / equity_before`` minus ``drawdown_penalty x`` the increase of the
episode's drawdown.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.sim.kernels_nb import (
    R_END,
    R_SIGNAL,
    R_TIME,
    entry_qty_nb,
    fill_nb,
    stop_exit_nb,
)

# float parameters
P_CAPITAL, P_POS_SIZE, P_COST_RATE, P_BPS, P_PER_SHARE, P_CMIN, P_SL, P_TP, P_TRAIL = range(9)
P_TURN_PEN, P_DD_PEN, P_QTY_SCALE, P_ENTRY, P_EXIT = range(9, 14)
N_FP = 14
# int parameters
I_MAX_HOLD, I_MIN_HOLD, I_COOLDOWN, I_GATE, I_SHORT, I_LOOKBACK = range(6)
N_IP = 6
# per-episode float state
S_POS, S_CASH, S_CUM, S_ENTRY, S_EXTREME, S_EQ, S_PEAK = range(7)
N_SF = 7
# per-episode int state
J_ROW, J_LAST, J_END, J_HELD, J_FLAT, J_FORCED = range(6)
N_SI = 6
# per-step info
INFO_GROSS, INFO_COMMISSION, INFO_SLIPPAGE, INFO_TURNOVER, INFO_EQUITY, INFO_TERMINAL, INFO_NOTIONAL = range(7)
N_INFO = 7
# fill log of a step (at most two fills: the agent's order and the end-of-episode flatten)
F_ROW, F_SIDE, F_QTY, F_PRICE, F_COMMISSION, F_REASON = range(6)
N_FILL = 6

# state features after the feature window: (x - offset) x scale, clipped to +-clip
STATE_NAMES = ("position", "unrealised_return", "bars_held", "probability")
STATE_OFFSET = np.array([0.0, 0.0, 0.0, 0.5])
STATE_SCALE = np.array([1.0, 20.0, 0.01, 4.0])
STATE_CLIP = np.array([1.0, 5.0, 5.0, 2.0])
NEVER = 1_000_000_000
# per-bar quotes, one row a bar (8 float64: one cache line): the Market arrays a step reads
BAR_FIELDS = ("close", "high", "low", "mark", "bid", "ask", "ref", "prob")
B_CLOSE, B_HIGH, B_LOW, B_MARK, B_BID, B_ASK, B_REF, B_PROB = range(8)
N_BAR = 8


@njit(cache=True, inline="always", _nrt=False)
def prepare_nb(
    i: int, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray, bars: np.ndarray
) -> None:
    """Bar counters and forced exits at episode *i*'s decision bar, before the agent acts."""
    k = si[i, J_ROW]
    si[i, J_FORCED] = 0
    p0 = sf[i, S_POS]
    if p0 != 0.0:
        si[i, J_HELD] += 1
        reason = 0
        if fp[P_SL] > 0.0 or fp[P_TP] > 0.0 or fp[P_TRAIL] > 0.0:
            reason, sf[i, S_EXTREME] = stop_exit_nb(
                p0, bars[k, B_HIGH], bars[k, B_LOW], sf[i, S_ENTRY], sf[i, S_EXTREME], fp[P_SL], fp[P_TP], fp[P_TRAIL]
            )
        if reason == 0 and ip[I_MAX_HOLD] > 0 and si[i, J_HELD] >= ip[I_MAX_HOLD]:
            reason = R_TIME
        si[i, J_FORCED] = reason
    else:
        si[i, J_FLAT] += 1


@njit(cache=True, inline="always", _nrt=False)
def _state_nb(x: float, u: int) -> float:
    """State feature *u* normalised: ``(x - STATE_OFFSET[u]) x STATE_SCALE[u]``, clipped to ``+-STATE_CLIP[u]``."""
    v = (x - STATE_OFFSET[u]) * STATE_SCALE[u]
    lim = STATE_CLIP[u]
    if v > lim:
        return lim
    if v < -lim:
        return -lim
    return v


@njit(cache=True, inline="always", _nrt=False)
def observe_nb(
    i: int, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray,
    flat: np.ndarray, n_feat: int, bars: np.ndarray, obs: np.ndarray, mask: np.ndarray,
) -> None:
    """Write episode *i*'s observation (feature window, then the state) and action mask.

    *flat* is the ``(rows, n_feat)`` feature matrix as one C-contiguous vector: the window
    of rows ``k - lookback + 1 .. k`` is one contiguous block of it, copied by one plain
    loop (which LLVM turns into a vectorised copy; numba's slice assignment is ~4x slower).
    """
    k = si[i, J_ROW]
    lookback = ip[I_LOOKBACK]
    o = obs[i]
    c = lookback * n_feat
    src = flat[(k - lookback + 1) * n_feat : (k + 1) * n_feat]
    for u in range(c):
        o[u] = src[u]
    p0 = sf[i, S_POS]
    side = 1.0 if p0 > 0.0 else (-1.0 if p0 < 0.0 else 0.0)
    unreal = side * (bars[k, B_CLOSE] / sf[i, S_ENTRY] - 1.0) if p0 != 0.0 else 0.0
    held = float(si[i, J_HELD]) if p0 != 0.0 else 0.0
    gate = ip[I_GATE] == 1
    o[c] = _state_nb(side, 0)
    o[c + 1] = _state_nb(unreal, 1)
    o[c + 2] = _state_nb(held, 2)
    if gate:
        o[c + 3] = _state_nb(bars[k, B_PROB], 3)
    m = mask[i]
    for a in range(m.shape[0]):
        m[a] = True
    if si[i, J_FORCED] != 0:
        return  # the forced exit overrides any action
    can_enter = si[i, J_FLAT] > ip[I_COOLDOWN]
    can_exit = si[i, J_HELD] >= ip[I_MIN_HOLD]
    if gate:
        p = bars[k, B_PROB]
        m[1] = p0 == 0.0 and can_enter and not math.isnan(p) and p >= fp[P_ENTRY]
        return
    if p0 == 0.0:
        m[1] = can_enter
        if m.shape[0] > 2:
            m[2] = can_enter
    elif p0 > 0.0:
        m[0] = can_exit
        if m.shape[0] > 2:
            m[2] = can_exit
    else:
        m[0] = can_exit
        m[1] = can_exit


@njit(cache=True, inline="always", _nrt=False)
def _order(i: int, a: int, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray,
           bars: np.ndarray) -> tuple[float, float, int]:
    """The market order (side, quantity, reason code; side 0 = none) of action *a* at the decision bar."""
    k = si[i, J_ROW]
    p0 = sf[i, S_POS]
    forced = si[i, J_FORCED]
    if forced != 0:
        return (-1.0 if p0 > 0.0 else 1.0), abs(p0), forced
    if ip[I_GATE] == 1:
        p = bars[k, B_PROB]
        if math.isnan(p):
            return 0.0, 0.0, 0
        if p0 > 0.0:
            if p < fp[P_EXIT] and si[i, J_HELD] >= ip[I_MIN_HOLD]:
                return -1.0, p0, R_SIGNAL
            return 0.0, 0.0, 0
        target = 1 if (a == 1 and p >= fp[P_ENTRY]) else 0
    else:
        target = 0 if a == 0 else (1 if a == 1 else -1)
    if p0 != 0.0:
        if (p0 > 0.0 and target != 1) or (p0 < 0.0 and target != -1):
            if si[i, J_HELD] >= ip[I_MIN_HOLD]:
                return (-1.0 if p0 > 0.0 else 1.0), abs(p0), R_SIGNAL
        return 0.0, 0.0, 0
    if target == 0 or (target == -1 and ip[I_SHORT] == 0):
        return 0.0, 0.0, 0
    if not si[i, J_FLAT] > ip[I_COOLDOWN]:
        return 0.0, 0.0, 0
    side = 1.0 if target == 1 else -1.0
    eq = sf[i, S_CASH] + 0.0  # the books' equity of a flat position: cash + no position value
    value = fp[P_POS_SIZE] * eq
    q = entry_qty_nb(side, value, bars[k, B_CLOSE], sf[i, S_CASH], fp[P_COST_RATE], fp[P_QTY_SCALE])
    if q <= 0.0:
        return 0.0, 0.0, 0
    return side, q, 0


@njit(cache=True, inline="always", _nrt=False)
def _fill(i: int, k: int, sgn: float, qty: float, reason: int, fp: np.ndarray, sf: np.ndarray, si: np.ndarray,
          bars: np.ndarray, info: np.ndarray, fills: np.ndarray,
          n_fills: np.ndarray) -> None:
    """Fill one market order at bar *k*'s execution quote; update the books, the ledger and the step's info."""
    scale = fp[P_QTY_SCALE]
    px = bars[k, B_ASK] if sgn > 0.0 else bars[k, B_BID]
    q, comm = fill_nb(qty, px, fp[P_BPS], fp[P_PER_SHARE], fp[P_CMIN], scale, 1e16 / scale)
    signed = sgn * q
    before = sf[i, S_POS]
    sf[i, S_POS] = before + signed
    sf[i, S_CASH] -= signed * px + comm
    if before == 0.0 and sf[i, S_POS] != 0.0:
        sf[i, S_ENTRY] = px
        sf[i, S_EXTREME] = px
        si[i, J_HELD] = 0
    elif sf[i, S_POS] == 0.0:
        si[i, J_FLAT] = 0
    nv = q * px
    sf[i, S_CUM] += -(sgn * nv + comm)
    info[i, INFO_COMMISSION] += comm
    info[i, INFO_SLIPPAGE] += q * abs(px - bars[k, B_REF])
    info[i, INFO_NOTIONAL] += nv
    n = n_fills[i]
    if n < fills.shape[1]:
        f = fills[i, n]
        f[F_ROW] = k
        f[F_SIDE] = sgn
        f[F_QTY] = q
        f[F_PRICE] = px
        f[F_COMMISSION] = comm
        f[F_REASON] = reason
    n_fills[i] = n + 1


@njit(cache=True, _nrt=False)  # not inlined: one compilation serves reset_nb and redraw_nb
def _start_nb(
    i: int, start: int, end: int, next_open: bool, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray,
    flat: np.ndarray, n_feat: int, bars: np.ndarray, obs: np.ndarray, mask: np.ndarray,
) -> None:
    """Start episode *i* on rows ``start .. end`` (flat, full capital) and observe it."""
    si[i, J_ROW] = start
    si[i, J_END] = end
    si[i, J_LAST] = end - 1 if next_open else end
    si[i, J_HELD] = 0
    si[i, J_FLAT] = NEVER
    si[i, J_FORCED] = 0
    sf[i, S_POS] = 0.0
    sf[i, S_CASH] = fp[P_CAPITAL]
    sf[i, S_CUM] = 0.0
    sf[i, S_ENTRY] = 0.0
    sf[i, S_EXTREME] = 0.0
    sf[i, S_EQ] = fp[P_CAPITAL]
    sf[i, S_PEAK] = fp[P_CAPITAL]
    prepare_nb(i, fp, ip, sf, si, bars)
    observe_nb(i, fp, ip, sf, si, flat, n_feat, bars, obs, mask)


@njit(cache=True, _nrt=False)
def reset_nb(
    idx: np.ndarray, start: np.ndarray, end: np.ndarray, next_open: bool,
    fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray,
    features: np.ndarray, bars: np.ndarray, obs: np.ndarray, mask: np.ndarray,
) -> None:
    """Start episodes ``idx[j]`` on rows ``start[j] .. end[j]`` (flat, full capital) and observe them."""
    flat = features.reshape(-1)
    n_feat = features.shape[1]
    for j in range(idx.shape[0]):
        _start_nb(idx[j], start[j], end[j], next_open, fp, ip, sf, si, flat, n_feat, bars, obs, mask)


@njit(cache=True, inline="always", _nrt=False)
def _draw_one_nb(
    u_pick: float, u_start: float, first: np.ndarray, last: np.ndarray, cdf: np.ndarray, length: int
) -> tuple[int, int]:
    """The episode (start, end rows) the uniforms *u_pick*, *u_start* draw.

    The segment is ``searchsorted(cdf, u_pick, side="right")``, what
    ``Generator.choice(p=...)`` computes from its uniforms; the start is uniform over the
    segment's bars that leave ``length`` bars (or is the segment's first bar), the end
    ``length - 1`` bars later or the segment's last bar: numpy's float and int arithmetic
    of the same expressions, so the draws are bit for bit a numpy version's.
    """
    lo, hi = 0, cdf.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf[mid] <= u_pick:
            lo = mid + 1
        else:
            hi = mid
    f, la = first[lo], last[lo]
    latest = max(f, la - length + 1)
    s = min(f + np.int64(u_start * (latest - f + 1)), latest)
    return s, min(s + length - 1, la)


@njit(cache=True, _nrt=False)
def draw_nb(
    u_pick: np.ndarray, u_start: np.ndarray, first: np.ndarray, last: np.ndarray, cdf: np.ndarray, length: int,
    start: np.ndarray, end: np.ndarray,
) -> None:
    """Episodes ``start[j] .. end[j]`` drawn with the uniforms ``u_pick[j]``, ``u_start[j]`` (:func:`_draw_one_nb`)."""
    for j in range(u_pick.shape[0]):
        start[j], end[j] = _draw_one_nb(u_pick[j], u_start[j], first, last, cdf, length)


@njit(cache=True, _nrt=False)
def redraw_nb(
    idx: np.ndarray, u_pick: np.ndarray, u_start: np.ndarray, first: np.ndarray, last: np.ndarray, cdf: np.ndarray,
    length: int, episode_start: np.ndarray, next_open: bool, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray,
    si: np.ndarray, features: np.ndarray, bars: np.ndarray, obs: np.ndarray, mask: np.ndarray,
) -> None:
    """Draw new episodes for the slots ``idx`` and start them: :func:`draw_nb` and :func:`reset_nb` in one call."""
    flat = features.reshape(-1)
    n_feat = features.shape[1]
    for j in range(idx.shape[0]):
        i = idx[j]
        s, e = _draw_one_nb(u_pick[j], u_start[j], first, last, cdf, length)
        episode_start[i] = s
        _start_nb(i, s, e, next_open, fp, ip, sf, si, flat, n_feat, bars, obs, mask)


@njit(cache=True, inline="always", _nrt=False)
def _copy_row_nb(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[:] = src`` as one plain loop (vectorised by LLVM)."""
    for u in range(dst.shape[0]):
        dst[u] = src[u]


@njit(cache=True, inline="always", _nrt=False)
def step_one_nb(
    i: int, a: int, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray,
    flat: np.ndarray, n_feat: int, bars: np.ndarray, prev: np.ndarray, obs: np.ndarray, mask: np.ndarray,
    reward: np.ndarray, done: np.ndarray, info: np.ndarray,
    fills: np.ndarray, n_fills: np.ndarray,
) -> None:
    """One step of episode *i* with action *a*: act at the decision bar, fill, mark at the next close, observe.

    Everything the step returns is written in place, in the same pass: reward, done,
    info, fills, the action mask and ``obs[i]``: the next observation or, for an episode
    that finished, its last one (``prev[i]``). A few shortcuts skip arithmetic whose
    result is known exactly (``log(1) = 0``, ``0 / x = 0``, a zero drawdown penalty).
    """
    capital = fp[P_CAPITAL]
    for u in range(N_INFO):
        info[i, u] = 0.0
    n_fills[i] = 0
    k = si[i, J_ROW]
    eq0 = sf[i, S_EQ]
    sgn, qty, reason = _order(i, a, fp, ip, sf, si, bars)
    if sgn != 0.0:
        _fill(i, k, sgn, qty, reason, fp, sf, si, bars, info, fills, n_fills)
    j = k + 1
    eq = (capital + sf[i, S_CUM]) + sf[i, S_POS] * bars[j, B_MARK]
    info[i, INFO_EQUITY] = eq
    finished = j >= si[i, J_LAST]
    if finished:
        p0 = sf[i, S_POS]
        if p0 != 0.0:
            _fill(i, si[i, J_LAST], -1.0 if p0 > 0.0 else 1.0, abs(p0), R_END, fp, sf, si, bars, info, fills,
                  n_fills)
        eq = (capital + sf[i, S_CUM]) + 0.0
        info[i, INFO_TERMINAL] = eq
    if eq > 0.0 and eq0 > 0.0:
        r = 0.0 if eq == eq0 else math.log(eq / eq0)
    else:
        r = -50.0
    notional = info[i, INFO_NOTIONAL]
    turnover = notional / eq0 if eq0 > 0.0 and notional != 0.0 else 0.0
    r -= fp[P_TURN_PEN] * turnover
    peak = sf[i, S_PEAK]
    dd_pen = fp[P_DD_PEN]
    if dd_pen != 0.0:
        dd0 = 1.0 - eq0 / peak
        if eq > peak:
            peak = eq
        dd1 = 1.0 - eq / peak
        if dd1 > dd0:
            r -= dd_pen * (dd1 - dd0)
    elif eq > peak:
        peak = eq
    sf[i, S_PEAK] = peak
    sf[i, S_EQ] = eq
    reward[i] = r
    info[i, INFO_TURNOVER] = turnover
    info[i, INFO_GROSS] = (eq - eq0) + info[i, INFO_COMMISSION] + info[i, INFO_SLIPPAGE]
    done[i] = finished
    if finished:
        _copy_row_nb(obs[i], prev[i])
    else:
        si[i, J_ROW] = j
        prepare_nb(i, fp, ip, sf, si, bars)
        observe_nb(i, fp, ip, sf, si, flat, n_feat, bars, obs, mask)


@njit(cache=True, _nrt=False)
def step_range_nb(
    lo: int, hi: int, actions: np.ndarray, active: np.ndarray, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray,
    si: np.ndarray, features: np.ndarray, bars: np.ndarray, prev: np.ndarray, obs: np.ndarray, mask: np.ndarray,
    reward: np.ndarray, done: np.ndarray, info: np.ndarray,
    fills: np.ndarray, n_fills: np.ndarray,
) -> int:
    """:func:`step_one_nb` for episodes ``lo .. hi - 1`` in order, on the calling thread; returns how many finished.

    An inactive episode keeps its row of *prev* and is not done.
    """
    flat = features.reshape(-1)
    n_feat = features.shape[1]
    finished = 0
    for i in range(lo, hi):
        if active[i]:
            step_one_nb(i, actions[i], fp, ip, sf, si, flat, n_feat, bars, prev, obs, mask, reward, done, info,
                        fills, n_fills)
            finished += done[i]
        else:
            done[i] = False
            _copy_row_nb(obs[i], prev[i])
    return finished


@njit(cache=True, _nrt=False)
def step_nb(
    actions: np.ndarray, active: np.ndarray, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray, si: np.ndarray,
    features: np.ndarray, bars: np.ndarray, prev: np.ndarray, obs: np.ndarray, mask: np.ndarray, reward: np.ndarray,
    done: np.ndarray, info: np.ndarray,
    fills: np.ndarray, n_fills: np.ndarray,
) -> int:
    """One step of every active episode (:func:`step_one_nb`), on the calling thread; returns how many finished.

    The observations after the step go to *obs* (every row written); *prev* holds the
    ones before it (it may be *obs* itself). A finished or inactive episode keeps its
    last observation; the caller resets a finished one or marks it inactive (inactive
    episodes are not stepped, and not done).
    """
    lo = np.int64(0)  # not the literal 0: step_parallel_nb's call then shares this compilation
    return step_range_nb(lo, actions.shape[0], actions, active, fp, ip, sf, si, features, bars, prev, obs, mask,
                         reward, done, info, fills, n_fills)


@njit(cache=True, parallel=True, _nrt=False)
def step_parallel_nb(
    bounds: np.ndarray, finished: np.ndarray, actions: np.ndarray, active: np.ndarray, fp: np.ndarray, ip: np.ndarray, sf: np.ndarray,
    si: np.ndarray, features: np.ndarray, bars: np.ndarray, prev: np.ndarray, obs: np.ndarray, mask: np.ndarray,
    reward: np.ndarray, done: np.ndarray, info: np.ndarray,
    fills: np.ndarray, n_fills: np.ndarray,
) -> int:
    """:func:`step_nb` with the episodes split in chunks ``bounds[c] .. bounds[c + 1] - 1``, one task each.

    Episodes are independent and each writes only its own rows, so the result is the
    serial one bit for bit, whatever the thread count. Nothing is allocated and no
    reference count is touched (``_nrt=False``: with numba's reference counting on, every
    array view increments the shared parent's count atomically, and two threads fight
    over that cache line); chunks cut on multiples of 64 episodes keep the threads off
    each other's cache lines. The loop body is one call, so the parallel compile is quick.
    ``finished[c]`` receives chunk ``c``'s count of finished episodes (their sum is returned).
    """
    for c in prange(bounds.shape[0] - 1):
        finished[c] = step_range_nb(bounds[c], bounds[c + 1], actions, active, fp, ip, sf, si, features, bars, prev,
                                    obs, mask, reward, done, info, fills, n_fills)
    total = 0
    for c in range(bounds.shape[0] - 1):
        total += finished[c]
    return total
