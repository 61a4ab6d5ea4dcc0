"""The Ray executor: every task a Ray task, on a local instance or a cluster.

Only this module imports Ray (the ``[cluster]`` extra), and only when a command was given
``--cluster`` (or ``SIGTRADE_RAY_ADDRESS``).

* **Inputs once.** A map's ``shared`` inputs (a sweep's prepared arrays, the returns of a
  walk-forward) are ``ray.put`` once; each task gets the reference and reads them from
  the object store of its node (zero-copy for numpy arrays).
* **Results keyed.** A task's result is stored under its index; the map returns them in
  item order and checks that every index arrived exactly once.
* **Faults.** A task whose worker process dies (killed, out of memory) or whose node is
  lost is submitted again, up to ``max_retries`` times; :attr:`Executor.retried` counts
  these re-runs and the command prints it. Ray's own automatic retry is switched off for
  these tasks so that every re-run goes through here and is counted - and so that a
  re-run can never deliver a result twice. An error raised *by* the task (a bad config,
  missing data) is not retried: it is re-raised as itself, with its message.
* **Ctrl-C** cancels every outstanding task (``ray.cancel(force=True)``) before the
  command exits.
* **Processes.** A Ray worker process runs one task at a time, so an ``isolate=True``
  task (an event-engine backtest) has its process to itself: a fresh NautilusTrader
  engine, never shared and never run beside another one in that process - exactly as
  ``sigtrade backtest`` runs its strategy and benchmark engines one after the other. Such
  a worker process is replaced after :data:`ISOLATED_CALLS` tasks (``max_calls``), which
  bounds whatever a long batch could accumulate in one process; a fresh process per
  backtest (``max_calls=1``) was measured to cost ~4 s of imports and model loading per
  task here (benchmarks/cluster.py). Workers run with the driver's working directory when it exists on their node
  (relative catalog and model paths mean the same there) and with one numba / OpenMP
  thread each (one task per CPU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from engine.cluster.address import INSTALL_HINT, ClusterSpec
from engine.cluster.executor import Executor, ProgressHook
from engine.errors import ConfigError, MissingExtraError, SigtradeError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
MAX_RETRIES = 3
"""Re-runs of a task whose worker or node died, by default."""
_WAIT_S = 0.5
ISOLATED_CALLS = 16
"""Tasks an isolating worker process runs before Ray replaces it."""


def _import_ray(spec: ClusterSpec) -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            f"--cluster {spec.text} needs Ray, which is not installed: {INSTALL_HINT} "
            "(or run without --cluster / SIGTRADE_RAY_ADDRESS on this machine alone)"
        ) from None
    return ray


def run_task(fn: Callable[[Any, Any], Any], shared: Any, item: Any, cwd: str) -> Any:
    """What a Ray worker runs: ``fn(shared, item)`` in the driver's working directory."""
    if cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    return fn(shared, item)


class RayExecutor(Executor):
    """Run tasks on Ray (see the module docstring).

    Parameters
    ----------
    spec
        Where (:func:`engine.cluster.address.parse_cluster`).
    on_progress
        ``(label, done, expected)`` after every finished task.
    max_retries
        Re-runs of a task lost with its worker or node.
    object_store_mb
        Object store of a *local* instance (``local`` / ``local:N``); None = Ray's default.
    """

    kind = "ray"

    def __init__(
        self,
        spec: ClusterSpec,
        on_progress: ProgressHook | None = None,
        *,
        max_retries: int = MAX_RETRIES,
        object_store_mb: int | None = None,
    ) -> None:
        super().__init__(on_progress)
        ray = _import_ray(spec)
        self._ray = ray
        self.spec = spec
        self.max_retries = int(max_retries)
        self._remotes: dict[tuple[Any, bool], Any] = {}
        self._owned = not ray.is_initialized()
        runtime_env = {"env_vars": {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}}
        common: dict[str, Any] = {
            "runtime_env": runtime_env, "log_to_driver": False, "logging_level": logging.WARNING,
            "include_dashboard": False, "configure_logging": True,
        }
        if self._owned:
            try:
                if spec.local:
                    ray.init(
                        num_cpus=spec.num_cpus,
                        object_store_memory=None if object_store_mb is None else int(object_store_mb) * 2**20,
                        **common,
                    )
                else:
                    common.pop("include_dashboard")
                    ray.init(address=spec.address, **common)
            except ConnectionError as exc:
                raise ConfigError(
                    f"--cluster {spec.text}: no Ray cluster answered ({str(exc).splitlines()[0] if str(exc) else 'no reply'}); "
                    "start one (`ray start --head` on the head node, `ray start --address HEAD:PORT` on the others), "
                    "check the address, or use --cluster local"
                ) from None
            except (ValueError, RuntimeError) as exc:
                raise ConfigError(f"--cluster {spec.text}: Ray could not start or connect ({exc})") from None
        resources = ray.cluster_resources()
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        self.cwd = os.getcwd()

    # -- tasks ---------------------------------------------------------------------------------

    def _remote(self, fn: Callable[..., Any], isolate: bool) -> Any:
        key = (fn, isolate)
        if key not in self._remotes:
            name = f"sigtrade.{getattr(fn, '__name__', 'task')}"
            self._remotes[key] = self._ray.remote(
                num_cpus=1, max_retries=0, retry_exceptions=False, max_calls=ISOLATED_CALLS if isolate else 0,
            )(run_task).options(name=name)
        return self._remotes[key]

    def _lost(self) -> tuple[type[BaseException], ...]:
        ex = self._ray.exceptions
        names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "LocalRayletDiedError", "OutOfMemoryError")
        return tuple(getattr(ex, n) for n in names if hasattr(ex, n))

    def _map(self, fn: Callable[[Any, T], R], items: Sequence[T], shared: Any, label: str, isolate: bool) -> list[R]:
        """:meth:`Executor.map` on Ray; retries and cancellation as in the module docstring."""
        ray = self._ray
        if not items:
            return []
        shared_ref = ray.put(shared)
        remote = self._remote(fn, isolate)
        lost = self._lost()
        pending: dict[Any, tuple[int, int]] = {}  # ref -> (index, attempt)

        def submit(i: int, attempt: int) -> None:
            pending[remote.remote(fn, shared_ref, items[i], self.cwd)] = (i, attempt)

        for i in range(len(items)):
            submit(i, 0)
        results: dict[int, R] = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_WAIT_S)
                for ref in ready:
                    i, attempt = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, BaseException):
                            raise cause from None
                        raise SigtradeError(f"{label}: task {i} failed: {exc}") from None
                    except lost as exc:
                        if attempt >= self.max_retries:
                            raise SigtradeError(
                                f"{label}: task {i} was lost {attempt + 1} time(s) with its worker or node "
                                f"({type(exc).__name__}); giving up after {self.max_retries} retries"
                            ) from None
                        log.warning("%s: task %d lost (%s); running it again", label, i, type(exc).__name__)
                        self.retried += 1
                        submit(i, attempt + 1)
                        continue
                    if i in results:  # cannot happen: one live reference per index
                        raise RuntimeError(f"{label}: task {i} delivered twice")
                    results[i] = value
                    self._tick(label)
        except BaseException:
            self.cancel(list(pending))
            raise
        missing = [i for i in range(len(items)) if i not in results]
        if missing:
            raise RuntimeError(f"{label}: no result for task(s) {missing[:10]}")
        return [results[i] for i in range(len(items))]

    def cancel(self, refs: list[Any]) -> int:
        """Cancel outstanding tasks (force: their workers are killed); return how many."""
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception as exc:  # already finished, or its node is gone
                log.debug("cancel: %s", exc)
        self.cancelled = getattr(self, "cancelled", 0) + len(refs)
        return len(refs)

    def close(self) -> None:
        """Disconnect (a ``local`` instance stops; a cluster keeps running)."""
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()

    def describe(self) -> str:
        """``Ray cluster at ...: N CPUs on M node(s)``."""
        return f"{self.spec.describe()}: {self.cpus} CPU(s) on {self.nodes} node(s)"
