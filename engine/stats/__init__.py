"""Overfitting statistics for parameter sweeps: DSR, PBO (CSCV) and walk-forward selection.

Pure numpy/pandas and the standard library. All Sharpe ratios are per-period (not
annualised); kurtosis is non-excess (3 for normal returns). See each module's docstring
for exact definitions.
"""

from __future__ import annotations

from engine.stats.overfitting import OverfittingReport, overfitting_report
from engine.stats.pbo import PBOResult, pbo_cscv
from engine.stats.sharpe import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    higher_moments,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)
from engine.stats.walk_forward import (
    WalkForwardResult,
    WalkForwardSpec,
    parse_walk_forward,
    walk_forward,
    walk_forward_windows,
)

__all__ = [
    "DeflatedSharpe",
    "OverfittingReport",
    "PBOResult",
    "WalkForwardResult",
    "WalkForwardSpec",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "higher_moments",
    "overfitting_report",
    "parse_walk_forward",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "sharpe_ratio",
    "walk_forward",
    "walk_forward_windows",
]
