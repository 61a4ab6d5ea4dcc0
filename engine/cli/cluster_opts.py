"""The ``--cluster`` option shared by the commands that run many independent tasks.

:func:`task_executor` opens the executor (before any expensive work, so that a missing
``[cluster]`` extra or an unreachable cluster fails at once), shows one progress bar
over every task of the command with the cluster's CPU count, and at the end prints how
many tasks ran and how many were retried; on Ctrl-C it says how many outstanding tasks
were cancelled. Without ``--cluster`` (and ``SIGTRADE_RAY_ADDRESS``) it yields ``None``:
the command takes its single-machine path and Ray is never imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

CLUSTER_HELP = (
    "Run the independent tasks on Ray: 'auto' (the cluster running on this machine), 'local' / "
    "'local:N' (a local Ray instance with N CPUs), or HOST:PORT of a head node. Default: "
    "$SIGTRADE_RAY_ADDRESS; unset = this machine, one task after another. Needs the \\[cluster] extra."
)


@contextlib.contextmanager
def task_executor(cluster: str | None, console: Console, *, local: bool = False) -> Iterator[Any]:
    """The executor of ``--cluster`` (None without one, or a LocalExecutor when *local*).

    The progress bar is drawn on *console* when it is a terminal.
    """
    from engine.cluster.address import parse_cluster
    from engine.cluster.executor import LocalExecutor, make_executor

    spec = parse_cluster(cluster)
    if spec is None and not local:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    where = {"text": "this machine"}
    bar = progress.add_task("tasks", total=None)

    def on_progress(label: str, done: int, total: int) -> None:
        progress.update(bar, description=f"{label} on {where['text']}", completed=done, total=total)

    if spec is None:
        ex: Any = LocalExecutor(on_progress)
    else:
        with console.status(f"connecting to {spec.describe()} ..."):
            ex = make_executor(cluster, on_progress)
        where["text"] = f"{ex.cpus} CPU(s)"
        console.print(f"[dim]cluster: {ex.describe()}[/]", highlight=False)
    try:
        with progress:
            yield ex
    except KeyboardInterrupt:
        n = getattr(ex, "cancelled", 0)
        console.print(f"[yellow]interrupted[/]: {n} outstanding task(s) cancelled", highlight=False)
        raise
    finally:
        ex.close()
    if spec is not None:
        console.print(
            f"[dim]{ex.done:,} task(s) on {ex.cpus} CPU(s); {ex.retried} retried after a lost worker or node[/]",
            highlight=False,
        )
