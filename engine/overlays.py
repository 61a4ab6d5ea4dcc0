"""Risk overlays: the rules applied around every strategy's entries and exits.

Configured in ``[risk]`` (:class:`engine.config.RiskConfig`), ``strategy.max_hold_bars``
and ``[regime]`` (:mod:`engine.regime`); enforced by ``strategies.base.SigtradeStrategy``
for every strategy kind, and replicated to the bit by the numba kernel
(:mod:`engine.sim.kernels_nb`). The rules, in the order they are applied:

**Per timestamp** (the first bar of each new close time ``T`` in the trading window),
from the strategy's own books - cash + positions at their last closes, i.e. the equity
after every bar before ``T``:

* *drawdown circuit breaker* (``drawdown_limit``): the peak is updated with this equity;
  at ``equity <= peak x (1 - drawdown_limit)`` every position is flattened and entries are
  paused at ``T`` and the next ``drawdown_pause_bars`` timestamps; on resuming, the peak
  restarts from the equity then.
* *daily loss limit* (``daily_loss_limit``): the first timestamp of each NYSE session
  records the session's start equity; at ``equity <= start x (1 - daily_loss_limit)``
  every position is flattened and entries stop until the next session.

**Per bar of a symbol holding a position**, before the strategy's own decision, the
first that applies closes the position with a market order at the next fill (next open
under ``next_open``; there is no intrabar fill at the stop level: the venue only moves
through sigtrade's execution quotes, see :mod:`engine.fills`):

1. ``drawdown`` / ``daily_loss``: flatten requested by the portfolio rules above;
2. ``stop_loss``: the bar's low <= entry fill price x (1 - stop_loss) (high >= x (1 + .) short);
3. ``trailing_stop``: the peak (highest high since the entry fill, starting at the fill
   price) is first updated with this bar's high, then the bar's low <= peak x (1 - trailing);
4. ``take_profit``: the bar's high >= entry x (1 + take_profit) (low <= x (1 - .) short);
5. ``time_stop``: the position has been held ``max_hold_bars`` bars.

When a bar touches both the stop-loss and the take-profit level its exit is the
stop-loss (the conservative reading: nobody knows which came first inside the bar).
Stops and the time stop override the minimum holding period.

**Entries** (``enter`` / ``enter_short``) are refused when: the regime filter does not
allow entries at ``T``; the breaker pause or the daily halt is on; the symbol's exit
filled fewer than ``cooldown_bars + 1`` of its bars ago; ``max_positions`` positions
are held or being opened; the *cost filter* is on and the expected edge
``(2p - 1) x move`` (``(1 - 2p) x move`` for shorts; ``p`` = the model probability, 1 for
rule strategies without one; ``move`` = mean ``|close_t / close_(t-h) - 1|`` over the last
``cost_filter_window`` bars at the label horizon ``h``) does not exceed
``cost_multiple x (2 x (commission_bps + slippage_bps) / 1e4 + 2 x commission_per_share / close)``
(the minimum commission is not counted). Otherwise the entry value is the strategy's
(``position_size x equity``) or, with ``sizing = "atr"``,
``equity x atr_risk / (atr_multiple x ATR%)``; it is cut to
``max_gross_exposure x equity - gross`` (gross = |held positions| at their last closes +
entries already sent at ``T``), then turned into shares by :func:`engine.sizing.shares_for`.

**Exits** by the strategy's own signal (``exit``) are refused until the position has
been held ``min_hold_bars`` bars. Bars are counted per symbol: the bar whose decision
opened a position is not counted, the bar the entry fills in is bar 1.

Every indicator-like input (ATR%, typical move, regime, session ids) is computed here
ONCE, in numpy, causally, and the same arrays feed the event strategy (read by bar
index) and the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.config import BacktestConfig
from engine.regime import regime_allows
from engine.sessions import session_of

EXIT_REASONS: tuple[str, ...] = (
    "signal", "stop_loss", "take_profit", "trailing_stop", "time_stop", "drawdown", "daily_loss", "end",
)
"""Values of the ``exit_reason`` column of fills and trades ("" on an entry fill)."""
REASON_CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(EXIT_REASONS)}
"""Integer codes of the exit reasons (0 = an entry), as the kernel records them."""


def cost_rate(cfg: BacktestConfig) -> float:
    """Expected proportional cost of one fill (slippage + commission), used to size orders."""
    s = cfg.costs
    return (s.slippage_bps + s.commission_bps) / 10_000.0


def round_trip_rate(cfg: BacktestConfig) -> float:
    """Proportional cost of a round trip (both sides' commission bps and slippage)."""
    s = cfg.costs
    return 2.0 * (s.commission_bps + s.slippage_bps) / 10_000.0


def atr_pct(frame: pd.DataFrame, period: int) -> np.ndarray:
    """ATR (Wilder smoothing of the true range) as a fraction of the close, per bar; causal."""
    high = frame["high"].to_numpy(dtype=np.float64)
    low = frame["low"].to_numpy(dtype=np.float64)
    close = frame["close"].to_numpy(dtype=np.float64)
    prev = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    atr = pd.Series(tr).ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return atr / close


def typical_move(frame: pd.DataFrame, horizon: int, window: int) -> np.ndarray:
    """Mean absolute ``horizon``-bar return over the last ``window`` bars, per bar; causal."""
    close = frame["close"]
    move = (close / close.shift(horizon) - 1.0).abs()
    return move.rolling(window, min_periods=window).mean().to_numpy(dtype=np.float64)


def session_ids(timeline: np.ndarray) -> np.ndarray:
    """NYSE session of each bar close time (ns), as days since the epoch."""
    if not len(timeline):
        return np.empty(0, dtype=np.int64)
    sess = session_of(pd.to_datetime(timeline, utc=True), side="right")
    return np.asarray(sess.asi8 // 86_400_000_000_000, dtype=np.int64)


def tail_aligned(values: np.ndarray, n: int) -> np.ndarray:
    """The last *n* values: a series computed on the whole history, aligned to the event frame."""
    return np.ascontiguousarray(values[len(values) - n :])


def union_timeline(frames: Mapping[str, pd.DataFrame]) -> np.ndarray:
    """Every bar close time of every frame (ns), sorted, unique."""
    parts = [f.index.asi8 for f in frames.values()]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def resolve_horizon(cfg: BacktestConfig, card_horizon: int | None) -> int:
    """The cost filter's horizon: the config's, else the model card's label horizon, else 1."""
    if cfg.risk.cost_filter_horizon is not None:
        return int(cfg.risk.cost_filter_horizon)
    return int(card_horizon) if card_horizon else 1


@dataclass
class OverlaySeries:
    """The precomputed inputs of the overlays, shared by the event strategy and the kernel.

    ``timeline`` is the union of the event frames' bar closes (ns); ``allow`` and ``day``
    are per timeline point; ``atr_pct`` and ``move`` per symbol, aligned bar for bar with
    the frames the event loop replays (empty dicts when the overlay is off).
    """

    timeline: np.ndarray
    allow: np.ndarray
    day: np.ndarray
    atr_pct: dict[str, np.ndarray] = field(default_factory=dict)
    move: dict[str, np.ndarray] = field(default_factory=dict)
    horizon: int = 1


def build_series(
    cfg: BacktestConfig,
    full: Mapping[str, pd.DataFrame],
    history: Mapping[str, pd.DataFrame],
    bench: pd.DataFrame | None,
    horizon: int,
) -> OverlaySeries:
    """Compute every overlay input of a run once (see the module docstring)."""
    timeline = union_timeline(full)
    allow = regime_allows(cfg.regime, timeline, bench, history)
    out = OverlaySeries(timeline=timeline, allow=allow, day=session_ids(timeline), horizon=horizon)
    risk = cfg.risk
    for s, frame in full.items():
        hist = history.get(s, frame)
        if risk.sizing == "atr":
            out.atr_pct[s] = tail_aligned(atr_pct(hist, risk.atr_period), len(frame))
        if risk.cost_filter:
            out.move[s] = tail_aligned(typical_move(hist, horizon, risk.cost_filter_window), len(frame))
    return out


def strategy_risk_params(cfg: BacktestConfig) -> dict[str, Any]:
    """The overlay fields of ``strategies.base.SigtradeStrategyConfig`` for a config."""
    r = cfg.risk
    return {
        "sizing": r.sizing,
        "atr_risk": r.atr_risk,
        "atr_multiple": r.atr_multiple,
        "max_gross_exposure": r.max_gross_exposure,
        "stop_loss": r.stop_loss,
        "take_profit": r.take_profit,
        "trailing_stop": r.trailing_stop,
        "max_hold_bars": cfg.strategy.max_hold_bars,
        "min_hold_bars": r.min_hold_bars,
        "cooldown_bars": r.cooldown_bars,
        "cost_filter": r.cost_filter,
        "cost_multiple": r.cost_multiple,
        "round_trip_rate": round_trip_rate(cfg),
        "commission_per_share": cfg.costs.commission_per_share,
        "drawdown_limit": r.drawdown_limit,
        "drawdown_pause_bars": r.drawdown_pause_bars,
        "daily_loss_limit": r.daily_loss_limit,
    }


def trades_with_reasons(trades: pd.DataFrame, fills: pd.DataFrame) -> pd.DataFrame:
    """Add ``exit_reason`` to round-trip trades: the reason of the fill that closed each one."""
    out = trades.copy()
    if "exit_reason" not in fills.columns or not len(trades):
        out["exit_reason"] = pd.Series(dtype="object") if not len(trades) else ""
        return out
    closing = fills[fills["exit_reason"] != ""]
    key = dict(zip(zip(closing["symbol"], closing["ts"], strict=True), closing["exit_reason"], strict=True))
    out["exit_reason"] = [key.get((s, t), "") for s, t in zip(out["symbol"], out["exit_ts"], strict=True)]
    return out


BATCH_TOPIC = "sigtrade.bars.batch"
"""Message-bus topic on which a live data client announces each close time's bars before publishing them."""


class LiveOverlaySeries:
    """:class:`OverlaySeries` that grows bar time by bar time, for paper trading.

    The live data client publishes, on :data:`BATCH_TOPIC` and before the bars themselves,
    ``(ts, {symbol: (open, high, low, close, volume)})`` for every close time (warm-up
    included; the benchmark's row too when it is not traded). :meth:`append_batch` adds
    the rows; the overlay inputs are recomputed with :func:`build_series` - the very
    function the backtest uses - over all bars received so far, lazily, the first time
    they are read after new rows came (a warm-up burst costs one computation). The inputs
    are causal, so the value at each bar equals the backtest's over the same bars (replay
    checks it).
    """

    def __init__(self, cfg: BacktestConfig, symbols: list[str], bench: str | None, horizon: int) -> None:
        self._cfg = cfg
        self._symbols = list(symbols)
        self._bench = bench
        self._rows: dict[str, list[tuple[int, float, float, float, float, float]]] = {}
        self._series: OverlaySeries | None = None
        self.horizon = horizon

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every bar received so far, per symbol (benchmark included)."""
        out: dict[str, pd.DataFrame] = {}
        for s, rows in self._rows.items():
            arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
            out[s] = pd.DataFrame(
                arr[:, 1:], columns=["open", "high", "low", "close", "volume"],
                index=pd.DatetimeIndex(pd.to_datetime(arr[:, 0].astype(np.int64), utc=True)),
            )
        return out

    def append_batch(self, batch: tuple[int, dict[str, tuple[float, float, float, float, float]]]) -> None:
        """Add one close time's bars (the series is recomputed when next read)."""
        ts, rows = batch
        for s, values in rows.items():
            self._rows.setdefault(s, []).append((int(ts), *map(float, values)))
        self._series = None

    def _current(self) -> OverlaySeries:
        if self._series is None:
            frames = self.frames()
            traded = {s: frames[s] for s in self._symbols if s in frames}
            bench = frames.get(self._bench) if self._bench else None
            need_bench = self._cfg.regime.trend.sma > 0 or self._cfg.regime.volatility.window > 0
            if need_bench and (bench is None or not len(bench)):
                raise RuntimeError(f"the regime filter needs {self._bench} bars; none received yet")
            self._series = build_series(self._cfg, traded, traded, bench, self.horizon)
        return self._series

    @property
    def timeline(self) -> np.ndarray:
        return self._current().timeline

    @property
    def allow(self) -> np.ndarray:
        return self._current().allow

    @property
    def day(self) -> np.ndarray:
        return self._current().day

    @property
    def atr_pct(self) -> dict[str, np.ndarray]:
        return self._current().atr_pct

    @property
    def move(self) -> dict[str, np.ndarray]:
        return self._current().move
