"""Ingest OHLCV bars from files into a sigtrade catalog.

Three steps, one module each: :mod:`engine.ingest.readers` turns a CSV or Parquet file
into a normalised frame of vendor bars (UTC start times), :mod:`engine.ingest.validate`
lists every problem with file, row and value and computes the repaired bar frame
(indexed by close time), and :mod:`engine.ingest.pipeline` runs both over many files and
writes the result with one atomic :func:`engine.catalog.write_bars` call.
"""

from engine.ingest.pipeline import FileReport, IngestRefused, IngestReport, ingest_files
from engine.ingest.readers import RawBars, read_bars_file, symbol_from_path
from engine.ingest.validate import Problem, Validation, validate

__all__ = [
    "FileReport",
    "IngestRefused",
    "IngestReport",
    "Problem",
    "RawBars",
    "Validation",
    "ingest_files",
    "read_bars_file",
    "symbol_from_path",
    "validate",
]
