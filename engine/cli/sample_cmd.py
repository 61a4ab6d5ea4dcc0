"""CLI: ``sigtrade sample`` writes the SYNTHETIC sample catalog (no keys, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# engine.sample imports NautilusTrader and pandas: imported when the command runs, so that
# `sigtrade --help` stays fast. These equal SampleSpec()'s defaults (a test checks it).
DEFAULTS = {"seed": 7, "n_symbols": 24, "start": "2023-01-03", "end": "2025-12-31"}
BENCHMARK = "SPY"
DEFAULT_CATALOG = Path("catalogs/sample")
console = Console(emoji=False)


def sample(
    catalog: Annotated[
        Path, typer.Option("--catalog", help="Directory of the sample catalog.")
    ] = DEFAULT_CATALOG,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; same seed, same bars.")
    ] = DEFAULTS["seed"],
    symbols: Annotated[
        int, typer.Option("--symbols", help=f"Number of symbols, {BENCHMARK} included.")
    ] = DEFAULTS["n_symbols"],
    start: Annotated[
        str, typer.Option("--start", help="First session (YYYY-MM-DD).")
    ] = DEFAULTS["start"],
    end: Annotated[str, typer.Option("--end", help="Last session (YYYY-MM-DD).")] = DEFAULTS["end"],
    force: Annotated[
        bool, typer.Option("--force", help="Regenerate even if already up to date.")
    ] = False,
) -> None:
    """Write a deterministic SYNTHETIC universe (hourly bars, NYSE calendar) for demos and tests.

    Made-up symbols (SYN01, SYN02, ...) around an index-like SPY benchmark, labelled synthetic in the catalog: never market data. Running it again with the same options does nothing.
    """
    from engine.outputs import check_output_dir
    from engine.sample import SampleSpec, is_current, write_sample

    check_output_dir(catalog, "--catalog")
    spec = SampleSpec(seed=seed, n_symbols=symbols, start=start, end=end)
    if not force and is_current(catalog, spec):
        console.print(
            f"[bold yellow]SYNTHETIC[/] sample catalog '{catalog}' is already up to date "
            f"(seed {spec.seed}, {spec.n_symbols} symbols, {spec.start} .. {spec.end}); "
            "nothing to do (use --force to regenerate). This is synthetic data, not market "
            "prices.",
            highlight=False,
        )
        return
    with console.status("generating the synthetic sample ..."):
        write_sample(catalog, spec, force=force)
    _summary(catalog, spec)


def _summary(catalog: Path, spec: Any) -> None:
    from engine.catalog import read_index

    index = read_index(catalog)
    info = index.symbols[BENCHMARK]
    names = spec.symbols
    shown = ", ".join(names[:4]) + (f", ... {names[-1]}" if len(names) > 4 else "")
    table = Table(title="SYNTHETIC sample catalog (not market data)", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("catalog", str(catalog))
    table.add_row("data", "[bold yellow]synthetic[/] (made-up symbols, generated, no network)")
    table.add_row("symbols", f"{len(names)}: {shown}")
    table.add_row("benchmark", f"{BENCHMARK} = the synthetic market factor (not the real SPY)")
    table.add_row("bars", f"{spec.bar}, {info['rows']} per symbol, NYSE calendar")
    table.add_row("range (UTC closes)", f"{info['first']} .. {info['last']}")
    table.add_row("seed", str(spec.seed))
    console.print(table)
    console.print(
        f"Wrote a [bold yellow]synthetic[/] sample to '{catalog}': made-up prices for demos "
        "and tests, never market data.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Register the command on *app*."""
    app.command("sample")(sample)
