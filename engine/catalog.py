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
import pyarrow as pa
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
from engine.outputs import atomic_write_text

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


def price_values(values: np.ndarray, precision: int = PRICE_PRECISION) -> np.ndarray:
    """``Price(x, precision).as_double()`` for every *x*, in numpy (no NautilusTrader objects).

    NautilusTrader rounds ``x * 10**precision`` half away from zero and stores the integer
    on its fixed-point scale (1e16); reading it back divides by that scale. The same
    operations here give the same float64 values bit for bit (tests/engine/test_fastpath_prices.py
    checks millions of real bar and quote prices against the wrangler's).
    """
    x = np.asarray(values, dtype=np.float64)
    v = x * float(10**precision)
    r = np.trunc(v)
    r = np.where(np.abs(v - r) >= 0.5, r + np.sign(v), r)
    out: np.ndarray = (r * float(10 ** (16 - precision))) / 1e16
    return out


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{p}: unreadable catalog index ({exc}); delete it and re-ingest") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("symbols", {}), dict):
        raise DataError(f"{p}: not a sigtrade catalog index (expected a JSON object with 'symbols'); "
                        "delete it and re-ingest")
    return CatalogIndex(
        synthetic=bool(raw.get("synthetic", False)),
        symbols=dict(raw.get("symbols", {})),
        note=str(raw.get("note", "")),
    )


def write_index(path: str | Path, index: CatalogIndex) -> None:
    """Write ``sigtrade.json`` atomically."""
    payload = {"synthetic": index.synthetic, "note": index.note, "symbols": index.symbols}
    atomic_write_text(Path(path) / INDEX_FILE, json.dumps(payload, indent=2, sort_keys=True))


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


_FIXED = pa.binary(16)
_SCHEMA = {**{c: _FIXED for c in BAR_COLUMNS}, "ts_event": pa.uint64()}
"""What every bar file must hold (NautilusTrader 1.221's high-precision bar schema)."""


def rebuild_hint(path: str | Path, symbol: str, bar: str) -> str:
    """The command that rebuilds *symbol*'s bars in the catalog at *path*, as exact as the index allows."""
    root = Path(path)
    try:
        index = read_index(root)
    except DataError:
        index = CatalogIndex()
    source = str(index.symbols.get(symbol, {}).get("source", ""))
    if index.synthetic or source.startswith("synthetic"):
        return f"`sigtrade sample --catalog {root} --force` (with the options it was made with)"
    if source.startswith("alpaca:"):
        _, feed, adjustment = ([*source.split(":"), "", ""])[:3]
        return (f"`sigtrade ingest alpaca --symbols {symbol} --bar {bar} --feed {feed} --adjustment {adjustment} "
                f"--start ... --catalog {root}`")
    if source:
        return f"`sigtrade ingest csv {source} --catalog {root} --bar {bar}`"
    return f"`sigtrade ingest csv <{symbol}'s file> --catalog {root} --bar {bar}`"


def _damaged(file: Path, what: str, path: str | Path, symbol: str, bar: str) -> DataError:
    return DataError(
        f"{file}: {what}; the catalog '{path}' is damaged for {symbol} ({bar} bars). "
        f"Rebuild it: {rebuild_hint(path, symbol, bar)}"
    )


def _read_bar_file(f: Path, path: str | Path, symbol: str, bar: str) -> pd.DataFrame:
    try:
        table = pq.read_table(f)
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _damaged(f, f"not a readable Parquet file ({reason})", path, symbol, bar) from None
    fields = {fld.name: fld.type for fld in table.schema}
    wrong = [f"{c} ({fields.get(c, 'missing')})" for c, t in _SCHEMA.items() if fields.get(c) != t]
    if wrong:
        raise _damaged(
            f, "wrong schema: expected NautilusTrader bar columns open, high, low, close, volume "
            f"(16-byte fixed point) and ts_event (uint64), found {', '.join(wrong)}", path, symbol, bar,
        )
    if table.num_rows == 0:
        raise _damaged(f, "holds no bars", path, symbol, bar)
    if any(table.column(c).null_count for c in _SCHEMA):
        raise _damaged(f, "holds null values", path, symbol, bar)
    cols = {name: _decode_fixed(table.column(name).combine_chunks()) for name in BAR_COLUMNS}
    prices = np.column_stack([cols[c] for c in BAR_COLUMNS[:4]])
    if not np.isfinite(prices).all() or (prices <= 0).any() or not np.isfinite(cols["volume"]).all() \
            or (cols["volume"] < 0).any():
        raise _damaged(f, "holds non-finite or non-positive prices or negative volumes", path, symbol, bar)
    ts = table.column("ts_event").to_numpy().astype("int64")
    return pd.DataFrame(cols, index=pd.to_datetime(ts, utc=True))


def read_frame(path: str | Path, symbol: str, bar: str) -> pd.DataFrame:
    """Read every bar of *symbol* from the catalog as a bar frame.

    Raises
    ------
    DataError
        The symbol's bar directory is empty, or a file in it is truncated, not Parquet,
        of another schema or holds impossible values: the message names the file and the
        command that rebuilds it.
    """
    d = Path(path) / _bar_dir(symbol, bar)
    files = sorted(d.glob("*.parquet"))
    if not files:
        if d.is_dir():
            raise DataError(
                f"catalog '{path}': the directory of {symbol}'s {bar} bars ({d}) holds no Parquet file "
                f"(deleted?); rebuild it: {rebuild_hint(path, symbol, bar)}"
            )
        raise DataError(f"catalog '{path}' has no {bar} bars for {symbol}")
    parts = [_read_bar_file(f, path, symbol, bar) for f in files]
    frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    frame.index.name = "ts_event"
    return frame


def check_catalog(path: str | Path, bar: str) -> list[str]:
    """The symbols with *bar* bars in the catalog at *path*; DataError that tells the cases apart.

    A missing path, a file where a directory is expected, an empty directory, a directory
    that is not a catalog and a catalog without bars of this size each get their own
    message and remedy.
    """
    root = Path(path)
    make = (f"run `sigtrade sample --catalog {root}` for the synthetic sample, or "
            f"`sigtrade ingest csv FILES --catalog {root}`")
    if root.is_file():
        raise DataError(f"catalog '{root}' is a file, not a catalog directory: point data.catalog at the "
                        f"directory `sigtrade ingest` wrote, or move the file away and {make}")
    if not root.is_dir():
        raise DataError(f"catalog '{root}' does not exist: {make}")
    if not any(root.iterdir()):
        raise DataError(f"catalog '{root}' is an empty directory: {make}")
    read_index(root)  # a damaged index is named here
    have = list_symbols(root, bar)
    if not have:
        bars_dir = root / "data" / "bar"
        if not bars_dir.is_dir():
            raise DataError(
                f"'{root}' is not a sigtrade catalog (no data/bar directory): point data.catalog at a "
                f"catalog, or {make}"
            )
        other = sorted({d.name.removesuffix("-LAST-EXTERNAL").split(f".{VENUE}-", 1)[-1]
                        for d in bars_dir.iterdir() if d.name.endswith("-LAST-EXTERNAL")})
        has = f" (it has {', '.join(other)} bars)" if other else ""
        raise DataError(
            f"catalog '{root}' has no {bar} bars{has}: set data.bar to one it has, or ingest some with "
            f"`sigtrade ingest csv ... --catalog {root} --bar {bar}`"
        )
    return have


def resolve_symbols(path: str | Path, bar: str, wanted: Iterable[str] | str) -> list[str]:
    """Check that every wanted symbol exists (``"all"`` = every symbol) and return the list."""
    root = Path(path)
    have = check_catalog(root, bar)
    index = read_index(root)
    if isinstance(wanted, str):
        if wanted != "all":
            wanted = [wanted]
        else:
            return have
    out = []
    for s in wanted:
        if s not in have:
            if s in index.symbols and index.symbols[s].get("bar") == bar:
                raise DataError(
                    f"catalog '{root}': its index lists {s} ({bar} bars) but the bars are missing "
                    f"(deleted?); rebuild them: {rebuild_hint(root, s, bar)}"
                )
            raise DataError(
                f"symbol '{s}' is not in catalog '{root}' ({bar} bars){did_you_mean(s, have)}; "
                f"it has: {', '.join(have[:40])}{' ...' if len(have) > 40 else ''}"
            )
        out.append(s)
    return out
