"""Section 3, signal quality in money: what each band of the model's probability earned.

Over every (symbol, bar) of the backtest window where the model's batch probability ``p``
and the forward return are both defined:

``forward return``
    ``close[t+H] / close[t] - 1`` at the card's label horizon ``H`` (the return the label
    describes; the symbol's own bars, never past the window's end).
``deciles``
    the pooled ``p`` cut at its 10 %, 20 %, ..., 90 % quantiles (numpy's linear
    interpolation); a bar is in decile ``d`` (1..10) when ``d - 1`` cut points are at or
    below its ``p``. Per decile: count, ``p`` range, hit rate (share with a positive forward
    return), label rate (share whose card label is 1), mean forward return gross and net of
    one round trip (``2 x (commission_bps + slippage_bps) / 1e4``), and the share of bars at
    or above the strategy's entry threshold.
``IC``
    Spearman's rank correlation of ``p`` with the forward return (average ranks for ties),
    over the whole window and per New York calendar month (bars pooled over symbols). The
    forward returns of neighbouring bars overlap (``H`` bars each), so the month-to-month
    spread understates the noise less than a t-statistic over bars would.
``classification``
    the card's metrics (:func:`engine.stats.classification.classification_metrics`) on the
    same bars with the card's own label rebuilt from the closes (:mod:`engine.stats.labels`),
    at the card's threshold and at the entry threshold, beside the trivial classifiers:
    always "up" (``p = 1``) and the base rate (``p`` = the window's positive share for every
    bar) - a threshold that calls almost everything positive scores like always "up".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.diagnosis.context import SIGNAL_KINDS, Context
from engine.diagnosis.tables import month_labels
from engine.stats.classification import classification_metrics
from engine.stats.labels import make_labels


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho (Pearson correlation of average ranks); None for fewer than 3 pairs or a constant side."""
    if len(x) < 3:
        return None
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return None
    return float(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy))


def panel(ctx: Context) -> pd.DataFrame:
    """One row per (symbol, window bar) with ``p``, the forward return and the card label defined."""
    sig = ctx.signal
    assert sig is not None
    assert sig.label_horizon
    h = sig.label_horizon
    parts = []
    for s, win in ctx.inputs.window.items():
        if s not in sig.probabilities:
            continue
        hist = ctx.inputs.history.get(s, win)
        close = hist["close"].to_numpy(dtype=np.float64)
        fwd = np.full(len(close), np.nan)
        if len(close) > h:
            fwd[:-h] = close[h:] / close[:-h] - 1.0
        label = make_labels(
            close, sig.label_kind or "threshold", h,
            threshold=float(sig.label_params.get("min_return", 0.0)),
            take_profit=float(sig.label_params.get("take_profit", 0.01)),
            stop_loss=float(sig.label_params.get("stop_loss", 0.01)),
        ).astype(np.float64)
        p = sig.probabilities[s].reindex(hist.index).to_numpy(dtype=np.float64)
        inside = hist.index.isin(win.index)
        ok = inside & np.isfinite(p) & np.isfinite(fwd) & np.isfinite(label)
        parts.append(pd.DataFrame({"symbol": s, "ts": hist.index[ok], "p": p[ok], "fwd": fwd[ok], "label": label[ok]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["symbol", "ts", "p", "fwd", "label"])


def deciles(p: np.ndarray) -> np.ndarray:
    """Decile 1..10 of each probability (see the module docstring)."""
    cuts = np.quantile(p, np.arange(1, 10) / 10.0)
    return np.searchsorted(cuts, p, side="right") + 1


def _classifiers(y: np.ndarray, p: np.ndarray, card: float, entry: float) -> dict[str, Any]:
    base = float(y.mean())
    out = {
        "model_at_card_threshold": classification_metrics(y, p, card),
        "always_up": classification_metrics(y, np.ones_like(p), card),
        "base_rate": classification_metrics(y, np.full_like(p, base), card),
    }
    if entry != card:
        out["model_at_entry_threshold"] = classification_metrics(y, p, entry)
    return {k: {m: (None if isinstance(v, float) and not np.isfinite(v) else v) for m, v in d.items()} for k, d in out.items()}


def entry_threshold(ctx: Context) -> float:
    """The entry threshold the run used (the config's, else the card's)."""
    st = ctx.cfg.strategy
    assert ctx.signal is not None
    return float(st.entry_threshold if st.entry_threshold is not None else ctx.signal.card_threshold)


def section(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The signal-quality section: (JSON figures, series for the plots)."""
    if ctx.kind not in SIGNAL_KINDS:
        return {"applies": False, "reason": f"strategy.kind = '{ctx.kind}' has no model probabilities"}, {}
    sig = ctx.signal
    if sig is None:
        return {"applies": False, "reason": "the model's probabilities are not available"}, {}
    if not sig.label_horizon:
        return {"applies": False, "reason": f"the card of {sig.model} states no label horizon"}, {}
    df = panel(ctx)
    if len(df) < 10:
        return {"applies": False, "reason": f"only {len(df)} bars with a probability and a forward return"}, {}
    rt = ctx.round_trip_rate
    entry = entry_threshold(ctx)
    p, fwd, y = df["p"].to_numpy(), df["fwd"].to_numpy(), df["label"].to_numpy()
    d = deciles(p)
    rows = []
    for k in range(1, 11):
        m = d == k
        if not m.any():
            rows.append({"decile": k, "count": 0})
            continue
        rows.append({
            "decile": k, "count": int(m.sum()), "p_min": float(p[m].min()), "p_max": float(p[m].max()),
            "p_mean": float(p[m].mean()), "hit_rate": float(np.mean(fwd[m] > 0)), "label_rate": float(y[m].mean()),
            "mean_fwd": float(fwd[m].mean()), "mean_fwd_net": float(fwd[m].mean() - rt),
            "share_at_entry": float(np.mean(p[m] >= entry)),
        })
    months = month_labels(df["ts"])
    monthly = []
    for month in sorted(set(months)):
        m = np.asarray(months == month)
        monthly.append({"month": month, "ic": spearman(p[m], fwd[m]), "n": int(m.sum())})
    ics = np.array([r["ic"] for r in monthly if r["ic"] is not None], dtype=np.float64)
    data: dict[str, Any] = {
        "applies": True,
        "model": sig.model,
        "horizon": sig.label_horizon,
        "label": {"kind": sig.label_kind, "params": sig.label_params, "members_agree": sig.members_agree},
        "bars": int(len(df)),
        "round_trip_cost_rate": rt,
        "entry_threshold": entry,
        "card_threshold": sig.card_threshold,
        "predicted_positive_at_entry": float(np.mean(p >= entry)),
        "deciles": rows,
        "ic": spearman(p, fwd),
        "monthly_ic": monthly,
        "mean_monthly_ic": float(ics.mean()) if ics.size else None,
        "monthly_ic_t": float(ics.mean() / ics.std(ddof=1) * np.sqrt(ics.size)) if ics.size >= 2 and ics.std(ddof=1) > 0 else None,
        "months_positive_ic": float(np.mean(ics > 0)) if ics.size else None,
        "classification": _classifiers(y, p, sig.card_threshold, entry),
        "card_recorded": sig.card_metrics,
    }
    return data, {}
