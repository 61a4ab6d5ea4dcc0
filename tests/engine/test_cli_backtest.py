"""The backtest command as a user runs it: JSON figures, outputs on disk, errors that teach."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REQUIRED_KEYS = {
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration", "calmar", "trades", "win_rate", "profit_factor", "avg_trade",
    "turnover", "exposure", "commission_paid", "slippage_paid", "benchmark",
}


def sigtrade(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "sample"
    proc = sigtrade("sample", "--catalog", str(root), "--symbols", "4", "--start", "2024-01-02", "--end", "2024-09-30")
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def config(tmp_path: Path, sample: Path) -> Path:
    path = tmp_path / "bt.toml"
    path.write_text(
        f'[data]\ncatalog = "{sample}"\nsymbols = "all"\nstart = "2024-02-01"\nend = "2024-09-30"\n'
        '[strategy]\nkind = "sma_cross"\nfast = 5\nslow = 30\n'
    )
    return path


def test_json_prints_one_object_with_the_documented_keys(config: Path) -> None:
    proc = sigtrade("backtest", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert REQUIRED_KEYS <= set(metrics)
    assert REQUIRED_KEYS - {"benchmark"} <= set(metrics["benchmark"])
    assert metrics["trades"] > 0 and metrics["benchmark"]["trades"] == 1
    assert -1.0 < metrics["total_return"] < 1.0  # a fraction, not a percentage


def test_set_overrides_change_the_result(config: Path) -> None:
    base = json.loads(sigtrade("backtest", str(config), "--json").stdout)
    free = json.loads(sigtrade("backtest", str(config), "--json", "--set", "costs.slippage_bps=0", "--set", "costs.commission_bps=0").stdout)
    assert base["commission_paid"] > 0 and free["commission_paid"] == 0 and free["slippage_paid"] == 0


def test_out_writes_metrics_curves_tables_and_report(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = sigtrade("backtest", str(config), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC" in proc.stdout
    for name in ("metrics.json", "equity.parquet", "fills.parquet", "trades.parquet", "report.html"):
        assert (out / name).is_file(), name
    fills = pd.read_parquet(out / "fills.parquet")
    assert {"ts", "symbol", "side", "qty", "price", "commission", "slippage"} <= set(fills.columns)
    assert "SYNTHETIC" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("overrides", "needle", "code"),
    [
        (['data.catalog="/nonexistent/catalog"'], "does not exist", 3),
        (['data.symbols=["SPYY"]'], "did you mean 'SPY'", 3),
        (["data.start=2030-01-02", "data.end=2030-02-01"], "no 1-HOUR bars", 3),
        (["costs.slippage_bps=-3"], "costs.slippage_bps", 2),
        (["portfolio.captial=1"], "did you mean 'capital'", 2),
        (['benchmark.symbol="QQQ"'], "'QQQ' is not in catalog", 3),
    ],
)
def test_user_errors_give_one_message_and_no_traceback(config: Path, overrides: list[str], needle: str, code: int) -> None:
    args = [a for o in overrides for a in ("--set", o)]
    proc = sigtrade("backtest", str(config), *args)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(config: Path) -> None:
    proc = sigtrade("--debug", "backtest", str(config), "--set", 'data.catalog="/nonexistent/catalog"')
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_missing_config_file() -> None:
    proc = sigtrade("backtest", "no/such/file.toml")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_nautilus_logging_is_quiet_by_default(config: Path) -> None:
    proc = sigtrade("backtest", str(config))
    assert proc.returncode == 0
    assert "[INFO]" not in proc.stdout + proc.stderr
    assert len((proc.stdout + proc.stderr).splitlines()) < 40


def test_usage_errors_exit_2_with_clicks_message() -> None:
    proc = sigtrade("backtest")
    assert proc.returncode == 2
    assert "Missing argument" in proc.stderr and "Traceback" not in proc.stderr


def test_messages_with_brackets_are_printed_verbatim(tmp_path: Path) -> None:
    proc = sigtrade("backtest", str(tmp_path / "[weird]" / "cfg.toml"))
    assert proc.returncode == 2
    assert "[weird]" in proc.stderr
