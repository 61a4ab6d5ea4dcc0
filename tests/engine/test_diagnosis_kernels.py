"""The diagnosis kernels against the Python they replay: the SMA cross's running averages."""

from __future__ import annotations

import math

import numpy as np

from engine.diagnosis.kernels_nb import sma_signal_nb
from strategies.sma_cross import _Sma


def test_sma_signal_is_the_strategys_running_averages_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, 3000))
    close[500:520] = close[499]  # ties: fast == slow must read as "not above"
    for fast_n, slow_n in ((2, 3), (5, 30), (20, 50)):
        fast, slow = _Sma(fast_n), _Sma(slow_n)
        expected = []
        for x in close:
            fast.update(float(x))
            slow.update(float(x))
            expected.append(math.nan if not slow.ready else (1.0 if fast.value > slow.value else 0.0))
        got = sma_signal_nb(close, fast_n, slow_n)
        np.testing.assert_array_equal(got, np.array(expected))
        assert np.isnan(got[: slow_n - 1]).all() and not np.isnan(got[slow_n - 1 :]).any()
