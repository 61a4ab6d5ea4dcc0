"""Executors: run many independent tasks, locally one after another or as Ray tasks.

A task is ``fn(shared, item)``: a module-level function (so a Ray worker can import it),
the inputs every task reads (``shared``: put in Ray's object store once) and the item of
this task. :meth:`Executor.map` returns the results in the order of *items*, whatever
order the tasks finish in: results are keyed by task index, so a retried task can never
add a row twice and a missing one is an error, never a silent gap.

Progress: one callback over every task the executor runs for a command
(``on_progress(label, done, total)``); :meth:`Executor.expect` announces tasks that will
be submitted later (walk-forward windows and verify-top re-runs after the sweep chunks),
so that one bar covers the whole command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
ProgressHook = Callable[[str, int, int], None]
"""``(label, tasks done, tasks expected)``."""


class Executor:
    """Base class: task accounting and the progress hook (see the module docstring)."""

    kind = "local"
    cpus = 1
    """CPUs the tasks run on (1 locally: one task at a time)."""

    def __init__(self, on_progress: ProgressHook | None = None) -> None:
        self.on_progress = on_progress
        self.done = 0
        """Tasks finished so far (every map call of this executor)."""
        self.expected = 0
        """Tasks announced or submitted so far."""
        self.retried = 0
        """Task attempts that were lost with their worker or node and run again."""

    def expect(self, n: int) -> None:
        """Announce *n* more tasks (for the progress total)."""
        self.expected += max(0, int(n))

    def _tick(self, label: str) -> None:
        self.done += 1
        self.expected = max(self.expected, self.done)
        if self.on_progress is not None:
            self.on_progress(label, self.done, self.expected)

    def _reserve(self, n: int, announced: bool) -> None:
        if not announced:
            self.expected += n

    def map(
        self,
        fn: Callable[[Any, T], R],
        items: Sequence[T],
        *,
        shared: Any = None,
        label: str = "tasks",
        isolate: bool = False,
        announced: bool = False,
    ) -> list[R]:
        """``[fn(shared, item) for item in items]``, in order.

        Parameters
        ----------
        fn
            A module-level function (Ray imports it by name on the workers).
        items
            One task each.
        shared
            Read by every task; on Ray it goes to the object store once.
        label
            What the progress bar says.
        isolate
            Tasks that build a NautilusTrader engine: on Ray each runs alone in its worker
            process, which is recycled every few tasks. Locally the tasks run in this
            process, one after another, as a single backtest does.
        announced
            The tasks were already counted by :meth:`expect`.
        """
        self._reserve(len(items), announced)
        return self._map(fn, items, shared, label, isolate)

    def _map(self, fn: Callable[[Any, T], R], items: Sequence[T], shared: Any, label: str, isolate: bool) -> list[R]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds (a local Ray instance ends here)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """This process, one task after another: the single-machine code path."""

    def _map(self, fn: Callable[[Any, T], R], items: Sequence[T], shared: Any, label: str, isolate: bool) -> list[R]:
        out: list[R] = []
        for item in items:
            out.append(fn(shared, item))
            self._tick(label)
        return out


def make_executor(cluster: str | None, on_progress: ProgressHook | None = None, *, env: bool = True) -> Executor:
    """The executor for a ``--cluster`` option (None and no ``SIGTRADE_RAY_ADDRESS``: local).

    Ray is imported only when a cluster is asked for; without the ``[cluster]`` extra that
    is a :class:`~engine.errors.MissingExtraError` saying what to install.
    """
    from engine.cluster.address import parse_cluster

    spec = parse_cluster(cluster, env=env)
    if spec is None:
        return LocalExecutor(on_progress)
    from engine.cluster.ray_executor import RayExecutor

    return RayExecutor(spec, on_progress)
