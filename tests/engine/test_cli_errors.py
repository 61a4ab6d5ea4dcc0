"""Every kind of user mistake gets one line, a non-zero exit and nothing written.

One test per case of the robustness contract (README "When something is wrong"): bad
numbers and types in a config or a --set, empty and repeated lists, output paths that
cannot be written, a card that disagrees with its model, advice that must be true.
Each asserts the exit code, the one line of message (what, where, what to do) and that
the command left nothing behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli_run import run_cli, tree

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.sample import SampleSpec, write_sample

    root = tmp_path_factory.mktemp("errors") / "catalog"
    write_sample(root, SampleSpec(n_symbols=3, start="2024-01-02", end="2024-03-28"))
    return root


@pytest.fixture
def work(tmp_path: Path, catalog: Path) -> Path:
    """A working directory with a small backtest config in it."""
    (tmp_path / "bt.toml").write_text(
        f'[data]\ncatalog = "{catalog}"\nstart = "2024-02-01"\n[strategy]\nkind = "sma_cross"\nfast = 5\nslow = 20\n'
    )
    return tmp_path


def _one_line_error(result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(("override", "needles"), [
    ("portfolio.capital=inf", ["portfolio.capital = inf", "> 0 and <= 1e10", "nan and inf are not allowed"]),
    ("portfolio.capital=1e15", ["portfolio.capital = 1e15", "<= 1e10"]),
    ("costs.slippage_bps=nan", ["costs.slippage_bps = nan", "from 0 to 1,000"]),
    ("metrics.risk_free_rate=1e9", ["metrics.risk_free_rate = 1e9", "from -0.5 to 1"]),
    ("risk.take_profit=-inf", ["risk.take_profit = -inf"]),
    ("costs.commission_min=50000", ["costs.commission_min", "more than a whole position"]),
    ('portfolio.fractional="true"', ['portfolio.fractional = "true"', "write fractional = true (no quotes)"]),
    ("portfolio.fractional=1", ["write fractional = true (no quotes)"]),
    ("execution.close_at_end=yes", ["write close_at_end = true (no quotes)"]),
    ("portfolio.max_positions=2.0", ["write max_positions = 2 (a whole number"]),
    ("data.symbols=[]", ["data.symbols is empty"]),
    ('data.symbols=["SYN01","SYN01"]', ['data.symbols lists "SYN01" twice']),
    ("costs.slipage_bps=1", ["unknown key 'costs.slipage_bps' - did you mean 'slippage_bps'?"]),
])
def test_bad_values_in_a_backtest_are_one_line_and_write_nothing(
    work: Path, capsys: pytest.CaptureFixture[str], override: str, needles: list[str]
) -> None:
    before = tree(work)
    result = run_cli(["backtest", "bt.toml", "--set", override, "--out", "out/run"], capsys, cwd=work)
    _one_line_error(result, 2, "bt.toml: " if "whole position" not in needles[-1] else "", *needles)
    assert tree(work) == before


@pytest.mark.parametrize(("grid", "needles"), [
    ("strategy.entry_threshold=nan,0.5", ["strategy.entry_threshold = nan"]),
    ("costs.slippage_bps=inf", ["costs.slippage_bps = inf"]),
    ("strategy.entry_threshold=", ["has no values"]),
    ("risk.stop_loss=0:0.5:1e-12", ["more than 100,000 values on one axis"]),
    ("strategy.max_hold_bars=-1e300:0:1", ["more than 100,000 values on one axis"]),
    ("strategy.entry_threshold=0.5,0.5", ["repeats a value"]),
])
def test_bad_grids_are_one_line(work: Path, capsys: pytest.CaptureFixture[str], grid: str, needles: list[str]) -> None:
    config = work / "sig.toml"
    config.write_text(config.parent.joinpath("bt.toml").read_text().replace(
        'kind = "sma_cross"', f'kind = "signal"\nmodel = "{ROOT / "models" / "demo_mlp"}"'))
    before = tree(work)
    result = run_cli(["sweep", str(config), "--grid", grid, "--out", "sweep-out"], capsys, cwd=work)
    _one_line_error(result, 2, *needles)
    assert "🅱" not in result.stderr  # 'a:b:step' is not an emoji code
    assert tree(work) == before


def test_a_walk_forward_longer_than_the_data_stops_before_the_sweep(work: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = work / "sig.toml"
    config.write_text(config.parent.joinpath("bt.toml").read_text().replace(
        'kind = "sma_cross"', f'kind = "signal"\nmodel = "{ROOT / "models" / "demo_mlp"}"'))
    before = tree(work)
    result = run_cli(["sweep", str(config), "--grid", "strategy.entry_threshold=0.5,0.6",
                      "--walk-forward", "train=100M,test=3M", "--out", "sweep-out"], capsys, cwd=work)
    _one_line_error(result, 2, "--walk-forward train=100M,test=3M", "shorter than one training window",
                    "use a shorter train window")
    assert "configurations tried" not in result.stdout  # refused before the kernels ran
    assert tree(work) == before


def test_outputs_are_checked_before_any_work(work: Path, catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "a-file").write_text("x")
    cases = [
        (["--out", "a-file"], "--out a-file is a file, not a directory"),
        (["--out", "a-file/run"], "a-file is a file, so no directory can be made under it"),
        (["--out", str(catalog / "results")], "is inside the catalog"),
        (["--out", str(catalog)], "is inside the catalog"),
        (["--out", "/proc/sigtrade-cannot-write-here"], "cannot write in /proc"),
    ]
    before_catalog = tree(catalog)
    for extra, needle in cases:
        before = tree(work)
        result = run_cli(["backtest", "bt.toml", *extra], capsys, cwd=work)
        _one_line_error(result, 2, needle)
        assert tree(work) == before
    assert tree(catalog) == before_catalog


def test_paper_outputs_are_checked_before_anything_is_sent(work: Path, catalog: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (work / "a-file").write_text("x")
    result = run_cli(["paper", "bt.toml", "--out", "a-file"], capsys, cwd=work)
    _one_line_error(result, 2, "--out a-file is a file")
    result = run_cli(["paper", "bt.toml", "--out", "ok", "--record", str(catalog / "rec")], capsys, cwd=work)
    _one_line_error(result, 2, "--record", "is inside the catalog")
    result = run_cli(["paper", "bt.toml", "--log-level", "LOUD"], capsys, cwd=work)
    _one_line_error(result, 2, "--log-level 'LOUD' is not one of ERROR, WARNING, INFO, DEBUG")
    assert not (work / "ok").exists() and not (work / "out").exists()


def test_a_directory_given_as_config(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["backtest", str(work)], capsys, cwd=work)
    _one_line_error(result, 2, "is a directory: pass a TOML file in it")


@pytest.mark.parametrize("command", ["backtest", "sweep", "paper"])
def test_a_config_that_is_not_text(work: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    (work / "binary.toml").write_bytes(b"\x00\xff\xfe\x1f\x8b not a config")
    before = tree(work)
    extra = ["--grid", "strategy.entry_threshold=0.5,0.6"] if command == "sweep" else []
    result = run_cli([command, "binary.toml", *extra], capsys, cwd=work)
    _one_line_error(result, 2, "binary.toml: not UTF-8 text (byte 1 is 0xff)", "re-save it as UTF-8")
    assert tree(work) == before


@pytest.mark.parametrize(("content", "needle"), [
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b'{"metrics": ', "is not valid JSON"),
    (b"[1, 2]", "holds a JSON list, expected a JSON object"),
])
def test_a_damaged_saved_run_is_named(work: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                                      needle: str) -> None:
    run = work / "run"
    run.mkdir()
    (run / "diagnosis.json").write_bytes(content)
    result = run_cli(["diagnose", "run"], capsys, cwd=work)
    _one_line_error(result, 3, "diagnosis.json", needle, "re-run the command that wrote it")


@pytest.mark.parametrize(("content", "needle"), [
    (None, "is not a paper-session record (session.json missing)"),
    (b"\xff\xfe{", "session.json is not UTF-8 text"),
    (b'{"config": ', "session.json is not valid JSON"),
    (b"[]", "session.json holds a JSON list, expected a JSON object"),
    (b"{}", "holds no 'config' table"),
])
def test_a_damaged_recording_is_named(work: Path, capsys: pytest.CaptureFixture[str], content: bytes | None,
                                      needle: str) -> None:
    rec = work / "rec"
    rec.mkdir()
    (rec / "bars.jsonl").write_text("")
    if content is not None:
        (rec / "session.json").write_bytes(content)
    before = tree(work)
    result = run_cli(["backtest", "bt.toml", "--replay", "rec"], capsys, cwd=work)
    _one_line_error(result, 3, needle)
    assert tree(work) == before


def test_lines_of_a_recording_that_are_not_bars_are_skipped(tmp_path: Path) -> None:
    from engine.replay import read_bars

    bar = {"symbol": "SPY", "ts": 1, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0, "live": True}
    (tmp_path / "bars.jsonl").write_bytes(b"\n".join([
        json.dumps(bar).encode(), b'{"symbol": "SPY", "ts": 2, "op', b"\xff\xfe garbage", b"[1, 2]", b"5",
        b'{"symbol": "AAPL"}', json.dumps({**bar, "ts": 3}).encode(), b"",
    ]))
    frame = read_bars(tmp_path)
    assert frame["ts"].tolist() == [1, 3] and frame["symbol"].tolist() == ["SPY", "SPY"]


def test_an_empty_ensemble_is_refused(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ens = work / "ens"
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps({"members": [], "combiner": "weighted_mean"}))
    result = run_cli(["models", "validate", str(ens)], capsys, cwd=work)
    _one_line_error(result, 4, "members", "length >= 1")


# --- models: the card must say what the network was trained on ---------------------------------


def _edit_card(folder: Path, change) -> None:
    card = json.loads((folder / "card.json").read_text())
    change(card)
    (folder / "card.json").write_text(json.dumps(card, indent=2))


@pytest.mark.parametrize(("change", "needles"), [
    (lambda c: c["feature_set"].update(features=c["feature_set"]["features"][::-1]),
     ["feature_set.features", "is at position 0 in the card but at position"]),
    (lambda c: c["feature_set"]["features"].__setitem__(2, "rsi_99"),
     ["feature_set.features", "unknown ['rsi_99']"]),
    (lambda c: c["feature_set"]["features"].__setitem__(2, c["feature_set"]["features"][3]),
     ["feature_set.features", "duplicates"]),
    (lambda c: (c["feature_set"]["features"].pop(), c["scaler"]["mean"].pop(), c["scaler"]["std"].pop()),
     ["the card lists 18 features, the network was trained on 19", "is missing"]),
    (lambda c: c["scaler"]["mean"].__setitem__(0, 123.0), ["scaler.mean"]),
    (lambda c: c.update(lookback=c["lookback"] + 0), []),  # untouched: valid
])
def test_a_card_edited_after_export_is_refused_naming_the_feature(
    work: Path, capsys: pytest.CaptureFixture[str], change, needles: list[str]
) -> None:
    model = work / "mlp"
    shutil.copytree(ROOT / "models" / "demo_mlp", model)
    n = len(json.loads((model / "card.json").read_text())["feature_set"]["features"])
    assert n == 19
    _edit_card(model, change)
    result = run_cli(["models", "validate", str(model)], capsys, cwd=work)
    if not needles:
        assert result.code == 0, result.stderr
        return
    _one_line_error(result, 4, *needles)
    config = work / "sig.toml"
    config.write_text((work / "bt.toml").read_text().replace('kind = "sma_cross"', f'kind = "signal"\nmodel = "{model}"'))
    result = run_cli(["backtest", str(config), "--out", "out"], capsys, cwd=work)
    _one_line_error(result, 4, needles[0])
    assert not (work / "out").exists()


def test_a_model_exported_before_the_contract_says_how_to_re_export(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    import onnx

    model = work / "old"
    shutil.copytree(ROOT / "models" / "demo_mlp", model)
    proto = onnx.load(model / "model.onnx")
    del proto.metadata_props[:]
    blob = proto.SerializeToString()
    (model / "model.onnx").write_bytes(blob)
    _edit_card(model, lambda c: c.update(onnx_sha256=hashlib.sha256(blob).hexdigest()))
    result = run_cli(["models", "validate", str(model)], capsys, cwd=work)
    _one_line_error(result, 4, "carries no input contract", f"sigtrade export runs/<name> --out {model}",
                    "python -m research.demo_models")
