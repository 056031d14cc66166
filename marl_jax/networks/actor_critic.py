"""The actor-critic network shared by IMPALA-style learners.

observation -> torso -> [+ one-hot previous action, previous reward] -> core
(LSTM, or none) -> policy logits and a scalar value. As in marl-jax, the previous
action and reward are optional inputs. The LSTM state is reset wherever the
input's ``step_type`` is ``FIRST``, both when acting one step at a time and when
the learner unrolls a sequence, so both see the same computation.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from marl_jax.networks.torsos import make_torso
from marl_jax.types import ArraySpec, EnvSpec, StepType

Array = jax.Array
Params = Any
CoreState = Any


class AgentInput(NamedTuple):
  """What one agent's policy sees at a step. Leading axes ``[B]`` or ``[T, B]``."""
  observation: Mapping[str, Array]
  prev_action: Array  # int32
  prev_reward: Array  # float32
  step_type: Array  # int32; FIRST resets the recurrent core.


class ActorCriticNetwork(NamedTuple):
  """Pure functions of an actor-critic network.

  Attributes:
    init: ``key -> params``.
    step: ``(params, AgentInput[B], state) -> ((logits [B, A], value [B]), state)``.
    unroll: ``(params, AgentInput[T, B], state) -> ((logits [T, B, A],
      value [T, B]), state)``.
    initial_state: ``batch_size -> state`` (zeros; needs no params).
    value_head_name: haiku module name of the final value layer (for PopArt).
  """
  init: Callable[..., Params]
  step: Callable[..., Any]
  unroll: Callable[..., Any]
  initial_state: Callable[[int], CoreState]
  value_head_name: str


class _ActorCritic(hk.Module):
  """The haiku module behind ``make_actor_critic``."""

  def __init__(self, num_actions: int, observation_key: str,
               observation_spec: ArraySpec, config,
               name: str = 'actor_critic'):
    super().__init__(name=name)
    self._num_actions = num_actions
    self._key = observation_key
    self._spec = observation_spec
    self._config = config

  def _embed(self, inputs: AgentInput) -> Array:
    """Embeds ``[N, ...]`` inputs (N may be a merged T*B)."""
    x = make_torso(self._key, self._spec.shape, self._spec.dtype,
                   self._config)(inputs.observation[self._key])
    parts = [x]
    if self._config.use_prev_action:
      parts.append(jax.nn.one_hot(inputs.prev_action, self._num_actions))
    if self._config.use_prev_reward:
      parts.append(jnp.clip(inputs.prev_reward, -100., 100.)[:, None]
                   .astype(jnp.float32))
    return jnp.concatenate(parts, axis=-1)

  def _heads(self, h: Array):
    logits = hk.Linear(self._num_actions, name='policy_head',
                       w_init=hk.initializers.VarianceScaling(0.01))(h)
    value = hk.Linear(1, name='value_head')(h)[..., 0]
    return logits, value

  def _core(self):
    return hk.LSTM(self._config.lstm_size, name='lstm')

  def step(self, inputs: AgentInput, state: CoreState):
    h = self._embed(inputs)
    if self._config.lstm_size:
      first = inputs.step_type == StepType.FIRST
      state = jax.tree.map(
          lambda s: jnp.where(first[:, None], jnp.zeros_like(s), s), state)
      h, state = self._core()(h, state)
    return self._heads(h), state

  def unroll(self, inputs: AgentInput, state: CoreState):
    h = hk.BatchApply(self._embed)(inputs)
    if self._config.lstm_size:
      first = inputs.step_type == StepType.FIRST
      core = hk.ResetCore(self._core())
      h, state = hk.dynamic_unroll(core, (h, first), state)
    return hk.BatchApply(self._heads)(h), state


def make_actor_critic(env_spec: EnvSpec, config) -> ActorCriticNetwork:
  """Builds the network for ``env_spec`` from a ``config.network`` ConfigDict.

  The torso follows the observation's spec (``torsos.input_kind``): pixels
  -> conv net on pixels / 255, feature grids -> conv net unscaled, vectors ->
  MLP. Config fields: ``observation_key``, ``mlp_sizes``, ``conv_channels``,
  ``conv_kernels``, ``conv_strides``, ``lstm_size`` (0: no recurrent core),
  ``use_prev_action``, ``use_prev_reward``.
  """
  key = config.observation_key
  if key not in env_spec.observation:
    raise ValueError(
        f'network.observation_key={key!r} is not an observation of this '
        f'environment; it has {sorted(env_spec.observation)}.')
  obs_spec = env_spec.observation[key]
  num_actions = env_spec.num_actions
  lstm_size = int(config.lstm_size)

  def initial_state(batch_size: int) -> CoreState:
    if not lstm_size:
      return ()
    zeros = jnp.zeros((batch_size, lstm_size), jnp.float32)
    return hk.LSTMState(hidden=zeros, cell=zeros)

  def forward():
    module = _ActorCritic(num_actions, key, obs_spec, config)

    def init(inputs, state):
      return module.unroll(inputs, state)

    return init, (module.step, module.unroll)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  step_fn, unroll_fn = transformed.apply

  def init(rng) -> Params:
    obs = {key: jnp.zeros((1, 1) + tuple(obs_spec.shape), obs_spec.dtype)}
    dummy = AgentInput(observation=obs,
                       prev_action=jnp.zeros((1, 1), jnp.int32),
                       prev_reward=jnp.zeros((1, 1), jnp.float32),
                       step_type=jnp.zeros((1, 1), jnp.int32))
    return transformed.init(rng, dummy, initial_state(1))

  return ActorCriticNetwork(
      init=init, step=step_fn, unroll=unroll_fn, initial_state=initial_state,
      value_head_name='actor_critic/~_heads/value_head')
