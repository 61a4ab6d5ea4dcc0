"""``sigtrade sweep`` as a user runs it: a ranked table, files on disk, the overfitting
statistics, the top configurations re-run in the event engine, and errors that teach."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.errors import ConfigError, DataError
from tests.engine.conftest import SweepRun, sigtrade


@pytest.fixture(scope="module")
def config(sweep_config: Path) -> Path:
    return sweep_config


def test_sweep_ranks_writes_results_and_the_event_engine_agrees(full_sweep: SweepRun) -> None:
    proc, out = full_sweep.proc, full_sweep.out
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    # 5 x 3 x 2 = 30 configurations, ranked with trades, turnover and costs
    assert "best 5 of 30 by sharpe" in text
    for column in ("entry_threshold", "trend.sma", "stop_loss", "Sharpe *", "trades", "turnover", "costs"):
        assert column in text
    assert "configurations tried: 30" in text
    assert "Deflated Sharpe Ratio of the best" in text
    assert "PBO (CSCV, S=16" in text
    assert "walk-forward train=2M,test=1M" in text
    assert "stitched out-of-sample" in text
    # the two best, re-run in the event engine: identical fills and equity
    assert text.count("fills and equity: yes") == 2
    assert "NO" not in text
    # a regime that can never allow an entry is called out
    assert "never allows an entry" in proc.stderr
    assert "1000000" in proc.stderr
    assert f"report: {out / 'report.html'}" in text.replace("\n", "")

    results = pd.read_csv(out / "results.csv")
    assert len(results) == 30
    assert pd.read_parquet(out / "results.parquet").shape[0] == 30
    assert {"strategy.entry_threshold", "regime.trend.sma", "risk.stop_loss", "sharpe", "trades", "costs"} <= set(results.columns)
    blocked = results[results["regime.trend.sma"] == 1000000]
    assert (blocked["trades"] == 0).all()
    html = (out / "report.html").read_text()
    assert "<script src=" not in html, "self-contained: no CDN"
    assert len(html) > 1_000_000, "plotly.js inline"
    # heatmaps.html, the page earlier versions wrote, forwards to the report's heat maps
    forward = (out / "heatmaps.html").read_text()
    assert 'http-equiv="refresh" content="0; url=report.html#heatmaps"' in forward
    report = json.loads((out / "overfitting.json").read_text())
    assert report["configs"] == 30
    assert report["overfitting"]["n_trials"] == 30


def test_a_bad_grid_is_one_message_without_a_traceback(config: Path) -> None:
    proc = sigtrade("sweep", str(config), "--grid", "strategy.entry_treshold=0.5,0.6")
    assert proc.returncode == 2
    assert "did you mean 'strategy.entry_threshold'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def _sweep(config: Path, *grid: str, **kw: object) -> None:
    from engine.cli.sweep_cmd import sweep

    args = {
        "config": config, "grid": list(grid), "set_": [], "metric": "sharpe", "top": 5, "out": None, "verify_top": 0,
        "jobs": 0, "walk_forward": None, "pbo_blocks": 16, "no_stats": False, "max_memory": 4.0, "cluster": None,
    }
    args.update(kw)
    sweep(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("grid", "kw", "needle"),
    [
        (["risk.stop_loss="], {}, "has no values"),
        (["risk.stop_loss=0.05:0.01:0.01"], {}, "the grid has no values"),
        (["stop_loss=0.01,0.02"], {}, "did you mean 'risk.stop_loss'"),
        (["execution.fill=close,next_open"], {}, "cannot be swept by the fast path"),
        (["risk.stop_loss=0.5,1.5"], {}, "risk.stop_loss"),
        ([], {}, "at least one --grid"),
        (["risk.stop_loss=0,0.01"], {"metric": "sharp"}, "did you mean 'sharpe'"),
        (["strategy.entry_threshold=0.5:0.9:0.0001"], {"max_memory": 0.001}, "too large for memory"),
    ],
)
def test_bad_input_is_refused_with_a_message_that_says_what_to_do(config: Path, grid: list[str], kw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _sweep(config, *grid, **kw)


def test_nan_probabilities_are_a_clear_error(overlay_catalog: Path, overlay_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "early.toml"
    # the catalog's first three sessions: shorter than the model's warm-up, every probability NaN
    path.write_text(
        f'[data]\ncatalog = "{overlay_catalog}"\nsymbols = ["SPY"]\nstart = "2021-10-19"\nend = "2021-10-21"\n'
        f'[strategy]\nkind = "signal"\nmodel = "{overlay_model}"\n'
    )
    with pytest.raises(DataError, match="every model probability in the trading window is NaN"):
        _sweep(path, "strategy.entry_threshold=0.5,0.6")
