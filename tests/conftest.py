"""Shared fixtures: real data location and the skip-or-fail rule for external needs.

Tests that need more than Python (the real data in ``../shared/data``, PostgreSQL,
headless Chromium) find it through an environment variable and skip with a reason when
it is absent. Under ``SIGTRADE_REQUIRE_ALL=1`` (set by ``.ci/run``) such a skip is a
failure: in CI every test runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def _internal_error_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file every sigtrade CLI run of this session appends its internal errors to (exit 70)."""
    from engine.cli.app import INTERNAL_ERROR_LOG

    path = tmp_path_factory.mktemp("internal-errors") / "exit70.log"
    path.touch()
    os.environ[INTERNAL_ERROR_LOG] = str(path)  # inherited by CLI subprocesses
    return path


@pytest.fixture(autouse=True)
def _no_internal_error(_internal_error_log: Path) -> Iterator[None]:
    """Fail a test during which any CLI run (in-process or a subprocess) reached exit 70.

    Exit 70 is sigtrade's "internal error - this is a bug" handler: whatever input got there
    is a defect, even when the test itself expected a failure.
    """
    before = _internal_error_log.stat().st_size
    yield
    with _internal_error_log.open(encoding="utf-8") as fh:
        fh.seek(before)
        new = fh.read()
    if new:
        pytest.fail(f"a sigtrade command reached the internal-error handler (exit 70):\n{new[-4000:]}")


# Property tests run the same examples every time (no example database in the working
# tree, no flakiness in CI); HYPOTHESIS_PROFILE=explore searches afresh and harder.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("sigtrade", database=None, derandomize=True, deadline=None, print_blob=True)
    _hyp_settings.register_profile("explore", database=None, deadline=None, max_examples=2_000)
    _hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sigtrade"))
except ImportError:  # hypothesis is part of the [dev] extra
    pass


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real two-node Ray cluster on 127.0.0.1 (2 CPUs; see tests/ray_cluster.py), stopped at the end.

    Needs the ``[cluster]`` extra (``make test`` installs it); without it the tests skip
    with that reason, and under ``SIGTRADE_REQUIRE_ALL=1`` a missing Ray or a cluster that
    does not start is a failure.
    """
    import importlib.util

    from tests.ray_cluster import LocalRayCluster

    need(importlib.util.find_spec("ray") is not None, 'Ray is not installed (pip install -e ".[cluster]")')
    cluster = LocalRayCluster(tmp_path_factory.mktemp("ray"))
    with pytest.MonkeyPatch.context() as mp:
        # a loopback-only cluster of the tests' own: no token authentication, whether or not
        # a ~/.ray/auth_token from some other Ray session exists (the nodes and every driver
        # must agree, and they read this variable)
        mp.setenv("RAY_AUTH_MODE", "disabled")
        mp.delenv("SIGTRADE_RAY_ADDRESS", raising=False)
        try:
            cluster.start()
        except Exception as exc:
            cluster.stop()
            need(False, f"a local Ray cluster could not start: {exc}")
        yield cluster
        cluster.stop()
