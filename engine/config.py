"""Typed, frozen, strict backtest configuration loaded from TOML.

Every section is a :class:`msgspec.Struct` that rejects unknown fields; every field has
a default a user would expect and a one-line description. ``--set a.b=c`` overrides any
field before validation, so overrides are checked exactly like the file.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from engine.errors import ConfigError
from engine.schema import check_unique, convert

_BAR_RE = re.compile(r"^([1-9]\d{0,3})-(MINUTE|HOUR|DAY)$")
MAX_CAPITAL = 1e10
"""The most USD a config may name: NautilusTrader's fixed-point money tops out near 1.7e13."""

Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
Probability = Annotated[float, msgspec.Meta(gt=0, lt=1)]
Bps = Annotated[float, msgspec.Meta(ge=0, le=1_000)]
"""Basis points per side: 0 to 1,000 (10 %)."""
Bars = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
"""A count of bars, 0 = off."""
Window = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
"""An indicator window in bars."""
Usd = Annotated[float, msgspec.Meta(ge=0, le=MAX_CAPITAL)]
"""An amount of USD, 0 = off."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: frozen, strict, keyword-only."""


class DataConfig(_Section):
    """Which bars to backtest."""

    catalog: str = "catalogs/sample"
    """Path of the NautilusTrader ParquetDataCatalog (relative to the config's directory's project root or CWD)."""
    symbols: list[str] | Literal["all"] = "all"
    """Symbols to trade, or "all" for every symbol in the catalog."""
    start: dt.date | None = None
    """First session to include (inclusive); None = first bar in the catalog."""
    end: dt.date | None = None
    """Last session to include (inclusive); None = last bar in the catalog."""
    bar: str = "1-HOUR"
    """Bar size: N-MINUTE, N-HOUR or N-DAY, as written by `sigtrade ingest`."""


class PortfolioConfig(_Section):
    """Capital and position sizing."""

    capital: Annotated[float, msgspec.Meta(gt=0, le=MAX_CAPITAL)] = 100_000.0
    """Starting cash in USD (at most 1e10: NautilusTrader's fixed-point money and quantities overflow beyond)."""
    fractional: bool = False
    """Allow fractional share quantities (as Alpaca does); whole shares otherwise."""
    max_positions: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    """Most positions held at once."""
    position_size: Fraction = 0.1
    """Fraction of current equity put into each new position."""
    account: Literal["cash", "margin"] = "cash"
    """Account type: cash (long only) or margin (needed for short positions)."""


class CostsConfig(_Section):
    """Commission and slippage, charged on every fill."""

    commission_bps: Bps = 10.0
    """Commission per side in basis points of the fill's notional (10 = 0.10 %)."""
    commission_per_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    """Commission per share per side in USD, added to the bps part (0 to 1; brokers charge around 0.005)."""
    commission_min: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    """Minimum commission per fill in USD."""
    slippage_bps: Bps = 5.0
    """Adverse move of every market fill, in basis points of the reference price."""


class ExecutionConfig(_Section):
    """When a decision is filled."""

    fill: Literal["next_open", "close"] = "next_open"
    """next_open: decide on bar t's close, fill at bar t+1's open. close: fill at bar t's close (optimistic)."""
    close_at_end: bool = True
    """Flatten every position on the last bar so the trade list is complete."""


class StrategyConfig(_Section):
    """The trading rule: a baseline (buy_and_hold, sma_cross) or a neural-network signal."""

    kind: Literal["buy_and_hold", "sma_cross", "signal", "ensemble", "policy"] = "buy_and_hold"
    """buy_and_hold (equal weight, held to the end), sma_cross (long when fast SMA > slow SMA), signal (one ONNX model), ensemble, or policy (an RL policy: sigtrade rl train + export)."""
    fast: Window = 20
    """sma_cross: fast SMA length in bars."""
    slow: Annotated[int, msgspec.Meta(ge=2, le=1_000_000)] = 50
    """sma_cross: slow SMA length in bars."""
    model: str = ""
    """signal / ensemble / policy: model folder (models/<name> with card.json, or ensemble.json for an ensemble)."""
    entry_threshold: Probability | None = None
    """signal: enter long when the probability is at or above this; None = the model card's threshold."""
    exit_threshold: Probability | None = None
    """signal: exit a long when the probability falls below this (hysteresis); None = min(0.5, entry)."""
    max_hold_bars: Bars = 0
    """Time stop, any strategy: exit after this many bars in a position (0 = no limit)."""
    short_threshold: Probability | None = None
    """signal: enter short when the probability is at or below this (needs portfolio.account = "margin"); None = long only."""
    cover_threshold: Probability = 0.5
    """signal: cover a short when the probability rises above this."""
    mode: Literal["batch", "streaming"] = "batch"
    """signal / policy: batch = all probabilities in one pass before the event loop; streaming = features and probability per bar, as live trading does."""


class RiskConfig(_Section):
    """Risk overlays applied around every strategy's entries and exits (engine/overlays.py).

    Every overlay is off at its default except ``max_gross_exposure`` (1.0 = never more
    than the equity in positions). Stops are checked at each bar's close on that bar's
    high/low and exit with a market order at the next fill, like every decision.
    """

    sizing: Literal["fixed", "atr"] = "fixed"
    """fixed: each entry is portfolio.position_size x equity; atr: equity x atr_risk / (atr_multiple x ATR%) (volatility-targeted)."""
    atr_period: Window = 14
    """ATR length in bars (Wilder smoothing) for sizing = "atr"."""
    atr_risk: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.01
    """sizing = "atr": fraction of equity risked per entry if the price moves atr_multiple ATRs against it."""
    atr_multiple: Annotated[float, msgspec.Meta(gt=0, le=100)] = 2.0
    """sizing = "atr": the adverse move, in ATRs, that would cost atr_risk of equity."""
    max_gross_exposure: Annotated[float, msgspec.Meta(gt=0, le=10)] = 1.0
    """Most gross position value (held + being opened) as a multiple of equity; an entry is cut to fit."""
    stop_loss: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0
    """Exit when a bar's low (high for shorts) crosses entry price x (1 -/+ stop_loss); 0 = off."""
    take_profit: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    """Exit when a bar's high (low for shorts) crosses entry price x (1 +/- take_profit); 0 = off."""
    trailing_stop: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0
    """Exit when a bar's low falls trailing_stop below the highest high since entry (mirrored for shorts); 0 = off."""
    min_hold_bars: Bars = 0
    """Ignore the strategy's own exit signal until a position has been held this many bars (stops still apply)."""
    cooldown_bars: Bars = 0
    """After an exit fills, no new entry in that symbol for this many of its bars."""
    cost_filter: bool = False
    """Enter only when the expected edge, (2p - 1) x typical move, exceeds cost_multiple x the round-trip cost."""
    cost_filter_horizon: Window | None = None
    """Bars of the typical move; None = the model card's label horizon (1 for strategies without a model)."""
    cost_filter_window: Annotated[int, msgspec.Meta(ge=2, le=1_000_000)] = 500
    """Bars averaged for the typical move (mean |close_t / close_(t-h) - 1|, causal)."""
    cost_multiple: Annotated[float, msgspec.Meta(gt=0, le=1_000)] = 1.0
    """The edge must exceed this multiple of the round-trip cost (2 x (commission + slippage))."""
    drawdown_limit: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0
    """Circuit breaker: flatten everything and pause entries when equity falls this far below its peak; 0 = off."""
    drawdown_pause_bars: Bars = 0
    """Timestamps (union timeline bars) during which entries stay paused after the breaker trips."""
    daily_loss_limit: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0
    """Flatten and stop entering for the rest of the session when equity falls this far below the session's start; 0 = off."""


class TrendRegime(_Section):
    """Trend filter on the benchmark symbol."""

    sma: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    """Allow entries only while the benchmark's close is above its SMA of this many bars; 0 = off."""


class VolatilityRegime(_Section):
    """Volatility filter on the benchmark symbol."""

    window: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    """Bars of the realised volatility (std of log returns); 0 = off."""
    lookback: Annotated[int, msgspec.Meta(ge=2, le=1_000_000)] = 500
    """Bars of realised-volatility history the quantile is taken over."""
    quantile: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.8
    """Allow entries only while realised vol is below this rolling quantile of itself."""


class BreadthRegime(_Section):
    """Breadth filter on the traded universe."""

    sma: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    """SMA length each symbol's close is compared with; 0 = off."""
    min_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    """Allow entries only while at least this share of the universe closes above its own SMA."""


class RegimeConfig(_Section):
    """Market regime filters: entries only in the chosen regime, exits always (engine/regime.py)."""

    combine: Literal["and", "or"] = "and"
    """How the enabled filters combine: and = all must allow, or = any may allow."""
    trend: TrendRegime = msgspec.field(default_factory=TrendRegime)
    """Benchmark close above its SMA ([regime.trend])."""
    volatility: VolatilityRegime = msgspec.field(default_factory=VolatilityRegime)
    """Benchmark realised volatility below its rolling quantile ([regime.volatility])."""
    breadth: BreadthRegime = msgspec.field(default_factory=BreadthRegime)
    """Share of the universe above its own SMA ([regime.breadth])."""


class BenchmarkConfig(_Section):
    """What the strategy is compared with."""

    symbol: str = "SPY"
    """Symbol bought and held over the same period with the same costs."""


class MetricsConfig(_Section):
    """How figures are computed."""

    risk_free_rate: Annotated[float, msgspec.Meta(ge=-0.5, le=1)] = 0.0
    """Annual risk-free rate for Sharpe and Sortino (0.04 = 4 %), from -0.5 to 1."""


class DiagnosisConfig(_Section):
    """What ``sigtrade backtest --out`` adds to explain a result (engine/diagnosis, ``diagnosis.json``)."""

    enabled: bool = True
    """Compute the Diagnosis (report.html section and diagnosis.json) with every --out."""
    max_cost_bps: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 50.0
    """Highest cost level of the break-even curve, commission + slippage in bps per side."""
    cost_levels: Annotated[int, msgspec.Meta(ge=2, le=201)] = 26
    """Evenly spaced cost levels from 0 to max_cost_bps (26: every 2 bps up to 50)."""
    confirm_break_even: bool = False
    """Re-run the event engine at the break-even cost found on the fast path (one more backtest)."""
    random_draws: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 2000
    """Random equal-weight buy-and-holds of max_positions names (control (c)); 0 = off."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0
    """Seed of the random subsets (numpy default_rng), recorded in diagnosis.json."""
    rolling_months: Annotated[int, msgspec.Meta(ge=1, le=60)] = 6
    """Window of the rolling Sharpe ratio, in months (21 sessions each)."""
    reentry_bars: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    """A re-entry is an entry within this many of the symbol's bars after its last exit; None = the label horizon, else one session."""


class PaperConfig(_Section):
    """Paper (and live) trading on Alpaca with ``sigtrade paper``: warm-up, pre-trade limits, shutdown.

    The strategy, its model, thresholds and overlays are the backtest's own sections; this
    one holds only what a live session adds. Pre-trade limits are checked by the Alpaca
    execution client before an order leaves (0 = off); exits are never held back by them.
    """

    warmup_bars: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 500
    """Complete bars per symbol fetched by REST at start to warm features up (streaming features replay them)."""
    feed: Literal["iex", "sip"] = "iex"
    """Alpaca market-data feed: iex (free plan) or sip (all US exchanges; needs a plan that includes it)."""
    max_order_notional: Usd = 0.0
    """Refuse an entry order worth more than this many USD at the last close; 0 = off."""
    max_position_notional: Usd = 0.0
    """Refuse an entry that would make a position worth more than this many USD; 0 = off."""
    daily_loss_limit: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.0
    """Refuse entries once the Alpaca account's equity is this fraction below the previous close's (0.03 = 3 %); 0 = off."""
    flatten_on_stop: bool = False
    """On Ctrl-C / SIGTERM, after cancelling open orders, also close every position with market orders."""
    flush_delay_s: Annotated[float, msgspec.Meta(ge=0, le=3_600)] = 5.0
    """Seconds after a bar's close to emit it when no later minute bar has come (the session's last bar)."""
    status_every_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 60.0
    """Seconds between status lines (equity, positions, last signal per symbol)."""
    resume_features: bool = True
    """Signal strategies: save the streaming features in --out after every bar time and resume from them on restart."""


class BacktestConfig(_Section):
    """A whole backtest: data, portfolio, costs, execution, strategy, risk, regime, benchmark, metrics, paper, diagnosis."""

    data: DataConfig = msgspec.field(default_factory=DataConfig)
    portfolio: PortfolioConfig = msgspec.field(default_factory=PortfolioConfig)
    costs: CostsConfig = msgspec.field(default_factory=CostsConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    regime: RegimeConfig = msgspec.field(default_factory=RegimeConfig)
    benchmark: BenchmarkConfig = msgspec.field(default_factory=BenchmarkConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    paper: PaperConfig = msgspec.field(default_factory=PaperConfig)
    diagnosis: DiagnosisConfig = msgspec.field(default_factory=DiagnosisConfig)

    def __post_init__(self) -> None:
        """Check rules that span fields."""
        check_bar_spec(self.data.bar)
        if isinstance(self.data.symbols, list):
            check_unique(self.data.symbols, "data.symbols", "symbol (or write symbols = \"all\")")
        if not self.benchmark.symbol.strip():
            raise ConfigError("benchmark.symbol is empty: name the symbol to buy and hold, e.g. \"SPY\"")
        if self.data.start and self.data.end and self.data.start > self.data.end:
            raise ConfigError(
                f"data.start ({self.data.start}) is after data.end ({self.data.end}): "
                "swap them or widen the range"
            )
        position = self.portfolio.capital * self.portfolio.position_size
        if self.costs.commission_min > position:
            raise ConfigError(
                f"costs.commission_min (${self.costs.commission_min:,.2f} per fill) is more than a whole position "
                f"(portfolio.capital x position_size = ${position:,.2f}): every fill would cost more than it buys; "
                "it is in USD per fill, e.g. 1.0"
            )
        st = self.strategy
        if st.kind == "sma_cross" and st.fast >= st.slow:
            raise ConfigError(
                f"strategy.fast ({st.fast}) must be shorter than strategy.slow ({st.slow})"
            )
        if st.kind == "policy" and not st.model:
            raise ConfigError(
                "strategy.kind = 'policy' needs strategy.model, the policy folder written by "
                "`sigtrade export RUN --out models/NAME` after `sigtrade rl train`"
            )
        if st.kind == "policy" and st.short_threshold is not None:
            raise ConfigError(
                "strategy.short_threshold is a signal-strategy setting; a policy shorts when its action map has "
                "'short' (trained with env.short = true) on a margin account: remove short_threshold"
            )
        if st.kind in ("signal", "ensemble"):
            if not st.model:
                raise ConfigError(
                    f"strategy.kind = '{st.kind}' needs strategy.model, the model folder "
                    "(e.g. models/demo_mlp; `sigtrade models list` shows what is there)"
                )
            if st.entry_threshold is not None and st.exit_threshold is not None and st.exit_threshold > st.entry_threshold:
                raise ConfigError(
                    f"strategy.exit_threshold ({st.exit_threshold}) is above strategy.entry_threshold "
                    f"({st.entry_threshold}): a position would be closed on the bar it is opened"
                )
            if st.short_threshold is not None and self.portfolio.account != "margin":
                raise ConfigError(
                    "strategy.short_threshold needs a margin account: set portfolio.account = \"margin\" "
                    "or remove short_threshold (long only)"
                )


def check_bar_spec(bar: str, field: str = "data.bar") -> None:
    """Refuse a bar size that is not ``N-MINUTE``, ``N-HOUR`` or ``N-DAY`` (N >= 1)."""
    if not _BAR_RE.match(bar):
        raise ConfigError(
            f"{field} = '{bar}' is not a bar size: expected N-MINUTE, N-HOUR or N-DAY, e.g. '1-HOUR'"
        )


def bar_minutes(bar: str) -> int:
    """Return the length in minutes of a bar spec such as ``1-HOUR`` (a day counts 390)."""
    m = _BAR_RE.match(bar)
    if not m:
        raise ConfigError(f"'{bar}' is not a bar size: expected N-MINUTE, N-HOUR or N-DAY")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"MINUTE": 1, "HOUR": 60, "DAY": 390}[unit]


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b=value`` into a key path and a TOML-typed value (bare words are strings)."""
    if "=" not in item:
        raise ConfigError(f"--set '{item}' is not of the form key=value, e.g. costs.slippage_bps=0")
    key, raw = item.split("=", 1)
    path = [p.strip() for p in key.strip().split(".") if p.strip()]
    if not path:
        raise ConfigError(f"--set '{item}' has an empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of *raw* with every ``--set`` override applied."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set '{item}': '{part}' is a value, not a section")
            node[part] = child = dict(child)
            node = child
        node[path[-1]] = value
    return out


def config_from_dict(raw: dict[str, Any], source: str = "config") -> BacktestConfig:
    """Validate a plain dict (as read from TOML) into a :class:`BacktestConfig`."""
    return convert(raw, BacktestConfig, source)


def read_toml(path: str | Path, what: str = "config", example: str = "config/demo.toml") -> dict[str, Any]:
    """Read a TOML file into a dict; every way it can be wrong is a :class:`ConfigError` naming the file.

    *what* names the file in messages ("training config", "RL config"), *example* is a file to suggest.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} '{p}' is a directory: pass a TOML file in it, e.g. {p}/backtest.toml")
    if not p.is_file():
        raise ConfigError(f"{what} file '{p}' does not exist: pass a TOML file such as {example}")
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} '{p}' cannot be read ({exc.strerror}): check its permissions") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start} is 0x{blob[exc.start]:02x}); a config is a TOML text file: "
            "re-save it as UTF-8, or pass the right file"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}); fix the line it names") from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> BacktestConfig:
    """Load a backtest config from TOML (or the defaults when *path* is None) and apply overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = read_toml(path)
    raw = apply_overrides(raw, overrides or [])
    return config_from_dict(raw, source)


def config_to_dict(cfg: BacktestConfig) -> dict[str, Any]:
    """Return the config as plain builtins (for reports and metrics.json)."""
    return msgspec.to_builtins(cfg)  # type: ignore[no-any-return]
