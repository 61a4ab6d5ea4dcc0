"""Rebuild the shipped demo models: ``models/demo_mlp``, ``models/demo_gru``, ``models/demo_ensemble``.

Run from the repository root::

    python -m research.demo_models            # ~2-3 minutes on 2 CPU cores

It runs exactly the commands recorded in the cards::

    sigtrade sample --catalog catalogs/sample
    sigtrade train config/train_demo_mlp.toml && sigtrade export runs/demo_mlp --out models/demo_mlp
    sigtrade train config/train_demo_gru.toml && sigtrade export runs/demo_gru --out models/demo_gru

then writes ``models/demo_ensemble/ensemble.json`` (combiner ``f1_weighted`` over the two;
its threshold is the best-F1 threshold of the combined *validation* probabilities) and
validates all three with ``sigtrade models validate``. Training is deterministic on CPU and
the export is byte-stable, so a rebuild on the same machine reproduces the same
``model.onnx`` bytes (the sha256 in each card).

The models are trained on the SYNTHETIC sample catalog: they demonstrate the pipeline, not
a trading edge.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from engine.cli.app import main as cli

log = logging.getLogger(__name__)

MEMBERS = (("demo_mlp", "config/train_demo_mlp.toml"), ("demo_gru", "config/train_demo_gru.toml"))
CATALOG = "catalogs/sample"
ENSEMBLE = "demo_ensemble"


def ensemble_threshold(model_dirs: list[Path]) -> float:
    """Best-F1 threshold of the F1-weighted mean of the members' validation probabilities."""
    from engine.stats.classification import best_threshold
    from models.card import load_card
    from research.evaluate import evaluate

    runs = [evaluate(d, "validation", plots=False, out=Path("out") / "evaluate" / d.name / "validation")
            for d in model_dirs]
    labels = runs[0].labels
    if any(r.labels.shape != labels.shape or not np.array_equal(r.labels, labels) for r in runs):
        log.warning("members were validated on different windows; ensemble threshold left at 0.5")
        return 0.5
    weights = np.array([float(load_card(d).metrics["validation"]["f1"]) for d in model_dirs])
    combined = weights @ np.vstack([r.probs for r in runs]) / weights.sum()
    return best_threshold(labels, combined)[0]


def build(models_root: Path = Path("models"), *, evaluate_test: bool = True) -> None:
    """Train, export, combine and validate the demo models (paths relative to the repo root)."""
    from models.ensemble import EnsembleCard, EnsembleMember, write_ensemble_card

    cli(["sample", "--catalog", CATALOG])
    dirs = []
    for name, config in MEMBERS:
        cli(["train", config, "--quiet"])
        out = models_root / name
        cli(["export", f"runs/{name}", "--out", str(out)])
        cli(["models", "validate", str(out)])
        dirs.append(out)
    card = EnsembleCard(
        name=ENSEMBLE,
        bar="1-HOUR",
        members=tuple(EnsembleMember(path=f"../{name}") for name, _ in MEMBERS),
        combiner="f1_weighted",
        threshold=ensemble_threshold(dirs),
    )
    (models_root / ENSEMBLE).mkdir(parents=True, exist_ok=True)
    path = write_ensemble_card(card, models_root / ENSEMBLE)
    path.chmod(0o644)
    cli(["models", "validate", str(models_root / ENSEMBLE)])
    if evaluate_test:
        for d in dirs:
            cli(["evaluate", str(d), "--split", "test"])


def _main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild the demo models (run from the repo root).")
    parser.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation")
    args = parser.parse_args()
    build(evaluate_test=not args.no_eval)


if __name__ == "__main__":
    _main()
