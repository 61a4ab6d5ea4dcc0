"""The RL policy strategy (``[strategy] kind = "policy"``) through the event engine, on real hourly bars.

The policies are small linear ONNX graphs with valid policy cards (tests/models/policy_factory.py):
no torch. Batch and streaming modes must send the same orders, with overlays that skip
``decide`` (stops) and masks that refuse actions (minimum hold, cooldown) in play.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import catalog as cat
from engine.config import load_config
from engine.errors import ConfigError
from engine.runner import run_backtest
from models.errors import ModelContractError
from models.features import compute_features
from tests.models.policy_factory import make_policy_artifact

SYMBOLS = ["SPY", "AMD"]
FILL_COLS = ["ts", "symbol", "side", "qty", "price", "commission", "exit_reason"]


@pytest.fixture(scope="module")
def catalog(hourly_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real bars of SPY and AMD from 2023-09 (streaming mode replays the whole history: keep it short)."""
    from engine.ingest.pipeline import ingest_files

    full = tmp_path_factory.mktemp("pol") / "full"
    ingest_files([hourly_dir / f"{s}_1h.csv" for s in SYMBOLS], full, bar="1-HOUR", repair=True)
    root = full.parent / "catalog"
    frames = {s: cat.read_frame(full, s, "1-HOUR").loc["2023-09-05":"2024-03-28"] for s in SYMBOLS}
    cat.write_bars(root, frames, "1-HOUR", note="real hourly bars (market-base), 2023-09-05 .. 2024-03-28")
    return root


@pytest.fixture(scope="module")
def policies(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    frame = cat.read_frame(catalog, "SPY", "1-HOUR")
    feats = compute_features(frame.loc[:"2023-12-29"]).dropna()
    scaler = (feats.mean().tolist(), feats.std().replace(0, 1).tolist())
    root = tmp_path_factory.mktemp("policies")
    return {
        "long": make_policy_artifact(root / "long", lookback=6, scaler=scaler),
        "short": make_policy_artifact(root / "short", lookback=6, scaler=scaler, actions=("flat", "long", "short")),
    }


def _cfg(catalog: Path, model: Path, *overrides: str):
    return load_config(None, [
        f'data.catalog="{catalog}"', f"data.symbols={SYMBOLS}".replace("'", '"'), "data.start=2024-01-02",
        "data.end=2024-02-29", 'strategy.kind="policy"', f'strategy.model="{model}"', "portfolio.position_size=0.5",
        "portfolio.max_positions=2", *overrides,
    ])


@pytest.mark.parametrize(("which", "extra"), [
    ("long", ["risk.stop_loss=0.004", "risk.min_hold_bars=3"]),
    ("short", ['portfolio.account="margin"', "risk.cooldown_bars=2", "risk.take_profit=0.01", "strategy.max_hold_bars=12"]),
], ids=["long-stops-minhold", "short-margin-cooldown-tp-timestop"])
def test_batch_and_streaming_send_the_same_orders(catalog: Path, policies: dict[str, Path], which: str,
                                                  extra: list[str]) -> None:
    batch = run_backtest(_cfg(catalog, policies[which], *extra)).strategy
    stream = run_backtest(_cfg(catalog, policies[which], *extra, 'strategy.mode="streaming"')).strategy
    a, b = batch.fills[FILL_COLS].reset_index(drop=True), stream.fills[FILL_COLS].reset_index(drop=True)
    assert len(a) >= 30, f"the policy traded too little to be a test: {len(a)} fills"
    assert len(a) == len(b) and (a == b).all().all()
    reasons = set(a["exit_reason"])
    assert reasons >= {"", "signal", "end"} and reasons & {"stop_loss", "take_profit", "time_stop"}, reasons
    if which == "short":
        assert (a["side"] == "SELL").sum() > (a["side"] == "BUY").sum() - 5  # short entries happen too
        entries = a[a["exit_reason"] == ""]
        assert set(entries["side"]) == {"BUY", "SELL"}, "both long and short entries"


def test_a_shorting_policy_needs_a_margin_account(catalog: Path, policies: dict[str, Path]) -> None:
    with pytest.raises(ModelContractError, match='needs portfolio.account = "margin"'):
        run_backtest(_cfg(catalog, policies["short"]))


def test_sweep_refuses_a_policy_naming_what_can_be_swept(catalog: Path, policies: dict[str, Path], tmp_path: Path) -> None:
    from engine.sim.sweep import load_fastpath

    with pytest.raises(ConfigError, match="Sweepable keys for a policy: none"):
        load_fastpath(_cfg(catalog, policies["long"]), lambda c, h: ({}, None, 0.5))
    config = tmp_path / "p.toml"
    config.write_text(f'[data]\ncatalog = "{catalog}"\nsymbols = ["SPY"]\n[strategy]\nkind = "policy"\n'
                      f'model = "{policies["long"]}"\n')
    cli = subprocess.run([sys.executable, "-m", "engine", "sweep", str(config), "--grid", "costs.slippage_bps=0,5"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "cannot be swept" in cli.stderr and "Traceback" not in cli.stderr


def test_models_validate_checks_a_policy(policies: dict[str, Path], tmp_path: Path) -> None:
    import json
    import shutil

    ok = subprocess.run([sys.executable, "-m", "engine", "models", "validate", str(policies["long"])],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "valid: policy 'long'" in ok.stdout and "actions flat/long" in ok.stdout
    shown = subprocess.run([sys.executable, "-m", "engine", "models", "inspect", str(policies["long"])],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and '"kind": "policy"' in shown.stdout and "valid" in shown.stdout
    # an observation spec that no longer matches the card's feature window is refused, naming the field
    bad = tmp_path / "bad"
    shutil.copytree(policies["long"], bad)
    card = json.loads((bad / "card.json").read_text())
    card["observation"]["lookback"] = 9
    (bad / "card.json").write_text(json.dumps(card))
    res = subprocess.run([sys.executable, "-m", "engine", "models", "validate", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 4 and "observation" in res.stderr and "Traceback" not in res.stderr
    # a signal-model loader given a policy says what it is
    from models.signal import load_signal_model

    with pytest.raises(ModelContractError, match="RL policy"):
        load_signal_model(policies["long"])
