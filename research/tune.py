"""Hyper-parameter search with Optuna: ``sigtrade tune CONFIG --trials N``.

The search lives in the training config's ``[tune]`` table (``sigtrade train`` ignores it)::

    [tune]
    metric = "f1"               # objective: the best validation f1 / pr_auc / roc_auc of a trial
    pruner = "median"           # median, hyperband or none
    architectures = ["gru", "lstm"]   # searched as model.architecture (default: the config's)

    [tune.space.all]            # every architecture
    lr = {type = "float", low = 1e-4, high = 1e-2, log = true}
    [tune.space.gru]            # only when the trial's architecture is gru
    hidden = {type = "int", low = 16, high = 128, log = true}
    attention = {type = "categorical", choices = [true, false]}

A name is a field of ``[data]`` (``lookback``, ``purge``), ``[label]``, ``[model]`` or
``[train]``, bare when unique (``hidden``) or dotted (``model.hidden``); a misspelt one
is refused with a suggestion. Without ``[tune.space]`` a default space (learning rate,
weight decay, width, depth, dropout) is searched.

**Sampling and pruning.** TPE, seeded; the random draws of trial *n* are seeded with
``(seed, n)``, so one worker reproduces its study and several workers never draw the same
start-up points. Each epoch's validation metric is reported (``trial.report``) and the
pruner asked (``trial.should_prune``): a pruned trial stops at once, keeps its checkpoint
and is recorded as PRUNED.

**Storage.** ``sqlite:///<cwd>/runs/optuna.db`` by default; any SQLAlchemy URL
(``postgresql+psycopg2://user:pass@host:5432/db``) lets any number of ``sigtrade tune``
processes on any number of machines join one study (``--study NAME``): trial numbers are
handed out by the database, each process runs its ``--trials``. A process joining a study
created from a different config is refused. Unreachable storage is reported before any
training.

**Tracking.** Every trial is an MLflow run (see :mod:`research.tracking`) nested under
one run per worker process, in the experiment ``sigtrade-tune/<study>``; trials are tagged
with the study, trial number and worker. Completed trials are exported (ONNX + card) and
logged, so the best model of a study run on another machine can be fetched from MLflow.

Results go to ``runs/tune/<study>/``: ``trial_NNNN/`` run folders, ``best.json`` (the
best trial, its parameters and the ``sigtrade train`` command that reproduces it) and
``trials.csv``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shlex
import socket
import tempfile
import time
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import optuna

from engine.config import apply_overrides, read_toml
from engine.errors import ConfigError, DataError, did_you_mean
from engine.schema import check_unique, convert
from models.errors import ModelContractError
from research.config import (
    ARCHITECTURES,
    TrainConfig,
    config_to_dict,
    train_config_from_dict,
)

__all__ = [
    "DEFAULT_SPACE",
    "ParamSpec",
    "TuneConfig",
    "TuneSession",
    "default_storage_url",
    "load_tune_config",
    "open_storage",
    "resolve_param",
]

log = logging.getLogger(__name__)

METRICS = ("f1", "pr_auc", "roc_auc")
STORAGE_TIMEOUT_S = 10
_NOT_TUNABLE = {
    "data": {"catalog", "symbols", "bar", "train", "validation", "test"},
    "features": {"set", "version"},
    "model": {"architecture"},
    "train": {"device", "threads", "early_stopping_metric"},
    "label": set(),
}
_SECTIONS = ("data", "label", "model", "train")
_DATA_SECTIONS = ("data", "label", "features")
"""A trial that changes these needs its own windows; the others share the study's."""

Count = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
Endpoint = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]
"""A bound or step of a searched range (finite; the field's own range is checked too)."""
Scalar = str | int | float | bool


class ParamSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One searched hyper-parameter (a TOML inline table)."""

    type: Literal["int", "float", "categorical"]
    """int (suggest_int), float (suggest_float) or categorical (suggest_categorical)."""
    low: Endpoint | None = None
    """int / float: lower bound (inclusive)."""
    high: Endpoint | None = None
    """int / float: upper bound (inclusive)."""
    step: Endpoint | None = None
    """int / float: grid step (not with log)."""
    log: bool = False
    """int / float: sample on a log scale (low > 0)."""
    choices: list[Scalar] | None = None
    """categorical: the values."""


class TuneConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[tune]`` table of a training config."""

    metric: Literal["f1", "pr_auc", "roc_auc"] = "f1"
    """Objective, maximised: a trial's best validation value (also its early-stopping metric)."""
    pruner: Literal["median", "hyperband", "none"] = "median"
    """median (stop a trial below the median of earlier trials at the same epoch), hyperband or none."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 42
    """Seed of the TPE sampler (per trial: seed and trial number)."""
    startup_trials: Count = 5
    """Random trials before TPE models the space."""
    prune_startup_trials: Count = 3
    """median: trials that must finish before any trial is pruned."""
    prune_warmup_epochs: Count = 1
    """median: epochs every trial runs before it can be pruned."""
    min_epochs: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    """hyperband: the smallest epoch budget of a bracket (max: train.epochs)."""
    reduction_factor: Annotated[int, msgspec.Meta(ge=2, le=100)] = 3
    """hyperband: keep 1/reduction_factor of the trials at each rung."""
    architectures: list[str] = msgspec.field(default_factory=list)
    """Architectures to search (as model.architecture); empty = the config's model.architecture."""
    export_trials: bool = True
    """Export every completed trial (ONNX + card) and log it to the trial's MLflow run."""
    space: dict[str, dict[str, ParamSpec]] = msgspec.field(default_factory=dict)
    """Search spaces: [tune.space.all] for every architecture, [tune.space.<arch>] for one; empty = DEFAULT_SPACE."""


def _spec(type_: str, low: float | None = None, high: float | None = None, *, log: bool = False,
          choices: list[Scalar] | None = None) -> ParamSpec:
    return ParamSpec(type=type_, low=low, high=high, log=log, choices=choices)  # type: ignore[arg-type]


DEFAULT_SPACE: dict[str, dict[str, ParamSpec]] = {
    "all": {
        "train.lr": _spec("float", 1e-4, 1e-2, log=True),
        "train.weight_decay": _spec("float", 1e-6, 1e-2, log=True),
        "model.hidden": _spec("int", 16, 128, log=True),
        "model.layers": _spec("int", 1, 3),
        "model.dropout": _spec("float", 0.0, 0.5),
    },
    "cnn_lstm": {"model.kernel_size": _spec("categorical", choices=[3, 5, 7])},
}
"""Searched when the config has no ``[tune.space]``."""


# --- names -----------------------------------------------------------------------------------


def _section_fields() -> dict[str, tuple[str, ...]]:
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for section in _SECTIONS:
        struct = hints[section]
        out[section] = tuple(f for f in struct.__struct_fields__ if f not in _NOT_TUNABLE[section])
    return out


def _tunable_names() -> tuple[dict[str, str], list[str]]:
    """``{name: dotted}`` for dotted names and unique bare names; and every name (for hints)."""
    fields = _section_fields()
    dotted = {f"{s}.{f}": f"{s}.{f}" for s, fs in fields.items() for f in fs}
    bare: dict[str, list[str]] = {}
    for s, fs in fields.items():
        for f in fs:
            bare.setdefault(f, []).append(f"{s}.{f}")
    names = dict(dotted)
    names.update({b: d[0] for b, d in bare.items() if len(d) == 1})
    return names, sorted(set(names))


def resolve_param(name: str) -> str:
    """The dotted config path of a searched name (``hidden`` -> ``model.hidden``).

    Raises
    ------
    ConfigError
        Not a tunable field; the message suggests the closest one.
    """
    names, every = _tunable_names()
    if name in names:
        return names[name]
    hint = did_you_mean(name, every) or did_you_mean(name.split(".")[-1], every)
    fields = _section_fields()
    listing = "; ".join(f"[{s}] {', '.join(fs)}" for s, fs in fields.items())
    raise ConfigError(f"tune.space: '{name}' is not a tunable hyper-parameter{hint} (tunable: {listing})")


# --- loading ---------------------------------------------------------------------------------


def _convert(raw: Any, struct: type[msgspec.Struct], where: str, source: str) -> Any:
    return convert(raw, struct, source, prefix=where)


def tune_config_from_dict(raw: dict[str, Any], cfg: TrainConfig, source: str = "config") -> TuneConfig:
    """Validate a ``[tune]`` table against the training config *cfg* (names, ranges, architectures)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [tune] must be a table")
    tune = _convert({k: v for k, v in raw.items() if k != "space"}, TuneConfig, "tune", source)
    space_raw = raw.get("space", {})
    if not isinstance(space_raw, dict):
        raise ConfigError(f"{source}: [tune.space] must be a table of [tune.space.<all|architecture>] tables")
    if tune.architectures:
        check_unique(list(tune.architectures), f"{source}: tune.architectures", "architecture")
    for arch in tune.architectures:
        if arch not in ARCHITECTURES:
            raise ConfigError(f"{source}: tune.architectures: '{arch}' is unknown{did_you_mean(arch, ARCHITECTURES)} "
                              f"(choose from {', '.join(ARCHITECTURES)})")
    for key in space_raw:
        if key != "all" and key not in ARCHITECTURES:
            raise ConfigError(f"{source}: [tune.space.{key}]: '{key}' is neither 'all' nor an architecture"
                              f"{did_you_mean(key, ('all', *ARCHITECTURES))} (use all, {', '.join(ARCHITECTURES)})")
    resolved: dict[str, dict[str, ParamSpec]] = {}
    for key, params in (space_raw or msgspec.to_builtins(DEFAULT_SPACE)).items():
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: [tune.space.{key}] must be a table of name = {{type = ...}}")
        resolved[key] = {}
        for name, spec_raw in params.items():
            dotted = resolve_param(name)
            spec = _convert(spec_raw, ParamSpec, f"tune.space.{key}.{name}", source)
            _check_spec(f"{source}: tune.space.{key}.{name}", spec)
            if dotted in resolved[key]:
                raise ConfigError(f"{source}: tune.space.{key} names {dotted} twice")
            resolved[key][dotted] = spec
    tune = msgspec.structs.replace(tune, space=resolved)
    for arch in _architectures(tune, cfg):
        _check_values(tune, cfg, arch, source)
    return tune


def _check_spec(where: str, spec: ParamSpec) -> None:
    if spec.type == "categorical":
        if not spec.choices:
            raise ConfigError(f"{where}: a categorical needs choices = [...]")
        if spec.low is not None or spec.high is not None or spec.log or spec.step is not None:
            raise ConfigError(f"{where}: a categorical takes only choices (no low / high / step / log)")
        return
    if spec.choices is not None:
        raise ConfigError(f"{where}: choices are for type = \"categorical\"")
    if spec.low is None or spec.high is None:
        raise ConfigError(f"{where}: type = \"{spec.type}\" needs low and high")
    if spec.low > spec.high:
        raise ConfigError(f"{where}: low = {spec.low:g} is above high = {spec.high:g}")
    if spec.log and spec.low <= 0:
        raise ConfigError(f"{where}: log = true needs low > 0 (got {spec.low:g})")
    if spec.log and spec.step is not None:
        raise ConfigError(f"{where}: step and log = true cannot be combined")
    if spec.step is not None and spec.step <= 0:
        raise ConfigError(f"{where}: step must be > 0")
    if spec.type == "int":
        for key in ("low", "high", "step"):
            value = getattr(spec, key)
            if value is not None and float(value) != int(value):
                raise ConfigError(f"{where}: {key} = {value:g} is not an integer (type = \"int\")")


def _architectures(tune: TuneConfig, cfg: TrainConfig) -> list[str]:
    return list(tune.architectures) or [cfg.model.architecture]


def space_for(tune: TuneConfig, arch: str) -> dict[str, ParamSpec]:
    """The searched parameters of *arch*: ``all`` then the architecture's own (which win)."""
    space = tune.space or DEFAULT_SPACE
    return {**space.get("all", {}), **space.get(arch, {})}


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    section, key = dotted.split(".", 1)
    tree[section] = {**tree.get(section, {}), key: value}


def _endpoints(spec: ParamSpec) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    if spec.type == "int":
        return [int(spec.low or 0), int(spec.high or 0)]
    return [float(spec.low or 0.0), float(spec.high or 0.0)]


def _check_values(tune: TuneConfig, cfg: TrainConfig, arch: str, source: str) -> None:
    """Every end of every range must make a valid config (one at a time, the rest as configured)."""
    base = config_to_dict(cfg)
    _set_path(base, "model.architecture", arch)
    _set_path(base, "train.early_stopping_metric", tune.metric)
    try:
        train_config_from_dict(base, source)
    except ConfigError as exc:
        raise ConfigError(f"tune.architectures = {arch}: {exc}") from None
    for dotted, spec in space_for(tune, arch).items():
        for value in _endpoints(spec):
            raw = config_to_dict(cfg)
            _set_path(raw, "model.architecture", arch)
            _set_path(raw, dotted, value)
            try:
                train_config_from_dict(raw, source)
            except ConfigError as exc:
                raise ConfigError(f"tune.space ({arch}): {dotted} = {value!r} gives an invalid "
                                  f"config: {exc}") from None


def load_tune_config(path: str | Path, overrides: list[str] | None = None) -> tuple[TrainConfig, TuneConfig]:
    """Load a training config and its ``[tune]`` table; ``--set`` overrides either (``tune.pruner=none``).

    An empty ``output.name`` becomes the file's stem, as for ``sigtrade train``.
    """
    p = Path(path)
    raw = read_toml(p, "training config", "config/train_demo_gru.toml")
    raw = apply_overrides(raw, list(overrides or []))
    tune_raw = raw.pop("tune", {})
    cfg = train_config_from_dict(raw, str(p))
    if not cfg.output.name:
        cfg = msgspec.structs.replace(cfg, output=msgspec.structs.replace(cfg.output, name=p.stem))
    return cfg, tune_config_from_dict(tune_raw, cfg, str(p))


# --- storage ---------------------------------------------------------------------------------


def default_storage_url(runs: str | Path | None = None) -> str:
    """``sqlite:///<runs>/optuna.db``; *runs* defaults to ``runs/`` in the working directory."""
    base = Path(runs) if runs is not None else Path.cwd() / "runs"
    return f"sqlite:///{(base / 'optuna.db').resolve()}"


def tune_root(cfg: TrainConfig) -> Path:
    """Where a study's files go: beside ``output.run_dir`` when the config names one, else ``runs/``."""
    return Path(cfg.output.run_dir) if cfg.output.run_dir else Path("runs")


def _redacted(url: Any) -> str:
    try:
        return str(url.render_as_string(hide_password=True))
    except AttributeError:
        return str(url)


def open_storage(url: str | None = None, *, heartbeat_s: int | None = 60,
                 timeout_s: int = STORAGE_TIMEOUT_S) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for *url* (default :func:`default_storage_url`), checked now.

    Several processes may open the same fresh database at once: creating the schema is
    retried when another process wins the race.

    Raises
    ------
    ConfigError
        Not a database URL, a missing driver, or a server that does not answer within
        *timeout_s* seconds.
    """
    import sqlalchemy
    import sqlalchemy.exc

    text = (url or default_storage_url()).strip()
    example = "e.g. sqlite:///runs/optuna.db or postgresql+psycopg2://user:password@host:5432/db"
    try:
        parsed = sqlalchemy.engine.make_url(text)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"--storage '{text}' is not a database URL: {example}") from None
    shown = _redacted(parsed)
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise ConfigError(f"--storage '{text}': an in-memory study is lost when the process ends "
                              f"and cannot be shared: {example}")
        folder = Path(db).resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--storage '{text}': cannot create '{folder}' ({exc.strerror})") from None
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"--storage '{text}': '{folder}' is not writable")
        engine_kwargs["connect_args"] = {"timeout": 60}  # wait for another process's write lock
    elif backend in ("postgresql", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": timeout_s}
    last: Exception | None = None
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    text, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
                    grace_period=None if heartbeat_s is None else 3 * heartbeat_s,
                )
        except ImportError:
            from research.db_drivers import missing_driver_advice

            raise ConfigError(f"--storage {shown}: {missing_driver_advice(text)}") from None
        except sqlalchemy.exc.NoSuchModuleError as exc:
            raise ConfigError(f"--storage {shown}: {_first(exc)}; {example}") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            last = exc  # another worker is creating the same tables: try again
            time.sleep(0.5 + random.random() * (attempt + 1))
        except sqlalchemy.exc.OperationalError as exc:
            raise ConfigError(
                f"--storage {shown} is unreachable ({_first(exc)}): check host, port, user, password "
                "and database, and that the server runs and accepts connections from this machine"
            ) from None
        except sqlalchemy.exc.ArgumentError as exc:
            raise ConfigError(f"--storage {shown}: {_first(exc)}; {example}") from None
    raise ConfigError(f"--storage {shown}: could not create the study tables ({_first(last)})")


def _first(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.removeprefix("(psycopg2.OperationalError) ")


# --- sampler, pruner -------------------------------------------------------------------------


class TrialSeededTPESampler(optuna.samplers.TPESampler):
    """TPE whose random draws for trial *n* are seeded with ``(seed, n)``.

    One process reproduces its study exactly; concurrent workers (which all pass the same
    seed) still draw different start-up points, because trial numbers are unique.
    """

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed = int(seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Reseed from the trial number, then do what TPE does."""
        s = (self._base_seed * 1_000_003 + 7919 * trial.number) % (2**32)
        rng = getattr(getattr(self, "_rng", None), "rng", None)
        if rng is not None:
            rng.seed(s)
        inner = getattr(getattr(getattr(self, "_random_sampler", None), "_rng", None), "rng", None)
        if inner is not None:
            inner.seed((s + 1) % (2**32))
        super().before_trial(study, trial)


def make_pruner(tune: TuneConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    """The pruner of ``tune.pruner``."""
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.prune_startup_trials,
                                           n_warmup_steps=tune.prune_warmup_epochs)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min(tune.min_epochs, max_epochs),
                                              max_resource=max_epochs,
                                              reduction_factor=tune.reduction_factor)
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    """Draw one value of *spec* for *trial*."""
    if spec.type == "categorical":
        return trial.suggest_categorical(name, list(spec.choices or []))
    if spec.type == "int":
        return trial.suggest_int(name, int(spec.low or 0), int(spec.high or 0),
                                 step=int(spec.step or 1), log=spec.log)
    return trial.suggest_float(name, float(spec.low or 0.0), float(spec.high or 0.0), step=spec.step,
                               log=spec.log)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


# --- the session -----------------------------------------------------------------------------


@dataclass
class TuneSummary:
    """Where a study stands after this worker's trials."""

    study: str
    storage: str
    metric: str
    out_dir: Path
    counts: dict[str, int]
    worker_trials: int
    best_number: int | None = None
    best_value: float = float("nan")
    best_params: dict[str, Any] = field(default_factory=dict)
    best_command: str = ""
    best_run_id: str | None = None
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (``best.json``)."""
        return {
            "study": self.study, "storage": self.storage, "metric": self.metric, "direction": "maximize",
            "counts": self.counts, "best_trial": self.best_number, "best_value": self.best_value,
            "best_params": self.best_params, "best_command": self.best_command,
            "best_mlflow_run_id": self.best_run_id,
        }


class TuneSession:
    """One worker's view of a study: storage, study, tracker and data, all checked on creation.

    Parameters
    ----------
    cfg, tune : TrainConfig, TuneConfig
        The training config and its ``[tune]`` table (:func:`load_tune_config`).
    storage : str, optional
        SQLAlchemy URL; default :func:`default_storage_url`.
    study_name : str, optional
        Default: the config's name.
    tracking_uri : str, optional
        MLflow URI (see :mod:`research.tracking`); ignored when *track* is False.
    config_path, overrides : optional
        How the config was given, for the reproduction commands.
    pruner : optuna pruner, optional
        Replaces the configured one (tests, custom schedules).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        tune: TuneConfig,
        *,
        storage: str | None = None,
        study_name: str | None = None,
        tracking_uri: str | None = None,
        track: bool = True,
        config_path: str | Path | None = None,
        overrides: list[str] | None = None,
        out_root: str | Path | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial outcomes are reported by on_trial
        self.cfg = cfg
        self.tune = tune
        self.study_name = study_name or cfg.run_name
        self.config_path = str(config_path) if config_path is not None else None
        self.overrides = list(overrides or [])
        self.out_dir = (Path(out_root) if out_root is not None else tune_root(cfg) / "tune") / self.study_name
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        # 1. storage and study (fail before any data or training)
        self.storage = open_storage(storage or default_storage_url(tune_root(cfg)))
        self.storage_shown = _redacted_url(self.storage.url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                self.study = optuna.create_study(
                    study_name=self.study_name, storage=self.storage, direction="maximize",
                    sampler=TrialSeededTPESampler(tune.seed, n_startup_trials=tune.startup_trials),
                    pruner=pruner or make_pruner(tune, cfg.train.epochs), load_if_exists=True,
                )
            except ValueError as exc:  # e.g. an existing study with another direction
                raise ConfigError(f"study '{self.study_name}' in {self.storage_shown}: {exc}") from None
        self._check_same_config()
        # 2. tracking
        self.tracker = None
        if track:
            from research.tracking import Tracker

            self.tracker = Tracker(tracking_uri, experiment=f"sigtrade-tune/{self.study_name}")
        self._data: dict[str, Any] = {}
        self.worker_trials = 0

    # -- guards --------------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """Hash of what defines the study: the training config and the search.

        Left out: what may differ between machines (the catalog's path, threads, device) and
        the output names.
        """
        cfg = config_to_dict(self.cfg)
        cfg.pop("output", None)
        cfg["data"].pop("catalog", None)
        for key in ("threads", "device"):
            cfg["train"].pop(key, None)
        tune = msgspec.to_builtins(self.tune)
        tune.pop("export_trials", None)
        blob = json.dumps({"config": cfg, "tune": tune}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _check_same_config(self) -> None:
        mine = self.fingerprint()
        theirs = self.study.user_attrs.get("sigtrade.config_fingerprint")
        if theirs is None:
            self.study.set_user_attr("sigtrade.config_fingerprint", mine)
            self.study.set_user_attr("sigtrade.metric", self.tune.metric)
            self.study.set_user_attr("sigtrade.config", self.config_path or self.cfg.run_name)
        elif theirs != mine:
            raise ConfigError(
                f"study '{self.study_name}' in {self.storage_shown} was created from a different config "
                f"or search space (fingerprint {theirs}, this one {mine}): join it with the same file and "
                "--set overrides, or start a new study with --study NAME"
            )

    # -- data ----------------------------------------------------------------------------------

    def data_for(self, cfg: TrainConfig) -> Any:
        """The windows of *cfg*, shared by every trial with the same data, label and features."""
        from research.train import prepare_data

        raw = config_to_dict(cfg)
        key = json.dumps({k: raw[k] for k in _DATA_SECTIONS}, sort_keys=True, default=str)
        if key not in self._data:
            if len(self._data) >= 2:  # keep memory bounded when lookback / labels are searched
                self._data.pop(next(iter(self._data)))
            self._data[key] = prepare_data(cfg)
        return self._data[key]

    def prepare(self) -> Any:
        """Build (and check) the config's own windows now, before the first trial."""
        return self.data_for(self.trial_config({}, 0)[0])

    # -- trials --------------------------------------------------------------------------------

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's hyper-parameters (dotted names)."""
        archs = _architectures(self.tune, self.cfg)
        params: dict[str, Any] = {}
        if len(archs) > 1:
            params["model.architecture"] = trial.suggest_categorical("model.architecture", archs)
        arch = params.get("model.architecture", archs[0])
        for name, spec in space_for(self.tune, arch).items():
            params[name] = suggest(trial, name, spec)
        if len(archs) == 1 and arch != self.cfg.model.architecture:
            params["model.architecture"] = arch
        return params

    def trial_dir(self, number: int) -> Path:
        """``runs/tune/<study>/trial_NNNN``."""
        return self.out_dir / f"trial_{number:04d}"

    def trial_config(self, params: dict[str, Any], number: int) -> tuple[TrainConfig, str]:
        """The training config of a trial and the ``sigtrade train`` command that reproduces it."""
        raw = config_to_dict(self.cfg)
        sets = [f"train.early_stopping_metric={self.tune.metric}"] if (
            self.cfg.train.early_stopping_metric != self.tune.metric) else []
        for name, value in {"train.early_stopping_metric": self.tune.metric, **params}.items():
            _set_path(raw, name, value)
        sets += [f"{name}={_toml_value(value)}" for name, value in params.items()]
        name = f"{self.study_name}-trial{number:04d}"
        _set_path(raw, "output.name", name)
        _set_path(raw, "output.run_dir", str(self.trial_dir(number)))
        cfg = train_config_from_dict(raw, f"trial {number}")
        base = ["sigtrade", "train", self.config_path or "CONFIG"]
        for item in [o for o in self.overrides if not o.strip().startswith("tune.")] + sets:
            base += ["--set", item]
        base += ["--set", f"output.name={json.dumps(name)}"]
        return cfg, shlex.join(base)

    def objective(self, trial: optuna.Trial, parent_run_id: str | None = None) -> float:
        """Train one trial; report every epoch's metric; raise TrialPruned when pruned."""
        params = self.sample(trial)
        cfg, command = self.trial_config(params, trial.number)
        run_dir = self.trial_dir(trial.number)
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("command", command)
        metric_key = f"val_{self.tune.metric}"

        def report(epoch: int, metrics: dict[str, float]) -> None:
            value = metrics.get(metric_key, float("nan"))
            if math.isfinite(value):
                trial.report(float(value), epoch)

        def prune(epoch: int, metrics: dict[str, float]) -> bool:
            return trial.should_prune()

        data = self.data_for(cfg)
        self.worker_trials += 1
        if self.tracker is not None:
            tags = {"sigtrade.kind": "tune-trial", "sigtrade.study": self.study_name,
                    "sigtrade.trial": trial.number, "sigtrade.worker": self.worker,
                    "sigtrade.storage": self.storage_shown,
                    **{f"tune.{k}": v for k, v in params.items()}}
            export_dir = run_dir / "model" if self.tune.export_trials else None
            result = self.tracker.train(
                cfg, data=data, run_name=f"{self.study_name} #{trial.number}", tags=tags,
                parent_run_id=parent_run_id, run_dir=run_dir, command=command,
                on_epoch=report, should_prune=prune, export_dir=export_dir,
                on_run=lambda run: trial.set_user_attr("mlflow_run_id", run.run_id),
            )
        else:
            from research.train import train

            result = train(cfg, data=data, run_dir=run_dir, command=command, on_epoch=report,
                           should_prune=prune)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("epochs_run", result.epochs_run)
        trial.set_user_attr("best_epoch", result.best_epoch)
        if result.status == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs_run}")
        value = float(result.best_metric)
        return value if math.isfinite(value) else float("nan")

    def optimize(
        self,
        n_trials: int,
        *,
        timeout: float | None = None,
        on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    ) -> TuneSummary:
        """Run *n_trials* trials in this process (others may run theirs at the same time).

        A trial whose sampled config or data is refused (a ConfigError / DataError) is
        recorded as FAIL with the reason and the study goes on. Ctrl-C stops after marking
        the running trial FAIL and its MLflow run KILLED; the summary is still written.
        """
        callbacks = [lambda study, frozen: on_trial(frozen)] if on_trial is not None else []
        catch = (ConfigError, DataError, ModelContractError)

        def run(parent: str | None) -> None:
            self.study.optimize(lambda t: self.objective(t, parent), n_trials=n_trials, timeout=timeout,
                                catch=catch, callbacks=callbacks, gc_after_trial=True)

        if self.tracker is None:
            run(None)
            return self.summarize()
        tags = {"sigtrade.kind": "tune-worker", "sigtrade.study": self.study_name,
                "sigtrade.worker": self.worker, "sigtrade.storage": self.storage_shown}
        with self.tracker.run(self.cfg, f"{self.study_name} worker {self.worker}", tags,
                              command=self._command(n_trials)) as parent:
            try:
                run(parent.run_id)
            finally:
                summary = self.summarize()
                parent.log_metrics({"best_value": summary.best_value, "worker_trials": self.worker_trials,
                                    **{f"study_{k}": v for k, v in summary.counts.items()}})
                parent.set_tags({"sigtrade.best_trial": summary.best_number})
                for file in summary.files:
                    parent.log_artifact(file, "study")
        return summary

    def _command(self, n_trials: int) -> str:
        parts = ["sigtrade", "tune", self.config_path or "CONFIG", "--trials", str(n_trials),
                 "--study", self.study_name]
        for item in self.overrides:
            parts += ["--set", item]
        return shlex.join(parts)

    # -- results -------------------------------------------------------------------------------

    def summarize(self) -> TuneSummary:
        """Count the study's trials, find the best, write ``best.json`` and ``trials.csv``."""
        trials = self.study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        summary = TuneSummary(study=self.study_name, storage=self.storage_shown, metric=self.tune.metric,
                              out_dir=self.out_dir, counts=counts, worker_trials=self.worker_trials)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
                    and math.isfinite(t.value)]
        if complete:
            best = max(complete, key=lambda t: (t.value, -t.number))
            summary.best_number, summary.best_value = best.number, float(best.value or 0.0)
            summary.best_params = dict(best.params)
            summary.best_command = str(best.user_attrs.get("command", ""))
            summary.best_run_id = best.user_attrs.get("mlflow_run_id")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        best_file = self.out_dir / "best.json"
        _write_text(best_file, json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
        summary.files.append(best_file)
        try:
            frame = self.study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs",
                                                       "datetime_start", "duration"))
            csv_file = self.out_dir / "trials.csv"
            _write_text(csv_file, frame.to_csv(index=False))
            summary.files.append(csv_file)
        except Exception as exc:  # the CSV is a convenience
            log.warning("could not write trials.csv: %s", exc)
        return summary

    def best_checkpoint(self, summary: TuneSummary, scratch: Path) -> Path:
        """The best trial's run folder here, or its checkpoint fetched from its MLflow run."""
        if summary.best_number is None:
            raise ConfigError(f"study '{self.study_name}' has no completed trial yet: nothing to export")
        best = next(t for t in self.study.get_trials(deepcopy=False) if t.number == summary.best_number)
        run_dir = Path(str(best.user_attrs.get("run_dir", "")))
        if (run_dir / "best.pt").is_file():
            return run_dir
        run_id = best.user_attrs.get("mlflow_run_id")
        if run_id and self.tracker is not None:
            try:
                local = self.tracker.client.download_artifacts(str(run_id), "checkpoint", str(scratch))
            except Exception as exc:
                raise ConfigError(f"best trial {best.number} ran on {best.user_attrs.get('host')}; its "
                                  f"checkpoint could not be fetched from MLflow run {run_id} "
                                  f"({_first(exc)})") from None
            return Path(local)
        raise ConfigError(
            f"best trial {best.number} ran on {best.user_attrs.get('host')} ({run_dir}) and is not "
            "here; export it there (sigtrade export RUN --out models/NAME) or track with a shared "
            "MLflow server so its checkpoint can be fetched"
        )

    def export_best(self, summary: TuneSummary, out: str | Path) -> Any:
        """Export the best trial's checkpoint through :func:`research.export.export`."""
        from research.export import export

        with tempfile.TemporaryDirectory(prefix="sigtrade-best-") as scratch:
            source = self.best_checkpoint(summary, Path(scratch))
            result = export(source, out, command=shlex.join(["sigtrade", "export", str(source), "--out", str(out)]))
        if summary.best_run_id and self.tracker is not None:
            from research.tracking import TrackedRun

            TrackedRun(self.tracker.client, summary.best_run_id, self.tracker.uri).set_tags(
                {"sigtrade.exported_to": str(Path(out).resolve())})
        return result


def _redacted_url(url: str) -> str:
    import sqlalchemy

    try:
        return _redacted(sqlalchemy.engine.make_url(url))
    except Exception:
        return "<storage>"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# --- trials as tasks (sigtrade tune --cluster) ------------------------------------------------


@dataclass(frozen=True)
class TrialJob:
    """What every trial task of ``sigtrade tune --cluster`` shares: how to join the one study."""

    cfg: TrainConfig
    tune: TuneConfig
    storage: str
    """The study's SQLAlchemy URL (an RDB every task reaches: PostgreSQL for several machines)."""
    study_name: str
    tracking_uri: str | None
    track: bool
    config_path: str | None
    overrides: tuple[str, ...]
    out_root: str


def run_trial(job: TrialJob, index: int) -> dict[str, Any]:
    """The task: join the study (as a worker of its own) and run one trial; return its outcome."""
    session = TuneSession(
        job.cfg, job.tune, storage=job.storage, study_name=job.study_name, tracking_uri=job.tracking_uri,
        track=job.track, config_path=job.config_path, overrides=list(job.overrides), out_root=job.out_root,
    )
    done: list[optuna.trial.FrozenTrial] = []
    session.optimize(1, on_trial=done.append)
    if not done:
        return {"task": index, "number": None, "state": "none", "value": None, "worker": session.worker}
    t = done[0]
    return {"task": index, "number": t.number, "state": t.state.name.lower(), "value": t.value, "worker": session.worker,
            "params": dict(t.params)}
