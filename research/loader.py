"""The torch side of :mod:`research.dataset`: a lazily indexed window Dataset and its loader.

:class:`WindowDataset` keeps the stacked, scaled feature matrix ``(T, F)`` once (on the
training device) and gathers a batch of windows with one ``index_select`` of ``B * L``
rows: no ``(N, L, F)`` copy of the split ever exists, and a batch costs about as much
as copying it. ``__getitems__`` makes ``torch.utils.data.DataLoader`` fetch whole
batches at once instead of sample by sample; the training loop skips even the
DataLoader's per-batch bookkeeping and slices a seeded permutation
(:func:`batch_order`, :func:`iter_batches`) - same batches, a fraction of the overhead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    WeightedRandomSampler,
)

from research.dataset import WindowData

__all__ = ["Batch", "WindowDataset", "batch_order", "iter_batches", "make_loader"]


class Batch(NamedTuple):
    """One batch: windows ``(B, L, F)`` float32, asset ids ``(B,)`` int64, labels ``(B,)`` float32."""

    x: torch.Tensor
    asset_id: torch.Tensor
    y: torch.Tensor


class WindowDataset(Dataset[Batch]):
    """The samples of one split, gathered from the shared feature matrix on demand."""

    def __init__(self, data: WindowData, split: str, device: torch.device | str = "cpu",
                 features: torch.Tensor | None = None) -> None:
        sp = data.splits[split]
        self.device = torch.device(device)
        self.lookback = data.lookback
        self.features = features if features is not None else torch.from_numpy(data.features).to(self.device)
        self.starts = torch.from_numpy(sp.ends - (data.lookback - 1)).to(self.device)
        self.y = torch.from_numpy(sp.labels).to(self.device)
        self.asset_id = torch.from_numpy(sp.asset_ids).to(self.device)
        self._offsets = torch.arange(data.lookback, device=self.device)
        self.sample_weights = sp.sample_weights()

    def __len__(self) -> int:
        """Number of windows."""
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> Batch:
        """One window ``(L, F)`` with its asset id and label."""
        s = int(self.starts[i])
        return Batch(self.features[s : s + self.lookback], self.asset_id[i], self.y[i])

    def __getitems__(self, indices: list[int] | torch.Tensor) -> Batch:
        """A whole batch in one gather."""
        idx = torch.as_tensor(indices, dtype=torch.long).to(self.device)
        rows = (self.starts[idx].unsqueeze(1) + self._offsets).reshape(-1)
        x = self.features.index_select(0, rows).view(idx.shape[0], self.lookback, -1)
        return Batch(x, self.asset_id[idx], self.y[idx])


def _as_batch(batch: Batch) -> Batch:
    return batch


def make_loader(
    dataset: WindowDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    weighted: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader[Batch]:
    """A DataLoader that yields :class:`Batch` es built by ``__getitems__``.

    ``shuffle``: a seeded random permutation each epoch; ``weighted``: a class-balanced
    ``WeightedRandomSampler`` (with replacement, ``len(dataset)`` draws per epoch);
    neither: in order (validation, evaluation).
    """
    sampler: torch.utils.data.Sampler[int]
    if weighted:
        weights = torch.from_numpy(np.asarray(dataset.sample_weights, dtype=np.float64))
        sampler = WeightedRandomSampler(weights, num_samples=len(dataset), replacement=True, generator=generator)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=False),
        collate_fn=_as_batch,
        num_workers=0,
    )


def batch_order(
    dataset: WindowDataset,
    *,
    shuffle: bool = False,
    weighted: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One epoch's sample order: in order, a seeded permutation, or class-balanced draws with replacement."""
    n = len(dataset)
    if weighted:
        weights = torch.from_numpy(np.asarray(dataset.sample_weights, dtype=np.float64))
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    if shuffle:
        return torch.randperm(n, generator=generator)
    return torch.arange(n)


def iter_batches(dataset: WindowDataset, batch_size: int, order: torch.Tensor) -> Iterator[Batch]:
    """Batches of *dataset* in *order* (the last one may be smaller)."""
    for start in range(0, int(order.shape[0]), batch_size):
        yield dataset.__getitems__(order[start : start + batch_size])
