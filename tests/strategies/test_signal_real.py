"""NN signal and ensemble strategies through the event engine, on real hourly bars.

The test models are small seeded ONNX graphs (tests/models/onnx_factory.py): no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import catalog as cat
from engine.config import load_config
from engine.runner import run_backtest
from models.features import compute_features
from models.signal import load_signal_model
from tests.models.onnx_factory import make_gru_artifact, make_mlp_artifact

SYMBOLS = ["SPY", "AAPL", "MSFT"]


@pytest.fixture(scope="module")
def real_catalog(hourly_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.ingest.pipeline import ingest_files

    root = tmp_path_factory.mktemp("sig") / "catalog"
    ingest_files([hourly_dir / f"{s}_1h.csv" for s in SYMBOLS], root, bar="1-HOUR", repair=True)
    return root


@pytest.fixture(scope="module")
def model_dirs(real_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # scaler fitted on 2022 rows of SPY, as a trainer would on its training split
    frame = cat.read_frame(real_catalog, "SPY", "1-HOUR")
    feats = compute_features(frame.loc[:"2022-12-31"]).dropna()
    scaler = (feats.mean().tolist(), feats.std().replace(0, 1).tolist())
    root = tmp_path_factory.mktemp("models")
    mlp = make_mlp_artifact(root / "mlp", lookback=12, seed=3, scaler=scaler, f1=0.6)
    gru = make_gru_artifact(root / "gru", lookback=8, seed=5, scaler=scaler, f1=0.4)
    ens = root / "ens"
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps({
        "name": "ens", "bar": "1-HOUR", "combiner": "f1_weighted", "threshold": 0.5,
        "members": [{"path": "../mlp"}, {"path": "../gru"}],
    }))
    return {"mlp": mlp, "gru": gru, "ens": ens}


def _median_threshold(model_dir: Path, catalog: Path) -> float:
    """A threshold that makes a random-weight model trade about half the time."""
    m = load_signal_model(model_dir)
    p = m.probabilities(cat.read_frame(catalog, "SPY", "1-HOUR").loc["2023-06":"2024-06"], "SPY").dropna()
    return float(np.round(p.median(), 6))


def _cfg(catalog: Path, model: Path, *overrides: str):
    return load_config(None, [
        f'data.catalog="{catalog}"', f'data.symbols={json.dumps(SYMBOLS)}', "data.start=2023-10-02",
        "data.end=2024-03-28", 'strategy.kind="signal"', f'strategy.model="{model}"', *overrides,
    ])


@pytest.mark.parametrize("which", ["mlp", "gru", "ens"])
def test_batch_and_streaming_modes_send_identical_orders(real_catalog: Path, model_dirs: dict[str, Path], which: str) -> None:
    model = model_dirs[which]
    thr = _median_threshold(model, real_catalog)
    kind = '"ensemble"' if which == "ens" else '"signal"'
    common = [f"strategy.kind={kind}", f"strategy.entry_threshold={thr}", f"strategy.exit_threshold={thr}"]
    batch = run_backtest(_cfg(real_catalog, model, *common, 'strategy.mode="batch"'))
    stream = run_backtest(_cfg(real_catalog, model, *common, 'strategy.mode="streaming"'))
    assert len(batch.strategy.fills) >= 10, "the test model should trade"
    cols = ["ts", "symbol", "side", "qty", "price"]
    pd.testing.assert_frame_equal(batch.strategy.fills[cols], stream.strategy.fills[cols], check_exact=True)


def test_signal_strategy_follows_its_thresholds_bar_by_bar(real_catalog: Path, model_dirs: dict[str, Path]) -> None:
    model = model_dirs["mlp"]
    thr = _median_threshold(model, real_catalog)
    entry, exit_ = thr + 0.002, thr - 0.002
    res = run_backtest(_cfg(real_catalog, model, f"strategy.entry_threshold={entry}", f"strategy.exit_threshold={exit_}"))
    m = load_signal_model(model)
    fills = res.strategy.fills
    assert len(fills) > 4
    for fill in fills.itertuples():
        frame = cat.read_frame(real_catalog, fill.symbol, "1-HOUR")
        probs = m.probabilities(frame, fill.symbol)
        i = int(np.searchsorted(frame.index.asi8, fill.ts.value, side="left")) - 1  # decision bar
        p = probs.iloc[i]
        last_bar = i >= len(frame.loc[:"2024-03-28"]) - 2
        if fill.side == "BUY":
            assert p >= entry
        elif not last_bar:  # the end-of-data flatten ignores the signal
            assert p < exit_
        # never on NaN: the decision bar is past the model's warm-up
        assert i >= m.warmup_bars


def test_max_hold_bars_closes_positions(real_catalog: Path, model_dirs: dict[str, Path]) -> None:
    model = model_dirs["mlp"]
    thr = _median_threshold(model, real_catalog)
    res = run_backtest(_cfg(real_catalog, model, f"strategy.entry_threshold={thr}", "strategy.exit_threshold=0.01", "strategy.max_hold_bars=5"))
    trades = res.strategy.trades
    assert len(trades) > 3
    assert (trades["bars_held"].iloc[:-3] <= 6).all()


def test_shorts_need_a_margin_account_and_then_trade(real_catalog: Path, model_dirs: dict[str, Path]) -> None:
    from engine.errors import ConfigError

    model = model_dirs["mlp"]
    thr = _median_threshold(model, real_catalog)
    with pytest.raises(ConfigError, match="margin account"):
        _cfg(real_catalog, model, f"strategy.short_threshold={thr}")
    res = run_backtest(_cfg(
        real_catalog, model, 'portfolio.account="margin"', "strategy.entry_threshold=0.99",
        f"strategy.short_threshold={thr}", f"strategy.cover_threshold={thr}",
    ))
    trades = res.strategy.trades
    assert len(trades) > 3 and (trades["qty"] < 0).all(), "only short trades at these thresholds"


def test_a_model_for_another_bar_size_is_refused(real_catalog: Path, tmp_path: Path) -> None:
    from models.errors import ModelContractError

    daily = make_mlp_artifact(tmp_path / "daily", lookback=12, bar="1-DAY")
    with pytest.raises(ModelContractError, match="bar"):
        run_backtest(_cfg(real_catalog, daily))


@pytest.fixture(scope="module")
def mixed_catalog(hourly_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IBKR (clock-hour bars) and yfinance (half-hour bars) symbols: bar times that only partly align."""
    from engine.ingest.pipeline import ingest_files

    root = tmp_path_factory.mktemp("mixed") / "catalog"
    ingest_files([hourly_dir / f"{s}_1h.csv" for s in ("SPY", "INTC")], root, bar="1-HOUR", repair=True)
    return root


def test_streaming_equals_batch_through_forced_exits_on_misaligned_bar_times(
    mixed_catalog: Path, model_dirs: dict[str, Path]
) -> None:
    """Stops and time stops skip the signal on their bars; the streaming features must still see
    every bar (each close time is stepped once, whatever the strategy does on it), with years of
    history before the window."""
    model = model_dirs["ens"]
    thr = _median_threshold(model, mixed_catalog)
    cfg = [
        'data.symbols=["SPY", "INTC"]', 'strategy.kind="ensemble"', f"strategy.entry_threshold={thr}",
        f"strategy.exit_threshold={thr}", "strategy.max_hold_bars=4", "risk.stop_loss=0.004", "data.start=2024-10-01",
        "data.end=2024-12-31",
    ]
    batch = run_backtest(_cfg(mixed_catalog, model, *cfg, 'strategy.mode="batch"'))
    stream = run_backtest(_cfg(mixed_catalog, model, *cfg, 'strategy.mode="streaming"'))
    trades = batch.strategy.trades
    assert {"stop_loss", "time_stop"} <= set(trades["exit_reason"]), "the forced exits must occur"
    cols = ["ts", "symbol", "side", "qty", "price"]
    pd.testing.assert_frame_equal(batch.strategy.fills[cols], stream.strategy.fills[cols], check_exact=True)
