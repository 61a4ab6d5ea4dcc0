"""Record a paper session; replay its bars through the event engine; compare decisions.

A record directory (``sigtrade paper --record DIR``) holds

``session.json``
    the effective config (after ``--set``), the universe, the session start (the first
    bar time traded on) and whether it was live;
``bars.jsonl`` / ``bars.parquet``
    every bar the strategy received, warm-up included, with its close time and a
    ``live`` flag (``bars.jsonl`` is appended by every session, restarts included, and is
    what replay reads; ``bars.parquet`` is its copy, rewritten whenever a session ends cleanly);
``orders.jsonl``, ``decisions.jsonl``
    every order sent and every decision made (time, symbol, action, position before,
    close and probability).
``news.jsonl``
    for a model trained with news sentiment: every live article the session scored and
    gave the strategy (id, symbols, created_at, score, headline, ``late``; see
    :mod:`engine.adapters.alpaca.news_stream`).

:func:`replay` runs the recorded bars through :func:`engine.runner.simulate` with the same
config - warm-up bars before the session start, decisions from it on, no flattening at
the end, every recorded bar decided - and returns the decisions the backtest made;
:func:`compare_decisions` lines them up with the recorded ones.

Live news: the strategy reads the catalog's scored news as in a backtest, and replay adds
the recorded live articles before the run (``simulate(strategy_hook=...)``). The
sentiment accumulators are causal, so adding them up front gives the values the session
had *provided* each article reached the session before the first bar closing after its
``created_at`` was processed. An article that arrived later (``"late": true`` in the
record) counted live only from a later bar; replay counts it from the first, so decisions
from there on may differ: :func:`news_notes` says so and :func:`replay` logs it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import BacktestConfig, config_from_dict, config_to_dict
from engine.errors import DataError
from engine.jsonfiles import read_json

log = logging.getLogger(__name__)

SESSION = "session.json"
NEWS = "news.jsonl"
COLUMNS = ["open", "high", "low", "close", "volume"]


def start_record(path: Path, cfg: BacktestConfig, meta: dict[str, Any]) -> None:
    """Create (or continue) a record directory; a restarted session appends to it."""
    path.mkdir(parents=True, exist_ok=True)
    session = path / SESSION
    if session.exists():
        old = _read_json(session)
        meta = {**meta, "started_ns": old.get("started_ns", meta["started_ns"]),
                "trade_from_ns": old.get("trade_from_ns", meta["trade_from_ns"]),
                "restarts": int(old.get("restarts", 0)) + 1}
    body = json.dumps({"config": config_to_dict(cfg), **meta}, indent=2, sort_keys=True, default=str)
    tmp = session.with_suffix(".json.tmp")
    tmp.write_text(body)
    os.replace(tmp, session)


def read_bars(path: Path) -> pd.DataFrame:
    """The recorded bars (symbol, ts, OHLCV, live, extra), deduplicated by (symbol, ts) keeping the first.

    ``bars.jsonl`` is the record every session (restarts included) appends to, so it is read
    when present; ``bars.parquet`` - its copy written at a clean exit - otherwise.
    """
    parquet, lines = path / "bars.parquet", path / "bars.jsonl"
    if lines.exists():
        rows = []
        for line in lines.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(row, dict) and {"symbol", "ts", *COLUMNS} <= row.keys():
                rows.append(row)  # anything else is not a bar line (a damaged or foreign file)
        frame = pd.DataFrame(rows, columns=["symbol", "ts", *COLUMNS, "live", "extra"])
        frame["extra"] = frame["extra"].eq(True)  # absent (a traded symbol's bar) -> False
    elif parquet.exists():
        try:
            frame = pd.read_parquet(parquet)
        except (OSError, ValueError) as exc:
            raise DataError(f"{parquet}: not a readable recording ({str(exc).splitlines()[0]}); the bars of "
                            f"this session are lost unless bars.jsonl is restored") from None
    else:
        raise DataError(f"{path} holds no recorded bars (bars.parquet or bars.jsonl): record a session with "
                        "`sigtrade paper CONFIG --record DIR`")
    return frame.drop_duplicates(["symbol", "ts"], keep="first").reset_index(drop=True)


def finish_record(path: Path) -> None:
    """Write ``bars.parquet`` from all the JSON lines so far (temporary file, then rename)."""
    if not (path / "bars.jsonl").exists():
        return
    tmp = path / "bars.parquet.tmp"
    read_bars(path).to_parquet(tmp, index=False)
    os.replace(tmp, path / "bars.parquet")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file ([] when absent)."""
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError(f"{path}, line {n}: not a JSON record ({line[:60]!r}); the file is damaged - "
                            "restore it from the recording or remove that line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {n}: expected a JSON object, found {line[:60]!r}")
        out.append(record)
    return out


def _read_json(file: Path) -> dict[str, Any]:
    return read_json(file, fix=f"the recording is damaged: restore {file.name} or record the session again",
                     expect=dict)  # type: ignore[no-any-return]


def load_session(path: Path) -> tuple[dict[str, Any], BacktestConfig]:
    """The session metadata and its config."""
    session = path / SESSION
    if not session.exists():
        raise DataError(f"{path} is not a paper-session record ({SESSION} missing): record one with "
                        "`sigtrade paper CONFIG --record DIR`")
    meta = _read_json(session)
    if not isinstance(meta.get("config"), dict):
        raise DataError(f"{session}: holds no 'config' table; the recording is damaged or not sigtrade's")
    return meta, config_from_dict(meta["config"], source=str(session))


def replay(path: Path, cfg: BacktestConfig | None = None) -> list[dict[str, Any]]:
    """Run the recorded bars through the event engine; return the backtest's decisions (see module docstring)."""
    import msgspec

    from engine.runner import simulate
    from engine.strategy_registry import strategy_params

    meta, recorded_cfg = load_session(path)
    cfg = cfg or recorded_cfg
    if cfg.strategy.kind in ("signal", "ensemble"):
        cfg = msgspec.structs.replace(cfg, strategy=msgspec.structs.replace(cfg.strategy, mode="streaming"))
    cfg = msgspec.structs.replace(cfg, execution=msgspec.structs.replace(cfg.execution, close_at_end=False))
    bars = read_bars(path)
    symbols = [s for s in meta["symbols"] if s in set(bars["symbol"])]
    full: dict[str, pd.DataFrame] = {}
    for s in list(dict.fromkeys([*symbols, cfg.benchmark.symbol])):
        rows = bars[bars["symbol"] == s].sort_values("ts")
        if rows.empty:
            continue
        frame = rows[COLUMNS].astype("float64")
        frame.index = pd.DatetimeIndex(pd.to_datetime(rows["ts"].to_numpy(), utc=True), name="ts")
        full[s] = frame
    # the regime's benchmark when the session streamed it without trading it
    bench = full.pop(cfg.benchmark.symbol) if cfg.benchmark.symbol not in symbols and cfg.benchmark.symbol in full else None
    trade_from = int(meta["trade_from_ns"])
    window = {s: f.loc[f.index.asi8 >= trade_from] for s, f in full.items()}
    window = {s: f for s, f in window.items() if len(f)}
    if not window:
        raise DataError(f"{path}: the session recorded no bar after its start; nothing to replay")
    if meta.get("restarts"):
        log.warning("replay of %s: the session was restarted %d time(s); the replay runs it as one session, so "
                    "counters a restart resets (bars held, cooldowns, the drawdown peak) may make later decisions "
                    "differ", path, int(meta["restarts"]))
    articles = read_news(path)
    for note in news_notes(articles):
        log.warning("replay of %s: %s", path, note)
    decisions: list[dict[str, Any]] = []
    simulate(cfg, window, {s: full[s] for s in window}, cfg.strategy.kind, strategy_params(cfg),
             history={s: full[s] for s in window}, overlays=True, decision_sink=decisions.append,
             bounds=(trade_from, {}), strategy_hook=lambda strategy: feed_news(strategy, articles),
             bench_history=bench)
    return decisions


def read_news(path: Path) -> list[dict[str, Any]]:
    """The live articles a session recorded (``news.jsonl``; [] without; a line cut short by a crash is skipped)."""
    file = path / NEWS
    if not file.exists():
        return []
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and {"id", "symbols", "created_at", "score"} <= set(rec):
            out.append(rec)
    return out


def feed_news(strategy: Any, articles: list[dict[str, Any]]) -> int:
    """Give a strategy that takes live news (``add_article``) the recorded *articles*; return how many."""
    add = getattr(strategy, "add_article", None)
    if add is None:
        return 0
    for rec in articles:
        add(str(rec["id"]), list(rec["symbols"]), pd.Timestamp(rec["created_at"]), float(rec["score"]))
    return len(articles)


def news_notes(articles: list[dict[str, Any]]) -> list[str]:
    """Why a replay with these recorded articles may differ from the session ([] = it should not)."""
    late = [r for r in articles if r.get("late")]
    if not late:
        return []
    ids = ", ".join(str(r["id"]) for r in late[:5]) + (f" and {len(late) - 5} more" if len(late) > 5 else "")
    return [f"{len(late)} live news article(s) reached the session after a bar they belong to had been "
            f"processed (id {ids}); the replay counts them from that bar, the session from the next one, "
            "so decisions from there on may differ"]


def _key(rec: dict[str, Any]) -> tuple[int, str]:
    return int(rec["ts"]), str(rec["symbol"])


def compare_decisions(recorded: list[dict[str, Any]], replayed: list[dict[str, Any]], tol: float = 0.0) -> list[str]:
    """Differences between two decision lists (time, symbol, action, probability); [] = identical."""
    rec = {_key(r): r for r in recorded}
    rep = {_key(r): r for r in replayed}
    out: list[str] = []
    for key in sorted(set(rec) | set(rep)):
        a, b = rec.get(key), rep.get(key)
        when = f"{pd.Timestamp(key[0], tz='UTC'):%Y-%m-%d %H:%M} {key[1]}"
        if a is None or b is None:
            out.append(f"{when}: decided only in the {'replay' if a is None else 'paper session'}")
            continue
        if a["action"] != b["action"]:
            out.append(f"{when}: paper {a['action']}, replay {b['action']}")
        pa, pb = a["inputs"].get("p", math.nan), b["inputs"].get("p", math.nan)
        same_nan = isinstance(pa, float) and isinstance(pb, float) and math.isnan(pa) and math.isnan(pb)
        if not same_nan and not (abs(float(pa) - float(pb)) <= tol):
            out.append(f"{when}: probability paper {pa!r}, replay {pb!r}")
    return out
