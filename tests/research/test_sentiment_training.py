"""Training with a [sentiment] section: the column comes from the catalog's scored news, the card records it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from engine.catalog import write_bars  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from models.card import load_card  # noqa: E402
from models.sentiment import SentimentSpec  # noqa: E402
from research.config import train_config_from_dict  # noqa: E402
from research.export import export  # noqa: E402
from research.train import prepare_data, train  # noqa: E402
from tests.models.test_sentiment import write_scored_news  # noqa: E402
from tests.research.conftest import tiny_raw  # noqa: E402

pytestmark = pytest.mark.research

SENTIMENT = {"model": "test-scorer", "method": "decayed_mean", "half_life": "8h"}


@pytest.fixture(scope="module")
def news_catalog(tmp_path_factory: pytest.TempPathFactory, tiny_frames: dict[str, pd.DataFrame]) -> Path:
    path = tmp_path_factory.mktemp("news_catalog")
    write_bars(path, tiny_frames, "1-HOUR", synthetic=True, note="SYNTHETIC test universe")
    rng = np.random.default_rng(2)
    first, last = next(iter(tiny_frames.values())).index[[0, -1]]
    n = 500
    symbols = list(tiny_frames)
    write_scored_news(path, pd.DataFrame({
        "id": [f"a{i}" for i in range(n)], "symbols": [[symbols[i % len(symbols)]] for i in range(n)],
        "headline": [f"story {i}" for i in range(n)],
        "created_at": pd.to_datetime(rng.integers(first.value, last.value, n), utc=True),
        "score": rng.uniform(-1, 1, n),
    }), "test-scorer")
    return path


def test_a_model_trained_with_sentiment_records_it_in_its_card(news_catalog: Path, tmp_path: Path) -> None:
    cfg = train_config_from_dict(tiny_raw(news_catalog, tmp_path / "run", sentiment=SENTIMENT,
                                          train={"epochs": 1}))
    data = prepare_data(cfg)
    col = list(data.spec.feature_set.features).index("sentiment")
    raw = data.features[:, col] * data.std[col] + data.mean[col]  # undo the scaling
    assert np.nanstd(raw) > 0.05, "the sentiment column should carry the news"
    plain = prepare_data(train_config_from_dict(tiny_raw(news_catalog)))
    assert plain.std[col] == 1.0 and np.all(plain.features[:, col] == -plain.mean[col])  # no section: all 0
    train(cfg, data=data)
    out = export(tmp_path / "run", tmp_path / "model")
    assert out.card.sentiment == SentimentSpec(model="test-scorer", method="decayed_mean", half_life="8h")
    assert load_card(tmp_path / "model").sentiment == out.card.sentiment


def test_sentiment_on_a_catalog_without_scores_is_a_config_error(tiny_catalog: Path) -> None:
    cfg = train_config_from_dict(tiny_raw(tiny_catalog, sentiment=SENTIMENT))
    with pytest.raises(ConfigError, match=rf"catalog {tiny_catalog} has no news.*sigtrade ingest news.*sigtrade sentiment score --catalog {tiny_catalog} --model test-scorer"):
        prepare_data(cfg)


def test_the_example_sentiment_config_loads() -> None:
    from research.config import load_train_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_train_config(root / "config" / "train_demo_sentiment.toml")
    assert cfg.sentiment is not None and cfg.sentiment.spec() == SentimentSpec(half_life="1D")
