"""Wrappers over the environment contract.

  * ``AgentId``: adds ``AGENT_ID``, a one-hot of the agent's slot, for
    parameter sharing across agents (MAPPO, QMIX).
  * ``GlobalState``: adds ``GLOBAL``, every agent's observation of a key
    concatenated (the same for all agents), as privileged state for
    centralised critics and mixers when the environment has none of its own.
  * ``RewardScale``: multiplies rewards by a constant (the info entries keep
    the unscaled values, so logs stay comparable).
  * ``EpisodeStatistics``: keeps the running and the last finished episode's
    per-agent return and length, for loops that do not track them.

``JaxAgentId`` and ``JaxGlobalState`` are the first two for functional
``JaxEnvironment``s (the anakin runtime; ``make_jax_wrapped``).

Wrappers forward the optional hooks (``render``, ``set_training_progress``,
``get_state``/``set_state``, ``close``) to the wrapped environment.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from marl_jax.envs.base import Environment, JaxEnvironment
from marl_jax.types import ArraySpec, EnvSpec, TimeStep


class Wrapper(Environment):
  """Forwards everything to ``env``; subclasses change what they need."""

  def __init__(self, env: Environment):
    self._env = env

  @property
  def unwrapped(self) -> Environment:
    env = self._env
    while isinstance(env, Wrapper):
      env = env._env  # pylint: disable=protected-access
    return env

  def reset(self) -> TimeStep:
    return self._transform(self._env.reset())

  def step(self, actions) -> TimeStep:
    return self._transform(self._env.step(actions))

  def spec(self) -> EnvSpec:
    return self._env.spec()

  def _transform(self, timestep: TimeStep) -> TimeStep:
    return timestep

  def render(self) -> np.ndarray:
    return self._env.render()

  def set_training_progress(self, env_steps: int) -> None:
    self._env.set_training_progress(env_steps)

  def get_state(self) -> Optional[Any]:
    return self._env.get_state()

  def set_state(self, state: Any) -> None:
    self._env.set_state(state)

  def reseed(self, seed: Optional[int]) -> None:
    self._env.reseed(seed)

  def close(self) -> None:
    self._env.close()


class AgentId(Wrapper):
  """Adds ``AGENT_ID``: row ``i`` is the one-hot of slot ``i``, float32."""

  KEY = 'AGENT_ID'

  def __init__(self, env: Environment):
    super().__init__(env)
    spec = env.spec()
    if self.KEY in spec.observation:
      raise ValueError(f'The environment already has an {self.KEY} observation.')
    self._ids = np.eye(spec.num_agents, dtype=np.float32)
    self._spec = spec._replace(observation={
        **spec.observation,
        self.KEY: ArraySpec((spec.num_agents,), np.float32)})

  def spec(self) -> EnvSpec:
    return self._spec

  def _transform(self, timestep: TimeStep) -> TimeStep:
    return timestep._replace(
        observation={**timestep.observation, self.KEY: self._ids})


_HAS_GLOBAL = ('The environment already has a GLOBAL observation of its own; '
               "leave 'global_state' out of env_wrappers "
               "(e.g. --config.env_wrappers='()').")


class GlobalState(Wrapper):
  """Adds ``GLOBAL``: all agents' ``key`` observations, flattened and joined.

  Every agent sees the same ``[num_agents * prod(shape)]`` vector. ``key``
  defaults to ``FEATURES``, else ``GRID`` (Overcooked's lossless grid).
  """

  KEY = 'GLOBAL'

  def __init__(self, env: Environment, key: Optional[str] = None):
    super().__init__(env)
    spec = env.spec()
    if self.KEY in spec.observation:
      raise ValueError(_HAS_GLOBAL)
    if key is None:
      key = 'GRID' if ('GRID' in spec.observation and
                       'FEATURES' not in spec.observation) else 'FEATURES'
    if key not in spec.observation:
      raise ValueError(f'GlobalState: observation {key!r} not found; the '
                       f'environment has {sorted(spec.observation)}.')
    self._key = key
    self._n = spec.num_agents
    size = self._n * int(np.prod(spec.observation[key].shape))
    self._spec = spec._replace(observation={
        **spec.observation, self.KEY: ArraySpec((size,), np.float32)})

  def spec(self) -> EnvSpec:
    return self._spec

  def _transform(self, timestep: TimeStep) -> TimeStep:
    joint = np.asarray(timestep.observation[self._key], np.float32).reshape(-1)
    state = np.broadcast_to(joint, (self._n, joint.size))
    return timestep._replace(
        observation={**timestep.observation, self.KEY: state})


class RewardScale(Wrapper):
  """Rewards times ``scale``; ``info`` keeps the environment's own values."""

  def __init__(self, env: Environment, scale: float):
    super().__init__(env)
    if not np.isfinite(scale):
      raise ValueError(f'RewardScale: scale must be finite, got {scale!r}.')
    self._scale = np.float32(scale)

  def _transform(self, timestep: TimeStep) -> TimeStep:
    return timestep._replace(
        reward=(np.asarray(timestep.reward, np.float32) * self._scale))


class EpisodeStatistics(Wrapper):
  """Tracks per-agent episode return and length.

  ``current`` is the episode in progress; ``last`` the most recently finished
  one (None before the first ends).
  """

  def __init__(self, env: Environment):
    super().__init__(env)
    self._n = env.spec().num_agents
    self.current: Dict[str, Any] = dict(episode_return=np.zeros(self._n),
                                        episode_length=0)
    self.last: Optional[Dict[str, Any]] = None
    self.num_episodes = 0

  def _transform(self, timestep: TimeStep) -> TimeStep:
    if timestep.first():
      self.current = dict(episode_return=np.zeros(self._n), episode_length=0)
    else:
      self.current['episode_return'] = (self.current['episode_return'] +
                                        np.asarray(timestep.reward))
      self.current['episode_length'] += 1
    if timestep.last():
      self.last = dict(episode_return=self.current['episode_return'].copy(),
                       episode_length=self.current['episode_length'])
      self.num_episodes += 1
    return timestep

  def get_state(self) -> Optional[Any]:
    inner = self._env.get_state()
    if inner is None:
      return None
    return dict(inner=inner, current=dict(self.current), last=self.last,
                num_episodes=self.num_episodes)

  def set_state(self, state: Any) -> None:
    self._env.set_state(state['inner'])
    self.current = dict(state['current'])
    self.last = state['last']
    self.num_episodes = state['num_episodes']


WRAPPERS = {
    'agent_id': AgentId,
    'global_state': GlobalState,
}


def make_wrapped(name: str, wrappers=(), **kwargs) -> Environment:
  """``registry.make(name, **kwargs)`` wrapped by the named ``wrappers``.

  Names (applied in order): ``agent_id``, ``global_state``.
  """
  from marl_jax.envs import registry  # pylint: disable=g-import-not-at-top
  if isinstance(wrappers, str):
    wrappers = tuple(w for w in wrappers.split(',') if w)
  unknown = [w for w in wrappers if w not in WRAPPERS]
  if unknown:
    raise ValueError(f'Unknown env wrapper(s) {unknown}; valid: '
                     f'{", ".join(sorted(WRAPPERS))}.')
  env = registry.make(name, **kwargs)
  for w in wrappers:
    env = WRAPPERS[w](env)
  return env


# -----------------------------------------------------------------------------
# The same wrappers for functional JAX-native environments (anakin runtime).


class JaxWrapper(JaxEnvironment):
  """Forwards a ``JaxEnvironment``; subclasses change its time steps/spec.

  Other attributes (``optimal_return``, ``set_training_progress``, ...) are
  the wrapped environment's.
  """

  def __init__(self, env: JaxEnvironment):
    self._env = env

  def __getattr__(self, name):
    if name.startswith('__') or name == '_env':
      raise AttributeError(name)
    return getattr(self._env, name)

  def reset(self, key):
    state, ts = self._env.reset(key)
    return state, self._transform(ts)

  def step(self, state, actions, key):
    state, ts = self._env.step(state, actions, key)
    return state, self._transform(ts)

  def spec(self) -> EnvSpec:
    return self._env.spec()

  def render(self, state) -> np.ndarray:
    return self._env.render(state)

  def _transform(self, timestep: TimeStep) -> TimeStep:
    return timestep

  def __repr__(self) -> str:
    return f'{type(self).__name__}({self._env!r})'


class JaxAgentId(JaxWrapper):
  """``AgentId`` for a ``JaxEnvironment``."""

  def __init__(self, env: JaxEnvironment):
    super().__init__(env)
    spec = env.spec()
    if AgentId.KEY in spec.observation:
      raise ValueError(f'The environment already has an {AgentId.KEY} '
                       'observation.')
    self._n = spec.num_agents
    self._spec = spec._replace(observation={
        **spec.observation,
        AgentId.KEY: ArraySpec((spec.num_agents,), np.float32)})

  def spec(self) -> EnvSpec:
    return self._spec

  def _transform(self, timestep: TimeStep) -> TimeStep:
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    return timestep._replace(observation={
        **timestep.observation, AgentId.KEY: jnp.eye(self._n,
                                                     dtype=jnp.float32)})


class JaxGlobalState(JaxWrapper):
  """``GlobalState`` for a ``JaxEnvironment``."""

  def __init__(self, env: JaxEnvironment, key: str = 'FEATURES'):
    super().__init__(env)
    spec = env.spec()
    if GlobalState.KEY in spec.observation:
      raise ValueError(_HAS_GLOBAL)
    if key not in spec.observation:
      raise ValueError(f'GlobalState: observation {key!r} not found; the '
                       f'environment has {sorted(spec.observation)}.')
    self._key, self._n = key, spec.num_agents
    size = self._n * int(np.prod(spec.observation[key].shape))
    self._spec = spec._replace(observation={
        **spec.observation, GlobalState.KEY: ArraySpec((size,), np.float32)})

  def spec(self) -> EnvSpec:
    return self._spec

  def _transform(self, timestep: TimeStep) -> TimeStep:
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    joint = timestep.observation[self._key].astype(jnp.float32).reshape(-1)
    return timestep._replace(observation={
        **timestep.observation,
        GlobalState.KEY: jnp.broadcast_to(joint, (self._n, joint.size))})


JAX_WRAPPERS = {
    'agent_id': JaxAgentId,
    'global_state': JaxGlobalState,
}


def make_jax_wrapped(name: str, wrappers=(), **kwargs) -> JaxEnvironment:
  """``registry.make_jax(name, **kwargs)`` wrapped by the named ``wrappers``
  (as ``make_wrapped``)."""
  from marl_jax.envs import registry  # pylint: disable=g-import-not-at-top
  if isinstance(wrappers, str):
    wrappers = tuple(w for w in wrappers.split(',') if w)
  unknown = [w for w in wrappers if w not in JAX_WRAPPERS]
  if unknown:
    raise ValueError(f'Unknown env wrapper(s) {unknown}; valid: '
                     f'{", ".join(sorted(JAX_WRAPPERS))}.')
  env = registry.make_jax(name, **kwargs)
  for w in wrappers:
    env = JAX_WRAPPERS[w](env)
  return env
