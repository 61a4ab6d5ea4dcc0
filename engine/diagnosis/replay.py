"""The run's decisions re-simulated on the fast path, so that costs and slots can be varied.

How each strategy kind is replayed:

``signal`` / ``ensemble``
    the signal kernel (:mod:`engine.sim.kernels_nb`) on the model's batch probabilities -
    the kernel every sweep runs, bit-identical to the event engine;
``sma_cross``
    the same kernel on the SMA cross's own signal (:func:`engine.diagnosis.kernels_nb.sma_signal_nb`:
    1 where the fast SMA is above the slow one) with entry and exit thresholds of 0.5; not
    with stops, the time stop or the breakers (the strategy does not update its averages on
    the bars those exit on, so its signal depends on the simulation);
``buy_and_hold``
    the buy-and-hold kernel (:mod:`engine.diagnosis.holdings`); the risk overlays it does not
    replay (regime filters, stops, time stop, breakers, the cost filter, ATR sizing) make it
    not apply.

A replay is used only when it *reproduces the run it explains*: at the configured costs
its fills (time, symbol, side, quantity, price, commission, exit reason) and its equity
curve must equal the run's exactly. Otherwise every section built on it says so and
shows nothing (:attr:`Replay.reproduced`, :attr:`Replay.detail`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec
import numpy as np
import pandas as pd

from engine import catalog as cat
from engine.config import BacktestConfig
from engine.diagnosis import holdings
from engine.diagnosis import kernels_nb as KD
from engine.diagnosis.context import SIGNAL_KINDS, Context
from engine.ledger import mark_to_market
from engine.regime import enabled as regime_enabled
from engine.sim.fastpath import FastPath, run_identical

log = logging.getLogger(__name__)


def sma_probabilities(cfg: BacktestConfig, full: dict[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """The SMA cross's 0/1 signal per bar of each event frame (the bar closes as NautilusTrader prices)."""
    out = {}
    for s, frame in full.items():
        precision = cat.make_instrument(s, cfg.portfolio.fractional).price_precision
        close = cat.price_values(frame["close"].to_numpy(dtype=np.float64), precision)
        out[s] = pd.Series(KD.sma_signal_nb(close, cfg.strategy.fast, cfg.strategy.slow), index=frame.index)
    return out


def _buy_and_hold_gaps(cfg: BacktestConfig) -> list[str]:
    """Overlays the buy-and-hold replay does not simulate, set in *cfg*."""
    r, out = cfg.risk, []
    if regime_enabled(cfg.regime):
        out.append("[regime] filters")
    for name in ("stop_loss", "take_profit", "trailing_stop", "drawdown_limit", "daily_loss_limit"):
        if getattr(r, name) > 0:
            out.append(f"risk.{name}")
    if cfg.strategy.max_hold_bars:
        out.append("strategy.max_hold_bars")
    if r.cost_filter:
        out.append("risk.cost_filter")
    if r.sizing != "fixed":
        out.append("risk.sizing")
    return out


@dataclass
class Replay:
    """The fast-path replay of one run and whether it reproduces the run."""

    kind: str
    """``signal`` (the signal kernel) or ``buy_and_hold`` (the buy-and-hold kernel)."""
    fast: FastPath
    reproduced: bool = False
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def figures(self, cfgs: list[BacktestConfig]) -> pd.DataFrame:
        """The sweep table's figures of each configuration (costs may differ; the universe may not)."""
        if self.kind == "signal":
            return self.fast.metrics(self.fast.run_batch(cfgs))
        all_members = np.arange(len(self.fast.symbols), dtype=np.int64)[None, :]
        rows = [holdings.hold_stats(self.fast, all_members, c, c.risk.max_gross_exposure, keep=False) for c in cfgs]
        return self.fast.metrics(np.concatenate(rows))

    def trace(self, cfg: BacktestConfig) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
        """Fills, equity and exposure of one configuration."""
        if self.kind == "signal":
            fills, equity, _ = self.fast.trace_fills(cfg)
            _, exposure = mark_to_market(fills, self.fast.window, self.fast.window_index, self.fast.capital)
            return fills, equity, exposure
        h = holdings.hold(self.fast, None, cfg, cfg.risk.max_gross_exposure)
        return h.fills, h.equity, h.exposure


FAST_BOOKS = "fast path (the sweep kernel; bit-identical to the event engine)"
"""``Context.source`` of a run whose books the fast path itself wrote (a sweep configuration)."""


def build_fastpath(ctx: Context) -> tuple[FastPath, str] | tuple[None, str]:
    """The universe prepared for the kernels, with the strategy's signal; (None, why) when there is none."""
    cfg, inp = ctx.cfg, ctx.inputs
    if ctx.kind in SIGNAL_KINDS:
        if ctx.signal is None:
            return None, "no model probabilities"
        probs = ctx.signal.probabilities
        horizon, threshold = ctx.signal.label_horizon, ctx.signal.card_threshold
    elif ctx.kind == "sma_cross":
        probs, horizon, threshold = sma_probabilities(cfg, inp.full), None, 0.5
    else:
        probs = {s: pd.Series(0.0, index=f.index) for s, f in inp.full.items()}
        horizon, threshold = None, 0.5
    fast = FastPath(cfg, inp.window, inp.full, inp.history, probs, inp.bench_history, horizon, threshold)
    return fast, ""


def build_replay(ctx: Context, fast: FastPath | None = None) -> Replay | None:
    """Prepare the replay of *ctx*'s run and check that it reproduces the run; None when none can be built."""
    if fast is None:
        built, why = build_fastpath(ctx)
        if built is None:
            log.info("no fast-path replay: %s", why)
            return None
        fast = built
    cfg = ctx.cfg
    if ctx.kind == "buy_and_hold":
        rep = Replay("buy_and_hold", fast)
        gaps = _buy_and_hold_gaps(cfg)
        if gaps:
            rep.detail = f"the buy-and-hold replay does not simulate {', '.join(gaps)}"
            return rep
    else:
        rep = Replay("signal", fast)
    if ctx.source == FAST_BOOKS:  # the run is this replay's own trace: comparing it with itself proves nothing
        rep.reproduced = True
        rep.detail = "the run's books are the fast path's own (a sweep configuration), so the replay is the run"
        return rep
    fills, equity, _ = rep.trace(cfg)
    run = ctx.run
    rep.reproduced = run_identical(fills, equity, run.fills, run.equity)
    if rep.reproduced:
        rep.detail = (
            f"the fast path reproduces the run exactly at the configured costs ({len(fills):,} fills, "
            f"final equity {float(equity.iloc[-1]):,.2f})"
        )
    else:
        rep.detail = (
            f"the fast path does not reproduce this run ({len(fills):,} fills vs {len(run.fills):,}, final equity "
            f"{float(equity.iloc[-1]) if len(equity) else float('nan'):,.2f} vs "
            f"{float(run.equity.iloc[-1]) if len(run.equity) else float('nan'):,.2f})"
        )
        log.warning("diagnosis: %s; the sections that vary costs or slots are left out", rep.detail)
    return rep


def with_costs(cfg: BacktestConfig, bps_per_side: float, commission_share: float) -> BacktestConfig:
    """*cfg* with commission + slippage = *bps_per_side* split as *commission_share* : rest."""
    commission = bps_per_side * commission_share
    return msgspec.structs.replace(
        cfg, costs=msgspec.structs.replace(cfg.costs, commission_bps=commission, slippage_bps=bps_per_side - commission)
    )


def one_slot_config(cfg: BacktestConfig, n_symbols: int) -> BacktestConfig:
    """Control (d): a slot for every symbol, the run's most gross spread over them.

    ``max_positions = n_symbols`` and ``position_size = position_size x max_positions /
    n_symbols`` (capped at 1): no signal waits for a free slot, and at most the same share
    of equity is invested as in the run.
    """
    p = cfg.portfolio
    size = min(1.0, p.position_size * p.max_positions / n_symbols)
    return msgspec.structs.replace(cfg, portfolio=msgspec.structs.replace(p, max_positions=n_symbols, position_size=size))
