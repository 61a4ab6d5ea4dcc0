"""Probability of Backtest Overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, Lopez de Prado & Zhu (2015), "The Probability of Backtest Overfitting".
Given a ``(T, N)`` matrix of per-period returns of ``N`` configurations:

1. The first ``S * (T // S)`` rows are cut into ``S`` equal contiguous blocks; the last
   ``T % S`` rows are **dropped** (reported as ``n_dropped``).
2. For each of the ``C(S, S/2)`` ways to pick ``S/2`` blocks as in-sample (IS), in the
   lexicographic order of :func:`itertools.combinations` (split ``i``'s complement is
   split ``C - 1 - i``), the other blocks are out-of-sample (OOS). Blocks keep their
   time order when concatenated.
3. ``n*`` = the configuration with the highest IS metric (the lowest index on ties).
4. ``rank`` = rank of ``n*``'s OOS metric among all ``N`` OOS metrics, 1 = worst,
   ``N`` = best; **ties take the average rank** (three configurations tied for ranks
   4, 5, 6 all get 5). ``w = rank / (N + 1)``, logit ``lambda = ln(w / (1 - w))``.
5. ``PBO`` = share of splits with ``lambda <= 0``: how often the in-sample winner is at
   or below the OOS median.

Also reported ("performance degradation"): the OLS line ``OOS = a + b * IS`` through the
chosen configuration's (IS, OOS) metric pairs, and ``prob_oos_loss``, the share of splits
where the chosen configuration's OOS metric is below 0.

Metrics: see :mod:`engine.stats.scores`. ``sharpe`` (per-period, 0.0 for a constant
sample), ``mean`` and ``total_return`` run on per-block sums combined per split (a few
matrix products); a callable metric is applied to every split's rows (slow: one call
per split and half).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError
from engine.stats.scores import Score, ScoreFn, apply_score, check_returns, resolve_score

FAST_METRICS = ("sharpe", "mean", "total_return")


MAX_BLOCKS = 24
"""Most CSCV blocks: C(24, 12) = 2.7 million splits already."""


def block_combinations(n_blocks: int) -> np.ndarray:
    """IS block indices of every CSCV split, shape ``(C(S, S/2), S/2)``, lexicographic."""
    return np.array(list(itertools.combinations(range(n_blocks), n_blocks // 2)), dtype=np.intp)


@dataclass(frozen=True)
class PBOResult:
    """Outcome of :func:`pbo_cscv`. Arrays have one entry per split (``n_combinations``).

    Attributes
    ----------
    pbo : share of splits whose logit is <= 0.
    logits : ``lambda`` per split.
    relative_ranks : ``w = rank / (N + 1)`` per split.
    chosen : column index of the IS-best configuration per split.
    is_metric, oos_metric : the chosen configuration's IS and OOS metric per split.
    n_combinations, n_blocks, block_size : ``C(S, S/2)``, ``S``, rows per block.
    n_periods : rows given; ``n_dropped`` of them (the last) were not used.
    n_configs : ``N``.
    metric : name of the metric.
    degradation_slope, degradation_intercept : OLS of OOS on IS metric of the chosen
        configuration; None when the IS metric does not vary across splits.
    prob_oos_loss : share of splits with ``oos_metric < 0``.
    labels : column labels when a DataFrame was given.
    """

    pbo: float
    logits: np.ndarray = field(repr=False)
    relative_ranks: np.ndarray = field(repr=False)
    chosen: np.ndarray = field(repr=False)
    is_metric: np.ndarray = field(repr=False)
    oos_metric: np.ndarray = field(repr=False)
    n_combinations: int
    n_blocks: int
    block_size: int
    n_periods: int
    n_dropped: int
    n_configs: int
    metric: str
    degradation_slope: float | None
    degradation_intercept: float | None
    prob_oos_loss: float
    labels: tuple[Any, ...] | None = field(default=None, repr=False)

    @property
    def note(self) -> str:
        """One line on how the rows were used."""
        used = self.n_blocks * self.block_size
        text = f"{self.n_blocks} blocks of {self.block_size} rows ({used} of {self.n_periods} rows)"
        if self.n_dropped:
            text += f"; the last {self.n_dropped} row(s) were dropped to make blocks equal"
        return text

    def summary(self) -> dict[str, Any]:
        """JSON-ready headline figures."""
        return {
            "pbo": self.pbo,
            "n_combinations": self.n_combinations,
            "n_blocks": self.n_blocks,
            "block_size": self.block_size,
            "n_periods": self.n_periods,
            "n_dropped": self.n_dropped,
            "n_configs": self.n_configs,
            "metric": self.metric,
            "logit_median": float(np.median(self.logits)),
            "degradation_slope": self.degradation_slope,
            "degradation_intercept": self.degradation_intercept,
            "prob_oos_loss": self.prob_oos_loss,
            "note": self.note,
        }


def _validate(perf: np.ndarray | pd.DataFrame, n_blocks: int) -> tuple[np.ndarray, tuple[Any, ...] | None]:
    labels = tuple(perf.columns) if isinstance(perf, pd.DataFrame) else None
    x = check_returns(np.asarray(perf, dtype=float), "perf")
    if x.ndim != 2:
        raise DataError(f"perf must be a (T periods, N configurations) matrix, got shape {x.shape}")
    if isinstance(n_blocks, bool) or int(n_blocks) != n_blocks or not 2 <= n_blocks <= MAX_BLOCKS or n_blocks % 2:
        raise ConfigError(
            f"n_blocks (--pbo-blocks) must be an even integer from 2 to {MAX_BLOCKS} (16 is the usual choice; "
            f"C(S, S/2) splits grow fast), got {n_blocks!r}"
        )
    t, n = x.shape
    if n < 2:
        raise DataError(f"PBO compares configurations: need at least 2 columns, found {n}")
    if t // n_blocks < 1 or (n_blocks // 2) * (t // n_blocks) < 2:
        raise DataError(
            f"{t} rows cannot fill {n_blocks} blocks with at least 2 in-sample rows; "
            "use fewer blocks or a longer sample"
        )
    return x, labels


def _ols(xv: np.ndarray, yv: np.ndarray) -> tuple[float | None, float | None]:
    if xv.shape[0] < 2 or float(np.ptp(xv)) == 0.0:
        return None, None
    xm, ym = xv.mean(), yv.mean()
    slope = float(np.sum((xv - xm) * (yv - ym)) / np.sum((xv - xm) ** 2))
    return slope, float(ym - slope * xm)


def _sharpe_from_sums(
    s: np.ndarray, q: np.ndarray, m: int, c0: np.ndarray, constant: np.ndarray | None
) -> np.ndarray:
    """Sharpe of a split from sums ``s`` and sums of squares ``q`` of centred returns."""
    mean = s / m + c0
    var = (q - s * s / m) / (m - 1)
    ok = var > 0.0
    if constant is not None:
        ok &= ~constant
    out = np.zeros_like(mean)
    np.divide(mean, np.sqrt(np.where(ok, var, 1.0)), out=out, where=ok)
    return out


def _block_metric_fn(
    xb: np.ndarray, x: np.ndarray, name: str, fn: ScoreFn, builtin: bool
) -> Callable[[np.ndarray, int], np.ndarray]:
    """Return ``f(block_sets (k, S/2), m) -> (k, N)``: the metric on each set of blocks."""
    n_blocks, _, n = xb.shape
    fast = builtin and name in FAST_METRICS
    if fast and name == "total_return" and (xb <= -1.0).any():
        fast = False  # log1p undefined after a -100 % period: use the direct product

    if not fast:
        def direct(sets: np.ndarray, m: int) -> np.ndarray:
            return np.stack([apply_score(fn, xb[b].reshape(m, n)) for b in sets])

        return direct

    def membership(sets: np.ndarray) -> np.ndarray:
        mem = np.zeros((sets.shape[0], n_blocks))
        mem[np.arange(sets.shape[0])[:, None], sets] = 1.0
        return mem

    if name != "sharpe":
        s = np.log1p(xb).sum(axis=1) if name == "total_return" else xb.sum(axis=1)

        def summed(sets: np.ndarray, m: int) -> np.ndarray:
            total = membership(sets) @ s
            return np.expm1(total) if name == "total_return" else total / m

        return summed

    # Sharpe: sums and sums of squares of returns centred on each column's mean (keeps
    # the variance accurate), plus block min / max to spot constant samples exactly.
    c0 = x.mean(axis=0)
    xc = xb - c0
    s = xc.sum(axis=1)
    q = np.einsum("bln,bln->bn", xc, xc)
    bmin, bmax = xb.min(axis=1), xb.max(axis=1)
    cand = np.flatnonzero((bmin == bmax).any(axis=0))  # only these can be constant
    bmin, bmax = bmin[:, cand], bmax[:, cand]

    def sharpe(sets: np.ndarray, m: int) -> np.ndarray:
        mem = membership(sets)
        constant = None
        if cand.size:
            constant = np.zeros((sets.shape[0], n), dtype=bool)
            constant[:, cand] = bmax[sets].max(axis=1) == bmin[sets].min(axis=1)
        return _sharpe_from_sums(mem @ s, mem @ q, m, c0, constant)

    return sharpe


def pbo_cscv(
    perf: np.ndarray | pd.DataFrame,
    n_blocks: int = 16,
    metric: Score = "sharpe",
    *,
    chunk_size: int = 1024,
) -> PBOResult:
    """Probability of Backtest Overfitting of choosing the best of ``N`` configurations.

    Parameters
    ----------
    perf
        ``(T, N)`` per-period returns, one column per configuration (array or DataFrame),
        finite, in time order.
    n_blocks
        ``S``, even; 16 gives 12,870 splits.
    metric
        ``"sharpe"`` (per-period), ``"mean"``, ``"total_return"`` or a callable
        ``(m, N) -> (N,)``.
    chunk_size
        Splits evaluated per vectorised step (bounds memory at ~``8 * chunk_size * N``
        bytes per array).

    Returns
    -------
    PBOResult
        Deterministic: the same input always gives the same result.
    """
    x, labels = _validate(perf, n_blocks)
    name, fn = resolve_score(metric)
    t, n = x.shape
    s_blocks = int(n_blocks)
    size = t // s_blocks
    used = s_blocks * size
    xb = x[:used].reshape(s_blocks, size, n)
    combos = block_combinations(s_blocks)
    n_comb = combos.shape[0]
    m = (s_blocks // 2) * size
    block_metrics = _block_metric_fn(xb, x[:used], name, fn, isinstance(metric, str))

    chosen = np.empty(n_comb, dtype=np.intp)
    is_best = np.empty(n_comb)
    oos_best = np.empty(n_comb)
    ranks = np.empty(n_comb)

    # Split i's OOS blocks are split (C-1-i)'s IS blocks, so the metric of every block set
    # is computed once: chunk [lo, hi) is paired with its mirror [C-hi, C-lo).
    half = n_comb // 2
    step = max(1, int(chunk_size) // 2)
    for lo in range(0, half, step):
        hi = min(half, lo + step)
        front = np.arange(lo, hi)
        back = n_comb - 1 - front  # complements, in the same order as front
        both = np.concatenate([front, back])
        m_is = block_metrics(combos[both], m)
        m_oos = np.concatenate([m_is[hi - lo :], m_is[: hi - lo]])
        best = np.argmax(m_is, axis=1)
        rows = np.arange(both.shape[0])
        v = m_oos[rows, best]
        less = (m_oos < v[:, None]).sum(axis=1)
        equal = (m_oos == v[:, None]).sum(axis=1)
        chosen[both] = best
        is_best[both] = m_is[rows, best]
        oos_best[both] = v
        ranks[both] = less + (equal + 1) / 2.0

    omega = ranks / (n + 1)
    logits = np.log(omega / (1.0 - omega))
    slope, intercept = _ols(is_best, oos_best)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        relative_ranks=omega,
        chosen=chosen,
        is_metric=is_best,
        oos_metric=oos_best,
        n_combinations=int(n_comb),
        n_blocks=s_blocks,
        block_size=int(size),
        n_periods=int(t),
        n_dropped=int(t - used),
        n_configs=int(n),
        metric=name,
        degradation_slope=slope,
        degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        labels=labels,
    )


def chosen_labels(result: PBOResult) -> Sequence[Any]:
    """The chosen configuration of every split as column labels (indices without labels)."""
    if result.labels is None:
        return result.chosen.tolist()
    return [result.labels[i] for i in result.chosen]


__all__ = ["PBOResult", "block_combinations", "chosen_labels", "pbo_cscv"]
