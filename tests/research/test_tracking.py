"""MLflow tracking of training runs: params, per-epoch metrics, artifacts, tags, Ctrl-C, bad URIs, CLI."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402

from engine.cli.app import main  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from research.config import train_config_from_dict  # noqa: E402
from research.export import export  # noqa: E402
from research.tracking import (  # noqa: E402
    RUN_LINK_FILE,
    Tracker,
    attach_export,
    check_tracking_uri,
    default_tracking_uri,
)
from research.train import TrainingInterrupted, load_checkpoint, prepare_data  # noqa: E402
from tests.research.conftest import tiny_raw  # noqa: E402

pytestmark = [pytest.mark.research, pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite tracking store for the module (creating its schema takes seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    Tracker(uri, experiment="warm-up")
    return uri


@pytest.fixture(scope="module")
def tiny_data(tiny_catalog: Path):
    return prepare_data(train_config_from_dict(tiny_raw(tiny_catalog)))


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_training_run_records_params_metrics_tags_and_artifacts(tiny_catalog: Path, tiny_data, tmp_path: Path,
                                                                 tracking_uri: str) -> None:
    cfg = train_config_from_dict(tiny_raw(tiny_catalog, tmp_path / "run", train={"epochs": 3, "patience": 9}))
    tracker = Tracker(tracking_uri, experiment="unit")
    result = tracker.train(cfg, data=tiny_data, command="sigtrade train tiny.toml", tags={"team": "quant"})
    client = MlflowClient(tracking_uri)
    run = client.get_run(tracker.last_run_id)

    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny"
    p = run.data.params
    assert p["model.architecture"] == "mlp"
    assert p["model.hidden"] == "16"
    assert p["train.epochs"] == "3"
    assert p["data.validation"] == "2023-04-01..2023-05-15"
    assert p["data_range.start"] == tiny_data.data_start != ""
    assert p["data_range.end"] == tiny_data.data_end != ""
    assert json.loads(p["data_range.symbols"]) == tiny_data.symbols

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == (head or "unknown")
    assert tags["sigtrade.status"] == "completed"
    assert tags["sigtrade.command"] == "sigtrade train tiny.toml"
    assert tags["team"] == "quant"

    f1 = _history(client, run.info.run_id, "val_f1")
    assert [step for step, _ in f1] == [1, 2, 3]
    assert [v for _, v in f1] == pytest.approx([h["val_f1"] for h in result.history])
    assert [s for s, _ in _history(client, run.info.run_id, "train_loss")] == [1, 2, 3]
    assert run.data.metrics["best_f1"] == pytest.approx(result.best_metric)
    assert run.data.metrics["best_epoch"] == result.best_epoch
    assert run.data.metrics["train_samples"] == tiny_data.splits["train"].n

    assert _artifacts(client, run.info.run_id) == {"run.json", "checkpoint/best.pt"}
    # exporting the run folder later adds the card and the ONNX file to the same run
    link = json.loads((tmp_path / "run" / RUN_LINK_FILE).read_text())
    assert link["run_id"] == run.info.run_id
    export(tmp_path / "run", tmp_path / "model")
    note = attach_export(tmp_path / "run", tmp_path / "model")
    assert note is not None
    assert run.info.run_id in note
    assert {"model/model.onnx", "model/card.json", "model/train_config.json"} <= _artifacts(client, run.info.run_id)


def test_ctrl_c_marks_the_run_killed_and_keeps_the_best_checkpoint(tiny_catalog: Path, tiny_data, tmp_path: Path,
                                                                   tracking_uri: str) -> None:
    def ctrl_c(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    cfg = train_config_from_dict(tiny_raw(tiny_catalog, tmp_path / "run", train={"epochs": 5}))
    tracker = Tracker(tracking_uri, experiment="unit")
    with pytest.raises(TrainingInterrupted) as info:
        tracker.train(cfg, data=tiny_data, on_epoch=ctrl_c)
    client = MlflowClient(tracking_uri)
    run = client.get_run(tracker.last_run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["sigtrade.status"] == "interrupted"
    assert [s for s, _ in _history(client, run.info.run_id, "val_f1")] == [1, 2]  # the last epoch too
    assert "checkpoint/best.pt" in _artifacts(client, run.info.run_id)
    ckpt = load_checkpoint(tmp_path / "run")  # kept locally, loadable
    assert ckpt["epoch"] == info.value.result.best_epoch >= 1
    assert run.data.metrics["best_epoch"] == ckpt["epoch"]


def test_an_error_marks_the_run_failed(tiny_catalog: Path, tiny_data, tmp_path: Path, tracking_uri: str) -> None:
    def boom(epoch: int, metrics: dict) -> None:
        raise RuntimeError("disk full")

    cfg = train_config_from_dict(tiny_raw(tiny_catalog, tmp_path / "run"))
    tracker = Tracker(tracking_uri, experiment="unit")
    with pytest.raises(RuntimeError):
        tracker.train(cfg, data=tiny_data, on_epoch=boom)
    run = MlflowClient(tracking_uri).get_run(tracker.last_run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["sigtrade.error"] == "disk full"


def test_bad_tracking_uris_are_refused_quickly_with_what_to_do(tmp_path: Path, monkeypatch) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"unreachable.*--no-track"):
        check_tracking_uri("http://127.0.0.1:9", timeout=3)  # loopback, nothing listens on port 9
    assert time.perf_counter() - t0 < 10
    with pytest.raises(ConfigError, match="no scheme"):
        check_tracking_uri("mlruns")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        check_tracking_uri("sqlite:////proc/sigtrade/mlflow.db")
    with pytest.raises(ConfigError, match="unreachable"):
        check_tracking_uri("postgresql+psycopg2://u:secret@127.0.0.1:9/db", timeout=3)

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert default_tracking_uri(tmp_path) == "http://mlflow.internal:5000"


def _tiny_toml(path: Path, catalog: Path) -> Path:
    path.write_text(
        f'[data]\ncatalog = "{catalog}"\nlookback = 12\ntrain = "..2023-03-31"\n'
        'validation = "2023-04-01..2023-05-15"\ntest = "2023-05-16.."\n'
        '[label]\nhorizon = 3\n[model]\narchitecture = "mlp"\nhidden = 8\nlayers = 1\n'
        '[train]\nepochs = 1\nthreads = 1\n'
        '[tune]\npruner = "none"\n',  # `sigtrade train` leaves the [tune] table to `sigtrade tune`
        encoding="utf-8")
    return path


def test_cli_train_fails_on_an_unreachable_tracking_uri_before_training(tiny_catalog: Path, tmp_path: Path,
                                                                         capsys) -> None:
    config = _tiny_toml(tmp_path / "tiny.toml", tiny_catalog)
    run = tmp_path / "runs" / "tiny"
    with pytest.raises(SystemExit) as exc:
        main(["train", str(config), "--set", f'output.run_dir="{run}"', "--quiet",
              "--tracking-uri", "http://127.0.0.1:9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "tracking server http://127.0.0.1:9 is unreachable" in err
    assert "Traceback" not in err
    assert not run.exists()  # nothing trained, nothing written


def test_cli_train_and_export_are_tracked_by_default(tiny_catalog: Path, tmp_path: Path, tracking_uri: str,
                                                     monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    config = _tiny_toml(tmp_path / "tiny.toml", tiny_catalog)
    run = tmp_path / "runs" / "tiny"
    main(["train", str(config), "--set", f'output.run_dir="{run}"', "--quiet"])
    run_id = json.loads((run / RUN_LINK_FILE).read_text())["run_id"]
    assert f"MLflow run {run_id}" in capsys.readouterr().err
    main(["export", str(run), "--out", str(tmp_path / "model")])
    assert f"logged to MLflow run {run_id}" in capsys.readouterr().err

    client = MlflowClient(tracking_uri)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert client.get_experiment(got.info.experiment_id).name == "sigtrade"
    assert got.data.tags["mlflow.source.name"].startswith("sigtrade train ")
    assert {"run.json", "checkpoint/best.pt", "model/model.onnx", "model/card.json"} <= _artifacts(client, run_id)

    main(["train", str(config), "--set", f'output.run_dir="{tmp_path / "untracked"}"', "--quiet", "--no-track"])
    assert not (tmp_path / "untracked" / RUN_LINK_FILE).exists()
