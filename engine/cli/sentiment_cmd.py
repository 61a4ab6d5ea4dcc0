"""CLI: ``sigtrade sentiment score`` and ``sigtrade sentiment evaluate``.

Scoring needs torch and transformers (the ``[research]`` extra); ``engine`` never imports
``research`` or torch (a checked contract), so the commands load ``research.news`` by
module name at run time and say how to install what is missing; the help works on a
core-only install.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.errors import ConfigError, MissingExtraError

DEFAULT_MODEL = "ProsusAI/finbert"
_INSTALL = "pip install -e '.[research]' (install torch first: see README)"

sentiment_app = typer.Typer(
    name="sentiment",
    help="Score news sentiment with a transformers classifier (FinBERT by default) and evaluate scorers.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


def _news(module: str, needs: tuple[str, ...] = ("torch", "transformers")) -> ModuleType:
    """Import ``research.news.<module>`` by name, or explain which extra is missing."""
    for dep in needs:
        if importlib.util.find_spec(dep) is None:
            raise MissingExtraError(f"this command needs {dep}, part of the research stack: {_INSTALL}")
    return importlib.import_module(f"research.news.{module}")


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    )


ModelOpt = Annotated[str, typer.Option(
    "--model", help="Hugging Face model id or local model directory of a 3-class (positive/negative/neutral) sequence classifier.",
)]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", min=1, max=65_536, help="Texts per batch (default: 16 on CPU, 64-256 on a GPU).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (a GPU when present), cpu or cuda[:N].")]


@sentiment_app.command("score")
def score_command(
    catalog: Annotated[Path | None, typer.Option("--catalog", show_default=False, help="Catalog whose news to score (required).")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    batch_size: BatchOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Score every article of a catalog's news; cached per article, so re-runs score only new ones.

    Each article gets positive/negative/neutral probabilities and a score p_positive - p_negative in [-1, 1], stored in <catalog>/sigtrade_news/scores.parquet.
    """
    if catalog is None:
        raise ConfigError("--catalog DIR is required: the catalog whose news to score, e.g. --catalog catalogs/mydata")
    scoring = _news("scoring")
    if _news("store", needs=()).read_news(catalog).empty:  # before loading a model for nothing
        raise ConfigError(f"{catalog}: no news in this catalog; ingest some first: sigtrade ingest news-csv FILE --catalog {catalog}")
    with err_console.status(f"loading {escape(model)} ..."):
        scorer = scoring.load_scorer(model, device=device, batch_size=batch_size)
    with _progress("scoring") as progress:
        task = progress.add_task("", total=None)

        def step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        scores, report = scoring.score_catalog(catalog, scorer, progress=step)
    table = Table(title=f"sentiment of {report.articles} article(s) in {escape(str(catalog))}", box=box.SIMPLE_HEAD)
    for col in ("model", "device", "batch", "scored now", "from cache", "truncated", "mean score"):
        table.add_column(col, justify="right" if col not in ("model", "device") else "left")
    table.add_row(
        escape(report.model), report.device, str(report.batch_size), str(report.new), str(report.cached),
        str(report.truncated), f"{scores['score'].mean():+.3f}",
    )
    console.print(table)
    if report.truncated:
        console.print(
            f"[yellow]note:[/] {report.truncated} article(s) longer than the model's {report.max_length} tokens "
            "were cut to that length before scoring", highlight=False,
        )
    console.print(escape(f"scores: {report.path}"), highlight=False)


@sentiment_app.command("evaluate")
def evaluate_command(
    dataset: Annotated[Path | None, typer.Option(
        "--dataset", show_default=False,
        help="Labelled CSV: a label column (positive/negative/neutral) and a text column; UTF-8 or latin-1.",
    )] = None,
    model: ModelOpt = DEFAULT_MODEL,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate only the first N rows.")] = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Report accuracy, macro-F1 and the confusion matrix of a scorer on labelled sentences (e.g. Financial PhraseBank)."""
    if dataset is None:
        raise ConfigError("--dataset FILE is required: a CSV with label and text columns, e.g. Financial PhraseBank")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    evaluate = _news("evaluate")
    scoring = _news("scoring")
    data = evaluate.read_labelled(dataset, limit=limit)
    with err_console.status(f"loading {escape(model)} ..."):
        scorer = scoring.load_scorer(model, device=device, batch_size=batch_size)
    with _progress("scoring") as progress:
        task = progress.add_task("", total=len(data))

        def step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = evaluate.evaluate_scorer(scorer, data, progress=step)
    console.print(
        f"{escape(scorer.name)} on {report.n} sentence(s) of {escape(dataset.name)}: "
        f"accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}", highlight=False,
    )
    per = Table(box=box.SIMPLE_HEAD, title="per class")
    per.add_column("label")
    for col in ("precision", "recall", "f1", "support"):
        per.add_column(col, justify="right")
    for label, row in report.per_class.iterrows():
        per.add_row(str(label), f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(int(row["support"])))
    console.print(per)
    cm = Table(box=box.SIMPLE_HEAD, title="confusion (rows: true, columns: predicted)")
    cm.add_column("")
    for col in report.confusion.columns:
        cm.add_column(str(col), justify="right")
    for label, row in report.confusion.iterrows():
        cm.add_row(str(label), *(str(int(v)) for v in row))
    console.print(cm)
    if report.truncated:
        console.print(f"[yellow]note:[/] {report.truncated} sentence(s) cut to {scorer.max_length} tokens", highlight=False)


def register(app: typer.Typer) -> None:
    """Register the ``sentiment`` sub-app on *app*."""
    app.add_typer(sentiment_app, name="sentiment")
