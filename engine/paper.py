"""``sigtrade paper``: the backtest config's strategy in a NautilusTrader ``TradingNode`` on Alpaca.

One code path with the backtest: the same strategy class, built from the same config by
:func:`engine.runner.strategy_settings`, receives bars from
:class:`~engine.adapters.alpaca.data.AlpacaDataClient` and sends orders through
:class:`~engine.adapters.alpaca.execution.AlpacaExecutionClient`. Signal and ensemble
strategies run in ``streaming`` mode (features and probability per bar, which batch mode
is tested to equal).

Safety
    Paper is the default and the only endpoint unless ``live=True`` *and* the environment
    variable ``SIGTRADE_LIVE_CONFIRM`` is ``"I understand the risks"``. Before the node is
    built, :func:`preflight` checks the keys (``GET /v2/account``), the account, the
    market clock and every symbol's asset (unknown, not tradable, not fractionable while
    ``portfolio.fractional`` is set): each problem is a :class:`~engine.errors.BrokerError`
    or :class:`~engine.errors.ConfigError` and nothing has started. Pre-trade limits are in
    ``[paper]``. Ctrl-C / SIGTERM stops the node: the strategy cancels its open orders and,
    with ``paper.flatten_on_stop``, closes its positions, then the node exits.

Every decision (each bar traded on: time, symbol, action, position before, close and
probability) goes to ``decisions.jsonl`` and the log; a status line (equity, positions,
last probability per symbol) every ``paper.status_every_s``. With a record directory the
session also keeps the bars it saw and the orders it sent (:mod:`engine.replay`).

Restarts: a signal strategy saves its streaming features (indicator state and the last
feature rows, :meth:`models.signal.SignalStream.state`) to ``--out/features.state`` after
every live bar time and at stop; the next session in the same ``--out`` restores them and
continues with the very values an uninterrupted session would have (``paper.resume_features``;
its warm-up must reach back to the saved state's last bar, else that symbol restarts from
the warm-up with a WARNING).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from engine.adapters.alpaca.config import (
    AlpacaConfig,
    AlpacaDataClientConfig,
    AlpacaExecClientConfig,
)
from engine.config import BacktestConfig
from engine.errors import BrokerError, ConfigError

log = logging.getLogger(__name__)

FEATURE_STATE_FILE = "features.state"
"""Where a signal strategy's streaming state is saved in the session's --out folder (``paper.resume_features``)."""
LIVE_CONFIRM_ENV = "SIGTRADE_LIVE_CONFIRM"
LIVE_CONFIRM_TEXT = "I understand the risks"
ALPACA = "ALPACA"


@dataclass
class Preflight:
    """What the checks before a session found."""

    account_number: str
    equity: float
    buying_power: float
    market_open: bool
    next_open: str


class _NoTraceback(logging.Filter):
    """alpaca-py logs stream errors with ``log.exception``: keep its message, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.startswith("alpaca"):
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__})" if exc is not None else record.msg
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def check_live(live: bool) -> None:
    """Refuse the live endpoint unless the confirming environment variable says so."""
    if live and os.environ.get(LIVE_CONFIRM_ENV, "") != LIVE_CONFIRM_TEXT:
        raise ConfigError(
            f"--live trades real money: set {LIVE_CONFIRM_ENV}=\"{LIVE_CONFIRM_TEXT}\" in the environment as well, "
            "with live (not paper) keys; without --live sigtrade trades on Alpaca's paper endpoint"
        )


def check_supported(cfg: BacktestConfig) -> BacktestConfig:
    """Refuse what Alpaca cannot do with this config; switch signal strategies to streaming mode."""
    if cfg.strategy.short_threshold is not None and cfg.portfolio.fractional:
        raise ConfigError(
            "strategy.short_threshold with portfolio.fractional = true: Alpaca does not sell fractional shares "
            "short; set portfolio.fractional = false to paper-trade shorts"
        )
    if cfg.strategy.kind in ("signal", "ensemble", "policy") and cfg.strategy.mode != "streaming":
        log.info("strategy.mode = streaming for paper trading (features and probability per bar)")
        cfg = msgspec.structs.replace(cfg, strategy=msgspec.structs.replace(cfg.strategy, mode="streaming"))
    return cfg


def overlay_benchmark(cfg: BacktestConfig, symbols: list[str]) -> str | None:
    """The benchmark symbol the regime filters read, when it is needed and not traded (then streamed too)."""
    needs = cfg.regime.trend.sma > 0 or cfg.regime.volatility.window > 0
    bench = cfg.benchmark.symbol
    return bench if needs and bench not in symbols else None


def preflight(cfg: BacktestConfig, alpaca: AlpacaConfig, symbols: list[str]) -> Preflight:
    """Keys, account, clock and assets, before anything starts (see the module docstring)."""
    from engine.adapters.alpaca.providers import AlpacaInstrumentProvider, make_trading_client

    client = make_trading_client(alpaca)
    acct = client.get_account()
    status = str(acct.get("status", "ACTIVE")).upper()
    if status != "ACTIVE" or acct.get("trading_blocked") or acct.get("account_blocked"):
        raise BrokerError(
            f"Alpaca account {acct.get('account_number', '?')} cannot trade (status {status}, "
            f"trading_blocked={acct.get('trading_blocked')}, account_blocked={acct.get('account_blocked')}): "
            "see the account page at https://app.alpaca.markets"
        )
    if cfg.strategy.short_threshold is not None and not acct.get("shorting_enabled"):
        raise BrokerError(
            f"the config sells short (strategy.short_threshold), but Alpaca account {acct.get('account_number', '?')} "
            "cannot (shorting_enabled = false: a margin account with shorting on is needed); remove "
            "short_threshold or enable shorting in the account settings"
        )
    provider = AlpacaInstrumentProvider(client, symbols, fractional=cfg.portfolio.fractional)
    provider.load_symbols(symbols)
    if cfg.strategy.short_threshold is not None:
        hard = [s for s in symbols if not (provider.assets[s].get("shortable") and provider.assets[s].get("easy_to_borrow", True))]
        if hard:
            raise BrokerError(
                f"Alpaca cannot sell {', '.join(hard)} short (not shortable / not easy to borrow): remove them from "
                "the universe or remove strategy.short_threshold"
            )
    fractional = {s: provider.is_fractional(s) for s in symbols}
    if cfg.portfolio.fractional:
        whole = [s for s in symbols if not fractional[s]]
        if whole:
            raise BrokerError(
                f"portfolio.fractional = true, but Alpaca does not allow fractional shares of {', '.join(whole)}: "
                "set portfolio.fractional = false (whole shares, as the backtest must then use) or remove them"
            )
    clock = client.get_clock()
    return Preflight(
        account_number=str(acct.get("account_number", "")),
        equity=float(acct.get("equity") or 0.0),
        buying_power=float(acct.get("buying_power") or 0.0),
        market_open=bool(clock.get("is_open")),
        next_open=str(clock.get("next_open", "")),
    )


@dataclass
class SessionFiles:
    """Where a session writes: decisions always, bars and orders when recording."""

    out: Path
    record: Path | None = None
    _handles: dict[str, Any] = field(default_factory=dict)

    def open(self, cfg: BacktestConfig, meta: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._handles["decisions"] = (self.out / "decisions.jsonl").open("a", encoding="utf-8")
        if self.record is not None:
            from engine.replay import start_record

            start_record(self.record, cfg, meta)
            for name in ("bars", "orders", "news"):
                self._handles[name] = (self.record / f"{name}.jsonl").open("a", encoding="utf-8")
            if self.record.resolve() != self.out.resolve():
                self._handles["decisions_rec"] = (self.record / "decisions.jsonl").open("a", encoding="utf-8")

    def write(self, name: str, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        for key in (name, f"{name}_rec"):
            fh = self._handles.get(key)
            if fh is not None:
                fh.write(line)
                fh.flush()

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles.clear()
        if self.record is not None:
            from engine.replay import finish_record

            finish_record(self.record)


def _bar_record(symbol: str, bar: Any, live: bool) -> dict[str, Any]:
    return {
        "symbol": symbol, "ts": int(bar.ts_event), "open": bar.open.as_double(), "high": bar.high.as_double(),
        "low": bar.low.as_double(), "close": bar.close.as_double(), "volume": bar.volume.as_double(), "live": live,
    }


def _decision_text(rec: dict[str, Any]) -> str:
    import pandas as pd

    p = rec["inputs"].get("p", math.nan)
    return (f"{pd.Timestamp(rec['ts'], tz='UTC'):%Y-%m-%d %H:%M} {rec['symbol']}: {rec['action']} "
            f"(p={p:.4f}, close={rec['inputs'].get('close', math.nan):.2f}, position={rec['position']:g})")


def status_line(strategy: Any) -> str:
    """Equity, positions and the last probability per symbol, in one line."""
    parts = [f"equity ${strategy.equity():,.2f}"]
    held = [f"{s} {q:g}" for s, q in strategy.position.items() if q]
    parts.append("positions " + (", ".join(held) if held else "none"))
    probs = getattr(strategy, "last_prob", {})
    if probs:
        parts.append("last p " + " ".join(f"{s} {p:.3f}" if not math.isnan(p) else f"{s} -" for s, p in probs.items()))
    return " | ".join(parts)


def run_paper(
    cfg: BacktestConfig,
    *,
    out: Path,
    live: bool = False,
    record: Path | None = None,
    stop_after_bars: int | None = None,
    status: Callable[[str], None] | None = None,
    log_level: str = "WARNING",
) -> dict[str, Any]:
    """Run a paper (or confirmed live) session until Ctrl-C / SIGTERM or *stop_after_bars* live bar times.

    Returns a summary (decisions, orders, bars, final status line, positions, cash) and writes
    it to ``out/summary.json``. Raises BrokerError / ConfigError from the checks before
    anything starts, and BrokerError when a failure ends the session (a feed the data plan
    lacks, a warm-up that failed).
    """
    from nautilus_trader.config import ImportableStrategyConfig
    from nautilus_trader.live.node import TradingNode
    from nautilus_trader.trading.config import StrategyFactory

    from engine import catalog as cat
    from engine.adapters.alpaca.factories import (
        AlpacaLiveDataClientFactory,
        AlpacaLiveExecClientFactory,
    )
    from engine.ingest.readers import check_symbol
    from engine.runner import strategy_settings
    from engine.strategy_registry import STRATEGIES, strategy_params

    check_live(live)
    cfg = check_supported(cfg)
    for handler in logging.getLogger().handlers:  # propagated records meet only the handlers' filters
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())
    symbols = list(dict.fromkeys(check_symbol(s, "data.symbols") for s in _universe(cfg)))
    alpaca = AlpacaConfig(paper=not live, feed=cfg.paper.feed)
    pre = preflight(cfg, alpaca, symbols)
    say = status or (lambda line: log.info(line))
    say(f"Alpaca {'LIVE' if live else 'paper'} account {pre.account_number}: equity ${pre.equity:,.2f}, "
        f"buying power ${pre.buying_power:,.2f}; market {'open' if pre.market_open else 'closed, next open ' + pre.next_open}")

    started_ns = time.time_ns()
    trade_from = max(started_ns, _last_decided(out / "decisions.jsonl") + 1)
    spec = STRATEGIES[cfg.strategy.kind]
    settings = strategy_settings(cfg, symbols, trade_from, {}, strategy_params(cfg))
    settings.update(live=True, flatten_on_stop=cfg.paper.flatten_on_stop, close_at_end=False,
                    external_order_claims=[f"{s}.{cat.VENUE}" for s in symbols])
    if cfg.strategy.kind in ("signal", "ensemble") and cfg.paper.resume_features:
        settings["state_path"] = str(out / FEATURE_STATE_FILE)  # streaming features survive a restart
    strategy = StrategyFactory.create(
        ImportableStrategyConfig(strategy_path=spec.strategy_path, config_path=spec.config_path, config=settings)
    )
    files = SessionFiles(out, record)
    meta = {"started_ns": started_ns, "symbols": symbols, "live": live, "trade_from_ns": trade_from}
    files.open(cfg, meta)
    counts = {"decisions": 0, "orders": 0, "bars": 0, "live_times": 0}
    last_time = [-1]

    def on_bar(symbol: str, bar: Any, is_live: bool) -> None:
        counts["bars"] += 1
        files.write("bars", _bar_record(symbol, bar, is_live))

    def on_decision(rec: dict[str, Any]) -> None:
        counts["decisions"] += 1
        files.write("decisions", rec)
        log.info(_decision_text(rec))
        if rec["action"] != "hold":
            say(_decision_text(rec))
        if rec["ts"] != last_time[0]:
            last_time[0] = rec["ts"]
            counts["live_times"] += 1

    def on_order(rec: dict[str, Any]) -> None:
        counts["orders"] += 1
        files.write("orders", rec)

    from engine.overlays import LiveOverlaySeries, resolve_horizon

    extra = overlay_benchmark(cfg, symbols)
    series = LiveOverlaySeries(cfg, symbols, extra or cfg.benchmark.symbol,
                               resolve_horizon(cfg, getattr(strategy, "card_horizon", lambda: None)()))
    append = series.append_batch

    def on_batch(batch: tuple[int, dict[str, Any]]) -> None:
        append(batch)
        if extra and extra in batch[1]:  # the benchmark's bars are kept for the replay's regime filter
            o, h, lo, c, v = batch[1][extra]
            files.write("bars", {"symbol": extra, "ts": int(batch[0]), "open": o, "high": h, "low": lo,
                                 "close": c, "volume": v, "live": batch[0] >= trade_from, "extra": True})

    series.append_batch = on_batch  # type: ignore[method-assign]
    strategy.attach_series(series)  # type: ignore[attr-defined]
    strategy.bar_sink = on_bar  # type: ignore[attr-defined]
    strategy.decision_sink = on_decision  # type: ignore[attr-defined]
    strategy.order_sink = on_order  # type: ignore[attr-defined]

    node = TradingNode(_node_config(cfg, symbols, extra, alpaca, log_level))
    node.trader.add_strategy(strategy)
    # live news -> the sentiment column, for models trained with [sentiment] (None otherwise)
    news_hook = _live_news_hook(cfg, strategy, alpaca, files, say)
    node.add_data_client_factory(ALPACA, AlpacaLiveDataClientFactory)
    node.add_exec_client_factory(ALPACA, AlpacaLiveExecClientFactory)
    node.build()
    loop = node.get_event_loop()
    from engine.adapters.alpaca.data import FATAL_TOPIC

    fatal: list[str] = []
    node.kernel.msgbus.subscribe(topic=FATAL_TOPIC, handler=fatal.append)

    async def watch() -> None:
        next_status = time.monotonic() + cfg.paper.status_every_s
        while True:
            await asyncio.sleep(0.2)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + cfg.paper.status_every_s
                say(status_line(strategy))
            if fatal:
                say(f"stopping: {fatal[0]}")
                node.stop()
                return
            if stop_after_bars is not None and counts["live_times"] >= stop_after_bars:
                say(f"stopping after {counts['live_times']} live bar time(s) (--stop-after-bars)")
                await asyncio.sleep(0.5)  # let the last orders go out
                node.stop()
                return

    watcher = loop.create_task(watch())
    if news_hook is not None:
        news_hook(loop)
    try:
        node.run()
    finally:
        watcher.cancel()
        if not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(asyncio.gather(watcher, return_exceptions=True))
        final = status_line(strategy)
        try:
            node.dispose()
        finally:
            files.close()
    summary = {**counts, "status": final, "positions": dict(strategy.position), "cash": strategy.cash,
               "equity": strategy.equity(), "error": fatal[0] if fatal else None}
    _write_json(out / "summary.json", summary)
    if fatal:
        raise BrokerError(f"the paper session stopped: {fatal[0]}")
    say(f"session over: {counts['decisions']} decision(s), {counts['orders']} order(s); {final}")
    return summary


def _node_config(cfg: BacktestConfig, symbols: list[str], extra: str | None, alpaca: AlpacaConfig,
                 log_level: str) -> Any:
    """The TradingNode of a session: the Alpaca data and execution clients, reconciliation on."""
    from nautilus_trader.config import (
        LiveExecEngineConfig,
        LiveRiskEngineConfig,
        LoggingConfig,
        TradingNodeConfig,
    )

    paper = cfg.paper
    data_cfg = AlpacaDataClientConfig(
        symbols=tuple(symbols), extra_symbols=(extra,) if extra else (), bar=cfg.data.bar,
        fractional=cfg.portfolio.fractional, warmup_bars=paper.warmup_bars, flush_delay_s=paper.flush_delay_s,
        alpaca=alpaca,
    )
    exec_cfg = AlpacaExecClientConfig(
        symbols=tuple(symbols), fractional=cfg.portfolio.fractional, margin=cfg.portfolio.account == "margin",
        max_order_notional=paper.max_order_notional, max_position_notional=paper.max_position_notional,
        daily_loss_limit=paper.daily_loss_limit, alpaca=alpaca,
    )
    return TradingNodeConfig(
        trader_id="SIGTRADE-001",
        logging=LoggingConfig(log_level=log_level, log_colors=False),
        risk_engine=LiveRiskEngineConfig(bypass=True),  # sigtrade sizes orders itself; limits are the client's
        exec_engine=LiveExecEngineConfig(reconciliation=True, reconciliation_lookback_mins=7 * 24 * 60),
        data_clients={ALPACA: data_cfg},
        exec_clients={ALPACA: exec_cfg},
        timeout_connection=30.0, timeout_reconciliation=15.0, timeout_portfolio=10.0,
        timeout_disconnection=5.0, timeout_post_stop=2.0,
    )


def _live_news_hook(cfg: BacktestConfig, strategy: Any, alpaca: AlpacaConfig, files: SessionFiles,
                    say: Callable[[str], None]) -> Callable[[Any], None] | None:
    """A callable that starts the live news feed on the node's loop, or None when the model uses no sentiment."""
    from engine.adapters.alpaca.news_stream import live_news_hook

    return live_news_hook(cfg, strategy, alpaca, files, say)


def _last_decided(path: Path) -> int:
    """Close time (ns) of the last bar a previous session in the same --out decided (-1 if none).

    A restarted session treats bars up to it as warm-up, so no bar is decided twice.
    """
    if not path.exists():
        return -1
    last = -1
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            last = max(last, int(json.loads(line)["ts"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    return last


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _universe(cfg: BacktestConfig) -> list[str]:
    symbols = cfg.data.symbols
    if isinstance(symbols, str):
        if symbols.strip().lower() == "all":
            raise ConfigError(
                'data.symbols = "all" names a catalog\'s symbols; paper trading needs the list, '
                'e.g. data.symbols = ["SPY", "AAPL"]'
            )
        symbols = [s for s in symbols.split(",") if s.strip()]
    return [s.strip().upper() for s in symbols]
