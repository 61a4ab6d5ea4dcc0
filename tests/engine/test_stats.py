"""Overfitting statistics: DSR, PBO by CSCV and walk-forward, against independent computations.

Each formula is checked against a second, deliberately plain implementation written here
(python loops, ``statistics``, ``math.erfc`` and a bisection for the normal quantile, no
numpy vectorisation and no scipy), and against behaviour a user would notice: noise
strategies overfit, a real edge does not, more trials deflate more, walk-forward never
peeks at the future.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError, DataError
from engine.stats import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    higher_moments,
    overfitting_report,
    parse_walk_forward,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
    walk_forward,
    walk_forward_windows,
)
from engine.stats.pbo import block_combinations
from engine.stats.walk_forward import Span

EULER = 0.57721566490153286

# ---------------------------------------------------------------- independent references


def ref_cdf(z: float) -> float:
    """Standard normal CDF through the complementary error function."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def ref_ppf(p: float) -> float:
    """Standard normal quantile by bisection on :func:`ref_cdf`."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if ref_cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def ref_sharpe(xs: list[float]) -> float:
    """mean / sample stdev; 0.0 for a constant sample (the documented convention)."""
    if max(xs) == min(xs):
        return 0.0
    return statistics.mean(xs) / statistics.stdev(xs)


def ref_moments(xs: list[float]) -> tuple[float, float]:
    """Population skewness and non-excess kurtosis with explicit sums."""
    n = len(xs)
    mu = sum(xs) / n
    m2 = sum((v - mu) ** 2 for v in xs) / n
    m3 = sum((v - mu) ** 3 for v in xs) / n
    m4 = sum((v - mu) ** 4 for v in xs) / n
    return m3 / m2**1.5, m4 / m2**2


def ref_pbo(x: np.ndarray, s: int, score=ref_sharpe) -> tuple[float, list[float], list[int]]:
    """Brute-force CSCV: every split built row by row, scored and ranked with plain loops."""
    t, n = x.shape
    size = t // s
    blocks = [[x[b * size + i].tolist() for i in range(size)] for b in range(s)]
    logits, chosen = [], []
    for is_blocks in itertools.combinations(range(s), s // 2):
        oos_blocks = [b for b in range(s) if b not in is_blocks]
        is_rows = [row for b in is_blocks for row in blocks[b]]
        oos_rows = [row for b in oos_blocks for row in blocks[b]]
        is_m = [score([r[j] for r in is_rows]) for j in range(n)]
        oos_m = [score([r[j] for r in oos_rows]) for j in range(n)]
        best = max(range(n), key=lambda j: (is_m[j], -j))  # first index on ties
        v = oos_m[best]
        below = sum(1 for o in oos_m if o < v)
        tied = sum(1 for o in oos_m if o == v)
        rank = below + (tied + 1) / 2  # average rank of the tie group
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
        chosen.append(best)
    return sum(1 for lam in logits if lam <= 0) / len(logits), logits, chosen


def business_days(start: str, end: str) -> pd.DatetimeIndex:
    return pd.bdate_range(start, end, tz="UTC")


# ---------------------------------------------------------------- Sharpe, PSR, DSR


def test_dsr_reproduces_the_papers_numerical_example() -> None:
    """Bailey & Lopez de Prado (2014), numerical example: 5 years of daily returns
    (T = 1250), annualised SR 2.5, 100 trials whose annualised Sharpe ratios have variance
    0.5, skewness -3, kurtosis 10 -> SR0 ~ 0.1132 (per day) and DSR ~ 0.9004.
    The same figures also follow from the step-by-step formulas below."""
    sr = 2.5 / math.sqrt(250)
    var_sr = 0.5 / 250
    sr0 = expected_max_sharpe(100, var_sr)
    dsr = probabilistic_sharpe_ratio(sr, sr0, 1250, skew=-3.0, kurtosis=10.0)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # independent: bisection quantiles and erfc
    ref_sr0 = math.sqrt(var_sr) * ((1 - EULER) * ref_ppf(1 - 1 / 100)
                                   + EULER * ref_ppf(1 - 1 / (100 * math.e)))
    ref_z = (sr - ref_sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2)
    assert sr0 == pytest.approx(ref_sr0, rel=1e-9)
    assert dsr == pytest.approx(ref_cdf(ref_z), rel=1e-9)


def test_dsr_matches_a_step_by_step_computation_on_skewed_returns() -> None:
    rng = np.random.default_rng(7)
    best = (0.01 * (np.exp(rng.normal(0.0, 0.8, 750)) - 1.3) + 0.004).tolist()  # right-skewed
    trials = rng.normal(0.02, 0.03, 40).tolist()
    res = deflated_sharpe_ratio(best, trials)

    sr = statistics.mean(best) / statistics.stdev(best)
    g3, g4 = ref_moments(best)
    v = statistics.variance(trials)
    n_tr = len(trials)
    sr0 = math.sqrt(v) * ((1 - EULER) * ref_ppf(1 - 1 / n_tr) + EULER * ref_ppf(1 - 1 / (n_tr * math.e)))
    denom = math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    dsr = ref_cdf((sr - sr0) * math.sqrt(len(best) - 1) / denom)
    psr = ref_cdf(sr * math.sqrt(len(best) - 1) / denom)

    assert res.sr == pytest.approx(sr, rel=1e-10)
    assert (res.skew, res.kurtosis) == pytest.approx((g3, g4), rel=1e-9)
    assert res.skew > 1.0
    assert res.kurtosis > 5.0
    assert res.sr > res.sr0 > 0
    assert res.var_sr == pytest.approx(v, rel=1e-10)
    assert res.sr0 == pytest.approx(sr0, rel=1e-9)
    assert res.dsr == pytest.approx(dsr, rel=1e-9)
    assert res.psr == pytest.approx(psr, rel=1e-9)
    assert (res.n, res.n_trials) == (750, 40)


def test_kurtosis_is_non_excess_and_normal_returns_have_about_3() -> None:
    x = np.random.default_rng(1).normal(0, 0.01, 200_000)
    skew, kurt = higher_moments(x)
    assert abs(skew) < 0.03
    assert kurt == pytest.approx(3.0, abs=0.05)
    # pandas gives bias-corrected EXCESS kurtosis: about 3 less
    assert kurt - float(pd.Series(x).kurt()) == pytest.approx(3.0, abs=1e-3)


def test_dsr_is_below_psr_and_falls_as_more_configurations_are_tried() -> None:
    rng = np.random.default_rng(3)
    best = rng.normal(0.001, 0.01, 1000)
    dsrs = [deflated_sharpe_ratio(best, [0.0], n_trials=n, var_sr=1e-3) for n in (2, 10, 100, 1000, 10_000)]
    values = [d.dsr for d in dsrs]
    assert all(d.dsr < d.psr for d in dsrs)
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)
    sr0s = [d.sr0 for d in dsrs]
    assert sr0s == sorted(sr0s)
    assert dsrs[0].psr == pytest.approx(dsrs[-1].psr)  # PSR ignores the number of trials


def test_degenerate_inputs_have_documented_results() -> None:
    best = np.random.default_rng(4).normal(0.001, 0.01, 300)
    one = deflated_sharpe_ratio(best, [0.05])  # a single trial: nothing to deflate
    assert one.n_trials == 1
    assert one.sr0 == 0.0
    assert one.dsr == one.psr
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    flat = deflated_sharpe_ratio(np.zeros(10), [0.0, 0.1, 0.2])
    assert flat.sr == 0.0
    assert (flat.skew, flat.kurtosis) == (0.0, 3.0)
    assert not math.isnan(flat.dsr)
    assert sharpe_ratio([0.01, 0.01, 0.01]) == 0.0
    with pytest.raises(DataError, match="at least 2"):
        deflated_sharpe_ratio([0.01], [0.1, 0.2])
    with pytest.raises(DataError, match="n >= 2"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1)
    with pytest.raises(DataError, match="NaN"):
        deflated_sharpe_ratio([0.01, np.nan, 0.02], [0.1, 0.2])
    with pytest.raises(DataError, match="var_sr"):
        deflated_sharpe_ratio(best, [0.1], n_trials=20)
    with pytest.raises(DataError, match="NON-excess"):  # pandas-style excess kurtosis of ~0
        probabilistic_sharpe_ratio(0.1, 0.0, 100, skew=0.5, kurtosis=0.2)
    with pytest.raises(DataError, match=">= 1"):
        expected_max_sharpe(0, 0.1)


# ---------------------------------------------------------------- PBO


def test_pbo_matches_brute_force_cscv_including_ties_and_flat_configurations() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, 0.01, (67, 7))
    x[:, 3] = 0.0  # never trades: Sharpe 0 everywhere (ties with column 6 below)
    x[:, 6] = 0.0
    x[:24, 5] = 0.0  # flat in the first three blocks only
    x[:, 2] = x[:, 1]  # a duplicate configuration: IS and OOS ties
    res = pbo_cscv(x, n_blocks=8)
    pbo, logits, chosen = ref_pbo(x, 8)
    assert res.n_combinations == math.comb(8, 4) == 70
    assert res.n_dropped == 67 - 64
    assert "last 3 row(s) were dropped" in res.note
    np.testing.assert_allclose(res.logits, logits, rtol=1e-12)
    assert res.chosen.tolist() == chosen
    assert res.pbo == pytest.approx(pbo)


@pytest.mark.parametrize(
    ("metric", "score"),
    [
        ("mean", statistics.mean),
        ("total_return", lambda xs: math.prod(1 + v for v in xs) - 1),
    ],
)
def test_pbo_other_metrics_match_brute_force(metric, score) -> None:
    x = np.random.default_rng(12).normal(0.0005, 0.01, (60, 9))
    res = pbo_cscv(x, n_blocks=6, metric=metric)
    pbo, logits, chosen = ref_pbo(x, 6, score)
    assert res.chosen.tolist() == chosen
    np.testing.assert_allclose(res.logits, logits, rtol=1e-12)
    assert res.pbo == pytest.approx(pbo)


def test_pbo_callable_metric_uses_the_direct_path() -> None:
    x = np.random.default_rng(13).normal(0.0, 0.01, (48, 5))

    def worst_day(r: np.ndarray) -> np.ndarray:
        return r.min(axis=0)

    res = pbo_cscv(x, n_blocks=6, metric=worst_day)
    pbo, logits, _ = ref_pbo(x, 6, min)
    assert res.metric == "worst_day"
    np.testing.assert_allclose(res.logits, logits)


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    # two blocks of two rows; A wins block 1 and loses block 2, C the reverse
    x = np.array([[0.03, 0.01, -0.01],
                  [0.03, 0.01, -0.01],
                  [-0.02, 0.01, 0.03],
                  [-0.02, 0.01, 0.03]])
    res = pbo_cscv(x, n_blocks=2, metric="mean")
    assert res.n_combinations == 2
    assert res.chosen.tolist() == [0, 2]
    np.testing.assert_allclose(res.logits, [math.log(1 / 3)] * 2)  # rank 1 of 3
    assert res.pbo == 1.0
    assert res.prob_oos_loss == 1.0


def test_lexicographic_splits_are_mirrored_by_their_complements() -> None:
    for s in (2, 4, 8, 16):
        combos = block_combinations(s)
        assert combos.shape[0] == math.comb(s, s // 2)
        for i in (0, 1, combos.shape[0] // 3, combos.shape[0] - 1):
            comp = sorted(set(range(s)) - set(combos[i].tolist()))
            assert combos[combos.shape[0] - 1 - i].tolist() == comp


def test_pbo_of_noise_strategies_is_about_one_half() -> None:
    """50 random-walk strategies with no edge: the IS winner is a coin flip OOS."""
    pbos = []
    for seed in range(8):
        x = np.random.default_rng(100 + seed).normal(0.0, 0.01, (800, 50))
        pbos.append(pbo_cscv(x, n_blocks=16).pbo)
    assert 0.35 < statistics.mean(pbos) < 0.75
    assert max(pbos) > 0.5


def test_pbo_is_near_zero_when_one_configuration_has_a_real_edge() -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(0.0, 0.01, (2000, 50))
    x[:, 17] += 0.0015  # Sharpe 0.15 per period, about 2.4 annualised on daily data
    res = pbo_cscv(x, n_blocks=16)
    assert res.pbo < 0.02
    assert (res.chosen == 17).mean() > 0.95
    assert res.prob_oos_loss < 0.02


def test_pbo_is_deterministic_and_chunk_size_does_not_matter() -> None:
    x = np.random.default_rng(5).normal(0.0, 0.01, (330, 40))
    a = pbo_cscv(x, n_blocks=10)
    b = pbo_cscv(pd.DataFrame(x, columns=[f"c{i}" for i in range(40)]), n_blocks=10, chunk_size=7)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert a.summary()["pbo"] == b.summary()["pbo"]
    assert b.labels is not None
    assert b.labels[0] == "c0"


def test_pbo_rejects_bad_inputs_with_guidance() -> None:
    x = np.random.default_rng(6).normal(0.0, 0.01, (100, 4))
    with pytest.raises(ConfigError, match="even"):
        pbo_cscv(x, n_blocks=15)
    with pytest.raises(DataError, match="at least 2 columns"):
        pbo_cscv(x[:, :1])
    with pytest.raises(DataError, match="fewer blocks"):
        pbo_cscv(x[:10], n_blocks=16)
    y = x.copy()
    y[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        pbo_cscv(y)
    with pytest.raises(ConfigError, match="did you mean 'sharpe'"):
        pbo_cscv(x, metric="sharp")


# ---------------------------------------------------------------- walk-forward


def test_parse_walk_forward_defaults_step_to_test() -> None:
    spec = parse_walk_forward("train=12M,test=3M")
    assert (spec.train, spec.test, spec.step) == (Span(12, "M"), Span(3, "M"), Span(3, "M"))
    spec = parse_walk_forward(" train = 2y , test=4w, step=30d ")
    assert (spec.train, spec.test, spec.step) == (Span(2, "Y"), Span(4, "W"), Span(30, "D"))
    assert str(parse_walk_forward("train=12M,test=3M")) == "train=12M,test=3M,step=3M"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("train=12M", "lacks test"),
        ("trian=12M,test=3M", "did you mean 'train'"),
        ("train=12X,test=3M", "unknown unit 'X'"),
        ("train=12,test=3M", "whole number followed by a unit"),
        ("train=0M,test=3M", "must be positive"),
        ("train=12M,test=3M,step=1M", "would overlap"),
        ("train=12M,test=3M,step=90D", "mix calendar"),
        ("train=12M,train=6M,test=3M", "twice"),
        ("train:12M,test=3M", "not key=value"),
    ],
)
def test_bad_walk_forward_specs_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_walk_forward(spec)
    assert "e.g." in str(err.value) or message in ("must be positive", "twice", "would overlap",
                                                  "mix calendar")


def test_windows_are_anchored_on_calendar_months_and_tests_tile_the_data() -> None:
    idx = business_days("2015-01-02", "2016-11-15")
    win = walk_forward_windows(idx, "train=12M,test=3M")
    ts = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    assert win == [
        (ts("2015-01-01"), ts("2016-01-01"), ts("2016-01-01"), ts("2016-04-01")),
        (ts("2015-04-01"), ts("2016-04-01"), ts("2016-04-01"), ts("2016-07-01")),
        (ts("2015-07-01"), ts("2016-07-01"), ts("2016-07-01"), ts("2016-10-01")),
        (ts("2015-10-01"), ts("2016-10-01"), ts("2016-10-01"), ts("2017-01-01")),  # cut short by the data
    ]
    # step > test leaves gaps between tests; tests never overlap
    win = walk_forward_windows(idx, "train=6M,test=1M,step=2M")
    assert [w[2].month for w in win[:3]] == [7, 9, 11]
    assert all(a[3] <= b[2] for a, b in itertools.pairwise(win))
    with pytest.raises(DataError, match="shorter than one training window"):
        walk_forward_windows(idx, "train=3Y,test=3M")


def make_sweep(seed: int = 0, start: str = "2014-01-01", end: str = "2018-12-31", n: int = 20) -> pd.DataFrame:
    idx = business_days(start, end)
    x = np.random.default_rng(seed).normal(0.0002, 0.01, (len(idx), n))
    return pd.DataFrame(x, index=idx, columns=[f"cfg{i:02d}" for i in range(n)])


def test_walk_forward_choices_and_stitched_returns_match_a_plain_recomputation() -> None:
    perf = make_sweep()
    res = walk_forward(perf, "train=12M,test=3M", periods_per_year=252)
    frame = res.frame()
    assert len(frame) == len(res.windows) == 16  # 2015-01 .. 2018-12 in quarters
    pieces = []
    for w in res.windows:
        train = perf[(perf.index >= w.train_start) & (perf.index < w.train_end)]
        test = perf[(perf.index >= w.test_start) & (perf.index < w.test_end)]
        scores = {c: ref_sharpe(train[c].tolist()) for c in perf.columns}
        best = max(perf.columns, key=lambda c: scores[c])
        assert w.chosen == best
        assert w.is_metric == pytest.approx(scores[best], rel=1e-12)
        assert w.oos_metric == pytest.approx(ref_sharpe(test[best].tolist()), rel=1e-12)
        pieces.append(test[best])
    stitched = pd.concat(pieces)
    pd.testing.assert_series_equal(res.oos_returns, stitched, check_names=False, check_freq=False)
    assert res.summary["oos_sharpe"] == pytest.approx(ref_sharpe(stitched.tolist()))
    assert res.summary["oos_total_return"] == pytest.approx(math.prod(1 + v for v in stitched) - 1)
    assert res.summary["oos_sharpe_annualised"] == pytest.approx(res.summary["oos_sharpe"] * math.sqrt(252))
    assert res.oos_returns.index[0] == pd.Timestamp("2015-01-01", tz="UTC")
    assert res.oos_returns.index.is_monotonic_increasing
    assert res.oos_returns.index.is_unique
    assert list(frame.columns[:5]) == ["train_start", "train_end", "test_start", "test_end", "chosen"]


def test_walk_forward_never_uses_test_data_to_choose() -> None:
    perf = make_sweep(seed=1)
    base = walk_forward(perf, "train=12M,test=3M")
    for k in (0, 5, 11):
        poisoned = perf.copy()
        future = poisoned.index >= base.windows[k].test_start  # this test window and after
        rng = np.random.default_rng(k)
        poisoned.loc[future] = rng.normal(0.0, 0.01, (int(future.sum()), perf.shape[1]))
        poisoned.loc[future, "cfg07"] += 0.05  # a fantastic future for one configuration
        res = walk_forward(poisoned, "train=12M,test=3M")
        assert [w.chosen for w in res.windows[: k + 1]] == [w.chosen for w in base.windows[: k + 1]]
        assert res.windows[k].oos_return != base.windows[k].oos_return  # the poison is there
        assert res.windows[k + 1].chosen == "cfg07"  # and a later window does see it
        assert res.in_sample_best == "cfg07"  # hindsight does too


def test_walk_forward_shows_the_in_sample_best_is_optimistic_on_noise() -> None:
    perf = make_sweep(seed=2, n=50)
    res = walk_forward(perf, "train=12M,test=3M")
    s = res.summary
    assert s["is_best_sharpe"] > s["oos_sharpe"]
    assert s["is_best_config"] == res.in_sample_best
    assert s["is_best_sharpe"] == pytest.approx(max(ref_sharpe(perf[c].tolist()) for c in perf.columns))
    assert s["n_windows"] == 16
    assert s["n_configs"] == 50


def test_walk_forward_rejects_unsorted_or_nan_data() -> None:
    perf = make_sweep(n=3)
    with pytest.raises(DataError, match="sorted"):
        walk_forward(perf.iloc[::-1], "train=12M,test=3M")
    bad = perf.copy()
    bad.iloc[5, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        walk_forward(bad, "train=12M,test=3M")
    with pytest.raises(ConfigError, match="step"):
        walk_forward(perf, "train=12M,test=3M,step=2M")


# ---------------------------------------------------------------- one-call sweep report


def test_overfitting_report_on_a_sweep() -> None:
    perf = make_sweep(seed=3, n=30)
    rep = overfitting_report(perf, walk_forward_spec="train=12M,test=3M", periods_per_year=252)
    s = rep.summary()
    assert s["n_trials"] == 30
    sharpes = {c: ref_sharpe(perf[c].tolist()) for c in perf.columns}
    assert s["best_config"] == max(sharpes, key=sharpes.get)
    assert s["dsr"]["dsr"] < s["dsr"]["psr"]
    assert s["dsr"]["var_sr"] == pytest.approx(statistics.variance(sharpes.values()))
    assert 0.0 <= s["pbo"]["pbo"] <= 1.0
    assert s["pbo"]["n_combinations"] == 12_870
    assert s["walk_forward"]["n_windows"] == 16
    assert any("dropped" in note for note in s["notes"]) == (len(perf) % 16 != 0)
    short = overfitting_report(perf.iloc[:12])
    assert short.pbo is None
    assert any("PBO not computed" in note for note in short.notes)
