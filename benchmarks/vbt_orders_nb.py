"""numba callback for vectorbt's ``Portfolio.from_order_func`` in benchmarks/sweep.py.

It expresses sigtrade's whole execution model in vectorbt so that both simulate the
same thing: decide on bar t's close; buy
``floor(min(position_size x cash / close_t, cash / (close_t x (1 + cost_rate))))`` whole
shares at sigtrade's execution quote for that decision (bar t+1's open plus slippage,
as a NautilusTrader ``Price``); sell everything at the bid when the probability falls
below the exit threshold or on the last decision bar; and charge sigtrade's commission
(bps of notional, rounded to the cent half away from zero as NautilusTrader's ``Money``
does) as vectorbt's fixed fee of the order. Benchmark-only: vectorbt is not a sigtrade
dependency.
"""

from __future__ import annotations

import math

from numba import njit
from vectorbt.portfolio import nb as vnb


@njit(cache=True)
def _cents(x):  # type: ignore[no-untyped-def]
    v = x * 100.0
    r = math.floor(abs(v) + 0.5)
    if v < 0.0:
        r = -r
    return (r * 1e14) / 1e16


@njit(cache=True)
def sigtrade_order_nb(c, prob, close, bid, ask, e_col, x_col, end, n_sym, pos_size, cost_rate, bps):  # type: ignore[no-untyped-def]
    """Order of column ``c.col`` (= config x n_sym + symbol) at row ``c.i`` (rows are each symbol's bars)."""
    d = c.i - 1  # the decision bar: this row's open fills the previous bar's decision
    if d < 0:
        return vnb.NoOrder
    s = c.col % n_sym
    k = c.col // n_sym
    last = end[s]
    if d > last:
        return vnb.NoOrder
    p = prob[d, s]
    if c.position_now == 0.0:
        if d >= last or not p >= e_col[k]:
            return vnb.NoOrder
        px = close[d, s]
        cash = c.cash_now
        q = pos_size * cash / px
        affordable = cash / (px * (1.0 + cost_rate))
        if affordable < q:
            q = affordable
        q = math.floor(q + 1e-9)
        if q <= 0.0:
            return vnb.NoOrder
        fill = ask[d, s]
        return vnb.order_nb(size=q, price=fill, fixed_fees=_cents(q * fill * bps / 10_000.0))
    if d == last or p < x_col[k]:
        q = c.position_now
        fill = bid[d, s]
        return vnb.order_nb(size=-q, price=fill, fixed_fees=_cents(q * fill * bps / 10_000.0))
    return vnb.NoOrder
