"""Typed, frozen, strict training configuration (``sigtrade train CONFIG``).

Same house style as :mod:`engine.config`: every section is a :class:`msgspec.Struct`
that rejects unknown fields, every field has a default and a one-line description, and
``--set section.key=value`` overrides are applied before validation, so a misspelt key or
value fails the same way in a file and on the command line - with a suggestion.

Date ranges are written ``"START..END"`` (inclusive NYSE session dates of the bars'
close; either end may be left open: ``"..2023-12-31"``, ``"2025-01-01.."``). The three
splits must be in chronological order and must not overlap; the purge gap between them is
enforced by :mod:`research.dataset`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from engine.config import apply_overrides, check_bar_spec, read_toml
from engine.errors import ConfigError, did_you_mean
from engine.schema import check_unique, convert
from models.sentiment import SentimentConfigError, SentimentSpec

__all__ = [
    "ARCHITECTURES",
    "MODEL_CONFIG_FILE",
    "DataSection",
    "FeaturesSection",
    "LabelSection",
    "ModelSection",
    "OutputSection",
    "SentimentSection",
    "TrainConfig",
    "TrainSection",
    "config_to_dict",
    "load_train_config",
    "parse_range",
    "train_config_from_dict",
]

ARCHITECTURES = ("mlp", "lstm", "gru", "cnn_lstm")
MODEL_CONFIG_FILE = "train_config.json"
"""The resolved training config, written beside an exported model's card (read by evaluate)."""
SPLITS = ("train", "validation", "test")

Bars = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
"""A length in bars (window, horizon)."""
Count = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: frozen, strict, keyword-only."""


class DataSection(_Section):
    """Which bars, which symbols, which date ranges."""

    catalog: str = "catalogs/sample"
    """Path of the ParquetDataCatalog (relative to the working directory)."""
    symbols: list[str] | Literal["all"] = "all"
    """Symbols to train on (each gets an asset id), or "all" for every symbol in the catalog."""
    bar: str = "1-HOUR"
    """Bar size, as written by `sigtrade ingest` / `sigtrade sample`."""
    lookback: Bars = 24
    """Bars per input window (oldest first, the decision bar last)."""
    train: str = "..2023-12-31"
    """Training range "START..END" (NYSE dates of bar closes, inclusive; an open end = the data's end)."""
    validation: str = "2024-01-01..2024-06-30"
    """Validation range: early stopping, the decision threshold and prob_quantiles are chosen here."""
    test: str = "2024-07-01.."
    """Test range: untouched until `sigtrade evaluate --split test`."""
    purge: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    """Bars dropped between splits so no window or label straddles two; None = label.horizon (the minimum)."""


class LabelSection(_Section):
    """The target: computed from FUTURE bars t+1..t+H (see research.labels)."""

    kind: Literal["threshold", "triple_barrier"] = "threshold"
    """threshold: close[t+H]/close[t]-1 > threshold; triple_barrier: +take_profit reached before -stop_loss within H bars."""
    horizon: Bars = 6
    """H, the bars ahead the label looks (the vertical barrier for triple_barrier)."""
    threshold: Annotated[float, msgspec.Meta(ge=-1, le=10)] = 0.0
    """threshold labels: the forward return must exceed this (0.002 = 0.2 %), from -1 to 10."""
    take_profit: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.01
    """triple_barrier: upper barrier as a return from close[t] (0.01 = +1 %)."""
    stop_loss: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.01
    """triple_barrier: lower barrier as a return from close[t] (0.01 = -1 %)."""


class FeaturesSection(_Section):
    """The feature pipeline of models.features (the same one the engine and live trading use)."""

    set: str = "seed14"
    """Feature-set name."""
    version: str = "1"
    """Feature-set version."""


class ModelSection(_Section):
    """The network."""

    architecture: Literal["mlp", "lstm", "gru", "cnn_lstm"] = "mlp"
    """mlp (flattened window), lstm, gru (attention pooling by default) or cnn_lstm (Conv1d then LSTM)."""
    hidden: Annotated[int, msgspec.Meta(ge=1, le=65_536)] = 64
    """Width of the hidden layers / recurrent state / conv channels."""
    layers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Hidden layers (mlp) or stacked recurrent layers (lstm, gru, cnn_lstm)."""
    dropout: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.1
    """Dropout probability between layers and before the head."""
    embedding_dim: Annotated[int, msgspec.Meta(ge=0, le=4_096)] = 0
    """Asset-id embedding width; 0 = no embedding (the model ignores which symbol it sees)."""
    attention: bool = True
    """lstm / gru / cnn_lstm: attention pooling over time steps (False: the last hidden state); mlp ignores it."""
    kernel_size: Annotated[int, msgspec.Meta(ge=1, le=1_001)] = 3
    """cnn_lstm: Conv1d kernel width in bars (odd)."""


class TrainSection(_Section):
    """Optimisation, loss, early stopping and reproducibility."""

    epochs: Count = 10
    """Maximum number of epochs."""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1_048_576)] = 256
    """Windows per optimiser step."""
    lr: Annotated[float, msgspec.Meta(gt=0, le=10)] = 1e-3
    """Learning rate (the peak rate for onecycle)."""
    weight_decay: Annotated[float, msgspec.Meta(ge=0, le=10)] = 1e-4
    """L2 / decoupled weight decay."""
    optimizer: Literal["adamw", "adam"] = "adamw"
    """adamw (decoupled weight decay) or adam."""
    scheduler: Literal["plateau", "cosine", "onecycle", "none"] = "plateau"
    """plateau (halve the lr when the validation metric stalls), cosine, onecycle or none."""
    loss: Literal["bce", "weighted_bce", "focal"] = "weighted_bce"
    """bce, weighted_bce (class weights from the training split) or focal (focal_alpha, focal_gamma)."""
    focal_alpha: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.25
    """focal: weight of the positive class (0.5 = none)."""
    focal_gamma: Annotated[float, msgspec.Meta(ge=0, le=100)] = 2.0
    """focal: focusing exponent (0 = plain BCE)."""
    sampler: Literal["shuffle", "weighted"] = "shuffle"
    """shuffle (every window once per epoch) or weighted (class-balanced WeightedRandomSampler)."""
    grad_clip: Annotated[float, msgspec.Meta(ge=0, le=1e6)] = 1.0
    """Max gradient norm; 0 = no clipping."""
    early_stopping_metric: Literal["f1", "pr_auc", "roc_auc"] = "f1"
    """Validation metric that picks the best checkpoint: f1 (positive class, at threshold 0.5), pr_auc or roc_auc."""
    patience: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5
    """Stop after this many epochs without improvement of the metric."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 42
    """Seed of every random number (init, dropout, shuffling), 0 to 2**32 - 1."""
    threads: Annotated[int, msgspec.Meta(ge=0, le=1_024)] = 2
    """CPU threads for torch (0 = torch's default)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when present, else CPU."""


class SentimentSection(_Section):
    """News sentiment in the feature set's ``sentiment`` column (see models.sentiment); leave the section out for none."""

    model: str = "ProsusAI/finbert"
    """Scorer whose scores are used, as given to `sigtrade sentiment score --model` (hub id or local folder)."""
    method: Literal["decayed_mean", "count_weighted"] = "decayed_mean"
    """decayed_mean (decay-weighted mean score) or count_weighted (shrunk towards neutral by `prior` articles)."""
    half_life: str = "1D"
    """Time for an article's weight to halve, in wall-clock time ("6h", "1D", "90min")."""
    prior: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 1.0
    """count_weighted: neutral pseudo-articles (> 0)."""

    def spec(self) -> SentimentSpec:
        """The :class:`models.sentiment.SentimentSpec` recorded in the model card."""
        return SentimentSpec(model=self.model, method=self.method, half_life=self.half_life, prior=self.prior)


class OutputSection(_Section):
    """Where the run goes."""

    name: str = ""
    """Run name; empty = the config file's stem."""
    run_dir: str = ""
    """Run folder; empty = runs/<name>."""


class TrainConfig(_Section):
    """A whole training run."""

    data: DataSection = msgspec.field(default_factory=DataSection)
    label: LabelSection = msgspec.field(default_factory=LabelSection)
    features: FeaturesSection = msgspec.field(default_factory=FeaturesSection)
    model: ModelSection = msgspec.field(default_factory=ModelSection)
    train: TrainSection = msgspec.field(default_factory=TrainSection)
    output: OutputSection = msgspec.field(default_factory=OutputSection)
    sentiment: SentimentSection | None = None
    """News sentiment from the catalog's scored news; None (no [sentiment] section): the column stays 0."""

    def __post_init__(self) -> None:
        """Check rules that span fields."""
        check_bar_spec(self.data.bar)
        if isinstance(self.data.symbols, list):
            check_unique(self.data.symbols, "data.symbols", "symbol (or write symbols = \"all\")")
        if self.sentiment is not None:
            try:
                self.sentiment.spec()
            except SentimentConfigError as exc:
                raise ConfigError(f"[sentiment] {exc}") from None
        if self.model.architecture not in ARCHITECTURES:  # direct construction skips msgspec
            raise ConfigError(
                f"model.architecture = '{self.model.architecture}' is unknown"
                f"{did_you_mean(self.model.architecture, ARCHITECTURES)} "
                f"(choose one of {', '.join(ARCHITECTURES)})"
            )
        if self.model.architecture == "cnn_lstm" and self.model.kernel_size % 2 == 0:
            raise ConfigError(
                f"model.kernel_size = {self.model.kernel_size}: use an odd width (3, 5, ...) so "
                "the convolution keeps the window length"
            )
        if self.data.purge is not None and self.data.purge < self.label.horizon:
            raise ConfigError(
                f"data.purge = {self.data.purge} bars is shorter than label.horizon = "
                f"{self.label.horizon}: a training label would reach into the validation split; "
                f"set purge >= {self.label.horizon} (or leave it out to use the horizon)"
            )
        ranges = [(name, parse_range(getattr(self.data, name), f"data.{name}")) for name in SPLITS]
        for (a, (_, a_end)), (b, (b_start, _)) in zip(ranges, ranges[1:], strict=False):
            if a_end is None or b_start is None or b_start <= a_end:
                raise ConfigError(
                    f"data.{a} ({getattr(self.data, a)}) and data.{b} ({getattr(self.data, b)}) "
                    f"must be chronological and disjoint: give data.{a} an END and data.{b} a "
                    f"START after it"
                )

    @property
    def purge(self) -> int:
        """The purge gap in bars (``data.purge`` or, by default, the label horizon)."""
        return self.label.horizon if self.data.purge is None else self.data.purge

    @property
    def run_name(self) -> str:
        """The run's name (``output.name`` or ``"run"``)."""
        return self.output.name or "run"

    @property
    def run_path(self) -> Path:
        """The run folder (``output.run_dir`` or ``runs/<name>``)."""
        return Path(self.output.run_dir) if self.output.run_dir else Path("runs") / self.run_name


def parse_range(text: str, where: str = "range") -> tuple[dt.date | None, dt.date | None]:
    """Parse ``"START..END"`` (either side may be empty) into two dates or None.

    Raises
    ------
    ConfigError
        Not of that form, not ISO dates, or END before START.
    """
    if not isinstance(text, str) or ".." not in text:
        raise ConfigError(
            f"{where} = {text!r} is not a date range: write \"START..END\" with ISO dates, "
            "e.g. \"2023-01-01..2023-12-31\" (either side may be empty)"
        )
    left, right = (part.strip() for part in text.split("..", 1))
    out: list[dt.date | None] = []
    for part in (left, right):
        if not part:
            out.append(None)
            continue
        try:
            out.append(dt.date.fromisoformat(part))
        except ValueError:
            raise ConfigError(
                f"{where} = {text!r}: '{part}' is not an ISO date (YYYY-MM-DD)"
            ) from None
    start, end = out
    if start is not None and end is not None and end < start:
        raise ConfigError(f"{where} = {text!r} ends before it starts: swap the dates")
    return start, end


# --- loading --------------------------------------------------------------------------------


def train_config_from_dict(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a plain dict (as read from TOML) into a :class:`TrainConfig`."""
    return convert(raw, TrainConfig, source)


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Load a training config from TOML and apply ``--set`` overrides.

    An empty ``output.name`` becomes the file's stem (``config/train_demo_mlp.toml`` ->
    ``train_demo_mlp``).
    """
    p = Path(path)
    raw = read_toml(p, "training config", "config/train_demo_mlp.toml")
    raw = apply_overrides(raw, overrides or [])
    raw.pop("tune", None)  # the [tune] table belongs to `sigtrade tune` (research.tune)
    cfg = train_config_from_dict(raw, str(p))
    if not cfg.output.name:
        cfg = msgspec.structs.replace(cfg, output=msgspec.structs.replace(cfg.output, name=p.stem))
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain builtins (stored in checkpoints, run.json and next to exports)."""
    return msgspec.to_builtins(cfg)  # type: ignore[no-any-return]
