"""News sentiment: news-csv ingest, scoring with a cached classifier, causal bar features, evaluation.

The classifier is a tiny BERT built from a config (random weights, FinBERT's three label
names) and saved to a folder: it loads through the same path as a real FinBERT, with no
hub download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.cli.app import main  # noqa: E402
from engine.errors import ConfigError, DataError  # noqa: E402
from research.news.aggregate import sentiment_feature, sentiment_features  # noqa: E402
from research.news.evaluate import classification_report, evaluate_scorer, read_labelled  # noqa: E402
from research.news.scoring import load_scorer, read_scores, score_catalog, score_texts  # noqa: E402
from research.news.store import ingest_news_csv, news_path, read_news  # noqa: E402
from tests.conftest import need  # noqa: E402

pytestmark = pytest.mark.research

WORDS = ("the company profit rose fell sales loss growth market shares stock down up said "
         "quarter year record strong weak beat missed guidance cut raised").split()
HEADER = "id,symbols,headline,summary,source,created_at,updated_at\n"


def _vocab() -> dict[str, int]:
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,%"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *chars, *(f"##{c}" for c in chars)]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def _save_tiny(folder: Path, id2label: dict[int, str] | None = None, classifier: bool = True) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    id2label = id2label or {0: "positive", 1: "negative", 2: "neutral"}
    vocab = _vocab()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=len(id2label),
        id2label=id2label, label2id={v: k for k, v in id2label.items()},
    )
    net = BertForSequenceClassification(config) if classifier else BertModel(config)
    net.save_pretrained(folder)
    BertTokenizerFast(vocab=vocab, model_max_length=32).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-class BERT classifier saved as a model folder (labels as FinBERT's)."""
    return _save_tiny(tmp_path_factory.mktemp("tiny_finbert"))


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    '1,AAPL,Company profit rose,Record quarter,wire,2024-01-05T14:30:00Z,2024-01-05T14:30:00Z',
    '2,"aapl, msft",Sales fell,,wire,2024-01-05T15:00:00+00:00,',
    '3,SPY;QQQ,Market up,Stock market strong,wire,2024-01-05T16:00:00Z,2024-01-05T16:00:00Z',
]


# --------------------------------------------------------------------------- news-csv


def test_news_csv_ingest_is_incremental_and_deduplicated_by_id(tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    dup = '1,AAPL,Company profit rose strongly,Record quarter,wire,2024-01-05T14:30:00Z,2024-01-05T14:45:00Z'
    report = ingest_news_csv(_csv(tmp_path / "a.csv", [*ROWS, dup]), catalog)
    assert (report.added, report.updated, report.total) == (3, 0, 3)
    assert any("1 repeated id" in n for n in report.notes)
    news = read_news(catalog).set_index("id")
    assert news.loc["1", "headline"] == "Company profit rose strongly"  # the latest updated_at won
    assert news.loc["2", "symbols"] == ["AAPL", "MSFT"]
    assert news.loc["2", "updated_at"] == news.loc["2", "created_at"]  # blank updated_at
    assert str(news["created_at"].dt.tz) == "UTC"

    again = ingest_news_csv(tmp_path / "a.csv", catalog)
    assert (again.added, again.updated, again.unchanged, again.total) == (0, 0, 3, 3)
    newer = '2,AAPL,Sales fell sharply,,wire,2024-01-05T15:00:00Z,2024-01-06T09:00:00Z'
    older = '3,SPY,Market up (old edit),,wire,2024-01-05T16:00:00Z,2024-01-05T15:00:00Z'
    fresh = '4,MSFT,Guidance raised,,wire,2024-01-08T12:00:00Z,'
    third = ingest_news_csv(_csv(tmp_path / "b.csv", [newer, older, fresh]), catalog)
    assert (third.added, third.updated, third.unchanged, third.total) == (1, 1, 1, 4)
    news = read_news(catalog).set_index("id")
    assert news.loc["2", "headline"] == "Sales fell sharply"
    assert news.loc["3", "headline"] == "Market up"  # an older edit does not replace a newer one


def test_news_csv_refuses_naive_times_unless_a_zone_is_given(tmp_path: Path) -> None:
    naive = _csv(tmp_path / "n.csv", ['1,AAPL,Profit rose,,wire,2024-01-05 09:30:00,'])
    with pytest.raises(DataError, match=r"without a time zone on line\(s\) 2.*--tz America/New_York"):
        ingest_news_csv(naive, tmp_path / "cat")
    assert not news_path(tmp_path / "cat").exists()
    ingest_news_csv(naive, tmp_path / "cat", tz="America/New_York")
    assert read_news(tmp_path / "cat")["created_at"].iloc[0] == pd.Timestamp("2024-01-05 14:30", tz="UTC")


@pytest.mark.parametrize(("row", "message"), [
    ('9,,Profit rose,,wire,2024-01-05T14:30:00Z,', r"no symbols on line\(s\) 3"),
    ('9,AAPL,,,wire,2024-01-05T14:30:00Z,', r"no headline and no summary on line\(s\) 3"),
    ('9,AAPL,Profit rose,,wire,yesterday noon Z,', "not an ISO time"),
    (',AAPL,Profit rose,,wire,2024-01-05T14:30:00Z,', r"empty id on line\(s\) 3"),
])
def test_a_bad_news_file_is_refused_whole_and_leaves_the_table_untouched(tmp_path: Path, row: str, message: str) -> None:
    catalog = tmp_path / "cat"
    ingest_news_csv(_csv(tmp_path / "good.csv", ROWS[:1]), catalog)
    before = news_path(catalog).read_bytes()
    with pytest.raises(DataError, match=message):
        ingest_news_csv(_csv(tmp_path / "bad.csv", [ROWS[1], row]), catalog)
    assert news_path(catalog).read_bytes() == before
    assert sorted(p.name for p in news_path(catalog).parent.iterdir()) == ["news.parquet"]  # no temp file left


def test_news_csv_cli_reports_and_refuses_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "cat"
    main(["ingest", "news-csv", str(_csv(tmp_path / "a.csv", ROWS)), "--catalog", str(catalog)])
    assert "3 new, 0 updated, 0 unchanged" in capsys.readouterr().out
    missing = _csv(tmp_path / "m.csv", []).with_name("m.csv")
    missing.write_text("id,headline,created_at\n1,x,2024-01-05T14:30:00Z\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "news-csv", str(missing), "--catalog", str(catalog)])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "missing column(s) symbols" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "news-csv", str(missing)])
    assert exc.value.code == 2


# --------------------------------------------------------------------------- scoring


def test_scoring_is_deterministic_and_cached_per_article(tmp_path: Path, tiny_model: Path) -> None:
    catalog = tmp_path / "cat"
    ingest_news_csv(_csv(tmp_path / "a.csv", ROWS), catalog)
    scorer = load_scorer(tiny_model, device="cpu")
    seen: list[tuple[int, int]] = []
    first, r1 = score_catalog(catalog, scorer, progress=lambda d, t: seen.append((d, t)))
    assert (r1.new, r1.cached, r1.articles) == (3, 0, 3)
    assert seen[-1] == (3, 3)
    probs = first[["positive", "negative", "neutral"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(first["score"], first["positive"] - first["negative"])
    assert first["score"].between(-1, 1).all()

    second, r2 = score_catalog(catalog, load_scorer(tiny_model, device="cpu"))
    assert (r2.new, r2.cached) == (0, 3)
    pd.testing.assert_frame_equal(first, second)
    # a fresh computation (no cache) gives the same numbers: eval mode, no dropout
    texts = ["Company profit rose\nRecord quarter", "Sales fell"]
    a, b = score_texts(scorer, texts), score_texts(scorer, texts)
    np.testing.assert_array_equal(a.probs, b.probs)

    ingest_news_csv(_csv(tmp_path / "b.csv", ['4,MSFT,Guidance raised,,wire,2024-01-08T12:00:00Z,']), catalog)
    third, r3 = score_catalog(catalog, scorer)
    assert (r3.new, r3.cached, len(third)) == (1, 3, 4)
    assert len(read_scores(catalog)) == 4


def test_texts_longer_than_the_model_are_truncated_and_counted(tmp_path: Path, tiny_model: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    long = "profit rose " * 40  # ~80 tokens, the tiny model takes 32
    scorer = load_scorer(tiny_model, device="cpu", batch_size=2)
    scored = score_texts(scorer, ["profit rose", long, "sales fell"])
    assert scored.truncated.tolist() == [False, True, False]
    catalog = tmp_path / "cat"
    ingest_news_csv(_csv(tmp_path / "a.csv", [*ROWS, f'5,AAPL,{long},,wire,2024-01-05T17:00:00Z,']), catalog)
    main(["sentiment", "score", "--catalog", str(catalog), "--model", str(tiny_model), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "1 article(s) longer than the model's 32 tokens were cut" in " ".join(out.split())


def test_bad_model_folders_are_refused_with_a_clear_message(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        load_scorer(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="a file, not a model directory"):
        load_scorer(tmp_path / "weights.bin")
    with pytest.raises(ConfigError, match="not a sequence classifier"):
        load_scorer(_save_tiny(tmp_path / "encoder", classifier=False))
    with pytest.raises(ConfigError, match=r"has labels \[LABEL_0, LABEL_1, LABEL_2\]"):
        load_scorer(_save_tiny(tmp_path / "generic", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}))
    with pytest.raises(ConfigError, match=r"has labels \[bullish, bearish\]"):
        load_scorer(_save_tiny(tmp_path / "two", {0: "bullish", 1: "bearish"}))
    # case and order of the labels do not matter
    shuffled = load_scorer(_save_tiny(tmp_path / "shuffled", {0: "Neutral", 1: "POSITIVE", 2: "negative"}))
    assert shuffled.columns == (1, 2, 0)


def test_sentiment_cli_errors_without_traceback(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sentiment", "score", "--catalog", str(tmp_path), "--model", str(tiny_model), "--device", "cpu"])
    assert exc.value.code == 2
    assert "no news in this catalog" in capsys.readouterr().err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(SystemExit) as exc:
        main(["sentiment", "score", "--catalog", str(tmp_path)])
    assert exc.value.code == 6
    assert "needs transformers" in capsys.readouterr().err


# --------------------------------------------------------------------------- causal aggregation


def _bars() -> pd.DatetimeIndex:
    """Hourly closes Fri 2024-01-05 and Mon 2024-01-08, 15:00-21:00 UTC (10:00-16:00 New York)."""
    fri = pd.date_range("2024-01-05 15:00", "2024-01-05 21:00", freq="h", tz="UTC")
    mon = pd.date_range("2024-01-08 15:00", "2024-01-08 21:00", freq="h", tz="UTC")
    return fri.append(mon)


def _articles(times: list[str], scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"created_at": pd.to_datetime(times, utc=True, format="ISO8601"), "score": scores})


def test_an_article_counts_only_from_the_first_bar_closing_strictly_after_it() -> None:
    bars = _bars()
    on_close = sentiment_feature(bars, _articles(["2024-01-05 16:00"], [1.0]))
    assert on_close.loc[:"2024-01-05 16:00"].eq(0).all()  # stamped at the close: not yet known
    assert on_close.loc["2024-01-05 17:00"] == pytest.approx(2 ** (-1 / 24))
    just_before = sentiment_feature(bars, _articles(["2024-01-05 15:59:59.999999999"], [1.0]))
    assert just_before.loc["2024-01-05 15:00"] == 0 and just_before.loc["2024-01-05 16:00"] > 0.999
    just_after = sentiment_feature(bars, _articles(["2024-01-05 16:00:00.000000001"], [-1.0]))
    assert just_after.loc[:"2024-01-05 16:00"].eq(0).all() and just_after.loc["2024-01-05 17:00"] < -0.97
    after_last = sentiment_feature(bars, _articles(["2024-01-08 21:00"], [1.0]))
    assert after_last.eq(0).all()


def test_no_article_affects_an_earlier_bar_and_truncating_news_keeps_the_past() -> None:
    bars = _bars()
    rng = np.random.default_rng(3)
    # news on bar boundaries, between bars, overnight and over the weekend, plus pre-history
    times = list(bars[::2]) + list(pd.to_datetime(rng.integers(bars[0].value - 10**14, bars[-1].value + 10**13, 40), utc=True))
    news = _articles([str(t) for t in times], list(rng.uniform(-1, 1, len(times))))
    for method in ("decayed_mean", "count_weighted"):
        full = sentiment_feature(bars, news, method=method)
        for i, c in enumerate(news["created_at"]):
            without = sentiment_feature(bars, news.drop(index=i), method=method)
            np.testing.assert_array_equal(full[bars <= c], without[bars <= c])
            assert not np.array_equal(full[bars > c], without[bars > c]) or not (bars > c).any()
        for t in [*bars, *news["created_at"], pd.Timestamp("2024-01-06 12:00", tz="UTC")]:
            for cut in (news[news["created_at"] <= t], news[news["created_at"] < t]):
                np.testing.assert_array_equal(sentiment_feature(bars, cut, method=method)[bars <= t], full[bars <= t])


def test_news_decays_in_wall_clock_time_over_the_weekend() -> None:
    bars = _bars()
    feat = sentiment_feature(bars, _articles(["2024-01-05 20:30"], [0.8]), half_life="1D")
    assert feat.loc["2024-01-05 21:00"] == pytest.approx(0.8 * 2 ** (-0.5 / 24))
    # Friday 20:30 to Monday 15:00 is 66.5 hours: the weekend decays like any other time
    assert feat.loc["2024-01-08 15:00"] == pytest.approx(0.8 * 2 ** (-66.5 / 24))
    slow = sentiment_feature(bars, _articles(["2024-01-05 20:30"], [0.8]), half_life=pd.Timedelta(days=7))
    assert slow.loc["2024-01-08 15:00"] > feat.loc["2024-01-08 15:00"]


def test_aggregation_methods_and_time_zones() -> None:
    bars = _bars()
    two = _articles(["2024-01-05 15:30", "2024-01-05 15:30"], [1.0, 1.0])
    at = pd.Timestamp("2024-01-05 16:00", tz="UTC")
    w = 2 ** (-0.5 / 24)
    assert sentiment_feature(bars, two).loc[at] == pytest.approx(1.0)
    assert sentiment_feature(bars, two, method="count_weighted").loc[at] == pytest.approx(2 * w / (2 * w + 1))
    mixed = _articles(["2024-01-05 15:30", "2024-01-05 15:30"], [1.0, -0.5])
    assert sentiment_feature(bars, mixed).loc[at] == pytest.approx(0.25)
    # the same instants written in New York time give the same feature, indexed in UTC
    ny = sentiment_feature(bars.tz_convert("America/New_York"),
                           mixed.assign(created_at=mixed["created_at"].dt.tz_convert("Asia/Tokyo")))
    pd.testing.assert_series_equal(ny, sentiment_feature(bars, mixed))
    assert str(ny.index.tz) == "UTC"
    with pytest.raises(DataError, match="naive"):
        sentiment_feature(bars.tz_localize(None), mixed)
    with pytest.raises(DataError, match="naive"):
        sentiment_feature(bars, mixed.assign(created_at=mixed["created_at"].dt.tz_localize(None)))
    with pytest.raises(ConfigError, match="did you mean 'decayed_mean'"):
        sentiment_feature(bars, mixed, method="decayed_maen")  # type: ignore[arg-type]


def test_features_per_symbol_follow_the_articles_symbols() -> None:
    bars = _bars()
    articles = pd.DataFrame({
        "created_at": pd.to_datetime(["2024-01-05 15:30", "2024-01-05 15:40"], utc=True),
        "score": [1.0, -1.0], "symbols": [["AAPL", "MSFT"], ["SPY"]],
    })
    feats = sentiment_features({"AAPL": bars, "MSFT": bars, "SPY": bars, "QQQ": bars}, articles)
    at = pd.Timestamp("2024-01-05 16:00", tz="UTC")
    assert feats["AAPL"].loc[at] == feats["MSFT"].loc[at] == pytest.approx(2 ** (-30 / 1440))
    assert feats["SPY"].loc[at] == pytest.approx(-(2 ** (-20 / 1440)))
    assert feats["QQQ"].eq(0).all()  # no news: neutral


def test_the_feature_plugs_into_the_model_features(tiny_frames: dict[str, pd.DataFrame]) -> None:
    from models.features import compute_features

    frame = tiny_frames[sorted(tiny_frames)[0]].iloc[:200]
    closes = frame.index
    news = _articles([str(closes[10]), str(closes[50] - pd.Timedelta(minutes=5))], [0.6, -0.9])
    sent = sentiment_feature(closes, news)
    column = compute_features(frame, sentiment=sent)["sentiment"]
    np.testing.assert_array_equal(column.to_numpy(), sent.to_numpy())
    assert column.iloc[:11].eq(0).all() and column.iloc[11] > 0  # the article at bar 10's close starts at bar 11
    assert column.iloc[50] < 0


# --------------------------------------------------------------------------- evaluation


def test_classification_report_matches_a_hand_count() -> None:
    y_true = ["positive", "positive", "negative", "neutral", "neutral", "neutral"]
    y_pred = ["positive", "neutral", "negative", "neutral", "positive", "neutral"]
    r = classification_report(y_true, y_pred)
    assert r.n == 6
    assert r.accuracy == pytest.approx(4 / 6)
    # F1: positive 1/2, negative 1, neutral 2/3
    assert r.per_class["f1"].tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert r.macro_f1 == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert r.confusion.loc["neutral"].tolist() == [1, 0, 2]
    assert r.per_class["support"].tolist() == [2, 1, 3]


def test_evaluate_on_financial_phrasebank(real_data: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = real_data / "news" / "financial_phrasebank_all-data.csv"
    need(path.is_file(), f"Financial PhraseBank not found at {path}")
    data = read_labelled(path, limit=200)  # latin-1 file
    assert len(data) == 200 and set(data["label"]) <= {"positive", "negative", "neutral"}
    report = evaluate_scorer(load_scorer(tiny_model, device="cpu"), data)
    assert report.n == 200 and int(report.confusion.to_numpy().sum()) == 200
    assert report.per_class["support"].sum() == 200
    assert report.accuracy == pytest.approx(np.trace(report.confusion.to_numpy()) / 200)
    main(["sentiment", "evaluate", "--dataset", str(path), "--model", str(tiny_model), "--limit", "50", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "on 50 sentence(s)" in out and "macro-F1" in out and "confusion" in out


def test_evaluate_refuses_unknown_labels(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("label,content\npositive,fine\nbullish,great\n", encoding="utf-8")
    with pytest.raises(DataError, match="first on line 3: 'bullish'"):
        read_labelled(bad)
