"""``python -m engine`` runs the sigtrade CLI."""

from engine.cli.app import main

main()
