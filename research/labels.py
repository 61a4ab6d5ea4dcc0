"""Training labels: :mod:`engine.stats.labels`, under research's name.

The definitions (``threshold`` and ``triple_barrier``, computed from future bars by
definition) live in the engine so that the backtest diagnosis rebuilds a card's label on
its window without the research extra.
"""

from __future__ import annotations

from engine.stats.labels import make_labels, threshold_labels, triple_barrier_labels

__all__ = ["make_labels", "threshold_labels", "triple_barrier_labels"]
