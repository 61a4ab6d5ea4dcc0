"""``sigtrade tune --cluster``: every trial a Ray task joining the one Optuna RDB study (tracking: see test_walk_forward_cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.research, pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")]


def test_trials_run_as_tasks_in_one_study(ray_cluster: Any, tiny_catalog: Path, tmp_path: Path) -> None:
    import optuna

    from tests.research.test_tune import TUNE, _write_config

    config = _write_config(tmp_path / "tiny.toml", tiny_catalog, TUNE.replace("startup_trials = 2", "startup_trials = 4"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {k: v for k, v in os.environ.items() if k != "SIGTRADE_RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "tune", str(config), "--trials", "2", "--set", "train.epochs=1", "--storage", storage, "--study", "wide",
         "--no-track", "--cluster", ray_cluster.address],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**env, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 task(s) on 2 CPU(s); 0 retried" in proc.stderr
    trials = optuna.load_study(study_name="wide", storage=storage).get_trials()
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    pids = {t.user_attrs["pid"] for t in trials}
    assert os.getpid() not in pids, "the trials ran in the cluster's worker processes"
    assert all((Path(t.user_attrs["run_dir"]) / "best.pt").is_file() for t in trials)
    assert "best trial" in proc.stdout
