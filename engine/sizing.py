"""Position sizing shared by every strategy: how many shares a cash amount buys."""

from __future__ import annotations

import math


def floor_qty(qty: float, precision: int) -> float:
    """Round a quantity down to *precision* decimals (0 = whole shares)."""
    if qty <= 0:
        return 0.0
    scale = 10**precision
    return math.floor(qty * scale + 1e-9) / scale


def shares_for(value: float, price: float, cash: float, cost_rate: float, precision: int) -> float:
    """Shares worth *value* at *price*, capped so their cost plus fees fits in *cash*.

    ``cost_rate`` is the expected proportional cost of the fill (slippage + commission as
    fractions). A fill at a gapped price can still cost a little more than *cash*; the
    simulated cash account then shows the small negative balance instead of hiding it.
    """
    if price <= 0 or value <= 0 or cash <= 0:
        return 0.0
    affordable = cash / (price * (1.0 + cost_rate))
    return floor_qty(min(value / price, affordable), precision)
