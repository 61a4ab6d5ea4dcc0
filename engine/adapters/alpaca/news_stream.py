"""Paper trading's live news: Alpaca's news stream, scored, fed to the strategy's sentiment column.

A model trained with news sentiment (its card has a ``sentiment`` spec) reads, in a
paper session, the scored news of the backtest catalog (loaded by the strategy at start)
*and* the articles Alpaca publishes while the session runs. :func:`live_news_hook` wires
the second part:

1. **Before anything trades** it loads the scorer named by the spec (``spec.model``, with
   ``research.news.scoring.load_scorer``, imported by name: ``engine`` never imports
   ``research`` or transformers). A missing ``[research]`` extra is a
   :class:`~engine.errors.MissingExtraError`, a scorer that cannot be loaded a
   :class:`~engine.errors.ConfigError`; the session stops there.
2. On the node's event loop it runs alpaca-py's ``NewsDataStream`` (raw msgpack frames,
   ``url_override`` from :meth:`AlpacaConfig.resolved_news_stream_url`) subscribed to the
   universe. Each article's text (headline, then summary) is scored in a worker thread,
   one article at a time, then handed to the strategy
   (:meth:`strategies.signal.SignalStrategy.add_article`) on the loop thread, written to
   the record (``news.jsonl``: id, symbols, created_at, score, headline, late, source) and
   announced in one line.
3. **Back-fill on reconnect.** alpaca-py reconnects a dropped stream by itself; after
   each re-subscription the articles created since the last ``created_at`` seen are
   fetched by REST (:func:`engine.adapters.alpaca.news.fetch_news`) and go through the
   same path; ids already seen are skipped.
4. A restarted session that records into the same directory first re-adds the articles
   its earlier session(s) recorded, so its sentiment column is the one replay rebuilds.

Timing rule
    An article counts for the bars closing strictly *after* its ``created_at`` (the
    accumulator's causal rule). An article that is scored after a bar closed counts from
    the next bar when its ``created_at`` is at or after that close: nothing is lost. An
    article that arrives late - its ``created_at`` is before the close of a bar the
    strategy has already processed (warm-up or decided) for one of its symbols - cannot
    change that past decision (nor the sentiment of that bar in the model's lookback
    window); it counts from the next bar on. Its record says ``"late": true``. Replay
    (:func:`engine.replay.replay`) adds every recorded article before the run, so for a
    late article it sees the news earlier than the live session did, and decisions from
    that bar on may differ; replay warns about it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from engine.adapters.alpaca.config import AlpacaConfig, credentials
from engine.adapters.alpaca.streams import hooked_stream, utc_ns
from engine.errors import ConfigError, MissingExtraError, SigtradeError

log = logging.getLogger(__name__)

RESEARCH_INSTALL = "pip install 'sigtrade[research]'"
STOP_POLL_S = 0.2
"""How often the news task checks whether the strategy has stopped."""

ScoreFn = Callable[[list[str]], list[float]]
"""Scores of texts, in [-1, 1] (``p_positive - p_negative``); runs in a worker thread."""
TextFn = Callable[[str, str], str]
"""The text scored for an article, from its headline and summary."""
Say = Callable[[str], None]


def _research(module: str) -> Any:
    """Import ``research.news.<module>`` by name, or say how to install the research extra."""
    for dep in ("torch", "transformers"):
        if importlib.util.find_spec(dep) is None:
            raise MissingExtraError(
                f"this model was trained with news sentiment: scoring the live news needs {dep}, "
                f"part of the research stack; install it with {RESEARCH_INSTALL} (torch first: see README)"
            )
    return importlib.import_module(f"research.news.{module}")


def load_news_scorer(scorer: str, model_name: str = "the model", device: str | None = None) -> tuple[ScoreFn, TextFn]:
    """Load the scorer *scorer* once; return a batch scoring function and the article-text rule.

    Raises
    ------
    MissingExtraError
        torch or transformers is not installed.
    ConfigError
        The scorer cannot be loaded (no such folder or hub id, not a 3-class classifier).
    """
    scoring = _research("scoring")
    store = _research("store")
    try:
        loaded = scoring.load_scorer(scorer, device=device)
    except (SigtradeError, OSError, ValueError) as exc:
        raise ConfigError(
            f"{model_name} was trained with news sentiment scored by '{scorer}' (card.sentiment.model); "
            f"paper trading scores the live news with the same scorer, and it cannot be loaded: {exc}. "
            "Make that model available (the folder, or the hub id with network access) and start again"
        ) from None

    def score(texts: list[str]) -> list[float]:
        return [float(x) for x in scoring.score_texts(loaded, texts).score]

    text: TextFn = store.article_text
    return score, text


def make_news_stream(config: AlpacaConfig, on_connected: Callable[[int], Awaitable[None]]) -> Any:
    """alpaca-py ``NewsDataStream`` (raw frames) that awaits *on_connected(n)* after each connection's subscription."""
    from alpaca.data.live.news import NewsDataStream

    key_id, secret = credentials()
    stream_cls = hooked_stream(NewsDataStream, "_send_subscribe_msg", on_connected)
    return stream_cls(key_id, secret, raw_data=True, url_override=config.resolved_news_stream_url())


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


class LiveNews:
    """The live news of one session: stream, back-fill, scoring, hand-over to the strategy, record.

    Parameters
    ----------
    strategy
        Has ``add_article(id, symbols, created_at_ns, score)``; its ``bar_sink`` is wrapped
        to know the last bar processed per symbol (for the ``late`` flag).
    symbols
        The universe: the stream subscribes to it, back-fill asks for it.
    score, text
        See :func:`load_news_scorer` (tests pass stand-ins).
    write
        ``write("news", record)`` (the session's files).
    backfill
        ``backfill(symbols, since_ns) -> rows`` of articles created since; default the
        REST news client.
    """

    def __init__(self, strategy: Any, symbols: Iterable[str], alpaca: AlpacaConfig, score: ScoreFn, text: TextFn,
                 write: Callable[[str, dict[str, Any]], None], say: Say,
                 backfill: Callable[[list[str], int], list[dict[str, Any]]] | None = None) -> None:
        self.strategy = strategy
        self.symbols = [str(s).upper() for s in symbols]
        self.alpaca = alpaca
        self._score = score
        self._text = text
        self._write = write
        self._say = say
        self._backfill = backfill or self._rest_backfill
        self.last_bar: dict[str, int] = {}
        """Close time (ns) of the last bar the strategy processed, per symbol."""
        self.last_created_ns = -1
        self.added = 0
        self.late = 0
        self.backfilled = 0
        self._ids: set[str] = set()
        self._versions: set[tuple[str, str]] = set()
        self._queue: asyncio.Queue[tuple[dict[str, Any], str]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.stream: Any = None
        inner = getattr(strategy, "bar_sink", None)

        def bar_sink(symbol: str, bar: Any, is_live: bool) -> None:
            self.last_bar[symbol] = max(self.last_bar.get(symbol, -1), int(bar.ts_event))
            if inner is not None:
                inner(symbol, bar, is_live)

        strategy.bar_sink = bar_sink

    # ---- earlier sessions ------------------------------------------------------------------
    def restore(self, records: list[dict[str, Any]]) -> int:
        """Re-add the articles an earlier session of the same record added; return how many."""
        for rec in records:
            created = utc_ns(rec["created_at"])
            self.strategy.add_article(str(rec["id"]), list(rec["symbols"]), created, float(rec["score"]))
            self._ids.add(str(rec["id"]))
            self.last_created_ns = max(self.last_created_ns, created)
        return len(records)

    # ---- life cycle --------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Schedule the news task on the node's *loop* (it ends when the strategy stops)."""
        self._task = loop.create_task(self.run(), name="sigtrade live news")

    async def run(self) -> None:
        """Stream, back-fill and score until the strategy has run and stopped (or the task is cancelled)."""
        self._queue = asyncio.Queue()
        self.stream = make_news_stream(self.alpaca, self._on_connected)
        self.stream.subscribe_news(self._on_message, *self.symbols)
        runner = asyncio.ensure_future(self.stream._run_forever())
        worker = asyncio.ensure_future(self._work())
        try:
            await self._until_strategy_stopped()
        finally:
            await self.stream.stop_ws()
            await self.stream.close()
            runner.cancel()
            worker.cancel()
            await asyncio.gather(runner, worker, return_exceptions=True)

    async def _until_strategy_stopped(self) -> None:
        started = False
        while True:
            await asyncio.sleep(STOP_POLL_S)
            running = bool(getattr(self.strategy, "is_running", True))
            if running:
                started = True
            elif started:
                return

    # ---- input -------------------------------------------------------------------------------
    async def _on_message(self, msg: dict[str, Any]) -> None:
        """A raw ``{"T": "n", ...}`` frame; alpaca-py calls this once per subscribed symbol it names."""
        version = (str(msg.get("id")), str(msg.get("updated_at")))
        if version in self._versions:
            return
        self._versions.add(version)
        assert self._queue is not None
        self._queue.put_nowait((dict(msg), "stream"))

    async def _on_connected(self, n: int) -> None:
        """After each (re)subscription but the first: fetch by REST what the stream missed."""
        if n <= 1:
            return
        since = self.last_created_ns if self.last_created_ns >= 0 else time.time_ns()
        try:
            rows = await asyncio.to_thread(self._backfill, self.symbols, since)
        except Exception as exc:  # noqa: BLE001 - a failed back-fill must not take the stream down
            log.warning("news stream connection %d: back-fill by REST failed (%s); articles missed meanwhile "
                        "are not in the sentiment column", n, exc)
            return
        fresh = [r for r in rows if str(r.get("id")) not in self._ids]
        assert self._queue is not None
        for row in fresh:
            self._ids.add(str(row["id"]))
            self._queue.put_nowait((row, "rest"))
        self.backfilled += len(fresh)
        self._say(f"news stream connection {n}: back-filled {len(fresh)} article(s) by REST")

    def _rest_backfill(self, symbols: list[str], since_ns: int) -> list[dict[str, Any]]:
        from engine.adapters.alpaca.news import fetch_news

        now = pd.Timestamp.now(tz="UTC")
        start = min(pd.Timestamp(since_ns, tz="UTC"), now - pd.Timedelta(seconds=1))
        frame, notes = fetch_news(symbols, start, None, config=self.alpaca)
        for note in notes:
            log.info("news back-fill: %s", note)
        return list(frame.to_dict("records"))

    # ---- scoring and hand-over -------------------------------------------------------------------
    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            msg, source = await self._queue.get()
            try:
                await self._handle(msg, source)
            except Exception as exc:  # noqa: BLE001 - one bad article must not stop the news
                log.warning("news article %s skipped: %s", msg.get("id"), exc)

    async def _handle(self, msg: dict[str, Any], source: str) -> None:
        article_id = str(msg["id"])
        symbols = sorted({str(s).strip().upper() for s in msg.get("symbols") or [] if str(s).strip()})
        headline = str(msg.get("headline") or "")
        text = self._text(headline, str(msg.get("summary") or ""))
        if not symbols or not text:
            log.info("news article %s skipped: no symbols or no text", article_id)
            return
        created = utc_ns(msg["created_at"])
        (score,) = await asyncio.to_thread(self._score, [text])
        if not (math.isfinite(score) and -1.0 <= score <= 1.0):
            raise ValueError(f"score {score!r} is not in [-1, 1]")
        self.add(article_id, symbols, created, score, headline, source)

    def add(self, article_id: str, symbols: list[str], created_ns: int, score: float, headline: str,
            source: str = "stream") -> dict[str, Any]:
        """Hand a scored article to the strategy (loop thread), record it and say it; return the record."""
        traded = [s for s in symbols if s in self.last_bar]
        decided = max((self.last_bar[s] for s in traded), default=-1)
        late = decided > created_ns
        self.strategy.add_article(article_id, symbols, created_ns, score)
        self._ids.add(article_id)
        self.last_created_ns = max(self.last_created_ns, created_ns)
        self.added += 1
        rec: dict[str, Any] = {
            "id": article_id, "symbols": symbols, "created_at": _iso(created_ns), "score": score,
            "headline": headline, "late": late, "source": source, "added_at": _iso(time.time_ns()),
        }
        when = f"{pd.Timestamp(created_ns, tz='UTC'):%Y-%m-%d %H:%M}"
        if late:
            self.late += 1
            rec["note"] = (f"created before the bar closing {_iso(decided)}, already processed without it: "
                           "it counts from the next bar; a replay, which adds it up front, may decide differently")
            log.warning("late news article %s (%s, created %s): %s", article_id, ",".join(symbols), when, rec["note"])
        self._write("news", rec)
        self._say(f"news {when} {','.join(symbols)}: score {score:+.3f}{' (late)' if late else ''} - {headline[:80]}")
        return rec


def live_news_hook(cfg: Any, strategy: Any, alpaca: AlpacaConfig, files: Any,
                   say: Say) -> Callable[[asyncio.AbstractEventLoop], None] | None:
    """``start(loop)`` for a strategy whose model uses news sentiment; None for any other.

    Loads the scorer now (before the node is built: a bad or missing scorer stops the
    session before it trades), re-adds the articles an earlier session recorded in the same
    record directory, and returns the callable that schedules :meth:`LiveNews.run` on the
    node's loop.
    """
    model = getattr(strategy, "model", None)
    spec = getattr(model, "sentiment", None)
    if spec is None or not hasattr(strategy, "add_article"):
        return None
    name = f"model '{getattr(model, 'name', cfg.strategy.model)}'"
    say(f"news sentiment: loading scorer {spec.model} for the live news ...")
    score, text = load_news_scorer(spec.model, name)
    symbols = list(getattr(getattr(strategy, "cfg", None), "symbols", None) or cfg.data.symbols)
    news = LiveNews(strategy, symbols, alpaca, score, text, files.write, say)
    record = getattr(files, "record", None)
    if record is not None:
        from engine.replay import read_news

        restored = news.restore(read_news(Path(record)))
        if restored:
            say(f"news sentiment: re-added {restored} article(s) recorded by the earlier session(s)")
    say(f"news sentiment: streaming Alpaca news for {', '.join(news.symbols)} ({spec.method}, half-life {spec.half_life})")
    return news.start
