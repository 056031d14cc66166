"""Behaviour cloning: a policy fit to demonstrated (observation, action) pairs.

The supervised learner of Carroll et al. (NeurIPS 2019, "On the Utility of
Learning about Humans for Human-AI Coordination", Sec. 4 and App. C) that
gives Overcooked's human models: a feed-forward policy (an MLP, 2 x 64 in the
paper, on the package's featurized state) trained with the cross-entropy
``-log pi(a_t | x_t)`` of each demonstrated action, Adam at 1e-3, and early
stopping on a held-out validation split. The learner is offline: it never
acts in the environment, so no actor, replay or rollout runs;
``runtime/offline.py`` feeds it minibatches of the dataset
(``algorithms.is_offline``).

Acting samples from the cloned policy (``greedy`` takes its argmax). The
paper's human models were also unstuck: when an agent's own position and
orientation have stayed the same for ``stuck_steps`` steps, the actions it
took in those steps are removed from its distribution (renormalised; if
nothing would remain, the distribution is left as it is), so that a cloned
human that keeps bumping into its partner tries something else.
``stuck_steps = 0`` turns that off. What "its own position and orientation"
is, is ``stuck_features``: indices into the agent's flattened observation;
empty (the default) is the orientation one-hot (0-3) and absolute position
(the last two entries) of Overcooked's featurized observation on
``overcooked/``, and the whole observation elsewhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp

from marl_jax.algorithms import common
from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState
from marl_jax.networks.torsos import MLPTorso, make_torso
from marl_jax.types import EnvSpec, StepType

NAMES = ('bc',)
OFFLINE = True  # Learns from a dataset (runtime/offline.py), not by acting.
# Overcooked's featurized observation: the orientation one-hot and the
# agent's absolute (x, y) (overcooked_ai's ``featurize_state``).
_OVERCOOKED_SELF_FEATURES = (0, 1, 2, 3, -2, -1)


class Batch(NamedTuple):
  """A minibatch of demonstrations: ``[B]`` rows.

  Attributes:
    observation: the observation dict, ``[B, ...]`` per entry.
    action: ``[B]`` int32, the demonstrated actions.
    weight: ``[B]`` float32, 1 for a real row, 0 for padding.
  """
  observation: Any
  action: jax.Array
  weight: jax.Array


class StuckState(NamedTuple):
  """The acting history the unstuck rule reads, per row ``[B]``.

  Attributes:
    features: ``[B, K, S]`` the agent's own features at the last K steps.
    actions: ``[B, K]`` int32, the actions taken at those steps.
    count: ``[B]`` int32, steps recorded since the episode began (capped).
  """
  features: jax.Array
  actions: jax.Array
  count: jax.Array


def cross_entropy(logits: jax.Array, action: jax.Array,
                  weight: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """Weighted mean ``-log softmax(logits)[action]`` and accuracy of argmax.

  Args:
    logits: ``[B, A]``.
    action: ``[B]`` int.
    weight: ``[B]`` (0 drops a row).

  Returns:
    ``(loss, accuracy)``, both weighted means over rows.
  """
  chex.assert_rank([logits, action, weight], [2, 1, 1])
  log_probs = jax.nn.log_softmax(logits)
  nll = -jnp.take_along_axis(log_probs, action[:, None].astype(jnp.int32),
                             axis=-1)[:, 0]
  total = jnp.maximum(weight.sum(), 1e-8)
  correct = (jnp.argmax(logits, -1) == action).astype(jnp.float32)
  return (nll * weight).sum() / total, (correct * weight).sum() / total


def unstuck_logits(logits: jax.Array, features: jax.Array,
                   state: StuckState) -> jax.Array:
  """``logits`` with the recently tried actions removed when stuck.

  A row is stuck when its ``features`` equal its features at each of the
  last K recorded steps (and K steps have been recorded this episode); the
  actions of those K steps then get ``-inf`` logits, unless that would
  remove every action.
  """
  k = state.actions.shape[1]
  same = jnp.all(state.features == features[:, None, :], axis=(1, 2))
  stuck = same & (state.count >= k)
  tried = jnp.any(jax.nn.one_hot(state.actions, logits.shape[-1]) > 0,
                  axis=1)
  remove = stuck[:, None] & tried
  keeps_some = jnp.any(~remove, axis=-1, keepdims=True)
  return jnp.where(remove & keeps_some, -jnp.inf, logits)


def make(env_spec: EnvSpec, config) -> Algorithm:
  """Behaviour cloning for ``env_spec`` from ``config`` (configs/bc.py)."""
  net = config.network
  key = net.observation_key
  if key not in env_spec.observation:
    raise ValueError(f'network.observation_key={key!r} is not an observation '
                     f'of this environment; it has '
                     f'{sorted(env_spec.observation)}.')
  spec = env_spec.observation[key]
  num_actions = env_spec.num_actions
  stuck_steps = int(config.stuck_steps)
  if stuck_steps < 0:
    raise ValueError(f'stuck_steps must be >= 0, got {stuck_steps}.')
  size = 1
  for d in spec.shape:
    size *= int(d)
  if not tuple(config.stuck_features):
    overcooked = (str(config.env).startswith('overcooked/') and
                  key == 'FEATURES')
    stuck_index = (jnp.asarray(_OVERCOOKED_SELF_FEATURES) % size
                   if overcooked else jnp.arange(size))
  else:
    index = tuple(int(i) for i in config.stuck_features)
    bad = [i for i in index if not -size <= i < size]
    if bad:
      raise ValueError(f'stuck_features must be indices into the '
                       f'{size} entries of {key!r}, got '
                       f'{tuple(config.stuck_features)!r}.')
    stuck_index = jnp.asarray(index) % size

  def policy(observation):
    x = observation[key]
    if net.get('torso', 'auto') == 'mlp':
      h = MLPTorso(net.mlp_sizes)(x)
    else:
      h = make_torso(key, spec.shape, spec.dtype, net)(x)
    return hk.Linear(num_actions, name='logits')(h)

  transformed = hk.without_apply_rng(hk.transform(policy))
  optimizer = common.make_optimizer(config)

  def logits_of(params, observation):
    return common.mask_logits(transformed.apply(params, observation),
                              observation)

  def init(rng) -> LearnerState:
    obs = {key: jnp.zeros((1,) + tuple(spec.shape), spec.dtype)}
    params = transformed.init(rng, obs)
    return LearnerState(
        params=params, opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        hyperparams={'learning_rate': jnp.asarray(config.learning_rate,
                                                  jnp.float32)},
        extras={})

  def initial_core_state(batch_size: int):
    if not stuck_steps:
      return ()
    return StuckState(
        features=jnp.zeros((batch_size, stuck_steps, stuck_index.shape[0]),
                           jnp.float32),
        actions=jnp.zeros((batch_size, stuck_steps), jnp.int32),
        count=jnp.zeros((batch_size,), jnp.int32))

  def act(params, inputs, core_state, rng, greedy: bool = False):
    logits = logits_of(params, inputs.observation)
    if not stuck_steps:
      action = common.sample_action(logits, rng, greedy)
      return action, ActorExtras(logits=logits), core_state
    x = inputs.observation[key]
    features = x.reshape(x.shape[0], -1)[:, stuck_index].astype(jnp.float32)
    first = inputs.step_type == StepType.FIRST
    state = jax.tree.map(
        lambda s: jnp.where(first.reshape((-1,) + (1,) * (s.ndim - 1)),
                            jnp.zeros_like(s), s), core_state)
    acting_logits = unstuck_logits(logits, features, state)
    action = common.sample_action(acting_logits, rng, greedy)
    new_state = StuckState(
        features=jnp.concatenate([state.features[:, 1:], features[:, None]],
                                 axis=1),
        actions=jnp.concatenate([state.actions[:, 1:], action[:, None]],
                                axis=1),
        count=jnp.minimum(state.count + 1, stuck_steps))
    return action, ActorExtras(logits=acting_logits), new_state

  def loss_fn(params, batch: Batch):
    logits = logits_of(params, batch.observation)
    loss, accuracy = cross_entropy(logits, batch.action, batch.weight)
    return loss, accuracy

  def update(state: LearnerState, batch: Batch):
    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, batch)
    params, opt_state, metrics = common.apply_gradients(optimizer, state,
                                                        grads)
    new_state = state._replace(params=params, opt_state=opt_state,
                               step=state.step + 1)
    return new_state, dict(loss=loss, accuracy=accuracy, **metrics)

  def evaluate(params, batch: Batch):
    loss, accuracy = loss_fn(params, batch)
    return dict(loss=loss, accuracy=accuracy)

  return Algorithm(name='bc', init=init, act=act,
                   initial_core_state=initial_core_state, update=update,
                   replay_table=None, evaluate=evaluate)
