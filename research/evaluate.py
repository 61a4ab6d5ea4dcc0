"""Evaluate an exported model (the ONNX artifact the engine loads) on one split.

The split's windows are rebuilt exactly as in training - same catalog, symbols, ranges,
purge and label (from ``train_config.json`` beside the card, or a config given
explicitly) - but scaled with the **card's** scaler and scored by onnxruntime through
:class:`models.onnx_model.OnnxSignalModel`, so the numbers describe the artifact itself.

Outputs (in ``out``, default ``out/evaluate/<model>/<split>``):

* ``metrics.json`` - accuracy, precision, recall, F1 at the card's threshold and at 0.5,
  PR-AUC, ROC-AUC, counts;
* ``threshold_grid.csv`` - precision / recall / F1 / predicted-positive rate for the
  thresholds 0.01 .. 0.99;
* ``pr_curve.png``, ``roc_curve.png``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from engine.errors import ConfigError, MissingExtraError, did_you_mean
from engine.jsonfiles import read_json
from engine.stats.classification import classification_metrics, pr_curve, roc_curve, threshold_grid
from models.errors import ModelContractError
from models.onnx_model import OnnxSignalModel
from research.config import (
    MODEL_CONFIG_FILE,
    SPLITS,
    TrainConfig,
    load_train_config,
    train_config_from_dict,
)
from research.dataset import DatasetSpec, build_windows

__all__ = ["EvalResult", "evaluate", "load_model_config"]

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Metrics and where they were written."""

    model: str
    split: str
    metrics: dict[str, Any]
    grid: pd.DataFrame
    out: Path | None
    files: list[Path] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.empty(0))
    labels: np.ndarray = field(default_factory=lambda: np.empty(0))


def load_model_config(model_dir: Path, config: str | Path | None = None,
                      overrides: list[str] | None = None) -> TrainConfig:
    """The training config of a model: *config* (TOML) if given, else its ``train_config.json``."""
    if config is not None:
        return load_train_config(config, overrides)
    file = Path(model_dir) / MODEL_CONFIG_FILE
    if not file.is_file():
        raise ConfigError(
            f"{model_dir} has no {MODEL_CONFIG_FILE} (written by `sigtrade export`): pass the training "
            "config with --config so the splits can be rebuilt"
        )
    raw = read_json(file, fix="re-export the model with `sigtrade export`", error=ModelContractError, expect=dict)
    if overrides:
        from engine.config import apply_overrides

        raw = apply_overrides(raw, overrides)
    return train_config_from_dict(raw, str(file))


def evaluate(
    model_dir: str | Path,
    split: str = "test",
    *,
    config: str | Path | None = None,
    catalog: str | None = None,
    out: str | Path | None = None,
    plots: bool = True,
) -> EvalResult:
    """Score *split* with the artifact in *model_dir* and compute (and save) its metrics.

    Raises
    ------
    ConfigError
        Unknown split, missing config, a config that disagrees with the card.
    DataError
        The split has no windows or one class only.
    """
    if split not in SPLITS:
        raise ConfigError(
            f"--split '{split}' is unknown{did_you_mean(split, SPLITS)} (choose one of {', '.join(SPLITS)})"
        )
    model_dir = Path(model_dir)
    model = OnnxSignalModel.load(model_dir)
    card = model.card
    cfg = load_model_config(model_dir, config)
    if catalog:
        cfg = msgspec.structs.replace(cfg, data=msgspec.structs.replace(cfg.data, catalog=str(catalog)))
    if cfg.data.lookback != card.lookback or cfg.label.horizon != card.label.horizon:
        raise ConfigError(
            f"the config (lookback {cfg.data.lookback}, horizon {cfg.label.horizon}) does not "
            f"match the card of {model_dir} (lookback {card.lookback}, horizon {card.label.horizon})"
        )
    spec = DatasetSpec.from_config(cfg)
    if tuple(spec.feature_set.features) != tuple(card.feature_set.features):
        raise ConfigError(f"the config's feature set differs from the card of {model_dir}")
    asset_map = dict(card.asset_map) if card.asset_map is not None else None
    if asset_map is not None and spec.symbols == "all":
        spec = replace(spec, symbols=sorted(asset_map, key=asset_map.__getitem__))
    data = build_windows(spec, scaler=(card.scaler.mean, card.scaler.std), asset_map=asset_map,
                         require=(split,))
    sp = data.splits[split]
    probs = np.empty(sp.n, dtype=np.float64)
    for seg, windows in data.segment_windows(split):
        ids = sp.asset_ids[seg.start : seg.stop] if card.has_asset_ids else None
        probs[seg.start : seg.stop] = model.predict(windows, ids)
    y = sp.labels.astype(np.float64)
    at_card = classification_metrics(y, probs, card.threshold)
    at_half = classification_metrics(y, probs, 0.5)
    metrics: dict[str, Any] = {
        "model": card.name, "split": split, "range": sp.range_text, "samples": sp.n,
        "positives": sp.n_pos, **at_card,
        "f1_at_0.5": at_half["f1"], "precision_at_0.5": at_half["precision"],
        "recall_at_0.5": at_half["recall"], "accuracy_at_0.5": at_half["accuracy"],
        "first_decision_bar": sp.summary()["first_decision_bar"],
        "last_decision_bar": sp.summary()["last_decision_bar"],
    }
    grid = pd.DataFrame(threshold_grid(y, probs))
    result = EvalResult(model=card.name, split=split, metrics=metrics, grid=grid, out=None,
                        probs=probs, labels=y)
    target = Path(out) if out is not None else Path("out") / "evaluate" / card.name / split
    target.mkdir(parents=True, exist_ok=True)
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    grid.to_csv(target / "threshold_grid.csv", index=False, float_format="%.6f")
    result.files = [target / "metrics.json", target / "threshold_grid.csv"]
    if plots:
        result.files += _plots(y, probs, target, f"{card.name} - {split}", at_card)
    result.out = target
    return result


def _plots(y: np.ndarray, probs: np.ndarray, target: Path, title: str,
           metrics: dict[str, Any]) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError(
            "the PR / ROC plots need matplotlib (part of the [research] extra): "
            "pip install -e '.[research]' (install torch first: see README)"
        ) from None

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    files = []
    precision, recall, _ = pr_curve(y, probs)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.step(recall, precision, where="post", label=f"PR-AUC {metrics['pr_auc']:.3f}")
    ax.axhline(float(y.mean()), color="grey", linestyle="--", linewidth=1, label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR curve: {title}")
    ax.legend(loc="lower left")
    fig.tight_layout()
    files.append(target / "pr_curve.png")
    fig.savefig(files[-1])
    plt.close(fig)

    fpr, tpr, _ = roc_curve(y, probs)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(fpr, tpr, label=f"ROC-AUC {metrics['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02),
           title=f"ROC curve: {title}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    files.append(target / "roc_curve.png")
    fig.savefig(files[-1])
    plt.close(fig)
    return files

