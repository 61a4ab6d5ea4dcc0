"""Benchmark: training throughput per architecture on CPU, and the share spent loading data.

For each architecture (mlp, lstm, gru, cnn_lstm at the config defaults: hidden 64,
2 layers, attention pooling, asset embedding 4, batch 256, 2 threads) it measures, in one
process run, on a synthetic universe built in memory:

* ``pipeline``     : :func:`research.train.train` end to end for ``--epochs`` epochs; the
                     last epoch's training samples/s and the share of its training phase
                     spent fetching batches (permutation + window gather);
* ``compute only`` : the same forward / backward / optimiser steps on one pre-gathered
                     batch reused every step - the baseline the pipeline is compared with.

``ratio`` = pipeline / compute-only samples/s (1.0 = the data path costs nothing).
Data loading must stay under 20 % of the epoch's training time.

Usage: ``python benchmarks/training.py [--quick] [--epochs N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from engine.sample import SampleSpec, generate_sample  # noqa: E402
from research.config import train_config_from_dict  # noqa: E402
from research.dataset import DatasetSpec, build_windows  # noqa: E402
from research.loader import WindowDataset, batch_order, iter_batches  # noqa: E402
from research.losses import make_loss  # noqa: E402
from research.nets import build_net, count_parameters  # noqa: E402
from research.train import train  # noqa: E402

ARCHITECTURES = ("mlp", "lstm", "gru", "cnn_lstm")


def compute_only(cfg, data, steps: int) -> float:
    """Samples/s of the training step alone, on one batch gathered beforehand."""
    torch.manual_seed(0)
    net = build_net(cfg.model, data.lookback, data.n_features, len(data.asset_map))
    ds = WindowDataset(data, "train")
    batch = next(iter_batches(ds, cfg.train.batch_size, batch_order(ds, shuffle=True)))
    loss_fn = make_loss(cfg.train.loss, class_weights=data.splits["train"].class_weights())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr)
    ids = batch.asset_id if net.uses_asset_id else None
    net.train()
    for i in range(steps + 5):
        if i == 5:
            t0 = time.perf_counter()
        loss = loss_fn(net.logits(batch.x, ids), batch.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.train.grad_clip)
        opt.step()
    return steps * batch.y.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 symbols instead of 12")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per architecture (the last is reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 110))

    spec = SampleSpec(seed=5, n_symbols=4 if args.quick else 12, start="2023-01-03", end="2024-06-28")
    t0 = time.perf_counter()
    frames = generate_sample(spec)
    raw = {
        "data": {"train": "..2023-12-31", "validation": "2024-01-01..2024-03-31", "test": "2024-04-01.."},
        "model": {"embedding_dim": 4},
        "train": {"epochs": args.epochs, "patience": args.epochs, "threads": args.threads, "device": "cpu"},
    }
    base_cfg = train_config_from_dict(raw)
    data = build_windows(DatasetSpec.from_config(base_cfg), frames=frames)
    prep = time.perf_counter() - t0
    n_train = data.splits["train"].n
    console.print(
        f"synthetic universe: {len(frames)} symbols, {n_train:,} training windows "
        f"(lookback {data.lookback}, {data.n_features} features), built in {prep:.1f} s; "
        f"torch {torch.__version__}, {args.threads} threads, CPU",
        highlight=False,
    )
    table = Table(title="training throughput (last epoch)", title_justify="left")
    for col in ("architecture", "parameters", "pipeline samples/s", "compute-only samples/s",
                "ratio", "data loading share", "epoch s (train + val)"):
        table.add_column(col, justify="right")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHITECTURES:
            cfg = train_config_from_dict({**raw, "model": {**raw["model"], "architecture": arch},
                                          "output": {"run_dir": str(Path(tmp) / arch)}})
            result = train(cfg, data=data)
            last = result.history[-1]
            steps = max(20, min(200, n_train // cfg.train.batch_size))
            baseline = compute_only(cfg, data, steps)
            worst = max(worst, last["data_share"])
            net = build_net(cfg.model, data.lookback, data.n_features, len(data.asset_map))
            table.add_row(arch, f"{count_parameters(net):,}", f"{last['samples_per_s']:,.0f}",
                          f"{baseline:,.0f}", f"{last['samples_per_s'] / baseline:.2f}",
                          f"{last['data_share']:.1%}", f"{last['epoch_s']:.1f}")
    console.print(table)
    verdict = "OK" if worst < 0.20 else "TOO HIGH"
    console.print(f"largest data-loading share: {worst:.1%} of the training phase (target < 20 %): {verdict}")


if __name__ == "__main__":
    main()
