"""MLflow tracking: every training run and every tuning trial is an MLflow run.

A tracked run records

* **params** - the whole resolved config, flattened (``model.hidden``, ``train.lr``, ...),
  and the data actually used (``data_range.start`` / ``data_range.end`` of the bars, the
  symbols, the windows and positive rate of each split);
* **metrics** - every epoch's validation and training metrics (``step`` = epoch), then
  the best epoch's (``best_<metric>``, ``best_epoch``, ``best_val_*``);
* **tags** - ``mlflow.source.git.commit`` (``git rev-parse HEAD``, or ``unknown``), the
  command, ``sigtrade.status`` (completed, early_stopped, pruned, interrupted, failed), the
  study and trial of a tuning trial;
* **artifacts** - ``run.json`` and the best checkpoint (``checkpoint/best.pt``) and, once
  the model is exported, ``model/model.onnx``, ``model/card.json``, ``model/train_config.json``.

The run ends FINISHED (pruned trials too: see the ``sigtrade.status`` tag), KILLED on
Ctrl-C (the best checkpoint is kept and logged) or FAILED on an error.

**Where runs go.** ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<cwd>/mlruns/mlflow.db`` with artifacts in ``<cwd>/mlruns/artifacts`` (MLflow 3
deprecates its plain-file store; a SQLite file is its own default backend). Browse with::

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db

Any MLflow URI works: ``http(s)://`` a shared tracking server, ``postgresql://`` /
``mysql://`` a database, ``file:`` the legacy store. The URI is checked before any data is
built or any epoch runs (a bounded request for http(s), a writable folder for sqlite and
file, a bounded connection for databases) and a problem is a :class:`ConfigError` that says
what to do. Use a database of its own for MLflow: MLflow and Optuna both keep an
``alembic_version`` table.

Tracking problems *during* training (a server that goes away) are logged as warnings and
never stop the training.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import math
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from engine.errors import ConfigError
from research.config import TrainConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from research.dataset import WindowData
    from research.train import TrainResult

__all__ = [
    "DEFAULT_EXPERIMENT",
    "RUN_LINK_FILE",
    "TrackedRun",
    "Tracker",
    "attach_export",
    "check_tracking_uri",
    "default_tracking_uri",
    "flatten",
    "git_commit",
    "tracked_run",
]

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "sigtrade"
TRACKING_DIR = "mlruns"
RUN_LINK_FILE = "mlflow_run.json"
"""Written into the run folder: which tracking URI and run recorded it (``sigtrade export`` reads it)."""
HTTP_TIMEOUT_S = 5.0
DB_TIMEOUT_S = 10
_DB_SCHEMES = ("postgresql", "postgres", "mysql", "mssql", "sqlite")
_MAX_PARAM_CHARS = 6000

EpochHook = Callable[[int, dict[str, float]], None]


# --- MLflow's own noise ----------------------------------------------------------------------


def quiet_mlflow() -> None:
    """Keep MLflow's and alembic's INFO chatter (schema migrations, run links) out of the output."""
    import mlflow  # noqa: F401 - mlflow configures its loggers on import: import first, then quiet them

    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return  # --debug: show everything
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow(\.|$)")


# --- the URI ---------------------------------------------------------------------------------


def default_tracking_uri(root: str | Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` or ``sqlite:///<root>/mlruns/mlflow.db`` (root: the working directory)."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    base = Path(root) if root is not None else Path.cwd()
    return f"sqlite:///{(base / TRACKING_DIR / 'mlflow.db').resolve()}"


def _scheme(uri: str) -> str:
    return urllib.parse.urlsplit(uri).scheme.split("+", 1)[0].lower()


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URI (None for in-memory)."""
    rest = uri.split(":", 1)[1]
    if not rest.startswith("///"):
        return None
    path = rest[3:].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _file_path(uri: str) -> Path:
    parts = urllib.parse.urlsplit(uri)
    return Path(urllib.parse.unquote(parts.path))


def _redact(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


def _writable_dir(folder: Path, uri: str, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"tracking URI '{uri}': cannot create the folder '{folder}' for {what} ({exc.strerror}); "
            "pass --tracking-uri sqlite:///<a writable folder>/mlflow.db or an http(s) server"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"tracking URI '{uri}': the folder '{folder}' for {what} is not writable; "
            "pass --tracking-uri sqlite:///<a writable folder>/mlflow.db or an http(s) server"
        )


def check_tracking_uri(uri: str, timeout: float = HTTP_TIMEOUT_S) -> str:
    """Check that *uri* can take runs, quickly and before any training; return it.

    Raises
    ------
    ConfigError
        Not a URI MLflow understands, a folder that cannot be written, a server or database
        that does not answer within *timeout* seconds.
    """
    uri = uri.strip()
    scheme = _scheme(uri)
    hint = ("use sqlite:///path/mlflow.db (local), http://host:5000 (an `mlflow server`), or "
            "--no-track to train without tracking")
    if not scheme or len(scheme) == 1:  # no scheme, or a Windows drive letter
        raise ConfigError(f"tracking URI '{uri}' has no scheme: {hint}")
    if scheme == "sqlite":
        db = _sqlite_path(uri)
        if db is None:
            raise ConfigError(f"tracking URI '{uri}': an in-memory database keeps nothing; {hint}")
        _writable_dir(db.parent, uri, "the tracking database")
        if db.exists() and not os.access(db, os.R_OK | os.W_OK):
            raise ConfigError(f"tracking URI '{uri}': '{db}' exists but is not writable; {hint}")
    elif scheme == "file":
        _writable_dir(_file_path(uri), uri, "the file store")
    elif scheme in ("http", "https"):
        _check_http(uri, timeout)
    elif scheme in _DB_SCHEMES:
        _check_database(uri, timeout)
    elif scheme not in ("databricks", "databricks-uc", "uc"):  # remote stores MLflow checks itself
        raise ConfigError(f"tracking URI '{_redact(uri)}': MLflow does not know the scheme '{scheme}://'; {hint}")
    return uri


def _check_http(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # an http(s) URI, checked above
            resp.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ConfigError(
                f"tracking server {_redact(uri)} refused the request (HTTP {exc.code}): set "
                "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
            ) from None
        # any other answer: something listens there; the experiment lookup tells the rest
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"tracking server {_redact(uri)} is unreachable ({reason}; waited at most {timeout:g} s): "
            "start it (`mlflow server --host 127.0.0.1 --port 5000`), fix --tracking-uri / "
            "MLFLOW_TRACKING_URI, or pass --no-track"
        ) from None


def _check_database(uri: str, timeout: float) -> None:
    import sqlalchemy

    try:
        url = sqlalchemy.engine.make_url(uri)
    except Exception as exc:
        raise ConfigError(f"tracking URI '{_redact(uri)}' is not a database URL ({exc})") from None
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = int(max(1, timeout))
    elif backend == "mysql":
        connect_args["connect_timeout"] = int(max(1, timeout))
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
        engine.dispose()
    except ImportError:
        from research.db_drivers import missing_driver_advice

        raise ConfigError(f"tracking URI '{_redact(uri)}': {missing_driver_advice(uri)}") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"tracking database {_redact(uri)} is unreachable ({first}): check host, port, "
            "credentials and that the server runs, or pass --no-track"
        ) from None


# --- small helpers ---------------------------------------------------------------------------


def git_commit(cwd: str | Path | None = None) -> tuple[str, bool | None]:
    """``git rev-parse HEAD`` of *cwd* (default: the working directory, then sigtrade's own
    folder) and whether tracked files differ from it; ``("unknown", None)`` without git."""
    here = Path(__file__).resolve().parent
    for folder in ([Path(cwd)] if cwd is not None else [Path.cwd(), here]):
        try:
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                  text=True, timeout=5, check=False)
            if head.returncode != 0:
                continue
            diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=folder,
                                  capture_output=True, timeout=10, check=False)
            return head.stdout.strip(), diff.returncode == 1 if diff.returncode in (0, 1) else None
        except (OSError, subprocess.SubprocessError):
            continue
    return "unknown", None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"model": {"hidden": 64}}`` -> ``{"model.hidden": "64"}`` (lists as JSON, None as "None")."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(list(value))
        else:
            out[name] = str(value)
    return {k: (v if len(v) <= _MAX_PARAM_CHARS else v[: _MAX_PARAM_CHARS - 3] + "...") for k, v in out.items()}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """Serialise first-time creation of a SQLite store between processes (schema migrations race)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- runs ------------------------------------------------------------------------------------


class TrackedRun:
    """One open MLflow run; its methods never raise on a tracking failure mid-training."""

    def __init__(self, client: MlflowClient, run_id: str, uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self.status = "running"
        """The ``sigtrade.status`` tag."""
        self._warned = False

    # everything goes through here so a server hiccup only warns
    def _safe(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # tracking must not stop a training
            if not self._warned:
                log.warning("MLflow: could not %s for run %s (%s); training goes on",
                            what, self.run_id, _first_line(exc))
                self._warned = True

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params (values as strings), 100 per request."""
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            self._safe("log params", lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        """Log the finite values of *metrics* at *step*."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _finite(v)]
        if items:
            self._safe("log metrics", lambda: self.client.log_batch(self.run_id, metrics=items))

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags (values as strings)."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        if "sigtrade.status" in tags:
            self.status = str(tags["sigtrade.status"])
        if items:
            self._safe("set tags", lambda: self.client.log_batch(self.run_id, tags=items))

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """:func:`research.train.train`'s ``on_epoch`` hook: the epoch's metrics at step *epoch*."""
        self.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)

    def log_data(self, data: WindowData) -> None:
        """The data actually used: bar range, symbols, each split's windows and positive rate."""
        params: dict[str, Any] = {
            "data_range.start": data.data_start, "data_range.end": data.data_end,
            "data_range.symbols": json.dumps(list(data.symbols)), "data_range.n_symbols": len(data.symbols),
            "data_range.purge": data.purge, "data_range.n_features": data.n_features,
        }
        for name, split in data.splits.items():
            s = split.summary()
            params[f"split.{name}.range"] = s.get("range", "")
            params[f"split.{name}.first_decision_bar"] = s.get("first_decision_bar") or ""
            params[f"split.{name}.last_decision_bar"] = s.get("last_decision_bar") or ""
            self.log_metrics({f"{name}_samples": s.get("samples"), f"{name}_pos_rate": s.get("pos_rate")})
        self.log_params(params)
        self.set_tags({"sigtrade.data_start": data.data_start, "sigtrade.data_end": data.data_end})

    def log_result(self, result: TrainResult) -> None:
        """The best epoch and its validation metrics, the final status, the throughput."""
        v = result.validation
        step = result.epochs_run
        self.log_metrics({
            f"best_{result.metric_name}": result.best_metric, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "train_samples_per_s": result.samples_per_s,
            "n_parameters": result.n_parameters,
            **{f"best_val_{k}": v[k] for k in ("f1", "precision", "recall", "accuracy", "pr_auc",
                                               "roc_auc", "threshold", "loss", "f1_at_0.5") if k in v},
        }, step=step)
        self.set_tags({"sigtrade.status": result.status, "sigtrade.device": result.device})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload one file (skipped when it does not exist)."""
        p = Path(path)
        if p.is_file():
            self._safe(f"log {p.name}", lambda: self.client.log_artifact(self.run_id, str(p), artifact_path))

    def log_run_files(self, run_dir: str | Path) -> None:
        """``run.json`` and the best checkpoint of a run folder."""
        from research.train import CHECKPOINT_FILE, RUN_FILE

        self.log_artifact(Path(run_dir) / RUN_FILE)
        self.log_artifact(Path(run_dir) / CHECKPOINT_FILE, "checkpoint")

    def log_model_dir(self, model_dir: str | Path) -> None:
        """An exported artifact folder: ``model.onnx``, ``card.json``, ``train_config.json`` under ``model/``."""
        from models.card import CARD_FILE, MODEL_FILE
        from research.config import MODEL_CONFIG_FILE

        for name in (MODEL_FILE, CARD_FILE, MODEL_CONFIG_FILE):
            self.log_artifact(Path(model_dir) / name, "model")
        self.set_tags({"sigtrade.model_dir": str(Path(model_dir).resolve())})

    def finish(self, status: str) -> None:
        """End the run: FINISHED, FAILED or KILLED."""
        self._safe(f"mark the run {status}", lambda: self.client.set_terminated(self.run_id, status))


class Tracker:
    """An MLflow store and experiment, checked on construction (before any training).

    Parameters
    ----------
    uri : str, optional
        Tracking URI; default :func:`default_tracking_uri`.
    experiment : str
        Experiment name, created if needed (for a local store its artifacts go beside the
        database, in ``<folder>/artifacts``).
    """

    def __init__(self, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> None:
        quiet_mlflow()
        self.uri = check_tracking_uri(uri or default_tracking_uri())
        self.experiment_name = experiment
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._experiment(experiment)
        self.last_run_id: str | None = None

    def _artifact_location(self, experiment: str) -> str | None:
        scheme = _scheme(self.uri)
        if scheme == "sqlite":
            db = _sqlite_path(self.uri)
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "experiment"
            return (db.parent / "artifacts" / safe).resolve().as_uri() if db else None
        return None  # a server or file store places artifacts itself

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        db = _sqlite_path(self.uri) if _scheme(self.uri) == "sqlite" else None
        try:
            with _file_lock(db):  # two workers must not both create the schema
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    try:
                        return str(self.client.create_experiment(name, self._artifact_location(name)))
                    except MlflowException as exc:  # another process created it meanwhile
                        exp = self.client.get_experiment_by_name(name)
                        if exp is None:
                            raise exc from None
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"tracking URI {_redact(self.uri)} cannot be used ({_first_line(exc)}): fix "
                "--tracking-uri / MLFLOW_TRACKING_URI, or pass --no-track"
            ) from None
        if exp.lifecycle_stage == "deleted":
            raise ConfigError(
                f"MLflow experiment '{name}' is deleted: restore it (`mlflow experiments restore "
                f"--experiment-id {exp.experiment_id}`) or pick another experiment name"
            )
        return str(exp.experiment_id)

    @contextlib.contextmanager
    def run(
        self,
        cfg: TrainConfig,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        *,
        parent_run_id: str | None = None,
        run_dir: str | Path | None = None,
        command: str | None = None,
    ) -> Iterator[TrackedRun]:
        """A run with the flattened config as params; FINISHED / KILLED (Ctrl-C) / FAILED at the end."""
        commit, dirty = git_commit()
        all_tags: dict[str, str] = {
            "mlflow.source.git.commit": commit,
            "mlflow.source.type": "LOCAL",
            "mlflow.source.name": command or "research.train.train",
            "mlflow.user": _user(),
            "sigtrade.git_commit": commit,
            "sigtrade.git_dirty": "unknown" if dirty is None else str(dirty).lower(),
            "sigtrade.config_name": cfg.run_name,
            "sigtrade.architecture": _architecture(cfg),
            "sigtrade.status": "running",
        }
        if command:
            all_tags["sigtrade.command"] = command
        if run_dir is not None:
            all_tags["sigtrade.run_dir"] = str(Path(run_dir).resolve())
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        try:
            info = self.client.create_run(self.experiment_id, run_name=run_name or cfg.run_name,
                                          tags=all_tags).info
        except Exception as exc:
            raise ConfigError(f"MLflow at {_redact(self.uri)} refused a new run ({_first_line(exc)})") from None
        tracked = TrackedRun(self.client, info.run_id, self.uri)
        self.last_run_id = info.run_id
        try:
            tracked.log_params(flatten(msgspec.to_builtins(cfg)))
            if run_dir is not None:
                _write_link(Path(run_dir), self.uri, self.experiment_name, info.run_id)
            yield tracked
        except KeyboardInterrupt:
            tracked.set_tags({"sigtrade.status": "interrupted"})
            tracked.finish("KILLED")
            raise
        except BaseException as exc:
            tracked.set_tags({"sigtrade.status": "failed", "sigtrade.error": _first_line(exc)[:500]})
            tracked.finish("FAILED")
            raise
        if tracked.status == "running":
            tracked.set_tags({"sigtrade.status": "completed"})
        tracked.finish("FINISHED")

    def train(
        self,
        cfg: TrainConfig,
        *,
        data: WindowData | None = None,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        run_dir: str | Path | None = None,
        command: str | None = None,
        on_epoch: EpochHook | Sequence[EpochHook] | None = None,
        on_run: Callable[[TrackedRun], None] | None = None,
        export_dir: str | Path | None = None,
        **train_kwargs: Any,
    ) -> TrainResult:
        """:func:`research.train.train` inside a tracked run; the same arguments and result.

        The data is built (and checked) before the run is created. With *export_dir*, a
        run that was not pruned is exported there and the card and ONNX file are logged.
        """
        from research import train as rtrain

        if data is None:
            data = rtrain.prepare_data(cfg)
        out = Path(run_dir) if run_dir is not None else cfg.run_path
        with self.run(cfg, run_name, tags, parent_run_id=parent_run_id, run_dir=out,
                      command=command) as tracked:
            if on_run is not None:
                on_run(tracked)
            tracked.log_data(data)
            # tracking first: a hook that raises (Ctrl-C, a pruner) must not lose the epoch
            hooks = [tracked.on_epoch, *([on_epoch] if callable(on_epoch) else list(on_epoch or []))]
            try:
                result = rtrain.train(cfg, data=data, on_epoch=hooks, run_dir=out, command=command,
                                      **train_kwargs)
            except rtrain.TrainingInterrupted as exc:
                tracked.log_result(exc.result)
                tracked.log_run_files(out)
                raise
            tracked.log_result(result)
            tracked.log_run_files(out)
            if export_dir is not None and result.status != "pruned" and result.checkpoint is not None:
                from research.export import export

                export(out, export_dir, command=f"sigtrade export {out} --out {export_dir}")
                tracked.log_model_dir(export_dir)
        return result


def tracked_run(
    cfg: TrainConfig,
    run_name: str | None = None,
    tags: dict[str, Any] | None = None,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    parent_run_id: str | None = None,
    run_dir: str | Path | None = None,
    command: str | None = None,
) -> contextlib.AbstractContextManager[TrackedRun]:
    """``with tracked_run(cfg) as run: train(cfg, on_epoch=run.on_epoch)`` - see :meth:`Tracker.run`."""
    tracker = Tracker(tracking_uri, experiment)
    return tracker.run(cfg, run_name, tags, parent_run_id=parent_run_id, run_dir=run_dir, command=command)


def _architecture(cfg: Any) -> str:
    """A supervised config's model.architecture, or an RL config's algorithm."""
    model = getattr(cfg, "model", None)
    if model is not None and hasattr(model, "architecture"):
        return str(model.architecture)
    return str(getattr(cfg, "algorithm", "unknown"))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --- the link between a run folder and its MLflow run ------------------------------------------


def _write_link(run_dir: Path, uri: str, experiment: str, run_id: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {"tracking_uri": uri, "experiment": experiment, "run_id": run_id}
    (run_dir / RUN_LINK_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def attach_export(source: str | Path, model_dir: str | Path) -> str | None:
    """Log an exported model (card + ONNX) to the MLflow run that trained *source*.

    *source* is what ``sigtrade export`` read (a run folder or its ``best.pt``). Returns a
    line for the user (where it was logged, or why not); never raises: the export itself
    has already succeeded.
    """
    folder = Path(source)
    if folder.is_file():
        folder = folder.parent
    link = folder / RUN_LINK_FILE
    if not link.is_file():
        return None
    try:
        info = json.loads(link.read_text(encoding="utf-8"))
        uri, run_id = str(info["tracking_uri"]), str(info["run_id"])
        quiet_mlflow()
        check_tracking_uri(uri)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        client.get_run(run_id)
        tracked = TrackedRun(client, run_id, uri)
        tracked.log_model_dir(model_dir)
        if tracked._warned:
            return f"could not log the model to MLflow run {run_id} at {_redact(uri)}"
        return f"logged to MLflow run {run_id} ({_redact(uri)})"
    except Exception as exc:  # best effort
        return f"not logged to MLflow ({_first_line(exc)})"
