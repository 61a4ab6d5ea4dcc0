"""The layering is a checked contract: engine and models never import the research stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is part of the [dev] extra"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" not in proc.stdout.lower() or "0 broken" in proc.stdout.lower()


def test_core_cli_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['optuna'] = None; "
        "sys.modules['mlflow'] = None; sys.modules['transformers'] = None\n"
        "from engine.cli.app import _register_all; _register_all()\n"
        "import engine.runner, engine.report, strategies.sma_cross, strategies.buy_and_hold\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
