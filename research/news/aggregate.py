"""Causal per-bar sentiment features from scored articles (pandas and numpy only).

For a bar closing at ``t`` only articles published *strictly before* ``t`` count: an
article stamped exactly at a bar's close first counts at the next bar. Each article
``i`` (score ``s_i`` in [-1, 1], time ``c_i``) weighs ``w_i(t) = 2 ** (-(t - c_i) / half_life)``
at ``t``: the decay runs in wall-clock time, so news ages over nights, weekends and
holidays exactly as it does during the session. With ``S = sum w_i s_i`` and
``W = sum w_i``:

* ``decayed_mean`` - ``S / max(W, 1)``: the decay-weighted mean score while at least one
  article's worth of fresh news is in, fading towards neutral as the news ages;
* ``count_weighted`` - ``S / (W + prior)``: the same mean shrunk towards neutral by
  ``prior`` neutral pseudo-articles, so many articles count more than one.

Both lie in [-1, 1] and are 0 (neutral) before the first article. All times are UTC
inside; naive times are refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError

Method = Literal["decayed_mean", "count_weighted"]
METHODS: tuple[str, ...] = ("decayed_mean", "count_weighted")


def _utc_index(values: Iterable[pd.Timestamp] | pd.DatetimeIndex, what: str) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        raise DataError(
            f"{what} are naive timestamps; pass them with a time zone (UTC inside sigtrade), "
            "e.g. index.tz_localize('America/New_York')"
        )
    return index.tz_convert("UTC")


def _check(half_life: pd.Timedelta, method: str, prior: float) -> pd.Timedelta:
    if method not in METHODS:
        from engine.errors import did_you_mean

        raise ConfigError(f"unknown sentiment method '{method}'{did_you_mean(method, METHODS)}; expected one of {', '.join(METHODS)}")
    half_life = pd.Timedelta(half_life)
    if half_life <= pd.Timedelta(0):
        raise ConfigError(f"half_life must be positive, got {half_life}")
    if not prior > 0:
        raise ConfigError(f"prior must be a positive number of neutral pseudo-articles, got {prior}")
    return half_life


def sentiment_feature(
    bar_closes: pd.DatetimeIndex,
    articles: pd.DataFrame,
    half_life: pd.Timedelta | str = "1D",
    method: Method = "decayed_mean",
    prior: float = 1.0,
) -> pd.Series:
    """Return the sentiment feature at each bar close of one symbol.

    Parameters
    ----------
    bar_closes
        Bar close times, tz-aware, strictly increasing.
    articles
        Columns ``created_at`` (tz-aware) and ``score`` (in [-1, 1]), any order.
    half_life
        Time for an article's weight to halve, in wall-clock time.
    method
        ``decayed_mean`` or ``count_weighted`` (see the module docstring).
    prior
        Neutral pseudo-articles of ``count_weighted``.

    Returns
    -------
    pandas.Series
        Float values in [-1, 1] indexed by *bar_closes* (in UTC); 0 before any article.
    """
    half_life = _check(pd.Timedelta(half_life), method, prior)
    closes = _utc_index(bar_closes, "bar close times")
    if not closes.is_monotonic_increasing or closes.has_duplicates:
        raise DataError("bar close times must be strictly increasing (sort them and drop duplicates)")
    missing = {"created_at", "score"} - set(articles.columns)
    if missing:
        raise DataError(f"articles need columns created_at and score; missing {', '.join(sorted(missing))}")
    created = _utc_index(articles["created_at"], "article created_at values")
    scores = articles["score"].to_numpy(dtype=float)
    if not np.isfinite(scores).all() or (np.abs(scores) > 1).any():
        raise DataError("article scores must be finite and in [-1, 1]; score the news again")
    n = len(closes)
    if n == 0:
        return pd.Series(np.zeros(0), index=closes, name="sentiment")
    t_ns = closes.asi8.astype(np.int64)
    c_ns = created.asi8.astype(np.int64)
    # first bar whose close is strictly after the article: side="right" puts an article
    # stamped exactly at a close on the next bar
    first_bar = np.searchsorted(t_ns, c_ns, side="right")
    live = first_bar < n
    first_bar, c_ns, scores = first_bar[live], c_ns[live], scores[live]
    hl = float(half_life.value)
    w_in = np.exp2(-(t_ns[first_bar] - c_ns).astype(float) / hl)  # weight on arrival, in (0, 1]
    add_s = np.bincount(first_bar, weights=w_in * scores, minlength=n)
    add_w = np.bincount(first_bar, weights=w_in, minlength=n)
    step = np.exp2(-np.diff(t_ns).astype(float) / hl)
    s_sum = np.empty(n)
    w_sum = np.empty(n)
    s, w = 0.0, 0.0
    for k in range(n):  # S_k = S_{k-1} * decay(t_k - t_{k-1}) + arrivals in [t_{k-1}, t_k)
        if k:
            s *= step[k - 1]
            w *= step[k - 1]
        s += add_s[k]
        w += add_w[k]
        s_sum[k] = s
        w_sum[k] = w
    if method == "decayed_mean":
        value = s_sum / np.maximum(w_sum, 1.0)
    else:
        value = s_sum / (w_sum + prior)
    return pd.Series(np.clip(value, -1.0, 1.0), index=closes, name="sentiment")


def symbol_articles(articles: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Return the rows of *articles* (with a ``symbols`` list column) that name *symbol*."""
    wanted = symbol.upper()
    mask = [wanted in {str(s).upper() for s in syms} for syms in articles["symbols"]]
    return articles.loc[mask]


def sentiment_features(
    bar_closes: Mapping[str, pd.DatetimeIndex],
    articles: pd.DataFrame,
    half_life: pd.Timedelta | str = "1D",
    method: Method = "decayed_mean",
    prior: float = 1.0,
) -> dict[str, pd.Series]:
    """Return :func:`sentiment_feature` for each symbol, from articles tagged with ``symbols``.

    An article naming several symbols counts for each of them. The result of a symbol can
    be passed as ``sentiment`` to ``models.features.compute_features`` for its bars.
    """
    return {
        sym: sentiment_feature(closes, symbol_articles(articles, sym), half_life, method, prior)
        for sym, closes in bar_closes.items()
    }
