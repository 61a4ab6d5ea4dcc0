"""Fixtures of the research tests: tiny synthetic catalogs, real bars, small configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.catalog import write_bars
from engine.sample import SampleSpec, generate_sample

TINY = SampleSpec(seed=11, n_symbols=3, start="2023-01-03", end="2023-06-30")
"""Three synthetic symbols, ~870 hourly bars each."""

TINY_RANGES = {"train": "..2023-03-31", "validation": "2023-04-01..2023-05-15", "test": "2023-05-16.."}


@pytest.fixture(autouse=True)
def _tracking_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep MLflow runs of the tests out of the project's own ./mlruns."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="session")
def tiny_frames() -> dict[str, pd.DataFrame]:
    """Bar frames of the tiny synthetic universe."""
    return generate_sample(TINY)


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory, tiny_frames: dict[str, pd.DataFrame]) -> Path:
    """A catalog holding the tiny synthetic universe."""
    path = tmp_path_factory.mktemp("tiny_catalog")
    write_bars(path, tiny_frames, "1-HOUR", synthetic=True, note="SYNTHETIC test universe")
    return path


def tiny_raw(catalog: Path, run_dir: Path | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast training config (as a TOML-like dict) on *catalog*, updated by *sections*."""
    raw: dict[str, Any] = {
        "data": {"catalog": str(catalog), "lookback": 12, **TINY_RANGES},
        "label": {"kind": "threshold", "horizon": 3, "threshold": 0.0},
        "model": {"architecture": "mlp", "hidden": 16, "layers": 1, "embedding_dim": 3},
        "train": {"epochs": 2, "batch_size": 128, "patience": 5, "threads": 2, "seed": 7},
        "output": {"name": "tiny", "run_dir": str(run_dir) if run_dir else ""},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw


@pytest.fixture(scope="session")
def real_catalog(tmp_path_factory: pytest.TempPathFactory, hourly_dir: Path) -> Path:
    """Real hourly bars of SPY and AAPL, ingested (start -> close times) into a catalog."""
    from engine.ingest.pipeline import ingest_files

    path = tmp_path_factory.mktemp("real_catalog")
    ingest_files([hourly_dir / "SPY_1h.csv", hourly_dir / "AAPL_1h.csv"], path, repair=True)
    return path
