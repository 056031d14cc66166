"""Trained populations as policies: loaded from a run directory alone.

A run directory written by train.py records its config (``config.json``) and
checkpoints, which is all that is needed to rebuild the algorithm and its
parameters.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from marl_jax import algorithms
from marl_jax.envs.base import Environment
from marl_jax.networks import AgentInput
from marl_jax.runtime import learner as learner_lib
from marl_jax.runtime.actor import make_slot_act
from marl_jax.utils import checkpointing
from marl_jax.utils import config as config_lib


def load_run(exp_dir: str, step: Optional[int] = None):
  """Returns ``(config, algorithm, params [P, ...], metadata)`` of a run."""
  path = os.path.join(exp_dir, 'config.json')
  if not os.path.exists(path):
    raise checkpointing.CheckpointError(
        f'{path} does not exist: {exp_dir} is not a run directory of train.py.')
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  env = config_lib.make_env(config)
  spec = env.spec()
  env.close()
  algorithm = algorithms.make(config.algo, spec, config)
  # Shapes only: initialising the population for real compiles every op of
  # init eagerly (several seconds), only to be overwritten by the checkpoint.
  target = dict(
      learner=jax.eval_shape(lambda: learner_lib.init_population(
          algorithm, jax.random.PRNGKey(0), config.population_size)),
      runtime=b'')
  checkpointer = checkpointing.Checkpointer(
      os.path.join(exp_dir, 'checkpoints'), max_to_keep=None)
  try:
    restored, meta = checkpointer.restore(step=step, target=target)
  finally:
    checkpointer.close()
  return config, algorithm, restored['learner'].params, meta


class PopulationPolicy:
  """Acts for every agent slot of one environment with chosen members."""

  def __init__(self, algorithm, params, num_agents: int, greedy: bool = False,
               seed: int = 0):
    self._algorithm = algorithm
    self._params = params
    self._n = num_agents
    self._greedy = greedy
    self._key = jax.random.PRNGKey(seed)

    population_size = jax.tree.leaves(params)[0].shape[0]
    self._act = functools.partial(
        make_slot_act(algorithm, population_size), greedy=greedy)
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
    self._members = jnp.asarray(members, jnp.int32)
    self._core = self._algorithm.initial_core_state(self._n)
    self._prev_action = np.zeros((self._n,), np.int32)
    self._prev_reward = np.zeros((self._n,), np.float32)

  def step(self, timestep) -> np.ndarray:
    if timestep.first():
      self._prev_action[:] = 0
      self._prev_reward[:] = 0.
    inputs = AgentInput(
        observation={k: np.asarray(v) for k, v in timestep.observation.items()},
        prev_action=self._prev_action, prev_reward=self._prev_reward,
        step_type=np.full((self._n,), int(timestep.step_type), np.int32))
    self._key, sub = jax.random.split(self._key)
    action, _, self._core = self._act(self._params, self._members, inputs,
                                      self._core, sub)
    action = np.asarray(action)
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
