"""CLI: ``sigtrade ingest`` - load market data into a catalog.

``ingest`` is a sub-app so each source gets its own command (``csv`` here; ``alpaca``
and ``news`` join it later). Library code raises ``DataError``/``ConfigError``; the app's
``main()`` prints them without a traceback.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.errors import ConfigError
from engine.outputs import check_output_dir, check_output_file

if TYPE_CHECKING:  # pandas and NautilusTrader load only when a command runs: `--help` stays fast
    import pandas as pd

    from engine.ingest.pipeline import IngestReport
    from engine.ingest.validate import Problem

NEW_YORK = "America/New_York"

ingest_app = typer.Typer(
    name="ingest",
    help="Load bars into a catalog (NautilusTrader ParquetDataCatalog).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


def _et(ts: pd.Timestamp | None) -> str:
    return "" if ts is None else ts.tz_convert(NEW_YORK).strftime("%Y-%m-%d %H:%M")


@ingest_app.command("csv")
def csv_command(
    # paths and --catalog are checked below rather than by click, so that a missing one is
    # a ConfigError (one line, exit 2) like every other user mistake
    paths: Annotated[list[Path] | None, typer.Argument(
        metavar="FILE_OR_DIR...", show_default=False,
        help="CSV or Parquet OHLCV files, or directories of them (one file per symbol).",
    )] = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", show_default=False,
        help="Catalog directory, e.g. catalogs/mydata (required); created if absent, other symbols in it are kept.",
    )] = None,
    symbol: Annotated[str | None, typer.Option(
        "--symbol", help="Symbol of a single file (default: the file name without _1h/_1d/_daily/_hourly).",
    )] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="Time zone of timestamps written without a UTC offset, e.g. America/New_York.",
    )] = None,
    bar: Annotated[str, typer.Option("--bar", help="Bar size of the files: 1-HOUR, 1-DAY, 30-MINUTE ...")] = "1-HOUR",
    repair: Annotated[bool, typer.Option(
        "--repair",
        help="Repair instead of refusing: sort rows, keep the last of duplicate times, drop bad and "
        "overlapping rows and an unfinished last session. The report lists every repair.",
    )] = False,
    problems_csv: Annotated[Path | None, typer.Option(
        "--problems", show_default=False,
        help="Also write every problem found (errors and warnings, not just the first few) to this CSV file.",
    )] = None,
) -> None:
    """Ingest OHLCV bars from CSV or Parquet files; all files are written, or none.

    Bars are checked first (time order, duplicates, NaNs, non-positive prices, high/low consistency, NYSE sessions, gaps). Problems are listed with file, line and value; a file with hard problems is refused unless --repair is given.
    """
    from engine.config import bar_minutes
    from engine.ingest.pipeline import IngestRefused, expand_paths, ingest_files
    from engine.ingest.readers import check_tz

    if not paths:
        raise ConfigError("no input: pass one or more CSV/Parquet files or directories, e.g. data/SPY_1h.csv")
    if catalog is None:
        raise ConfigError("--catalog DIR is required: the catalog to write into, e.g. --catalog catalogs/mydata")
    check_output_dir(catalog, "--catalog")
    bar_minutes(bar)
    check_tz(tz)
    if problems_csv is not None:
        check_output_file(problems_csv, "--problems", protected=[catalog])
    files = expand_paths(paths)
    with Progress(
        TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("", total=len(files))

        def step(path: Path) -> None:
            progress.update(task, advance=1, description=escape(path.name))

        try:
            report = ingest_files(files, catalog, symbol=symbol, tz=tz, bar=bar, repair=repair, progress=step)
        except IngestRefused as exc:
            if problems_csv is not None:
                _write_problems(problems_csv, exc.problems)
            raise
    _print_report(report)
    if problems_csv is not None:
        _write_problems(problems_csv, [p for f in report.files for p in f.problems])


def _write_problems(path: Path, problems: list[Problem]) -> None:
    import pandas as pd

    rows = [
        {"kind": p.kind, "severity": p.severity, "file": p.file, "unit": p.unit, "row": p.row,
         "column": p.column, "value": p.value, "detail": p.detail}
        for p in problems
    ]
    columns = ["kind", "severity", "file", "unit", "row", "column", "value", "detail"]
    try:
        pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    except OSError as exc:
        raise ConfigError(f"--problems {path}: cannot write it ({exc.strerror or exc}); choose another path") from exc
    err_console.print(escape(f"wrote {len(problems)} problem(s) to {path}"), highlight=False)


def _print_report(report: IngestReport) -> None:
    # file names, symbols and CSV values go through escape(): rich would read "[x]" as markup
    table = Table(
        title=f"ingested {len(report.files)} file(s) into {escape(str(report.catalog))} "
        f"({report.bar} bars, close times in New York)",
        box=box.SIMPLE_HEAD, pad_edge=False,
    )
    table.add_column("file", overflow="fold", min_width=10)
    table.add_column("symbol", overflow="fold", min_width=6)
    for name in ("rows", "kept", "warn"):
        table.add_column(name, justify="right")
    table.add_column("first close", no_wrap=True)
    table.add_column("last close", no_wrap=True)
    for f in report.files:
        table.add_row(
            escape(f.path.name), escape(f.symbol) + (" (replaced)" if f.replaced else ""), str(f.rows_in_file),
            str(f.rows_written), str(len(f.warnings)) if f.warnings else "", _et(f.first_close), _et(f.last_close),
        )
    console.print(table)

    repaired = [f for f in report.files if f.repairs()]
    if repaired:
        console.print(f"[bold]repaired[/] ({sum(f.rows_dropped for f in report.files)} row(s) dropped in all):")
        for f in repaired:
            for line in f.repairs():
                console.print(escape(f"  {f.path.name}: {line}"), highlight=False)

    warnings = report.warnings
    if warnings:
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for p in warnings:
            by_kind[p.kind].append(p)
        wt = Table(title=f"{len(warnings)} warning(s) (not refused)")
        wt.add_column("kind")
        wt.add_column("count", justify="right")
        wt.add_column("files", justify="right")
        wt.add_column("example")
        for kind, items in sorted(by_kind.items()):
            wt.add_row(kind, str(len(items)), str(len({p.file for p in items})), escape(str(items[0])))
        console.print(wt)
        per_file = Counter(p.file for p in warnings)
        if len(per_file) > 1:
            worst, n = per_file.most_common(1)[0]
            console.print(escape(f"most warnings: {Path(worst).name} ({n})"), highlight=False)

    notes = sorted({f"{f.path.name}: {n}" for f in report.files for n in f.notes})
    for note in notes[:10]:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
    if len(notes) > 10:
        console.print(f"[dim]... {len(notes) - 10} more note(s)[/]")


@ingest_app.command("alpaca")
def alpaca_command(
    symbols: Annotated[str | None, typer.Option(
        "--symbols", show_default=False, help="Comma-separated symbols, e.g. SPY,AAPL (required).",
    )] = None,
    start: Annotated[str | None, typer.Option(
        "--start", show_default=False,
        help="First bar: a date (New York) or a time with UTC offset, e.g. 2024-01-02 (required).",
    )] = None,
    end: Annotated[str | None, typer.Option(
        "--end", show_default=False, help="Last bar: a date (New York, whole day included) or a time; default now.",
    )] = None,
    bar: Annotated[str, typer.Option("--bar", help="Bar size: 1-HOUR, 1-DAY, 15-MINUTE ...")] = "1-HOUR",
    feed: Annotated[str, typer.Option("--feed", help="Alpaca feed: iex (free plan) or sip (paid).")] = "iex",
    adjustment: Annotated[str, typer.Option(
        "--adjustment", help="Corporate-action adjustment: raw, split, dividend or all.",
    )] = "raw",
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", show_default=False,
        help="Catalog directory (required); created if absent. Symbols already in it are updated incrementally.",
    )] = None,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Drop bars with hard problems instead of refusing (as `ingest csv --repair`).",
    )] = False,
) -> None:
    """Ingest bars from Alpaca's market-data API; all symbols are written, or none.

    Keys come from the environment (APCA_API_KEY_ID, APCA_API_SECRET_KEY), never from the command line. Only the range the catalog lacks is fetched; bars outside the NYSE regular session are dropped; the bars get the same checks as `ingest csv`.
    """
    import msgspec

    from engine.adapters.alpaca.config import AlpacaConfig
    from engine.adapters.alpaca.historical import ingest_alpaca

    if not symbols:
        raise ConfigError("--symbols is required, e.g. --symbols SPY,AAPL")
    if start is None:
        raise ConfigError("--start is required: the first bar to fetch, e.g. --start 2024-01-02")
    if catalog is None:
        raise ConfigError("--catalog DIR is required: the catalog to write into, e.g. --catalog catalogs/alpaca")
    check_output_dir(catalog, "--catalog")
    try:
        config = msgspec.convert({"feed": feed, "adjustment": adjustment}, AlpacaConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{exc}: --feed takes iex or sip, --adjustment raw, split, dividend or all") from exc
    from engine.adapters.alpaca.news import check_symbols

    names = check_symbols(symbols.split(","))
    with Progress(
        TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("", total=len(names))

        def step(symbol: str, received: int) -> None:
            progress.update(task, advance=1, description=escape(f"{symbol}: {received} bars"))

        report = ingest_alpaca(
            names, catalog, start=_cli_time(start, "--start", end_of_day=False),
            end=_cli_time(end, "--end", end_of_day=True) if end else None,
            bar=bar, config=config, repair=repair, progress=step,
        )
    table = Table(
        title=f"ingested {len(report.symbols)} symbol(s) from Alpaca ({report.feed}, {report.adjustment}) into "
        f"{escape(str(report.catalog))} ({report.bar} bars, close times in New York)",
        box=box.SIMPLE_HEAD, pad_edge=False,
    )
    for name, justify in (("symbol", "left"), ("received", "right"), ("ext. hours", "right"), ("new", "right"),
                          ("in catalog", "right"), ("warn", "right"), ("first close", "left"), ("last close", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in report.symbols:
        table.add_row(
            escape(s.symbol) + (" (updated)" if s.incremental else ""), str(s.received),
            str(s.extended_hours) if s.extended_hours else "", str(s.new_bars), str(s.rows_written),
            str(len(s.warnings)) if s.warnings else "", _et(s.first_close), _et(s.last_close),
        )
    console.print(table)
    dropped = sum(s.extended_hours for s in report.symbols)
    if dropped:
        console.print(f"[dim]note: dropped {dropped} bar(s) starting outside the NYSE regular session "
                      "(pre-market / after-hours)[/]")
    for s in report.symbols:
        for p in s.warnings[:3]:
            console.print(escape(f"warning: {p.kind}: {p}"), highlight=False)


def _cli_time(text: str, option: str, *, end_of_day: bool) -> pd.Timestamp:
    """A CLI time: a plain date is a New York day (its start, or its end for --end); else needs no zone."""
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text}: not a date or time; expected e.g. 2024-01-02 or 2024-01-02T14:30Z") from exc
    if ts.tzinfo is None:
        if ts != ts.normalize():
            raise ConfigError(f"{option} {text}: a time needs a UTC offset, e.g. 2024-01-02T14:30:00Z; or give a date")
        if end_of_day:  # the whole New York day: up to one second before the next midnight
            ts = (ts + pd.Timedelta(days=1)).tz_localize(NEW_YORK) - pd.Timedelta(seconds=1)
        else:
            ts = ts.tz_localize(NEW_YORK)
    return ts.tz_convert("UTC")


@ingest_app.command("news-csv")
def news_csv_command(
    path: Annotated[Path | None, typer.Argument(
        metavar="FILE", show_default=False,
        help="News CSV: id, symbols, headline, created_at (optional: summary, source, updated_at).",
    )] = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", show_default=False, help="Catalog to store the news in (required); created if absent.",
    )] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="Time zone of times written without a UTC offset, e.g. America/New_York (else they are refused).",
    )] = None,
) -> None:
    """Ingest news articles from a CSV into <catalog>/sigtrade_news/news.parquet; incremental, deduplicated by id.

    Symbols are separated by commas, semicolons, | or spaces. A repeated id keeps the row with the latest updated_at. Rows without symbols, without text or with a bad time refuse the whole file; nothing is written then.
    """
    import importlib

    from engine.ingest.readers import check_tz

    if path is None:
        raise ConfigError("no input: pass a news CSV, e.g. sigtrade ingest news-csv news.csv --catalog catalogs/mydata")
    if catalog is None:
        raise ConfigError("--catalog DIR is required: the catalog to store the news in, e.g. --catalog catalogs/mydata")
    check_output_dir(catalog, "--catalog")
    check_tz(tz)
    store = importlib.import_module("research.news.store")  # engine never imports research at module level
    report = store.ingest_news_csv(path, catalog, tz=tz)
    console.print(
        escape(f"{path.name}: {report.added} new, {report.updated} updated, {report.unchanged} unchanged "
               f"article(s); {report.total} in {report.path}"), highlight=False,
    )
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)


@ingest_app.command("news")
def news_command(
    symbols: Annotated[str | None, typer.Option(
        "--symbols", show_default=False, help="Comma-separated symbols, e.g. AAPL,MSFT (required).",
    )] = None,
    start: Annotated[str | None, typer.Option(
        "--start", show_default=False,
        help="Earliest article: a date (New York) or a time with UTC offset, e.g. 2024-01-02 (required).",
    )] = None,
    end: Annotated[str | None, typer.Option(
        "--end", show_default=False, help="Latest article: a date (New York, whole day included) or a time; default now.",
    )] = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", show_default=False, help="Catalog to store the news in (required); created if absent.",
    )] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Fetch the whole --start..--end range even when the catalog already holds news for it.",
    )] = False,
) -> None:
    """Ingest news articles from Alpaca's news API into <catalog>/sigtrade_news/news.parquet; incremental, deduplicated by id.

    Keys come from the environment (APCA_API_KEY_ID, APCA_API_SECRET_KEY), never from the command line. Only articles from the latest stored one (less an hour) are fetched; a repeated id keeps the latest updated_at. Articles naming no symbol are dropped and counted; an article without an id or with a time without zone refuses the whole answer, and nothing is written then.
    """
    import importlib

    from engine.adapters.alpaca.config import AlpacaConfig
    from engine.adapters.alpaca.news import check_symbols, fetch_news, incremental_start

    if not symbols:
        raise ConfigError("--symbols is required, e.g. --symbols AAPL,MSFT")
    if start is None:
        raise ConfigError("--start is required: the earliest article to fetch, e.g. --start 2024-01-02")
    if catalog is None:
        raise ConfigError("--catalog DIR is required: the catalog to store the news in, e.g. --catalog catalogs/mydata")
    check_output_dir(catalog, "--catalog")
    if catalog.exists() and not catalog.is_dir():
        raise ConfigError(f"--catalog {catalog} is a file, not a directory: choose a directory such as catalogs/mydata")
    names = check_symbols(symbols.split(","))
    t0 = _cli_time(start, "--start", end_of_day=False)
    t1 = _cli_time(end, "--end", end_of_day=True) if end else None
    store = importlib.import_module("research.news.store")  # engine never imports research at module level
    fetch_from = t0 if full else incremental_start(store.read_news(catalog), names, t0)
    if t1 is not None and fetch_from > t1:
        console.print(escape(f"news for {','.join(names)} is already stored up to {t1}; nothing fetched"), highlight=False)
        return
    articles, notes = fetch_news(names, fetch_from, t1, config=AlpacaConfig())
    since = "" if fetch_from == t0 else f" (incremental: from {fetch_from:%Y-%m-%d %H:%M} UTC)"
    if articles.empty:
        console.print(escape(f"Alpaca news for {','.join(names)}{since}: no articles; nothing written"), highlight=False)
        for note in notes:
            console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
        return
    report = store.merge_news(catalog, articles, notes)
    console.print(
        escape(f"Alpaca news for {','.join(names)}{since}: {len(articles)} article(s) received; {report.added} new, "
               f"{report.updated} updated, {report.unchanged} unchanged; {report.total} in {report.path}"),
        highlight=False,
    )
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Register the ``ingest`` sub-app on *app*."""
    app.add_typer(ingest_app, name="ingest")
