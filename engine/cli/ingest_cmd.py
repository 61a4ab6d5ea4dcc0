"""CLI: `sigtrade ingest` (being written)."""

import typer


def register(app: typer.Typer) -> None:
    """Register the command on *app*."""
