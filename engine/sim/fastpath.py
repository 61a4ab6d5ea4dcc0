"""The fast path: numpy/pandas around :mod:`engine.sim.kernels_nb`.

:class:`FastPath` turns one universe (a backtest config's bars, the model's batch
probabilities, the benchmark) into the dense arrays the kernel reads, ONCE, and then
simulates any number of configurations of the signal strategy that differ in what the
kernel can vary:

* ``strategy``: ``entry_threshold``, ``exit_threshold``, ``short_threshold``,
  ``cover_threshold``, ``max_hold_bars``;
* ``portfolio``: ``position_size``, ``max_positions``;
* ``costs``: every field;
* every ``[risk]`` and ``[regime]`` field.

Everything else (data, capital, whole/fractional shares, account, fill mode, the model)
is fixed per universe. Inputs that depend on a swept value are computed once per
distinct value and indexed by the configuration: quotes per ``slippage_bps``, ATR% per
``atr_period``, typical moves per (horizon, window), regime series per ``[regime]``.

The arrays are exactly what the event engine sees: bar prices go through
NautilusTrader's own ``Bar`` construction and execution quotes through ``Price``'s
rounding replayed in numpy (:func:`engine.catalog.price_values`, bit-identical to
``QuoteTick`` construction), so prices are the engine's ``Price`` values; the probabilities are the strategy's batch probabilities,
and the overlay inputs come from :mod:`engine.overlays` / :mod:`engine.regime` like the
event strategy's. Symbols keep the runner's order; the time grid is the union of the
event frames' bar closes (as-of alignment for the regime series, see
:mod:`engine.regime`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine import catalog as cat
from engine import sessions
from engine.config import BacktestConfig, RegimeConfig, bar_minutes, config_to_dict
from engine.errors import ConfigError, DataError
from engine.fills import execution_quotes
from engine.ledger import build_run, empty_fills, timeline
from engine.metrics import rate_per_period
from engine.overlays import (
    EXIT_REASONS,
    atr_pct,
    cost_rate,
    resolve_horizon,
    round_trip_rate,
    session_ids,
    tail_aligned,
    trades_with_reasons,
    typical_move,
    union_timeline,
)
from engine.regime import regime_allows
from engine.results import FILL_COLUMNS, RunResult
from engine.sim import kernels_nb as K

FIXED_SECTIONS = ("data", "execution", "benchmark", "metrics")
"""Config sections a sweep cannot vary (one universe, one fill model, one benchmark)."""
FIXED_FIELDS = {
    "portfolio": ("capital", "fractional", "account"),
    "strategy": ("kind", "model", "mode"),
}
"""Fields of other sections a sweep cannot vary."""

_DAY_NS = 86_400 * 1_000_000_000


@dataclass
class _Bank:
    """Arrays indexed by a setting, stacked on first use."""

    keys: dict[Any, int] = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    _stack: np.ndarray | None = None

    def index(self, key: Any, make: Any) -> int:
        if key not in self.keys:
            self.keys[key] = len(self.arrays)
            self.arrays.append(make())
            self._stack = None
        return self.keys[key]

    def stacked(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if not self.arrays:
            return np.zeros((1, *shape), dtype=dtype)
        if self._stack is None or len(self._stack) != len(self.arrays):
            self._stack = np.ascontiguousarray(np.stack(self.arrays))  # once per new setting, not per run
        return self._stack


def bar_prices(frame: pd.DataFrame, symbol: str, bar: str, fractional: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Close, high and low of every bar as the event engine sees them (NautilusTrader ``Price`` values)."""
    inst = cat.make_instrument(symbol, fractional)
    bars = cat.frame_to_bars(frame, symbol, bar, inst)
    return (
        np.array([b.close.as_double() for b in bars], dtype=np.float64),
        np.array([b.high.as_double() for b in bars], dtype=np.float64),
        np.array([b.low.as_double() for b in bars], dtype=np.float64),
    )


def quote_prices(
    frame: pd.DataFrame, symbol: str, bar: str, fractional: bool, fill: str, slippage_bps: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A symbol's execution quotes (:func:`engine.fills.execution_quotes`) and their bid and ask as ``Price`` values."""
    from engine.runner import _quote_ticks

    q = execution_quotes(frame, fill, bar_minutes(bar), slippage_bps)
    if not len(q):
        return q, np.empty(0), np.empty(0)
    ticks = _quote_ticks(cat.make_instrument(symbol, fractional), q.index, q["bid"].to_numpy(), q["ask"].to_numpy())
    return (
        q,
        np.array([x.bid_price.as_double() for x in ticks], dtype=np.float64),
        np.array([x.ask_price.as_double() for x in ticks], dtype=np.float64),
    )


class FastPath:
    """One universe, prepared once; simulate many configurations of the signal strategy.

    Parameters
    ----------
    cfg
        The base backtest config (its fixed sections define the universe).
    window, full, history
        The runner's frames (:func:`engine.runner.load_window`): in-window bars, what the
        event loop replays (with warm-up), and the whole history up to the window's end.
    probabilities
        The strategy's batch probability series per symbol (on the history index).
    bench
        The benchmark's bar history (trend and volatility filters), or None.
    card_horizon, card_threshold
        The model card's label horizon and default entry threshold.
    """

    def __init__(
        self,
        cfg: BacktestConfig,
        window: Mapping[str, pd.DataFrame],
        full: Mapping[str, pd.DataFrame],
        history: Mapping[str, pd.DataFrame],
        probabilities: Mapping[str, pd.Series],
        bench: pd.DataFrame | None,
        card_horizon: int | None = None,
        card_threshold: float = 0.5,
    ) -> None:
        from engine.runner import decision_bounds

        self.cfg = cfg
        self.symbols = list(window)
        self.window = dict(window)
        self.full = {s: full[s] for s in self.symbols}
        self.history = {s: history[s] for s in self.symbols}
        self.bench = bench
        self.card_horizon = card_horizon
        self.card_threshold = float(card_threshold)
        S = len(self.symbols)
        ts = union_timeline(self.full)
        T = len(ts)
        self.ts = ts
        self.window_index = timeline(self.window)
        self.in_window = np.isin(ts, self.window_index.asi8)
        self.day = session_ids(ts)
        self.trade_from, self.last_decision = decision_bounds(cfg, self.window)
        order = sorted(range(S), key=lambda i: self.symbols[i])
        self.rank_of = np.empty(S, dtype=np.int64)
        self.rank_of[order] = np.arange(S)
        self.capital = float(cfg.portfolio.capital)
        self.qty_scale = float(10 ** (6 if cfg.portfolio.fractional else 0))
        self.periods_per_year = sessions.periods_per_year(self.window_index) if len(self.window_index) else 252.0
        idx = self.window_index
        self.years = (idx[-1].value - idx[0].value) / _DAY_NS / 365.25 if len(idx) >= 2 else 0.0

        self.rows: list[np.ndarray] = []  # step index of each full bar, per symbol
        self.price_precision: list[int] = []  # each instrument's price decimals
        self.state = np.zeros((T, S), dtype=np.int8)
        self.close = np.full((T, S), np.nan)
        self.high = np.full((T, S), np.nan)
        self.low = np.full((T, S), np.nan)
        self.mark = np.full((T, S), np.nan)
        self.prob = np.full((T, S), np.nan)
        self.ref = np.full((T, S), np.nan)
        self.fill_ts = np.full((T, S), -1, dtype=np.int64)
        close_at_end = cfg.execution.close_at_end
        for j, s in enumerate(self.symbols):
            frame = self.full[s]
            k = np.searchsorted(ts, frame.index.asi8)
            self.rows.append(k)
            self.close[k, j], self.high[k, j], self.low[k, j] = bar_prices(frame, s, cfg.data.bar, cfg.portfolio.fractional)
            self.price_precision.append(int(cat.make_instrument(s, cfg.portfolio.fractional).price_precision))
            t = frame.index.asi8
            last = self.last_decision[s]
            st = np.full(len(t), K.ST_DECIDE, dtype=np.int8)
            if close_at_end:
                st[t >= last] = K.ST_END  # only the first is reached: the symbol is then done
            else:
                st[t > last] = K.ST_PAST
            st[t < self.trade_from] = K.ST_WARM
            self.state[k, j] = st
            wk = np.searchsorted(ts, self.window[s].index.asi8)
            self.mark[wk, j] = self.window[s]["close"].to_numpy(dtype=np.float64)
            p = probabilities.get(s)
            if p is None:
                raise DataError(f"no probabilities for {s}: score every traded symbol")
            self.prob[k, j] = p.reindex(frame.index).to_numpy(dtype=np.float64)
            q = execution_quotes(frame, cfg.execution.fill, bar_minutes(cfg.data.bar), 0.0)
            if len(q):
                qk = np.searchsorted(ts, q["decision_ts"].to_numpy(dtype=np.int64))
                self.ref[qk, j] = q["ref"].to_numpy()
                self.fill_ts[qk, j] = q["fill_ts"].to_numpy(dtype=np.int64)
        rows_k, rows_s = np.nonzero(self.state != K.ST_NONE)  # row-major: by time, then symbol
        self.act_sym = rows_s.astype(np.int64)
        self.act_ptr = np.searchsorted(rows_k, np.arange(T + 1)).astype(np.int64)
        self._per_bar = tuple(
            np.ascontiguousarray(arr[rows_k, rows_s])
            for arr in (self.state, self.close, self.high, self.low, self.mark, self.prob)
        )
        self._check_probabilities()
        self._slip = _Bank()
        self._atr = _Bank()
        self._move = _Bank()
        self._regime = _Bank()

    # -- validation ------------------------------------------------------------------------
    def _check_probabilities(self) -> None:
        decide = self.state == K.ST_DECIDE
        finite = np.isfinite(self.prob) & decide
        if not finite.any():
            raise DataError(
                "every model probability in the trading window is NaN: the history before the "
                "window is shorter than the model's warm-up (features + lookback), or the features "
                "are NaN; start the window later or ingest more history"
            )
        bad = ~np.isnan(self.prob) & ((self.prob < 0) | (self.prob > 1))
        if bad.any():
            raise DataError("model probabilities outside [0, 1]: the model's output is not a probability")

    def check_fixed(self, cfg: BacktestConfig) -> None:
        """Refuse a configuration that changes what the universe fixes."""
        a, b = config_to_dict(self.cfg), config_to_dict(cfg)
        for sec in FIXED_SECTIONS:
            if a[sec] != b[sec]:
                raise ConfigError(f"a sweep cannot vary [{sec}]: it defines the universe; run one sweep per setting")
        for sec, names in FIXED_FIELDS.items():
            for n in names:
                if a[sec][n] != b[sec][n]:
                    raise ConfigError(f"a sweep cannot vary {sec}.{n}; run one sweep per value")

    # -- banks -------------------------------------------------------------------------------
    def _dense(self, per_symbol: Sequence[np.ndarray]) -> np.ndarray:
        out = np.full((len(self.ts), len(self.symbols)), np.nan)
        for j, v in enumerate(per_symbol):
            out[self.rows[j], j] = v
        return out

    def _quotes(self, slippage_bps: float) -> np.ndarray:
        """bid and ask (2, T, S) as NautilusTrader prices for one slippage.

        ``engine.fills.execution_quotes`` prices a quote at ``ref x (1 -/+ slippage)``; the
        reference prices do not depend on the slippage and are kept in ``self.ref``, so each
        level is two multiplications and the ``Price`` rounding of ``QuoteTick``
        construction (:func:`engine.catalog.price_values`, bit-identical to the wrangler's),
        in numpy: a sweep or a cost curve over many levels builds no NautilusTrader objects.
        """
        sl = slippage_bps / 10_000.0
        out = np.full((2, len(self.ts), len(self.symbols)), np.nan)
        if len(set(self.price_precision)) == 1:  # one rounding for the whole grid
            out[0] = cat.price_values(self.ref * (1.0 - sl), self.price_precision[0])
            out[1] = cat.price_values(self.ref * (1.0 + sl), self.price_precision[0])
            return out
        for j, precision in enumerate(self.price_precision):
            ref = self.ref[:, j]
            out[0, :, j] = cat.price_values(ref * (1.0 - sl), precision)
            out[1, :, j] = cat.price_values(ref * (1.0 + sl), precision)
        return out

    def quotes(self, slippage_bps: float, *, keep: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Execution bid and ask ``(T, S)`` at one slippage (NaN where a symbol has no quote).

        ``keep=False`` computes a level that is not banked yet without banking it.
        """
        slip = float(slippage_bps)
        if not keep and slip not in self._slip.keys:
            arr = self._quotes(slip)
        else:
            arr = self._slip.arrays[self._slip.index(slip, lambda: self._quotes(slip))]
        return np.ascontiguousarray(arr[0]), np.ascontiguousarray(arr[1])

    def bar_layout(self) -> dict[str, np.ndarray]:
        """The per-bar arrays in the kernel's CSR layout (time-major; ``act_ptr``/``act_sym`` index them).

        Keys: ``state``, ``close``, ``high``, ``low``, ``mark``, ``prob`` (one value per
        symbol bar), and ``act_ptr``, ``act_sym`` (the symbols with a bar at each time).
        """
        names = ("state", "close", "high", "low", "mark", "prob")
        out = dict(zip(names, self._per_bar, strict=True))
        out["act_ptr"] = self.act_ptr
        out["act_sym"] = self.act_sym
        return out

    def _atr_of(self, period: int) -> np.ndarray:
        return self._dense([tail_aligned(atr_pct(self.history[s], period), len(self.full[s])) for s in self.symbols])

    def _move_of(self, horizon: int, window: int) -> np.ndarray:
        return self._dense(
            [tail_aligned(typical_move(self.history[s], horizon, window), len(self.full[s])) for s in self.symbols]
        )

    def _regime_of(self, regime: RegimeConfig) -> np.ndarray:
        try:
            return regime_allows(regime, self.ts, self.bench, self.history)
        except ValueError as exc:
            raise ConfigError(f"{exc}: add benchmark.symbol's bars to the catalog") from exc

    def regime_series(self, regime: RegimeConfig) -> np.ndarray:
        """Whether entries are allowed at each union time under *regime*."""
        return self._regime.arrays[self._regime.index(regime, lambda: self._regime_of(regime))]

    # -- configurations -----------------------------------------------------------------------
    def params(self, cfgs: Sequence[BacktestConfig]) -> tuple[np.ndarray, np.ndarray]:
        """The kernel's float and int parameter rows of each configuration."""
        n = len(cfgs)
        fp = np.zeros((n, K.N_FLOAT))
        ip = np.zeros((n, K.N_INT), dtype=np.int64)
        for i, c in enumerate(cfgs):
            st, r, co = c.strategy, c.risk, c.costs
            entry = st.entry_threshold if st.entry_threshold is not None else self.card_threshold
            exit_ = st.exit_threshold if st.exit_threshold is not None else min(0.5, entry)
            if exit_ > entry:
                raise ConfigError(
                    f"strategy.exit_threshold ({exit_}) is above strategy.entry_threshold ({entry}): "
                    "a position would be closed on the bar it is opened"
                )
            fp[i, K.F_ENTRY] = entry
            fp[i, K.F_EXIT] = exit_
            fp[i, K.F_SHORT] = st.short_threshold if st.short_threshold is not None else math.nan
            fp[i, K.F_COVER] = st.cover_threshold
            fp[i, K.F_POS_SIZE] = c.portfolio.position_size
            fp[i, K.F_COST_RATE] = cost_rate(c)
            fp[i, K.F_BPS] = co.commission_bps
            fp[i, K.F_PER_SHARE] = co.commission_per_share
            fp[i, K.F_CMIN] = co.commission_min
            fp[i, K.F_ATR_RISK] = r.atr_risk
            fp[i, K.F_ATR_MULT] = r.atr_multiple
            fp[i, K.F_MAX_GROSS] = r.max_gross_exposure
            fp[i, K.F_SL] = r.stop_loss
            fp[i, K.F_TP] = r.take_profit
            fp[i, K.F_TRAIL] = r.trailing_stop
            fp[i, K.F_COST_MULT] = r.cost_multiple
            fp[i, K.F_RT_RATE] = round_trip_rate(c)
            fp[i, K.F_DD_LIMIT] = r.drawdown_limit
            fp[i, K.F_DAILY_LIMIT] = r.daily_loss_limit
            ip[i, K.I_MAX_POS] = c.portfolio.max_positions
            slip = float(co.slippage_bps)
            ip[i, K.I_SLIP] = self._slip.index(slip, lambda slip=slip: self._quotes(slip))
            if r.sizing == "atr":
                ip[i, K.I_ATR] = self._atr.index(r.atr_period, lambda p=r.atr_period: self._atr_of(p))
            else:
                ip[i, K.I_ATR] = -1
            if r.cost_filter:
                key = (resolve_horizon(c, self.card_horizon), r.cost_filter_window)
                ip[i, K.I_MOVE] = self._move.index(key, lambda key=key: self._move_of(*key))
            else:
                ip[i, K.I_MOVE] = -1
            reg = c.regime
            ip[i, K.I_REGIME] = self._regime.index(reg, lambda reg=reg: self._regime_of(reg))
            ip[i, K.I_MAX_HOLD] = st.max_hold_bars
            ip[i, K.I_MIN_HOLD] = r.min_hold_bars
            ip[i, K.I_COOLDOWN] = r.cooldown_bars
            ip[i, K.I_DD_PAUSE] = r.drawdown_pause_bars
        return fp, ip

    def kernel_args(self) -> tuple[Any, ...]:
        """The prepared arrays every kernel call reads (after :meth:`params` filled the banks).

        ``sigtrade sweep --cluster`` puts this tuple in Ray's object store once and ships
        only parameter rows to the tasks.
        """
        return self._args()

    @property
    def rf_per_bar(self) -> float:
        """The config's annual risk-free rate as a rate per bar (what the kernels' Sharpe figures subtract)."""
        return rate_per_period(self.cfg.metrics.risk_free_rate, self.periods_per_year)

    def _args(self) -> tuple[Any, ...]:
        T, S = self.state.shape
        quotes = self._slip.stacked((2, T, S), np.float64)
        return (
            self.ts, self.in_window, self.day, int(self.trade_from), self.act_ptr, self.act_sym,
            *self._per_bar, self.ref, self.fill_ts,
            np.ascontiguousarray(quotes[:, 0]), np.ascontiguousarray(quotes[:, 1]),
            self._atr.stacked((T, S), np.float64), self._move.stacked((T, S), np.float64),
            self._regime.stacked((T,), np.bool_), self.rank_of, self.capital, self.qty_scale, self.rf_per_bar,
        )

    def bytes_per_config(self, keep_equity: bool) -> int:
        """Memory the kernel needs per configuration (state, statistics, equity path)."""
        S = len(self.symbols)
        return 8 * (K.N_FLOAT + K.N_INT + K.N_STAT + 20 * S) + (8 * int(self.in_window.sum()) if keep_equity else 0)

    def run(
        self, fp: np.ndarray, ip: np.ndarray, *, keep_equity: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Simulate the parameter rows; return (statistics, equity paths or an empty array)."""
        n_win = int(self.in_window.sum())
        eq = np.zeros((len(fp), n_win) if keep_equity else (len(fp), 0))
        args = self._args()
        stats = K.sweep_nb(np.ascontiguousarray(fp), np.ascontiguousarray(ip), *args, keep_equity, eq)
        check_clash(stats)
        return stats, eq

    def run_batch(self, cfgs: Sequence[BacktestConfig]) -> np.ndarray:
        """Simulate one-off configurations (a cost curve) without growing the shared banks.

        Their execution quotes live only for this call, so a batch of new slippage levels
        neither stays in memory nor makes every later run re-stack it.
        """
        kept = self._slip
        self._slip = _Bank()
        try:
            fp, ip = self.params(cfgs)
            stats, _ = self.run(fp, ip)
        finally:
            self._slip = kept
        return stats

    def metrics(self, stats: np.ndarray) -> pd.DataFrame:
        """Figures of engine/metrics.py from the kernel's statistics, one row per configuration."""
        P = self.periods_per_year
        rf_p = self.rf_per_bar
        final = stats[:, K.S_FINAL]
        n = stats[:, K.S_NRET]
        mean = stats[:, K.S_MEAN]
        with np.errstate(divide="ignore", invalid="ignore"):
            sd = np.sqrt(stats[:, K.S_M2] / (n - 1.0))
            total = final / self.capital - 1.0
            growth = 1.0 + total
            cagr = np.where(growth > 0, growth ** (1.0 / self.years) - 1.0, np.where(growth == 0, -1.0, np.nan)) if self.years > 0 else np.full(len(final), np.nan)
            sharpe = np.where((n >= 2) & (sd > 0), (mean - rf_p) / sd * math.sqrt(P), np.nan)
            down = np.sqrt(stats[:, K.S_DOWN2] / n)
            sortino = np.where((n >= 2) & (down > 0), (mean - rf_p) / down * math.sqrt(P), np.nan)
            mdd = stats[:, K.S_MDD]
            calmar = np.where(mdd < 0, cagr / np.abs(mdd), np.nan)
            mean_eq = stats[:, K.S_SUM_EQ] / stats[:, K.S_NEQ]
            turnover = stats[:, K.S_NOTIONAL] / mean_eq / self.years if self.years > 0 else np.full(len(final), np.nan)
            in_market = stats[:, K.S_EXPOSED] / stats[:, K.S_NEQ]
        return pd.DataFrame(
            {
                "sharpe": sharpe,
                "sortino": sortino,
                "total_return": total,
                "cagr": cagr,
                "calmar": calmar,
                "max_drawdown": mdd,
                "volatility": sd * math.sqrt(P),
                "trades": stats[:, K.S_TRADES].astype(np.int64),
                "fills": stats[:, K.S_FILLS].astype(np.int64),
                "turnover": turnover,
                "commission_paid": stats[:, K.S_COMMISSION],
                "slippage_paid": stats[:, K.S_SLIPPAGE],
                "final_equity": final,
                "time_in_market": in_market,
            }
        )

    # -- one configuration, fill by fill --------------------------------------------------------
    def trace(self, cfg: BacktestConfig) -> tuple[RunResult, pd.Series, np.ndarray]:
        """Simulate one configuration with its fills recorded.

        Returns the run as sigtrade's books see it (fills -> :func:`engine.ledger.build_run`,
        the same code as the event engine's), the kernel's own equity path, and its raw
        statistics row.
        """
        fills, equity, stats = self.trace_fills(cfg)
        run = build_run(fills, self.window, self.window_index, self.capital)
        run.trades = trades_with_reasons(run.trades, run.fills)
        return run, equity, stats

    def trace_fills(self, cfg: BacktestConfig) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
        """One configuration's fills table, the kernel's equity path and its statistics row.

        :meth:`trace` without the round trips (``engine.ledger.round_trips`` is a Python
        loop over the fills): what a comparison of fills and equity needs.
        """
        self.check_fixed(cfg)
        fp, ip = self.params([cfg])
        n_win = int(self.in_window.sum())
        max_fills = int((self.state != K.ST_NONE).sum()) + 1
        stats, rec, reasons, equity = K.trace_nb(fp[0], ip[0], *self._args(), max_fills, n_win)
        check_clash(stats[None, :])
        return self.fills_frame(rec, reasons), pd.Series(equity, index=self.window_index, name="equity"), stats

    def fills_frame(self, rec: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
        """The kernel's recorded fills as the runner's fills table (``exit_reason`` included)."""
        if not len(rec):
            out = empty_fills()
            out["exit_reason"] = pd.Series(dtype="object")
            return out
        k = rec[:, 0].astype(np.int64)
        j = rec[:, 1].astype(np.int64)
        names = np.array(self.symbols, dtype=object)
        df = pd.DataFrame(
            {
                "ts": pd.to_datetime(self.fill_ts[k, j], utc=True),
                "symbol": names[j],
                "side": np.where(rec[:, 2] > 0, "BUY", "SELL").astype(object),
                "qty": rec[:, 3],
                "price": rec[:, 4],
                "ref_price": self.ref[k, j],
                "commission": rec[:, 5],
                "exit_reason": [("" if r == 0 else EXIT_REASONS[r - 1]) for r in reasons],
            }
        )
        df["notional"] = df["qty"] * df["price"]
        df["slippage"] = df["qty"] * np.abs(df["price"] - df["ref_price"])
        return df.sort_values(["ts", "symbol"], kind="stable")[[*FILL_COLUMNS, "exit_reason"]].reset_index(drop=True)


COMPARED_FILL_COLUMNS = ("ts", "symbol", "side", "qty", "price", "commission", "exit_reason")
"""The fill columns two simulators must agree on exactly (parity)."""


def fills_identical(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two fills tables agree exactly on :data:`COMPARED_FILL_COLUMNS`, row for row."""
    cols = list(COMPARED_FILL_COLUMNS)
    if len(a) != len(b):
        return False
    if not len(a):
        return True
    x, y = a[cols].reset_index(drop=True), b[cols].reset_index(drop=True)
    return bool((x == y).all().all())


def run_identical(fills: pd.DataFrame, equity: pd.Series, other_fills: pd.DataFrame, other_equity: pd.Series) -> bool:
    """Whether two runs agree exactly: their fills (:func:`fills_identical`) and every value of their equity paths."""
    return (fills_identical(fills, other_fills) and len(equity) == len(other_equity)
            and bool((equity.to_numpy() == other_equity.to_numpy()).all()))


def check_clash(stats: np.ndarray) -> None:
    """Refuse statistics whose ledger saw a fill due after its symbol's next bar close."""
    if (stats[:, K.S_LEDGER_CLASH] > 0).any():
        raise RuntimeError("kernel ledger: a fill was due after its symbol's next bar close (bar timing bug)")
