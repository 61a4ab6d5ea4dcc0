"""Sharpe ratio, Probabilistic Sharpe Ratio and Deflated Sharpe Ratio.

Conventions (every function here):

* **Per-period, never annualised.** ``SR = mean(r) / std(r, ddof=1)`` on the returns as
  given (daily returns -> daily SR). To compare with an annualised figure multiply by
  ``sqrt(P)`` (``P`` periods per year); a variance of annualised Sharpe ratios is
  ``P`` times the per-period one. PSR and DSR are only correct on per-period inputs,
  because ``n`` below counts the same periods.
* ``SR = 0.0`` when all returns are equal (zero standard deviation: a flat configuration).
* **Skewness** ``g3 = m3 / m2**1.5`` and **kurtosis** ``g4 = m4 / m2**2`` with the
  population central moments ``mk = mean((r - mean(r))**k)`` (no small-sample
  correction). ``g4`` is the *non-excess* kurtosis: 3.0 for normal returns. (pandas'
  ``Series.kurt()`` is the bias-corrected *excess* kurtosis: add 3 and expect small
  differences.) A constant series has ``g3 = 0``, ``g4 = 3``.
* Normal CDF and quantile come from :class:`statistics.NormalDist` (no scipy).

Formulas:

``probabilistic_sharpe_ratio`` (Bailey & Lopez de Prado 2012, "The Sharpe Ratio Efficient
Frontier"): ``PSR(SR*) = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR**2))``,
the probability that the true Sharpe ratio exceeds ``SR*``, given ``n`` returns.

``expected_max_sharpe`` (Bailey & Lopez de Prado 2014, "The Deflated Sharpe Ratio", eq. 2
with ``E[SR_n] = 0``): ``SR0 = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))``
with ``gamma`` the Euler-Mascheroni constant: the Sharpe ratio the best of ``N``
independent trials of zero true skill is expected to reach, ``V`` the variance of the
trials' Sharpe ratios. ``N = 1`` or ``V = 0`` -> ``SR0 = 0`` (no selection, no deflation).

``deflated_sharpe_ratio``: ``DSR = PSR(SR0)`` for the chosen configuration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.stats.scores import check_returns, sharpe_columns

EULER_GAMMA = 0.5772156649015329
"""The Euler-Mascheroni constant."""

_STD_NORMAL = NormalDist()


def norm_cdf(x: float) -> float:
    """Standard normal CDF; exact 0.0 / 1.0 at -inf / +inf."""
    return _STD_NORMAL.cdf(x)


def norm_ppf(p: float) -> float:
    """Standard normal quantile for ``0 < p < 1``."""
    return _STD_NORMAL.inv_cdf(p)


def _as_returns(returns: Sequence[float] | np.ndarray, what: str = "returns") -> np.ndarray:
    x = check_returns(np.asarray(returns, dtype=float).reshape(-1), what)
    if x.shape[0] < 2:
        raise DataError(
            f"{what}: need at least 2 returns to estimate a Sharpe ratio, found {x.shape[0]}"
        )
    return x


def sharpe_ratio(returns: Sequence[float] | np.ndarray) -> float:
    """Per-period Sharpe ratio ``mean / std(ddof=1)`` of *returns* (0.0 if constant).

    Raises
    ------
    DataError
        Fewer than 2 returns, or NaN/inf among them.
    """
    x = _as_returns(returns)
    return float(sharpe_columns(x)[0])


def higher_moments(returns: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Return ``(skewness, kurtosis)`` of *returns*: population moments, kurtosis non-excess.

    A constant series gives ``(0.0, 3.0)``.
    """
    x = _as_returns(returns)
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    if m2 == 0.0 or x.max() == x.min():
        return 0.0, 3.0
    m3 = float(np.mean(d**3))
    m4 = float(np.mean(d**4))
    return m3 / m2**1.5, m4 / m2**2


def probabilistic_sharpe_ratio(
    sr: float,
    sr_benchmark: float,
    n: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Probability that the true per-period Sharpe ratio exceeds *sr_benchmark*.

    Parameters
    ----------
    sr
        Observed per-period Sharpe ratio.
    sr_benchmark
        ``SR*``, per-period.
    n
        Number of returns *sr* was estimated from (``n >= 2``).
    skew
        Skewness ``g3`` of the returns.
    kurtosis
        Non-excess kurtosis ``g4`` of the returns (3.0 for normal returns).

    Returns
    -------
    float
        ``Phi((sr - sr_benchmark) * sqrt(n - 1) / sqrt(1 - g3 sr + (g4 - 1) / 4 sr**2))``.

    Raises
    ------
    DataError
        ``n < 2``, a non-finite input, or ``kurtosis < 1 + skew**2`` (impossible for any
        distribution: usually an *excess* kurtosis passed by mistake), or a variance term
        that is not positive (only for a two-point distribution at one particular SR).
    """
    for name, value in (("sr", sr), ("sr_benchmark", sr_benchmark), ("skew", skew),
                        ("kurtosis", kurtosis)):
        if not math.isfinite(value):
            raise DataError(f"probabilistic_sharpe_ratio: {name} must be finite, got {value}")
    if n < 2:
        raise DataError(f"probabilistic_sharpe_ratio: need n >= 2 returns, got n={n}")
    if kurtosis < 1.0 + skew**2 - 1e-12:
        raise DataError(
            f"probabilistic_sharpe_ratio: kurtosis={kurtosis:.4g} is below 1 + skew^2 = "
            f"{1.0 + skew**2:.4g}, impossible for any distribution; kurtosis must be the "
            "NON-excess kurtosis (3 for normal returns): add 3 to an excess figure such as "
            "pandas' Series.kurt()"
        )
    var_term = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if not var_term > 0.0:
        raise DataError(
            f"probabilistic_sharpe_ratio: 1 - skew*SR + (kurtosis-1)/4*SR^2 = {var_term:.3g} "
            f"is not positive (skew={skew:.4g}, kurtosis={kurtosis:.4g}, SR={sr:.4g}); "
            "kurtosis must be the NON-excess kurtosis (3 for normal returns)"
        )
    z = (sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var_term)
    return norm_cdf(z)


def expected_max_sharpe(n_trials: int, var_sr: float) -> float:
    """Expected maximum per-period Sharpe ratio of *n_trials* unskilled trials.

    ``sqrt(var_sr) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))``;
    0.0 when ``n_trials == 1`` or ``var_sr == 0``.

    Raises
    ------
    DataError
        ``n_trials < 1`` or a negative / non-finite *var_sr*.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise DataError(f"expected_max_sharpe: n_trials must be an integer >= 1, got {n_trials}")
    if not math.isfinite(var_sr) or var_sr < 0:
        raise DataError(f"expected_max_sharpe: var_sr must be finite and >= 0, got {var_sr}")
    n = int(n_trials)
    if n == 1 or var_sr == 0.0:
        return 0.0
    z = (1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / n) + EULER_GAMMA * norm_ppf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(var_sr) * z


@dataclass(frozen=True)
class DeflatedSharpe:
    """The Deflated Sharpe Ratio of one (the best) configuration; all Sharpe figures per-period.

    Attributes
    ----------
    sr : observed Sharpe ratio of the configuration's returns.
    sr0 : deflated benchmark = expected maximum Sharpe ratio of ``n_trials`` unskilled trials.
    dsr : ``PSR(sr0)``: probability that the true Sharpe ratio beats ``sr0``.
    psr : ``PSR(0)``, the same probability against zero, without the selection penalty.
    n : number of returns.
    skew, kurtosis : moments of the returns (kurtosis non-excess).
    n_trials : number of configurations tried.
    var_sr : variance of the trials' Sharpe ratios used for ``sr0``.
    """

    sr: float
    sr0: float
    dsr: float
    psr: float
    n: int
    skew: float
    kurtosis: float
    n_trials: int
    var_sr: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field."""
        return asdict(self)


def deflated_sharpe_ratio(
    returns_of_best: Sequence[float] | np.ndarray,
    sharpe_of_all_trials: Sequence[float] | np.ndarray,
    n_trials: int | None = None,
    *,
    var_sr: float | None = None,
) -> DeflatedSharpe:
    """Deflated Sharpe Ratio (Bailey & Lopez de Prado 2014) of the selected configuration.

    Parameters
    ----------
    returns_of_best
        Per-period returns of the configuration that was selected (>= 2, finite).
    sharpe_of_all_trials
        Per-period Sharpe ratios of every configuration tried (the selected one included).
        Their sample variance (``ddof=1``) is ``V``.
    n_trials
        ``N``; default ``len(sharpe_of_all_trials)``. Pass the *effective* number of
        independent trials when the configurations are strongly correlated.
    var_sr
        Override ``V`` (per-period units), e.g. when only the count of trials is known.

    Returns
    -------
    DeflatedSharpe
        ``sr``, ``sr0``, ``dsr`` and the inputs they came from. ``N = 1`` gives ``sr0 = 0``
        and ``dsr = psr``.

    Raises
    ------
    DataError
        Fewer than 2 returns; NaN/inf; ``N > 1`` with a single trial Sharpe ratio and no
        *var_sr* (the variance across trials cannot be estimated).
    """
    x = _as_returns(returns_of_best, "returns_of_best")
    trials = check_returns(
        np.asarray(sharpe_of_all_trials, dtype=float).reshape(-1), "sharpe_of_all_trials"
    )
    if trials.shape[0] == 0 and n_trials is None:
        raise DataError("deflated_sharpe_ratio: sharpe_of_all_trials is empty; pass n_trials")
    n_tr = int(n_trials) if n_trials is not None else int(trials.shape[0])
    if n_tr < 1:
        raise DataError(f"deflated_sharpe_ratio: n_trials must be >= 1, got {n_tr}")
    if var_sr is None:
        if trials.shape[0] >= 2:
            var = float(np.var(trials, ddof=1))
        elif n_tr == 1:
            var = 0.0
        else:
            raise DataError(
                f"deflated_sharpe_ratio: n_trials={n_tr} but {trials.shape[0]} trial Sharpe "
                "ratio(s) given; pass the Sharpe ratio of every trial or var_sr"
            )
    else:
        var = float(var_sr)
    sr = sharpe_ratio(x)
    skew, kurt = higher_moments(x)
    sr0 = expected_max_sharpe(n_tr, var)
    n = int(x.shape[0])
    return DeflatedSharpe(
        sr=sr,
        sr0=sr0,
        dsr=probabilistic_sharpe_ratio(sr, sr0, n, skew, kurt),
        psr=probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt),
        n=n,
        skew=skew,
        kurtosis=kurt,
        n_trials=n_tr,
        var_sr=var,
    )
