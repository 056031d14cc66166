"""Separate actor and critic networks for PPO-style learners (MAPPO, IPPO).

Each is a tower: observation -> torso (MLP for vectors, conv net for grids)
-> [+ extra flat observations, e.g. the ``AGENT_ID`` one-hot] -> optional
recurrent core (GRU or LSTM) -> head. The actor reads the agent's own
observation and gives policy logits; the critic reads ``critic_key`` (the
privileged ``GLOBAL`` state for MAPPO's centralised critic, the agent's own
observation for IPPO) and gives a scalar value. Unlike ``actor_critic`` the two
share no parameters, as in Yu et al. (2022), "The Surprising Effectiveness of
PPO in Cooperative Multi-Agent Games" (arXiv:2103.01955).

Recurrent states are reset wherever ``step_type`` is ``FIRST``, when acting one
step at a time and when unrolling a sequence, so both compute the same thing.
The core state is the pair ``(actor_state, critic_state)``: actors step the
critic's core too, so that a sequence's initial state is known for both.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from marl_jax.networks.torsos import MLPTorso, make_torso
from marl_jax.types import ArraySpec, EnvSpec, StepType

CORES = ('', 'gru', 'lstm')


class PPONetwork(NamedTuple):
  """Pure functions of the actor and critic.

  Attributes:
    init: ``key -> params``.
    step: ``(params, observation [B], step_type [B], state) -> ((logits
      [B, A], value [B]), state)``.
    unroll: ``(params, observation [T, B], step_type [T, B], state) ->
      ((logits [T, B, A], value [T, B]), state)``.
    initial_state: ``batch_size -> state`` (zeros; needs no params).
  """
  init: Callable[..., Any]
  step: Callable[..., Any]
  unroll: Callable[..., Any]
  initial_state: Callable[[int], Any]


def _core_zeros(core: str, size: int, batch_size: int):
  if not core:
    return ()
  zeros = jnp.zeros((batch_size, size), jnp.float32)
  if core == 'lstm':
    return hk.LSTMState(hidden=zeros, cell=zeros)
  return zeros


class _Tower(hk.Module):
  """torso [+ extras] -> core -> linear head of ``out_size``."""

  def __init__(self, key: str, spec: ArraySpec, extra_keys: Sequence[str],
               out_size: int, head_scale: float, config, name: str):
    super().__init__(name=name)
    self._key, self._spec = key, spec
    self._extra = tuple(extra_keys)
    self._out, self._scale = out_size, head_scale
    self._config = config

  def _embed(self, observation: Mapping[str, jax.Array]) -> jax.Array:
    if self._config.get('torso', 'auto') == 'mlp':  # Flattens any rank.
      x = MLPTorso(self._config.mlp_sizes)(observation[self._key])
    else:
      x = make_torso(self._key, self._spec.shape, self._spec.dtype,
                     self._config)(observation[self._key])
    parts = [x] + [observation[k].reshape(x.shape[0], -1).astype(jnp.float32)
                   for k in self._extra]
    return jnp.concatenate(parts, axis=-1)

  def _head(self, h):
    return hk.Linear(self._out, name='head',
                     w_init=hk.initializers.VarianceScaling(self._scale))(h)

  def _core(self):
    size = self._config.core_size
    return (hk.GRU(size, name='gru') if self._config.core == 'gru' else
            hk.LSTM(size, name='lstm'))

  def step(self, observation, step_type, state):
    h = self._embed(observation)
    if self._config.core:
      first = step_type == StepType.FIRST
      state = jax.tree.map(
          lambda s: jnp.where(first[:, None], jnp.zeros_like(s), s), state)
      h, state = self._core()(h, state)
    return self._head(h), state

  def unroll(self, observation, step_type, state):
    h = hk.BatchApply(self._embed)(observation)
    if self._config.core:
      core = hk.ResetCore(self._core())
      h, state = hk.dynamic_unroll(core, (h, step_type == StepType.FIRST),
                                   state)
    return hk.BatchApply(self._head)(h), state


def _check_key(env_spec: EnvSpec, key: str, what: str, hint: str = '') -> None:
  if key not in env_spec.observation:
    raise ValueError(f'{what}={key!r} is not an observation of this '
                     f'environment; it has {sorted(env_spec.observation)}.'
                     f'{hint}')


def make_ppo_network(env_spec: EnvSpec, config, critic_key: str,
                     extra_keys: Sequence[str] = ()) -> PPONetwork:
  """Builds the actor and critic from ``config`` (``config.network``).

  Config fields: ``observation_key``, ``torso`` (``'auto'``: by the
  observation's spec, see ``torsos.input_kind``: pixels -> conv on pixels /
  255, grids -> conv unscaled, vectors -> MLP; ``'mlp'``: flatten any
  observation, unscaled, into an MLP), ``mlp_sizes``, ``conv_channels``,
  ``conv_kernels``, ``conv_strides``, ``core`` (``''``, ``'gru'`` or
  ``'lstm'``), ``core_size``.

  Args:
    env_spec: the environment's spec.
    config: the network config.
    critic_key: the critic's observation (``GLOBAL`` for a centralised critic).
    extra_keys: flat observations appended after both torsos (``AGENT_ID``).
  """
  if config.get('torso', 'auto') not in ('auto', 'mlp'):
    raise ValueError(f'network.torso must be "auto" or "mlp", got '
                     f'{config.torso!r}.')
  if config.core not in CORES:
    raise ValueError(f'network.core must be one of {CORES}, got '
                     f'{config.core!r}.')
  if config.core and config.core_size <= 0:
    raise ValueError(f'network.core_size must be positive, got '
                     f'{config.core_size}.')
  actor_key = config.observation_key
  _check_key(env_spec, actor_key, 'network.observation_key')
  _check_key(env_spec, critic_key, 'critic_observation_key',
             ' (a centralised critic needs a GLOBAL state: add '
             '--config.env_wrappers=global_state, or use ippo.)')
  for k in extra_keys:
    _check_key(env_spec, k, 'extra observation',
               ' (add --config.env_wrappers=agent_id, or set '
               'use_agent_id=False.)')
  spec = env_spec.observation
  core, size = config.core, int(config.core_size)

  def initial_state(batch_size: int):
    zeros = lambda: _core_zeros(core, size, batch_size)
    return (zeros(), zeros())

  def forward():
    actor = _Tower(actor_key, spec[actor_key], extra_keys,
                   env_spec.num_actions, 0.01, config, name='actor')
    critic = _Tower(critic_key, spec[critic_key], extra_keys, 1,
                    1.0, config, name='critic')

    def step(observation, step_type, state):
      logits, a_state = actor.step(observation, step_type, state[0])
      value, c_state = critic.step(observation, step_type, state[1])
      return (logits, value[..., 0]), (a_state, c_state)

    def unroll(observation, step_type, state):
      logits, a_state = actor.unroll(observation, step_type, state[0])
      value, c_state = critic.unroll(observation, step_type, state[1])
      return (logits, value[..., 0]), (a_state, c_state)

    return unroll, (step, unroll)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  step_fn, unroll_fn = transformed.apply
  keys = {actor_key, critic_key, *extra_keys}

  def init(rng):
    obs = {k: jnp.zeros((1, 1) + tuple(spec[k].shape), spec[k].dtype)
           for k in keys}
    return transformed.init(rng, obs, jnp.zeros((1, 1), jnp.int32),
                            initial_state(1))

  def select(observation):
    return {k: observation[k] for k in keys}

  return PPONetwork(
      init=init,
      step=lambda p, o, s, c: step_fn(p, select(o), s, c),
      unroll=lambda p, o, s, c: unroll_fn(p, select(o), s, c),
      initial_state=initial_state)
