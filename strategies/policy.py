"""The RL policy strategy: ``[strategy] kind = "policy"``, an exported policy folder trading each symbol.

Per symbol and bar the strategy builds the observation the policy was trained on - the
feature window of the shared pipeline scaled with the card's scaler, and the raw state
from its own books (position sign, unrealised return against the entry fill, bars held;
the gate model's probability in gate mode) - asks the ONNX policy for its logits and
takes the arg-max over the actions the rules allow (:meth:`TargetStrategy.allowed`, the
training environment's action mask). While the window is warming up it waits.

* target actions (``flat`` / ``long`` / ``short``): :meth:`TargetStrategy.go_to`;
* gate mode (``skip`` / ``trade``): the policy's signal model (``gate/`` in the policy
  folder) proposes a long entry at ``p >= entry_threshold`` and the policy lets it
  through or skips it; a long is closed when ``p < exit_threshold`` (the signal's exit,
  not gated). ``strategy.entry_threshold`` / ``exit_threshold`` override the card's.

Every overlay of :mod:`strategies.base` applies as for any strategy. ``mode = "batch"``
scores the features of each symbol's whole history before the loop; ``"streaming"``
updates them bar by bar with the shared streaming features (:class:`models.policy.PolicyStream`),
as paper trading does; both give the same orders (tested). The policy itself always runs
bar by bar, because its state depends on its own fills.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar

from engine.config import BacktestConfig
from models.errors import ModelContractError
from models.policy import PolicyModel, load_policy
from strategies.base import SigtradeStrategyConfig
from strategies.target import TargetStrategy

__all__ = ["PolicyStrategy", "PolicyStrategyConfig", "warmup_bars"]

_TARGET = {"flat": 0, "long": 1, "short": -1}


class PolicyStrategyConfig(SigtradeStrategyConfig, frozen=True, kw_only=True):
    """Policy folder, scoring mode and (gate mode) threshold overrides of :class:`PolicyStrategy`."""

    model: str
    mode: str = "batch"
    catalog: str = ""
    entry_threshold: float | None = None
    exit_threshold: float | None = None
    account: str = "cash"


def _load(path: str, bar: str) -> PolicyModel:
    return load_policy(Path(path), bar=bar)


def check_config(cfg: BacktestConfig, policy: PolicyModel) -> None:
    """Refuse what the policy cannot do with this config (shorts on a cash account)."""
    if policy.card.allows_short and cfg.portfolio.account != "margin":
        raise ModelContractError(
            f"policy '{policy.name}' may target short positions (actions {list(policy.actions)}): it needs "
            'portfolio.account = "margin"; a cash account cannot sell short'
        )


def warmup_bars(cfg: BacktestConfig) -> int:
    """Bars the event loop replays before the window (runner hook); checks the policy against *cfg*.

    Batch mode scores the whole history before the loop, so the loop needs only the
    window's warm-up; streaming mode replays the whole history (as the signal strategy).
    """
    from strategies.signal import ALL_HISTORY

    policy = _load(cfg.strategy.model, cfg.data.bar)
    check_config(cfg, policy)
    if cfg.strategy.mode == "streaming":
        return ALL_HISTORY
    gate = 0
    if policy.gate_path is not None:
        from models.signal import load_signal_model

        gate = load_signal_model(policy.gate_path, bar=cfg.data.bar).warmup_bars
    return max(policy.warmup, gate)


class PolicyStrategy(TargetStrategy):
    """Trades each symbol with an RL policy (see the module docstring)."""

    def __init__(self, config: PolicyStrategyConfig) -> None:
        super().__init__(config)
        self.policy = _load(config.model, config.bar)
        if self.policy.card.allows_short and config.account != "margin":
            raise ModelContractError(
                f"policy '{self.policy.name}' may target short positions: it needs a margin account"
            )
        self.streaming = config.mode == "streaming"
        self.gate = None
        self.entry = self.exit_level = math.nan
        if self.policy.gate_path is not None:
            from models.signal import load_signal_model
            from strategies.signal import news_articles

            gate = self.policy.card.gate
            assert gate is not None
            self.gate = load_signal_model(self.policy.gate_path, bar=config.bar)
            if news_articles(self.gate, config.catalog) is not None:
                raise ModelContractError("a gate model trained with news sentiment is not supported by policies yet")
            self.entry = config.entry_threshold if config.entry_threshold is not None else gate.entry_threshold
            self.exit_level = config.exit_threshold if config.exit_threshold is not None else gate.exit_threshold
            if self.exit_level > self.entry:
                raise ValueError(f"exit threshold {self.exit_level} is above entry threshold {self.entry}")
        self.last_prob: dict[str, float] = dict.fromkeys(config.symbols, math.nan)
        self.last_action: dict[str, str] = dict.fromkeys(config.symbols, "")
        self._rows: dict[str, np.ndarray] = {}
        self._probs: dict[str, np.ndarray] = {}
        self._ts: dict[str, np.ndarray] = {}
        self._ptr: dict[str, int] = dict.fromkeys(config.symbols, 0)
        self._window: dict[str, np.ndarray] = {}
        self._stream = self.policy.stream(config.symbols) if self.streaming else None
        self._gate_stream = self.gate.stream(config.symbols) if (self.streaming and self.gate is not None) else None

    def prepare(self, frames: dict[str, pd.DataFrame]) -> None:
        """Batch mode: every symbol's scaled features (and gate probabilities), in one pass before the loop."""
        if self.streaming:
            return
        for s in self.cfg.symbols:
            frame = frames[s]
            self._ts[s] = frame.index.asi8
            self._rows[s] = self.policy.scaled_features(frame)
        if self.gate is not None:
            from strategies.signal import batch_probabilities

            probs = batch_probabilities(self.gate, {s: frames[s] for s in self.cfg.symbols})
            self._probs = {s: p.to_numpy(dtype=np.float64) for s, p in probs.items()}

    def card_horizon(self) -> int | None:
        """The gate model's label horizon (the cost filter's default), None without a gate."""
        if self.gate is None:
            return None
        from strategies.signal import label_horizon

        return label_horizon(self.gate)

    # -- observations ----------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """Streaming mode: feed every bar to the features first (forced exits skip ``decide``)."""
        if self._stream is not None:
            s = self._symbol_of[bar.bar_type]
            args = (bar.ts_event, bar.open.as_double(), bar.high.as_double(), bar.low.as_double(),
                    bar.close.as_double(), bar.volume.as_double())
            self._window[s] = self._stream.update(s, *args)
            if self._gate_stream is not None:
                self._gate_stream.update(s, *args)
                self.last_prob[s] = self._gate_stream.score([s])[s]
        super().on_bar(bar)

    def _batch_row(self, symbol: str, ts: int) -> int:
        times, i = self._ts[symbol], self._ptr[symbol]
        while i < len(times) and times[i] < ts:
            i += 1
        self._ptr[symbol] = i
        if i >= len(times) or times[i] != ts:
            raise RuntimeError(f"{symbol}: no features for the bar at {ts}: prepare() was not given it")
        return i

    def _observe(self, symbol: str, bar: Bar) -> tuple[np.ndarray, float]:
        if self._stream is not None:
            return self._window[symbol], self.last_prob[symbol]
        i = self._batch_row(symbol, bar.ts_event)
        lookback = self.policy.lookback
        rows = self._rows[symbol]
        window = rows[i - lookback + 1 : i + 1] if i >= lookback - 1 else np.full((lookback, rows.shape[1]), np.nan)
        p = float(self._probs[symbol][i]) if self.gate is not None else math.nan
        self.last_prob[symbol] = p
        return window, p

    def decide(self, symbol: str, bar: Bar) -> None:
        """Observe, ask the policy, act (see the module docstring)."""
        window, p = self._observe(symbol, bar)
        if self.pending[symbol] or not np.isfinite(window).all():
            return  # warming up: no decision on an incomplete window
        side, unreal, held = self.state(symbol)
        flat_ok, long_ok, short_ok = self.allowed(symbol)
        if self.gate is None:
            names = self.policy.actions
            allowed = [flat_ok, long_ok, short_ok][: len(names)]
            a = self.policy.act(window, (side, unreal, held), allowed)
            self.last_action[symbol] = names[a]
            self.go_to(symbol, _TARGET[names[a]])
            return
        if math.isnan(p):
            return
        pos = self.position[symbol]
        if pos > 0.0:
            if p < self.exit_level:
                self.exit(symbol)
            return
        proposed = pos == 0.0 and long_ok and p >= self.entry
        a = self.policy.act(window, (side, unreal, held, p), [True, proposed])
        self.last_action[symbol] = self.policy.actions[a]
        if a == 1 and proposed:
            self.enter(symbol, self.cfg.position_size * self.equity())

    def entry_probability(self, symbol: str) -> float:
        """The gate model's probability (the cost filter's ``p``); 1.0 without a gate."""
        return self.last_prob[symbol] if self.gate is not None else 1.0

    def decision_inputs(self, symbol: str) -> dict[str, float | str]:
        """What a decision was made on: close, gate probability, the policy's action."""
        return {"close": self.last_close[symbol], "p": self.last_prob[symbol], "action": self.last_action[symbol]}
