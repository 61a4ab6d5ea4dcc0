"""The backtest runner: config -> bars -> NautilusTrader event loop -> sigtrade's books.

One call of :func:`run_backtest` loads the window (plus warm-up history), builds the
instruments, bars and execution quotes (:mod:`engine.fills`), adds them in one sorted
stream, runs the strategy in a ``BacktestEngine`` with the commission model and fill
timing, reads the fills back from the engine's cache and builds the equity curve, trades
and metrics. The benchmark is bought and held through the very same engine, costs and
fill timing, without the strategy's risk overlays and regime filters.

The overlays' inputs (ATR%, typical moves, regime series, session ids) are computed once
per run by :func:`engine.overlays.build_series` and handed to the strategy before the
loop; exit orders carry their reason as an order tag, which becomes the ``exit_reason``
column of fills and trades.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nautilus_trader.accounting.factory import AccountFactory
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.config import ImportableStrategyConfig, LoggingConfig, RiskEngineConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
from nautilus_trader.trading.strategy import Strategy

from engine import catalog as cat
from engine.config import BacktestConfig, bar_minutes, config_to_dict
from engine.costs import CommissionConfig, CommissionModel
from engine.errors import ConfigError, DataError
from engine.fills import CLOCK_SYMBOL, ORDER_LATENCY_NS, QUOTE_SIZE, execution_quotes, trigger_times
from engine.ledger import build_run, empty_fills, timeline
from engine.overlays import (
    OverlaySeries,
    build_series,
    cost_rate,
    resolve_horizon,
    strategy_risk_params,
    trades_with_reasons,
)
from engine.regime import enabled as regime_enabled
from engine.results import FILL_COLUMNS, BacktestResult, RunInputs, RunResult
from engine.sessions import session_of
from engine.strategy_registry import STRATEGIES, strategy_params, warmup_bars

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]
_CHUNKS = 40


def _noop(_: str, __: float) -> None:
    return None


def load_window(
    catalog: str | Path, symbols: list[str], bar: str, start: Any, end: Any, warmup: int
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Read each symbol's bars.

    Returns the in-window frames, the frames the event loop gets (the window plus
    *warmup* bars before it) and the whole history up to the window's end (what
    ``prepare`` hooks get, so that a bar's features never depend on the backtest's start).
    """
    window: dict[str, pd.DataFrame] = {}
    full: dict[str, pd.DataFrame] = {}
    history: dict[str, pd.DataFrame] = {}
    for s in symbols:
        frame = cat.read_frame(catalog, s, bar)
        sess = session_of(frame.index, side="right")
        inside = np.ones(len(frame), dtype=bool)
        if start is not None:
            inside &= np.asarray(sess >= pd.Timestamp(start))
        if end is not None:
            inside &= np.asarray(sess <= pd.Timestamp(end))
        if not inside.any():
            raise DataError(
                f"no {bar} bars for {s} between {start or 'the start'} and {end or 'the end'}: "
                f"the catalog has {frame.index[0].date()} .. {frame.index[-1].date()}; "
                "change data.start / data.end"
            )
        first = int(np.argmax(inside))
        last = len(inside) - int(np.argmax(inside[::-1]))
        window[s] = frame.iloc[first:last]
        full[s] = frame.iloc[max(0, first - warmup) : last]
        history[s] = frame.iloc[:last]
    return window, full, history


def _venue_kwargs(cfg: BacktestConfig) -> dict[str, Any]:
    return {
        "venue": cat.VENUE,
        "oms_type": OmsType.NETTING,
        "account_type": AccountType.MARGIN if cfg.portfolio.account == "margin" else AccountType.CASH,
        "base_currency": USD,
        "starting_balances": [Money(cfg.portfolio.capital, USD)],
        "fee_model": CommissionModel(
            CommissionConfig(
                commission_bps=cfg.costs.commission_bps,
                commission_per_share=cfg.costs.commission_per_share,
                commission_min=cfg.costs.commission_min,
            )
        ),
        "latency_model": LatencyModel(ORDER_LATENCY_NS),
        # the market moves only through the execution quotes (engine.fills)
        "bar_execution": False,
    }


def allow_cash_borrowing() -> None:
    """Let the simulated cash account go slightly negative.

    A fill at a gapped open may cost a little more than the cash the order was sized
    with; the books show it instead of the venue rejecting the order. NautilusTrader
    keeps this switch in a process-wide registry that refuses a second registration,
    so it is set once here rather than per engine through ``allow_cash_borrowing``.
    """
    try:
        AccountFactory.register_cash_borrowing(str(cat.VENUE))
    except KeyError:
        pass


def _quote_ticks(inst: Any, index: pd.DatetimeIndex, bid: Any, ask: Any) -> list[Any]:
    qdf = pd.DataFrame(
        {"bid_price": bid, "ask_price": ask, "bid_size": QUOTE_SIZE, "ask_size": QUOTE_SIZE}, index=index
    )
    return list(QuoteTickDataWrangler(inst).process(qdf))


def build_stream(
    cfg: BacktestConfig, full: dict[str, pd.DataFrame]
) -> tuple[list[Any], dict[str, pd.DataFrame], dict[str, Any]]:
    """Instruments, the sorted bar + quote stream and each symbol's quote table."""
    minutes = bar_minutes(cfg.data.bar)
    instruments = {s: cat.make_instrument(s, cfg.portfolio.fractional) for s in full}
    data: list[Any] = []
    stamps: list[np.ndarray] = []
    quotes: dict[str, pd.DataFrame] = {}
    for s, frame in full.items():
        inst = instruments[s]
        data.extend(cat.frame_to_bars(frame, s, cfg.data.bar, inst))
        stamps.append(frame.index.asi8)
        q = execution_quotes(frame, cfg.execution.fill, minutes, cfg.costs.slippage_bps)
        quotes[s] = q
        if len(q):
            data.extend(_quote_ticks(inst, q.index, q["bid"].to_numpy(), q["ask"].to_numpy()))
            stamps.append(q.index.asi8)
    triggers = trigger_times(quotes)
    if len(triggers):
        clock = cat.make_instrument(CLOCK_SYMBOL)
        instruments[CLOCK_SYMBOL] = clock
        ones = np.ones(len(triggers))
        data.extend(_quote_ticks(clock, pd.to_datetime(triggers, utc=True), ones, ones))
        stamps.append(triggers)
    # one stable argsort of the ts_init stamps (= each object's ts_init, as built) instead
    # of a Python sort keyed on a million attribute lookups; ties keep insertion order
    order = np.argsort(np.concatenate(stamps), kind="stable") if stamps else np.empty(0, dtype=np.intp)
    data = [data[i] for i in order.tolist()]
    return data, quotes, instruments


def _chunks(data: list[Any], progress: Progress) -> Iterator[list[Any]]:
    n = len(data)
    step = max(1, -(-n // _CHUNKS))
    for i in range(0, n, step):
        yield data[i : i + step]
        progress("simulate", min(1.0, (i + step) / n))


def _fills_from(engine: BacktestEngine, quotes: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every fill in the engine's cache, with its reference price and economic time."""
    rows = []
    for order in engine.cache.orders():
        tags = order.tags
        reason = str(tags[0]) if tags else ""
        for ev in order.events:
            if isinstance(ev, OrderFilled):
                rows.append(
                    (
                        ev.ts_event,
                        ev.instrument_id.symbol.value,
                        "BUY" if ev.order_side == OrderSide.BUY else "SELL",
                        ev.last_qty.as_double(),
                        ev.last_px.as_double(),
                        ev.commission.as_double(),
                        reason,
                    )
                )
    if not rows:
        out = empty_fills()
        out["exit_reason"] = pd.Series(dtype="object")
        return out
    df = pd.DataFrame(rows, columns=["engine_ts", "symbol", "side", "qty", "price", "commission", "exit_reason"])
    ref = np.empty(len(df))
    fill_ts = np.empty(len(df), dtype=np.int64)
    for s, idx in df.groupby("symbol").indices.items():
        q = quotes[s]
        # the quote in force when the venue processed the order
        pos = np.searchsorted(q.index.asi8, df["engine_ts"].to_numpy()[idx], side="right") - 1
        ref[idx] = q["ref"].to_numpy()[pos]
        fill_ts[idx] = q["fill_ts"].to_numpy()[pos]
    df["ref_price"] = ref
    df["ts"] = pd.to_datetime(fill_ts, utc=True)
    df["notional"] = df["qty"] * df["price"]
    df["slippage"] = df["qty"] * np.abs(df["price"] - df["ref_price"])
    return df.sort_values(["ts", "symbol"], kind="stable")[[*FILL_COLUMNS, "exit_reason"]].reset_index(drop=True)


def decision_bounds(cfg: BacktestConfig, window: dict[str, pd.DataFrame]) -> tuple[int, dict[str, int]]:
    """First tradable bar close (ns) and each symbol's last decision bar close (ns).

    Under ``next_open`` the last bar has no next open, so the last decision is on the bar
    before it; ``close_at_end`` flattens there.
    """
    last_idx = -2 if cfg.execution.fill == "next_open" else -1
    last_decision = {s: int(f.index.asi8[last_idx if len(f) > 1 else -1]) for s, f in window.items()}
    trade_from = min(int(f.index.asi8[0]) for f in window.values())
    return trade_from, last_decision


def benchmark_history(cfg: BacktestConfig, history: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame | None:
    """The benchmark's bars up to the window's end (the trend and volatility filters' input)."""
    bench = cfg.benchmark.symbol
    if history is not None and bench in history:
        return history[bench]
    if not regime_enabled(cfg.regime) or not ({"trend", "volatility"} & set(regime_enabled(cfg.regime))):
        return None
    _, _, hist = load_window(cfg.data.catalog, [bench], cfg.data.bar, cfg.data.start, cfg.data.end, 0)
    return hist[bench]


def overlay_series(
    cfg: BacktestConfig,
    full: dict[str, pd.DataFrame],
    history: dict[str, pd.DataFrame] | None,
    card_horizon: int | None,
    bench: pd.DataFrame | None = None,
    trade_from: int = 0,
) -> OverlaySeries:
    """The run's overlay inputs; warns when the regime filter never allows an entry."""
    hist = history if history is not None else full
    if bench is None:
        bench = benchmark_history(cfg, hist)
    series = build_series(cfg, full, hist, bench, resolve_horizon(cfg, card_horizon))
    names = regime_enabled(cfg.regime)
    if names:
        inside = series.timeline >= trade_from
        if not series.allow[inside].any():
            log.warning(
                "the regime filter (%s, combine=%s) never allows an entry in this window: "
                "no position will be opened; loosen [regime] or check the benchmark's data",
                "+".join(names), cfg.regime.combine,
            )
    return series


def strategy_settings(
    cfg: BacktestConfig,
    symbols: list[str],
    trade_from: int,
    last_decision: dict[str, int],
    params: dict[str, Any],
    *,
    overlays: bool = True,
) -> dict[str, Any]:
    """The strategy config of a run (backtest, replay and paper trading build it here alike)."""
    strategy_config: dict[str, Any] = {
        "symbols": symbols,
        "bar": cfg.data.bar,
        "venue": str(cat.VENUE),
        "capital": cfg.portfolio.capital,
        "position_size": cfg.portfolio.position_size,
        "max_positions": cfg.portfolio.max_positions,
        "fractional": cfg.portfolio.fractional,
        "cost_rate": cost_rate(cfg),
        "trade_from_ns": trade_from,
        "last_decision_ns": last_decision,
        "close_at_end": cfg.execution.close_at_end,
        **(strategy_risk_params(cfg) if overlays else {}),
        **params,
    }
    if not overlays:
        strategy_config.pop("max_hold_bars", None)
    return strategy_config


def simulate(
    cfg: BacktestConfig,
    window: dict[str, pd.DataFrame],
    full: dict[str, pd.DataFrame],
    kind: str,
    params: dict[str, Any],
    progress: Progress = _noop,
    history: dict[str, pd.DataFrame] | None = None,
    *,
    overlays: bool = True,
    bench_history: pd.DataFrame | None = None,
    decision_sink: Callable[[dict[str, Any]], None] | None = None,
    bounds: tuple[int, dict[str, int]] | None = None,
    strategy_hook: Callable[[Strategy], None] | None = None,
) -> RunResult:
    """Run one strategy kind over the given bars in a fresh engine; return its books.

    With ``overlays`` (the default) the config's ``[risk]``, ``[regime]`` and time stop
    apply; the benchmark runs without them. ``strategy_hook(strategy)`` is called once the
    strategy is built and prepared, before the run (replay feeds recorded live news there).
    """
    spec = STRATEGIES[kind]
    symbols = list(window)
    data, quotes, instruments = build_stream(cfg, full)
    progress("prepare", 1.0)
    trade_from, last_decision = bounds if bounds is not None else decision_bounds(cfg, window)
    strategy_config = strategy_settings(cfg, symbols, trade_from, last_decision, params, overlays=overlays)
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("SIGTRADE-001"),
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
            # sigtrade's strategies size every order within their own cash books
            # (engine.sizing.shares_for); NautilusTrader's pre-trade check would price a
            # market order at the previous execution quote (the last bar's next open)
            # and deny orders the strategy sized correctly at the current close.
            risk_engine=RiskEngineConfig(bypass=True),
        )
    )
    try:
        allow_cash_borrowing()
        engine.add_venue(**_venue_kwargs(cfg))
        for inst in instruments.values():
            engine.add_instrument(inst)
        from nautilus_trader.trading.config import StrategyFactory

        strategy: Strategy = StrategyFactory.create(
            ImportableStrategyConfig(strategy_path=spec.strategy_path, config_path=spec.config_path, config=strategy_config)
        )
        prepare = getattr(strategy, "prepare", None)
        if callable(prepare):
            prepare(history if history is not None else full)
        if overlays:
            horizon = getattr(strategy, "card_horizon", lambda: None)()
            series = overlay_series(cfg, full, history, horizon, bench_history, trade_from)
            strategy.attach_series(series)  # type: ignore[attr-defined]
        progress("model", 1.0)
        signal_hook = getattr(strategy, "diagnosis_inputs", None)
        signal = signal_hook() if callable(signal_hook) else None
        strategy.decision_sink = decision_sink  # type: ignore[attr-defined]
        if strategy_hook is not None:
            strategy_hook(strategy)
        engine.add_strategy(strategy)
        engine.add_data_iterator("sigtrade-bars", _chunks(data, progress))
        engine.run()
        fills = _fills_from(engine, quotes)
    finally:
        engine.dispose()
    index = timeline(window)
    run = build_run(fills, window, index, cfg.portfolio.capital)
    run.trades = trades_with_reasons(run.trades, run.fills)
    run.signal = signal
    return run


Frames = tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]


def benchmark_frames(
    cfg: BacktestConfig,
    window: dict[str, pd.DataFrame] | None = None,
    history: dict[str, pd.DataFrame] | None = None,
) -> Frames:
    """The benchmark's (window, event-loop, history) frames: taken from the universe's when it is traded, read otherwise."""
    bench = cfg.benchmark.symbol
    if window is not None and history is not None and bench in window:
        return {bench: window[bench]}, {bench: window[bench]}, {bench: history[bench]}
    return load_window(cfg.data.catalog, [bench], cfg.data.bar, cfg.data.start, cfg.data.end, 0)


def run_benchmark(cfg: BacktestConfig, frames: Frames | None = None) -> RunResult:
    """Buy-and-hold of ``benchmark.symbol`` over the window, same engine, costs and fill timing, no overlays."""
    b_window, b_full, _ = frames if frames is not None else benchmark_frames(cfg)
    return simulate(cfg, b_window, b_full, "buy_and_hold", {}, overlays=False)


def run_backtest(cfg: BacktestConfig, progress: Progress | None = None) -> BacktestResult:
    """Run the configured strategy and its benchmark; return curves, trades and metrics."""
    from engine.metrics import compare, compute_metrics

    progress = progress or _noop
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    symbols = cat.resolve_symbols(cfg.data.catalog, cfg.data.bar, cfg.data.symbols)
    bench = cfg.benchmark.symbol
    cat.resolve_symbols(cfg.data.catalog, cfg.data.bar, [bench])
    if cfg.strategy.kind not in STRATEGIES:
        raise ConfigError(f"unknown strategy.kind '{cfg.strategy.kind}'")
    window, full, history = load_window(
        cfg.data.catalog, symbols, cfg.data.bar, cfg.data.start, cfg.data.end, warmup_bars(cfg)
    )
    b_window, b_full, b_history = benchmark_frames(cfg, window, history)
    index_info = cat.read_index(cfg.data.catalog)
    progress("load", 1.0)
    timings["load"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    strat = simulate(
        cfg, window, full, cfg.strategy.kind, strategy_params(cfg), progress, history, bench_history=b_history[bench]
    )
    timings["simulate"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    bench_run = run_benchmark(cfg, (b_window, b_full, b_history))
    timings["benchmark"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    rf = cfg.metrics.risk_free_rate
    metrics = compare(compute_metrics(strat, risk_free_rate=rf), compute_metrics(bench_run, risk_free_rate=rf))
    timings["metrics"] = time.perf_counter() - t3
    progress("metrics", 1.0)
    return BacktestResult(
        strategy=strat,
        benchmark=bench_run,
        metrics=metrics,
        config=config_to_dict(cfg),
        synthetic=index_info.synthetic,
        symbols=symbols,
        benchmark_symbol=bench,
        timings=timings,
        inputs=RunInputs(window=window, full=full, history=history, bench_history=b_history[bench]),
    )
