"""Drive ``sigtrade paper`` (the real CLI, in a subprocess) against the fake Alpaca on 127.0.0.1.

:class:`PaperHarness` starts :class:`~tests.fakes.alpaca_trading.FakeAlpacaTrading` and
:class:`~tests.fakes.alpaca_streams.FakeAlpacaStreams`, serves REST warm-up bars from the
sample catalog, writes a paper config, runs ``python -m engine paper`` with the fake's
URLs and keys in its environment, and pushes *minute* bars of future sessions (so every
one of them closes after the session started and is traded). :meth:`PaperHarness.hour`
pushes one hourly period as a few minute bars per symbol and, with ``wait=True``, waits
until the session has decided the previous period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from engine import catalog as cat
from engine import sessions
from tests.fakes.alpaca_streams import FakeAlpacaStreams
from tests.fakes.alpaca_trading import FakeAlpacaTrading

KEY, SECRET = "PKFAKEPAPER0123456789", "fakePaperSecret-abcdefghijklmnop"
REPO = Path(__file__).resolve().parents[2]
def _sample_catalog() -> Path:
    """The default SYNTHETIC sample catalog (what `make demo` builds), made once per machine in the temp dir.

    A clean checkout has no catalogs/sample; the demo models were trained on this universe.
    """
    from engine.sample import SampleSpec, is_current, write_sample

    path = Path(tempfile.gettempdir()) / f"sigtrade-test-sample-{os.getuid()}"
    if not is_current(path, SampleSpec()):
        write_sample(path, SampleSpec(), force=True)
    return path


SAMPLE = _sample_catalog()


def future_sessions(n: int) -> list[pd.Timestamp]:
    """The next *n* NYSE sessions after tomorrow (full days only), as session labels."""
    sched = sessions.calendar().schedule
    start = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=2)
    rows = sched.loc[start:]
    full = rows[(rows["close"] - rows["open"]) >= pd.Timedelta(hours=6.5)]
    return list(full.index[:n])


def recent_hour_starts(n: int) -> pd.DatetimeIndex:
    """Start times of the last *n* complete Alpaca hourly bars (10:00 ... 15:00 New York) before today."""
    sched = sessions.calendar().schedule
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    past = sched.loc[: today - pd.Timedelta(days=1)]
    starts: list[pd.Timestamp] = []
    for label, row in past.iloc[::-1].iterrows():
        close = row["close"]
        day = [pd.Timestamp(f"{label.date()} {h:02d}:00", tz="America/New_York").tz_convert("UTC") for h in range(10, 16)]
        starts = [t for t in day if t + pd.Timedelta(hours=1) <= close] + starts
        if len(starts) >= n:
            break
    return pd.DatetimeIndex(starts[-n:])


class PaperHarness:
    """Fakes + config + the ``sigtrade paper`` subprocess (a context manager)."""

    def __init__(self, tmp: Path, symbols: Sequence[str] = ("SPY", "SYN01"), *, warmup: int = 120,
                 settings: dict[str, Any] | None = None, fractionable: bool = True,
                 market: Sequence[str] = ()) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.symbols = list(symbols)
        self.market = [s for s in market if s not in self.symbols]
        """Symbols with bars (REST and stream) that the session does not trade (e.g. the regime's benchmark)."""
        self.fake = FakeAlpacaTrading(KEY, SECRET)
        self.streams: FakeAlpacaStreams | None = None
        self.warmup = warmup
        self.settings = settings or {}
        self.fractionable = fractionable
        self.proc: subprocess.Popen[str] | None = None
        self.out = tmp / "out"
        self.record = tmp / "rec"
        self.log_path = tmp / "paper.log"
        self.config = tmp / "paper.toml"
        self.minutes: dict[str, list[dict[str, Any]]] = {s: [] for s in self.symbols + self.market}
        self.days = future_sessions(6)
        self.prices = {s: float(cat.read_frame(SAMPLE, s, "1-HOUR")["close"].iloc[-1]) for s in self.symbols + self.market}
        self._news_rest: Any = None

    # ---- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> PaperHarness:
        self.fake.start()
        self.streams = FakeAlpacaStreams(self.fake).start()
        starts = recent_hour_starts(self.warmup + 30)
        for s in self.symbols + self.market:
            self.fake.add_asset(s, fractionable=self.fractionable)
            served = cat.read_frame(SAMPLE, s, "1-HOUR").iloc[-len(starts):].copy()
            served.index = starts  # the sample's last bars, re-dated to Alpaca's hourly grid of recent sessions
            self.fake.add_bars(s, served, "1Hour")
            self.fake.last_prices[s] = self.prices[s]
        self.write_config()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.streams is not None:
            self.streams.close()
        self.fake.close()

    def write_config(self) -> None:
        base = {
            "data": {"catalog": str(SAMPLE), "symbols": self.symbols, "bar": "1-HOUR"},
            "portfolio": {"capital": 100_000, "position_size": 0.2, "max_positions": 5},
            "costs": {"commission_bps": 0, "slippage_bps": 0},
            "strategy": {"kind": "ensemble", "model": str(REPO / "models" / "demo_ensemble"),
                         "entry_threshold": 0.01, "exit_threshold": 0.005, "max_hold_bars": 2, "mode": "streaming"},
            "paper": {"warmup_bars": self.warmup, "status_every_s": 1.0, "flush_delay_s": 3600.0},
        }
        for key, value in self.settings.items():
            section, name = key.split(".", 1)
            base.setdefault(section, {})[name] = value
        lines: list[str] = []
        for section, fields in base.items():
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in fields.items())
            lines.append("")
        self.config.write_text("\n".join(lines))

    def env(self, **extra: str) -> dict[str, str]:
        assert self.streams is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "SIGTRADE_ALPACA"))}
        env.update({
            "APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET,
            "SIGTRADE_ALPACA_TRADING_URL": self.fake.url, "SIGTRADE_ALPACA_DATA_URL": self.fake.url,
            "SIGTRADE_ALPACA_TRADING_STREAM_URL": self.streams.trading_url,
            "SIGTRADE_ALPACA_DATA_STREAM_URL": self.streams.data_url("iex"),
            "SIGTRADE_ALPACA_NEWS_STREAM_URL": self.streams.news_url,
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    def start(self, *args: str, wait: bool = True, env: dict[str, str] | None = None) -> None:
        """Start ``sigtrade paper``; with *wait*, block until it has subscribed to every symbol."""
        cmd = [sys.executable, "-m", "engine", "paper", str(self.config), "--out", str(self.out),
               "--record", str(self.record), "--log-level", "INFO", *args]
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env or self.env(), stdout=log, stderr=subprocess.STDOUT,
                                     text=True)
        if wait:
            assert self.streams is not None
            deadline = time.monotonic() + 60
            connects = self.streams.connects["data"]
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"sigtrade paper exited early ({self.proc.returncode}):\n{self.log()}")
                subs = [c for c in list(self.streams._data.values()) if all(s in c["bars"] for s in self.symbols)]
                if subs and self.streams.connects["data"] > connects - 1 and len(self.streams._trading) >= 1:
                    return
                time.sleep(0.1)
            raise AssertionError(f"sigtrade paper did not subscribe within 60 s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C the session; returns its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"sigtrade paper did not stop within {timeout} s after SIGINT:\n{self.log()}") from None

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"sigtrade paper did not finish within {timeout} s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL (no clean-up at all), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # ---- market ---------------------------------------------------------------------------------
    def minute(self, symbol: str, start: pd.Timestamp, rest: bool = True, stream: bool = True) -> None:
        p = self.prices[symbol]
        step = 0.001 * p * (1 if (start.minute // 30 + start.hour + sum(map(ord, symbol)) % 3) % 2 else -1)
        o, c = p, round(p + step, 2)
        bar = {"t": start.to_pydatetime(), "o": o, "h": max(o, c) + 0.05, "l": min(o, c) - 0.05, "c": c, "v": 1000}
        self.prices[symbol] = c
        if rest:
            self.minutes[symbol].append(bar)
            frame = pd.DataFrame(
                [{"open": b["o"], "high": b["h"], "low": b["l"], "close": b["c"], "volume": b["v"]} for b in self.minutes[symbol]],
                index=pd.DatetimeIndex([pd.Timestamp(b["t"]) for b in self.minutes[symbol]]),
            )
            self.fake.add_bars(symbol, frame, "1Min")
        if stream:
            self.fake.push_bar(symbol, bar)
        else:
            self.fake.last_prices[symbol] = c

    def hour(self, day: int, hour: int, *, minutes: Sequence[int] = (0, 30), stream: bool = True) -> None:
        """Push the minute bars of one clock hour (New York) of future session *day* for every symbol."""
        label = self.days[day]
        for m in minutes:
            start = pd.Timestamp(f"{label.date()} {hour:02d}:{m:02d}", tz="America/New_York").tz_convert("UTC")
            for s in self.symbols + self.market:
                self.minute(s, start, stream=stream)

    # ---- news ------------------------------------------------------------------------------------
    def push_news(self, article: dict[str, Any]) -> None:
        """Send an article on the news stream (Alpaca's fields; ``created_at`` any time type)."""
        assert self.streams is not None
        self.streams.push_news(article)

    def news_rest(self) -> Any:
        """The fake's REST news (``GET /v1beta1/news``, what back-fill asks), installed on first use."""
        if self._news_rest is None:
            from tests.fakes.alpaca_news import FakeNews

            self._news_rest = FakeNews.install(self.fake)
        return self._news_rest

    def news_records(self) -> list[dict[str, Any]]:
        """The live articles the session recorded (``news.jsonl`` of the record directory)."""
        path = self.record / "news.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []

    def wait_news(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until at least *n* live articles are recorded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.news_records()
            if len(got) >= n:
                return got
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{len(self.news_records())} article(s) recorded, expected {n}:\n{self.log()[-4000:]}")

    def decisions(self) -> list[dict[str, Any]]:
        path = self.out / "decisions.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]

    def wait_decisions(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until at least *n* decisions are logged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.decisions()
            if len(got) >= n:
                return got
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{len(self.decisions())} decision(s) logged, expected {n}:\n{self.log()[-4000:]}")

    def wait_orders_settled(self, timeout: float = 15.0) -> None:
        """Block until every order the fake holds has reached Alpaca and the session saw its last update."""
        time.sleep(0.3)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = len(self.fake.orders)
            time.sleep(0.3)
            if len(self.fake.orders) == n:
                return
