"""Headless Chromium for the page tests: find it, load a page, read back its DOM and a screenshot.

``SIGTRADE_CHROMIUM`` names the binary (default: ``chromium`` or ``chromium-browser`` on
PATH); without one the test skips with the reason, or fails under SIGTRADE_REQUIRE_ALL=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import need


def find_chromium() -> str:
    """The Chromium binary, or skip (fail in CI) saying how to get one."""
    path = os.environ.get("SIGTRADE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    need(path is not None, "headless Chromium not found (install Debian's chromium or set SIGTRADE_CHROMIUM)")
    assert path is not None
    return path


def run_chromium(binary: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile under *cwd* (5 s of virtual time for scripts)."""
    cmd = [
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
        "--enable-logging=stderr", "--v=0", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={cwd / 'profile'}", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


class Dom(HTMLParser):
    """Ids of the DOM with the tags, classes and text found under each (and each id's attributes)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.under: dict[str, list[tuple[str, str]]] = {}
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.texts: dict[str, list[str]] = {}
        self.html = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for open_id in self.stack:
            if open_id is not None:
                self.under[open_id].append((tag, a.get("class") or ""))
        if tag in self.VOID:
            return
        el_id = a.get("id")
        if el_id:
            self.under.setdefault(el_id, [])
            self.text.setdefault(el_id, "")
            self.texts.setdefault(el_id, [])
            self.attrs[el_id] = a
        self.stack.append(el_id)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for open_id in self.stack:
            if open_id is not None:
                self.text[open_id] += data
                if data.strip():
                    self.texts[open_id].append(data.strip())

    def classes(self, el_id: str) -> set[str]:
        """Every class used under *el_id*."""
        return {c for _, cls in self.under[el_id] for c in cls.split()}

    def tags(self, el_id: str) -> list[str]:
        """Every tag under *el_id*, in order."""
        return [t for t, _ in self.under[el_id]]


def load_dom(binary: str, url: str, cwd: Path, *, shot: Path | None = None, height: int = 2600) -> tuple[Dom, str]:
    """The DOM of *url* once its scripts have run (its HTML in ``dom.html``), and Chromium's log.

    With *shot*, the same run saves a 1280-wide screenshot there (kept as the test's
    artifact; also copied to ``SIGTRADE_REPORT_SCREENSHOT``, a file or a folder, when set).
    """
    extra = [f"--screenshot={shot}", f"--window-size=1280,{height}"] if shot is not None else []
    proc = run_chromium(binary, *extra, "--dump-dom", url, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Dom()
    dom.html = proc.stdout
    dom.feed(proc.stdout)
    if shot is not None:
        assert shot.stat().st_size > 50_000, "the screenshot is blank"  # a blank page is a few kB
        if dest := os.environ.get("SIGTRADE_REPORT_SCREENSHOT"):
            target = Path(dest)
            shutil.copy(shot, target / shot.name if target.is_dir() else target)
    return dom, proc.stderr
