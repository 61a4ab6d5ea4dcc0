"""A damaged catalog stops every command that reads it with the file, the fault and the fix.

A small catalog of real hourly bars is damaged the ways disks and people damage files:
a Parquet file truncated, overwritten with garbage, replaced by one of another schema,
deleted; the index overwritten; the whole catalog an empty directory, or a file. Then
``backtest``, ``sweep`` and ``train`` run on it. Each must exit 3 (data error) with one
line naming the path, what is wrong, and the command that rebuilds it - and write nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_run import run_cli, tree

ROOT = Path(__file__).resolve().parents[2]


def _bar_file(catalog: Path, symbol: str = "AAPL") -> Path:
    return sorted((catalog / "data" / "bar").glob(f"{symbol}.XNYS-1-HOUR-LAST-EXTERNAL/*.parquet"))[0]


def _truncate(c: Path) -> None:
    f = _bar_file(c)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _garbage(c: Path) -> None:
    f = _bar_file(c)
    f.write_bytes(os.urandom(f.stat().st_size))


def _wrong_schema(c: Path) -> None:
    pd.DataFrame({"open": [1.0, 2.0], "close": [1.0, 2.0]}).to_parquet(_bar_file(c))


def _deleted(c: Path) -> None:
    _bar_file(c).unlink()


def _symbol_dir_deleted(c: Path) -> None:
    shutil.rmtree(_bar_file(c).parent)


def _index_garbage(c: Path) -> None:
    (c / "sigtrade.json").write_text("{not json")


def _empty_dir(c: Path) -> None:
    shutil.rmtree(c)
    c.mkdir()


def _a_file(c: Path) -> None:
    shutil.rmtree(c)
    c.write_text("not a catalog")


DAMAGE: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "truncated": (_truncate, ["AAPL.XNYS-1-HOUR-LAST-EXTERNAL", "not a readable Parquet file", "sigtrade ingest csv"]),
    "garbage": (_garbage, ["not a readable Parquet file", "damaged for AAPL", "Rebuild it: `sigtrade ingest csv"]),
    "wrong schema": (_wrong_schema, ["wrong schema", "high (missing)", "Rebuild it"]),
    "file deleted": (_deleted, ["holds no Parquet file (deleted?)", "sigtrade ingest csv"]),
    "symbol deleted": (_symbol_dir_deleted, ["its index lists AAPL (1-HOUR bars) but the bars are missing"]),
    "index garbage": (_index_garbage, ["sigtrade.json: unreadable catalog index", "re-ingest"]),
    "empty directory": (_empty_dir, ["is an empty directory", "sigtrade ingest csv FILES --catalog"]),
    "a file": (_a_file, ["is a file, not a catalog directory"]),
}


@pytest.fixture(scope="module")
def real_catalog(hourly_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.ingest.pipeline import ingest_files

    root = tmp_path_factory.mktemp("damage") / "catalog"
    ingest_files([hourly_dir / "SPY_1h.csv", hourly_dir / "AAPL_1h.csv"], root, bar="1-HOUR", repair=True)
    return root


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_catalog_is_named_with_its_fix(
    kind: str, real_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage, needles = DAMAGE[kind]
    catalog = tmp_path / "catalog"
    shutil.copytree(real_catalog, catalog)
    damage(catalog)
    common = f'catalog = "{catalog}"\nsymbols = ["SPY", "AAPL"]\n'
    (tmp_path / "bt.toml").write_text(
        f'[data]\n{common}start = "2024-01-02"\nend = "2024-03-28"\n[strategy]\nkind = "sma_cross"\nfast = 5\nslow = 20\n')
    (tmp_path / "sig.toml").write_text(
        f'[data]\n{common}start = "2024-01-02"\nend = "2024-03-28"\n'
        f'[strategy]\nkind = "signal"\nmodel = "{ROOT / "models" / "demo_mlp"}"\n')
    (tmp_path / "train.toml").write_text(
        f'[data]\n{common}lookback = 8\ntrain = "..2023-06-30"\nvalidation = "2023-07-01..2023-09-30"\n'
        'test = "2023-10-01.."\n[train]\nepochs = 1\n[output]\nrun_dir = "run"\n')
    commands = [["backtest", "bt.toml", "--out", "out"],
                ["sweep", "sig.toml", "--grid", "strategy.entry_threshold=0.5,0.6", "--no-stats", "--out", "out"]]
    try:
        import torch  # noqa: F401

        commands.append(["train", "train.toml", "--no-track", "--quiet"])
    except ImportError:  # the research extra is not installed: backtest and sweep still run
        pass
    for args in commands:
        before = tree(tmp_path)
        result = run_cli(args, capsys, cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
        assert result.code == 3, (args, result.code, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        for needle in needles:
            assert needle in lines[0], (args, needle, lines[0])
        assert str(catalog) in lines[0]
        assert tree(tmp_path) == before, args
