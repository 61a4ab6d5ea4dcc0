"""Training: one function, :func:`train`, from a :class:`~research.config.TrainConfig` to a run folder.

A run folder (``runs/<name>/`` by default) holds

* ``best.pt`` - the best checkpoint so far (by ``train.early_stopping_metric`` on the
  validation split), written atomically every time the metric improves, so an
  interrupted run (Ctrl-C) always keeps a loadable best model;
* ``run.json`` - the resolved config, the command, the data summary, the per-epoch
  history, the status (``running``, ``completed``, ``early_stopped``, ``pruned``,
  ``interrupted``), timings, and the best epoch's validation metrics.

Hooks for tracking and tuning (they never import mlflow or optuna here):

* ``on_epoch(epoch, metrics)`` - called after each epoch's validation (a callable or a
  list of them); ``metrics`` holds ``train_loss``, ``val_loss``, ``val_accuracy``,
  ``val_precision``, ``val_recall``, ``val_f1``, ``val_pr_auc``, ``val_roc_auc``, ``lr``,
  ``epoch_s``, ``samples_per_s``, ``data_share``, ``monitor`` (the early-stopping value)
  and ``best`` (1.0 when this epoch became the best checkpoint);
* ``should_prune(epoch, metrics) -> bool`` - stop now with status ``pruned``;
* ``on_batch(epoch, batch, n_batches)`` - for progress bars.

Reproducibility: seeds for torch and ``random`` (numpy draws use explicit generators),
``torch.use_deterministic_algorithms``, a seeded generator for shuffling, a fixed thread
count. Two runs of the same config on the same machine give bit-identical weights on CPU.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import ConfigError
from engine.stats.classification import best_threshold, classification_metrics, prob_quantiles
from research.config import TrainConfig, config_to_dict
from research.dataset import DatasetSpec, WindowData, build_windows
from research.loader import WindowDataset, batch_order, iter_batches
from research.losses import make_loss
from research.nets import SignalNet, build_net, count_parameters

__all__ = [
    "CHECKPOINT_FILE",
    "RUN_FILE",
    "TrainResult",
    "TrainingInterrupted",
    "load_checkpoint",
    "net_from_checkpoint",
    "predict_probs",
    "prepare_data",
    "resolve_device",
    "train",
]

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "best.pt"
RUN_FILE = "run.json"
CHECKPOINT_FORMAT = 1

EpochHook = Callable[[int, dict[str, float]], None]
PruneHook = Callable[[int, dict[str, float]], bool]
BatchHook = Callable[[int, int, int], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    status: str
    """completed, early_stopped, pruned or interrupted."""
    checkpoint: Path | None
    """``best.pt``, or None if no epoch finished."""
    metric_name: str
    best_epoch: int = 0
    best_metric: float = float("nan")
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    """Validation metrics of the best epoch at its F1-best threshold, plus f1_at_0.5 and prob_quantiles."""
    samples_per_s: float = float("nan")
    data_share: float = float("nan")
    """Share of the training phase spent fetching batches."""
    n_parameters: int = 0
    device: str = "cpu"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins for run.json."""
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        return out


class TrainingDiverged(ConfigError):
    """The loss or the network's outputs became non-finite: the settings (often the learning rate) are unusable."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the best checkpoint is kept; ``result`` says where and which epoch."""

    def __init__(self, result: TrainResult) -> None:
        super().__init__("training interrupted")
        self.result = result


# --- setup ------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA GPU is visible: use 'auto' or 'cpu'")
    return torch.device(name)


def _seed_everything(seed: int, threads: int, device: torch.device) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True)


def prepare_data(cfg: TrainConfig) -> WindowData:
    """Build the labelled, purged, scaled windows of *cfg* (all checks happen here, before training)."""
    return build_windows(DatasetSpec.from_config(cfg))


def _optimizer(cfg: TrainConfig, net: nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    t = cfg.train
    if t.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                          patience=max(1, t.patience // 2))
    if t.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs)
    if t.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=t.epochs * steps_per_epoch)
    return None


# --- inference --------------------------------------------------------------------------------


@torch.no_grad()
def predict_probs(net: SignalNet, dataset: WindowDataset, batch_size: int = 4096,
                  loss_fn: nn.Module | None = None) -> tuple[np.ndarray, float]:
    """Probabilities of every window of *dataset* in order, and the mean loss (NaN without *loss_fn*)."""
    was_training = net.training
    net.eval()
    probs, total, n = [], 0.0, 0
    for batch in iter_batches(dataset, batch_size, torch.arange(len(dataset))):
        logits = net.logits(batch.x, batch.asset_id if net.uses_asset_id else None)
        if loss_fn is not None:
            total += float(loss_fn(logits, batch.y)) * batch.y.shape[0]
            n += batch.y.shape[0]
        probs.append(torch.sigmoid(logits).double().cpu().numpy())
    net.train(was_training)
    out = np.concatenate(probs) if probs else np.empty(0)
    return out, (total / n if n else float("nan"))


# --- checkpoints ------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, default=_json_default, allow_nan=True)
        fh.write("\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``best.pt`` (or the ``best.pt`` of a run folder) with ``weights_only=True``.

    Raises
    ------
    ConfigError
        No such file, or not a sigtrade checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_FILE
    if not p.is_file():
        raise ConfigError(
            f"no checkpoint at '{p}': pass a run folder (runs/<name>) or its {CHECKPOINT_FILE}; "
            "train one with `sigtrade train CONFIG`"
        )
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"'{p}' is not a readable checkpoint: expected a best.pt written by `sigtrade train` "
                          f"({first[:160]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"'{p}' is not a sigtrade training checkpoint (format {CHECKPOINT_FORMAT})")
    ckpt["path"] = str(p)
    return ckpt


def net_from_checkpoint(ckpt: dict[str, Any]) -> tuple[SignalNet, TrainConfig]:
    """Rebuild the network of a checkpoint (eval mode, CPU) and its config."""
    from research.config import train_config_from_dict

    cfg = train_config_from_dict(ckpt["config"], ckpt.get("path", "checkpoint"))
    net = build_net(cfg.model, ckpt["lookback"], ckpt["n_features"], ckpt["n_assets"])
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, cfg


# --- the loop ---------------------------------------------------------------------------------


def _hooks(value: EpochHook | Sequence[EpochHook] | None) -> list[EpochHook]:
    if value is None:
        return []
    if callable(value):
        return [value]
    return list(value)


def train(
    cfg: TrainConfig,
    *,
    on_epoch: EpochHook | Sequence[EpochHook] | None = None,
    should_prune: PruneHook | None = None,
    on_batch: BatchHook | None = None,
    data: WindowData | None = None,
    command: str | None = None,
    run_dir: str | Path | None = None,
) -> TrainResult:
    """Train the model *cfg* describes; keep the best checkpoint; return a :class:`TrainResult`.

    Parameters
    ----------
    cfg : TrainConfig
        The run.
    on_epoch, should_prune, on_batch : callables, optional
        Hooks (see the module docstring).
    data : WindowData, optional
        Prepared windows (e.g. shared by the trials of a study); default: built from *cfg*.
    command : str, optional
        The command that reproduces the run, recorded in run.json and the checkpoint.
    run_dir : path, optional
        Overrides ``cfg.run_path``.

    Raises
    ------
    ConfigError, DataError
        Before the first epoch, for anything wrong with the config or the data.
    TrainingInterrupted
        On Ctrl-C, after saving run.json; ``best.pt`` holds the best epoch so far.
    """
    device = resolve_device(cfg.train.device)
    if data is None:
        data = prepare_data(cfg)
    elif data.lookback != cfg.data.lookback or data.horizon != cfg.label.horizon:
        raise ConfigError("the prepared data's lookback / horizon differ from the config's")
    out = Path(run_dir) if run_dir is not None else cfg.run_path
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT_FILE
    ckpt_path.unlink(missing_ok=True)
    t = cfg.train
    _seed_everything(t.seed, t.threads, device)

    n_assets = len(data.asset_map)
    net = build_net(cfg.model, data.lookback, data.n_features, n_assets).to(device)
    features = torch.from_numpy(data.features).to(device)
    train_ds = WindowDataset(data, "train", device, features)
    val_ds = WindowDataset(data, "validation", device, features)
    train_split = data.splits["train"]
    loss_fn = make_loss(t.loss, class_weights=train_split.class_weights(),
                        focal_alpha=t.focal_alpha, focal_gamma=t.focal_gamma)
    generator = torch.Generator().manual_seed(t.seed)
    n_batches = -(-len(train_ds) // t.batch_size)
    opt = _optimizer(cfg, net)
    sched = _scheduler(cfg, opt, n_batches)
    use_ids = net.uses_asset_id
    epoch_hooks = _hooks(on_epoch)
    metric_name = t.early_stopping_metric
    data_summary = {
        "symbols": data.symbols, "asset_map": data.asset_map, "lookback": data.lookback,
        "horizon": data.horizon, "purge": data.purge, "data_start": data.data_start,
        "data_end": data.data_end, "splits": {k: v.summary() for k, v in data.splits.items()},
    }
    result = TrainResult(run_dir=out, status="running", checkpoint=None, metric_name=metric_name,
                         n_parameters=count_parameters(net), device=str(device), data=data_summary)
    base = {"config": config_to_dict(cfg), "command": command or "", "torch_version": str(torch.__version__)}
    _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
    log.info("training %s (%d parameters) on %s: %d train / %d validation windows",
             cfg.model.architecture, result.n_parameters, device, len(train_ds), len(val_ds))

    best = -math.inf
    stale = 0
    train_time = data_time = 0.0
    samples = 0
    try:
        for epoch in range(1, t.epochs + 1):
            net.train()
            t0 = time.perf_counter()
            total_loss, seen = 0.0, 0
            order = batch_order(train_ds, shuffle=True, weighted=t.sampler == "weighted",
                                generator=generator)
            it = iter_batches(train_ds, t.batch_size, order)
            fetch = time.perf_counter() - t0
            for b in range(n_batches):
                f0 = time.perf_counter()
                batch = next(it)
                fetch += time.perf_counter() - f0
                logits = net.logits(batch.x, batch.asset_id if use_ids else None)
                loss = loss_fn(logits, batch.y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if t.grad_clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
                opt.step()
                if t.scheduler == "onecycle":
                    sched.step()
                total_loss += float(loss.detach()) * batch.y.shape[0]
                seen += batch.y.shape[0]
                if on_batch is not None:
                    on_batch(epoch, b + 1, n_batches)
            phase = time.perf_counter() - t0
            train_time += phase
            data_time += fetch
            samples += seen
            probs, val_loss = predict_probs(net, val_ds, loss_fn=loss_fn)
            if not (math.isfinite(total_loss) and np.isfinite(probs).all()):
                kept = (f"the checkpoint of epoch {result.best_epoch} is kept" if result.checkpoint
                        else "no checkpoint was saved")
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch}: the training loss is {total_loss / max(seen, 1):g} "
                    f"and the network outputs non-finite probabilities; lower train.lr (now {t.lr:g}) or "
                    f"clip gradients (train.grad_clip, now {t.grad_clip:g}); {kept}"
                )
            y_val = data.splits["validation"].labels
            vm = classification_metrics(y_val, probs, 0.5)
            monitor = vm[metric_name]
            monitor = monitor if math.isfinite(monitor) else -math.inf
            metrics = {
                "epoch": float(epoch), "lr": float(opt.param_groups[0]["lr"]),
                "train_loss": total_loss / max(seen, 1), "val_loss": val_loss,
                **{f"val_{k}": vm[k] for k in ("accuracy", "precision", "recall", "f1", "pr_auc", "roc_auc")},
                "monitor": monitor, "epoch_s": time.perf_counter() - t0,
                "samples_per_s": seen / phase if phase > 0 else float("nan"),
                "data_share": fetch / phase if phase > 0 else float("nan"),
            }
            if t.scheduler == "plateau":
                sched.step(monitor)
            elif t.scheduler == "cosine":
                sched.step()
            improved = monitor > best
            if improved:
                best, stale = monitor, 0
                result.validation = _validation_summary(y_val, probs, val_loss)
                result.best_epoch, result.best_metric = epoch, float(monitor)
                _atomic_save(_checkpoint(net, cfg, data, epoch, result, command), ckpt_path)
                result.checkpoint = ckpt_path
            else:
                stale += 1
            metrics["best"] = float(improved)
            result.history.append(metrics)
            result.epochs_run = epoch
            result.samples_per_s = samples / train_time if train_time > 0 else float("nan")
            result.data_share = data_time / train_time if train_time > 0 else float("nan")
            _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
            for hook in epoch_hooks:
                hook(epoch, metrics)
            if should_prune is not None and should_prune(epoch, metrics):
                result.status = "pruned"
                break
            if stale >= t.patience:
                result.status = "early_stopped"
                break
        else:
            result.status = "completed"
    except KeyboardInterrupt:
        result.status = "interrupted"
        _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
        raise TrainingInterrupted(result) from None
    _write_json(out / RUN_FILE, {**base, "result": result.to_dict()})
    return result


def _validation_summary(y: np.ndarray, probs: np.ndarray, val_loss: float) -> dict[str, Any]:
    """Validation metrics at the F1-best grid threshold (the card's threshold), and the quantiles."""
    thr, _ = best_threshold(y, probs)
    at_best = classification_metrics(y, probs, thr)
    at_half = classification_metrics(y, probs, 0.5)
    return {**at_best, "loss": float(val_loss), "f1_at_0.5": at_half["f1"],
            "prob_quantiles": prob_quantiles(probs)}


def _checkpoint(net: SignalNet, cfg: TrainConfig, data: WindowData, epoch: int,
                result: TrainResult, command: str | None) -> dict[str, Any]:
    fs = data.spec.feature_set
    return {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "config": config_to_dict(cfg),
        "architecture": cfg.model.architecture,
        "lookback": data.lookback,
        "n_features": data.n_features,
        "n_assets": len(data.asset_map),
        "asset_map": dict(data.asset_map),
        "uses_asset_id": net.uses_asset_id,
        "scaler": {"mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]},
        "feature_set": {"name": fs.name, "version": fs.version, "features": list(fs.features)},
        "label": {"kind": data.spec.label.kind, "horizon": data.horizon,
                  "params": data.spec.label.card_params()},
        "data": {"data_start": data.data_start, "data_end": data.data_end,
                 **{k: data.spec.range_text.get(k, "") for k in data.splits}},
        "epoch": epoch,
        "metric": {"name": result.metric_name, "value": float(result.best_metric)},
        "validation": dict(result.validation),
        "command": command or "",
        "seed": cfg.train.seed,
        "torch_version": str(torch.__version__),
    }
