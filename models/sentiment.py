"""The news-sentiment column: causal per-bar aggregation of scored articles (numpy and pandas only).

For a bar closing at ``t`` only articles published *strictly before* ``t`` count: an
article stamped exactly at a bar's close first counts at the next bar. Each article
``i`` (score ``s_i`` in [-1, 1], time ``c_i``) weighs ``w_i(t) = 2 ** (-(t - c_i) / half_life)``
at ``t``: the decay runs in wall-clock time, so news ages over nights, weekends and
holidays exactly as it does during the session. With ``S = sum w_i s_i`` and
``W = sum w_i``:

* ``decayed_mean`` - ``S / max(W, 1)``: the decay-weighted mean score while at least one
  article's worth of fresh news is in, fading towards neutral as the news ages;
* ``count_weighted`` - ``S / (W + prior)``: the same mean shrunk towards neutral by
  ``prior`` neutral pseudo-articles, so many articles count more than one.

Both lie in [-1, 1] and are 0 (neutral) before the first article. All times are UTC
inside; naive times are refused rather than guessed.

Three ways to the same numbers
------------------------------
* :func:`sentiment_feature` / :func:`sentiment_features` - batch, over a bar index
  (training, batch backtests);
* :class:`SentimentAccumulator` - incremental: :meth:`~SentimentAccumulator.add` scored
  articles as they arrive (in any order, late, repeated), read
  :meth:`~SentimentAccumulator.value` at each bar close (streaming backtests, paper
  trading from the live news stream). Over the same bar closes it returns the batch
  values **bit for bit**; started later than a batch run (paper trading from today
  against a backtest over years) the two agree to 1e-12 (the decay is applied bar by
  bar, so the rounding path depends on where the bars start);
* :func:`read_scored_articles` - a catalog's articles with the scores of one scorer
  model, read from ``<catalog>/sigtrade_news/{news,scores}.parquet`` without transformers.

:class:`SentimentSpec` says which scorer and which aggregation made a model's sentiment
column; training records it in the model card (``card.sentiment``) and backtests and
paper trading rebuild the column from it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np
import pandas as pd

from models.errors import ModelContractError, ModelDataError

__all__ = [
    "DEFAULT_SCORER",
    "METHODS",
    "NEWS_DIR",
    "NEWS_FILE",
    "SCORES_FILE",
    "Method",
    "SentimentAccumulator",
    "SentimentConfigError",
    "SentimentSpec",
    "article_text",
    "cache_key",
    "news_dir",
    "news_path",
    "read_scored_articles",
    "scorer_name",
    "scores_path",
    "sentiment_feature",
    "sentiment_features",
    "symbol_articles",
]

Method = Literal["decayed_mean", "count_weighted"]
METHODS: tuple[str, ...] = ("decayed_mean", "count_weighted")
DEFAULT_SCORER = "ProsusAI/finbert"
"""The scorer model of ``sigtrade sentiment score`` when ``--model`` is not given."""

NEWS_DIR = "sigtrade_news"
NEWS_FILE = "news.parquet"
SCORES_FILE = "scores.parquet"


class SentimentConfigError(ModelContractError, ValueError):
    """A sentiment aggregation is asked for with a bad method, half-life or prior.

    Also a ValueError, so that msgspec reports it with the field's path when it is
    raised while decoding a card or a config.
    """


# --- catalog conventions -------------------------------------------------------------------


def news_dir(catalog: str | Path) -> Path:
    """Return the folder of a catalog that holds its news tables."""
    return Path(catalog) / NEWS_DIR


def news_path(catalog: str | Path) -> Path:
    """Return the path of a catalog's news table."""
    return news_dir(catalog) / NEWS_FILE


def scores_path(catalog: str | Path) -> Path:
    """Return the path of a catalog's score cache."""
    return news_dir(catalog) / SCORES_FILE


def article_text(headline: str, summary: str) -> str:
    """Return the text scored for an article: the headline, then the summary."""
    parts = [p.strip() for p in (headline, summary) if isinstance(p, str) and p.strip()]
    return "\n".join(parts)


def cache_key(model_name: str, text: str) -> str:
    """Return the cache key of *text* scored by *model_name*: sha256 of both."""
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


def scorer_name(model: str) -> str:
    """The name a scorer model is cached under: a local folder's resolved path, else the hub id.

    The same rule as ``research.news.scoring.load_scorer``, so the scores of
    ``sigtrade sentiment score --model M`` are found by ``model = M``.
    """
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


# --- the spec ------------------------------------------------------------------------------


class SentimentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a model's sentiment column is made: which scores, which aggregation.

    Recorded in the model card (``card.sentiment``) by training; backtests and paper
    trading rebuild the column from it.
    """

    model: str = DEFAULT_SCORER
    """Scorer model (hub id or local folder) whose scores are aggregated, as given to ``sigtrade sentiment score --model``."""
    method: Method = "decayed_mean"
    """``decayed_mean`` or ``count_weighted`` (see :mod:`models.sentiment`)."""
    half_life: str = "1D"
    """Time for an article's weight to halve, in wall-clock time (pandas Timedelta text: "6h", "1D")."""
    prior: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 1.0
    """Neutral pseudo-articles of ``count_weighted`` (> 0)."""
    score: Literal["p_positive - p_negative"] = "p_positive - p_negative"
    """What an article's score is (the only definition so far)."""

    def __post_init__(self) -> None:
        """Check the fields a type cannot check."""
        check_aggregation(self.half_life, self.method, self.prior)

    @property
    def half_life_ns(self) -> int:
        """The half-life in nanoseconds."""
        return int(pd.Timedelta(self.half_life).value)


def check_aggregation(half_life: pd.Timedelta | str, method: str, prior: float) -> pd.Timedelta:
    """Validate aggregation parameters; return the half-life as a Timedelta.

    Raises
    ------
    SentimentConfigError
        Unknown method, a half-life that is not a positive duration, a prior <= 0.
    """
    if method not in METHODS:
        import difflib

        close = difflib.get_close_matches(str(method), METHODS, n=1, cutoff=0.6)
        hint = f" - did you mean '{close[0]}'?" if close else ""
        raise SentimentConfigError(
            f"unknown sentiment method '{method}'{hint}; expected one of {', '.join(METHODS)}"
        )
    try:
        hl = pd.Timedelta(half_life)
    except (ValueError, TypeError):
        raise SentimentConfigError(
            f"half_life = {half_life!r} is not a duration; write it like \"6h\", \"1D\" or \"90min\""
        ) from None
    if hl is pd.NaT or hl <= pd.Timedelta(0):
        raise SentimentConfigError(f"half_life must be positive, got {half_life!r}")
    if not (isinstance(prior, int | float) and math.isfinite(prior) and prior > 0):
        raise SentimentConfigError(
            f"prior must be a positive number of neutral pseudo-articles, got {prior!r}"
        )
    return hl


# --- batch ---------------------------------------------------------------------------------


def _utc_index(values: Iterable[pd.Timestamp] | pd.DatetimeIndex, what: str) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        raise ModelDataError(
            f"{what} are naive timestamps; pass them with a time zone (UTC inside sigtrade), "
            "e.g. index.tz_localize('America/New_York')"
        )
    return index.tz_convert("UTC")


def _decay(dt_ns: np.ndarray, hl: float) -> np.ndarray:
    """``2 ** (-dt / half_life)`` elementwise; the one place both modes compute a weight."""
    return np.exp2(-dt_ns.astype(np.float64) / hl)


def _finish(s: np.ndarray, w: np.ndarray, method: str, prior: float) -> np.ndarray:
    value = s / np.maximum(w, 1.0) if method == "decayed_mean" else s / (w + prior)
    return np.clip(value, -1.0, 1.0)


def _ordered(articles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Times (ns) and scores of *articles*, checked, one row per id (the last), by (time, id)."""
    missing = {"created_at", "score"} - set(articles.columns)
    if missing:
        raise ModelDataError(
            f"articles need columns created_at and score; missing {', '.join(sorted(missing))}"
        )
    if articles.empty:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if "id" in articles.columns and articles["id"].duplicated().any():
        articles = articles.drop_duplicates("id", keep="last")
    created = _utc_index(articles["created_at"], "article created_at values")
    scores = articles["score"].to_numpy(dtype=np.float64)
    if not np.isfinite(scores).all() or (np.abs(scores) > 1).any():
        raise ModelDataError("article scores must be finite and in [-1, 1]; score the news again")
    c_ns = created.asi8.astype(np.int64)
    if "id" in articles.columns:
        order = np.lexsort((articles["id"].astype(str).to_numpy(), c_ns))
    else:
        order = np.argsort(c_ns, kind="stable")
    return c_ns[order], scores[order]


def sentiment_feature(
    bar_closes: pd.DatetimeIndex,
    articles: pd.DataFrame,
    half_life: pd.Timedelta | str = "1D",
    method: Method = "decayed_mean",
    prior: float = 1.0,
) -> pd.Series:
    """Return the sentiment feature at each bar close of one symbol.

    Parameters
    ----------
    bar_closes
        Bar close times, tz-aware, strictly increasing.
    articles
        Columns ``created_at`` (tz-aware) and ``score`` (in [-1, 1]), any order; with an
        ``id`` column, a repeated id keeps its last row.
    half_life
        Time for an article's weight to halve, in wall-clock time.
    method
        ``decayed_mean`` or ``count_weighted`` (see the module docstring).
    prior
        Neutral pseudo-articles of ``count_weighted``.

    Returns
    -------
    pandas.Series
        Float values in [-1, 1] indexed by *bar_closes* (in UTC); 0 before any article.
    """
    hl_td = check_aggregation(half_life, method, prior)
    closes = _utc_index(bar_closes, "bar close times")
    if not closes.is_monotonic_increasing or closes.has_duplicates:
        raise ModelDataError(
            "bar close times must be strictly increasing (sort them and drop duplicates)"
        )
    c_ns, scores = _ordered(articles)
    n = len(closes)
    if n == 0:
        return pd.Series(np.zeros(0), index=closes, name="sentiment")
    t_ns = closes.asi8.astype(np.int64)
    # first bar whose close is strictly after the article: side="right" puts an article
    # stamped exactly at a close on the next bar
    first_bar = np.searchsorted(t_ns, c_ns, side="right")
    live = first_bar < n
    first_bar, c_ns, scores = first_bar[live], c_ns[live], scores[live]
    hl = float(hl_td.value)
    w_in = _decay(t_ns[first_bar] - c_ns, hl)  # weight on arrival, in (0, 1]
    # bincount adds in input order: (time, id) order, as SentimentAccumulator does
    add_s = np.bincount(first_bar, weights=w_in * scores, minlength=n)
    add_w = np.bincount(first_bar, weights=w_in, minlength=n)
    step = _decay(np.diff(t_ns), hl)
    s_sum = np.empty(n)
    w_sum = np.empty(n)
    s, w = 0.0, 0.0
    for k in range(n):  # S_k = S_{k-1} * decay(t_k - t_{k-1}) + arrivals in [t_{k-1}, t_k)
        if k:
            s *= step[k - 1]
            w *= step[k - 1]
        s += add_s[k]
        w += add_w[k]
        s_sum[k] = s
        w_sum[k] = w
    return pd.Series(_finish(s_sum, w_sum, method, prior), index=closes, name="sentiment")


def symbol_articles(articles: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Return the rows of *articles* (with a ``symbols`` list column) that name *symbol*."""
    wanted = symbol.upper()
    mask = [wanted in {str(s).upper() for s in syms} for syms in articles["symbols"]]
    return articles.loc[mask]


def sentiment_features(
    bar_closes: Mapping[str, pd.DatetimeIndex],
    articles: pd.DataFrame,
    half_life: pd.Timedelta | str = "1D",
    method: Method = "decayed_mean",
    prior: float = 1.0,
) -> dict[str, pd.Series]:
    """Return :func:`sentiment_feature` for each symbol, from articles tagged with ``symbols``.

    An article naming several symbols counts for each of them. The result of a symbol can
    be passed as ``sentiment`` to ``models.features.compute_features`` for its bars.
    """
    return {
        sym: sentiment_feature(closes, symbol_articles(articles, sym), half_life, method, prior)
        for sym, closes in bar_closes.items()
    }


def spec_features(
    spec: SentimentSpec, bar_closes: Mapping[str, pd.DatetimeIndex], articles: pd.DataFrame
) -> dict[str, pd.Series]:
    """:func:`sentiment_features` with the aggregation of *spec*."""
    return sentiment_features(bar_closes, articles, spec.half_life, spec.method, spec.prior)


# --- incremental ---------------------------------------------------------------------------


def _ns(t: int | datetime | pd.Timestamp, what: str) -> int:
    if isinstance(t, int | np.integer):
        return int(t)
    stamp = pd.Timestamp(t)
    if stamp.tzinfo is None:
        raise ModelDataError(
            f"{what} {t!r} has no time zone: pass UTC nanoseconds or a tz-aware time"
        )
    return int(stamp.value)


class SentimentAccumulator:
    """The sentiment of one symbol, bar by bar, from articles added as they arrive.

    :meth:`add` takes a scored article at any time: before or after the bar closes it
    belongs to (late news), in any order, again with the same id (the latest version
    replaces the earlier one). :meth:`value` returns the feature at a bar close from every
    article known by then and published strictly before that close. Closes must increase.

    Equality with the batch function: after any sequence of :meth:`add` and
    :meth:`value` calls, the values at the closes asked for equal
    ``sentiment_feature(those closes, the articles added, ...)`` bit for bit - a late
    article is folded in by replaying the bars from the one it belongs to (the values
    already returned are not changed: they were what was known then).

    Memory grows with the articles and bar closes seen (two floats per close); a paper
    trading session of months of hourly bars holds a few thousand of each.
    """

    def __init__(
        self, spec: SentimentSpec, articles: pd.DataFrame | None = None
    ) -> None:
        self.spec = spec
        self._hl = float(spec.half_life_ns)
        self._keys: list[tuple[int, str]] = []  # (created_at ns, id), sorted
        self._scores: dict[str, tuple[int, float]] = {}  # id -> (created_at ns, score)
        self._closes: list[int] = []
        self._s: list[float] = []
        self._w: list[float] = []
        self._dirty: int | None = None  # first close index to recompute
        if articles is not None:
            self.add_frame(articles)

    def __len__(self) -> int:
        """Number of distinct articles held."""
        return len(self._scores)

    def add(self, article_id: str, created_at: int | datetime | pd.Timestamp, score: float) -> bool:
        """Add (or replace, by id) one scored article; return False when nothing changed.

        Raises
        ------
        ModelDataError
            A naive time, or a score that is not a finite number in [-1, 1].
        """
        c = _ns(created_at, f"article {article_id!r} created_at")
        sc = float(score)
        if not (math.isfinite(sc) and -1.0 <= sc <= 1.0):
            raise ModelDataError(
                f"article {article_id!r} has score {score!r}: expected a finite number in "
                "[-1, 1] (p_positive - p_negative); score the news again"
            )
        key = str(article_id)
        old = self._scores.get(key)
        if old == (c, sc):
            return False
        if old is not None:
            self._keys.pop(bisect.bisect_left(self._keys, (old[0], key)))
            self._touch(old[0])
        bisect.insort(self._keys, (c, key))
        self._scores[key] = (c, sc)
        self._touch(c)
        return True

    def add_frame(self, articles: pd.DataFrame) -> int:
        """Add every row of *articles* (columns ``id``, ``created_at``, ``score``); return the count changed."""
        missing = {"id", "created_at", "score"} - set(articles.columns)
        if missing:
            raise ModelDataError(
                f"articles need columns id, created_at and score; missing {', '.join(sorted(missing))}"
            )
        if articles.empty:
            return 0
        created = _utc_index(articles["created_at"], "article created_at values").asi8
        changed = 0
        for i, c, s in zip(articles["id"], created, articles["score"], strict=True):
            changed += self.add(str(i), int(c), float(s))
        return changed

    def _touch(self, c: int) -> None:
        """An article at *c* changed: the first close strictly after it must be recomputed."""
        k = bisect.bisect_right(self._closes, c)
        if k < len(self._closes):
            self._dirty = k if self._dirty is None else min(self._dirty, k)

    def _arrivals(self, lo: int | None, hi: int) -> tuple[float, float]:
        """Sum of weights (at *hi*) and weighted scores of articles in ``[lo, hi)``, in (time, id) order."""
        a = 0 if lo is None else bisect.bisect_left(self._keys, (lo, ""))
        b = bisect.bisect_left(self._keys, (hi, ""))
        if b <= a:
            return 0.0, 0.0
        keys = self._keys[a:b]
        c = np.fromiter((k[0] for k in keys), dtype=np.int64, count=len(keys))
        s = np.fromiter((self._scores[k[1]][1] for k in keys), dtype=np.float64, count=len(keys))
        w_in = _decay(hi - c, self._hl)
        add_s, add_w = 0.0, 0.0
        for ws, wi in zip((w_in * s).tolist(), w_in.tolist(), strict=True):
            add_s += ws
            add_w += wi
        return add_s, add_w

    def _advance(self, k: int) -> None:
        """Compute S, W at close *k* from close ``k - 1`` (which must be up to date)."""
        t = self._closes[k]
        if k == 0:
            s, w = 0.0, 0.0
            lo = None
        else:
            step = float(_decay(np.array([t - self._closes[k - 1]]), self._hl)[0])
            s, w = self._s[k - 1] * step, self._w[k - 1] * step
            lo = self._closes[k - 1]
        add_s, add_w = self._arrivals(lo, t)
        s += add_s
        w += add_w
        if k < len(self._s):
            self._s[k], self._w[k] = s, w
        else:
            self._s.append(s)
            self._w.append(w)

    def value(self, t: int | datetime | pd.Timestamp) -> float:
        """The feature at the bar close *t* (ns since the epoch UTC, or tz-aware).

        Asking again for the latest close returns its value with every article known
        now; asking for an earlier close than the latest is refused.
        """
        t_ns = _ns(t, "bar close")
        last = self._closes[-1] if self._closes else None
        if last is not None and t_ns < last:
            raise ModelDataError(
                f"bar close {pd.Timestamp(t_ns, tz='UTC')} is before the last one asked for "
                f"({pd.Timestamp(last, tz='UTC')}): a sentiment accumulator moves forward only"
            )
        if last is None or t_ns > last:
            self._closes.append(t_ns)
            self._dirty = len(self._closes) - 1 if self._dirty is None else self._dirty
        if self._dirty is not None:
            for k in range(self._dirty, len(self._closes)):
                self._advance(k)
            self._dirty = None
        s, w = np.array([self._s[-1]]), np.array([self._w[-1]])
        return float(_finish(s, w, self.spec.method, self.spec.prior)[0])


# --- reading a catalog's scored news -------------------------------------------------------


def _commands(catalog: str | Path, model: str) -> str:
    model_opt = "" if model == DEFAULT_SCORER else f" --model {model}"
    return (
        f"ingest news with `sigtrade ingest news --symbols ... --start ... --catalog {catalog}` "
        f"(or `sigtrade ingest news-csv FILE --catalog {catalog}`), then score it with "
        f"`sigtrade sentiment score --catalog {catalog}{model_opt}`"
    )


def read_scored_articles(catalog: str | Path, model: str = DEFAULT_SCORER) -> pd.DataFrame:
    """A catalog's articles with their scores by the scorer *model*, sorted by time.

    Reads ``<catalog>/sigtrade_news/news.parquet`` and ``scores.parquet`` with pandas
    (no transformers): an article's score is found by the sha256 of the scorer's name and
    the article's text, as ``sigtrade sentiment score`` stores it.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``symbols`` (list of str), ``created_at`` (UTC), ``score``.

    Raises
    ------
    ModelDataError
        The catalog has no news, no scores, or articles not scored by *model*; the
        message names the catalog and the commands to run.
    """
    news_file, scores_file = news_path(catalog), scores_path(catalog)
    if not news_file.is_file():
        raise ModelDataError(
            f"catalog {catalog} has no news ({news_file} is missing), and news sentiment "
            f"was asked for; {_commands(catalog, model)}"
        )
    if not scores_file.is_file():
        raise ModelDataError(
            f"catalog {catalog} has news but no sentiment scores ({scores_file} is missing); "
            f"{_commands(catalog, model)}"
        )
    try:
        news = pd.read_parquet(news_file, columns=["id", "symbols", "headline", "summary", "created_at"])
        scores = pd.read_parquet(scores_file, columns=["key", "score"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelDataError(
            f"catalog {catalog}: the news or score table cannot be read ({exc}); "
            f"{_commands(catalog, model)}"
        ) from exc
    name = scorer_name(model)
    keys = [
        cache_key(name, article_text(h, s))
        for h, s in zip(news["headline"], news["summary"], strict=True)
    ]
    by_key = scores.drop_duplicates("key", keep="last").set_index("key")["score"]
    found = pd.Series(keys, dtype=object).map(by_key)
    unscored = int(found.isna().sum())
    if unscored:
        raise ModelDataError(
            f"catalog {catalog}: {unscored} of {len(news)} article(s) have no score by model "
            f"'{model}' (scored as '{name}'); score them with `sigtrade sentiment score "
            f"--catalog {catalog}{'' if model == DEFAULT_SCORER else f' --model {model}'}` "
            "(it scores only what is missing)"
        )
    out = pd.DataFrame({
        "id": news["id"].astype(str).to_numpy(),
        "symbols": [[str(s).upper() for s in syms] for syms in news["symbols"]],
        "created_at": pd.to_datetime(news["created_at"], utc=True).to_numpy(),
        "score": found.to_numpy(dtype=np.float64),
    })
    out["created_at"] = pd.to_datetime(out["created_at"], utc=True)
    return out.sort_values(["created_at", "id"], kind="stable").reset_index(drop=True)
