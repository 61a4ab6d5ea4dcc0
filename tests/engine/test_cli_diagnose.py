"""``sigtrade diagnose`` as a user runs it: a saved backtest, its confirmation, a sweep's best configurations, bad folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.engine.conftest import OVERLAY_SYMBOLS


def sigtrade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=600)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (as ``sigtrade`` runs it, without a new interpreter): (exit code, stdout, stderr)."""
    from engine.cli.app import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def config(overlay_catalog: Path, overlay_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diagnose") / "run.toml"
    path.write_text(
        f'[data]\ncatalog = "{overlay_catalog}"\nsymbols = {json.dumps(OVERLAY_SYMBOLS)}\n'
        'start = "2024-01-02"\nend = "2024-04-30"\n'
        "[portfolio]\nmax_positions = 2\n[costs]\ncommission_bps = 1\nslippage_bps = 1\n"
        f'[strategy]\nkind = "signal"\nmodel = "{overlay_model}"\n'
        "[diagnosis]\nrandom_draws = 300\nseed = 3\n"
    )
    return path


@pytest.fixture(scope="module")
def saved(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diagnose") / "run"
    proc = sigtrade("backtest", str(config), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "diagnosis:" in proc.stdout and f"sigtrade diagnose {out}" in proc.stdout
    return out


def test_backtest_out_writes_the_diagnosis_that_diagnose_prints(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((saved / "diagnosis.json").read_text())
    assert data["settings"]["random_draws"] == 300 and data["settings"]["seed"] == 3
    code, out, err = cli(capsys, "diagnose", str(saved), "--json")
    assert code == 0, err
    assert json.loads(out) == data
    code, out, err = cli(capsys, "diagnose", str(saved))
    assert code == 0, err
    for needle in ("1. costs", "break-even (net total return = 0)", "cost curve", "2. churn", "3. signal quality",
                   "4. controls", "(b) universe buy-and-hold", "300 random 2-name buy-and-holds (seed 3)",
                   "5. net P&L by symbol", "6. risk", "7. verdict: Costs"):
        assert needle in out, needle
    assert data["verdict"]["text"][:60] in " ".join(out.split())


def test_confirm_reruns_the_event_engine_at_the_break_even_cost(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    before = json.loads((folder / "diagnosis.json").read_text())
    assert not before["costs"]["break_even"]["confirmation"]["ran"]
    code, out, err = cli(capsys, "diagnose", str(folder), "--confirm", "--json")
    assert code == 0, err
    after = json.loads((folder / "diagnosis.json").read_text())
    conf = after["costs"]["break_even"]["confirmation"]
    assert conf["ran"] and abs(conf["event_total_return"]) < 0.005
    assert conf["event_total_return"] == pytest.approx(conf["fast_path_total_return"], abs=1e-12)
    assert "the event engine gives" in after["verdict"]["text"]
    assert json.loads(out) == after


def test_a_sweep_folder_is_diagnosed_for_its_best_configurations(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    code, _, err = cli(capsys, "sweep", str(config), "--grid", "strategy.entry_threshold=0.50,0.55,0.60", "--no-stats", "--out", str(sweep))
    assert code == 0, err
    assert (sweep / "config.json").is_file()
    code, out, err = cli(capsys, "diagnose", str(sweep), "--top", "2", "--metric", "total_return", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert len(found) == 2
    results = pd.read_parquet(sweep / "results.parquet").sort_values("total_return", ascending=False, kind="stable")
    for item, (cid, row) in zip(found, results.head(2).iterrows(), strict=True):
        assert item["config"] == cid
        assert item["books"].startswith("fast path")
        assert item["controls"]["strategy"]["final_equity"] == pytest.approx(row["final_equity"], abs=1e-6)
        assert (sweep / "diagnosis" / f"config_{cid}" / "report.html").is_file()
        assert (sweep / "diagnosis" / f"config_{cid}" / "diagnosis.json").is_file()
    code, out, err = cli(capsys, "diagnose", str(sweep), "--top", "1")
    assert code == 0, err
    assert "config " in out and "7. verdict" in out and "report:" in out


def _missing(p: Path) -> Path:
    return p / "missing"


def _old_backtest(p: Path) -> Path:
    (p / "old").mkdir()
    (p / "old" / "metrics.json").write_text("{}")
    return p / "old"


def _old_sweep(p: Path) -> Path:
    (p / "sw").mkdir()
    (p / "sw" / "results.parquet").write_text("")
    (p / "sw" / "overfitting.json").write_text("{}")
    return p / "sw"


def _empty(p: Path) -> Path:
    (p / "empty").mkdir()
    return p / "empty"


@pytest.mark.parametrize(
    ("make", "needle"),
    [(_missing, "is not a folder"), (_old_backtest, "without diagnosis.json"), (_old_sweep, "without config.json"),
     (_empty, "neither a backtest")],
)
def test_a_folder_that_is_not_a_run_is_one_message(
    tmp_path: Path, make: Callable[[Path], Path], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "diagnose", str(make(tmp_path)))
    assert code == 2, err
    assert needle in err and "Traceback" not in err


def test_a_corrupt_diagnosis_json_is_a_data_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "diagnosis.json").write_text("{not json")
    code, _, err = cli(capsys, "diagnose", str(folder))
    assert code == 3 and "is not valid JSON" in err and "Traceback" not in err
