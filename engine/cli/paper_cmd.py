"""CLI: ``sigtrade paper CONFIG [--set k=v]... [--out DIR] [--record DIR] [--live]``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def paper(
    config: Path = typer.Argument(..., help="The backtest config whose strategy to trade (TOML)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set paper.max_order_notional=5000 (repeatable)."),
    out: Path = typer.Option(Path("out/paper"), "--out", help="Where decisions.jsonl goes."),
    record: Path | None = typer.Option(None, "--record", help="Keep the bars seen and orders sent here (for backtest --replay)."),
    live: bool = typer.Option(False, "--live", help="Trade the LIVE account (also needs SIGTRADE_LIVE_CONFIRM)."),
    stop_after_bars: int | None = typer.Option(None, "--stop-after-bars", min=1, max=10_000_000,
                                               help="Stop by itself after this many live bar times (smoke runs)."),
    log_level: str = typer.Option("WARNING", "--log-level", help="NautilusTrader log level (ERROR, WARNING, INFO, DEBUG)."),
) -> None:
    """Paper-trade the config's strategy on Alpaca (keys: APCA_API_KEY_ID, APCA_API_SECRET_KEY). Ctrl-C stops."""
    from engine.config import load_config
    from engine.paper import run_paper

    levels = ("ERROR", "WARNING", "INFO", "DEBUG")
    if log_level.upper() not in levels:
        from engine.errors import ConfigError, did_you_mean

        raise ConfigError(f"--log-level {log_level!r} is not one of {', '.join(levels)}"
                          f"{did_you_mean(log_level.upper(), levels)}")
    cfg = load_config(config, set_)
    from engine.outputs import check_output_dir

    check_output_dir(out, "--out", protected=[cfg.data.catalog])
    if record is not None:
        check_output_dir(record, "--record", protected=[cfg.data.catalog])
    console = Console(stderr=True, emoji=False)
    run_paper(cfg, out=out, live=live, record=record, stop_after_bars=stop_after_bars,
              status=lambda line: console.print(line, markup=False, highlight=False), log_level=log_level.upper())


def register(app: typer.Typer) -> None:
    """Register ``paper`` on *app*."""
    app.command("paper")(paper)
