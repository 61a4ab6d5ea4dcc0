"""Walk-forward retraining: one training run per fold x seed, locally or as Ray tasks.

``sigtrade train CONFIG --walk-forward train=24M,validation=3M,test=3M[,step=3M] --seeds 1,2,3``
rolls the config's three splits forward: fold ``k`` trains on
``[anchor + k*step, + train)``, validates (early stopping, the card threshold) on the next
``validation`` and leaves the following ``test`` untouched, like a single ``sigtrade
train``. ``anchor`` is the first day of the month of ``data.train``'s start (or of the
first bar in the catalog when the range is open). Folds run while their test range starts
on or before the last bar. Every fold is trained once per seed (``train.seed``).

Each (fold, seed) is one task (:func:`train_fold`): the very ``sigtrade train`` of the
fold's config (``--set data.train=... --set train.seed=...``), in its own run folder
``<out>/fold<k>_seed<s>``, tracked as an MLflow run (child of one parent run for the
whole walk-forward, tags ``sigtrade.fold`` / ``sigtrade.seed``) in the one tracking URI
given. Training is deterministic on CPU, so a task's result does not depend on where it
ran: ``--cluster`` gives the local run's numbers.

**Other trainers.** A task names its trainer as ``"module:function"``
(:attr:`FoldJob.trainer`, default :func:`train_supervised`): any function
``(job, fold, cfg) -> dict`` that trains ``cfg`` (the fold's config) and returns the
row of the results table plugs in - e.g. the RL policies of the RL work, trained per
fold on the same ranges and tracked the same way.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import ConfigError
from engine.stats.walk_forward import Span, parse_span
from research.config import TrainConfig, parse_range, train_config_from_dict

KEYS = ("train", "validation", "test", "step")
EXAMPLE = "train=24M,validation=3M,test=3M (optionally ,step=3M)"
DEFAULT_TRAINER = "research.walk_forward:train_supervised"


@dataclass(frozen=True)
class FoldSpec:
    """Parsed ``--walk-forward``: span lengths of each split and the step between folds."""

    train: Span
    validation: Span
    test: Span
    step: Span

    def __str__(self) -> str:
        return f"train={self.train},validation={self.validation},test={self.test},step={self.step}"


def parse_fold_spec(text: str) -> FoldSpec:
    """Parse e.g. ``train=24M,validation=3M,test=3M,step=3M`` (step defaults to test)."""
    found: dict[str, Span] = {}
    for part in (text or "").split(","):
        if "=" not in part:
            raise ConfigError(f"--walk-forward '{text}': expected key=value items, e.g. {EXAMPLE}")
        key, value = (x.strip() for x in part.split("=", 1))
        key = key.lower()
        if key not in KEYS:
            from engine.errors import did_you_mean

            raise ConfigError(f"--walk-forward key '{key}' is unknown{did_you_mean(key, KEYS)}; keys: {', '.join(KEYS)}, e.g. {EXAMPLE}")
        if key in found:
            raise ConfigError(f"--walk-forward key '{key}' is given twice")
        found[key] = parse_span(key, value)
    missing = [k for k in ("train", "validation", "test") if k not in found]
    if missing:
        raise ConfigError(f"--walk-forward '{text}' lacks {', '.join(missing)}; e.g. {EXAMPLE}")
    return FoldSpec(found["train"], found["validation"], found["test"], found.get("step", found["test"]))


@dataclass(frozen=True)
class Fold:
    """One fold's ranges (inclusive dates, as ``data.train`` etc. take them) and one seed."""

    index: int
    seed: int
    train: str
    validation: str
    test: str

    @property
    def name(self) -> str:
        """``fold02_seed7``."""
        return f"fold{self.index:02d}_seed{self.seed}"


def _day(ts: pd.Timestamp) -> str:
    return ts.date().isoformat()


def data_bounds(cfg: TrainConfig) -> tuple[dt.date, dt.date]:
    """First and last session date of the config's bars (the catalog's, for open ranges)."""
    from engine import catalog as cat
    from engine.sessions import session_of

    symbols = cat.resolve_symbols(cfg.data.catalog, cfg.data.bar, cfg.data.symbols)
    first: dt.date | None = None
    last: dt.date | None = None
    for s in symbols:
        idx = cat.read_frame(cfg.data.catalog, s, cfg.data.bar).index
        if not len(idx):
            continue
        sess = session_of(idx[[0, -1]], side="right")
        a, b = pd.Timestamp(sess[0]).date(), pd.Timestamp(sess[-1]).date()
        first = a if first is None or a < first else first
        last = b if last is None or b > last else last
    if first is None or last is None:
        raise ConfigError(f"data.catalog '{cfg.data.catalog}' has no {cfg.data.bar} bars for the config's symbols")
    return first, last


def plan_folds(cfg: TrainConfig, spec: FoldSpec, seeds: list[int], bounds: tuple[dt.date, dt.date] | None = None) -> list[Fold]:
    """Every (fold, seed), folds in time order, seeds in the order given."""
    first, last = bounds or data_bounds(cfg)
    start, _ = parse_range(cfg.data.train, "data.train")
    begin = start or first
    anchor = pd.Timestamp(begin).replace(day=1)
    one = pd.Timedelta(days=1)
    folds: list[Fold] = []
    k = 0
    while True:
        t0 = anchor + spec.step.offset(k)
        v0 = t0 + spec.train.offset()
        s0 = v0 + spec.validation.offset()
        s1 = s0 + spec.test.offset()
        if s0.date() > last:
            break
        for seed in seeds:
            folds.append(Fold(k, seed, f"{_day(t0)}..{_day(v0 - one)}", f"{_day(v0)}..{_day(s0 - one)}", f"{_day(s0)}..{_day(s1 - one)}"))
        k += 1
    if not folds:
        raise ConfigError(
            f"--walk-forward {spec}: the bars run from {first} to {last}, shorter than one fold "
            f"(train {spec.train} + validation {spec.validation} from {anchor.date()}); use shorter spans"
        )
    return folds


@dataclass(frozen=True)
class FoldJob:
    """What every task of one walk-forward shares."""

    config: dict[str, Any]
    """The base training config (``config_to_dict``), overrides applied."""
    source: str
    out: str
    """Run folders go to ``<out>/<fold name>``."""
    command: str
    """The base ``sigtrade train ...`` command (each fold adds its ``--set`` items)."""
    tracking_uri: str | None = None
    """None: no tracking."""
    experiment: str = "sigtrade-walk-forward"
    parent_run_id: str | None = None
    trainer: str = DEFAULT_TRAINER
    extra_tags: dict[str, str] = field(default_factory=dict)


def fold_config(job: FoldJob, fold: Fold) -> tuple[TrainConfig, list[str]]:
    """The fold's training config and the ``--set`` items that make it from the base config."""
    import json

    name = f"{(job.config.get('output') or {}).get('name') or 'run'}-{fold.name}"
    sets = {
        "data.train": fold.train, "data.validation": fold.validation, "data.test": fold.test,
        "train.seed": fold.seed, "output.name": name, "output.run_dir": str(Path(job.out) / fold.name),
    }
    raw = json.loads(json.dumps(job.config))
    for key, value in sets.items():
        section, leaf = key.split(".", 1)
        raw[section] = {**raw.get(section, {}), leaf: value}
    cfg = train_config_from_dict(raw, f"{job.source} ({fold.name})")
    items = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    return cfg, items


def train_fold(job: FoldJob, fold: Fold) -> dict[str, Any]:
    """The task: train one (fold, seed) with the job's trainer; return its results row."""
    module, _, name = job.trainer.partition(":")
    trainer = getattr(importlib.import_module(module), name)
    cfg, sets = fold_config(job, fold)
    row = {"fold": fold.index, "seed": fold.seed, "train": fold.train, "validation": fold.validation, "test": fold.test}
    row.update(trainer(job, fold, cfg, sets))
    return row


def train_supervised(job: FoldJob, fold: Fold, cfg: TrainConfig, sets: list[str]) -> dict[str, Any]:
    """The supervised trainer: :func:`research.train.train`, tracked when the job has a URI."""
    import hashlib
    import shlex

    from research import train as rtrain

    command = job.command + "".join(f" --set {shlex.quote(s)}" for s in sets)
    run_id = None
    if job.tracking_uri is not None:
        from research.tracking import Tracker

        tracker = Tracker(job.tracking_uri, experiment=job.experiment)
        tags = {"sigtrade.kind": "walk-forward", "sigtrade.fold": fold.index, "sigtrade.seed": fold.seed,
                "sigtrade.split.train": fold.train, "sigtrade.split.validation": fold.validation,
                "sigtrade.split.test": fold.test, **job.extra_tags}
        result = tracker.train(cfg, run_name=f"{cfg.run_name}", tags=tags, parent_run_id=job.parent_run_id,
                               command=command)
        run_id = tracker.last_run_id
    else:
        result = rtrain.train(cfg, command=command)
    digest = None
    if result.checkpoint is not None:
        ckpt = rtrain.load_checkpoint(result.checkpoint)
        h = hashlib.sha256()
        for key in sorted(ckpt["state_dict"]):
            h.update(key.encode())
            h.update(ckpt["state_dict"][key].numpy().tobytes())
        digest = h.hexdigest()
    v = result.validation
    return {
        "status": result.status, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        f"best_{result.metric_name}": result.best_metric,
        **{f"val_{k}": v.get(k) for k in ("f1", "pr_auc", "roc_auc", "threshold")},
        "weights_sha256": digest, "run_dir": str(result.run_dir), "mlflow_run_id": run_id,
    }


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The walk-forward's table: one row per (fold, seed), in plan order."""
    return pd.DataFrame(rows)
