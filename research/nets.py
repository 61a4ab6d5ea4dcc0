"""The torch architectures: MLP, LSTM, GRU and CNN-LSTM, each with an optional asset embedding.

Every network takes ``x`` ``(B, L, F)`` float32 (scaled windows, oldest bar first) and,
when built with ``n_assets > 0`` and ``embedding_dim > 0``, ``asset_id`` ``(B,)`` int64.

* :meth:`SignalNet.logits` returns ``(B,)`` logits - the training losses work on them;
* :meth:`SignalNet.forward` returns ``(B,)`` probabilities (``sigmoid(logits)``), so the
  exported ONNX graph ends in the sigmoid as the model-card contract requires.

Recurrent models pool their hidden states over time with additive attention
(``softmax_t(v . tanh(W h_t))``-weighted sum) unless ``attention=False``, which takes the
last hidden state. The asset embedding is concatenated to the pooled representation
(MLP: to the flattened window) before the head.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import ConfigError, did_you_mean
from research.config import ARCHITECTURES, ModelSection

__all__ = ["AttentionPool", "SignalNet", "build_net", "count_parameters"]


class AttentionPool(nn.Module):
    """Additive attention over time: ``(B, L, H) -> (B, H)``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the time steps."""
        weights = torch.softmax(self.score(torch.tanh(self.proj(h))), dim=1)  # (B, L, 1)
        return (h * weights).sum(dim=1)


class SignalNet(nn.Module):
    """Base class: optional asset embedding, a body that maps windows to features, a linear head."""

    architecture = "base"

    def __init__(self, lookback: int, n_features: int, n_assets: int = 0, embedding_dim: int = 0) -> None:
        super().__init__()
        self.lookback = int(lookback)
        self.n_features = int(n_features)
        self.uses_asset_id = bool(n_assets > 0 and embedding_dim > 0)
        self.embedding = nn.Embedding(n_assets, embedding_dim) if self.uses_asset_id else None
        self.embedding_dim = int(embedding_dim) if self.uses_asset_id else 0

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, F) -> (B, D)``."""
        raise NotImplementedError

    def logits(self, x: torch.Tensor, asset_id: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B,)`` (training)."""
        z = self.body(x)
        if self.embedding is not None:
            if asset_id is None:
                raise ValueError("this model has an asset embedding: pass asset_id")
            z = torch.cat([z, self.embedding(asset_id)], dim=1)
        return self.head(z).squeeze(-1)

    def forward(self, x: torch.Tensor, asset_id: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities ``(B,)`` (inference and ONNX export)."""
        return torch.sigmoid(self.logits(x, asset_id))


class MLPNet(SignalNet):
    """Flattened window -> ``layers`` x (Linear, ReLU, Dropout) -> Linear."""

    architecture = "mlp"

    def __init__(self, lookback: int, n_features: int, hidden: int = 64, layers: int = 2,
                 dropout: float = 0.1, n_assets: int = 0, embedding_dim: int = 0) -> None:
        super().__init__(lookback, n_features, n_assets, embedding_dim)
        blocks: list[nn.Module] = []
        width = lookback * n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*blocks)
        self.head = nn.Linear(width + self.embedding_dim, 1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten and transform."""
        return self.mlp(x.flatten(1))


class RecurrentNet(SignalNet):
    """[Conv1d front-end] -> LSTM or GRU -> attention or last-state pooling -> Dropout -> Linear."""

    def __init__(self, lookback: int, n_features: int, hidden: int = 64, layers: int = 1,
                 dropout: float = 0.1, n_assets: int = 0, embedding_dim: int = 0, *,
                 cell: str = "gru", attention: bool = True, conv_kernel: int = 0) -> None:
        super().__init__(lookback, n_features, n_assets, embedding_dim)
        self.architecture = ("cnn_" if conv_kernel else "") + cell
        width = n_features
        self.conv: nn.Module | None = None
        if conv_kernel:
            self.conv = nn.Sequential(
                nn.Conv1d(n_features, hidden, conv_kernel, padding=conv_kernel // 2), nn.ReLU()
            )
            width = hidden
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(width, hidden, num_layers=layers, batch_first=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.pool = AttentionPool(hidden) if attention else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + self.embedding_dim, 1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Encode the sequence and pool it."""
        if self.conv is not None:
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        h, _ = self.rnn(x)
        pooled = self.pool(h) if self.pool is not None else h[:, -1]
        return self.drop(pooled)


def build_net(model: ModelSection, lookback: int, n_features: int, n_assets: int) -> SignalNet:
    """The network a config's ``[model]`` section describes."""
    arch = model.architecture
    emb = model.embedding_dim if n_assets > 0 else 0
    common = {"hidden": model.hidden, "layers": model.layers, "dropout": model.dropout,
              "n_assets": n_assets if emb else 0, "embedding_dim": emb}
    if arch == "mlp":
        return MLPNet(lookback, n_features, **common)
    if arch in ("lstm", "gru"):
        return RecurrentNet(lookback, n_features, cell=arch, attention=model.attention, **common)
    if arch == "cnn_lstm":
        return RecurrentNet(lookback, n_features, cell="lstm", attention=model.attention,
                            conv_kernel=model.kernel_size, **common)
    raise ConfigError(
        f"model.architecture = '{arch}' is unknown{did_you_mean(arch, ARCHITECTURES)} "
        f"(choose one of {', '.join(ARCHITECTURES)})"
    )


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
