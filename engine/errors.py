"""The one exception tree of sigtrade.

Every error a user can cause derives from :class:`SigtradeError`. Messages say what was
expected, what was found, and what to do; the CLI prints them without a traceback and
exits with :attr:`SigtradeError.exit_code`.

Model-contract errors live in ``models.errors`` (``ModelContractError``, exit code 4):
``models`` may not import ``engine``, so that branch has its own root, and the CLI treats
both roots alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SigtradeError(Exception):
    """Base class of every error sigtrade raises on purpose."""

    exit_code = 1


class ConfigError(SigtradeError):
    """A configuration file, field or override is wrong."""

    exit_code = 2


class DataError(SigtradeError):
    """Market data is missing, malformed or inconsistent."""

    exit_code = 3


class BrokerError(SigtradeError):
    """A broker (Alpaca) refused a request or could not be reached."""

    exit_code = 5


class MissingExtraError(SigtradeError):
    """An optional dependency group is needed but not installed."""

    exit_code = 6


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a " - did you mean 'x'?" hint for a misspelt *name*, or an empty string."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" - did you mean '{match[0]}'?" if match else ""
