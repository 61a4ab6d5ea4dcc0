"""The unrolled export form of a GRU signal network: the same parameters, a faster graph.

onnxruntime's fused ONNX ``GRU`` kernel runs the small cells of signal models (hidden 32)
at about a quarter of this CPU's sgemm rate and a seed-sized one (2 x 128) at about half
(``benchmarks/live.py``). :class:`UnrolledGRU` computes exactly the network of
:class:`research.nets.RecurrentNet` (``cell = "gru"``, no convolution front-end), traced
into a graph of GEMMs and whole-tensor activations that onnxruntime runs through MLAS:

* the time steps are unrolled (the lookback is fixed by the card); the batch axis stays
  dynamic;
* the reset and update gates each read ``[x_t, h]`` (one ``Concat``) through one GEMM
  with the input and recurrent weights stacked (``K = F + H``) and the two biases summed;
  onnxruntime fuses each GEMM with its sigmoid;
* the candidate gate keeps ``W_n x_t + b_in`` and ``r * (R_n h + b_hn)`` apart, as
  torch's GRU (``linear_before_reset``) does;
* the first step starts from ``h = 0`` (torch's default initial state), so its recurrent
  products are the recurrent biases alone;
* attention pooling runs time-major: one ``[L*B, H]`` GEMM fused with its tanh, the
  softmax over the time axis, the weighted sum over the leading axis - none of the
  transposes of the batch-major torch module.

The graph stores the network's parameters exactly as torch holds them
(``rnn.weight_ih_l0``, ``rnn.bias_hh_l0``, ...): the slicing, stacking, transposing and
bias sums above are constant nodes of the graph, which onnxruntime folds once when it
opens the session. So :func:`graph_parameters` reads the trained weights back from the
file bit for bit. Probabilities agree with torch to float32 rounding (the export's parity
check holds them within 1e-5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from engine.jsonfiles import read_json
from models.card import MODEL_FILE, load_card
from models.errors import ModelContractError
from research.config import MODEL_CONFIG_FILE, train_config_from_dict
from research.nets import RecurrentNet, SignalNet, build_net

__all__ = ["UnrolledGRU", "graph_parameters", "net_from_artifact", "supports_unrolled"]


def supports_unrolled(net: SignalNet) -> bool:
    """Whether *net* has an unrolled export form: a GRU network without a conv front-end."""
    return isinstance(net, RecurrentNet) and net.architecture == "gru" and net.conv is None


def _layer(rnn: nn.GRU, k: int, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Hidden states ``h_1 .. h_L`` (each ``(B, H)``) of layer *k* over the inputs *xs*."""
    hidden = rnn.hidden_size
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
    b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")
    r_, z_, n_ = (slice(i * hidden, (i + 1) * hidden) for i in range(3))  # torch's gate order
    # constant expressions of the parameters: folded by onnxruntime when the session opens
    w_r, w_z, w_n = w_ih[r_].t(), w_ih[z_].t(), w_ih[n_].t()
    wr_r = torch.cat([w_ih[r_], w_hh[r_]], dim=1).t()
    wr_z = torch.cat([w_ih[z_], w_hh[z_]], dim=1).t()
    b_r, b_z = b_ih[r_] + b_hh[r_], b_ih[z_] + b_hh[z_]
    r_n, b_in, b_hn = w_hh[n_].t(), b_ih[n_], b_hh[n_]
    out: list[torch.Tensor] = []
    h: torch.Tensor | None = None
    for x in xs:
        gx = torch.addmm(b_in, x, w_n)
        if h is None:  # h_0 = 0
            r = torch.sigmoid(torch.addmm(b_r, x, w_r))
            z = torch.sigmoid(torch.addmm(b_z, x, w_z))
            cand = torch.tanh(gx + r * b_hn)
            h = cand - z * cand
        else:
            xh = torch.cat([x, h], dim=1)
            r = torch.sigmoid(torch.addmm(b_r, xh, wr_r))
            z = torch.sigmoid(torch.addmm(b_z, xh, wr_z))
            cand = torch.tanh(gx + r * torch.addmm(b_hn, h, r_n))
            h = cand + z * (h - cand)
        out.append(h)
    return out


class UnrolledGRU(nn.Module):
    """Export form of a GRU :class:`~research.nets.RecurrentNet` (eval mode: dropout is identity).

    It holds *net* itself (same parameter objects), so a traced export names the graph's
    initializers after the network's parameters.
    """

    def __init__(self, net: SignalNet) -> None:
        super().__init__()
        if not isinstance(net, RecurrentNet) or not supports_unrolled(net):
            raise ValueError(f"no unrolled export form for architecture '{net.architecture}'")
        self.net: RecurrentNet = net

    def forward(self, features: torch.Tensor, asset_id: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities ``(B,)`` of windows ``(B, L, F)``."""
        net = self.net
        rnn = net.rnn
        xs = [x.reshape(-1, net.n_features) for x in features.split(1, dim=1)]  # Split + free Reshapes
        for k in range(rnn.num_layers):
            xs = _layer(rnn, k, xs)
        if net.pool is not None:
            lookback, hidden = len(xs), rnn.hidden_size
            seq = torch.cat(xs, dim=0)  # (L*B, H), time-major
            proj = torch.tanh(torch.addmm(net.pool.proj.bias, seq, net.pool.proj.weight.t()))
            scores = torch.mm(proj, net.pool.score.weight.t()).reshape(lookback, -1)  # (L, B)
            weights = torch.softmax(scores, dim=0).unsqueeze(-1)
            pooled = (seq.reshape(lookback, -1, hidden) * weights).sum(dim=0)
        else:
            pooled = xs[-1]
        if net.embedding is not None:
            if asset_id is None:
                raise ValueError("this model has an asset embedding: pass asset_id")
            pooled = torch.cat([pooled, net.embedding(asset_id)], dim=1)
        return torch.sigmoid(net.head(pooled).squeeze(-1))


def graph_parameters(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The float initializers of an unrolled export, keyed by the network's ``state_dict`` names.

    They are the torch parameters unchanged (``rnn.weight_ih_l0``, ``head.bias``, ...):
    ``graph_parameters(m)[k]`` equals ``net.state_dict()[k]`` bit for bit.
    """
    prefix = "net."
    return {
        init.name.removeprefix(prefix): numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT
    }


def net_from_artifact(folder: str | Path) -> RecurrentNet:
    """The torch network of an unrolled GRU artifact (``model.onnx`` + ``train_config.json``), eval mode.

    Its parameters are read from the graph (:func:`graph_parameters`), so exporting it again
    reproduces the artifact's model - in either graph form.

    Raises
    ------
    ModelContractError
        The folder has no training config, or its graph is not an unrolled GRU export.
    """
    folder = Path(folder)
    config = folder / MODEL_CONFIG_FILE
    if not config.is_file():
        raise ModelContractError(f"{folder}: no {MODEL_CONFIG_FILE} beside the model; re-export it with sigtrade export")
    card = load_card(folder)
    params = graph_parameters(onnx.load(str(folder / MODEL_FILE)))
    table = params.get("embedding.weight")
    cfg = train_config_from_dict(
        read_json(config, fix="re-export it with sigtrade export", error=ModelContractError, expect=dict), str(config))
    net = build_net(cfg.model, card.lookback, card.n_features, 0 if table is None else int(table.shape[0]))
    if not supports_unrolled(net):
        raise ModelContractError(f"{folder}: a {net.architecture} model has no unrolled GRU graph")
    want = net.state_dict()
    if set(params) != set(want):
        raise ModelContractError(
            f"{folder}/{MODEL_FILE} is not an unrolled GRU export (its initializers are not the network's "
            f"parameters: missing {sorted(set(want) - set(params))[:3]}); re-export it with sigtrade export"
        )
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})
    return net.eval()
