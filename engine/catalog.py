"""Catalog I/O: the one place that knows how sigtrade lays bars out on disk.

A catalog is a NautilusTrader ``ParquetDataCatalog`` directory plus a small
``sigtrade.json`` index (symbols, sources, whether the data is synthetic). Inside
sigtrade a symbol's bars travel as a *bar frame*: a pandas DataFrame indexed by the bar's
close time (UTC, ``ts_event`` in NautilusTrader terms) with float columns
``open, high, low, close, volume``. Writes are atomic: everything is written under a
temporary directory first and moved into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import AssetClass
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Commodity, Equity, Instrument
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.wranglers import BarDataWrangler

from engine.errors import DataError, did_you_mean

VENUE = Venue("XNYS")
"""The simulated venue every catalog instrument trades on."""
PRICE_PRECISION = 6
"""Decimals kept for prices: enough for vendor floats and for exact bps slippage."""
FRACTIONAL_SIZE_PRECISION = 6
"""Decimals of a fractional share quantity (Alpaca allows 1e-9; 6 is plenty)."""
INDEX_FILE = "sigtrade.json"
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
_FIXED_SCALAR = 10.0**16  # NautilusTrader high-precision fixed-point scale (128-bit raw values)


@dataclass(frozen=True)
class CatalogIndex:
    """What sigtrade knows about a catalog: its symbols and where they came from."""

    synthetic: bool = False
    symbols: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""


def instrument_id(symbol: str) -> InstrumentId:
    """Return the NautilusTrader instrument id of *symbol* on the simulated venue."""
    return InstrumentId(Symbol(symbol), VENUE)


def bar_type(symbol: str, bar: str) -> BarType:
    """Return the bar type of *symbol* for a bar spec such as ``1-HOUR``."""
    return BarType.from_str(f"{symbol}.{VENUE}-{bar}-LAST-EXTERNAL")


def make_instrument(symbol: str, fractional: bool = False) -> Instrument:
    """Build the instrument for *symbol*: whole-share ``Equity`` or a fractional equity.

    NautilusTrader 1.221's ``Equity`` only holds whole shares; a ``Commodity`` with
    ``asset_class=EQUITY`` and 6 size decimals fills fractional orders (DESIGN.md).
    """
    iid = instrument_id(symbol)
    increment = Price(10.0**-PRICE_PRECISION, PRICE_PRECISION)
    if not fractional:
        return Equity(
            instrument_id=iid,
            raw_symbol=Symbol(symbol),
            currency=USD,
            price_precision=PRICE_PRECISION,
            price_increment=increment,
            lot_size=Quantity.from_int(1),
            ts_event=0,
            ts_init=0,
        )
    size_inc = Quantity(10.0**-FRACTIONAL_SIZE_PRECISION, FRACTIONAL_SIZE_PRECISION)
    return Commodity(
        instrument_id=iid,
        raw_symbol=Symbol(symbol),
        asset_class=AssetClass.EQUITY,
        quote_currency=USD,
        price_precision=PRICE_PRECISION,
        size_precision=FRACTIONAL_SIZE_PRECISION,
        price_increment=increment,
        size_increment=size_inc,
        ts_event=0,
        ts_init=0,
    )


def frame_to_bars(frame: pd.DataFrame, symbol: str, bar: str, instrument: Instrument) -> list[Any]:
    """Convert a bar frame to NautilusTrader ``Bar`` objects priced for *instrument*."""
    wrangler = BarDataWrangler(bar_type(symbol, bar), instrument)
    df = frame.loc[:, list(BAR_COLUMNS)]
    return list(wrangler.process(df))


def read_index(path: str | Path) -> CatalogIndex:
    """Read a catalog's ``sigtrade.json`` (an empty index when the file is absent)."""
    p = Path(path) / INDEX_FILE
    if not p.is_file():
        return CatalogIndex()
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{p}: unreadable catalog index ({exc}); delete it and re-ingest") from exc
    return CatalogIndex(
        synthetic=bool(raw.get("synthetic", False)),
        symbols=dict(raw.get("symbols", {})),
        note=str(raw.get("note", "")),
    )


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_index(path: str | Path, index: CatalogIndex) -> None:
    """Write ``sigtrade.json`` atomically."""
    payload = {"synthetic": index.synthetic, "note": index.note, "symbols": index.symbols}
    _atomic_write_text(Path(path) / INDEX_FILE, json.dumps(payload, indent=2, sort_keys=True))


def _bar_dir(symbol: str, bar: str) -> str:
    return os.path.join("data", "bar", str(bar_type(symbol, bar)))


def write_bars(
    path: str | Path,
    frames: dict[str, pd.DataFrame],
    bar: str,
    *,
    sources: dict[str, str] | None = None,
    synthetic: bool = False,
    note: str = "",
) -> None:
    """Write (or replace) the bars of several symbols into the catalog at *path*, atomically.

    The new data is written into a temporary catalog beside *path*; only when every
    symbol has been written are the per-symbol directories swapped into place and the
    index updated. A failure before that leaves *path* exactly as it was.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    index = read_index(root)
    if index.symbols and index.synthetic != synthetic:
        kind = "synthetic" if index.synthetic else "real"
        raise DataError(
            f"catalog '{root}' holds {kind} data; do not mix synthetic and real bars in one "
            "catalog: choose another --catalog directory"
        )
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        cat = ParquetDataCatalog(str(staging))
        for symbol, frame in frames.items():
            _check_frame(frame, symbol)
            inst = make_instrument(symbol)
            cat.write_data([inst])
            cat.write_data(frame_to_bars(frame, symbol, bar, inst))
        # swap per-symbol directories into place
        for symbol in frames:
            for rel in (_bar_dir(symbol, bar), os.path.join("data", "equity", str(instrument_id(symbol)))):
                src, dst = staging / rel, root / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                old = None
                if dst.exists():
                    old = dst.with_name(f".old-{dst.name}")
                    shutil.rmtree(old, ignore_errors=True)
                    os.replace(dst, old)
                os.replace(src, dst)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        symbols = dict(index.symbols)
        for symbol, frame in frames.items():
            symbols[symbol] = {
                "bar": bar,
                "rows": len(frame),
                "first": frame.index[0].isoformat(),
                "last": frame.index[-1].isoformat(),
                "source": (sources or {}).get(symbol, ""),
            }
        write_index(root, CatalogIndex(synthetic=synthetic, symbols=symbols, note=note or index.note))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_frame(frame: pd.DataFrame, symbol: str) -> None:
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"bars for {symbol} lack columns {missing}")
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise DataError(f"bars for {symbol} need a UTC DatetimeIndex of bar close times")
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        raise DataError(f"bars for {symbol} are not strictly increasing in time")


def list_symbols(path: str | Path, bar: str) -> list[str]:
    """Return the symbols that have *bar* bars in the catalog, sorted."""
    root = Path(path) / "data" / "bar"
    suffix = f".{VENUE}-{bar}-LAST-EXTERNAL"
    if not root.is_dir():
        return []
    return sorted(d.name[: -len(suffix)] for d in root.iterdir() if d.name.endswith(suffix))


def _decode_fixed(column: Any) -> np.ndarray:
    """Decode NautilusTrader 128-bit fixed-point values (16-byte binary) to float64."""
    raw = np.frombuffer(column.buffers()[1], dtype="<i8", count=2 * len(column), offset=column.offset * 16)
    lo = raw[0::2].view("<u8").astype(np.float64)
    hi = raw[1::2].astype(np.float64)
    return (hi * 18446744073709551616.0 + lo) / _FIXED_SCALAR


def read_frame(path: str | Path, symbol: str, bar: str) -> pd.DataFrame:
    """Read every bar of *symbol* from the catalog as a bar frame."""
    d = Path(path) / _bar_dir(symbol, bar)
    files = sorted(d.glob("*.parquet"))
    if not files:
        raise DataError(f"catalog '{path}' has no {bar} bars for {symbol}")
    parts = []
    for f in files:
        table = pq.read_table(f)
        cols = {name: _decode_fixed(table.column(name).combine_chunks()) for name in BAR_COLUMNS}
        ts = table.column("ts_event").to_numpy().astype("int64")
        parts.append(pd.DataFrame(cols, index=pd.to_datetime(ts, utc=True)))
    frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    frame.index.name = "ts_event"
    return frame


def resolve_symbols(path: str | Path, bar: str, wanted: Iterable[str] | str) -> list[str]:
    """Check that every wanted symbol exists (``"all"`` = every symbol) and return the list."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(
            f"catalog '{root}' does not exist: run `sigtrade sample --catalog {root}` for the "
            f"synthetic sample, or `sigtrade ingest csv FILES --catalog {root}`"
        )
    have = list_symbols(root, bar)
    if not have:
        raise DataError(
            f"catalog '{root}' has no {bar} bars: ingest some with `sigtrade ingest csv ... "
            f"--catalog {root} --bar {bar}`"
        )
    if isinstance(wanted, str):
        if wanted != "all":
            wanted = [wanted]
        else:
            return have
    out = []
    for s in wanted:
        if s not in have:
            raise DataError(
                f"symbol '{s}' is not in catalog '{root}' ({bar} bars){did_you_mean(s, have)}; "
                f"it has: {', '.join(have[:40])}{' ...' if len(have) > 40 else ''}"
            )
        out.append(s)
    return out
