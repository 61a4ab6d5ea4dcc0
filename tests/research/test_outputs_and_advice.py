"""Research commands write only where their config and options say, and give true advice.

* train, tune, export and evaluate, run from an empty working directory with every output
  named elsewhere, leave that directory empty (no runs/, mlruns/, out/ or cache folder);
* an output path that cannot be written stops the command before any training;
* a ``postgresql://`` URL with psycopg2 installed but psycopg (3) absent says which driver
  SQLAlchemy picked and how to name the installed one - never "install psycopg2".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests.cli_run import run_cli, tree  # noqa: E402

TRAIN = """
[data]
catalog = "{catalog}"
lookback = 8
train = "..2023-03-31"
validation = "2023-04-01..2023-05-15"
test = "2023-05-16.."
[label]
horizon = 3
[model]
hidden = 8
layers = 1
[train]
epochs = 1
[output]
name = "tiny"
run_dir = "{elsewhere}/run"
[tune]
architectures = ["mlp"]
export_trials = false
[tune.space.all]
"model.hidden" = {{ type = "int", low = 4, high = 8 }}
"""


def test_commands_write_only_where_they_are_told(tiny_catalog: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cwd, elsewhere = tmp_path / "cwd", tmp_path / "elsewhere"
    cwd.mkdir()
    config = tmp_path / "train.toml"
    config.write_text(TRAIN.format(catalog=tiny_catalog, elsewhere=elsewhere))
    track = f"sqlite:///{elsewhere / 'mlflow' / 'mlflow.db'}"
    steps = [
        ["train", config, "--tracking-uri", track, "--quiet"],
        ["export", elsewhere / "run", "--out", elsewhere / "model"],
        ["evaluate", elsewhere / "model", "--split", "validation", "--out", elsewhere / "eval"],
        ["tune", config, "--trials", "1", "--tracking-uri", track, "--quiet"],
    ]
    for args in steps:
        result = run_cli(args, capsys, cwd=cwd)
        assert result.code == 0, (args, result.stderr)
        assert tree(cwd) == set(), (args, tree(cwd))
    assert (elsewhere / "run" / "best.pt").is_file() and (elsewhere / "model" / "model.onnx").is_file()
    assert (elsewhere / "run" / "optuna.db").is_file()  # the study's default storage, beside the run
    assert (elsewhere / "run" / "tune" / "tiny" / "best.json").is_file()


def test_unwritable_outputs_stop_before_training(tiny_catalog: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x")
    config = tmp_path / "train.toml"
    config.write_text(TRAIN.format(catalog=tiny_catalog, elsewhere=tmp_path / "a-file"))
    result = run_cli(["train", config, "--no-track"], capsys, cwd=tmp_path)
    assert result.code == 2 and "output.run_dir" in result.message and "is a file" in result.message
    inside = TRAIN.format(catalog=tiny_catalog, elsewhere=tiny_catalog)
    config.write_text(inside)
    result = run_cli(["train", config, "--no-track"], capsys, cwd=tmp_path)
    assert result.code == 2 and "is inside the catalog" in result.message
    result = run_cli(["export", tmp_path / "no-run", "--out", tmp_path / "m"], capsys, cwd=tmp_path)
    assert result.code == 2 and "does not exist" in result.message
    assert not (tmp_path / "m").exists() and not (tiny_catalog / "run").exists()


def test_a_postgresql_url_without_a_driver_names_the_one_sqlalchemy_picked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy

    from engine.errors import ConfigError
    from research import db_drivers
    from research.tracking import check_tracking_uri
    from research.tune import open_storage

    # the situation of the [research] extra: psycopg2 installed, and SQLAlchemy (2.1) picking
    # psycopg (3), which is not, for a URL that names no driver
    assert importlib.util.find_spec("psycopg2") is not None
    chosen = sqlalchemy.engine.make_url("postgresql://h/db").get_dialect().driver
    if chosen != "psycopg" or importlib.util.find_spec("psycopg") is not None:
        monkeypatch.setattr(db_drivers, "_installed", lambda module: module == "psycopg2")
        assert "by naming it in the URL: postgresql+psycopg2://" in db_drivers.missing_driver_advice(
            "postgresql+psycopg://h/db")
        return
    for call in (lambda: open_storage("postgresql://tuner:s3cret@127.0.0.1:9/optuna"),
                 lambda: check_tracking_uri("postgresql://tuner:s3cret@127.0.0.1:9/mlflow")):
        with pytest.raises(ConfigError) as info:
            call()
        text = str(info.value)
        assert "uses the 'psycopg' driver for postgresql:// URLs" in text
        assert "pip install 'psycopg[binary]'" in text
        assert "postgresql+psycopg2://tuner:***@127.0.0.1:9/" in text
        assert "pip install psycopg2" not in text and "s3cret" not in text

    # with no other driver installed, the advice is just to install the chosen one
    monkeypatch.setattr(db_drivers, "_installed", lambda module: False)
    text = db_drivers.missing_driver_advice("postgresql+psycopg2://u@h/db")
    assert text == "the URL names the 'psycopg2' driver, and 'psycopg2' is not installed: pip install psycopg2-binary"


@pytest.mark.parametrize("command", [["train"], ["tune", "--trials", "1"], ["rl", "train"]])
def test_a_research_config_that_is_not_text(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            command: list[str]) -> None:
    (tmp_path / "binary.toml").write_bytes(b"\x00\xff\xfe\x1f\x8b not a config")
    before = tree(tmp_path)
    args = ["rl", "train", "binary.toml"] if command[0] == "rl" else [*command, "binary.toml"]
    result = run_cli(args, capsys, cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert result.message.count("\n") == 0 and "binary.toml: not UTF-8 text" in result.message, result.stderr
    assert "internal error" not in result.stderr
    assert tree(tmp_path) == before


@pytest.mark.parametrize(("content", "needle"), [
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b'{"data": ', "is not valid JSON"),
    (b'"a string"', "holds a JSON str, expected a JSON object"),
])
def test_a_damaged_model_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                                         needle: str) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(Path(__file__).resolve().parents[2] / "models" / "demo_mlp", model)
    (model / "train_config.json").write_bytes(content)
    before = tree(tmp_path)
    result = run_cli(["evaluate", "model"], capsys, cwd=tmp_path)
    assert result.code == 4, result.stderr
    assert "train_config.json" in result.message and needle in result.message, result.stderr
    assert "re-export the model with `sigtrade export`" in result.message
    assert tree(tmp_path) == before
