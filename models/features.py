"""The one feature pipeline: batch over whole frames, streaming one bar at a time.

Batch mode (:func:`compute_features`) runs TA-Lib over the whole history; streaming mode
(:class:`StreamingFeatures` for one instrument, :class:`UniverseFeatures` for a universe,
:mod:`models.streaming`) updates O(1) state per symbol in constant time per bar. Both
give bit-identical values for the same bar sequence at any history length, and both are
causal: the row of bar ``t`` depends only on bars ``<= t`` (a test truncates at ``t`` and
poisons the future to prove it). The column definitions of the default feature set
``seed14@1`` are listed in :mod:`models.indicators`.

Warm-up: the first :func:`warmup_bars` rows hold NaN in at least one column. A model
needs ``warmup_bars() + lookback`` bars before its first prediction
(:func:`check_history`); a live strategy waits until :attr:`StreamingFeatures.ready`.
Nothing here ever fills a warm-up NaN with a number.

Example
-------
>>> feats = compute_features(bars)                      # doctest: +SKIP
>>> X = scale(feature_matrix(bars), card.mean, card.std)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import ModelContractError, ModelDataError
from models.feature_set import (
    SEED14_V1,
    FeatureSetSpec,
    get_feature_set,
    require_supported,
    warmup_for,
)
from models.indicators import OBV_WINDOW, assemble, indicators, lagged
from models.streaming import StreamingFeatures, UniverseFeatures

__all__ = [
    "FEATURE_SET",
    "REQUIRED_COLUMNS",
    "FeatureSetSpec",
    "StreamingFeatures",
    "UniverseFeatures",
    "check_history",
    "compute_features",
    "feature_matrix",
    "get_feature_set",
    "scale",
    "warmup_bars",
]

FEATURE_SET: FeatureSetSpec = SEED14_V1
"""The default feature set, ``seed14@1``."""

REQUIRED_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

_INGEST_HINT = "ingest with sigtrade ingest csv"


def warmup_bars(feature_set: FeatureSetSpec = FEATURE_SET) -> int:
    """Number of leading bars that are NaN in at least one column (49 for ``seed14@1``)."""
    return warmup_for(feature_set)


def check_history(n_bars: int, lookback: int, feature_set: FeatureSetSpec = FEATURE_SET) -> int:
    """Check that *n_bars* are enough for one window of *lookback* fully warmed-up rows.

    Returns
    -------
    int
        The bars needed, ``warmup_bars(feature_set) + lookback``.

    Raises
    ------
    ModelDataError
        If ``n_bars`` is smaller than that.
    ModelContractError
        If ``lookback < 1``.
    """
    if int(lookback) < 1:
        raise ModelContractError(
            f"lookback must be at least 1 bar, got {lookback}; fix the model card"
        )
    warmup = warmup_bars(feature_set)
    needed = warmup + int(lookback)
    if int(n_bars) < needed:
        raise ModelDataError(
            f"feature set '{feature_set.key}' with lookback {lookback} needs at least "
            f"{needed} bars (feature warm-up {warmup} + lookback {lookback}), got {n_bars}; "
            f"load more history before the first signal"
        )
    return needed


def _frame_name(frame: pd.DataFrame) -> str:
    symbol = frame.attrs.get("symbol") or frame.attrs.get("instrument_id")
    return f"frame for {symbol}" if symbol else "frame"


def _bars_arrays(frame: pd.DataFrame) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Validate *frame* and return its UTC index and float64 OHLCV columns."""
    if not isinstance(frame, pd.DataFrame):
        raise ModelDataError(
            f"expected a pandas DataFrame of bars with columns {', '.join(REQUIRED_COLUMNS)}, "
            f"got {type(frame).__name__}"
        )
    name = _frame_name(frame)
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        lacks = ", ".join(f"'{m}'" for m in missing)
        raise ModelDataError(
            f"{name} lacks column{'s' if len(missing) > 1 else ''} {lacks}: expected "
            f"{', '.join(REQUIRED_COLUMNS)}, found {', '.join(map(str, frame.columns)) or 'none'} "
            f"({_INGEST_HINT})"
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ModelDataError(
            f"{name} must be indexed by tz-aware bar close times (UTC DatetimeIndex), got "
            f"{type(index).__name__}{'' if getattr(index, 'tz', None) else ' without a timezone'}; "
            f"set the index with pd.to_datetime(..., utc=True)"
        )
    index = index.tz_convert("UTC")
    if len(index) > 1:
        steps = np.diff(index.asi8)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ModelDataError(
                f"{name} index must be strictly increasing: bar {i} at {index[i]} does not "
                f"come after bar {i - 1} at {index[i - 1]}; sort and drop duplicate timestamps"
            )
    arrays: dict[str, np.ndarray] = {}
    for col in REQUIRED_COLUMNS:
        try:
            arrays[col] = np.ascontiguousarray(
                frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
            )
        except (TypeError, ValueError) as exc:
            raise ModelDataError(
                f"{name} column '{col}' is not numeric ({frame[col].dtype}): expected floats "
                f"({_INGEST_HINT})"
            ) from exc
    good = {
        col: np.isfinite(arr) & ((arr >= 0.0) if col == "volume" else (arr > 0.0))
        for col, arr in arrays.items()
    }
    row_ok = np.logical_and.reduce(list(good.values()))
    if not row_ok.all():
        i = int(np.flatnonzero(~row_ok)[0])
        col = next(c for c in REQUIRED_COLUMNS if not good[c][i])
        want = "a finite volume >= 0" if col == "volume" else "a finite price > 0"
        raise ModelDataError(
            f"{name} has {col}={float(arrays[col][i])!r} at row {i} ({index[i]}): expected "
            f"{want}; fix or drop that bar ({_INGEST_HINT})"
        )
    return index, arrays


def _sentiment_array(sentiment: pd.Series | None, index: pd.DatetimeIndex) -> np.ndarray:
    if sentiment is None:
        return np.zeros(len(index), dtype=np.float64)
    if not isinstance(sentiment, pd.Series):
        raise ModelDataError(
            f"sentiment must be a pandas Series indexed by bar close times, got "
            f"{type(sentiment).__name__}"
        )
    s_index = sentiment.index
    if not isinstance(s_index, pd.DatetimeIndex) or s_index.tz is None:
        raise ModelDataError(
            "sentiment must be indexed by tz-aware (UTC) bar close times; found "
            f"{type(s_index).__name__} without a timezone — build it with pd.to_datetime(..., utc=True)"
        )
    if not s_index.is_unique:
        raise ModelDataError(
            "sentiment has duplicate timestamps: expected one score per bar; aggregate "
            "the news of a bar into one score first"
        )
    values = (
        pd.Series(sentiment.to_numpy(dtype=np.float64), index=s_index.tz_convert("UTC"))
        .reindex(index)
        .to_numpy(dtype=np.float64)
    )
    if np.isinf(values).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        raise ModelDataError(
            f"sentiment is {values[i]!r} at {index[i]}: expected a finite score (NaN for no news)"
        )
    return np.where(np.isnan(values), 0.0, values)


def compute_features(
    frame: pd.DataFrame,
    sentiment: pd.Series | None = None,
    feature_set: FeatureSetSpec = FEATURE_SET,
) -> pd.DataFrame:
    """Compute the feature columns of every bar of *frame* (batch mode).

    Parameters
    ----------
    frame : pandas.DataFrame
        Bars of one instrument: index = bar close times (tz-aware, strictly increasing),
        float columns ``open, high, low, close, volume`` (other columns are ignored).
    sentiment : pandas.Series, optional
        Sentiment per bar close time; reindexed onto ``frame.index``, bars without a
        score get 0.0 (neutral). None: all 0.0.
    feature_set : FeatureSetSpec
        Must be an implemented feature set; otherwise ``FeatureSetError``.

    Returns
    -------
    pandas.DataFrame
        float64, same index as *frame*, columns exactly ``feature_set.features``. The first
        :func:`warmup_bars` rows contain NaN (all rows do if the history is that short).

    Raises
    ------
    ModelDataError
        Missing column, non-numeric column, non-finite or non-positive price, negative
        volume, tz-naive or non-increasing index. The message names the first bad row.
    FeatureSetError
        Unknown feature set or version.
    """
    spec = require_supported(feature_set)
    index, bars = _bars_arrays(frame)
    sent = _sentiment_array(sentiment, index)
    dow = index.tz_convert("America/New_York").dayofweek.to_numpy().astype(np.intp)
    close, volume = bars["close"], bars["volume"]
    log_volume = np.log1p(volume)
    ind = indicators(bars["high"], bars["low"], close, volume, log_volume)
    values = assemble(
        ind,
        close,
        lagged(close, 1),
        lagged(close, 5),
        lagged(ind.obv, OBV_WINDOW),
        log_volume,
        dow,
        sent,
    )
    return pd.DataFrame(values, index=frame.index, columns=list(spec.features), copy=False)


def feature_matrix(
    frame: pd.DataFrame,
    sentiment: pd.Series | None = None,
    feature_set: FeatureSetSpec = FEATURE_SET,
) -> np.ndarray:
    """:func:`compute_features` as a C-contiguous float32 array of shape ``(T, F)``."""
    values = compute_features(frame, sentiment, feature_set).to_numpy(dtype=np.float32)
    return np.ascontiguousarray(values)


def scale(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardise features with a card's scaler: ``(x - mean) / std`` in float32.

    *mean* and *std* have shape ``(F,)`` and broadcast over the last axis of *features*
    (``(T, F)`` rows or ``(N, L, F)`` windows). A ``std`` of exactly 0 is treated as 1.
    NaN stays NaN. Returns a new C-contiguous float32 array.
    """
    x = np.asarray(features, dtype=np.float32)
    m = np.asarray(mean, dtype=np.float32).reshape(-1)
    s = np.asarray(std, dtype=np.float32).reshape(-1)
    n_features = x.shape[-1] if x.ndim else 0
    if m.shape != (n_features,) or s.shape != (n_features,):
        raise ModelContractError(
            f"scaler shape mismatch: features have {n_features} columns, the scaler has "
            f"mean of {m.shape[0]} and std of {s.shape[0]} values; use the scaler of the "
            f"card that matches this feature set"
        )
    s = np.where(s == 0.0, np.float32(1.0), s)
    return np.ascontiguousarray((x - m) / s, dtype=np.float32)
