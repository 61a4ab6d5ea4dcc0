"""Score news with a transformers sequence classifier (FinBERT by default).

:func:`load_scorer` accepts a Hugging Face model id (``ProsusAI/finbert``) or a local model
directory and checks that it is a sequence classifier whose labels are positive, negative
and neutral (any case, any order). Texts longer than the model's maximum length are cut
to it and counted. Scores are batched (batch size by device), computed in eval mode
without gradients, and the article score is ``p_positive - p_negative`` in [-1, 1].

:func:`score_catalog` scores the news table of a catalog and caches the result per
article in ``<catalog>/sigtrade_news/scores.parquet``, keyed by the sha256 of the model
name and the text: re-runs score only new or edited articles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError
from models.sentiment import DEFAULT_SCORER, SCORES_FILE, cache_key, scores_path
from research.news.store import article_text, atomic_write_parquet, read_news

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_SCORER
LABELS = ("positive", "negative", "neutral")
__all__ = [
    "DEFAULT_MODEL", "LABELS", "SCORES_FILE", "SCORE_COLUMNS", "ScoreReport", "Scored", "Scorer", "cache_key",
    "default_batch_size", "load_scorer", "read_scores", "resolve_device", "score_catalog", "score_texts",
    "scores_path",
]
SCORE_COLUMNS = ("key", "model", "positive", "negative", "neutral", "score", "truncated", "scored_at")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: texts scored so far, out of the texts to score."""


@dataclass
class Scorer:
    """A loaded classifier, ready to score texts."""

    name: str
    """The model id, or the resolved path of a local model directory (part of the cache key)."""
    model: Any
    tokenizer: Any
    device: str
    batch_size: int
    max_length: int
    columns: tuple[int, int, int]
    """Output columns of positive, negative and neutral."""


def default_batch_size(device: str) -> int:
    """Return a batch size for *device*: larger on a GPU, by its memory."""
    if device.startswith("cuda"):
        import torch

        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return 256 if total >= 40 * 2**30 else 64
    return 16


def resolve_device(device: str | None = None) -> str:
    """Return *device*, or ``cuda`` when a GPU is present, else ``cpu``."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for, but no CUDA GPU is available; use --device cpu")
    return str(device)


def _label_columns(id2label: dict[Any, str], source: str) -> tuple[int, int, int]:
    names = {str(v).strip().lower(): int(k) for k, v in id2label.items()}
    if set(names) != set(LABELS) or len(id2label) != len(LABELS):
        found = ", ".join(str(id2label[k]) for k in sorted(id2label, key=int))
        raise ConfigError(
            f"model {source} has labels [{found}]; a sentiment scorer needs exactly positive, "
            "negative and neutral (any order, any case) in config.id2label. Pick a 3-class "
            "sentiment model such as ProsusAI/finbert, or fix id2label in its config.json"
        )
    return names["positive"], names["negative"], names["neutral"]


def load_scorer(model: str | Path = DEFAULT_MODEL, device: str | None = None, batch_size: int | None = None) -> Scorer:
    """Load a sequence-classification model and its tokenizer from a hub id or a local folder."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = Path(model).expanduser()
    local = path.exists()
    if local and not path.is_dir():
        raise ConfigError(f"--model {model}: a file, not a model directory (expected config.json and weights in a folder)")
    source = str(path.resolve()) if local else str(model)
    if local and not (path / "config.json").is_file():
        raise ConfigError(f"--model {model}: no config.json in that folder; it is not a transformers model directory")
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        where = "local folder" if local else "model id (no local folder of that name, and the download failed)"
        raise ConfigError(f"--model {model}: cannot load its config as a {where}: {exc}") from exc
    archs = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(
            f"--model {model}: not a sequence classifier (architectures: {', '.join(archs) or 'none'}); "
            "its classification head would be random. Use a fine-tuned *ForSequenceClassification model, "
            "e.g. ProsusAI/finbert"
        )
    columns = _label_columns(dict(config.id2label), source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        net = AutoModelForSequenceClassification.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--model {model}: cannot load the tokenizer or weights: {exc}") from exc
    dev = resolve_device(device)
    net.to(dev).eval()  # eval mode: no dropout, deterministic
    # tokenizers saved without a limit report a huge model_max_length: the position table bounds it
    limits = [tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
    sane = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**8]
    max_length = min(sane) if sane else 512
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    return Scorer(
        name=source, model=net, tokenizer=tokenizer, device=dev,
        batch_size=batch_size or default_batch_size(dev), max_length=max_length, columns=columns,
    )


@dataclass(frozen=True)
class Scored:
    """Probabilities of texts, in the order given."""

    probs: np.ndarray
    """Shape (n, 3): positive, negative, neutral."""
    truncated: np.ndarray
    """Per text: whether it was cut to the model's maximum length."""

    @property
    def score(self) -> np.ndarray:
        """``p_positive - p_negative`` per text, in [-1, 1]."""
        return self.probs[:, 0] - self.probs[:, 1]

    @property
    def labels(self) -> list[str]:
        """The most likely label per text."""
        return [LABELS[i] for i in self.probs.argmax(axis=1)]


def score_texts(scorer: Scorer, texts: Sequence[str], progress: Progress | None = None) -> Scored:
    """Return the label probabilities of *texts* (empty texts are scored as given)."""
    import torch

    texts = [str(t) for t in texts]
    n = len(texts)
    probs = np.zeros((n, 3))
    lengths = scorer.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"] if n else []
    truncated = np.array([len(ids) > scorer.max_length for ids in lengths], dtype=bool)
    cols = list(scorer.columns)
    with torch.inference_mode():
        for start in range(0, n, scorer.batch_size):
            batch = texts[start : start + scorer.batch_size]
            enc = scorer.tokenizer(
                batch, padding=True, truncation=True, max_length=scorer.max_length, return_tensors="pt",
            ).to(scorer.device)
            logits = scorer.model(**enc).logits.float()
            p = torch.softmax(logits, dim=-1)[:, cols].cpu().numpy()
            probs[start : start + len(batch)] = p
            if progress is not None:
                progress(start + len(batch), n)
    if truncated.any():
        log.info("%d of %d text(s) cut to %d tokens", int(truncated.sum()), n, scorer.max_length)
    return Scored(probs=probs, truncated=truncated)


def read_scores(catalog: str | Path) -> pd.DataFrame:
    """Return the score cache of *catalog* (empty when there is none)."""
    path = scores_path(catalog)
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SCORE_COLUMNS})
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: the score cache cannot be read ({str(exc).splitlines()[0]}); delete it and "
                        "run `sigtrade sentiment score` again") from None


@dataclass(frozen=True)
class ScoreReport:
    """What ``sentiment score`` did."""

    model: str
    device: str
    batch_size: int
    articles: int
    new: int
    cached: int
    truncated: int
    max_length: int
    seconds: float
    path: Path


def score_catalog(
    catalog: str | Path, scorer: Scorer, progress: Progress | None = None,
) -> tuple[pd.DataFrame, ScoreReport]:
    """Score every article of *catalog* not yet in the cache; return all articles' scores.

    The returned frame has ``id``, ``symbols``, ``created_at``, ``positive``, ``negative``,
    ``neutral``, ``score`` and ``truncated``, one row per article, in the order of the news
    table. The cache is rewritten atomically once the new articles are scored; an
    interrupted run leaves the previous cache as it was.
    """
    news = read_news(catalog)
    if news.empty:
        raise ConfigError(f"{catalog}: no news in this catalog; ingest some first: sigtrade ingest news-csv FILE --catalog {catalog}")
    texts = [article_text(h, s) for h, s in zip(news["headline"], news["summary"], strict=True)]
    keys = [cache_key(scorer.name, t) for t in texts]
    cache = read_scores(catalog)
    known = set(cache["key"])
    todo: dict[str, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in known:
            todo.setdefault(k, t)
    t0 = time.perf_counter()
    new_rows = pd.DataFrame()
    if todo:
        scored = score_texts(scorer, list(todo.values()), progress)
        new_rows = pd.DataFrame({
            "key": list(todo), "model": scorer.name,
            "positive": scored.probs[:, 0], "negative": scored.probs[:, 1], "neutral": scored.probs[:, 2],
            "score": scored.score, "truncated": scored.truncated,
            "scored_at": pd.Timestamp.now(tz="UTC"),
        })
        parts = [f for f in (cache, new_rows) if not f.empty]
        atomic_write_parquet(pd.concat(parts, ignore_index=True)[list(SCORE_COLUMNS)], scores_path(catalog))
        cache = pd.concat(parts, ignore_index=True)
    by_key = cache.drop_duplicates("key", keep="last").set_index("key")
    rows = by_key.loc[keys, ["positive", "negative", "neutral", "score", "truncated"]].reset_index(drop=True)
    out = pd.concat([news[["id", "symbols", "created_at"]].reset_index(drop=True), rows], axis=1)
    out["truncated"] = out["truncated"].astype(bool)
    report = ScoreReport(
        model=scorer.name, device=scorer.device, batch_size=scorer.batch_size, articles=len(news),
        new=len(todo), cached=len(news) - sum(1 for k in keys if k in todo), truncated=int(out["truncated"].sum()),
        max_length=scorer.max_length, seconds=time.perf_counter() - t0, path=scores_path(catalog),
    )
    return out, report
