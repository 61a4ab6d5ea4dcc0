"""The cost model: commission per fill (bps of notional + per share, with a minimum).

Slippage is not charged here: it is part of the fill price (see :mod:`engine.fills`),
so every market fill is moved adversely by ``slippage_bps`` of its reference price.
Commissions are rounded to the cent, as brokers charge them.
"""

from __future__ import annotations

from typing import Any

from nautilus_trader.backtest.config import FeeModelConfig
from nautilus_trader.backtest.models import FeeModel
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.objects import Money


class CommissionConfig(FeeModelConfig, frozen=True):
    """Commission schedule of :class:`CommissionModel`."""

    commission_bps: float = 10.0
    commission_per_share: float = 0.0
    commission_min: float = 0.0


def commission_for(qty: float, price: float, bps: float, per_share: float, minimum: float) -> float:
    """Commission in USD of one fill, before rounding to the cent."""
    return max(minimum, qty * price * bps / 10_000.0 + qty * per_share)


class CommissionModel(FeeModel):
    """NautilusTrader fee model: ``max(min, bps x notional + per_share x qty)`` per fill.

    Importable from configs as ``engine.costs:CommissionModel`` with a
    :class:`CommissionConfig`.
    """

    def __init__(self, config: CommissionConfig | None = None) -> None:
        cfg = config or CommissionConfig()
        self.bps = float(cfg.commission_bps)
        self.per_share = float(cfg.commission_per_share)
        self.minimum = float(cfg.commission_min)

    def get_commission(self, order: Any, fill_qty: Any, fill_px: Any, instrument: Any) -> Money:
        """Return the commission of one fill."""
        fee = commission_for(fill_qty.as_double(), fill_px.as_double(), self.bps, self.per_share, self.minimum)
        return Money(fee, USD)
