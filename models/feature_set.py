"""Versioned feature sets: what a model card names, and what the pipeline implements.

A feature set is a name, a version and the ordered tuple of column names a model was
trained on. Changing any definition, parameter or the order of columns makes a new
version; a card that names a version this code does not implement is refused, because
the model would otherwise be fed numbers it has never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import FeatureSetError


@dataclass(frozen=True)
class FeatureSetSpec:
    """An ordered, versioned list of feature columns.

    Parameters
    ----------
    name : str
        Feature-set family, e.g. ``"seed14"``.
    version : str
        Version of the definitions; any change of a formula, a parameter or the column
        order bumps it.
    features : tuple of str
        Column names, in the order the model receives them.
    """

    name: str
    version: str
    features: tuple[str, ...]

    @property
    def key(self) -> str:
        """``"name@version"``, the form used in messages and cards."""
        return f"{self.name}@{self.version}"

    @property
    def n_features(self) -> int:
        """Number of columns (``F``)."""
        return len(self.features)


SEED14_V1 = FeatureSetSpec(
    name="seed14",
    version="1",
    features=(
        # 14 technical indicators (TA-Lib), all dimensionless
        "sma_dist_20",
        "ema_dist_50",
        "rsi_14",
        "macd",
        "macd_signal",
        "macd_hist",
        "bb_pctb_20",
        "bb_width_20",
        "atr_pct_14",
        "adx_14",
        "stoch_k",
        "stoch_d",
        "obv_change",
        "volume_z_20",
        # returns
        "log_ret_1",
        "log_ret_5",
        # calendar
        "dow_sin",
        "dow_cos",
        # news (filled by the sentiment pipeline; neutral 0 when absent)
        "sentiment",
    ),
)

# Leading bars that are NaN in at least one column (EMA(50) needs 50 closes). Measured
# on real and synthetic bars and pinned by tests/models/test_features.py.
_WARMUP: dict[tuple[str, str], int] = {("seed14", "1"): 49}

FEATURE_SETS: dict[tuple[str, str], FeatureSetSpec] = {
    (SEED14_V1.name, SEED14_V1.version): SEED14_V1,
}


def _available() -> str:
    return ", ".join(spec.key for spec in FEATURE_SETS.values())


def get_feature_set(name: str, version: str) -> FeatureSetSpec:
    """Return the implemented feature set *name* at *version*.

    Raises
    ------
    FeatureSetError
        If this code does not implement that name and version; the message names the
        request and what is available.
    """
    spec = FEATURE_SETS.get((str(name), str(version)))
    if spec is None:
        raise FeatureSetError(
            f"feature set '{name}@{version}' is not implemented by this sigtrade "
            f"(available: {_available()}); retrain or re-export the model with an "
            f"available feature set, or install the sigtrade version that made the card"
        )
    return spec


def require_supported(feature_set: FeatureSetSpec) -> FeatureSetSpec:
    """Check that *feature_set* is exactly an implemented spec (same columns, same order)."""
    spec = get_feature_set(feature_set.name, feature_set.version)
    if tuple(feature_set.features) != spec.features:
        raise FeatureSetError(
            f"feature set '{feature_set.key}' lists columns {list(feature_set.features)}, "
            f"but this version defines {list(spec.features)}; a changed column list needs "
            f"a new version — use get_feature_set('{spec.name}', '{spec.version}')"
        )
    return spec


def warmup_for(feature_set: FeatureSetSpec) -> int:
    """Leading NaN bars of an implemented *feature_set*."""
    spec = require_supported(feature_set)
    return _WARMUP[(spec.name, spec.version)]
