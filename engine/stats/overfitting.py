"""The overfitting figures a parameter sweep reports, in one call.

:func:`overfitting_report` takes the sweep's ``(T, N)`` per-period returns (one column per
configuration) and gives: the number of configurations tried, the in-sample best, its
Deflated Sharpe Ratio (:mod:`engine.stats.sharpe`), the PBO by CSCV
(:mod:`engine.stats.pbo`) and, when a spec is given, the walk-forward result
(:mod:`engine.stats.walk_forward`). A figure that the data cannot support (PBO of a
single configuration, blocks with too few rows) is None with the reason in ``notes``,
so that a sweep always gets a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import DataError
from engine.stats.pbo import PBOResult, pbo_cscv
from engine.stats.scores import check_returns, sharpe_columns
from engine.stats.sharpe import DeflatedSharpe, deflated_sharpe_ratio
from engine.stats.walk_forward import WalkForwardResult, WalkForwardSpec, WindowMapper, walk_forward


@dataclass(frozen=True)
class OverfittingReport:
    """Overfitting statistics of one sweep (Sharpe figures per-period)."""

    n_trials: int
    best_config: Any
    best_sharpe: float
    dsr: DeflatedSharpe | None
    pbo: PBOResult | None
    walk_forward: WalkForwardResult | None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready headline figures."""
        out: dict[str, Any] = {
            "n_trials": self.n_trials,
            "best_config": self.best_config,
            "best_sharpe": self.best_sharpe,
            "dsr": None if self.dsr is None else self.dsr.to_dict(),
            "pbo": None if self.pbo is None else self.pbo.summary(),
            "walk_forward": None if self.walk_forward is None else self.walk_forward.summary,
            "notes": list(self.notes),
        }
        return out


def overfitting_report(
    perf: pd.DataFrame,
    *,
    n_blocks: int = 16,
    n_trials: int | None = None,
    walk_forward_spec: WalkForwardSpec | str | None = None,
    periods_per_year: float | None = None,
    map_windows: WindowMapper | None = None,
) -> OverfittingReport:
    """Overfitting statistics of choosing the best column (by per-period Sharpe) of *perf*.

    Parameters
    ----------
    perf
        ``(T, N)`` per-period returns, one column per configuration tried.
    n_blocks
        CSCV blocks ``S`` for the PBO.
    n_trials
        Number of configurations tried, if more than the columns given (default ``N``).
    walk_forward_spec
        E.g. ``"train=12M,test=3M"``; None skips the walk-forward.
    periods_per_year
        Adds annualised Sharpe ratios to the walk-forward summary.
    map_windows
        How the walk-forward windows run (see :func:`engine.stats.walk_forward.walk_forward`).
    """
    x = check_returns(perf.to_numpy(dtype=float), "perf")
    if x.ndim != 2 or x.shape[1] == 0 or x.shape[0] < 2:
        raise DataError(
            f"a sweep report needs >= 2 periods and >= 1 configuration, got shape {x.shape}"
        )
    sharpes = sharpe_columns(x)
    best = int(np.argmax(sharpes))
    notes: list[str] = []
    dsr = deflated_sharpe_ratio(x[:, best], sharpes, n_trials)
    pbo: PBOResult | None = None
    try:
        pbo = pbo_cscv(perf, n_blocks=n_blocks)
        if pbo.n_dropped:
            notes.append(f"PBO: {pbo.note}")
    except DataError as exc:
        notes.append(f"PBO not computed: {exc}")
    wf = None
    if walk_forward_spec is not None:
        wf = walk_forward(perf, walk_forward_spec, periods_per_year=periods_per_year, map_windows=map_windows)
    return OverfittingReport(
        n_trials=dsr.n_trials,
        best_config=perf.columns[best],
        best_sharpe=float(sharpes[best]),
        dsr=dsr,
        pbo=pbo,
        walk_forward=wf,
        notes=notes,
    )
