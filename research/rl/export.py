"""Export an RL run's best policy as ``model.onnx`` + ``card.json`` (``kind = "policy"``).

The graph (opset 17, dynamic batch axis) takes the scaled feature window ``features
[-1, L, F]`` and the **raw** state ``state [-1, S]``, normalises the state exactly as the
environment does (``clip((x - offset) x scale)``, the constants of
:mod:`research.rl.env_nb`: the normalisation is folded into the graph), concatenates both
as the training observation and runs the policy network to ``logits [-1, A]``. The card
(:class:`models.policy.PolicyCard`) records the feature set and scaler (fitted on the
training split), the observation spec, the action map, the environment the policy was
trained in, the data ranges, the command and the best validation figures; in gate mode the
signal model is copied into ``gate/``. Before returning, onnxruntime and torch must agree
within 1e-5 on seeded random observations, and :func:`models.policy.validate_policy` runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.jsonfiles import read_json
from models.card import (
    CARD_FILE,
    MODEL_FILE,
    FeatureSetRef,
    Scaler,
    TensorSpec,
    TrainingInfo,
    atomic_write,
    write_card,
)
from models.errors import ModelContractError
from models.input_contract import contract_metadata
from models.policy import (
    GATE_DIR,
    GateSpec,
    ObservationSpec,
    PolicyCard,
    StateField,
    validate_policy,
)
from research.export import OPSET, PARITY_TOL
from research.rl import env_nb as E
from research.rl.config import RL_CONFIG_FILE, rl_config_to_dict
from research.rl.train import RUN_FILE, load_run

__all__ = ["OPSET", "PARITY_TOL", "PolicyExport", "export_policy", "is_rl_run"]

OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class PolicyExport:
    """Where the policy went and what its card says."""

    path: Path
    card: PolicyCard
    max_abs_diff: float
    warnings: list[str]


def is_rl_run(source: str | Path) -> bool:
    """Whether *source* (a folder or a file in it) is an RL run folder."""
    folder = Path(source)
    if folder.is_file():
        folder = folder.parent
    return (folder / RL_CONFIG_FILE).is_file()


def _graph_module(policy: Any, n_state: int) -> Any:
    import torch
    from torch import nn

    class PolicyGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy
            self.register_buffer("offset", torch.tensor(E.STATE_OFFSET[:n_state], dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(E.STATE_SCALE[:n_state], dtype=torch.float32))
            self.register_buffer("clip", torch.tensor(E.STATE_CLIP[:n_state], dtype=torch.float32))

        def forward(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
            s = (state - self.offset) * self.scale
            s = torch.maximum(torch.minimum(s, self.clip), -self.clip)
            obs = torch.cat([features.reshape(features.shape[0], -1), s], dim=1)
            latent = self.policy.mlp_extractor.forward_actor(self.policy.pi_features_extractor(obs))
            return self.policy.action_net(latent)

    return PolicyGraph().eval()


def _onnx_bytes(module: Any, lookback: int, n_features: int, n_state: int, metadata: dict[str, str]) -> bytes:
    import onnx
    import torch

    buf = io.BytesIO()
    args = (torch.zeros(2, lookback, n_features), torch.zeros(2, n_state))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, buf, dynamo=False, input_names=["features", "state"], output_names=[OUTPUT_NAME],
            opset_version=OPSET, dynamic_axes={"features": {0: "batch"}, "state": {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "sigtrade.research.rl"
    model.doc_string = "sigtrade RL policy: action logits of (scaled feature window, raw state)"
    for key, value in metadata.items():  # the input contract, checked against the card on load
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def _parity(blob: bytes, module: Any, policy: Any, lookback: int, n_features: int, n_state: int) -> float:
    """max |onnxruntime - torch| on seeded observations; also the graph against SB3's own forward pass."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    n = 64
    x = rng.standard_normal((n, lookback, n_features)).astype(np.float32)
    state = np.column_stack([rng.choice([-1.0, 0.0, 1.0], n), rng.normal(0, 0.05, n), rng.integers(0, 300, n),
                             rng.random(n)])[:, :n_state].astype(np.float32)
    got = np.asarray(ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(
        [OUTPUT_NAME], {"features": x, "state": state})[0], dtype=np.float64)
    with torch.no_grad():
        want = module(torch.from_numpy(x), torch.from_numpy(state)).double().numpy()
        norm = np.clip((state - E.STATE_OFFSET[:n_state]) * E.STATE_SCALE[:n_state], -E.STATE_CLIP[:n_state],
                       E.STATE_CLIP[:n_state])
        obs = torch.from_numpy(np.concatenate([x.reshape(n, -1), norm], axis=1).astype(np.float32))
        dist = policy.get_distribution(obs)
        sb3 = dist.distribution.logits.double().numpy()
    # SB3's categorical logits are normalised (log-softmax); the arg-max and the differences are what count
    shift = (want - want.max(axis=1, keepdims=True)) - (sb3 - sb3.max(axis=1, keepdims=True))
    return float(max(np.max(np.abs(got - want)), np.max(np.abs(shift))))


def export_policy(source: str | Path, out: str | Path, *, name: str | None = None, command: str | None = None) -> PolicyExport:
    """Export the best policy of the RL run folder *source* to the folder *out* (see the module docstring).

    Raises
    ------
    ConfigError
        *source* is not an RL run folder with a policy.
    ModelContractError
        The graph disagrees with the policy beyond 1e-5, or fails validation.
    """
    cfg, meta, model = load_run(source)
    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    out = Path(out)
    policy = model.policy.to("cpu").eval()
    lookback, fs = int(meta["lookback"]), meta["feature_set"]
    n_features = len(fs["features"])
    gate = meta.get("gate")
    n_state = 4 if gate else 3
    module = _graph_module(policy, n_state)
    contract = contract_metadata(feature_set=fs["name"], version=str(fs["version"]), features=fs["features"],
                                 lookback=lookback, scaler_mean=meta["mean"], scaler_std=meta["std"])
    blob = _onnx_bytes(module, lookback, n_features, n_state, contract)
    diff = _parity(blob, module, policy, lookback, n_features, n_state)
    if not diff <= PARITY_TOL:
        raise ModelContractError(f"ONNX export of {source} disagrees with the policy by {diff:.2e} (> {PARITY_TOL:g})")
    run = read_json(folder / RUN_FILE, fix="train the policy again with `sigtrade rl train CONFIG`", expect=dict)
    result = run.get("result", {})
    validation = {k: float(v) for k, v in (result.get("validation") or {}).items()
                  if isinstance(v, int | float) and np.isfinite(v)}
    if not validation:
        raise ConfigError(f"{folder} has no validation figures: the run never validated a policy")
    env_record = {"env": msgspec_dict(cfg.env), "costs": msgspec_dict(cfg.costs), "risk": msgspec_dict(cfg.risk),
                  "reward": msgspec_dict(cfg.reward), "algorithm": cfg.algorithm, "ppo": msgspec_dict(cfg.ppo),
                  "timesteps": result.get("timesteps"), "best_timesteps": result.get("best_timesteps")}
    state = tuple(StateField(name=E.STATE_NAMES[u], offset=float(E.STATE_OFFSET[u]), scale=float(E.STATE_SCALE[u]),
                             clip=float(E.STATE_CLIP[u])) for u in range(n_state))
    train_cmd = run.get("command") or "research.rl.train.train_rl(config) from Python"
    export_cmd = command or f"sigtrade export {source} --out {out}"
    gate_spec = None
    if gate:
        gate_spec = GateSpec(folder=GATE_DIR, name=str(gate["name"]), onnx_sha256=str(gate["onnx_sha256"]),
                             entry_threshold=float(gate["entry_threshold"]), exit_threshold=float(gate["exit_threshold"]))
    card = PolicyCard(
        name=name or out.name, algorithm=cfg.algorithm, architecture="mlp",
        feature_set=FeatureSetRef(name=fs["name"], version=str(fs["version"]), features=tuple(fs["features"])),
        lookback=lookback, bar=cfg.data.bar,
        scaler=Scaler(mean=tuple(float(v) for v in meta["mean"]), std=tuple(float(v) for v in meta["std"])),
        observation=ObservationSpec(lookback=lookback, n_features=n_features, state=state),
        actions=tuple(cfg.actions), masks=cfg.env.masks,
        inputs=(TensorSpec(name="features", shape=(-1, lookback, n_features), dtype="float32"),
                TensorSpec(name="state", shape=(-1, n_state), dtype="float32")),
        output=TensorSpec(name=OUTPUT_NAME, shape=(-1, len(cfg.actions)), dtype="float32"),
        gate=gate_spec, environment=env_record,
        training=TrainingInfo(data_start=str(meta.get("data_start", "")), data_end=str(meta.get("data_end", "")),
                              train=cfg.data.train, validation=cfg.data.validation, test=cfg.data.test,
                              command=f"{train_cmd} && {export_cmd}", seed=cfg.train.seed),
        metrics={"validation": validation}, onnx_sha256=hashlib.sha256(blob).hexdigest(), opset=OPSET,
    )
    # build the folder beside the target, then swap it in: never a half-written policy
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        atomic_write(staging / MODEL_FILE, blob)
        write_card(card, staging / CARD_FILE)
        atomic_write(staging / RL_CONFIG_FILE, (json.dumps(rl_config_to_dict(cfg), indent=2, sort_keys=True) + "\n").encode())
        if gate:
            src = Path(gate["model"])
            (staging / GATE_DIR).mkdir()
            for file in (MODEL_FILE, CARD_FILE):
                shutil.copy2(src / file, staging / GATE_DIR / file)
        for file in staging.rglob("*"):
            if file.is_file():
                file.chmod(0o644)
        staging.chmod(0o755)
        card, warns = validate_policy(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PolicyExport(path=out, card=card, max_abs_diff=diff, warnings=warns)


def msgspec_dict(section: Any) -> dict[str, Any]:
    """A config section as plain builtins."""
    import msgspec

    return msgspec.to_builtins(section)  # type: ignore[no-any-return]
