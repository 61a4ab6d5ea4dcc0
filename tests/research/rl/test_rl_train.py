"""``sigtrade rl train`` / export / models validate / backtest, end to end; determinism; bad input.

Tiny budgets (a few hundred timesteps) on real hourly bars: the assertions are about the
pipeline (same seed -> identical policy, an MLflow run per run, a valid policy card whose
backtest trades), not about the policy being any good.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError
from research.rl.config import load_rl_config, rl_config_from_dict
from tests.research.rl.conftest import rl_raw

pytestmark = pytest.mark.research


def _toml(raw: dict, path: Path) -> Path:
    lines = []
    for section, fields in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {'nan' if isinstance(v, float) and math.isnan(v) else json.dumps(v)}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("sections", "message"), [
    ({"algo": {"name": "pp0"}}, "did you mean 'ppo'"),
    ({"ppo": {"learning_rat": 0.001}}, "did you mean 'learning_rate'"),
    ({"env": {"short": True}}, "needs a margin account"),
    ({"reward": {"turnover_penalty": math.nan}}, "turnover_penalty"),
    ({"reward": {"drawdown_penalty": -1.0}}, "drawdown_penalty"),
    ({"ppo": {"batch_size": 100_000}}, "larger than a rollout"),
    ({"env": {"gate_model": "", "entry_threshold": 0.6}}, "gate-mode settings"),
])
def test_bad_configs_are_refused_before_training(rl_catalog: Path, tmp_path: Path, sections: dict, message: str) -> None:
    raw = rl_raw(rl_catalog, tmp_path / "run", **sections)
    with pytest.raises(ConfigError, match=message):
        rl_config_from_dict(raw, "rl.toml")


@pytest.mark.parametrize(("sections", "message"), [
    ({"algo": {"name": "pp0"}}, "did you mean 'ppo'"),
    ({"reward": {"turnover_penalty": math.nan}}, "turnover_penalty = nan"),
])
def test_the_cli_refuses_them_with_one_message(rl_catalog: Path, tmp_path: Path, sections: dict, message: str) -> None:
    raw = rl_raw(rl_catalog, tmp_path / "run", **sections)
    cli = subprocess.run([sys.executable, "-m", "engine", "rl", "train", str(_toml(raw, tmp_path / "rl.toml")), "--no-track"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2, cli.stderr
    assert "Traceback" not in cli.stderr and message in cli.stderr
    assert not (tmp_path / "run").exists(), "nothing written"


def test_a_gate_model_with_another_feature_set_or_bar_is_refused(rl_catalog: Path, tmp_path: Path) -> None:
    from models.errors import ModelContractError
    from research.rl.market import build_market
    from tests.models.onnx_factory import make_mlp_artifact

    gate = make_mlp_artifact(tmp_path / "gate", lookback=6, seed=1)
    card = json.loads((gate / "card.json").read_text())
    card["bar"] = "30-MINUTE"
    (gate / "card.json").write_text(json.dumps(card))
    cfg = rl_config_from_dict(rl_raw(rl_catalog, env={"gate_model": str(gate)}))
    with pytest.raises(ModelContractError, match="bar"):
        build_market(cfg)


def _logits(run_dir: Path) -> np.ndarray:
    import torch

    from research.rl.train import load_run

    _, meta, model = load_run(run_dir)
    obs = np.random.default_rng(0).standard_normal((32, model.observation_space.shape[0])).astype(np.float32)
    with torch.no_grad():
        return model.policy.get_distribution(torch.from_numpy(obs)).distribution.logits.numpy()


def test_same_seed_same_policy_other_seed_other_policy(rl_catalog: Path, tmp_path: Path) -> None:
    from research.rl.market import build_market
    from research.rl.train import train_rl

    cfg = rl_config_from_dict(rl_raw(rl_catalog))
    market = build_market(cfg)
    a = train_rl(cfg, market=market, run_dir=tmp_path / "a")
    b = train_rl(cfg, market=market, run_dir=tmp_path / "b")
    other = rl_config_from_dict(rl_raw(rl_catalog, train={"seed": 4}))
    train_rl(other, market=market, run_dir=tmp_path / "c")
    def strip(r):
        return [{k: v for k, v in h.items() if k != "elapsed_s"} for h in r.history]

    assert a.best_timesteps == b.best_timesteps and strip(a) == strip(b), "same validation figures"
    la, lb, lc = _logits(tmp_path / "a"), _logits(tmp_path / "b"), _logits(tmp_path / "c")
    assert np.array_equal(la, lb), "same config and seed: bit-identical policy"
    assert not np.array_equal(la, lc), "another seed: another policy"
    assert len(a.history) == 2 and a.history[0]["timesteps"] == 256.0, "validated every eval_every timesteps"


def test_cli_train_export_validate_backtest(rl_catalog: Path, tmp_path: Path) -> None:
    """The same policy file from training to a backtest: CLI all the way, MLflow run recorded."""
    import mlflow

    run_dir, model_dir = tmp_path / "runs" / "tiny", tmp_path / "models" / "tiny"
    config = _toml(rl_raw(rl_catalog, run_dir, env={"short": True, "account": "margin"},
                          risk={"min_hold_bars": 2}), tmp_path / "tiny_rl.toml")
    train = subprocess.run([sys.executable, "-m", "engine", "rl", "train", str(config), "--set", "train.timesteps=384"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    assert "MaskablePPO" in train.stderr and "validation net Sharpe" in train.stderr and "MLflow run" in train.stderr
    runs = mlflow.search_runs(experiment_names=["sigtrade-rl"])
    assert len(runs) == 1 and runs.iloc[0]["tags.sigtrade.status"] == "completed"
    assert "metrics.best_val_net_sharpe" in runs.columns and runs.iloc[0]["params.ppo.n_steps"] == "32"
    export = subprocess.run([sys.executable, "-m", "engine", "export", str(run_dir), "--out", str(model_dir)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    card = json.loads((model_dir / "card.json").read_text())
    assert card["kind"] == "policy" and card["actions"] == ["flat", "long", "short"]
    assert [f["name"] for f in card["observation"]["state"]] == ["position", "unrealised_return", "bars_held"]
    assert card["environment"]["costs"]["commission_bps"] == 10 and card["algorithm"] == "MaskablePPO"
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(model_dir / "model.onnx")).metadata_props}
    assert json.loads(meta["sigtrade.features"]) == card["feature_set"]["features"]
    ok = subprocess.run([sys.executable, "-m", "engine", "models", "validate", str(model_dir)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "valid: policy" in ok.stdout
    bt = tmp_path / "bt.toml"
    bt.write_text(f'[data]\ncatalog = "{rl_catalog}"\nsymbols = ["SPY", "AMD"]\nstart = 2024-04-01\nend = 2024-04-30\n'
                  f'[portfolio]\naccount = "margin"\nposition_size = 0.5\nmax_positions = 2\n'
                  f'[strategy]\nkind = "policy"\nmodel = "{model_dir}"\n')
    res = subprocess.run([sys.executable, "-m", "engine", "backtest", str(bt), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)
    assert metrics["trades"] > 0 and metrics["commission_paid"] > 0


def test_gate_mode_trains_exports_with_its_signal_model_and_backtests(rl_catalog: Path, tmp_path: Path) -> None:
    from engine.config import load_config
    from engine.runner import run_backtest
    from research.rl.export import export_policy
    from research.rl.train import train_rl
    from tests.models.onnx_factory import make_mlp_artifact

    gate = make_mlp_artifact(tmp_path / "gate", lookback=6, seed=2)
    cfg = rl_config_from_dict(rl_raw(rl_catalog, tmp_path / "run", env={"gate_model": str(gate), "entry_threshold": 0.45,
                                                                        "exit_threshold": 0.45}))
    assert cfg.actions == ("skip", "trade")
    result = train_rl(cfg)
    assert result.checkpoint is not None
    out = export_policy(tmp_path / "run", tmp_path / "gated")
    assert (tmp_path / "gated" / "gate" / "model.onnx").is_file() and out.card.gate is not None
    assert out.card.gate.entry_threshold == 0.45 and out.card.n_state == 4
    bt = load_config(None, [f'data.catalog="{rl_catalog}"', 'data.symbols=["SPY"]', "data.start=2024-04-01",
                            "data.end=2024-04-30", 'strategy.kind="policy"', f'strategy.model="{tmp_path / "gated"}"'])
    fills = run_backtest(bt).strategy.fills
    assert len(fills) > 0 and set(fills["side"]) <= {"BUY", "SELL"}


def test_config_loading_names_the_file_stem_and_ignores_tune(rl_catalog: Path, tmp_path: Path) -> None:
    raw = rl_raw(rl_catalog)
    raw["output"] = {}
    raw["tune"] = {"trials": 3}
    cfg = load_rl_config(_toml(raw, tmp_path / "my_policy.toml"))
    assert cfg.run_name == "my_policy" and cfg.algorithm == "MaskablePPO"


def test_every_numeric_rl_field_has_both_bounds() -> None:
    from engine.schema import numeric_fields
    from research.rl.config import RLConfig
    from research.rl.tune import RLTuneConfig

    for struct in (RLConfig, RLTuneConfig):
        fields = list(numeric_fields(struct))
        assert len(fields) >= 6
        loose = [f.path for f in fields if not f.bounds.complete]
        assert not loose, f"{struct.__name__}: numeric fields without both bounds: {loose}"


def test_shipped_rl_configs_load() -> None:
    from research.rl.config import is_rl_config
    from research.rl.tune import load_tune_config

    root = Path(__file__).resolve().parents[3] / "config"
    paths = [root / "rl_demo.toml", *sorted((root / "rl").glob("*.toml"))]
    assert len(paths) == 3
    for path in paths:
        assert is_rl_config(path), path
        cfg, tune = load_tune_config(path)
        assert cfg.costs.commission_bps == 10 and cfg.costs.slippage_bps == 5, path
        assert tune.space, path
