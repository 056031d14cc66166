"""``HostEnvironment``: any functional ``JaxEnvironment`` as a stateful one.

``make("jax/...")`` and ``make("jaxmarl/...")`` return JAX-native games behind
the stateful ``Environment`` contract, so that the distributed runtime's
actors, ``evaluate.py`` and the PettingZoo export work on them unchanged;
``make_jax`` returns the functional environment itself for the anakin
runtime.

The adapter, in detail:
  * ``reset`` and ``step`` are jitted with the functional environment as a
    static argument, so adapters of environments that compare equal (ours
    do when built with the same arguments) share one compilation: an actor
    with many env copies compiles once. Each call splits the adapter's PRNG
    key (seeded by ``seed``) inside the jitted function, so adapters built
    with the same ``seed`` replay the same episodes, and their trajectories
    equal ``jax_env``'s stepped with the same key sequence.
  * Outputs are numpy: ``step_type`` a ``StepType``, ``reward`` ``[N]``
    float32, ``discount`` a float32 scalar, observation and info dicts of
    numpy arrays.
  * ``step`` checks the actions (shape ``[N]``, integers in
    ``[0, num_actions)``) before anything else and raises ``ValueError``; a
    ``step`` before the first ``reset`` resets. After ``LAST``, ``step``
    starts a new episode, as the functional contract does.
  * ``get_state`` / ``set_state``: a picklable snapshot (numpy leaves of the
    functional state, the PRNG key and the training progress) from which an
    adapter of the same environment continues exactly.
  * ``set_training_progress(env_steps)`` forwards to the functional env's
    ``set_training_progress(state, env_steps) -> state`` when it has one
    (e.g. the Overcooked shaped-reward weight), and is remembered across
    resets.
  * ``render()`` is ``jax_env.render(state)``.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs.base import Environment, JaxEnvironment
from marl_jax.types import EnvSpec, StepType, TimeStep


class ConfigEquality:
  """Equality and hash by ``self._config`` (the construction arguments).

  Functional environments are static arguments of jitted functions; two
  built with the same arguments compare equal and so share compilations.
  """

  _config: tuple = ()

  def __eq__(self, other) -> bool:
    # pylint: disable-next=protected-access
    return type(other) is type(self) and other._config == self._config

  def __hash__(self) -> int:
    return hash((type(self).__name__, self._config))


@functools.partial(jax.jit, static_argnums=0)
def _reset(env: JaxEnvironment, key):
  key, sub = jax.random.split(key)
  state, ts = env.reset(sub)
  return key, state, ts


@functools.partial(jax.jit, static_argnums=0)
def _step(env: JaxEnvironment, key, state, actions):
  key, sub = jax.random.split(key)
  state, ts = env.step(state, actions, sub)
  return key, state, ts


@functools.partial(jax.jit, static_argnums=0)
def _progress(env: JaxEnvironment, state, env_steps):
  return env.set_training_progress(state, env_steps)


def _to_numpy(ts: TimeStep) -> TimeStep:
  ts = jax.device_get(ts)
  return TimeStep(
      step_type=StepType(int(ts.step_type)),
      reward=np.asarray(ts.reward, np.float32),
      discount=np.float32(ts.discount),
      observation={k: np.asarray(v) for k, v in ts.observation.items()},
      info={k: np.asarray(v) for k, v in ts.info.items()})


class HostEnvironment(Environment):
  """A ``JaxEnvironment`` as a stateful ``Environment`` (module docstring)."""

  def __init__(self, jax_env: JaxEnvironment, seed: int = 0):
    if not isinstance(jax_env, JaxEnvironment):
      raise TypeError(f'HostEnvironment needs a JaxEnvironment, got '
                      f'{type(jax_env).__name__}.')
    self._env = jax_env
    self._seed = _checks.non_negative_int('seed', seed)
    self._spec = jax_env.spec()
    self._has_progress = hasattr(jax_env, 'set_training_progress')
    self._key = jax.random.PRNGKey(self._seed)
    self._state = None
    self._training_env_steps = 0
    self._template = None  # The state's tree structure, for set_state.

  @property
  def jax_env(self) -> JaxEnvironment:
    """The functional environment."""
    return self._env

  @property
  def jax_state(self):
    """The functional state (jax arrays), or None before the first reset."""
    return self._state

  def spec(self) -> EnvSpec:
    return self._spec

  def reseed(self, seed: Optional[int]) -> None:
    """Restarts the key sequence from ``seed``; the next ``reset`` uses it."""
    self._seed = _checks.non_negative_int('seed', 0 if seed is None else seed)
    self._key = jax.random.PRNGKey(self._seed)
    self._state = None

  def reset(self) -> TimeStep:
    self._key, self._state, ts = _reset(self._env, self._key)
    if self._has_progress and self._training_env_steps:
      self._state = _progress(self._env, self._state,
                                      jnp.int32(self._training_env_steps))
    return _to_numpy(ts)

  def step(self, actions) -> TimeStep:
    actions = _checks.actions(actions, self._spec.num_agents,
                              self._spec.num_actions)
    if self._state is None:
      return self.reset()
    self._key, self._state, ts = _step(
        self._env, self._key, self._state, jnp.asarray(actions, jnp.int32))
    return _to_numpy(ts)

  def set_training_progress(self, env_steps: int) -> None:
    self._training_env_steps = _checks.non_negative_int('env_steps', env_steps)
    if self._has_progress and self._state is not None:
      self._state = _progress(self._env, self._state,
                                      jnp.int32(self._training_env_steps))

  def render(self) -> np.ndarray:
    if self._state is None:
      self.reset()
    return self._env.render(self._state)

  def get_state(self) -> Dict[str, Any]:
    leaves = (None if self._state is None else
              [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
                  self._state))])
    return {'key': np.asarray(jax.device_get(self._key)), 'leaves': leaves,
            'training_env_steps': self._training_env_steps,
            'env': repr(self._env)}

  def set_state(self, state: Dict[str, Any]) -> None:
    expected = {'key', 'leaves', 'training_env_steps', 'env'}
    if not isinstance(state, dict) or set(state) != expected:
      raise ValueError('state must be a snapshot returned by '
                       'HostEnvironment.get_state().')
    if state['env'] != repr(self._env):
      raise ValueError(f'Snapshot of {state["env"]} cannot be restored into '
                       f'{self._env!r}.')
    if self._template is None:
      self._template = jax.eval_shape(
          functools.partial(_reset, self._env), self._key)[1]
    if state['leaves'] is None:
      new_state = None
    else:
      treedef = jax.tree.structure(self._template)
      shapes = [(x.shape, x.dtype) for x in jax.tree.leaves(self._template)]
      got = [(np.shape(x), np.asarray(x).dtype) for x in state['leaves']]
      if got != shapes:
        raise ValueError('The snapshot\'s state arrays do not match this '
                         'environment\'s state (shapes/dtypes differ).')
      new_state = jax.tree.unflatten(
          treedef, [jnp.asarray(x) for x in state['leaves']])
    self._key = jnp.asarray(state['key'])
    self._state = new_state
    self._training_env_steps = _checks.non_negative_int(
        'training_env_steps', state['training_env_steps'])

  def __repr__(self) -> str:
    return f'HostEnvironment({self._env!r}, seed={self._seed})'
