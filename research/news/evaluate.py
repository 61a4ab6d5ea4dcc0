"""Evaluate a sentiment scorer on labelled sentences: accuracy, macro-F1, confusion matrix.

The dataset is a CSV with a label column (``label``, ``sentiment`` or ``class``: positive,
negative or neutral) and a text column (``content``, ``text``, ``sentence`` or
``headline``), UTF-8 or latin-1 (the Financial PhraseBank as shipped on Kaggle is
latin-1). The metrics are plain numpy, pinned by a hand-counted test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError

LABELS = ("positive", "negative", "neutral")
_LABEL_COLUMNS = ("label", "sentiment", "class")
_TEXT_COLUMNS = ("content", "text", "sentence", "headline")


def read_labelled(path: str | Path, limit: int | None = None) -> pd.DataFrame:
    """Return the ``label`` and ``text`` columns of a labelled sentence CSV (first *limit* rows)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--dataset {path}: no such file; pass a CSV with label and text columns")
    frame = None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, nrows=limit)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: cannot be read as CSV ({exc})") from exc
    assert frame is not None  # latin-1 decodes every byte
    cols = {str(c).strip().lower(): c for c in frame.columns}
    label_col = next((cols[c] for c in _LABEL_COLUMNS if c in cols), None)
    text_col = next((cols[c] for c in _TEXT_COLUMNS if c in cols), None)
    if label_col is None or text_col is None:
        raise DataError(
            f"{path}: expected a label column ({'/'.join(_LABEL_COLUMNS)}) and a text column "
            f"({'/'.join(_TEXT_COLUMNS)}); found {', '.join(map(str, frame.columns))}"
        )
    out = pd.DataFrame({"label": frame[label_col].str.strip().str.lower(), "text": frame[text_col]})
    bad = ~out["label"].isin(LABELS)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: {int(bad.sum())} row(s) with a label other than positive/negative/neutral "
            f"(first on line {first + 2}: '{out['label'].iloc[first]}')"
        )
    if out.empty:
        raise DataError(f"{path}: no labelled rows")
    return out


@dataclass(frozen=True)
class EvalReport:
    """Accuracy, macro-F1 and per-class metrics of predictions against labels."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: pd.DataFrame
    """Index: the labels; columns precision, recall, f1, support."""
    confusion: pd.DataFrame
    """Rows: true label; columns: predicted label."""
    truncated: int = 0


def classification_report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS) -> EvalReport:
    """Return accuracy, macro-F1 (mean of per-class F1, 0 where undefined) and the confusion matrix."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    index = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[index[t], index[p]] += 1
    tp = np.diag(cm).astype(float)
    pred_n = cm.sum(axis=0).astype(float)
    true_n = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, pred_n, out=np.zeros(k), where=pred_n > 0)
    recall = np.divide(tp, true_n, out=np.zeros(k), where=true_n > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(cm.sum())
    per_class = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": true_n.astype(int)}, index=list(labels),
    )
    return EvalReport(
        n=n, accuracy=float(tp.sum() / n) if n else float("nan"), macro_f1=float(f1.mean()),
        per_class=per_class,
        confusion=pd.DataFrame(cm, index=pd.Index(list(labels), name="true"), columns=list(labels)),
    )


def evaluate_scorer(scorer: object, dataset: pd.DataFrame, progress: object = None) -> EvalReport:
    """Score the texts of *dataset* with *scorer* and compare the top label with ``label``."""
    from dataclasses import replace

    from research.news.scoring import score_texts

    scored = score_texts(scorer, dataset["text"].tolist(), progress)  # type: ignore[arg-type]
    report = classification_report(dataset["label"].tolist(), scored.labels)
    return replace(report, truncated=int(scored.truncated.sum()))
