"""Our environments as PettingZoo ``ParallelEnv``s: ``to_parallel_env(env)``.

The other direction of ``pettingzoo.py`` (PettingZoo environments as ours).

``to_parallel_env`` (``ParallelEnvironment``): agents ``agent_0``...; one
``Box`` observation space per agent (``Dict`` of Boxes when the environment has
more than one observation entry, keyed by the entry names), ``Discrete``
actions. The wrapped environment has no seed of its own: ``reset(seed=...)``
passes the seed on only if the environment is our PettingZoo adapter
(``reseed``); otherwise it is ignored. After the ``LAST`` step every agent is
done and removed from ``agents``: a discount of 0 reports ``terminations``,
a discount of 1 ``truncations``. ``state()`` returns agent 0's ``GLOBAL`` entry
when the environment has one.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from marl_jax.envs.base import Environment
from marl_jax.envs.pettingzoo import GLOBAL, INSTALL_HINT, gymnasium_spaces
from marl_jax.types import ArraySpec, StepType, TimeStep


def _space_of(spec: ArraySpec):
  spaces = gymnasium_spaces()
  dtype = np.dtype(spec.dtype)
  if dtype == np.uint8:
    return spaces.Box(0, 255, tuple(spec.shape), np.uint8)
  if dtype.kind == 'b':
    return spaces.MultiBinary(list(spec.shape) or 1)
  if dtype.kind in 'iu':
    info = np.iinfo(dtype)
    return spaces.Box(info.min, info.max, tuple(spec.shape), dtype)
  return spaces.Box(-np.inf, np.inf, tuple(spec.shape), dtype)


@functools.lru_cache(maxsize=None)
def _parallel_env_class():
  """Builds ``ParallelEnvironment`` (pettingzoo is imported only here)."""
  if importlib.util.find_spec('pettingzoo') is None:
    raise ImportError(INSTALL_HINT)
  import pettingzoo  # pylint: disable=g-import-not-at-top
  spaces = gymnasium_spaces()

  class ParallelEnvironment(pettingzoo.ParallelEnv):
    """A marl_jax ``Environment`` as a PettingZoo ``ParallelEnv``."""

    metadata = {'name': 'marl_jax', 'render_modes': ['rgb_array'],
                'is_parallelizable': True}

    def __init__(self, env: Environment, render_mode: Optional[str] = None):
      if render_mode not in (None, 'rgb_array'):
        raise ValueError(f"render_mode must be None or 'rgb_array', got "
                         f'{render_mode!r}.')
      self.env = env
      self.render_mode = render_mode
      spec = env.spec()
      self._spec = spec
      self._names = tuple(spec.observation)
      self.possible_agents = [f'agent_{i}' for i in range(spec.num_agents)]
      self.agents: List[str] = []
      if len(self._names) == 1:
        obs_space = _space_of(spec.observation[self._names[0]])
      else:
        obs_space = spaces.Dict({k: _space_of(v)
                                 for k, v in spec.observation.items()})
      # One object per agent, returned by identity every time.
      self.observation_spaces = {a: obs_space for a in self.possible_agents}
      self.action_spaces = {a: spaces.Discrete(spec.num_actions)
                            for a in self.possible_agents}
      if GLOBAL in spec.observation:
        self.state_space = _space_of(spec.observation[GLOBAL])
      self._timestep: Optional[TimeStep] = None

    def observation_space(self, agent):
      return self.observation_spaces[agent]

    def action_space(self, agent):
      return self.action_spaces[agent]

    def _obs(self, ts: TimeStep) -> Dict[str, Any]:
      out = {}
      for i, agent in enumerate(self.possible_agents):
        entries = {k: np.asarray(ts.observation[k][i]) for k in self._names}
        out[agent] = (entries[self._names[0]] if len(self._names) == 1
                      else entries)
      return out

    def _infos(self, ts: TimeStep) -> Dict[str, Dict[str, Any]]:
      return {agent: {k: np.asarray(v)[i].item() for k, v in ts.info.items()}
              for i, agent in enumerate(self.possible_agents)}

    def reset(self, seed: Optional[int] = None,
              options: Optional[dict] = None):
      del options
      if seed is not None:
        if hasattr(self.env, 'reseed'):
          self.env.reseed(seed)
        for i, agent in enumerate(self.possible_agents):
          self.action_spaces[agent].seed(seed + i)
      ts = self.env.reset()
      self._timestep = ts
      self.agents = list(self.possible_agents)
      return self._obs(ts), self._infos(ts)

    def step(self, actions: Mapping[str, Any]):
      if not self.agents:
        raise RuntimeError('step() called with no live agents; call reset().')
      missing = [a for a in self.agents if a not in actions]
      if missing:
        raise ValueError(f'No action for live agents {missing}.')
      joint = np.asarray([int(actions[a]) for a in self.possible_agents],
                         np.int32)
      ts = self.env.step(joint)
      self._timestep = ts
      last = int(ts.step_type) == StepType.LAST
      terminated = last and float(ts.discount) == 0.
      truncated = last and not terminated
      agents = self.agents
      rewards = {a: float(ts.reward[i])
                 for i, a in enumerate(self.possible_agents) if a in agents}
      obs = {a: o for a, o in self._obs(ts).items() if a in agents}
      infos = {a: v for a, v in self._infos(ts).items() if a in agents}
      terminations = {a: terminated for a in agents}
      truncations = {a: truncated for a in agents}
      if last:
        self.agents = []
      return obs, rewards, terminations, truncations, infos

    def render(self):
      if self.render_mode != 'rgb_array':
        return None
      return self.env.render()

    def state(self) -> np.ndarray:
      if GLOBAL not in self._spec.observation:
        raise NotImplementedError(
            f'{self.env!r} has no GLOBAL observation entry to serve as state.')
      if self._timestep is None:
        raise RuntimeError('state() called before reset().')
      return np.asarray(self._timestep.observation[GLOBAL][0])

    def close(self):
      self.env.close()

  return ParallelEnvironment


def to_parallel_env(env: Environment, render_mode: Optional[str] = None):
  """Exposes a marl_jax ``Environment`` as a PettingZoo ``ParallelEnv``.

  Args:
    env: any marl_jax environment.
    render_mode: None or ``'rgb_array'`` (then ``render()`` returns
      ``env.render()``).

  Returns:
    A ``pettingzoo.ParallelEnv`` (see the module docstring).
  """
  if not isinstance(env, Environment):
    raise TypeError(f'to_parallel_env needs a marl_jax Environment, got '
                    f'{type(env).__name__}.')
  return _parallel_env_class()(env, render_mode=render_mode)

