"""Optuna tuning: search-space checks, a small study with pruning and MLflow runs, bad storage, and two
``sigtrade tune`` worker processes sharing one study on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
optuna = pytest.importorskip("optuna")
pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402

from engine.cli.app import main  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from research.config import train_config_from_dict  # noqa: E402
from research.tracking import Tracker  # noqa: E402
from research.tune import (  # noqa: E402
    TrialSeededTPESampler,
    TuneSession,
    load_tune_config,
    make_pruner,
    open_storage,
    resolve_param,
    tune_config_from_dict,
)
from tests.conftest import need  # noqa: E402
from tests.research.conftest import tiny_raw  # noqa: E402

pytestmark = [pytest.mark.research, pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")]

State = optuna.trial.TrialState


def _write_config(path: Path, catalog: Path, tune: str) -> Path:
    path.write_text(
        f'[data]\ncatalog = "{catalog}"\nlookback = 12\ntrain = "..2023-03-31"\n'
        'validation = "2023-04-01..2023-05-15"\ntest = "2023-05-16.."\n'
        '[label]\nhorizon = 3\n'
        '[model]\narchitecture = "mlp"\nhidden = 16\nlayers = 1\nembedding_dim = 3\n'
        '[train]\nepochs = 3\nbatch_size = 128\npatience = 9\nthreads = 1\nseed = 7\n' + tune,
        encoding="utf-8")
    return path


TUNE = (
    '[tune]\nmetric = "f1"\npruner = "median"\nstartup_trials = 2\nprune_startup_trials = 2\n'
    'prune_warmup_epochs = 1\n'
    '[tune.space.all]\nlr = {type = "float", low = 1e-4, high = 3e-2, log = true}\n'
    'hidden = {type = "int", low = 8, high = 32, log = true}\n'
    '[tune.space.mlp]\ndropout = {type = "categorical", choices = [0.0, 0.2]}\n'
)


@pytest.fixture
def base_cfg(tiny_catalog: Path):
    return train_config_from_dict(tiny_raw(tiny_catalog))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"space": {"all": {"hiden": {"type": "int", "low": 8, "high": 64}}}}, "did you mean 'hidden'"),
        ({"space": {"all": {"model.hiden": {"type": "int", "low": 8, "high": 64}}}}, "did you mean 'model.hidden'"),
        ({"space": {"gur": {"hidden": {"type": "int", "low": 8, "high": 64}}}}, "did you mean 'gru'"),
        ({"prunner": "median"}, "did you mean 'pruner'"),
        ({"pruner": "medain"}, "did you mean 'median'"),
        ({"space": {"all": {"lr": {"type": "float", "low": 0.1, "hgh": 0.2}}}}, "did you mean 'high'"),
        ({"space": {"all": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}}, "log = true needs low > 0"),
        ({"space": {"all": {"hidden": {"type": "int", "low": 64, "high": 8}}}}, "low = 64 is above high = 8"),
        ({"space": {"all": {"optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]}}}}, "optimizer = 'sgd'"),
        ({"architectures": ["gru", "transformer"]}, "'transformer' is unknown"),
    ],
)
def test_bad_search_spaces_are_refused_with_a_suggestion(base_cfg, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        tune_config_from_dict(table, base_cfg, "tiny.toml")


def test_names_pruners_and_the_config_file(tiny_catalog: Path, tmp_path: Path) -> None:
    assert resolve_param("hidden") == "model.hidden"
    assert resolve_param("lr") == "train.lr"
    assert resolve_param("lookback") == "data.lookback"
    assert resolve_param("label.threshold") == "label.threshold"
    config = _write_config(tmp_path / "t.toml", tiny_catalog, TUNE)
    cfg, tune = load_tune_config(config, ["tune.pruner=hyperband", "train.epochs=4"])
    assert cfg.train.epochs == 4
    assert cfg.output.name == "t"
    assert tune.pruner == "hyperband"
    assert set(tune.space["all"]) == {"train.lr", "model.hidden"}
    hb = make_pruner(tune, cfg.train.epochs)
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    _, tune = load_tune_config(config)
    assert isinstance(make_pruner(tune, 3), optuna.pruners.MedianPruner)
    _, tune = load_tune_config(config, ["tune.pruner=none"])
    assert isinstance(make_pruner(tune, 3), optuna.pruners.NopPruner)


def test_sampler_is_reproducible_per_trial_and_workers_do_not_collide() -> None:
    def draw(study: optuna.Study, n: int) -> list[dict]:
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("k", 1, 1000), n_trials=n)
        return [t.params for t in study.trials]

    a = draw(optuna.create_study(direction="maximize", sampler=TrialSeededTPESampler(3, n_startup_trials=4)), 6)
    b = draw(optuna.create_study(direction="maximize", sampler=TrialSeededTPESampler(3, n_startup_trials=4)), 6)
    assert a == b  # one worker reproduces its study
    # two workers with the same seed on one storage: trial numbers differ, so do the draws
    storage = optuna.storages.InMemoryStorage()
    w1 = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                             sampler=TrialSeededTPESampler(3, n_startup_trials=4))
    w2 = optuna.load_study(study_name="s", storage=storage, sampler=TrialSeededTPESampler(3, n_startup_trials=4))
    for _ in range(2):
        w1.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        w2.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    xs = [t.params["x"] for t in w1.trials]
    assert len(set(xs)) == 4


class PruneTrialOneAtEpochTwo(optuna.pruners.BasePruner):
    """Deterministic: prunes trial 1 once it has reported epoch 2 (median pruning depends on the data)."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1 and (trial.last_step or 0) >= 2


def test_small_study_on_sqlite_prunes_tracks_and_exports(tiny_catalog: Path, tmp_path: Path) -> None:
    config = _write_config(tmp_path / "tiny.toml", tiny_catalog, TUNE)
    cfg, tune = load_tune_config(config)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    session = TuneSession(cfg, tune, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="small",
                          tracking_uri=uri, config_path=str(config), out_root=tmp_path / "tune",
                          pruner=PruneTrialOneAtEpochTwo())
    session.prepare()
    seen = []
    summary = session.optimize(3, on_trial=seen.append)

    trials = session.study.get_trials()
    assert [t.state for t in trials] == [State.COMPLETE, State.PRUNED, State.COMPLETE]
    assert [t.number for t in seen] == [0, 1, 2]
    pruned = trials[1]
    assert sorted(pruned.intermediate_values) == [1, 2]  # reported every epoch, stopped at 2 of 3
    assert sorted(trials[0].intermediate_values) == [1, 2, 3]
    run_json = json.loads((tmp_path / "tune" / "small" / "trial_0001" / "run.json").read_text())
    assert run_json["result"]["status"] == "pruned"
    assert run_json["result"]["epochs_run"] == 2
    for t in trials:
        assert set(t.params) == {"train.lr", "model.hidden", "model.dropout"}
        assert t.user_attrs["pid"] == os.getpid()

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("sigtrade-tune/small")
    runs = {r.data.tags.get("sigtrade.trial"): r for r in client.search_runs([exp.experiment_id])}
    parent = runs.pop(None)
    assert parent.data.tags["sigtrade.kind"] == "tune-worker"
    assert parent.info.status == "FINISHED"
    assert set(runs) == {"0", "1", "2"}
    for number, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["sigtrade.study"] == "small"
        assert run.info.run_id == trials[int(number)].user_attrs["mlflow_run_id"]
        assert float(run.data.params["train.lr"]) == pytest.approx(trials[int(number)].params["train.lr"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert bool(artifacts) == (number != "1")  # completed trials exported, the pruned one not
    assert runs["1"].data.tags["sigtrade.status"] == "pruned"
    assert len(client.get_metric_history(runs["1"].info.run_id, "val_f1")) == 2
    assert len(client.get_metric_history(runs["0"].info.run_id, "val_f1")) == 3

    best = max((t for t in trials if t.state == State.COMPLETE), key=lambda t: t.value)
    assert summary.best_number == best.number
    assert summary.counts == {"complete": 2, "pruned": 1}
    written = json.loads((tmp_path / "tune" / "small" / "best.json").read_text())
    assert written["best_trial"] == best.number
    assert written["best_params"] == best.params
    assert "--set train.lr=" in written["best_command"]
    # the reproduction command rebuilds the best trial's config
    argv = shlex.split(written["best_command"])
    assert argv[:3] == ["sigtrade", "train", str(config)]
    again = load_tune_config(config, [v for k, v in zip(argv, argv[1:], strict=False) if k == "--set"])[0]
    assert again.train.lr == pytest.approx(best.params["train.lr"])
    assert again.model.hidden == best.params["model.hidden"]

    result = session.export_best(summary, tmp_path / "models" / "best")
    assert result.card.metrics["validation"]["epoch"] >= 1
    assert (tmp_path / "models" / "best" / "model.onnx").is_file()

    # a worker joining with another search space is refused
    _, other = load_tune_config(config, ["tune.space.all.lr.high=0.1"])
    with pytest.raises(ConfigError, match="created from a different config"):
        TuneSession(cfg, other, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="small", track=False)


def test_bad_storage_or_tracking_fails_before_training(tiny_catalog: Path, tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    monkeypatch.chdir(tmp_path)
    config = _write_config(tmp_path / "tiny.toml", tiny_catalog, TUNE)
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(["tune", str(config), "--trials", "1", "--storage",
              "postgresql+psycopg2://tuner:s3cret@127.0.0.1:9/optuna"])
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--storage postgresql+psycopg2://tuner:***@127.0.0.1:9/optuna is unreachable" in err
    assert "s3cret" not in err
    assert time.perf_counter() - t0 < 30

    with pytest.raises(ConfigError, match="not a database URL"):
        open_storage("optuna.db")
    with pytest.raises(SystemExit) as exc:
        main(["tune", str(config), "--trials", "1", "--tracking-uri", "http://127.0.0.1:9"])
    assert exc.value.code == 2
    assert "unreachable" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "tune").exists()  # no trial started
    assert not (tmp_path / "mlruns").exists()


def test_two_workers_share_one_postgresql_study(tiny_catalog: Path, tmp_path: Path) -> None:
    url = os.environ.get("SIGTRADE_PG_URL", "")
    need(bool(url), "SIGTRADE_PG_URL is not set (a PostgreSQL server: .ci/postgres starts one on loopback)")
    config = _write_config(tmp_path / "tiny.toml", tiny_catalog, TUNE)
    study = f"pytest-{uuid.uuid4().hex[:10]}"
    tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    Tracker(tracking, experiment=f"sigtrade-tune/{study}")  # the workers' store (schema created once)
    cmd = [sys.executable, "-m", "engine", "tune", str(config), "--trials", "3", "--storage", url,
           "--study", study, "--tracking-uri", tracking, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        outputs = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, f"worker {w.pid} failed:\n{out}\n{err}"

    loaded = optuna.load_study(study_name=study, storage=url)
    try:
        trials = loaded.get_trials()
        assert len(trials) == 6
        assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
        assert sorted(t.number for t in trials) == list(range(6))  # handed out once each
        assert len({t._trial_id for t in trials}) == 6
        by_pid: dict[int, int] = {}
        for t in trials:
            by_pid[t.user_attrs["pid"]] = by_pid.get(t.user_attrs["pid"], 0) + 1
        assert by_pid == {w.pid: 3 for w in workers}  # both processes contributed their trials
        params = {json.dumps(t.params, sort_keys=True) for t in trials}
        assert len(params) == 6  # no parameter set scored twice
        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name(f"sigtrade-tune/{study}")
        runs = client.search_runs([exp.experiment_id], "tags.`sigtrade.kind` = 'tune-trial'")
        assert sorted(int(r.data.tags["sigtrade.trial"]) for r in runs) == list(range(6))
        assert {r.data.tags["sigtrade.worker"].split(":")[-1] for r in runs} == {str(w.pid) for w in workers}
    finally:
        optuna.delete_study(study_name=study, storage=url)


def test_core_only_install_gets_help_and_an_install_hint(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; sys.modules['optuna'] = None; sys.modules['mlflow'] = None\n"
        "from engine.cli.app import main\n"
        "main(sys.argv[1:])\n"
    )
    helped = subprocess.run([sys.executable, "-c", code, "tune", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=root)
    assert helped.returncode == 0, helped.stderr
    assert "--storage" in helped.stdout
    proc = subprocess.run([sys.executable, "-c", code, "tune", str(tmp_path / "x.toml"), "--trials", "1"],
                          capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 6, proc.stderr
    assert "needs optuna" in proc.stderr
    assert "research" in proc.stderr
