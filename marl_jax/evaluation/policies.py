"""Trained populations as policies of every agent slot of an environment.

A run directory is loaded with ``marl_jax.run_dir.load_run``; acting goes
through ``algorithms.acting``, the same path as the env loop's.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np

from marl_jax.algorithms import acting
from marl_jax.envs.base import Environment


class PopulationPolicy:
  """Acts for every agent slot of one environment with chosen members."""

  def __init__(self, algorithm, params, num_agents: int, greedy: bool = False,
               seed: int = 0):
    self._algorithm = algorithm
    self._params = params
    self._n = num_agents
    self._greedy = greedy
    self._key = jax.random.PRNGKey(seed)

    self._act = acting.make_host_act(
        algorithm, acting.population_size_of(params), greedy=greedy)
    self.reset(np.zeros((num_agents,), np.int32))

  def set_params(self, params, seed: Optional[int] = None) -> None:
    """Acts with ``params`` from now on (same structure and population size,
    so nothing is recompiled); with ``seed``, also restarts the key."""
    shapes = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
    if shapes(params) != shapes(self._params):
      raise ValueError('set_params needs params of the same structure and '
                       'shapes as the policy was built with.')
    self._params = params
    if seed is not None:
      self._key = jax.random.PRNGKey(seed)

  def reseed(self, seed: int) -> None:
    """Restarts the acting key at ``seed`` (e.g. for extra, separately
    seeded episodes such as videos)."""
    self._key = jax.random.PRNGKey(seed)

  def reset(self, members: np.ndarray) -> None:
    self._members = np.asarray(members, np.int32)
    self._core = self._algorithm.initial_core_state(self._n)
    self._prev_action = np.zeros((self._n,), np.int32)
    self._prev_reward = np.zeros((self._n,), np.float32)

  def step(self, timestep) -> np.ndarray:
    if timestep.first():
      self._prev_action[:] = 0
      self._prev_reward[:] = 0.
    self._key, sub = jax.random.split(self._key)
    action, self._core = self._act(
        self._params, self._members, timestep.observation, self._prev_action,
        self._prev_reward, np.full((self._n,), int(timestep.step_type),
                                   np.int32), self._core, sub)
    self._prev_action = action.copy()
    return action

  def observe_reward(self, reward: np.ndarray) -> None:
    self._prev_reward = np.asarray(reward, np.float32).copy()


def play_episode(env: Environment, policy: PopulationPolicy,
                 members: np.ndarray, render: bool = False,
                 max_steps: Optional[int] = None) -> Tuple[Dict[str, Any], list]:
  """Plays one episode; returns per-agent returns (and info sums) and frames."""
  policy.reset(members)
  ts = env.reset()
  frames = [env.render()] if render else []
  n = env.spec().num_agents
  returns = np.zeros((n,))
  info = {k: np.zeros((n,)) for k in env.spec().info_keys}
  steps = 0
  while not ts.last() and (max_steps is None or steps < max_steps):
    ts = env.step(policy.step(ts))
    policy.observe_reward(ts.reward)
    returns += ts.reward
    for k in info:
      info[k] += ts.info[k]
    steps += 1
    if render:
      frames.append(env.render())
  return dict(episode_return=returns, episode_length=steps,
              **{f'episode_{k}': v for k, v in info.items()}), frames
