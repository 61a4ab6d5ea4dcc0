"""Fixtures shared by the overlay, parity and sweep tests: a small mixed-alignment real catalog and a seeded model."""

from __future__ import annotations

from pathlib import Path

import pytest

OVERLAY_SYMBOLS = ["SPY", "AAPL", "MSFT", "AMD", "COST"]
"""Three IBKR symbols (bars close on the hour) and two yfinance ones (on the half hour)."""


@pytest.fixture(scope="session")
def overlay_catalog(hourly_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of real hourly bars for :data:`OVERLAY_SYMBOLS`."""
    from engine.ingest.pipeline import ingest_files

    root = tmp_path_factory.mktemp("overlays") / "catalog"
    ingest_files([hourly_dir / f"{s}_1h.csv" for s in OVERLAY_SYMBOLS], root, bar="1-HOUR", repair=True)
    return root


@pytest.fixture(scope="session")
def overlay_model(overlay_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded MLP (no torch) whose scaler is fitted on SPY's 2022 features."""
    from engine import catalog as cat
    from models.features import compute_features
    from tests.models.onnx_factory import make_mlp_artifact

    frame = cat.read_frame(overlay_catalog, "SPY", "1-HOUR")
    feats = compute_features(frame.loc[:"2022-12-31"]).dropna()
    scaler = (feats.mean().tolist(), feats.std().replace(0, 1).tolist())
    return make_mlp_artifact(tmp_path_factory.mktemp("overlay_models") / "mlp", lookback=12, seed=3, scaler=scaler)
