"""Value-decomposition networks: a recurrent per-agent Q-network and mixers.

Agent network (Rashid et al., 2018, arXiv:1803.11485, Fig. 2c): observation
[+ one-hot previous action] [+ ``AGENT_ID`` one-hot] -> MLP -> GRU -> one Q
value per action. All agents share its parameters; the agent id tells them
apart. The GRU state is reset wherever ``step_type`` is ``FIRST``.

Mixers map the chosen agents' utilities ``q [..., N]`` and the global state
``s [..., S]`` to ``Q_tot [...]``:
  * ``vdn`` (Sunehag et al., 2018, arXiv:1706.05296): ``Q_tot = sum_i q_i``.
  * ``qmix`` (Rashid et al., 2018, eqs. 4-5): a mixing MLP whose weights are
    produced from ``s`` by hypernetworks and made non-negative with ``abs``,
    with ELU activations, so ``dQ_tot / dq_i >= 0`` (monotonic mixing); biases
    are unconstrained, the last one is a state value ``V(s)``. Options:
    ``depth`` hidden mixing layers (1 as in the paper, 2 for a deeper mixer),
    ``hypernet_layers`` (1: linear, 2: one hidden ReLU layer of
    ``hypernet_embed`` units, as PyMARL2), and ``layer_norm`` of the state
    input and of the hypernetworks' hidden layers (off by default, as in
    PyMARL2; for states that are not normalised). No option touches the sign
    of the mixing weights, so monotonicity holds in every configuration.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from marl_jax.networks.torsos import make_torso
from marl_jax.types import EnvSpec, StepType

AGENT_ID = 'AGENT_ID'


class QNetwork(NamedTuple):
  """Pure functions of the agent network.

  Attributes:
    init: ``key -> params``.
    step: ``(params, AgentInput[B], state [B, H]) -> (q [B, A], state)``.
    unroll: ``(params, AgentInput[T, B], state) -> (q [T, B, A], state)``.
    initial_state: ``batch_size -> zeros [B, H]``.
  """
  init: Callable[..., Any]
  step: Callable[..., Any]
  unroll: Callable[..., Any]
  initial_state: Callable[[int], Any]


class _RNNAgent(hk.Module):

  def __init__(self, num_actions, key, spec, use_agent_id, config,
               name='rnn_agent'):
    super().__init__(name=name)
    self._a, self._key, self._spec = num_actions, key, spec
    self._use_id = use_agent_id
    self._config = config

  def _embed(self, inputs):
    x = make_torso(self._key, self._spec.shape, self._spec.dtype,
                   self._config)(inputs.observation[self._key])
    parts = [x]
    if self._config.use_prev_action:
      parts.append(jax.nn.one_hot(inputs.prev_action, self._a))
    if self._use_id:
      parts.append(inputs.observation[AGENT_ID].astype(jnp.float32))
    return jnp.concatenate(parts, axis=-1)

  def _gru(self):
    return hk.GRU(self._config.gru_size, name='gru')

  def _head(self, h):
    return hk.Linear(self._a, name='q_head')(h)

  def step(self, inputs, state):
    h = self._embed(inputs)
    first = inputs.step_type == StepType.FIRST
    state = jnp.where(first[:, None], jnp.zeros_like(state), state)
    h, state = self._gru()(h, state)
    return self._head(h), state

  def unroll(self, inputs, state):
    h = hk.BatchApply(self._embed)(inputs)
    core = hk.ResetCore(self._gru())
    h, state = hk.dynamic_unroll(
        core, (h, inputs.step_type == StepType.FIRST), state)
    return hk.BatchApply(self._head)(h), state


def make_q_network(env_spec: EnvSpec, config, use_agent_id: bool) -> QNetwork:
  """The recurrent agent network; ``config.network`` fields:
  ``observation_key``, ``mlp_sizes``, conv fields, ``gru_size``,
  ``use_prev_action``."""
  key = config.observation_key
  if key not in env_spec.observation:
    raise ValueError(f'network.observation_key={key!r} is not an observation '
                     f'of this environment; it has '
                     f'{sorted(env_spec.observation)}.')
  if use_agent_id and AGENT_ID not in env_spec.observation:
    raise ValueError('use_agent_id needs an AGENT_ID observation: add '
                     '--config.env_wrappers=agent_id (or use_agent_id=False).')
  if config.gru_size <= 0:
    raise ValueError(f'network.gru_size must be positive, got '
                     f'{config.gru_size}.')
  spec = env_spec.observation
  size = int(config.gru_size)
  keys = (key, AGENT_ID) if use_agent_id else (key,)

  def initial_state(batch_size: int):
    return jnp.zeros((batch_size, size), jnp.float32)

  def forward():
    module = _RNNAgent(env_spec.num_actions, key, spec[key],
                       use_agent_id, config)
    return module.unroll, (module.step, module.unroll)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  step_fn, unroll_fn = transformed.apply

  def select(inputs):
    return inputs._replace(observation={k: inputs.observation[k] for k in keys})

  def init(rng):
    from marl_jax.networks.actor_critic import AgentInput  # pylint: disable=g-import-not-at-top
    obs = {k: jnp.zeros((1, 1) + tuple(spec[k].shape), spec[k].dtype)
           for k in keys}
    dummy = AgentInput(obs, jnp.zeros((1, 1), jnp.int32),
                       jnp.zeros((1, 1), jnp.float32),
                       jnp.zeros((1, 1), jnp.int32))
    return transformed.init(rng, dummy, initial_state(1))

  return QNetwork(init=init,
                  step=lambda p, x, s: step_fn(p, select(x), s),
                  unroll=lambda p, x, s: unroll_fn(p, select(x), s),
                  initial_state=initial_state)


class Mixer(NamedTuple):
  """``init(key) -> params``; ``apply(params, q [..., N], state [..., S]) ->
  Q_tot [...]``."""
  init: Callable[..., Any]
  apply: Callable[..., Any]


def _linear(size, name=None):
  """A linear layer with PyTorch's default init (uniform, variance
  1 / (3 fan_in)), as the PyMARL mixers have: haiku's default would start the
  product of two hypernetwork layers about 3x larger."""
  return hk.Linear(size, name=name, w_init=hk.initializers.VarianceScaling(
      1. / 3., 'fan_in', 'uniform'))


def _hypernet(out_size, layers, embed, layer_norm, name):
  def fn(s):
    with hk.name_scope(name):
      if layers == 1:
        return _linear(out_size)(s)
      h = _linear(embed)(s)
      if layer_norm:
        h = hk.LayerNorm(-1, create_scale=True, create_offset=True)(h)
      return _linear(out_size)(jax.nn.relu(h))
  return fn


def qmix_mixing(q, s, *, num_agents, embed, hypernet_layers, hypernet_embed,
                depth, layer_norm):
  """The monotonic mixing network inside a haiku transform (module doc)."""
  lead = q.shape[:-1]
  q = q.reshape((-1, 1, num_agents)).astype(jnp.float32)
  s = s.reshape((q.shape[0], -1)).astype(jnp.float32)
  if layer_norm:
    s = hk.LayerNorm(-1, create_scale=True, create_offset=True,
                     name='state_norm')(s)
  hyper = lambda out, name: _hypernet(out, hypernet_layers, hypernet_embed,
                                      layer_norm, name)(s)
  w = jnp.abs(hyper(num_agents * embed, 'hyper_w_1'))
  b = _linear(embed, name='hyper_b_1')(s)
  h = jax.nn.elu(q @ w.reshape(-1, num_agents, embed) + b[:, None])
  for i in range(2, depth + 1):
    w = jnp.abs(hyper(embed * embed, f'hyper_w_{i}'))
    b = _linear(embed, name=f'hyper_b_{i}')(s)
    h = jax.nn.elu(h @ w.reshape(-1, embed, embed) + b[:, None])
  w_final = jnp.abs(hyper(embed, 'hyper_w_final'))
  v = _linear(1, name='hyper_v_out')(
      jax.nn.relu(_linear(embed, name='hyper_v_hidden')(s)))
  q_tot = (h @ w_final[:, :, None])[:, 0, 0] + v[:, 0]
  return q_tot.reshape(lead)


def make_mixer(kind: str, num_agents: int, state_size: int, config) -> Mixer:
  """``kind`` ``'qmix'`` or ``'vdn'``; QMIX reads ``config.mixer_embed``,
  ``hypernet_layers``, ``hypernet_embed``, ``mixer_depth``,
  ``mixer_layer_norm``."""
  if kind == 'vdn':
    return Mixer(init=lambda key: {},
                 apply=lambda params, q, s: jnp.sum(q, axis=-1))
  if kind != 'qmix':
    raise ValueError(f'mixer must be qmix or vdn, got {kind!r}.')
  if config.hypernet_layers not in (1, 2):
    raise ValueError(f'hypernet_layers must be 1 or 2, got '
                     f'{config.hypernet_layers}.')
  if config.mixer_depth not in (1, 2):
    raise ValueError(f'mixer_depth must be 1 or 2, got {config.mixer_depth}.')
  kwargs = dict(num_agents=num_agents, embed=int(config.mixer_embed),
                hypernet_layers=int(config.hypernet_layers),
                hypernet_embed=int(config.hypernet_embed),
                depth=int(config.mixer_depth),
                layer_norm=bool(config.mixer_layer_norm))
  transformed = hk.without_apply_rng(hk.transform(
      lambda q, s: qmix_mixing(q, s, **kwargs)))

  def init(key):
    return transformed.init(key, jnp.zeros((1, num_agents)),
                            jnp.zeros((1, state_size)))

  return Mixer(init=init, apply=transformed.apply)
