"""The fast path's prices are NautilusTrader's: numpy rounding vs the wrangler's ``Price`` objects, bit for bit.

``engine.catalog.price_values`` replaces ``QuoteTick`` construction in the fast path (every
slippage level of a sweep or a cost curve); the event engine fills at the wrangler's
prices, so the two must be the same float64 values - checked here on every real bar and
execution quote of five symbols at eight slippage levels, and on halves and negatives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.objects import Price

from engine import catalog as cat
from engine.config import load_config
from engine.fills import execution_quotes
from engine.runner import _quote_ticks, load_window
from engine.sim.fastpath import FastPath
from tests.engine.conftest import OVERLAY_SYMBOLS


def test_price_values_round_like_nautilus_trader() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.uniform(0.01, 2000.0, 20_000), np.array([0.0000005, 1.0000005, 2.5e-7, 123.4565, 99.9999995]),
        -rng.uniform(0.01, 50.0, 1000), np.round(rng.uniform(1, 500, 2000), 6),
    ])
    for precision in (2, 6):
        expected = np.array([Price(float(v), precision).as_double() for v in x])
        np.testing.assert_array_equal(cat.price_values(x, precision), expected)


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_fast_path_quotes_equal_the_event_engine_quote_ticks(overlay_catalog: Path, fill: str) -> None:
    cfg = load_config(None, [f'data.catalog="{overlay_catalog}"', f"data.symbols={json.dumps(OVERLAY_SYMBOLS)}",
                             "data.start=2023-06-01", "data.end=2024-06-28", f'execution.fill="{fill}"'])
    window, full, history = load_window(overlay_catalog, OVERLAY_SYMBOLS, "1-HOUR", cfg.data.start, cfg.data.end, 0)
    fast = FastPath(cfg, window, full, history, {s: pd.Series(0.0, index=f.index) for s, f in full.items()}, None)
    for bps in (0.0, 0.37, 1.0, 2.5, 5.0, 7.123, 33.3, 50.0):
        bid, ask = fast.quotes(bps)
        for j, s in enumerate(OVERLAY_SYMBOLS):
            q = execution_quotes(full[s], fill, 60, bps)
            ticks = _quote_ticks(cat.make_instrument(s), q.index, q["bid"].to_numpy(), q["ask"].to_numpy())
            k = np.searchsorted(fast.ts, q["decision_ts"].to_numpy(dtype=np.int64))
            np.testing.assert_array_equal(bid[k, j], [t.bid_price.as_double() for t in ticks])
            np.testing.assert_array_equal(ask[k, j], [t.ask_price.as_double() for t in ticks])
            assert np.isnan(np.delete(bid[:, j], k)).all()  # no quote where the symbol has no decision bar
