"""CLI: `sigtrade sample` (being written)."""

import typer


def register(app: typer.Typer) -> None:
    """Register the command on *app*."""
