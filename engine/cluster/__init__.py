"""Independent units of work on one machine or on a Ray cluster (``--cluster ADDRESS``).

A command that does many independent pieces of work - sweep chunks, walk-forward
windows, ``--verify-top`` re-runs, backtest batches, per-fold / per-seed training - hands
them to an :class:`~engine.cluster.executor.Executor`:

* :class:`~engine.cluster.executor.LocalExecutor` (no ``--cluster``): one after another in
  this process, exactly the single-machine code path; Ray is never imported.
* :class:`~engine.cluster.ray_executor.RayExecutor` (``--cluster ADDRESS`` or
  ``SIGTRADE_RAY_ADDRESS``): one Ray task per piece, the shared inputs put in the object
  store once, results keyed by task id (none lost, none counted twice), worker deaths
  retried, Ctrl-C cancelling what is still outstanding.

Both run the same task functions (:mod:`engine.cluster.tasks`), so a cluster run's
results are the local run's, bit for bit. Ray lives in the ``[cluster]`` extra
(``pip install -e ".[cluster]"``) and is imported only by :mod:`engine.cluster.ray_executor`.
"""
