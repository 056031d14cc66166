"""What several algorithms share: optimiser, learner-state and acting helpers,
the validity of transitions, action masks and the sequence table.

Algorithms import these from here rather than from one another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from marl_jax.algorithms.base import LearnerState
from marl_jax.networks import AgentInput
from marl_jax.replay.table import TableSpec
from marl_jax.types import StepType, Trajectory

ACTION_MASK = 'ACTION_MASK'
_MASKED_LOGIT = -1e9


def _time_major(x):
  return jnp.swapaxes(x, 0, 1)


def time_major_inputs(batch: Trajectory) -> AgentInput:
  """The network inputs of a ``[B, T+1]`` batch, time-major ``[T+1, B]``."""
  return AgentInput(
      observation=jax.tree.map(_time_major, dict(batch.observation)),
      prev_action=_time_major(batch.prev_action),
      prev_reward=_time_major(batch.prev_reward),
      step_type=_time_major(batch.step_type))


def apply_gradients(optimizer, state: LearnerState, grads):
  """Clip/scale ``grads`` with ``optimizer``, step by the member's own
  learning rate; returns ``(params, opt_state, metrics)``."""
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  lr = state.hyperparams['learning_rate']
  params = optax.apply_updates(
      state.params, jax.tree.map(lambda u: -lr * u, updates))
  return params, opt_state, {'grad_norm': optax.tree.norm(grads),
                             'learning_rate': lr}


def make_optimizer(config) -> optax.GradientTransformation:
  """Gradient clipping then RMSProp (as in the paper) or Adam; no step size.

  The (per-member) learning rate is applied by ``update`` so that population
  based training can change it without touching the optimiser state.
  """
  clip = optax.clip_by_global_norm(config.max_grad_norm)
  if config.optimizer == 'rmsprop':
    scale = optax.scale_by_rms(decay=config.rmsprop_decay,
                               eps=config.optimizer_eps)
    if config.rmsprop_momentum:
      scale = optax.chain(scale, optax.trace(decay=config.rmsprop_momentum))
  elif config.optimizer == 'adam':
    scale = optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2,
                                eps=config.optimizer_eps)
  else:
    raise ValueError(f'config.optimizer must be "rmsprop" or "adam", got '
                     f'{config.optimizer!r}.')
  return optax.chain(clip, scale)


def sequence_table(config) -> TableSpec:
  """The queue of fixed-length sequences that on-policy learners (IMPALA,
  OPRE, MAPPO/IPPO) read: each sequence sampled once, in order."""
  return TableSpec(sampler='fifo', item='sequence',
                   sequence_length=config.sequence_length,
                   batch_size=config.batch_size,
                   max_size=config.replay_max_size).validate()


def initial_learner_state(params, optimizer, config, extras=None
                          ) -> LearnerState:
  """Step 0, with the member's PBT-tunable hyperparameters from config."""
  return LearnerState(
      params=params, opt_state=optimizer.init(params),
      step=jnp.zeros((), jnp.int32),
      hyperparams={
          'learning_rate': jnp.asarray(config.learning_rate, jnp.float32),
          'entropy_cost': jnp.asarray(config.entropy_cost, jnp.float32)},
      extras=extras or {})


def sample_action(logits, key, greedy: bool):
  """argmax when greedy, else a sample; int32."""
  if greedy:
    action = jnp.argmax(logits, axis=-1)
  else:
    action = jax.random.categorical(key, logits)
  return action.astype(jnp.int32)


def valid_transitions(step_types: jax.Array, mask: jax.Array) -> jax.Array:
  """``[T+1] -> [T]``: transition t is valid iff step t+1 is real and step t
  is not ``LAST``."""
  return (mask[1:] * (step_types[:-1] != StepType.LAST)).astype(jnp.float32)


def mask_logits(logits: jax.Array, observation) -> jax.Array:
  """Logits of unavailable actions (``ACTION_MASK`` 0) pushed to -1e9, so that
  they are never sampled nor chosen greedily; unchanged without a mask."""
  if ACTION_MASK not in observation:
    return logits
  return jnp.where(observation[ACTION_MASK] > 0, logits, _MASKED_LOGIT)
