"""The ``--cluster ADDRESS`` option (or ``SIGTRADE_RAY_ADDRESS``), parsed without importing Ray.

Accepted forms:

* ``auto`` - join the Ray cluster already running on this machine (``ray start --head``
  here, or a node of it);
* ``local`` - start a private Ray instance on this machine with every core;
  ``local:N`` - with N CPUs (the instance ends with the command);
* ``HOST:PORT`` - the GCS address of a cluster's head node (``ray start --head --port PORT``
  printed it), e.g. ``10.0.0.5:6379``; the driver (this command) runs on a node of that
  cluster or on a machine that reaches every node.

An empty option and an empty variable mean "no cluster": the command runs on this
machine exactly as without the option.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from engine.errors import ConfigError

ENV_VAR = "SIGTRADE_RAY_ADDRESS"
"""Environment variable read when ``--cluster`` is not given."""
INSTALL_HINT = 'pip install -e ".[cluster]"'
"""What to install for ``--cluster``."""
EXAMPLES = "auto, local, local:4 or HOST:PORT of the head node, e.g. 10.0.0.5:6379"
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: a local instance of ``num_cpus`` CPUs (None = all), or an address to join."""

    address: str | None
    """What ``ray.init(address=...)`` gets; None starts a local instance."""
    num_cpus: int | None = None
    """CPUs of a local instance (``local:N``); None = every core."""
    text: str = ""
    """The option as given (for messages)."""

    @property
    def local(self) -> bool:
        """True when the command starts (and ends) its own Ray instance."""
        return self.address is None

    def describe(self) -> str:
        """A few words for the user."""
        if self.local:
            return f"a local Ray instance ({self.num_cpus or 'all'} CPUs)"
        return "the running Ray cluster on this machine" if self.address == "auto" else f"the Ray cluster at {self.address}"


def parse_cluster(text: str | None, *, env: bool = True) -> ClusterSpec | None:
    """Parse ``--cluster`` (falling back to ``$SIGTRADE_RAY_ADDRESS`` when *env*); None = no cluster.

    Raises
    ------
    ConfigError
        For anything that is not one of the forms in the module docstring.
    """
    where = "--cluster"
    if text is None and env:
        text = os.environ.get(ENV_VAR)
        where = ENV_VAR
    if text is None or not text.strip():
        return None
    value = text.strip()
    low = value.lower()
    if low == "auto":
        return ClusterSpec("auto", None, value)
    if low == "local" or low.startswith("local:"):
        if low == "local":
            return ClusterSpec(None, None, value)
        n = low.split(":", 1)[1]
        if not n.isdigit() or not 1 <= int(n) <= 4096:
            raise ConfigError(f"{where} '{value}': local:N needs a whole number of CPUs from 1 to 4096, e.g. local:4")
        return ClusterSpec(None, int(n), value)
    m = _HOST_PORT.match(value)
    if m is None:
        raise ConfigError(f"{where} '{value}' is not a Ray address: use {EXAMPLES}")
    port = int(m.group(2))
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where} '{value}': port {port} is outside 1..65535")
    return ClusterSpec(value, None, value)
