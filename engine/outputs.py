"""Where commands may write: every output path is checked before any work starts.

A command that runs for minutes and then fails to write its result has wasted the user's
time, and one that writes into a catalog mixes results with market data. Each command
calls :func:`check_output_dir` (or :func:`check_output_file`) for every path it will
write - ``--out``, ``--record``, run folders, export targets, database files - right
after it has parsed its options, before it loads any data. Nothing is created by the
check: it probes the nearest existing parent with a temporary file it removes at once,
which also catches read-only file systems where ``os.access`` (as root) says yes.
:func:`atomic_write_text` is how a single file is then written: never half of it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from engine.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _probe(directory: Path, option: str, path: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sigtrade-write-probe-")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{option} {path}: cannot write in {directory} ({reason}); choose a directory you can write to"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def check_output_dir(
    path: str | Path,
    option: str = "--out",
    *,
    protected: Iterable[str | Path] = (),
) -> Path:
    """Check that *path* can become (or already is) a directory sigtrade may write into.

    Parameters
    ----------
    path
        The directory the command will write.
    option
        How the user named it (``--out``, ``--record``, ``output.run_dir``), for the message.
    protected
        Directories that must not contain it (the catalogs the command reads).

    Raises
    ------
    ConfigError
        *path* is a file, lies under a file, inside a protected directory, or its nearest
        existing parent is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p} is a file, not a directory: give a directory path "
                          f"(it is created if missing) or move the file away")
    for root in protected:
        r = Path(root)
        if r.is_dir() and _inside(p, r):
            raise ConfigError(f"{option} {p} is inside the catalog {r}: results must not be mixed with "
                              "market data; choose a directory outside it (e.g. out/...)")
    existing = _nearest_existing(p)
    if not existing.is_dir():
        raise ConfigError(f"{option} {p}: {existing} is a file, so no directory can be made under it; "
                          "choose another path")
    _probe(existing, option, p)
    return p


def check_output_file(path: str | Path, option: str, *, protected: Iterable[str | Path] = ()) -> Path:
    """Check that the file *path* can be written (its directory checked as by :func:`check_output_dir`)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a directory: give a file path")
    check_output_dir(p.parent if str(p.parent) else Path("."), option, protected=protected)
    return p


def atomic_write_text(path: Path, text: str) -> None:
    """Write *text* to *path* through a temporary file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
