"""Fixtures of the RL tests: a small real hourly catalog (one IBKR and one yfinance symbol) and RL configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gymnasium")

RL_SYMBOLS = ["SPY", "AMD"]
"""SPY bars on the clock hour (IBKR, from 2021-10), AMD on the half hour (yfinance, from 2023-09)."""
RL_RANGES = {"train": "2023-09-01..2023-12-31", "validation": "2024-01-01..2024-03-31", "test": "2024-04-01..2024-06-28"}


@pytest.fixture(scope="session")
def rl_catalog(hourly_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of real hourly bars for :data:`RL_SYMBOLS`."""
    from engine.ingest.pipeline import ingest_files

    root = tmp_path_factory.mktemp("rl") / "catalog"
    ingest_files([hourly_dir / f"{s}_1h.csv" for s in RL_SYMBOLS], root, bar="1-HOUR", repair=True)
    return root


def rl_raw(catalog: Path, run_dir: Path | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast RL config (as a TOML-like dict) on *catalog*, updated by *sections*."""
    raw: dict[str, Any] = {
        "data": {"catalog": str(catalog), "symbols": RL_SYMBOLS, "lookback": 6, **RL_RANGES},
        "env": {"n_envs": 8, "episode_bars": 120},
        "costs": {"commission_bps": 10, "slippage_bps": 5},
        "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2, "net_arch": [16]},
        "train": {"timesteps": 512, "eval_every": 256, "patience": 3, "seed": 3},
        "output": {"name": "tiny_rl", "run_dir": str(run_dir) if run_dir else ""},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw
