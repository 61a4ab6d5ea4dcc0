"""Shared fixtures: real data location and the skip-or-fail rule for external needs.

Tests that need more than Python (the real data in ``../shared/data``, PostgreSQL,
headless Chromium) find it through an environment variable and skip with a reason when
it is absent. Under ``SIGTRADE_REQUIRE_ALL=1`` (set by ``.ci/run``) such a skip is a
failure: in CI every test runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("SIGTRADE_REAL_DATA", str(ROOT.parent / "shared" / "data")))


def need(condition: bool, reason: str) -> None:
    """Skip the calling test with *reason* unless *condition* holds; fail instead in CI."""
    if condition:
        return
    if os.environ.get("SIGTRADE_REQUIRE_ALL") == "1":
        pytest.fail(f"SIGTRADE_REQUIRE_ALL=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the real market data (``SIGTRADE_REAL_DATA``, default ``../shared/data``)."""
    need(
        (REAL_DATA / "equities").is_dir(),
        f"real data not found at {REAL_DATA} (set SIGTRADE_REAL_DATA to the shared data folder)",
    )
    return REAL_DATA


@pytest.fixture(scope="session")
def hourly_dir(real_data: Path) -> Path:
    """The 30-symbol real hourly universe (IBKR + yfinance CSVs)."""
    return real_data / "equities" / "hourly" / "market-base"
