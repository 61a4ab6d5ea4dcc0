"""The ``sigtrade`` application: global options, the error handler and command registration.

Each verb lives in its own module with a ``register(app)`` function. Errors derived
from :class:`engine.errors.SigtradeError` are printed as one message (no traceback) and
mapped to their exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape

from engine.errors import SigtradeError
from models.errors import ModelContractError as ModelsContractError

# models/ cannot import engine/, so its errors are a tree of their own; same handling
_USER_ERRORS = (SigtradeError, ModelsContractError)

err_console = Console(stderr=True, emoji=False)
app = typer.Typer(
    name="sigtrade",
    help="Event-driven backtests and paper trading of neural-network strategies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_STATE = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and verbose logs."),
) -> None:
    """Event-driven backtests and paper trading of neural-network strategies."""
    _STATE["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def debug_enabled() -> bool:
    """Whether ``--debug`` was given."""
    return _STATE["debug"]


def _register_all() -> None:
    from engine.cli import (
        backtest_cmd,
        diagnose_cmd,
        ingest_cmd,
        models_cmd,
        paper_cmd,
        research_cmd,
        rl_cmd,
        sample_cmd,
        sentiment_cmd,
        sweep_cmd,
        tune_cmd,
    )

    for module in (ingest_cmd, sample_cmd, backtest_cmd, diagnose_cmd, sweep_cmd, models_cmd, research_cmd, tune_cmd,
                   sentiment_cmd, paper_cmd, rl_cmd):
        module.register(app)


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's usage-error and abort classes: typer >= 0.20 vendors its own click."""
    import click

    usage: list[type[BaseException]] = [click.exceptions.ClickException]
    abort: list[type[BaseException]] = [click.exceptions.Abort]
    try:
        from typer import _click as vendored  # type: ignore[attr-defined]

        usage.append(vendored.exceptions.ClickException)
        abort.append(vendored.exceptions.Abort)
    except (ImportError, AttributeError):
        pass
    return tuple(usage), tuple(abort)


INTERNAL_ERROR_LOG = "SIGTRADE_INTERNAL_ERROR_LOG"
"""Environment variable naming a file each internal error (exit 70) is appended to (the tests set it)."""


def _record_internal_error(args: list[str], exc: BaseException) -> None:
    """Append the command and traceback of an internal error to ``$SIGTRADE_INTERNAL_ERROR_LOG``."""
    import os
    import traceback

    path = os.environ.get(INTERNAL_ERROR_LOG)
    if not path:
        return
    text = "".join(traceback.format_exception(exc))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"sigtrade {' '.join(args)}\n{text}\n")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn sigtrade errors into one message and a non-zero exit."""
    _register_all()
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = app(args=args, standalone_mode=False)
    except _USER_ERRORS as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and the like
        usage, abort = _click_exceptions()
        if isinstance(exc, usage):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, abort):
            sys.exit(130)
        if debug:
            raise
        _record_internal_error(args, exc)
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
            "This is a bug in sigtrade; re-run with --debug for the traceback and report it.",
            highlight=False,
        )
        sys.exit(70)
    if isinstance(code, int) and code:  # typer.Exit(code) returns its code when not standalone
        sys.exit(code)
