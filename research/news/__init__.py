"""News sentiment: store articles in a catalog, score them, aggregate scores into bar features.

* :mod:`research.news.store` - the news table (``<catalog>/sigtrade_news/news.parquet``) and
  the CSV reader behind ``sigtrade ingest news-csv``; pandas only.
* :mod:`research.news.scoring` - transformers sequence classifiers (FinBERT by default),
  batched, cached per article by content hash; needs torch and transformers.
* :mod:`research.news.aggregate` - causal per-bar sentiment features; pandas only.
* :mod:`research.news.evaluate` - accuracy and macro-F1 of a scorer on labelled sentences.
"""
