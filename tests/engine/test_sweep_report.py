"""The sweep's report.html as a user gets it from ``sigtrade sweep ... --out DIR``: every section,
figures equal to results.parquet / overfitting.json, drawn in headless Chromium, and a sensible
page when a section cannot be computed (one axis, --no-stats, no --walk-forward)."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.chromium import find_chromium, load_dom
from tests.engine.conftest import SweepRun

SECTIONS = ("summary", "ranked", "overfitting", "walk-forward", "heatmaps", "verify")
RESULT_COLUMNS = {
    "strategy.entry_threshold": "float64", "regime.trend.sma": "int64", "risk.stop_loss": "float64",
    "sharpe": "float64", "sortino": "float64", "total_return": "float64", "cagr": "float64", "calmar": "float64",
    "max_drawdown": "float64", "volatility": "float64", "trades": "int64", "fills": "int64", "turnover": "float64",
    "commission_paid": "float64", "slippage_paid": "float64", "final_equity": "float64",
    "time_in_market": "float64", "costs": "float64",
}
"""results.parquet of the full sweep, exactly as sigtrade wrote it before report.html existed."""
OVERFITTING_KEYS = {
    "": {"configs", "skipped", "axes", "metric", "overfitting"},
    "overfitting": {"n_trials", "best_config", "best_sharpe", "dsr", "pbo", "walk_forward", "notes"},
    "dsr": {"sr", "sr0", "dsr", "psr", "n", "skew", "kurtosis", "n_trials", "var_sr"},
    "pbo": {
        "pbo", "n_combinations", "n_blocks", "block_size", "n_periods", "n_dropped", "n_configs", "metric",
        "logit_median", "degradation_slope", "degradation_intercept", "prob_oos_loss", "note",
    },
    "walk_forward": {
        "spec", "metric", "n_windows", "n_configs", "oos_start", "oos_end", "oos_periods", "distinct_choices",
        "is_best_config", "is_best_sharpe", "oos_sharpe", "oos_total_return", "oos_sharpe_annualised",
        "is_best_total_return", "is_best_sharpe_annualised", "is_best_on_oos_sharpe",
        "is_best_on_oos_total_return", "is_best_on_oos_sharpe_annualised",
    },
}
"""overfitting.json's keys, as before report.html existed."""


def blob(html: str, el_id: str) -> Any:
    m = re.search(rf'<script type="application/json" id="{el_id}">(.*?)</script>', html, re.S)
    assert m is not None, f"no #{el_id} in the page"
    return json.loads(m.group(1))


class Rows(HTMLParser):
    """The rows of every ``<tbody id=...>`` / ``<table id=...>``: per row its attributes and cells (attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.ids: list[str] = []
        self.depth: list[str | None] = []
        self.cell: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("table", "tbody"):
            self.depth.append(a.get("id"))
        elif tag == "tr":
            for el in reversed(self.depth):
                if el:
                    self.rows.setdefault(el, []).append({"attrs": a, "cells": []})
                    break
        elif tag in ("td", "th") and self.depth:
            self.cell = {"attrs": a, "text": ""}
            for el in reversed(self.depth):
                if el and self.rows.get(el):
                    self.rows[el][-1]["cells"].append(self.cell)
                    break

    def handle_endtag(self, tag: str) -> None:
        if tag in ("table", "tbody") and self.depth:
            self.depth.pop()
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell["text"] += data


def rows_of(html: str, el_id: str) -> list[dict[str, Any]]:
    p = Rows()
    p.feed(html)
    return p.rows.get(el_id, [])


def cell(row: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in row["cells"] if c["attrs"].get("data-key") == key)


def number(text: str) -> float:
    """The number a reader sees: '-5.80 %' -> -0.058, '$6,238' -> 6238, '219' -> 219."""
    t = text.replace("−", "-").replace(",", "").replace("$", "").replace("×/yr", "").strip()
    return float(t[:-1]) / 100 if t.endswith("%") else float(t)


def span_value(html: str, el_id: str) -> tuple[str, str]:
    m = re.search(rf'id="{el_id}" data-value="([^"]*)">([^<]*)<', html)
    assert m is not None, f"no #{el_id}"
    return m.group(1), m.group(2)


def array(values: Any) -> np.ndarray:
    """A figure's data array: a JSON list, or plotly's typed array ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values, dtype=float)


def ranked(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame.sort_values(metric, ascending=False, na_position="last", kind="stable")


# --------------------------------------------------------------------------- the full sweep


@pytest.fixture(scope="module")
def full(full_sweep: SweepRun) -> SweepRun:
    assert full_sweep.proc.returncode == 0, full_sweep.proc.stderr
    return full_sweep


def test_the_data_files_keep_their_schema(full: SweepRun) -> None:
    frame = pd.read_parquet(full.out / "results.parquet")
    assert {c: str(t) for c, t in frame.dtypes.items()} == RESULT_COLUMNS
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert frame.index.name == "config" and list(frame.index) == list(range(30))
    csv = pd.read_csv(full.out / "results.csv", index_col="config")
    pd.testing.assert_frame_equal(csv, frame, check_exact=False, rtol=1e-15)
    report = json.loads((full.out / "overfitting.json").read_text())
    assert set(report) == OVERFITTING_KEYS[""]
    over = report["overfitting"]
    assert set(over) == OVERFITTING_KEYS["overfitting"]
    for key in ("dsr", "pbo", "walk_forward"):
        assert set(over[key]) == OVERFITTING_KEYS[key], key
    assert report["axes"] == {
        "strategy.entry_threshold": [0.48, 0.5, 0.52, 0.54, 0.56], "regime.trend.sma": [0, 50, 1000000],
        "risk.stop_loss": [0, 0.01],
    }
    assert over["n_trials"] == len(frame) == report["configs"]
    # written once complete: no temporary folder is left beside the output
    assert [p.name for p in full.out.parent.iterdir()] == ["out"]


def test_the_page_shows_the_figures_of_the_files(full: SweepRun) -> None:
    html = (full.out / "report.html").read_text()
    data = blob(html, "sweep-data")
    frame = pd.read_parquet(full.out / "results.parquet")
    over = json.loads((full.out / "overfitting.json").read_text())
    assert data["overfitting"] == over  # the page's statistics are the file's, exactly

    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    # header: the window, the universe, the costs, the fill mode, the grid, the throughput
    for fact in ("2024-01-02", "2024-06-28", "5 symbols", "SPY, AAPL, MSFT, AMD, COST", "commission 10 bps",
                 "slippage 5 bps", "next_open", "bar×symbol steps/s", "configurations/s"):
        assert fact in html, fact
    grid = {r["cells"][0]["text"]: r["cells"][2]["text"] for r in rows_of(html, "grid-table")[1:]}
    assert grid == {"strategy.entry_threshold": "0.48, 0.5, 0.52, 0.54, 0.56", "regime.trend.sma": "0, 50, 1000000",
                    "risk.stop_loss": "0, 0.01"}

    # ranked table: the top 5 by Sharpe, every shown figure equal to results.parquet
    top = ranked(frame, "sharpe").head(5)
    shown = rows_of(html, "ranked-rows")
    assert [int(r["attrs"]["data-config"]) for r in shown] == list(top.index)
    for r in shown:
        row = frame.loc[int(r["attrs"]["data-config"])]
        for key in ("strategy.entry_threshold", "regime.trend.sma", "risk.stop_loss"):
            assert float(cell(r, key)["text"]) == row[key]
        for key, tol in (("sharpe", 0.005), ("total_return", 5e-5), ("max_drawdown", 5e-5), ("trades", 0),
                         ("turnover", 0.05), ("costs", 0.5), ("time_in_market", 5e-5)):
            c = cell(r, key)
            assert float(c["attrs"]["data-value"]) == row[key], key
            assert abs(number(c["text"]) - row[key]) <= tol, (key, c["text"], row[key])
    assert [{k: v for k, v in rec.items() if k != "rank"} for rec in data["ranked"]] == [
        {"config": cid, **row} for cid, row in zip(top.index, top.to_dict("records"), strict=True)
    ]

    # the benchmark's row is the backtest's buy-and-hold over the same window and costs
    ref, universe = rows_of(html, "reference-rows")
    assert ref["attrs"]["data-ref"] == "benchmark"
    best = top.index[0]
    bench = json.loads((full.out / "verify" / str(best) / "metrics.json").read_text())["benchmark"]
    for key in ("sharpe", "total_return", "max_drawdown", "trades", "turnover"):
        assert float(cell(ref, key)["attrs"]["data-value"]) == bench[key], key
    # the universe's row is the event engine's equal-weight buy-and-hold of the five symbols
    assert universe["attrs"]["data-ref"] == "universe"
    from engine.config import load_config
    from engine.metrics import compute_metrics
    from engine.runner import run_backtest

    held = run_backtest(load_config(full.config, ["strategy.kind=\"buy_and_hold\""])).strategy
    figures = compute_metrics(held)
    assert float(cell(universe, "trades")["attrs"]["data-value"]) == figures["trades"] == 5
    for key in ("sharpe", "total_return", "max_drawdown", "turnover"):
        assert abs(float(cell(universe, key)["attrs"]["data-value"]) - figures[key]) <= 1e-12, key
    assert [r["key"] for r in data["references"]] == ["benchmark", "universe"]

    # overfitting, in place: DSR, PBO, the CSCV logits and the IS vs OOS Sharpe of every split
    o = over["overfitting"]
    for el_id, value, text in (
        ("dsr-value", o["dsr"]["dsr"], f"{o['dsr']['dsr']:.3f}"), ("psr-value", o["dsr"]["psr"], f"{o['dsr']['psr']:.3f}"),
        ("pbo-value", o["pbo"]["pbo"], f"{o['pbo']['pbo']:.3f}"),
        ("prob-oos-loss", o["pbo"]["prob_oos_loss"], f"{o['pbo']['prob_oos_loss'] * 100:.0f} %"),
    ):
        raw, shown_text = span_value(html, el_id)
        assert float(raw) == value and shown_text == text, el_id
    assert span_value(html, "best-config")[0] == str(o["best_config"])
    assert span_value(html, "n-trials")[0] == str(o["n_trials"])
    hist = data["pbo_histogram"]
    assert sum(hist["counts"]) == o["pbo"]["n_combinations"]
    assert sum(hist["counts"][: hist["zero_bin"]]) / sum(hist["counts"]) == pytest.approx(o["pbo"]["pbo"], abs=1e-15)
    figs = blob(html, "figures")
    scatter = figs["pbo-scatter"]["data"][0]
    assert len(array(scatter["x"])) == o["pbo"]["n_combinations"]
    assert np.mean(array(scatter["y"]) < 0) == pytest.approx(o["pbo"]["prob_oos_loss"], abs=1e-15)

    # walk-forward: stitched OOS vs in-sample best vs the benchmark, each window's choice listed
    wf = o["walk_forward"]
    lines = {r["attrs"]["data-line"]: r for r in rows_of(html, "walk-forward-summary")[1:]}
    assert set(lines) == {"oos", "is_best", "benchmark"}
    assert float(cell(lines["oos"], "sharpe")["attrs"]["data-value"]) == wf["oos_sharpe_annualised"]
    assert float(cell(lines["oos"], "total_return")["attrs"]["data-value"]) == wf["oos_total_return"]
    assert float(cell(lines["is_best"], "total_return")["attrs"]["data-value"]) == wf["is_best_on_oos_total_return"]
    windows = rows_of(html, "walk-forward-windows")[1:]
    assert len(windows) == wf["n_windows"] == len(data["walk_forward"]["windows"])
    assert len({w["attrs"]["data-config"] for w in windows}) == wf["distinct_choices"]
    equity = figs["walk-forward-equity"]["data"]
    assert len(equity) == 3 and all(len(t["y"]) == wf["oos_periods"] for t in equity)
    assert equity[0]["y"][-1] / 100_000 - 1 == pytest.approx(wf["oos_total_return"], abs=1e-12)

    # heat maps: one per pair of axes, each cell the best Sharpe of its pair of values
    pairs = [("strategy.entry_threshold", "regime.trend.sma"), ("strategy.entry_threshold", "risk.stop_loss"),
             ("regime.trend.sma", "risk.stop_loss")]
    assert sorted(k for k in figs if k.startswith("heatmap-")) == ["heatmap-0", "heatmap-1", "heatmap-2"]
    for j, (a, b) in enumerate(pairs):
        fig = figs[f"heatmap-{j}"]
        traces = {t["meta"]: t for t in fig["data"]}
        assert set(traces) == {"sharpe", "total_return", "max_drawdown", "trades"}
        assert [m for m, t in traces.items() if t.get("visible", True) is True] == ["sharpe"]
        expected = frame.pivot_table(index=a, columns=b, values="sharpe", aggfunc="max", dropna=False)
        expected = expected.reindex(index=over["axes"][a], columns=over["axes"][b])
        got = np.array([[np.nan if v is None else v for v in row] for row in traces["sharpe"]["z"]], dtype=float)
        np.testing.assert_array_equal(got, expected.to_numpy())
        # one colour scale per metric across every map
        assert {(t["zmin"], t["zmax"]) for t in [f["data"][0] for f in (figs[f"heatmap-{i}"] for i in range(3))]} == {
            (traces["sharpe"]["zmin"], traces["sharpe"]["zmax"])
        }
        # the best cell and the walk-forward choices are framed and labelled
        notes = [n["text"] for n in fig["layout"]["annotations"]]
        assert notes[0] == "★" and any(n.startswith("W1") for n in notes)
        picked = frame.loc[[w["chosen"] for w in data["walk_forward"]["windows"]], [a, b]]
        assert len(fig["layout"]["shapes"]) == 1 + len(picked.drop_duplicates())

    # verify-top: the kernel vs the event engine, a link to each re-run's own report
    ver = rows_of(html, "verify-table")[1:]
    assert [r["attrs"]["data-config"] for r in ver] == [str(c) for c in top.index[:2] for _ in range(2)]
    links = re.findall(r'<a href="(verify/\d+/report\.html)">', html)
    assert links == [f"verify/{c}/report.html" for c in top.index[:2]]
    for link in links:
        assert (full.out / link).is_file()
        metrics = json.loads((full.out / link).with_name("metrics.json").read_text())
        event = next(r for r in ver if r["attrs"]["data-simulator"] == "event" and link.split("/")[1] == r["attrs"]["data-config"])
        assert float(cell(event, "sharpe")["attrs"]["data-value"]) == metrics["sharpe"]
        assert "fills and equity: yes" in event["cells"][-2]["text"]


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def _check_rendered(dom: Any, log: str, plots: list[str]) -> None:
    assert dom.text["js-errors"].strip() == "", dom.text["js-errors"]
    assert "render-ok" in dom.under, "the plots never finished drawing"
    assert int(dom.attrs["render-ok"]["data-plots"]) == len(plots)
    assert not re.search(r"Uncaught|CONSOLE.*Error", log), log[-2000:]
    for plot in plots:
        assert {"plot-container", "main-svg"} <= dom.classes(plot), f"{plot} was not drawn by plotly"


@pytest.mark.browser
def test_the_page_renders_in_chromium_with_the_view_of_its_link(full: SweepRun, chromium: str, tmp_path: Path) -> None:
    page = full.out / "report.html"
    figs = blob(page.read_text(), "figures")
    url = page.resolve().as_uri() + "#metric=trades&sort=total_return&dir=desc"
    dom, log = load_dom(chromium, url, tmp_path, shot=tmp_path / "sweep-report.png", height=5200)
    _check_rendered(dom, log, list(figs))
    for section in SECTIONS:
        assert section in dom.under, section
    assert "heatmaplayer" in dom.classes("heatmap-0") and "barlayer" in dom.classes("pbo-histogram")

    # the link's view: the table sorted by return, the heat maps showing trades
    frame = pd.read_parquet(full.out / "results.parquet")
    top = ranked(frame, "sharpe").head(5)
    order = [r["attrs"]["data-config"] for r in rows_of(dom.html, "ranked-rows")]
    assert order == [str(c) for c in top.sort_values("total_return", ascending=False, kind="stable").index]
    assert dom.attrs["ranked-table"].get("data-sort") == "total_return:desc"
    assert dom.attrs["heatmaps"].get("data-metric") == "trades"
    texts = {t.replace("−", "-") for t in dom.texts["heatmap-0"]}
    cells = frame.sort_values("sharpe", ascending=False, na_position="last", kind="stable").groupby(
        ["strategy.entry_threshold", "regime.trend.sma"]).head(1)
    assert {f"{t:,}" for t in cells["trades"]} <= texts  # each cell shows its trades...
    assert not {f"{s:.2f}" for s in cells["sharpe"].dropna()} & texts  # ...and no longer its Sharpe
    assert "★" in texts and any(t.startswith("W1") for t in texts)
    assert 'href="verify/' in dom.html


# --------------------------------------------------------------------------- sections that cannot be computed

VARIANTS = {
    # one swept axis, statistics on, no walk-forward, no verify-top: a line instead of heat maps;
    # a benchmark missing from the catalog (no filter needs it): no reference row, and the page says why
    "one-axis": ("--grid", "strategy.entry_threshold=0.50:0.56:0.02", "--top", "3", "--pbo-blocks", "8",
                 "--set", "benchmark.symbol=QQQ"),
    # --no-stats: no DSR / PBO / walk-forward; a single-valued axis is listed but not mapped
    "no-stats": ("--grid", "strategy.entry_threshold=0.5,0.55", "--grid", "regime.trend.sma=0,50",
                 "--grid", "risk.stop_loss=0.01", "--no-stats"),
}


@pytest.fixture(scope="module")
def variant(request: pytest.FixtureRequest, sweep_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The variant's sweep, run in this process (the full sweep above is the subprocess run)."""
    from engine.cli.app import main

    name = request.param
    out = tmp_path_factory.mktemp(name) / "out"
    main(["sweep", str(sweep_config), "--set", "data.end=2024-03-28", *VARIANTS[name], "--out", str(out)])
    return name, out


@pytest.mark.parametrize("variant", list(VARIANTS), indirect=True)
def test_a_section_that_cannot_be_computed_says_why(variant: tuple[str, Path]) -> None:
    name, out = variant
    html = (out / "report.html").read_text()
    data = blob(html, "sweep-data")
    figs = blob(html, "figures")
    over = json.loads((out / "overfitting.json").read_text())
    assert data["overfitting"] == over
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert "verify-absent" in html and "--verify-top K" in html
    assert "walk-forward-absent" in html and data["walk_forward"] is None
    frame = pd.read_parquet(out / "results.parquet")
    shown = [int(r["attrs"]["data-config"]) for r in rows_of(html, "ranked-rows")]
    assert shown == list(ranked(frame, "sharpe").head(data["top"]).index)
    if name == "one-axis":
        assert over["overfitting"]["pbo"]["n_blocks"] == 8
        assert float(span_value(html, "pbo-value")[0]) == over["overfitting"]["pbo"]["pbo"]
        assert "pass --walk-forward train=12M,test=3M" in html
        assert set(figs) == {"pbo-histogram", "pbo-scatter", "axis-line"}
        line = {t["meta"]: t for t in figs["axis-line"]["data"] if t["name"] not in ("best", "walk-forward choices")}
        by_value = frame.groupby("strategy.entry_threshold")["sharpe"].max()
        assert line["sharpe"]["y"] == [None if math.isnan(v) else v for v in by_value.to_numpy()]
        assert "One swept axis (strategy.entry_threshold)" in html
        assert [r["attrs"]["data-ref"] for r in rows_of(html, "reference-rows")] == ["universe"]
        assert [r["key"] for r in data["references"]] == ["universe"]
        assert "no buy &amp; hold QQQ reference: catalog" in html
    else:
        assert over["overfitting"] is None
        assert "overfitting-absent" in html and html.count("--no-stats") >= 2
        assert set(figs) == {"heatmap-0"}  # entry_threshold x trend.sma; stop_loss has one value
        assert len(rows_of(html, "grid-table")) == 1 + 3
        assert [r["attrs"]["data-ref"] for r in rows_of(html, "reference-rows")] == ["benchmark", "universe"]
        assert "annotations" not in figs["heatmap-0"]["layout"] or all(
            not n["text"].startswith("W") for n in figs["heatmap-0"]["layout"]["annotations"]
        )


@pytest.mark.browser
@pytest.mark.parametrize("variant", list(VARIANTS), indirect=True)
def test_a_page_with_absent_sections_renders(variant: tuple[str, Path], chromium: str, tmp_path: Path) -> None:
    name, out = variant
    page = out / "report.html"
    dom, log = load_dom(chromium, page.resolve().as_uri(), tmp_path, shot=tmp_path / f"sweep-{name}.png", height=3000)
    _check_rendered(dom, log, list(blob(page.read_text(), "figures")))
    assert "Not run" in dom.text["walk-forward-absent"]
    if name == "no-stats":
        assert "--no-stats" in dom.text["overfitting-absent"]
