"""``sigtrade tune`` accepts RL configs: Optuna over PPO hyper-parameters and reward penalties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError
from research.rl.config import rl_config_from_dict
from tests.research.rl.conftest import rl_raw
from tests.research.rl.test_rl_train import _toml

pytestmark = pytest.mark.research


def test_tune_an_rl_config_and_export_the_best_policy(rl_catalog: Path, tmp_path: Path) -> None:
    raw = rl_raw(rl_catalog, tmp_path / "runs" / "t", train={"timesteps": 256, "eval_every": 256})
    config = _toml(raw, tmp_path / "rl_tune.toml")
    config.write_text(config.read_text() + "[tune]\npruner = \"none\"\nexport_trials = false\n[tune.space]\n"
                      "learning_rate = {type = \"float\", low = 0.0001, high = 0.001, log = true}\n"
                      "turnover_penalty = {type = \"float\", low = 0.0, high = 0.004}\n")
    cli = subprocess.run([sys.executable, "-m", "engine", "tune", str(config), "--trials", "2", "--no-track",
                          "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--export-best", str(tmp_path / "best")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    best = json.loads(next((tmp_path / "runs" / "t" / "tune").glob("*/best.json")).read_text())
    assert best["counts"] == {"complete": 2} and best["metric"] == "net_sharpe"
    assert set(best["best_params"]) == {"ppo.learning_rate", "reward.turnover_penalty"}
    assert best["best_command"].startswith("sigtrade rl train")
    card = json.loads((tmp_path / "best" / "card.json").read_text())
    assert card["kind"] == "policy"
    assert card["environment"]["reward"]["turnover_penalty"] == best["best_params"]["reward.turnover_penalty"]


def test_an_unknown_rl_hyper_parameter_suggests_the_right_name(rl_catalog: Path) -> None:
    from research.rl.tune import rl_tune_config_from_dict

    cfg = rl_config_from_dict(rl_raw(rl_catalog))
    with pytest.raises(ConfigError, match="did you mean 'ppo.ent_coef'"):
        rl_tune_config_from_dict({"space": {"ppo.ent_coeff": {"type": "float", "low": 0, "high": 0.1}}}, cfg)
    with pytest.raises(ConfigError, match="gives an invalid config"):
        rl_tune_config_from_dict({"space": {"gamma": {"type": "float", "low": 0.5, "high": 1.5}}}, cfg)
