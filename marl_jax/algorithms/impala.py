"""IMPALA: V-trace actor-critic (Espeholt et al., 2018, arXiv:1802.01561).

The loss for one sequence of ``T + 1`` time steps (see ``types.Trajectory``):
transition ``t`` goes from step ``t`` to step ``t + 1`` with reward
``r_{t+1}`` and discount ``gamma * d_{t+1}``. V-trace targets ``v_s`` (eq. 1 of
the paper) and policy-gradient advantages ``rho_s (r_s + gamma v_{s+1} - V(x_s))``
(section 4.2) come from ``rlax.vtrace_td_error_and_advantage``.

A transition is *invalid* if it starts on a ``LAST`` step (its action is a
placeholder and the next step begins another episode) or runs into padding.
Invalid transitions get importance weight 0, which cuts the V-trace recursion
there (so the value of a ``LAST`` step is its own estimate: truncated episodes
bootstrap, terminated ones have discount 0), and they are masked out of every
loss term. Losses are means over the valid transitions of the whole batch.

Optional PopArt (van Hasselt et al., 2016; Hessel et al., 2019): the value head
predicts normalised values; statistics are updated from the V-trace targets of
valid transitions only (``popart_update``) and the value layer is rescaled to
preserve its outputs.

Action masks: where the observation has an ``ACTION_MASK`` (1 = available),
unavailable actions' logits are masked (``common.mask_logits``) both when
acting (never sampled nor chosen greedily) and in the learner's policy, so the
policy gradient, entropy and KL only see available actions.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
import rlax

from marl_jax.algorithms import common
from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState
from marl_jax.networks import AgentInput, make_actor_critic
from marl_jax.types import EnvSpec, StepType, Trajectory


class VTraceLossOutput(NamedTuple):
  """Per-sequence sums (divide by ``num_valid`` for means)."""
  pg_loss: jax.Array
  baseline_loss: jax.Array
  entropy: jax.Array
  num_valid: jax.Array
  vs_targets: jax.Array  # [T] V-trace targets (unnormalised)
  valid: jax.Array  # [T] 1.0 for valid transitions
  rho: jax.Array  # [T] unclipped importance ratios pi/mu (0 where invalid)
  kl: jax.Array  # sum over valid t of KL(mu_t || pi_t)


def vtrace_sequence_loss(
    logits: jax.Array,
    values: jax.Array,
    behaviour_logits: jax.Array,
    actions: jax.Array,
    rewards: jax.Array,
    discounts: jax.Array,
    step_types: jax.Array,
    mask: jax.Array,
    *,
    discount: float,
    lambda_: float = 1.0,
    clip_rho_threshold: float = 1.0,
    clip_pg_rho_threshold: float = 1.0,
    value_scale: jax.Array | float = 1.0,
    value_shift: jax.Array | float = 0.0,
) -> VTraceLossOutput:
  """V-trace policy-gradient and baseline terms of one ``[T+1]`` sequence.

  Args:
    logits: ``[T+1, A]`` learner policy logits.
    values: ``[T+1]`` learner value estimates (normalised if PopArt is used).
    behaviour_logits: ``[T+1, A]`` logits of the policy that acted.
    actions: ``[T+1]`` int actions taken.
    rewards: ``[T+1]`` rewards, ``rewards[t]`` arrived with step ``t``.
    discounts: ``[T+1]`` environment discounts, as rewards.
    step_types: ``[T+1]`` ``StepType`` of each step.
    mask: ``[T+1]`` 1 for real steps, 0 for padding.
    discount: the agent's discount factor gamma.
    lambda_: V-trace's lambda (trace-cutting mixture).
    clip_rho_threshold: rho-bar of the paper (targets).
    clip_pg_rho_threshold: rho-bar for the policy-gradient advantage.
    value_scale: PopArt scale sigma (values are ``sigma * v + mu``).
    value_shift: PopArt shift mu.

  Returns:
    A ``VTraceLossOutput`` of per-sequence sums.
  """
  chex.assert_rank([logits, values, behaviour_logits, actions], [2, 1, 2, 1])
  chex.assert_equal_shape([logits, behaviour_logits])
  chex.assert_equal_shape([values, actions, rewards, discounts, step_types,
                           mask])
  mask = mask.astype(jnp.float32)
  valid = (mask[1:] * (step_types[:-1] != StepType.LAST)).astype(jnp.float32)
  unnormalised = values * value_scale + value_shift
  v_tm1, v_t = unnormalised[:-1], unnormalised[1:]
  r_t = rewards[1:].astype(jnp.float32) * valid
  discount_t = discount * discounts[1:].astype(jnp.float32) * valid

  log_pi = jax.nn.log_softmax(logits[:-1])
  log_mu = jax.nn.log_softmax(behaviour_logits[:-1])
  a_tm1 = actions[:-1]
  log_pi_a = jnp.take_along_axis(log_pi, a_tm1[:, None], axis=-1)[:, 0]
  log_mu_a = jnp.take_along_axis(log_mu, a_tm1[:, None], axis=-1)[:, 0]
  rho_tm1 = jnp.exp(jax.lax.stop_gradient(log_pi_a) - log_mu_a) * valid

  vt = rlax.vtrace_td_error_and_advantage(
      jax.lax.stop_gradient(v_tm1), jax.lax.stop_gradient(v_t), r_t,
      discount_t, rho_tm1, lambda_, clip_rho_threshold, clip_pg_rho_threshold)
  vs = vt.errors + jax.lax.stop_gradient(v_tm1)

  # Policy gradient on (PopArt-normalised) advantages.
  advantages = jax.lax.stop_gradient(vt.pg_advantage / value_scale)
  pg_loss = -jnp.sum(valid * log_pi_a * advantages)
  # Baseline regression towards (normalised) V-trace targets.
  normalised_targets = jax.lax.stop_gradient((vs - value_shift) / value_scale)
  baseline_loss = 0.5 * jnp.sum(valid * jnp.square(normalised_targets -
                                                    values[:-1]))
  pi = jnp.exp(log_pi)
  entropy = jnp.sum(valid * -jnp.sum(pi * log_pi, axis=-1))
  mu = jnp.exp(log_mu)
  kl = jnp.sum(valid * jnp.sum(mu * (log_mu - jax.lax.stop_gradient(log_pi)),
                               axis=-1))
  return VTraceLossOutput(pg_loss, baseline_loss, entropy, jnp.sum(valid), vs,
                          valid, rho_tm1, kl)


def popart_update(state: rlax.PopArtState, targets: jax.Array,
                  valid: jax.Array, *, step_size: float, scale_lb: float,
                  scale_ub: float) -> rlax.PopArtState:
  """PopArt's statistics moved towards the valid targets' moments.

  van Hasselt et al. (2016), "Learning values across many orders of
  magnitude", arXiv:1602.07714, Algorithm 1, with the batch's moments over
  valid transitions only (weights ``valid``):
      mu'  = mu  + beta (sum_i v_i G_i / sum_i v_i - mu),
      nu'  = nu  + beta (sum_i v_i G_i^2 / sum_i v_i - nu),
      sigma' = sqrt(clip(nu' - mu'^2, scale_lb^2, scale_ub^2)),
  and ``beta = step_size`` (0 when no transition is valid, so the statistics
  stay where they are). Invalid targets are never read (``jnp.where``), so
  whatever they hold (even inf or NaN) cannot reach the statistics.

  Args:
    state: ``rlax.PopArtState`` with ``[1]`` arrays.
    targets: unnormalised targets, any shape.
    valid: 1.0 for valid targets, 0.0 otherwise; same shape as ``targets``.
    step_size: beta.
    scale_lb: lower bound of sigma.
    scale_ub: upper bound of sigma.

  Returns:
    The new ``rlax.PopArtState`` (no gradient flows through it).
  """
  chex.assert_equal_shape([targets, valid])
  valid = valid.astype(jnp.float32) > 0
  w = valid.astype(jnp.float32)
  n = jnp.sum(w)
  targets = jnp.where(valid, targets.astype(jnp.float32), 0.)
  mean = jnp.sum(w * targets) / jnp.maximum(n, 1.)
  second = jnp.sum(w * jnp.square(targets)) / jnp.maximum(n, 1.)
  beta = jnp.where(n > 0, step_size, 0.)
  shift = state.shift + beta * (mean - state.shift)
  second_moment = state.second_moment + beta * (second - state.second_moment)
  scale = jnp.sqrt(jnp.clip(second_moment - jnp.square(shift),
                            scale_lb ** 2, scale_ub ** 2))
  return jax.tree.map(jax.lax.stop_gradient,
                      rlax.PopArtState(shift, scale, second_moment))


# The names ``algorithms.make`` builds with this module (more than one:
# ``make`` takes the name as ``variant``), and per name the config key that
# names the privileged observation it reads (a GLOBAL the env may lack).
NAMES = ('impala',)
GLOBAL_STATE_KEYS = {}


def make(env_spec: EnvSpec, config) -> Algorithm:
  """Builds IMPALA for ``env_spec`` from an ml_collections ``config``."""
  network = make_actor_critic(env_spec, config.network)
  optimizer = common.make_optimizer(config)
  value_head = network.value_head_name
  use_popart = bool(config.popart)
  popart_init, _ = rlax.popart(
      num_outputs=1, step_size=config.popart_step_size,
      scale_lb=config.popart_scale_lb, scale_ub=config.popart_scale_ub)

  def init(key) -> LearnerState:
    params = network.init(key)
    extras = {}
    if use_popart:
      extras['popart'] = popart_init()
    return common.initial_learner_state(params, optimizer, config, extras)

  def act(params, inputs: AgentInput, core_state, key, greedy: bool = False):
    (logits, _), core_state = network.step(params, inputs, core_state)
    logits = common.mask_logits(logits, inputs.observation)
    return (common.sample_action(logits, key, greedy), ActorExtras(logits=logits),
            core_state)

  def loss_fn(params, popart_state, batch: Trajectory, entropy_cost):
    inputs = common.time_major_inputs(batch)
    (logits, values), _ = network.unroll(params, inputs, batch.core_state)
    logits, values = jnp.swapaxes(logits, 0, 1), jnp.swapaxes(values, 0, 1)
    logits = common.mask_logits(logits, batch.observation)  # [B, T+1, A]
    if popart_state is not None:
      scale, shift = popart_state.scale[0], popart_state.shift[0]
    else:
      scale, shift = 1.0, 0.0
    out = jax.vmap(lambda *xs: vtrace_sequence_loss(
        *xs, discount=config.discount, lambda_=config.vtrace_lambda,
        clip_rho_threshold=config.clip_rho_threshold,
        clip_pg_rho_threshold=config.clip_pg_rho_threshold,
        value_scale=scale, value_shift=shift))(
            logits, values, batch.behaviour_logits, batch.action,
            batch.reward, batch.discount, batch.step_type, batch.mask)
    n = jnp.maximum(jnp.sum(out.num_valid), 1.)
    pg_loss = jnp.sum(out.pg_loss) / n
    baseline_loss = jnp.sum(out.baseline_loss) / n
    entropy = jnp.sum(out.entropy) / n
    loss = (pg_loss + config.baseline_cost * baseline_loss -
            entropy_cost * entropy)
    metrics = {
        'loss': loss, 'pg_loss': pg_loss, 'baseline_loss': baseline_loss,
        'entropy': entropy,
        'importance_ratio': jnp.sum(out.rho) / n,
        'kl_behaviour_learner': jnp.sum(out.kl) / n,
        'value_mean': jnp.sum(out.valid * (values[:, :-1] * scale + shift)) / n,
        'valid_fraction': n / out.valid.size,
    }
    return loss, (metrics, out.vs_targets, out.valid)

  def update(state: LearnerState, batch: Trajectory):
    chex.assert_rank(batch.action, 2)
    chex.assert_equal_shape([batch.action, batch.reward, batch.discount,
                             batch.step_type, batch.mask])
    popart_state = state.extras.get('popart')
    grads, (metrics, vs, valid) = jax.grad(loss_fn, has_aux=True)(
        state.params, popart_state, batch, state.hyperparams['entropy_cost'])
    params, opt_state, opt_metrics = common.apply_gradients(optimizer, state, grads)
    metrics.update(opt_metrics)
    extras = dict(state.extras)
    if popart_state is not None:
      new_popart = popart_update(
          popart_state, vs, valid, step_size=config.popart_step_size,
          scale_lb=config.popart_scale_lb, scale_ub=config.popart_scale_ub)
      params = dict(params)
      params[value_head] = rlax.pop(params[value_head], popart_state,
                                    new_popart)
      extras['popart'] = new_popart
      metrics['popart_scale'] = new_popart.scale[0]
      metrics['popart_shift'] = new_popart.shift[0]
    new_state = LearnerState(params=params, opt_state=opt_state,
                             step=state.step + 1,
                             hyperparams=state.hyperparams, extras=extras)
    return new_state, metrics

  return Algorithm(name='impala', init=init, act=act,
                   initial_core_state=network.initial_state, update=update,
                   replay_table=common.sequence_table(config))


__all__ = ['VTraceLossOutput', 'make', 'popart_update', 'vtrace_sequence_loss']
