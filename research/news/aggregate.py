"""Causal per-bar sentiment features from scored articles: :mod:`models.sentiment`, with sigtrade's errors.

The aggregation lives in :mod:`models.sentiment` so that strategies (which may not import
``research``) compute the very same column in backtests and paper trading. This module
keeps the research-side names and raises the engine's errors: a bad method, half-life or
prior is a :class:`~engine.errors.ConfigError`, bad times or scores a
:class:`~engine.errors.DataError`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from engine.errors import ConfigError, DataError
from models import sentiment as _impl
from models.errors import ModelDataError
from models.sentiment import METHODS, Method, SentimentSpec, symbol_articles

__all__ = ["METHODS", "Method", "SentimentSpec", "sentiment_feature", "sentiment_features", "symbol_articles"]


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, _impl.SentimentConfigError):
        return ConfigError(str(exc))
    if isinstance(exc, ModelDataError):
        return DataError(str(exc))
    return exc


def sentiment_feature(
    bar_closes: pd.DatetimeIndex,
    articles: pd.DataFrame,
    half_life: pd.Timedelta | str = "1D",
    method: Method = "decayed_mean",
    prior: float = 1.0,
) -> pd.Series:
    """:func:`models.sentiment.sentiment_feature`, raising ConfigError / DataError."""
    try:
        return _impl.sentiment_feature(bar_closes, articles, half_life, method, prior)
    except (_impl.SentimentConfigError, ModelDataError) as exc:
        raise _translate(exc) from None


def sentiment_features(
    bar_closes: Mapping[str, pd.DatetimeIndex],
    articles: pd.DataFrame,
    half_life: pd.Timedelta | str = "1D",
    method: Method = "decayed_mean",
    prior: float = 1.0,
) -> dict[str, pd.Series]:
    """:func:`models.sentiment.sentiment_features`, raising ConfigError / DataError."""
    try:
        return _impl.sentiment_features(bar_closes, articles, half_life, method, prior)
    except (_impl.SentimentConfigError, ModelDataError) as exc:
        raise _translate(exc) from None


def read_scored_articles(catalog: str, model: str = _impl.DEFAULT_SCORER) -> pd.DataFrame:
    """:func:`models.sentiment.read_scored_articles`; a catalog without (complete) scores is a ConfigError."""
    try:
        return _impl.read_scored_articles(catalog, model)
    except ModelDataError as exc:
        raise ConfigError(str(exc)) from None
