"""Reinforcement learning on the engine's own fills and costs (the ``[research]`` extra).

:mod:`research.rl.market` prepares a universe, :mod:`research.rl.env_nb` /
:mod:`research.rl.env` step single-position episodes in numba on the event engine's rules
(a parity contract, tests/research/rl), :mod:`research.rl.train` trains PPO / MaskablePPO
on them, :mod:`research.rl.export` writes the policy as ONNX + card (``kind = "policy"``)
for ``[strategy] kind = "policy"``, and :mod:`research.rl.evaluate` retrains on
walk-forward folds with several seeds and reports the statistics of the result.
"""
