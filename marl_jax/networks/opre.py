"""The OPRE network (Vezhnevets et al., 2020): options over an actor-critic.

The same torso, previous action/reward inputs and LSTM core as the
actor-critic (``_ActorCritic``), with different heads: K option policies and
K option values, and the meta-policy ``p(z | own history)``. The posterior
``q(z | privileged information)`` is a separate network on the global
observation (e.g. ``GLOBAL``), used by the learner only: an MLP for a vector,
and for an image or grid (Melting Pot's ``WORLD.RGB``) the torso its spec
calls for (``torsos.input_kind``: a conv net on pixels / 255 or on the grid as
it is) followed by a linear layer to the K option logits.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import haiku as hk
import jax.numpy as jnp

from marl_jax.networks.actor_critic import AgentInput, _ActorCritic
from marl_jax.networks.torsos import input_kind, make_torso
from marl_jax.types import ArraySpec, EnvSpec


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


def _posterior(num_options: int, global_key: str, global_spec: ArraySpec,
               config):
  """``[..., *global_spec.shape] -> [..., K]`` posterior logits."""
  shape = tuple(global_spec.shape)
  kind = input_kind(global_key, shape, global_spec.dtype)

  def fn(global_obs):
    if kind == 'vector':
      x = global_obs.astype(jnp.float32)
      if not shape:
        x = x[..., None]
      return hk.nets.MLP(tuple(config.mlp_sizes) + (num_options,),
                         name='posterior')(x)
    lead = global_obs.shape[:global_obs.ndim - len(shape)]
    x = global_obs.reshape((-1,) + shape)
    with hk.name_scope('posterior_torso'):
      h = make_torso(global_key, shape, global_spec.dtype, config)(x)
    logits = hk.Linear(num_options, name='posterior_logits')(h)
    return logits.reshape(lead + (num_options,))
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
    posterior = _posterior(num_options, global_key, global_spec, config)

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
