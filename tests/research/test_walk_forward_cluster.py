"""``sigtrade train --walk-forward ... --seeds ...``: one training per fold x seed, locally and on a real Ray cluster.

On real hourly bars (SPY, AAPL): the folds roll forward as planned, every (fold, seed)
trains once, all runs land in the one MLflow store under one parent run, and the Ray
cluster's weights and metrics are the local run's, bit for bit.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.research

SPEC = "train=6M,validation=2M,test=2M,step=24M"


def _config(real_catalog: Path, folder: Path) -> Path:
    path = folder / "wf.toml"
    path.write_text(
        f'[data]\ncatalog = "{real_catalog}"\nlookback = 12\ntrain = "2022-01-03..2022-06-30"\n'
        'validation = "2022-07-01..2022-08-31"\ntest = "2022-09-01..2022-10-31"\n'
        '[label]\nkind = "threshold"\nhorizon = 3\n'
        '[model]\narchitecture = "mlp"\nhidden = 8\nlayers = 1\nembedding_dim = 2\n'
        '[train]\nepochs = 1\nbatch_size = 256\npatience = 2\nthreads = 1\nseed = 7\n'
        '[output]\nname = "wf"\n'
    )
    return path


def _rows(out: Path) -> list[dict[str, Any]]:
    rows = json.loads((out / "walk_forward.json").read_text())
    return [{k: v for k, v in r.items() if k not in ("run_dir", "mlflow_run_id")} for r in rows]


def test_folds_roll_forward_from_the_configured_start(real_catalog: Path, tmp_path: Path) -> None:
    from research.config import load_train_config
    from research.walk_forward import parse_fold_spec, plan_folds

    cfg = load_train_config(_config(real_catalog, tmp_path))
    folds = plan_folds(cfg, parse_fold_spec(SPEC), [1, 2])
    assert [(f.index, f.seed) for f in folds] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert (folds[0].train, folds[0].validation, folds[0].test) == ("2022-01-01..2022-06-30", "2022-07-01..2022-08-31", "2022-09-01..2022-10-31")
    assert folds[2].train == "2024-01-01..2024-06-30"
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="lacks validation"):
        parse_fold_spec("train=6M,test=2M")


def test_walk_forward_on_the_cluster_equals_the_local_run(
    ray_cluster: Any, real_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(real_catalog, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from engine.cli.research_cmd import train

    def run(out: Path, cluster: str | None) -> None:
        train(config=config, set_=[], quiet=True, tracking_uri=uri, track=True, walk_forward=SPEC, seeds="1,2",
              out=out, cluster=cluster)

    run(tmp_path / "local", None)
    run(tmp_path / "cluster", ray_cluster.address)  # this process is the driver; the trainings run on the workers
    assert "ray" not in sys.modules or not __import__("ray").is_initialized(), "the driver disconnected"
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "cluster")
    assert len(a) == 4 and all(r["status"] in ("completed", "early_stopped") for r in a)
    assert all(r["weights_sha256"] for r in a)
    assert a == b, "same weights and validation metrics for every fold x seed"
    assert len({r["weights_sha256"] for r in a}) == 4, "each fold x seed trained its own model"
    for r in json.loads((tmp_path / "cluster" / "walk_forward.json").read_text()):
        run_json = json.loads((Path(r["run_dir"]) / "run.json").read_text())
        assert run_json["config"]["data"]["train"] == r["train"] and run_json["config"]["train"]["seed"] == r["seed"]
    # every run in the one MLflow store, under one parent per walk-forward
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("sigtrade-walk-forward")
    runs = client.search_runs([exp.experiment_id], "tags.`sigtrade.kind` = 'walk-forward'")
    assert len(runs) == 8
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 2
    assert {(r.data.tags["sigtrade.fold"], r.data.tags["sigtrade.seed"]) for r in runs} == {("0", "1"), ("0", "2"), ("1", "1"), ("1", "2")}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert tomllib.loads(config.read_text())["train"]["seed"] == 7
