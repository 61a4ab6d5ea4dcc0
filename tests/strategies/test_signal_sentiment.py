"""A model trained with news sentiment in backtests: batch = streaming, causal, cards without it unchanged.

Synthetic bars (engine.sample) and hand-written scored news (no transformers); the model is
a small seeded ONNX MLP (tests/models/onnx_factory.py) whose card records a sentiment spec.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import catalog as cat
from engine.catalog import write_bars
from engine.config import load_config
from engine.runner import run_backtest
from engine.sample import SampleSpec, generate_sample
from models.errors import ModelContractError, ModelDataError
from models.features import compute_features
from models.sentiment import SentimentSpec, read_scored_articles, spec_features
from models.signal import load_signal_model
from strategies.signal import batch_probabilities
from tests.models.onnx_factory import fit_scaler, make_mlp_artifact
from tests.models.test_sentiment import with_sentiment, write_scored_news

SCORER = "test-scorer"
SPEC = SentimentSpec(model=SCORER, half_life="6h", method="count_weighted", prior=0.5)
SAMPLE = SampleSpec(seed=5, n_symbols=2, start="2023-01-03", end="2023-04-28")


def _random_news(frames: dict[str, pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    first, last = min(f.index[0] for f in frames.values()), max(f.index[-1] for f in frames.values())
    n = 600
    created = pd.to_datetime(rng.integers(first.value - 86_400 * 10**9, last.value, n), utc=True)
    symbols = list(frames)
    return pd.DataFrame({
        "id": [f"art{i}" for i in range(n)],
        "symbols": [[symbols[i % 2]] if i % 5 else symbols for i in range(n)],
        "headline": [f"news {i}" for i in range(n)],
        "created_at": created,
        "score": np.round(rng.uniform(-1, 1, n), 3),
    })


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sentiment")
    frames = generate_sample(SAMPLE)
    catalog = root / "catalog"
    write_bars(catalog, frames, "1-HOUR", synthetic=True, note="SYNTHETIC test universe")
    plain = root / "plain_catalog"  # the same bars, no news
    write_bars(plain, frames, "1-HOUR", synthetic=True, note="SYNTHETIC test universe")
    news = _random_news(frames)
    write_scored_news(catalog, news, SCORER)
    spy = frames["SPY"]
    sent = spec_features(SPEC, {"SPY": spy.index}, read_scored_articles(catalog, SCORER))["SPY"]
    scaler = fit_scaler(compute_features(spy.loc[:"2023-02-28"], sentiment=sent).to_numpy())
    model = with_sentiment(make_mlp_artifact(root / "news_model", lookback=4, seed=3, scaler=scaler), SPEC)
    blind = make_mlp_artifact(root / "blind_model", lookback=4, seed=3, scaler=scaler)  # same net, no spec
    return {"catalog": catalog, "plain": plain, "model": model, "blind": blind, "root": root}


def _cfg(catalog: Path, model: Path, *overrides: str):
    return load_config(None, [
        f'data.catalog="{catalog}"', f'data.symbols={json.dumps(list(generate_sample(SAMPLE)))}',
        "data.start=2023-03-01", "data.end=2023-04-27", 'strategy.kind="signal"', f'strategy.model="{model}"',
        *overrides,
    ])


def _frames(catalog: Path) -> dict[str, pd.DataFrame]:
    return {s: cat.read_frame(catalog, s, "1-HOUR") for s in cat.resolve_symbols(catalog, "1-HOUR", "all")}


def test_batch_and_streaming_modes_trade_identically_on_news(setup: dict[str, Path]) -> None:
    frames = _frames(setup["catalog"])
    model = load_signal_model(setup["model"])
    with_news = batch_probabilities(model, frames, setup["catalog"])["SPY"]
    without = load_signal_model(setup["blind"]).probabilities(frames["SPY"], "SPY")
    assert np.nanmax(np.abs(with_news - without)) > 1e-3, "the news should move the probabilities"
    thr = float(np.round(with_news.loc["2023-03":].median(), 6))
    common = [f"strategy.entry_threshold={thr}", f"strategy.exit_threshold={thr}"]
    batch = run_backtest(_cfg(setup["catalog"], setup["model"], *common, 'strategy.mode="batch"'))
    stream = run_backtest(_cfg(setup["catalog"], setup["model"], *common, 'strategy.mode="streaming"'))
    cols = ["ts", "symbol", "side", "qty", "price"]
    assert len(batch.strategy.fills) >= 10, "the test model should trade"
    pd.testing.assert_frame_equal(batch.strategy.fills[cols], stream.strategy.fills[cols], check_exact=True)
    blind = run_backtest(_cfg(setup["catalog"], setup["blind"], *common, 'strategy.mode="batch"'))
    assert not blind.strategy.fills[cols].equals(batch.strategy.fills[cols])  # the news changed the trades


def test_a_card_without_sentiment_ignores_the_news_as_before(setup: dict[str, Path]) -> None:
    frames = _frames(setup["catalog"])
    blind = load_signal_model(setup["blind"])
    assert blind.sentiment is None
    got = batch_probabilities(blind, frames, setup["catalog"])
    want = blind.probabilities_many(frames)
    for s in frames:
        pd.testing.assert_series_equal(got[s], want[s], check_exact=True)
    # no news in the catalog is fine for it, in both modes
    res = run_backtest(_cfg(setup["plain"], setup["blind"], 'strategy.mode="streaming"'))
    assert res.strategy.fills is not None


def test_truncating_the_news_at_t_leaves_every_earlier_probability_unchanged(setup: dict[str, Path]) -> None:
    frames = _frames(setup["catalog"])
    model = load_signal_model(setup["model"])
    full = batch_probabilities(model, frames, setup["catalog"])
    news = pd.read_parquet(setup["catalog"] / "sigtrade_news" / "news.parquet")
    scores = read_scored_articles(setup["catalog"], SCORER).set_index("id")["score"]
    spy = frames["SPY"].index
    for k in (120, 333, 500):
        t = spy[k]
        cut_dir = setup["root"] / f"cut{k}"
        kept = news[news["created_at"] < t]
        write_scored_news(cut_dir, kept.assign(score=scores.loc[kept["id"]].to_numpy()), SCORER)
        cut = batch_probabilities(model, frames, cut_dir)
        for s in frames:
            upto = frames[s].index <= t
            np.testing.assert_array_equal(cut[s].to_numpy()[upto], full[s].to_numpy()[upto])
            assert not np.array_equal(cut[s].to_numpy()[~upto], full[s].to_numpy()[~upto])


def test_a_news_model_on_a_catalog_without_scores_says_what_to_run(setup: dict[str, Path]) -> None:
    plain = setup["plain"]
    with pytest.raises(ModelDataError, match=rf"catalog {plain} has no news.*sigtrade sentiment score --catalog {plain} --model {SCORER}"):
        run_backtest(_cfg(plain, setup["model"]))
    frames = _frames(plain)
    with pytest.raises(ModelContractError, match="give the strategy the catalog"):
        batch_probabilities(load_signal_model(setup["model"]), frames)
