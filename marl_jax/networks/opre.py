"""The OPRE network (Vezhnevets et al., 2020): options over an actor-critic.

The same torso, previous action/reward inputs and LSTM core as the
actor-critic (``_ActorCritic``), with different heads: K option policies and
K option values, and the meta-policy ``p(z | own history)``. The posterior
``q(z | privileged information)`` is a separate MLP on the global observation
(e.g. ``GLOBAL``), used by the learner only.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import haiku as hk
import jax.numpy as jnp

from marl_jax.networks.actor_critic import AgentInput, _ActorCritic
from marl_jax.types import EnvSpec


class OPREOutput(NamedTuple):
  option_logits: Any  # [..., K, A]
  option_values: Any  # [..., K]
  prior_logits: Any  # [..., K]   p(z | history)


class OPRENetwork(NamedTuple):
  """Pure functions; ``posterior`` maps ``[..., G]`` global obs to q logits."""
  init: Callable[..., Any]
  step: Callable[..., Any]
  unroll: Callable[..., Any]
  posterior: Callable[..., Any]
  initial_state: Callable[[int], Any]


class _OPRE(_ActorCritic):
  """Actor-critic torso and core; option and meta-policy heads."""

  def __init__(self, num_options: int, *args, **kwargs):
    super().__init__(*args, name='opre', **kwargs)
    self._k = num_options

  def _heads(self, h):
    k, a = self._k, self._num_actions
    logits = hk.Linear(k * a, name='option_policy_heads',
                       w_init=hk.initializers.VarianceScaling(0.01))(h)
    values = hk.Linear(k, name='option_value_heads')(h)
    prior = hk.Linear(k, name='prior_head')(h)
    return OPREOutput(logits.reshape(h.shape[:-1] + (k, a)), values, prior)


def _posterior_mlp(num_options: int, hidden_sizes):
  def fn(global_obs):
    x = global_obs.reshape(global_obs.shape[:-1] + (-1,)).astype(jnp.float32)
    x = hk.nets.MLP(tuple(hidden_sizes) + (num_options,),
                    name='posterior')(x)
    return x
  return fn


def make_opre_network(env_spec: EnvSpec, config, num_options: int,
                      global_key: str) -> OPRENetwork:
  """Builds OPRE's network from ``config.network`` (as the actor-critic's)."""
  key = config.observation_key
  for k, what in ((key, 'network.observation_key'),
                  (global_key, 'opre_global_key')):
    if k not in env_spec.observation:
      raise ValueError(
          f'{what}={k!r} is not an observation of this environment; it has '
          f'{sorted(env_spec.observation)}. (OPRE needs privileged global '
          'information: add --config.env_wrappers=global_state.)')
  obs_spec = env_spec.observation[key]
  global_spec = env_spec.observation[global_key]
  lstm_size = int(config.lstm_size)

  def initial_state(batch_size: int):
    if not lstm_size:
      return ()
    zeros = jnp.zeros((batch_size, lstm_size), jnp.float32)
    return hk.LSTMState(hidden=zeros, cell=zeros)

  def forward():
    module = _OPRE(num_options, env_spec.num_actions, key, obs_spec, config)
    posterior = _posterior_mlp(num_options, config.mlp_sizes)

    def init(inputs, state, global_obs):
      return module.unroll(inputs, state), posterior(global_obs)

    return init, (module.step, module.unroll, posterior)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  step_fn, unroll_fn, posterior_fn = transformed.apply

  def init(rng):
    obs = {key: jnp.zeros((1, 1) + tuple(obs_spec.shape), obs_spec.dtype)}
    dummy = AgentInput(observation=obs,
                       prev_action=jnp.zeros((1, 1), jnp.int32),
                       prev_reward=jnp.zeros((1, 1), jnp.float32),
                       step_type=jnp.zeros((1, 1), jnp.int32))
    g = jnp.zeros((1, 1) + tuple(global_spec.shape), global_spec.dtype)
    return transformed.init(rng, dummy, initial_state(1), g)

  return OPRENetwork(init=init, step=step_fn, unroll=unroll_fn,
                     posterior=posterior_fn, initial_state=initial_state)
