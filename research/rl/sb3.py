"""Stable-Baselines3's ``VecEnv`` interface over :class:`research.rl.env.TradingVecEnv`.

SB3 wants a list of info dicts per step (``terminal_observation`` for a finished episode,
``episode`` with its return and length) and, for sb3-contrib's MaskablePPO, an
``action_masks`` method reachable through ``env_method``; everything else stays in the
numba environment (one call steps every episode).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from research.rl.env import TradingVecEnv

__all__ = ["SB3VecEnv"]


class SB3VecEnv(VecEnv):  # type: ignore[misc]
    """SB3 view of a training :class:`TradingVecEnv` (episodes reset automatically)."""

    def __init__(self, env: TradingVecEnv) -> None:
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._ret = np.zeros(env.num_envs)
        self._len = np.zeros(env.num_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        """Start every episode."""
        seed = self._seeds[0] if getattr(self, "_seeds", None) and self._seeds[0] is not None else None
        obs, _ = self.env.reset(seed=seed)
        self._ret[:] = 0.0
        self._len[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions (the numba step runs in :meth:`step_wait`)."""
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every episode; finished ones are reset, their last observation in the info."""
        done, idx, final = self.env.advance(self._actions)
        reward = self.env.reward
        self._ret += reward
        self._len += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if idx is not None:
            assert final is not None
            for j, i in enumerate(idx.tolist()):
                infos[i]["terminal_observation"] = final[j]
                infos[i]["episode"] = {"r": float(self._ret[i]), "l": int(self._len[i])}
                self._ret[i] = 0.0
                self._len[i] = 0
        return self.env.obs, reward.astype(np.float32), done, infos  # obs: a new array every step

    def close(self) -> None:
        """Nothing to release."""

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The environment's attribute, once per index."""
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the (one) underlying environment."""
        setattr(self.env, attr_name, value)

    def has_attr(self, attr_name: str) -> bool:
        """Whether the environment has *attr_name* (sb3-contrib asks for ``action_masks``)."""
        return hasattr(self.env, attr_name)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """``action_masks`` per episode; other methods are called once and repeated."""
        if method_name == "action_masks":
            masks = self.env.action_masks()
            return list(masks) if indices is None else [masks[i] for i in self._indices(indices)]
        idx = self._indices(indices)
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(idx)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No gymnasium wrappers here."""
        return [False] * len(self._indices(indices))

    def action_masks(self) -> np.ndarray:
        """``(n, actions)`` bool masks of the current decision bars."""
        return self.env.action_masks()

    def get_images(self) -> Sequence[np.ndarray | None]:  # pragma: no cover - no rendering
        """No rendering."""
        return [None] * self.num_envs

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Reseed the episode sampler."""
        self.env.rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    def _get_indices(self, indices: Any) -> Iterable[int]:
        return self._indices(indices)
