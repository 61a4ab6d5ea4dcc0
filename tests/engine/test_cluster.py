"""``--cluster`` on a real two-node Ray cluster (127.0.0.1, 2 CPUs) against the local run, on real hourly bars.

What a user would check: the sweep's every row, statistic (DSR, PBO, walk-forward) and
verify-top re-run are the local run's; a backtest batch equals the same backtests run
one by one; a worker killed mid-task is retried and the batch is complete without
duplicates; and the single-machine path never imports Ray, while ``--cluster`` without
Ray says what to install.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

GRID = ["--grid", "strategy.entry_threshold=0.48:0.56:0.02", "--grid", "regime.trend.sma=0,50", "--grid", "risk.stop_loss=0,0.01"]
SWEEP_OPTS = ["--top", "5", "--verify-top", "1", "--walk-forward", "train=2M,test=1M", "--pbo-blocks", "8"]


def sigtrade(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    full.pop("SIGTRADE_RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout, env=full)


@pytest.fixture(scope="module")
def batch_configs(overlay_catalog: Path, overlay_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two config files of different strategy kinds over real bars (a short window: a backtest is ~2 s)."""
    root = tmp_path_factory.mktemp("cluster_batch")
    data = f'[data]\ncatalog = "{overlay_catalog}"\nsymbols = ["SPY", "AAPL", "AMD"]\nstart = "2024-03-01"\nend = "2024-05-31"\n'
    sma = root / "sma.toml"
    sma.write_text(data + '[strategy]\nkind = "sma_cross"\nfast = 10\nslow = 30\n')
    nn = root / "nn.toml"
    nn.write_text(data + f'[strategy]\nkind = "signal"\nmodel = "{overlay_model}"\nentry_threshold = 0.5\n[risk]\nstop_loss = 0.01\n')
    return [sma, nn]


BATCH_GRID = ["--grid", "costs.slippage_bps=0,5"]


@pytest.fixture(scope="module")
def one_by_one(batch_configs: list[Path]) -> dict[str, Any]:
    """The batch's four backtests run one by one, in this process, as single backtests."""
    from engine.config import load_config
    from engine.runner import run_backtest

    out = {}
    for path in batch_configs:
        for slip in (0, 5):
            out[f"{path.stem}__slippage_bps={slip}"] = run_backtest(load_config(path, [f"costs.slippage_bps={slip}"]))
    return out


def _check_batch(out: Path, expected: dict[str, Any]) -> None:
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["run"]) == list(expected), "every run once, in batch order"
    for name, res in expected.items():
        metrics = json.loads((out / name / "metrics.json").read_text())
        from engine.metrics import json_safe

        assert metrics == json.loads(json.dumps(json_safe(res.metrics))), name
        fills = pd.read_parquet(out / name / "fills.parquet")
        pd.testing.assert_frame_equal(fills, res.strategy.fills[list(fills.columns)].reset_index(drop=True), check_exact=True)
        eq = pd.read_parquet(out / name / "equity.parquet")
        assert (eq["strategy"].to_numpy() == res.strategy.equity.to_numpy()).all(), name
        row = summary.set_index("run").loc[name]
        assert row["trades"] == res.metrics["trades"]
        costs = json.loads((out / name / "diagnosis.json").read_text())["costs"]  # each run is diagnosed in its task
        assert costs["commission"] == pytest.approx(res.metrics["commission_paid"], abs=1e-9), name
        assert costs["net_pnl"] == pytest.approx(res.metrics["final_equity"] - res.metrics["capital"], abs=1e-6), name


def test_sweep_on_the_cluster_equals_the_local_run(ray_cluster: Any, sweep_config: Path, tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "cluster"
    # the local run, in a process of its own that also proves Ray is never imported without --cluster
    code = (
        "import sys\nfrom engine.cli.app import main\n"
        f"try:\n    main({['sweep', str(sweep_config), *GRID, *SWEEP_OPTS, '--out', str(local)]!r})\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('RAY IMPORTED' if 'ray' in sys.modules else 'no ray import')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SIGTRADE_RAY_ADDRESS"}
    lp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env={**env, "COLUMNS": "200"})
    assert lp.returncode == 0, lp.stderr
    assert lp.stdout.rstrip().endswith("no ray import")
    cp = sigtrade("sweep", str(sweep_config), *GRID, *SWEEP_OPTS, "--out", str(remote), "--cluster", ray_cluster.address)
    assert cp.returncode == 0, cp.stderr
    assert "2 CPU(s) on 2 node(s)" in cp.stderr
    assert "0 retried" in cp.stderr
    # every row and figure, bit for bit
    a, b = pd.read_parquet(local / "results.parquet"), pd.read_parquet(remote / "results.parquet")
    assert len(a) == 20
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # DSR, PBO and the walk-forward choices and stitched result: identical numbers
    ja, jb = json.loads((local / "overfitting.json").read_text()), json.loads((remote / "overfitting.json").read_text())
    assert ja == jb
    assert ja["overfitting"]["dsr"] is not None and ja["overfitting"]["pbo"] is not None
    assert ja["overfitting"]["walk_forward"]["n_windows"] >= 3
    # the printed statistics and the verify-top table (kernel vs event engine, both runs)
    def stats(text: str) -> list[str]:
        keep = ("configurations tried", "best by Sharpe", "Deflated", "PBO", "walk-forward")
        return [ln for ln in text.splitlines() if ln.startswith(keep) or ("│" in ln and ("kernel" in ln or "event engine" in ln))]

    assert len(stats(cp.stdout)) == 5 + 2
    assert stats(lp.stdout[: lp.stdout.rfind("no ray import")]) == stats(cp.stdout)
    assert cp.stdout.count("fills and equity: yes") == 1


def test_backtest_batch_on_the_cluster_equals_the_backtests_one_by_one(
    ray_cluster: Any, batch_configs: list[Path], one_by_one: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    proc = sigtrade("backtest", *map(str, batch_configs), *BATCH_GRID, "--out", str(out), "--cluster", ray_cluster.address)
    assert proc.returncode == 0, proc.stderr
    assert "4 task(s) on 2 CPU(s); 0 retried" in proc.stderr
    assert "4 backtest(s)" in proc.stdout
    _check_batch(out, one_by_one)


def test_backtest_batch_runs_without_a_cluster_too(batch_configs: list[Path], one_by_one: dict[str, Any], tmp_path: Path) -> None:
    """The same batch on this machine alone, one backtest after another."""
    from engine.cli.backtest_cmd import backtest

    out = tmp_path / "batch"
    backtest(configs=batch_configs, set_=[], out=out, as_json=False, replay_dir=None, grid=BATCH_GRID[1:], cluster=None)
    _check_batch(out, one_by_one)


def _batch_under_fault(args: list[str], strike: Callable[[], bool]) -> subprocess.CompletedProcess[str]:
    """``sigtrade backtest ARGS`` while a thread calls *strike* every 50 ms until it strikes (returns True), 240 s at most."""
    stop = threading.Event()

    def watch() -> None:
        end = time.monotonic() + 240
        while not stop.is_set() and time.monotonic() < end:
            if strike():
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        return sigtrade("backtest", *args)
    finally:
        stop.set()
        thread.join(timeout=15)


def test_a_worker_killed_mid_task_is_retried_and_no_row_is_lost_or_doubled(
    ray_cluster: Any, batch_configs: list[Path], one_by_one: dict[str, Any], tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_a_worker() -> bool:
        pids = ray_cluster.worker_pids("sigtrade.backtest")
        if not pids:
            return False
        time.sleep(0.5)  # mid-task: the backtest has started
        try:
            os.kill(pids[0], signal.SIGKILL)
        except ProcessLookupError:
            return False
        killed.append(pids[0])
        return True

    out = tmp_path / "batch"
    proc = _batch_under_fault([str(batch_configs[1]), *BATCH_GRID, "--out", str(out), "--cluster", ray_cluster.address],
                              kill_a_worker)
    assert killed, "no worker was running a backtest to kill"
    assert proc.returncode == 0, proc.stderr
    assert "2 task(s) on 2 CPU(s); 1 retried" in proc.stderr
    _check_batch(out, {k: v for k, v in one_by_one.items() if k.startswith(batch_configs[1].stem)})


def test_a_node_lost_mid_task_is_retried_and_no_row_is_lost_or_doubled(
    ray_cluster: Any, batch_configs: list[Path], one_by_one: dict[str, Any], tmp_path: Path
) -> None:
    node = ray_cluster.add_node(cpus=1)  # a third machine, lost while it runs a backtest
    lost: list[int] = []

    def lose_the_node() -> bool:
        if not ray_cluster.worker_pids("sigtrade.backtest", node):
            return False
        time.sleep(0.5)  # mid-task
        ray_cluster.kill_node(node)
        lost.append(node.pid)
        return True

    out = tmp_path / "batch"
    try:
        proc = _batch_under_fault([*map(str, batch_configs), *BATCH_GRID, "--out", str(out),
                                   "--cluster", ray_cluster.address], lose_the_node)
    finally:
        if node.poll() is None:
            ray_cluster.kill_node(node)
    assert lost, "no backtest ran on the extra node"
    assert proc.returncode == 0, proc.stderr
    retried = int(proc.stderr.rsplit(" retried", 1)[0].rsplit(" ", 1)[-1])
    assert retried >= 1 and f"{len(one_by_one)} task(s) on" in proc.stderr, proc.stderr
    _check_batch(out, one_by_one)


def test_cluster_without_ray_says_what_to_install(sweep_config: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from engine.cli.app import main\n"
        f"main({['sweep', str(sweep_config), '--grid', 'risk.stop_loss=0,0.01', '--cluster', 'local:2']!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 6, proc.stderr
    assert 'pip install -e ".[cluster]"' in proc.stderr
    assert "Traceback" not in proc.stderr
    # the variable works as the option does, and a malformed address is one clear message
    bad = sigtrade("backtest", str(sweep_config), "--cluster", "nonsense", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "is not a Ray address" in bad.stderr


def test_cluster_addresses_are_parsed_without_ray() -> None:
    from engine.cluster.address import parse_cluster
    from engine.errors import ConfigError

    assert parse_cluster("local:3", env=False).num_cpus == 3  # type: ignore[union-attr]
    assert parse_cluster("local", env=False).local  # type: ignore[union-attr]
    assert parse_cluster("auto", env=False).address == "auto"  # type: ignore[union-attr]
    assert parse_cluster("10.0.0.5:6379", env=False).address == "10.0.0.5:6379"  # type: ignore[union-attr]
    assert parse_cluster(None, env=False) is None and parse_cluster("  ", env=False) is None
    for bad in ("local:0", "local:x", "host", "host:99999", "ray://h:1"):
        with pytest.raises(ConfigError):
            parse_cluster(bad, env=False)


def test_ctrl_c_cancels_the_outstanding_tasks(ray_cluster: Any, batch_configs: list[Path], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIGTRADE_RAY_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "backtest", *map(str, batch_configs), *BATCH_GRID, "--grid", "risk.stop_loss=0,0.02",
         "--out", str(tmp_path / "batch"), "--cluster", ray_cluster.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        end = time.monotonic() + 120
        while not ray_cluster.worker_pids("sigtrade.backtest") and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        assert ray_cluster.worker_pids("sigtrade.backtest"), "no backtest task started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "outstanding task(s) cancelled" in err
    n = int(err.split("interrupted[/]: " if "[/]" in err else "interrupted: ")[1].split()[0])
    assert n >= 6, err  # 8 runs on 2 CPUs: at most 2 had finished or were running when Ctrl-C came
    end = time.monotonic() + 30
    while ray_cluster.worker_pids("sigtrade.backtest") and time.monotonic() < end:
        time.sleep(0.2)
    assert not ray_cluster.worker_pids("sigtrade.backtest"), "a cancelled backtest is still running"
    assert not (tmp_path / "batch" / "summary.csv").exists(), "nothing half-written"


def test_an_error_raised_by_a_task_is_reported_as_itself(ray_cluster: Any, batch_configs: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(batch_configs[0].read_text().replace('symbols = ["SPY", "AAPL", "AMD"]', 'symbols = ["SPY", "NOPE"]'))
    proc = sigtrade("backtest", str(batch_configs[0]), str(bad), "--cluster", ray_cluster.address)
    assert proc.returncode in (2, 3), proc.stderr
    assert "NOPE" in proc.stderr and "internal error" not in proc.stderr and "Traceback" not in proc.stderr
