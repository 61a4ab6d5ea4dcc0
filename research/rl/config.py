"""Typed, frozen, strict configuration of a reinforcement-learning run (``sigtrade rl train CONFIG``).

Same house style as :mod:`research.config`: every section is a :class:`msgspec.Struct`
that rejects unknown fields (with a did-you-mean), every numeric field has both bounds,
``--set section.key=value`` overrides are applied before validation. The sections:

* ``[data]`` - catalog, symbols, bar, lookback and the three date ranges (as for
  supervised training: the scaler is fitted on the training split only);
* ``[features]`` - the feature set of the shared pipeline (``seed14@1``);
* ``[env]`` - the environment: account (capital, position size, whole / fractional
  shares, cash / margin), fill timing, shorts, episode length, action masks, gate mode;
* ``[costs]`` - :class:`engine.config.CostsConfig`, the backtest's own cost section;
* ``[risk]`` - the single-position overlays the environment simulates (stops, time stop,
  minimum hold, cooldown);
* ``[reward]`` - the penalties subtracted from the net log-equity change;
* ``[algo]`` and ``[ppo]`` - the algorithm and its hyper-parameters;
* ``[train]`` - timesteps, validation cadence, early stopping, seed;
* ``[output]`` - run name and folder.

A file is an RL config when it has an ``[env]``, ``[algo]`` or ``[ppo]`` table
(:func:`is_rl_config`), which is how ``sigtrade tune`` and ``sigtrade export`` tell it
from a supervised training config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from engine.config import MAX_CAPITAL, CostsConfig, apply_overrides, check_bar_spec, read_toml
from engine.errors import ConfigError
from engine.schema import convert
from research.config import FeaturesSection, OutputSection, parse_range

__all__ = [
    "ALGORITHMS",
    "RL_CONFIG_FILE",
    "RLConfig",
    "is_rl_config",
    "load_rl_config",
    "rl_config_from_dict",
    "rl_config_to_dict",
]

ALGORITHMS = ("ppo",)
"""Algorithms ``[algo] name`` accepts (PPO; MaskablePPO is used for it when ``env.masks`` is on)."""
RL_CONFIG_FILE = "rl_config.json"
"""The resolved RL config, written into every run folder and beside an exported policy."""
SPLITS = ("train", "validation", "test")

Bars = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: frozen, strict, keyword-only."""


class RLDataSection(_Section):
    """Which bars, which symbols, which date ranges (NYSE dates of bar closes, inclusive)."""

    catalog: str = "catalogs/sample"
    """Path of the ParquetDataCatalog (relative to the working directory)."""
    symbols: list[str] | Literal["all"] = "all"
    """Symbols whose episodes are trained on, or "all" for every symbol in the catalog."""
    bar: str = "1-HOUR"
    """Bar size, as written by `sigtrade ingest` / `sigtrade sample`."""
    lookback: Annotated[int, msgspec.Meta(ge=1, le=512)] = 24
    """Bars of the feature window in each observation (oldest first, the decision bar last)."""
    train: str = "..2023-12-31"
    """Training range "START..END": episodes are drawn here, and the feature scaler is fitted here."""
    validation: str = "2024-01-01..2024-06-30"
    """Validation range: the policy is scored here during training (early stopping on its net Sharpe)."""
    test: str = "2024-07-01.."
    """Test range: untouched by `rl train` (`rl evaluate` and backtests use it)."""


class EnvSection(_Section):
    """The environment: one position per episode, the event engine's fills, costs and overlays."""

    capital: Annotated[float, msgspec.Meta(ge=1.0, le=MAX_CAPITAL)] = 100_000.0
    """Starting cash of each episode in USD."""
    position_size: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 1.0
    """Fraction of equity put into a position when the policy enters (portfolio.position_size)."""
    fractional: bool = False
    """Fractional share quantities (as Alpaca allows); whole shares otherwise."""
    account: Literal["cash", "margin"] = "cash"
    """cash (long only) or margin (needed for env.short)."""
    short: bool = False
    """Add the action "short" (target a short position); needs account = "margin"."""
    fill: Literal["next_open", "close"] = "next_open"
    """next_open: a decision at bar t's close fills at bar t+1's open; close: at bar t's close (optimistic)."""
    episode_bars: Annotated[int, msgspec.Meta(ge=3, le=100_000)] = 500
    """Bars per training episode (a random symbol and start inside the training split; shorter where a split is)."""
    n_envs: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 16
    """Episodes stepped at once (the vectorised numba environment)."""
    masks: bool = True
    """Mask the actions the rules refuse (an exit before risk.min_hold_bars, an entry in the cooldown): MaskablePPO."""
    gate_model: str = ""
    """Gate mode: folder of a signal model; the agent then only decides trade / skip on its proposed entries."""
    entry_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] | None = None
    """Gate mode: the signal proposes a long entry at p >= this; None = the model card's threshold."""
    exit_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] | None = None
    """Gate mode: a long is closed when p < this (the signal's own exit); None = min(0.5, entry)."""


class RLRiskSection(_Section):
    """The risk overlays of a single position (engine/overlays.py), as the backtest applies them."""

    stop_loss: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.0
    """Exit when a bar's low (high for shorts) crosses entry x (1 -/+ stop_loss); 0 = off."""
    take_profit: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 0.0
    """Exit when a bar's high (low for shorts) crosses entry x (1 +/- take_profit); 0 = off."""
    trailing_stop: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.0
    """Exit when a bar's low falls this far below the highest high since entry (mirrored for shorts); 0 = off."""
    max_hold_bars: Bars = 0
    """Time stop: exit after this many bars in a position; 0 = no limit."""
    min_hold_bars: Bars = 0
    """The policy's own exit is refused (masked) until a position has been held this many bars."""
    cooldown_bars: Bars = 0
    """After an exit fills, no new entry for this many bars (masked)."""


class RewardSection(_Section):
    """Reward = net change in log equity after every cost, minus these penalties."""

    turnover_penalty: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)] = 0.0
    """Subtracted per unit of traded notional / equity (0.001 = 10 bps of each trade's value)."""
    drawdown_penalty: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 0.0
    """Subtracted per unit of increase in drawdown (1 - equity / peak equity of the episode)."""


class AlgoSection(_Section):
    """The learning algorithm."""

    name: Literal["ppo"] = "ppo"
    """ppo (Stable-Baselines3 PPO; sb3-contrib's MaskablePPO when env.masks is on)."""


class PPOSection(_Section):
    """PPO hyper-parameters (Stable-Baselines3's names and meanings)."""

    learning_rate: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 3e-4
    """Adam learning rate."""
    n_steps: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 256
    """Steps per environment between updates (rollout = n_steps x env.n_envs samples)."""
    batch_size: Annotated[int, msgspec.Meta(ge=2, le=1_000_000)] = 256
    """Minibatch size of each gradient step."""
    n_epochs: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4
    """Passes over each rollout."""
    gamma: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.99
    """Discount factor."""
    gae_lambda: Unit = 0.95
    """GAE lambda."""
    clip_range: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.2
    """PPO clipping of the probability ratio."""
    ent_coef: Unit = 0.0
    """Entropy bonus weight."""
    vf_coef: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)] = 0.5
    """Value-loss weight."""
    max_grad_norm: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 0.5
    """Gradient clipping."""
    target_kl: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] | None = None
    """Stop an update early past this KL divergence; None = never."""
    net_arch: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=4096)]], msgspec.Meta(min_length=1, max_length=8)] = msgspec.field(default_factory=lambda: [64, 64])
    """Hidden layer widths of the policy and value networks (separate networks, same widths)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Activation of the hidden layers."""


class RLTrainSection(_Section):
    """How long, how checked, how reproducible."""

    timesteps: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] = 200_000
    """Environment steps of training (all episodes together)."""
    eval_every: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] = 20_000
    """Score the policy on the validation split every this many timesteps (and at the end)."""
    patience: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    """Stop after this many validations without a better validation net Sharpe."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0
    """Seed of the network, the sampler of episodes and PPO's minibatches."""
    threads: Annotated[int, msgspec.Meta(ge=0, le=256)] = 1
    """CPU threads for torch (0 = torch's default)."""
    device: Literal["cpu", "auto", "cuda"] = "cpu"
    """cpu (deterministic), auto (CUDA when present) or cuda."""


class RLConfig(_Section):
    """A whole RL run."""

    data: RLDataSection = msgspec.field(default_factory=RLDataSection)
    features: FeaturesSection = msgspec.field(default_factory=FeaturesSection)
    env: EnvSection = msgspec.field(default_factory=EnvSection)
    costs: CostsConfig = msgspec.field(default_factory=CostsConfig)
    risk: RLRiskSection = msgspec.field(default_factory=RLRiskSection)
    reward: RewardSection = msgspec.field(default_factory=RewardSection)
    algo: AlgoSection = msgspec.field(default_factory=AlgoSection)
    ppo: PPOSection = msgspec.field(default_factory=PPOSection)
    train: RLTrainSection = msgspec.field(default_factory=RLTrainSection)
    output: OutputSection = msgspec.field(default_factory=OutputSection)

    def __post_init__(self) -> None:
        """Check rules that span fields (before any data is read)."""
        check_bar_spec(self.data.bar)
        env = self.env
        if env.short and env.account != "margin":
            raise ConfigError(
                "env.short = true needs a margin account: a cash account cannot sell short; set "
                'env.account = "margin" or env.short = false (actions flat / long)'
            )
        if env.short and env.fractional:
            raise ConfigError(
                "env.short = true with env.fractional = true: fractional shares cannot be sold short "
                "(Alpaca refuses it, so a policy trained so could not be paper-traded); set env.fractional = false"
            )
        if env.gate_model and env.short:
            raise ConfigError("gate mode (env.gate_model) decides trade / skip on long entries: set env.short = false")
        if not env.gate_model and (env.entry_threshold is not None or env.exit_threshold is not None):
            raise ConfigError("env.entry_threshold / env.exit_threshold are gate-mode settings: set env.gate_model too")
        if env.entry_threshold is not None and env.exit_threshold is not None and env.exit_threshold > env.entry_threshold:
            raise ConfigError(
                f"env.exit_threshold ({env.exit_threshold}) is above env.entry_threshold ({env.entry_threshold}): "
                "a position would be closed on the bar it is opened"
            )
        if self.ppo.batch_size > self.ppo.n_steps * env.n_envs:
            raise ConfigError(
                f"ppo.batch_size = {self.ppo.batch_size} is larger than a rollout (ppo.n_steps x env.n_envs = "
                f"{self.ppo.n_steps * env.n_envs}): lower batch_size or raise n_steps / n_envs"
            )
        ranges = [(name, parse_range(getattr(self.data, name), f"data.{name}")) for name in SPLITS]
        for (a, (_, a_end)), (b, (b_start, _)) in zip(ranges, ranges[1:], strict=False):
            if a_end is None or b_start is None or b_start <= a_end:
                raise ConfigError(
                    f"data.{a} ({getattr(self.data, a)}) and data.{b} ({getattr(self.data, b)}) must be "
                    f"chronological and disjoint: give data.{a} an END and data.{b} a START after it"
                )

    @property
    def run_name(self) -> str:
        """The run's name (``output.name`` or ``"rl"``)."""
        return self.output.name or "rl"

    @property
    def run_path(self) -> Path:
        """The run folder (``output.run_dir`` or ``runs/<name>``)."""
        return Path(self.output.run_dir) if self.output.run_dir else Path("runs") / self.run_name

    @property
    def actions(self) -> tuple[str, ...]:
        """The action map: index -> meaning."""
        if self.env.gate_model:
            return ("skip", "trade")
        return ("flat", "long", "short") if self.env.short else ("flat", "long")

    @property
    def algorithm(self) -> str:
        """The Stable-Baselines3 class that trains it: ``PPO`` or ``MaskablePPO``."""
        return "MaskablePPO" if self.env.masks else "PPO"


def rl_config_from_dict(raw: dict[str, Any], source: str = "config") -> RLConfig:
    """Validate a plain dict (as read from TOML) into an :class:`RLConfig`."""
    return convert(raw, RLConfig, source)


def _read(path: str | Path) -> dict[str, Any]:
    return read_toml(path, "RL config", "config/rl_demo.toml")


def is_rl_config(path: str | Path) -> bool:
    """Whether the TOML file at *path* is an RL config (it has an [env], [algo] or [ppo] table)."""
    try:
        raw = _read(path)
    except ConfigError:
        return False
    return any(key in raw for key in ("env", "algo", "ppo"))


def read_rl_config(path: str | Path, overrides: list[str] | None = None) -> tuple[RLConfig, dict[str, Any]]:
    """An RL config and the file's whole table after the overrides (its ``[tune]`` table is for tune).

    The file is read once. An empty ``output.name`` becomes the file's stem.
    """
    p = Path(path)
    raw = apply_overrides(_read(p), list(overrides or []))
    cfg = rl_config_from_dict({k: v for k, v in raw.items() if k != "tune"}, str(p))
    if not cfg.output.name:
        cfg = msgspec.structs.replace(cfg, output=msgspec.structs.replace(cfg.output, name=p.stem))
    return cfg, raw


def load_rl_config(path: str | Path, overrides: list[str] | None = None) -> RLConfig:
    """Load an RL config from TOML and apply ``--set`` overrides (the ``[tune]`` table is left to tune)."""
    return read_rl_config(path, [o for o in overrides or [] if not o.strip().startswith("tune.")])[0]


def rl_config_to_dict(cfg: RLConfig) -> dict[str, Any]:
    """The config as plain builtins (run folders, checkpoints, cards, MLflow params)."""
    return msgspec.to_builtins(cfg)  # type: ignore[no-any-return]
