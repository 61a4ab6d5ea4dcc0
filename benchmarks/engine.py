"""Benchmark: sigtrade's backtest against a raw NautilusTrader run over the same bars.

For two universes - the 30-symbol real hourly universe in ``../shared/data`` and a
143-symbol x ~3,500-bar synthetic one - it measures, in one process run:

* ``raw no-op``     : a bare ``BacktestEngine`` with bars only and a strategy that does
                      nothing (data prepared beforehand; only ``engine.run`` is timed);
* ``raw same orders``: a bare engine running sigtrade's SMA-cross strategy on the same
                      prepared bars and execution quotes (same orders; ``engine.run`` only);
* ``sigtrade``      : ``run_backtest`` end to end - config, catalog reads, stream
                      building, the event loop, the benchmark run, books, metrics.

and prints bars/s for each and the ratio sigtrade / raw-same-orders (the overhead of
everything sigtrade adds). Usage: ``python benchmarks/engine.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig  # noqa: E402
from nautilus_trader.config import ImportableStrategyConfig, LoggingConfig, StrategyConfig  # noqa: E402
from nautilus_trader.model.identifiers import TraderId  # noqa: E402
from nautilus_trader.trading.config import StrategyFactory  # noqa: E402
from nautilus_trader.trading.strategy import Strategy  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from engine import catalog as cat  # noqa: E402
from engine import runner  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.sample import SampleSpec, generate_sample  # noqa: E402

REAL = Path(os.environ.get("SIGTRADE_REAL_DATA", ROOT.parent / "shared" / "data"))


class NoopConfig(StrategyConfig, frozen=True):
    bar_types: list[str]


class Noop(Strategy):
    """Subscribes to every bar type and does nothing."""

    def __init__(self, config: NoopConfig) -> None:
        super().__init__(config)
        self.n = 0

    def on_start(self) -> None:
        from nautilus_trader.model.data import BarType

        for bt in self.config.bar_types:
            self.subscribe_bars(BarType.from_str(bt))

    def on_bar(self, bar: Any) -> None:
        self.n += 1


def _engine(cfg: Any, instruments: dict[str, Any]) -> BacktestEngine:
    eng = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="ERROR", bypass_logging=True)))
    runner._allow_cash_borrowing()
    eng.add_venue(**runner._venue_kwargs(cfg))
    for inst in instruments.values():
        eng.add_instrument(inst)
    return eng


def raw_noop(cfg: Any, full: dict[str, Any]) -> tuple[float, int]:
    instruments = {s: cat.make_instrument(s) for s in full}
    bars: list[Any] = []
    for s, f in full.items():
        bars.extend(cat.frame_to_bars(f, s, cfg.data.bar, instruments[s]))
    bars.sort(key=lambda b: b.ts_init)
    eng = _engine(cfg, instruments)
    eng.add_strategy(Noop(NoopConfig(bar_types=[str(cat.bar_type(s, cfg.data.bar)) for s in full])))
    eng.add_data(bars)
    t = time.perf_counter()
    eng.run()
    dt = time.perf_counter() - t
    eng.dispose()
    return dt, len(bars)


def raw_same_orders(cfg: Any, window: dict[str, Any], full: dict[str, Any]) -> tuple[float, int]:
    data, quotes, instruments = runner.build_stream(cfg, full)
    eng = _engine(cfg, instruments)
    spec = runner.STRATEGIES["sma_cross"]
    last = {s: int(f.index.asi8[-2]) for s, f in window.items()}
    conf = {
        "symbols": list(window), "bar": cfg.data.bar, "capital": cfg.portfolio.capital,
        "position_size": cfg.portfolio.position_size, "max_positions": cfg.portfolio.max_positions,
        "cost_rate": 0.0015, "trade_from_ns": min(int(f.index.asi8[0]) for f in window.values()),
        "last_decision_ns": last, "fast": cfg.strategy.fast, "slow": cfg.strategy.slow,
    }
    eng.add_strategy(StrategyFactory.create(ImportableStrategyConfig(strategy_path=spec.strategy_path, config_path=spec.config_path, config=conf)))
    eng.add_data(data)
    t = time.perf_counter()
    eng.run()
    dt = time.perf_counter() - t
    n_fills = sum(1 for o in eng.cache.orders() if o.is_closed)
    eng.dispose()
    return dt, n_fills


def measure(name: str, catalog: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = load_config(None, [f'data.catalog="{catalog}"', 'strategy.kind="sma_cross"', *overrides])
    symbols = cat.resolve_symbols(catalog, cfg.data.bar, cfg.data.symbols)
    window, full, _ = runner.load_window(catalog, symbols, cfg.data.bar, cfg.data.start, cfg.data.end, cfg.strategy.slow)
    n_bars = sum(len(f) for f in full.values())
    t_noop, _ = raw_noop(cfg, full)
    t_raw, orders = raw_same_orders(cfg, window, full)
    t = time.perf_counter()
    res = runner.run_backtest(cfg)
    t_sig = time.perf_counter() - t
    return {
        "universe": name, "symbols": len(symbols), "bars": n_bars, "orders": orders,
        "fills": len(res.strategy.fills), "noop": t_noop, "raw": t_raw, "sig": t_sig, "timings": res.timings,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller synthetic universe (24 symbols)")
    args = ap.parse_args()
    console = Console(width=170)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hourly = REAL / "equities" / "hourly" / "market-base"
        if hourly.is_dir():
            from engine.ingest.pipeline import ingest_files

            real = Path(tmp) / "real"
            ingest_files(sorted(hourly.glob("*.csv")), real, bar="1-HOUR", repair=True)
            rows.append(measure("real hourly (market-base)", real, ["data.start=2023-10-02", "data.end=2025-10-01"]))
        else:
            console.print(f"[yellow]real data not found at {REAL}; skipping the real universe[/]")
        n = 24 if args.quick else 143
        spec = SampleSpec(n_symbols=n, start="2023-01-03", end="2024-12-31")
        synth = Path(tmp) / "synth"
        cat.write_bars(synth, generate_sample(spec), spec.bar, synthetic=True)
        rows.append(measure(f"synthetic {n} symbols", synth, []))
    table = Table(title="sigtrade backtest vs raw NautilusTrader 1.221 (same process, same bars)")
    for col in ["universe", "symbols", "bars", "fills", "raw no-op bars/s", "raw same-orders bars/s", "sigtrade bars/s", "sigtrade / raw same orders"]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["universe"], str(r["symbols"]), f"{r['bars']:,}", f"{r['fills']:,}",
            f"{r['bars'] / r['noop']:,.0f}", f"{r['bars'] / r['raw']:,.0f}", f"{r['bars'] / r['sig']:,.0f}",
            f"{r['sig'] / r['raw']:.2f}x",
        )
    console.print(table)
    for r in rows:
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in r["timings"].items())
        console.print(f"{r['universe']}: sigtrade phases: {parts}; raw same-orders run {r['raw']:.2f} s, raw no-op {r['noop']:.2f} s")
    console.print("Goal: sigtrade / raw same orders <= 1.5x.")


if __name__ == "__main__":
    main()
