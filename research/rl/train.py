"""Training: :func:`train_rl`, from an :class:`~research.rl.config.RLConfig` to a run folder.

PPO (Stable-Baselines3) or, with ``env.masks``, MaskablePPO (sb3-contrib) on the numba
environment's training episodes. Every ``train.eval_every`` timesteps (and at the end) the
deterministic policy (arg-max over the allowed actions, what the exported policy does) runs
the whole validation split, one episode per symbol segment; its **validation net
Sharpe** (the mean over episodes of the annualised Sharpe of each episode's net equity
curve, 0 for an episode that never trades) picks the best checkpoint, and training stops
after ``train.patience`` validations without a better one.

A run folder (``runs/<name>/`` by default) holds ``best.zip`` (the best policy, SB3's
format), ``run.json`` (config, command, status, every validation, timings),
``rl_config.json`` and ``observation.json`` (the scaler, feature set, lookback, symbols
and data range that :mod:`research.rl.export` writes into the card).

Reproducibility: seeds for torch, numpy, ``random`` and the episode sampler, torch's
deterministic algorithms and a fixed thread count on CPU: the same config and data give
bit-identical policies (tested).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError
from engine.jsonfiles import read_json
from research.rl import env_nb as E
from research.rl.config import RL_CONFIG_FILE, RLConfig, rl_config_to_dict
from research.rl.env import TradingVecEnv
from research.rl.market import Market, build_market
from research.train import _write_json

__all__ = ["BEST_FILE", "OBS_FILE", "RUN_FILE", "RLResult", "evaluate_policy", "load_run", "make_model", "train_rl"]

log = logging.getLogger(__name__)

BEST_FILE = "best.zip"
RUN_FILE = "run.json"
OBS_FILE = "observation.json"

EvalHook = Callable[[int, dict[str, float]], None]
ProgressHook = Callable[[int, int], None]


@dataclass
class RLResult:
    """What a training run produced."""

    run_dir: Path
    status: str
    """completed, early_stopped or interrupted."""
    checkpoint: Path | None
    best_timesteps: int = 0
    best_sharpe: float = float("nan")
    timesteps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)
    samples_per_s: float = float("nan")
    algorithm: str = "PPO"

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins for run.json."""
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        return out


def _seed(seed: int, threads: int, device: str) -> Any:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA GPU is visible: use 'cpu' or 'auto'")
    return device


def validation_episodes(market: Market, split: str = "validation") -> list[tuple[int, int]]:
    """Every segment of *split* as one fixed episode (start row, end row)."""
    return [(s.first, s.last_bar) for s in market.segments.get(split, [])]


def evaluate_policy(
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray], market: Market, cfg: RLConfig, split: str = "validation"
) -> dict[str, float]:
    """Run the deterministic policy over every episode of *split*; its net figures.

    ``predict(obs, masks) -> actions``. Returns ``net_sharpe`` (mean over episodes of the
    annualised Sharpe of the episode's equity curve; 0 when it is flat), ``net_return``
    (mean total return), ``trades`` (round trips), ``commission``, ``slippage``,
    ``turnover`` (mean traded notional / equity per year) and ``exposure`` (share of steps
    holding a position).
    """
    from engine.sessions import periods_per_year

    episodes = validation_episodes(market, split)
    if not episodes:
        raise ConfigError(f"data.{split} = '{getattr(cfg.data, split)}' holds no episode: widen it")
    env = TradingVecEnv(market, cfg, episodes=episodes)
    obs, _ = env.reset()
    n = env.num_envs
    curves: list[list[float]] = [[cfg.env.capital] for _ in range(n)]
    costs = np.zeros((n, 2))
    notional = np.zeros(n)
    fills = np.zeros(n, dtype=np.int64)
    held = np.zeros(n)
    steps = np.zeros(n)
    while env.active.any():
        active = env.active.copy()
        actions = np.asarray(predict(obs, env.action_masks()), dtype=np.int64)
        held += (env.sf[:, E.S_POS] != 0.0) & active
        obs, _, done, _, info = env.step(actions)
        for i in np.flatnonzero(active):
            curves[i].append(float(info["terminal_equity"][i] if done[i] else info["equity"][i]))
        costs[active, 0] += info["commission"][active]
        costs[active, 1] += info["slippage"][active]
        notional[active] += env.info[active, E.INFO_NOTIONAL]
        fills[active] += env.n_fills[active]
        steps += active
    sharpes, totals, years = [], [], []
    for (start, end), curve in zip(episodes, curves, strict=True):
        eq = np.asarray(curve)
        r = eq[1:] / eq[:-1] - 1.0
        index = pd.DatetimeIndex(pd.to_datetime(market.times[start : end + 1], utc=True))
        p = periods_per_year(index)
        sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
        sharpes.append(float(np.mean(r) / sd * math.sqrt(p)) if sd > 0 else 0.0)
        totals.append(float(eq[-1] / eq[0] - 1.0))
        years.append(len(r) / p)
    mean_eq = np.array([np.mean(c) for c in curves])
    return {
        "net_sharpe": float(np.mean(sharpes)),
        "net_return": float(np.mean(totals)),
        "trades": float(fills.sum() / 2.0),
        "commission": float(costs[:, 0].sum()),
        "slippage": float(costs[:, 1].sum()),
        "turnover": float(np.mean(notional / mean_eq / np.maximum(np.asarray(years), 1e-9))),
        "exposure": float(held.sum() / max(steps.sum(), 1.0)),
        "episodes": float(n),
    }


def make_model(cfg: RLConfig, env: Any, device: str) -> Any:
    """The SB3 algorithm object of *cfg* on *env* (PPO, or MaskablePPO with masks)."""
    from torch import nn

    p = cfg.ppo
    kwargs = {
        "learning_rate": p.learning_rate, "n_steps": p.n_steps, "batch_size": p.batch_size, "n_epochs": p.n_epochs,
        "gamma": p.gamma, "gae_lambda": p.gae_lambda, "clip_range": p.clip_range, "ent_coef": p.ent_coef,
        "vf_coef": p.vf_coef, "max_grad_norm": p.max_grad_norm, "target_kl": p.target_kl,
        "policy_kwargs": {"net_arch": {"pi": list(p.net_arch), "vf": list(p.net_arch)},
                          "activation_fn": nn.Tanh if p.activation == "tanh" else nn.ReLU},
        "seed": cfg.train.seed, "device": device, "verbose": 0,
    }
    if cfg.env.masks:
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", env, **kwargs)
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", env, **kwargs)


def predictor(model: Any, masks: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``predict(obs, masks) -> actions`` of an SB3 model, deterministic."""
    if masks:
        return lambda obs, m: model.predict(obs, action_masks=m, deterministic=True)[0]
    return lambda obs, m: model.predict(obs, deterministic=True)[0]


def load_run(run_dir: str | Path) -> tuple[RLConfig, dict[str, Any], Any]:
    """An RL run folder's config, observation record and best policy (SB3 model, CPU)."""
    from research.rl.config import rl_config_from_dict

    folder = Path(run_dir)
    if folder.is_file():
        folder = folder.parent
    best = folder / BEST_FILE
    if not (folder / RL_CONFIG_FILE).is_file() or not best.is_file():
        raise ConfigError(f"'{folder}' is not an RL run folder with a policy ({RL_CONFIG_FILE} + {BEST_FILE}): "
                          "train one with `sigtrade rl train CONFIG`")
    fix = "train the policy again with `sigtrade rl train CONFIG`"
    cfg = rl_config_from_dict(read_json(folder / RL_CONFIG_FILE, fix=fix, expect=dict), str(folder / RL_CONFIG_FILE))
    meta = read_json(folder / OBS_FILE, fix=fix, expect=dict)
    if cfg.env.masks:
        from sb3_contrib import MaskablePPO as Algo
    else:
        from stable_baselines3 import PPO as Algo
    return cfg, meta, Algo.load(best, device="cpu")


def train_rl(
    cfg: RLConfig,
    *,
    market: Market | None = None,
    on_eval: EvalHook | list[EvalHook] | None = None,
    on_progress: ProgressHook | None = None,
    should_prune: Callable[[int, dict[str, float]], bool] | None = None,
    command: str | None = None,
    run_dir: str | Path | None = None,
) -> RLResult:
    """Train the policy *cfg* describes; keep the best by validation net Sharpe (see the module docstring).

    Raises
    ------
    ConfigError, DataError
        Before the first step, for anything wrong with the config or the data.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from research.rl.sb3 import SB3VecEnv

    device = _seed(cfg.train.seed, cfg.train.threads, cfg.train.device)
    if market is None:
        market = build_market(cfg)
    if not validation_episodes(market):
        raise ConfigError(f"data.validation = '{cfg.data.validation}' holds no episode: widen it")
    out = Path(run_dir) if run_dir is not None else cfg.run_path
    out.mkdir(parents=True, exist_ok=True)
    best_path = out / BEST_FILE
    best_path.unlink(missing_ok=True)
    _write_json(out / RL_CONFIG_FILE, rl_config_to_dict(cfg))
    _write_json(out / OBS_FILE, {
        "feature_set": {"name": market.feature_set.name, "version": market.feature_set.version,
                        "features": list(market.feature_set.features)},
        "lookback": market.lookback, "mean": [float(v) for v in market.mean], "std": [float(v) for v in market.std],
        "symbols": market.symbols, "data_start": market.data_start, "data_end": market.data_end, "gate": market.gate,
        "actions": list(cfg.actions),
    })
    env = SB3VecEnv(TradingVecEnv(market, cfg, split="train", seed=cfg.train.seed))
    model = make_model(cfg, env, device)
    predict = predictor(model, cfg.env.masks)
    hooks = [on_eval] if callable(on_eval) else list(on_eval or [])
    result = RLResult(run_dir=out, status="running", checkpoint=None, algorithm=cfg.algorithm)
    base = {"config": rl_config_to_dict(cfg), "command": command or ""}
    _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
    state = {"next_eval": cfg.train.eval_every, "stale": 0, "best": -math.inf, "t0": time.perf_counter(),
             "pruned": False}

    def validate(timesteps: int) -> bool:
        metrics = evaluate_policy(predict, market, cfg)
        metrics["timesteps"] = float(timesteps)
        metrics["elapsed_s"] = time.perf_counter() - state["t0"]
        improved = metrics["net_sharpe"] > state["best"]
        metrics["best"] = float(improved)
        if improved:
            state["best"], state["stale"] = metrics["net_sharpe"], 0
            model.save(best_path)
            result.checkpoint, result.best_timesteps = best_path, timesteps
            result.best_sharpe, result.validation = metrics["net_sharpe"], dict(metrics)
        else:
            state["stale"] += 1
        result.history.append(metrics)
        result.timesteps = timesteps
        _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
        for hook in hooks:
            hook(timesteps, metrics)
        if should_prune is not None and should_prune(timesteps, metrics):
            state["pruned"] = True
            return False
        return state["stale"] < cfg.train.patience

    class _Callback(BaseCallback):  # type: ignore[misc]
        def _on_step(self) -> bool:
            t = int(self.num_timesteps)
            if on_progress is not None:
                on_progress(t, cfg.train.timesteps)
            if t >= state["next_eval"]:
                state["next_eval"] += cfg.train.eval_every
                return validate(t)
            return True

    try:
        model.learn(total_timesteps=cfg.train.timesteps, callback=_Callback(), progress_bar=False)
        stopped = state["stale"] >= cfg.train.patience or state["pruned"]
        if not stopped and (not result.history or result.history[-1]["timesteps"] < model.num_timesteps):
            validate(int(model.num_timesteps))
        early = stopped and model.num_timesteps < cfg.train.timesteps
        result.status = "pruned" if state["pruned"] else ("early_stopped" if early else "completed")
    except KeyboardInterrupt:
        result.status = "interrupted"
        _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
        raise
    elapsed = time.perf_counter() - state["t0"]
    result.timesteps = int(model.num_timesteps)
    result.samples_per_s = result.timesteps / elapsed if elapsed > 0 else float("nan")
    _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
    return result


def train_tracked(
    cfg: RLConfig,
    tracker: Any,
    *,
    market: Market | None = None,
    run_name: str | None = None,
    tags: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    on_run: Callable[[Any], None] | None = None,
    on_eval: EvalHook | list[EvalHook] | None = None,
    **kwargs: Any,
) -> RLResult:
    """:func:`train_rl` inside an MLflow run of *tracker* (:class:`research.tracking.Tracker`).

    The run records the flattened config as params, every validation's figures at
    ``step = timesteps``, the best ones (``best_val_*``), the status tag, ``run.json`` and
    the best policy (``checkpoint/best.zip``).
    """
    if market is None:
        market = build_market(cfg)
    out = Path(kwargs.pop("run_dir", None) or cfg.run_path)
    with tracker.run(cfg, run_name, {"sigtrade.kind": "rl-train", **(tags or {})}, parent_run_id=parent_run_id,
                     run_dir=out, command=kwargs.get("command")) as tracked:
        if on_run is not None:
            on_run(tracked)
        tracked.log_params({"data_range.start": market.data_start, "data_range.end": market.data_end,
                            "data_range.symbols": json.dumps(market.symbols)})
        hooks = [lambda t, m: tracked.log_metrics({f"val_{k}": v for k, v in m.items()}, step=t)]
        hooks += [on_eval] if callable(on_eval) else list(on_eval or [])
        try:
            result = train_rl(cfg, market=market, on_eval=hooks, run_dir=out, **kwargs)
        finally:
            tracked.log_artifact(out / RUN_FILE)
            tracked.log_artifact(out / BEST_FILE, "checkpoint")
        tracked.log_metrics({"best_val_net_sharpe": result.best_sharpe, "best_timesteps": result.best_timesteps,
                             "timesteps": result.timesteps, "train_samples_per_s": result.samples_per_s,
                             **{f"best_val_{k}": v for k, v in result.validation.items()}}, step=result.timesteps)
        tracked.set_tags({"sigtrade.status": result.status, "sigtrade.algorithm": result.algorithm})
    return result
