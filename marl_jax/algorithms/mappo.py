"""MAPPO and IPPO: PPO for cooperative multi-agent games.

PPO (Schulman et al., 2017, arXiv:1707.06347) with the multi-agent recipe of
Yu et al. (2022, arXiv:2103.01955): decentralised actors on each agent's own
observation and a critic that reads the privileged ``GLOBAL`` state (MAPPO,
the "centralised critic") or, like the actor, the agent's own observation
(IPPO, de Witt et al., 2020, arXiv:2011.09533).

Batches are IMPALA's ``Trajectory[B, T+1]``: one agent per row, transition
``t`` from step ``t`` to ``t + 1`` with reward ``r_{t+1}`` and discount
``gamma * d_{t+1}``. A transition is *valid* unless it starts on a ``LAST``
step (its action is a placeholder and the next step begins another episode)
or runs into padding. For each sequence:
  * GAE(lambda) (Schulman et al., 2016, arXiv:1506.02438, eq. 16):
    ``A_t = delta_t + gamma d_{t+1} lambda_t A_{t+1}``, with
    ``delta_t = r_{t+1} + gamma d_{t+1} V(x_{t+1}) - V(x_t)`` and the trace
    cut (``lambda_t = 0``) before every invalid transition, so a terminated
    episode (``d = 0``) ends with ``r - V`` and a truncated one (``d = 1``)
    bootstraps from ``V`` of its ``LAST`` step; nothing crosses into the next
    episode. Returns are ``A_t + V(x_t)``.
  * The clipped surrogate (PPO eq. 7), ``rlax.clipped_surrogate_pg_loss``, on
    ratios ``pi(a_t|x_t) / mu(a_t|x_t)`` where ``mu`` is the policy that acted
    (``behaviour_logits``).
  * The value loss ``0.5 max((V - R)^2, (V_clip - R)^2)`` with
    ``V_clip = V_old + clip(V - V_old, -eps_v, eps_v)`` (value clipping, Yu et
    al. Sec. 4), ``V_old`` the critic's output before this update.
  * An entropy bonus, ``entropy_cost`` (a PBT-tunable hyperparameter).
Every term is a mean over valid transitions; invalid ones and padding
contribute nothing (their advantages, targets and weights are zeroed).

One call of ``update`` runs ``num_epochs`` passes over the batch, each split
into ``num_minibatches`` minibatches of whole sequences (so recurrent networks
unroll from each sequence's stored initial state), shuffled with a key kept in
``LearnerState.extras['rng']`` -- all inside one ``lax.scan``.

Options:
  * ``value_normalization='running'``: the critic predicts normalised values;
    returns are normalised with a debiased running mean/std of the returns
    (Yu et al.'s "ValueNorm"), updated once per ``update``.
  * ``network.core='gru'|'lstm'``: recurrent actor and critic.
  * ``use_agent_id``: append the ``AGENT_ID`` one-hot to both networks' inputs
    (parameter sharing with agent ids; add ``env_wrappers=('agent_id',)``).
  * ``share_parameters=False``: separate parameters per agent slot. Every
    parameter gets a leading ``[num_agents]`` axis and each row uses the slice
    picked by its ``AGENT_ID`` one-hot. This keeps the contract unchanged:
    ``act`` and ``update`` still see per-agent rows of one member, the runtime
    needs no slot bookkeeping, and each member is still one pytree of params
    (so population vmapping, PBT and checkpoints work as they are). Mapping
    fixed population members to fixed slots would instead tie matchmaking to
    slots and mix two meanings of "member".
  * ``ACTION_MASK`` observations (when the environment has them) mask
    unavailable actions' logits when acting and learning.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import rlax

from marl_jax.algorithms import common
from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState
from marl_jax.networks.mappo import make_ppo_network
from marl_jax.types import EnvSpec, StepType, Trajectory

AGENT_ID = 'AGENT_ID'
GLOBAL = 'GLOBAL'


class GAEOutput(NamedTuple):
  advantages: jax.Array  # [T]
  returns: jax.Array  # [T] advantages + values[:-1]
  valid: jax.Array  # [T] 1.0 for valid transitions


def gae(rewards: jax.Array, discounts: jax.Array, step_types: jax.Array,
        mask: jax.Array, values: jax.Array, *, discount: float,
        lambda_: float) -> GAEOutput:
  """GAE(lambda) advantages and returns of one ``[T+1]`` sequence.

  See the module docstring for the treatment of episode boundaries.

  Args:
    rewards: ``[T+1]``, ``rewards[t]`` arrived with step ``t``.
    discounts: ``[T+1]`` environment discounts, as rewards.
    step_types: ``[T+1]``.
    mask: ``[T+1]`` 1 for real steps, 0 for padding.
    values: ``[T+1]`` value estimates ``V(x_t)`` (unnormalised).
    discount: gamma.
    lambda_: GAE's lambda.
  """
  chex.assert_rank([rewards, discounts, step_types, mask, values], 1)
  chex.assert_equal_shape([rewards, discounts, step_types, mask, values])
  valid = common.valid_transitions(step_types, mask)
  r_t = rewards[1:].astype(jnp.float32) * valid
  discount_t = discount * discounts[1:].astype(jnp.float32) * valid
  # lambda_t multiplies A_{t+1}: cut the trace before an invalid transition.
  lambda_t = lambda_ * jnp.concatenate([valid[1:], jnp.ones((1,))])
  values = jax.lax.stop_gradient(values.astype(jnp.float32))
  adv = rlax.truncated_generalized_advantage_estimation(
      r_t, discount_t, lambda_t, values)
  adv = adv * valid
  return GAEOutput(adv, (adv + values[:-1]) * valid, valid)


class PPOLossOutput(NamedTuple):
  """Means over valid transitions."""
  pg_loss: jax.Array
  value_loss: jax.Array
  entropy: jax.Array
  approx_kl: jax.Array  # E[log mu(a) - log pi(a)]
  clip_fraction: jax.Array  # fraction of ratios outside [1 - eps, 1 + eps]


def ppo_loss(logits: jax.Array, values: jax.Array, behaviour_logits: jax.Array,
             old_values: jax.Array, actions: jax.Array, advantages: jax.Array,
             value_targets: jax.Array, valid: jax.Array, *, clip_epsilon: float,
             value_clip_epsilon: float) -> PPOLossOutput:
  """PPO's clipped policy loss and clipped value loss over ``[N]`` transitions.

  Args:
    logits: ``[N, A]`` the learner's policy logits.
    values: ``[N]`` the learner's values (in the critic's output space).
    behaviour_logits: ``[N, A]`` logits of the policy that acted.
    old_values: ``[N]`` the critic's outputs before this update.
    actions: ``[N]`` actions taken.
    advantages: ``[N]`` advantage estimates.
    value_targets: ``[N]`` value targets (in the critic's output space).
    valid: ``[N]`` 1 for transitions that count, 0 otherwise.
    clip_epsilon: PPO's epsilon.
    value_clip_epsilon: clip range of the value change; <= 0 turns value
      clipping off.
  """
  chex.assert_rank([logits, values, behaviour_logits, old_values, actions,
                    advantages, value_targets, valid], [2, 1, 2, 1, 1, 1, 1, 1])
  chex.assert_equal_shape([logits, behaviour_logits])
  valid = valid.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(valid), 1.)
  log_pi = jax.nn.log_softmax(logits)
  log_mu = jax.nn.log_softmax(behaviour_logits)
  log_pi_a = jnp.take_along_axis(log_pi, actions[:, None], axis=-1)[:, 0]
  log_mu_a = jnp.take_along_axis(log_mu, actions[:, None], axis=-1)[:, 0]
  log_ratio = (log_pi_a - jax.lax.stop_gradient(log_mu_a)) * valid
  ratio = jnp.exp(log_ratio)
  # rlax's loss is a mean over all N; zero advantages make invalid terms 0.
  pg_loss = rlax.clipped_surrogate_pg_loss(
      ratio, advantages * valid, clip_epsilon) * valid.size / n

  if value_clip_epsilon > 0:
    clipped = old_values + jnp.clip(values - old_values, -value_clip_epsilon,
                                    value_clip_epsilon)
    err = jnp.maximum(jnp.square(values - value_targets),
                      jnp.square(clipped - value_targets))
  else:
    err = jnp.square(values - value_targets)
  value_loss = 0.5 * jnp.sum(valid * err) / n
  entropy = jnp.sum(valid * -jnp.sum(jnp.exp(log_pi) * log_pi, -1)) / n
  approx_kl = jnp.sum(valid * -log_ratio) / n
  clip_fraction = jnp.sum(
      valid * (jnp.abs(ratio - 1.) > clip_epsilon)) / n
  return PPOLossOutput(pg_loss, value_loss, entropy,
                       jax.lax.stop_gradient(approx_kl),
                       jax.lax.stop_gradient(clip_fraction))


class ValueNormState(NamedTuple):
  """Debiased exponential moving averages of returns and squared returns."""
  mean: jax.Array
  mean_sq: jax.Array
  debias: jax.Array


def value_norm_init() -> ValueNormState:
  zero = jnp.zeros((), jnp.float32)
  return ValueNormState(zero, zero, zero)


def value_norm_stats(state: ValueNormState, min_var: float = 1e-2):
  """``(mean, std)``; ``(0, 1)`` before the first update."""
  d = jnp.maximum(state.debias, 1e-5)
  started = state.debias > 0
  mean = jnp.where(started, state.mean / d, 0.)
  var = jnp.maximum(state.mean_sq / d - jnp.square(mean), min_var)
  return mean, jnp.where(started, jnp.sqrt(var), 1.)


def value_norm_update(state: ValueNormState, x: jax.Array, weights: jax.Array,
                      beta: float) -> ValueNormState:
  """Moves the averages towards the weighted batch mean of ``x`` and ``x^2``."""
  w = weights.astype(jnp.float32)
  n = jnp.sum(w)
  has = n > 0
  m = jnp.sum(w * x) / jnp.maximum(n, 1.)
  m2 = jnp.sum(w * jnp.square(x)) / jnp.maximum(n, 1.)
  upd = lambda old, new: jnp.where(has, beta * old + (1. - beta) * new, old)
  return ValueNormState(upd(state.mean, m), upd(state.mean_sq, m2),
                        upd(state.debias, 1.))


# The names ``algorithms.make`` builds with this module (more than one:
# ``make`` takes the name as ``variant``), and per name the config key that
# names the privileged observation it reads (a GLOBAL the env may lack).
NAMES = ('mappo', 'ippo')
GLOBAL_STATE_KEYS = {'mappo': 'critic_observation_key'}


def make(env_spec: EnvSpec, config, variant: str = 'mappo') -> Algorithm:
  """Builds MAPPO (``variant='mappo'``) or IPPO from an ml_collections config."""
  if variant not in ('mappo', 'ippo'):
    raise ValueError(f'variant must be mappo or ippo, got {variant!r}.')
  for key in ('num_epochs', 'num_minibatches'):
    if int(config[key]) <= 0:
      raise ValueError(f'{key} must be positive, got {config[key]}.')
  if config.batch_size % config.num_minibatches:
    raise ValueError(f'batch_size ({config.batch_size}) must be divisible by '
                     f'num_minibatches ({config.num_minibatches}).')
  if config.value_normalization not in ('none', 'running'):
    raise ValueError('value_normalization must be "none" or "running", got '
                     f'{config.value_normalization!r}.')
  shared = bool(config.share_parameters)
  if not shared and AGENT_ID not in env_spec.observation:
    raise ValueError('share_parameters=False picks each row\'s parameters by '
                     'its AGENT_ID observation; add '
                     '--config.env_wrappers=agent_id.')
  extra_keys = (AGENT_ID,) if (config.use_agent_id and shared) else ()
  critic_key = (config.critic_observation_key if variant == 'mappo' else
                config.network.observation_key)
  network = make_ppo_network(env_spec, config.network, critic_key, extra_keys)
  optimizer = common.make_optimizer(config)
  num_agents = env_spec.num_agents
  running_norm = config.value_normalization == 'running'

  def net_init(key):
    if shared:
      return network.init(key)
    return jax.vmap(network.init)(jax.random.split(key, num_agents))

  def step(params, observation, step_type, core_state):
    if shared:
      return network.step(params, observation, step_type, core_state)
    slot = jnp.argmax(observation[AGENT_ID], axis=-1)
    rows = jax.tree.map(lambda p: p[slot], params)
    add = lambda x: x[:, None]
    out, core = jax.vmap(network.step)(
        rows, jax.tree.map(add, observation), add(step_type),
        jax.tree.map(add, core_state))
    return jax.tree.map(lambda x: x[:, 0], (out, core))

  def unroll(params, observation, step_type, core_state):
    """Time-major ``[T, B]`` inputs."""
    if shared:
      return network.unroll(params, observation, step_type, core_state)
    slot = jnp.argmax(observation[AGENT_ID][0], axis=-1)
    rows = jax.tree.map(lambda p: p[slot], params)
    out, core = jax.vmap(network.unroll, in_axes=(0, 1, 1, 0),
                         out_axes=(1, 0))(
        rows, jax.tree.map(lambda x: x[:, :, None], observation),
        step_type[:, :, None], jax.tree.map(lambda x: x[:, None], core_state))
    return (jax.tree.map(lambda x: x[:, :, 0], out),
            jax.tree.map(lambda x: x[:, 0], core))

  def init(key) -> LearnerState:
    net_key, rng = jax.random.split(key)
    extras = {'rng': rng}
    if running_norm:
      extras['value_norm'] = value_norm_init()
    return common.initial_learner_state(net_init(net_key), optimizer, config,
                                        extras)

  def act(params, inputs, core_state, key, greedy: bool = False):
    (logits, _), core_state = step(params, inputs.observation,
                                   inputs.step_type, core_state)
    logits = common.mask_logits(logits, inputs.observation)
    return (common.sample_action(logits, key, greedy),
            ActorExtras(logits=logits), core_state)

  def forward(params, batch: Trajectory):
    """Batch-major ``(logits [B, T+1, A], values [B, T+1])``."""
    tm = lambda x: jnp.swapaxes(x, 0, 1)
    observation = jax.tree.map(tm, dict(batch.observation))
    (logits, values), _ = unroll(params, observation, tm(batch.step_type),
                                 batch.core_state)
    logits = common.mask_logits(logits, observation)
    return tm(logits), tm(values)

  def minibatch_loss(params, mb, entropy_cost):
    batch, adv, targets, old_values, valid = mb
    logits, values = forward(params, batch)
    flat = lambda x: x[:, :-1].reshape((-1,) + x.shape[2:])
    out = ppo_loss(flat(logits), flat(values), flat(batch.behaviour_logits),
                   old_values.reshape(-1), flat(batch.action),
                   adv.reshape(-1), targets.reshape(-1), valid.reshape(-1),
                   clip_epsilon=config.clip_epsilon,
                   value_clip_epsilon=config.value_clip_epsilon)
    loss = (out.pg_loss + config.value_cost * out.value_loss -
            entropy_cost * out.entropy)
    return loss, dict(loss=loss, pg_loss=out.pg_loss,
                      value_loss=out.value_loss, entropy=out.entropy,
                      approx_kl=out.approx_kl, clip_fraction=out.clip_fraction)

  def update(state: LearnerState, batch: Trajectory):
    chex.assert_rank(batch.action, 2)
    chex.assert_equal_shape([batch.action, batch.reward, batch.discount,
                             batch.step_type, batch.mask])
    B = batch.action.shape[0]
    nm = int(config.num_minibatches)
    if B % nm:
      raise ValueError(f'The batch of {B} sequences cannot be split into '
                       f'num_minibatches={nm}.')
    _, values = forward(state.params, batch)
    values = jax.lax.stop_gradient(values)
    extras = dict(state.extras)
    if running_norm:
      mean, std = value_norm_stats(extras['value_norm'])
    else:
      mean, std = 0., 1.
    out = jax.vmap(lambda r, d, s, m, v: gae(
        r, d, s, m, v, discount=config.discount, lambda_=config.gae_lambda))(
            batch.reward, batch.discount, batch.step_type, batch.mask,
            values * std + mean)
    valid = out.valid
    n = jnp.maximum(jnp.sum(valid), 1.)
    values_unnormalised = values[:, :-1] * std + mean
    if running_norm:
      extras['value_norm'] = value_norm_update(
          extras['value_norm'], out.returns, valid, config.value_norm_beta)
      mean, std = value_norm_stats(extras['value_norm'])
    targets = (out.returns - mean) / std * valid
    adv = out.advantages
    if config.normalize_advantages:
      adv_mean = jnp.sum(adv * valid) / n
      adv_std = jnp.sqrt(jnp.sum(valid * jnp.square(adv - adv_mean)) / n)
      adv = (adv - adv_mean) / (adv_std + 1e-8) * valid
    data = jax.tree.map(jnp.asarray,
                        (batch, adv, targets, values[:, :-1], valid))

    rng, epoch_key = jax.random.split(extras['rng'])
    extras['rng'] = rng
    entropy_cost = state.hyperparams['entropy_cost']

    def minibatch_step(carry, idx):
      params, opt_state = carry
      mb = jax.tree.map(lambda x: x[idx], data)
      grads, metrics = jax.grad(minibatch_loss, has_aux=True)(
          params, mb, entropy_cost)
      params, opt_state, opt_metrics = common.apply_gradients(
          optimizer, state._replace(params=params, opt_state=opt_state), grads)
      metrics.update(opt_metrics)
      return (params, opt_state), metrics

    def epoch(carry, key):
      order = jax.random.permutation(key, B).reshape(nm, B // nm)
      return jax.lax.scan(minibatch_step, carry, order)

    (params, opt_state), metrics = jax.lax.scan(
        epoch, (state.params, state.opt_state),
        jax.random.split(epoch_key, int(config.num_epochs)))
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics['advantage_mean'] = jnp.sum(out.advantages * valid) / n
    metrics['return_mean'] = jnp.sum(out.returns * valid) / n
    metrics['value_mean'] = jnp.sum(values_unnormalised * valid) / n
    metrics['valid_fraction'] = n / valid.size
    return LearnerState(params=params, opt_state=opt_state,
                        step=state.step + 1, hyperparams=state.hyperparams,
                        extras=extras), metrics

  return Algorithm(name=variant, init=init, act=act,
                   initial_core_state=network.initial_state, update=update,
                   replay_table=common.sequence_table(config))


__all__ = ['GAEOutput', 'PPOLossOutput', 'ValueNormState', 'gae', 'make',
           'ppo_loss', 'value_norm_init',
           'value_norm_stats', 'value_norm_update']
