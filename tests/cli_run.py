"""Run the sigtrade CLI in-process, as a user's shell would, and see what it left behind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    """Exit code and output of one ``sigtrade`` command."""

    code: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The error lines (``error: ...``), or the whole stderr."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return "\n".join(line for line in lines if line.startswith("error:")) or self.stderr


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], cwd: Path | None = None) -> CliResult:
    """``sigtrade ARGS`` in this process (``main()`` with its error handler); returns code and output."""
    from engine.cli.app import main

    capsys.readouterr()
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)


def tree(path: Path) -> set[str]:
    """Every path under *path*, relative (to compare before and after a command)."""
    return {str(p.relative_to(path)) for p in path.rglob("*")}
