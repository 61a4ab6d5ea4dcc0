"""Optuna over an RL config: ``sigtrade tune RL_CONFIG --trials N`` (PPO hyper-parameters, reward penalties).

The machinery is :mod:`research.tune`'s - storage (SQLite or any RDB URL, several workers
join one study), the trial-seeded TPE sampler, median / Hyperband pruning, the study
fingerprint guard, one MLflow run per trial under one per worker, ``best.json`` and
``trials.csv`` - with an RL objective: a trial trains the policy
(:func:`research.rl.train.train_rl`) and its value is the best **validation net
Sharpe**; every validation is reported to the pruner (step = validation number). The
search lives in the RL config's ``[tune]`` table::

    [tune]
    pruner = "median"
    [tune.space]
    learning_rate = {type = "float", low = 1e-5, high = 1e-3, log = true}
    turnover_penalty = {type = "float", low = 0.0, high = 0.005}

A name is a field of ``[ppo]`` or ``[reward]`` (bare when unique, or dotted); anything else
is refused with a suggestion. Without ``[tune.space]``, :data:`DEFAULT_SPACE` is searched.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import socket
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import optuna

from engine.errors import ConfigError, did_you_mean
from engine.schema import convert
from research.rl.config import RLConfig, rl_config_from_dict, rl_config_to_dict
from research.tune import (
    ParamSpec,
    TuneSession,
    _check_spec,
    _set_path,
    _spec,
    _toml_value,
    make_pruner,
    suggest,
    tune_root,
)

__all__ = ["DEFAULT_SPACE", "RLTuneConfig", "TuneSession", "load_tune_config", "tune_root"]

NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
_TUNABLE = ("ppo", "reward")
_NOT_TUNABLE = {"net_arch", "activation"}

DEFAULT_SPACE: dict[str, ParamSpec] = {
    "ppo.learning_rate": _spec("float", 1e-5, 1e-3, log=True),
    "ppo.ent_coef": _spec("float", 0.0, 0.05),
    "ppo.gamma": _spec("float", 0.9, 0.999),
    "ppo.clip_range": _spec("float", 0.1, 0.3),
    "reward.turnover_penalty": _spec("float", 0.0, 0.005),
}
"""Searched when the config has no ``[tune.space]``."""


class RLTuneConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[tune]`` table of an RL config."""

    metric: Literal["net_sharpe"] = "net_sharpe"
    """Objective, maximised: a trial's best validation net Sharpe (its early-stopping figure too)."""
    pruner: Literal["median", "hyperband", "none"] = "median"
    """median, hyperband or none; steps are validations."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 42
    """Seed of the TPE sampler (per trial: seed and trial number)."""
    startup_trials: NonNegInt = 5
    """Random trials before TPE models the space."""
    prune_startup_trials: NonNegInt = 3
    """median: trials that must finish before any is pruned."""
    prune_warmup_epochs: NonNegInt = 1
    """median: validations every trial runs before it can be pruned."""
    min_epochs: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    """hyperband: the smallest budget of a bracket, in validations."""
    reduction_factor: Annotated[int, msgspec.Meta(ge=2, le=100)] = 3
    """hyperband: keep 1/reduction_factor of the trials at each rung."""
    export_trials: bool = True
    """Export every finished trial's policy (ONNX + card) and log it to the trial's MLflow run."""
    space: dict[str, ParamSpec] = msgspec.field(default_factory=dict)
    """name -> range; empty = DEFAULT_SPACE."""


def _names() -> tuple[dict[str, str], list[str]]:
    hints = typing.get_type_hints(RLConfig)
    dotted = {f"{s}.{f}": f"{s}.{f}" for s in _TUNABLE for f in hints[s].__struct_fields__ if f not in _NOT_TUNABLE}
    bare: dict[str, list[str]] = {}
    for d in dotted:
        bare.setdefault(d.split(".", 1)[1], []).append(d)
    names = dict(dotted)
    names.update({b: ds[0] for b, ds in bare.items() if len(ds) == 1})
    return names, sorted(names)


def resolve_param(name: str) -> str:
    """The dotted path of a searched name (``learning_rate`` -> ``ppo.learning_rate``); ConfigError if not tunable."""
    names, every = _names()
    if name in names:
        return names[name]
    hint = did_you_mean(name, every) or did_you_mean(name.split(".")[-1], every)
    raise ConfigError(f"tune.space: '{name}' is not a tunable RL hyper-parameter{hint} "
                      f"(tunable: {', '.join(sorted(n for n in names if '.' in n))})")


def rl_tune_config_from_dict(raw: dict[str, Any], cfg: RLConfig, source: str = "config") -> RLTuneConfig:
    """Validate a ``[tune]`` table against *cfg* (names, ranges; every end of every range makes a valid config)."""
    space_raw = raw.get("space", {}) if isinstance(raw, dict) else {}
    tune = convert({k: v for k, v in raw.items() if k != "space"} if isinstance(raw, dict) else raw,
                   RLTuneConfig, source, "tune")
    if not isinstance(space_raw, dict):
        raise ConfigError(f"{source}: [tune.space] must be a table of name = {{type = ...}}")
    space: dict[str, ParamSpec] = {}
    for name, spec_raw in (space_raw or msgspec.to_builtins(DEFAULT_SPACE)).items():
        dotted = resolve_param(name)
        spec = convert(spec_raw, ParamSpec, source, f"tune.space.{name}")
        _check_spec(f"{source}: tune.space.{name}", spec)
        if dotted in space:
            raise ConfigError(f"{source}: tune.space names {dotted} twice")
        space[dotted] = spec
        ends = list(spec.choices or []) if spec.type == "categorical" else [spec.low, spec.high]
        for value in ends:
            trial = rl_config_to_dict(cfg)
            _set_path(trial, dotted, int(value) if spec.type == "int" else value)
            try:
                rl_config_from_dict(trial, source)
            except ConfigError as exc:
                raise ConfigError(f"tune.space: {dotted} = {value!r} gives an invalid config: {exc}") from None
    return msgspec.structs.replace(tune, space=space)


def load_tune_config(path: str | Path, overrides: list[str] | None = None) -> tuple[RLConfig, RLTuneConfig]:
    """An RL config and its ``[tune]`` table; ``--set`` overrides either."""
    from research.rl.config import read_rl_config

    cfg, raw = read_rl_config(path, overrides)
    return cfg, rl_tune_config_from_dict(raw.get("tune", {}), cfg, str(path))


class RLTuneSession(TuneSession):
    """:class:`research.tune.TuneSession` with the RL objective (see the module docstring)."""

    def __init__(self, cfg: RLConfig, tune: RLTuneConfig, **kwargs: Any) -> None:
        if kwargs.get("out_root") is None:
            kwargs["out_root"] = tune_root(cfg) / "tune"  # type: ignore[arg-type]
        max_evals = max(1, -(-cfg.train.timesteps // cfg.train.eval_every))
        kwargs.setdefault("pruner", make_pruner(tune, max_evals))  # type: ignore[arg-type]
        super().__init__(cfg, tune, **kwargs)  # type: ignore[arg-type]
        self._market: Any = None

    def prepare(self) -> Any:
        """The environment's market (features, quotes, segments), built once for every trial."""
        if self._market is None:
            from research.rl.market import build_market

            self._market = build_market(self.cfg)  # type: ignore[arg-type]
        return self._market

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's hyper-parameters (dotted names)."""
        space = self.tune.space or DEFAULT_SPACE
        return {name: suggest(trial, name, spec) for name, spec in space.items()}

    def trial_config(self, params: dict[str, Any], number: int) -> tuple[RLConfig, str]:  # type: ignore[override]
        """The RL config of a trial and the ``sigtrade rl train`` command that reproduces it."""
        raw = rl_config_to_dict(self.cfg)  # type: ignore[arg-type]
        for name, value in params.items():
            _set_path(raw, name, value)
        name = f"{self.study_name}-trial{number:04d}"
        _set_path(raw, "output.name", name)
        _set_path(raw, "output.run_dir", str(self.trial_dir(number)))
        cfg = rl_config_from_dict(raw, f"trial {number}")
        parts = ["sigtrade", "rl", "train", self.config_path or "CONFIG"]
        for item in [o for o in self.overrides if not o.strip().startswith("tune.")]:
            parts += ["--set", item]
        for key, value in params.items():
            parts += ["--set", f"{key}={_toml_value(value)}"]
        parts += ["--set", f"output.name={json.dumps(name)}"]
        return cfg, shlex.join(parts)

    def objective(self, trial: optuna.Trial, parent_run_id: str | None = None) -> float:
        """Train one trial; report every validation; raise TrialPruned when pruned."""
        from research.rl.export import export_policy
        from research.rl.train import train_rl, train_tracked

        params = self.sample(trial)
        cfg, command = self.trial_config(params, trial.number)
        run_dir = self.trial_dir(trial.number)
        for key, value in (("worker", self.worker), ("pid", os.getpid()), ("host", socket.gethostname()),
                           ("run_dir", str(run_dir.resolve())), ("command", command)):
            trial.set_user_attr(key, value)
        step = {"n": 0}

        def prune(timesteps: int, metrics: dict[str, float]) -> bool:
            value = metrics.get("net_sharpe", math.nan)
            if math.isfinite(value):
                trial.report(float(value), step["n"])
            step["n"] += 1
            return trial.should_prune()

        market = self.prepare()
        self.worker_trials += 1
        kwargs = {"market": market, "run_dir": run_dir, "command": command, "should_prune": prune}
        if self.tracker is not None:
            tags = {"sigtrade.kind": "tune-trial", "sigtrade.study": self.study_name, "sigtrade.trial": trial.number,
                    "sigtrade.worker": self.worker, **{f"tune.{k}": v for k, v in params.items()}}
            result = train_tracked(cfg, self.tracker, run_name=f"{self.study_name} #{trial.number}", tags=tags,
                                   parent_run_id=parent_run_id,
                                   on_run=lambda run: trial.set_user_attr("mlflow_run_id", run.run_id), **kwargs)
        else:
            result = train_rl(cfg, **kwargs)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("epochs_run", len(result.history))
        if result.status == "pruned":
            raise optuna.TrialPruned(f"pruned after {result.timesteps} timesteps")
        if self.tune.export_trials and result.checkpoint is not None:
            export_policy(run_dir, run_dir / "model", name=cfg.output.name)
        value = float(result.best_sharpe)
        return value if math.isfinite(value) else float("nan")

    def best_checkpoint(self, summary: Any, scratch: Path) -> Path:
        """The best trial's run folder (it must be on this machine)."""
        if summary.best_number is None:
            raise ConfigError(f"study '{self.study_name}' has no completed trial yet: nothing to export")
        best = next(t for t in self.study.get_trials(deepcopy=False) if t.number == summary.best_number)
        run_dir = Path(str(best.user_attrs.get("run_dir", "")))
        if (run_dir / "best.zip").is_file():
            return run_dir
        raise ConfigError(f"best trial {best.number} ran on {best.user_attrs.get('host')} ({run_dir}) and is not here; "
                          "export it there with `sigtrade export RUN --out models/NAME`")

    def export_best(self, summary: Any, out: str | Path) -> Any:
        """Export the best trial's policy through :func:`research.rl.export.export_policy`."""
        from research.rl.export import export_policy

        source = self.best_checkpoint(summary, Path(out))
        return export_policy(source, out, command=shlex.join(["sigtrade", "export", str(source), "--out", str(out)]))


TuneSession = RLTuneSession  # type: ignore[misc]  # the name the CLI looks up in either module
