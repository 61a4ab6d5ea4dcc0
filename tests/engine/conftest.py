"""Fixtures shared by the overlay, parity and sweep tests: a small mixed-alignment real catalog, a seeded model
and one full ``sigtrade sweep`` run (its output is checked by the CLI and the sweep-report tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
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


def sigtrade(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``sigtrade`` CLI in a subprocess, as a user does."""
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def sweep_config(overlay_catalog: Path, overlay_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signal-strategy backtest config on the overlay catalog, 2024-01-02 .. 2024-06-28."""
    path = tmp_path_factory.mktemp("sweep") / "sweep.toml"
    path.write_text(
        f'[data]\ncatalog = "{overlay_catalog}"\nsymbols = {json.dumps(OVERLAY_SYMBOLS)}\n'
        'start = "2024-01-02"\nend = "2024-06-28"\n'
        f'[strategy]\nkind = "signal"\nmodel = "{overlay_model}"\n'
        "[risk]\ncooldown_bars = 2\n"
    )
    return path


FULL_SWEEP_GRID = (
    "--grid", "strategy.entry_threshold=0.48:0.56:0.02",
    "--grid", "regime.trend.sma=0,50,1000000",
    "--grid", "risk.stop_loss=0,0.01",
)
"""5 x 3 x 2 = 30 configurations; trend.sma=1000000 never allows an entry."""


@dataclass(frozen=True)
class SweepRun:
    """A finished ``sigtrade sweep`` and its --out folder."""

    proc: subprocess.CompletedProcess[str]
    out: Path
    config: Path


@pytest.fixture(scope="session")
def full_sweep(sweep_config: Path, tmp_path_factory: pytest.TempPathFactory) -> SweepRun:
    """One sweep with every section: three axes, walk-forward, the top 2 re-run in the event engine, --out."""
    out = tmp_path_factory.mktemp("full_sweep") / "out"
    proc = sigtrade(
        "sweep", str(sweep_config), *FULL_SWEEP_GRID,
        "--top", "5", "--out", str(out), "--verify-top", "2", "--walk-forward", "train=2M,test=1M",
    )
    return SweepRun(proc, out, sweep_config)
