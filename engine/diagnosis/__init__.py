"""Why a run makes or loses money after costs: the Diagnosis of every backtest.

Seven sections, one module each, computed from the run's own books (sigtrade's equity
curve, fills and trades) and, where a figure needs the strategy re-simulated (other cost
levels, other slot counts, control portfolios), on the fast path (numba):

1. :mod:`~engine.diagnosis.costs` - gross vs net, costs per month and symbol, edge per round
   trip, the break-even cost curve (0 .. 50 bps per side);
2. :mod:`~engine.diagnosis.churn` - turnover, trades per session, holding periods, short trades, re-entries;
3. :mod:`~engine.diagnosis.signal_quality` - money per probability decile, monthly Spearman IC,
   the card's metrics on the window beside the trivial classifiers;
4. :mod:`~engine.diagnosis.controls` - benchmark, universe buy-and-hold, random N-name
   buy-and-holds, one slot per symbol;
5. :mod:`~engine.diagnosis.attribution` - P&L by symbol, side, exit reason, regime state; concentration;
6. :mod:`~engine.diagnosis.risk` - rolling Sharpe with its standard error, worst drawdowns, exposure;
7. :mod:`~engine.diagnosis.verdict` - a paragraph from stated rules.

:func:`diagnose` builds them (``sigtrade backtest --out`` calls it; ``sigtrade diagnose``
prints a saved one); :mod:`~engine.diagnosis.html` draws the report section. A section
that cannot be computed honestly for a strategy says ``"applies": false`` and why.
"""

from __future__ import annotations

from engine.diagnosis.build import SCHEMA_VERSION, SECTIONS, Diagnosis, diagnose
from engine.diagnosis.context import SignalInputs
from engine.diagnosis.holdings import Holding, universe_buy_and_hold

__all__ = ["SCHEMA_VERSION", "SECTIONS", "Diagnosis", "Holding", "SignalInputs", "diagnose", "universe_buy_and_hold"]
