"""The sentiment column outside research: batch = incremental, the catalog reader, the card's spec."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from models.card import load_card, write_card
from models.errors import ModelContractError, ModelDataError
from models.sentiment import (
    SentimentAccumulator,
    SentimentConfigError,
    SentimentSpec,
    article_text,
    cache_key,
    news_path,
    read_scored_articles,
    scorer_name,
    scores_path,
    sentiment_feature,
)
from models.signal import load_signal_model
from tests.models.onnx_factory import make_mlp_artifact


def _bars(n: int = 300, start: str = "2024-01-02 15:30") -> pd.DatetimeIndex:
    """Hourly-ish closes with overnight and weekend gaps (the decay runs in wall-clock time)."""
    idx = pd.date_range(start, periods=n * 3, freq="h", tz="UTC")
    return idx[(idx.hour >= 15) & (idx.hour <= 21) & (idx.dayofweek < 5)][:n]


def _articles(bars: pd.DatetimeIndex, n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lo, hi = bars[0].value - 3 * 86_400 * 10**9, bars[-1].value + 86_400 * 10**9
    created = rng.integers(lo, hi, n)
    created[:20] = bars.asi8[rng.integers(0, len(bars), 20)]  # exactly on a close
    created[20:30] = created[30:40]  # same time, different ids
    return pd.DataFrame({
        "id": [f"a{i:04d}" for i in rng.permutation(n)],
        "created_at": pd.to_datetime(created, utc=True),
        "score": rng.uniform(-1, 1, n),
    })


SPECS = [SentimentSpec(model="m", half_life="6h"), SentimentSpec(model="m", method="count_weighted", half_life="2D", prior=3.0)]


@pytest.mark.parametrize("spec", SPECS, ids=["decayed_mean", "count_weighted"])
def test_accumulator_fed_out_of_order_late_and_twice_equals_the_batch_bit_for_bit(spec: SentimentSpec) -> None:
    bars, news = _bars(), _articles(_bars())
    acc = SentimentAccumulator(spec)
    rng = np.random.default_rng(1)
    # each article arrives some random time after its creation (late news), in random order
    arrival = pd.DatetimeIndex(news["created_at"]).asi8 + rng.integers(0, 30 * 3_600 * 10**9, len(news))
    order = np.argsort(arrival, kind="stable")
    got, j = [], 0
    for t in bars.asi8:
        while j < len(order) and arrival[order[j]] < t:
            row = news.iloc[order[j]]
            acc.add(row["id"], row["created_at"], row["score"])
            if j % 7 == 0:
                assert not acc.add(row["id"], row["created_at"], row["score"])  # exact duplicate: nothing changes
            j += 1
        got.append(acc.value(int(t)))
    # what was known at each close: the articles that had arrived by then
    known_at = [sentiment_feature(bars[: k + 1], news.iloc[order[: int(np.searchsorted(arrival[order], t))]],
                                  spec.half_life, spec.method, spec.prior).iloc[-1]
                for k, t in enumerate(bars.asi8) if k % 25 == 0]
    np.testing.assert_array_equal(np.array(got)[::25], np.array(known_at))
    # once every article is in, the latest close equals the batch over everything, bit for bit
    for i in order[j:]:
        row = news.iloc[i]
        acc.add(row["id"], row["created_at"], row["score"])
    full = sentiment_feature(bars, news, spec.half_life, spec.method, spec.prior)
    assert acc.value(int(bars[-1].value)) == full.iloc[-1]
    # and a fresh accumulator given everything up front reproduces the whole batch series
    fresh = SentimentAccumulator(spec, news.sample(frac=1.0, random_state=3))
    np.testing.assert_array_equal([fresh.value(int(t)) for t in bars.asi8], full.to_numpy())
    assert full.abs().max() > 0.05 and len(fresh) == len(news)


def test_a_repeated_id_replaces_the_earlier_version_in_both_modes() -> None:
    bars = _bars(40)
    spec = SPECS[0]
    first = pd.DataFrame({"id": ["x"], "created_at": [bars[3] - pd.Timedelta("1min")], "score": [0.9]})
    edited = pd.DataFrame({"id": ["x"], "created_at": [bars[3] - pd.Timedelta("1min")], "score": [-0.4]})
    acc = SentimentAccumulator(spec, first)
    before = [acc.value(int(t)) for t in bars.asi8[:10]]
    assert before[3] > 0.5 and before[2] == 0.0
    acc.add("x", edited["created_at"].iloc[0], -0.4)  # an edit after it was used: from now on
    after = [acc.value(int(t)) for t in bars.asi8[10:]]
    batch = sentiment_feature(bars, pd.concat([first, edited]), spec.half_life)  # last row of an id wins
    np.testing.assert_array_equal(after, batch.to_numpy()[10:])
    assert (batch.to_numpy()[3:] < 0).all()


def test_accumulator_started_later_agrees_with_a_longer_batch() -> None:
    bars, news = _bars(600), _articles(_bars(600), 800, seed=4)
    for spec in SPECS:
        full = sentiment_feature(bars, news, spec.half_life, spec.method, spec.prior)
        acc = SentimentAccumulator(spec, news)
        live = np.array([acc.value(int(t)) for t in bars.asi8[250:]])
        np.testing.assert_allclose(live, full.to_numpy()[250:], rtol=0, atol=1e-12)


def test_accumulator_refuses_what_it_cannot_use() -> None:
    acc = SentimentAccumulator(SPECS[0])
    with pytest.raises(ModelDataError, match="no time zone"):
        acc.add("a", pd.Timestamp("2024-01-02 10:00"), 0.5)
    with pytest.raises(ModelDataError, match=r"score 1.5: expected a finite number in \[-1, 1\]"):
        acc.add("a", pd.Timestamp("2024-01-02 10:00", tz="UTC"), 1.5)
    acc.value(pd.Timestamp("2024-01-03", tz="UTC"))
    with pytest.raises(ModelDataError, match="moves forward only"):
        acc.value(pd.Timestamp("2024-01-02", tz="UTC"))


def test_spec_is_checked_with_messages_that_teach() -> None:
    with pytest.raises(SentimentConfigError, match="did you mean 'decayed_mean'"):
        SentimentSpec(method="decayed_maen")  # type: ignore[arg-type]
    with pytest.raises(SentimentConfigError, match="is not a duration"):
        SentimentSpec(half_life="soon")
    with pytest.raises(SentimentConfigError, match="must be positive"):
        SentimentSpec(half_life="-2h")
    with pytest.raises(SentimentConfigError, match="prior must be a positive"):
        SentimentSpec(prior=0.0)


# --- the catalog reader ----------------------------------------------------------------------


def write_scored_news(catalog: Path, news: pd.DataFrame, model: str, *, score_all: bool = True) -> None:
    """Write ``news.parquet`` and ``scores.parquet`` as ``ingest`` and ``sentiment score`` do."""
    news_path(catalog).parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({
        "id": news["id"], "symbols": news["symbols"], "headline": news["headline"], "summary": "",
        "source": "test", "created_at": news["created_at"], "updated_at": news["created_at"],
    })
    table.to_parquet(news_path(catalog), index=False)
    name = scorer_name(model)
    rows = news if score_all else news.iloc[: len(news) // 2]
    pd.DataFrame({
        "key": [cache_key(name, article_text(h, "")) for h in rows["headline"]], "model": name,
        "positive": 0.0, "negative": 0.0, "neutral": 1.0, "score": rows["score"].to_numpy(),
        "truncated": False, "scored_at": pd.Timestamp("2024-06-01", tz="UTC"),
    }).to_parquet(scores_path(catalog), index=False)


def _news(n: int = 12) -> pd.DataFrame:
    created = pd.date_range("2024-01-02 14:00", periods=n, freq="5h", tz="UTC")
    return pd.DataFrame({
        "id": [f"n{i}" for i in range(n)], "symbols": [["AAPL"] if i % 3 else ["AAPL", "MSFT"] for i in range(n)],
        "headline": [f"headline {i}" for i in range(n)], "created_at": created,
        "score": np.linspace(-0.9, 0.9, n),
    })


def test_scored_articles_are_read_without_transformers(tmp_path: Path) -> None:
    news = _news()
    write_scored_news(tmp_path, news, "my-scorer")
    got = read_scored_articles(tmp_path, "my-scorer")
    assert list(got.columns) == ["id", "symbols", "created_at", "score"]
    np.testing.assert_array_equal(got["score"].to_numpy(), news["score"].to_numpy())
    assert got["created_at"].dt.tz is not None and got["symbols"].iloc[0] == ["AAPL", "MSFT"]


def test_missing_or_partial_scores_name_the_catalog_and_the_commands(tmp_path: Path) -> None:
    with pytest.raises(ModelDataError, match=rf"catalog {tmp_path} has no news.*sigtrade ingest news.*sigtrade sentiment score --catalog {tmp_path}"):
        read_scored_articles(tmp_path, "ProsusAI/finbert")
    write_scored_news(tmp_path, _news(), "my-scorer", score_all=False)
    with pytest.raises(ModelDataError, match=rf"6 of 12 article\(s\) have no score by model 'my-scorer'.*--catalog {tmp_path} --model my-scorer"):
        read_scored_articles(tmp_path, "my-scorer")
    with pytest.raises(ModelDataError, match="12 of 12"):  # another scorer's scores do not count
        read_scored_articles(tmp_path, "ProsusAI/finbert")
    scores_path(tmp_path).unlink()
    with pytest.raises(ModelDataError, match="has news but no sentiment scores"):
        read_scored_articles(tmp_path, "my-scorer")


# --- the card and the signal model -----------------------------------------------------------


def with_sentiment(folder: Path, spec: SentimentSpec | None) -> Path:
    """Rewrite a model folder's card with *spec* as its sentiment."""
    write_card(msgspec.structs.replace(load_card(folder), sentiment=spec), folder / "card.json")
    return folder


def test_the_card_records_and_checks_the_spec(tmp_path: Path) -> None:
    spec = SentimentSpec(model="my-scorer", half_life="4h")
    folder = with_sentiment(make_mlp_artifact(tmp_path / "m", lookback=4), spec)
    assert load_card(folder).sentiment == spec
    assert load_signal_model(folder).sentiment == spec
    raw = json.loads((folder / "card.json").read_text())
    raw["sentiment"]["half_life"] = "soon"
    (folder / "card.json").write_text(json.dumps(raw))
    with pytest.raises(ModelContractError, match=r"card.json: field 'sentiment'.*not a duration"):
        load_card(folder)
    raw["sentiment"] = {"half_lfe": "1D"}
    (folder / "card.json").write_text(json.dumps(raw))
    with pytest.raises(ModelContractError, match=r"sentiment.half_lfe.*did you mean 'sentiment.half_life'"):
        load_card(folder)


def test_an_ensemble_whose_members_disagree_on_sentiment_is_refused(tmp_path: Path) -> None:
    with_sentiment(make_mlp_artifact(tmp_path / "a", lookback=4, seed=1), SentimentSpec(model="s", half_life="4h"))
    b = make_mlp_artifact(tmp_path / "b", lookback=4, seed=2)
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps({
        "name": "ens", "bar": "1-HOUR", "combiner": "f1_weighted", "threshold": 0.5,
        "members": [{"path": "../a"}, {"path": "../b"}],
    }))
    with pytest.raises(ModelContractError, match=r"ensemble 'ens'.*'b': none \(trained without news\).*share one card.sentiment"):
        load_signal_model(ens)
    with_sentiment(b, SentimentSpec(model="s", half_life="4h"))
    assert load_signal_model(ens).sentiment == SentimentSpec(model="s", half_life="4h")
