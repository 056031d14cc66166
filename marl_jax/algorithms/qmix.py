"""QMIX and VDN: value decomposition for cooperative agents.

QMIX (Rashid et al., 2018, arXiv:1803.11485) and VDN (Sunehag et al., 2018,
arXiv:1706.05296), with the recipe of PyMARL2 (Hu et al., 2021, "Rethinking
the Implementation Tricks and Monotonicity Constraint in Cooperative
Multi-Agent Reinforcement Learning", arXiv:2102.03479) as options with its
defaults: Adam (lr 1e-3), TD(lambda) targets with lambda 0.6, batches of 128
episodes, double Q-learning with a target network, epsilon-greedy decaying
linearly from 1.0 to 0.05.

Batches are whole episodes of all agents together, ``EpisodeBatch[B, T+1,
N]`` (``replay_table.joint``). Transition ``t`` (step ``t`` to ``t + 1``) is
valid unless step ``t`` is ``LAST`` or step ``t + 1`` is padding. With the
team reward ``r_{t+1}`` (the mean of the agents' rewards; cooperative games
give them all the same), the target is the lambda-return (Sutton & Barto,
eq. 12.3; ``rlax.lambda_returns``)
    G_t = r_{t+1} + gamma d_{t+1} [(1 - lambda) V_{t+1} + lambda G_{t+1}],
    V_{t+1} = Q_tot^-(s_{t+1}, argmax_a Q_i(o^i_{t+1}, a))   (double Q)
with the target network ``^-`` (or its own argmax when ``double_q=False``),
the argmax over available actions (``ACTION_MASK``), and lambda cut to 0
before invalid transitions so nothing crosses an episode's end: a terminated
episode (``d = 0``) ends with ``r``, a truncated one bootstraps from its
``LAST`` step. The loss (``td_loss``) is the mean over valid transitions of
``0.5 w_b (Q_tot(s_t, a_t) - G_t)^2``, ``w_b`` the episode's
prioritized-replay importance weight: PyMARL2's scale, so that its
``grad_norm_clip`` (10) clips the same gradients here. ``update`` returns
each episode's new priority, its mean absolute TD error, as ``metrics['priorities']`` (``[B]``; the replay applies
it, as in Schaul et al., 2016).

Exploration: ``act`` is epsilon-greedy with ``params['epsilon']``. The
schedule lives in pure code: ``Algorithm.acting_params(params, env_steps)``
adds ``epsilon = linear(env_steps)`` (``epsilon_start`` -> ``epsilon_finish``
over ``epsilon_anneal_steps`` environment steps) to the learner's params, and
the runtime calls it with its env-step count before acting. Without it (e.g.
evaluation), ``act`` uses ``epsilon_finish``; ``greedy=True`` uses none.

Options: ``target_update='hard'`` (copy every ``target_update_interval``
updates) or ``'soft'`` (Polyak, ``target_tau``); ``reward_scale`` (team
rewards times a constant, as SMAC scales its rewards to a maximum return of
20 and JaxMARL's QMIX multiplies SMAX's by 10); ``standardise_rewards``
(running mean/std of the scaled team rewards in ``extras``);
``lr_schedule='cosine'``;
the mixer's depth and layer norm (``networks/qmix.py``).
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
from marl_jax.networks.actor_critic import AgentInput
from marl_jax.networks.qmix import make_mixer, make_q_network
from marl_jax.replay.table import TableSpec
from marl_jax.types import EnvSpec, EpisodeBatch

ACTION_MASK = common.ACTION_MASK
# joint_rollout -> the replay item: whole padded episodes (PyMARL2) or
# fixed-length chunks through resets (JaxMARL; the anakin runtime only).
JOINT_ROLLOUTS = {'episodes': 'episode', 'chunks': 'chunk'}
_UNAVAILABLE = -1e9


def epsilon_schedule(config) -> optax.Schedule:
  """Linear ``epsilon_start -> epsilon_finish`` over ``epsilon_anneal_steps``
  env steps, constant after."""
  return optax.linear_schedule(config.epsilon_start, config.epsilon_finish,
                               max(int(config.epsilon_anneal_steps), 1))


def masked_q(q: jax.Array, observation) -> jax.Array:
  """Unavailable actions (``ACTION_MASK`` 0) get a very low value."""
  if ACTION_MASK not in observation:
    return q
  return jnp.where(observation[ACTION_MASK] > 0, q, _UNAVAILABLE)


def td_lambda_targets(rewards: jax.Array, discounts: jax.Array,
                      step_types: jax.Array, mask: jax.Array,
                      next_values: jax.Array, *, discount: float,
                      lambda_: float):
  """TD(lambda) targets of one ``[T+1]`` episode (see the module docstring).

  Args:
    rewards: ``[T+1]`` team rewards, ``rewards[t]`` arrived with step ``t``.
    discounts: ``[T+1]`` environment discounts.
    step_types: ``[T+1]``.
    mask: ``[T+1]``.
    next_values: ``[T]``, ``V_{t+1}``: the target value of step ``t + 1``.
    discount: gamma.
    lambda_: TD(lambda)'s lambda.

  Returns:
    ``(targets [T], valid [T])``, targets 0 where invalid.
  """
  chex.assert_rank([rewards, discounts, step_types, mask, next_values], 1)
  valid = common.valid_transitions(step_types, mask)
  r_t = rewards[1:] * valid
  discount_t = discount * discounts[1:] * valid
  lambda_t = lambda_ * jnp.concatenate([valid[1:], jnp.ones((1,))])
  g = rlax.lambda_returns(r_t, discount_t, next_values, lambda_t)
  return g * valid, valid


class TDLossOutput(NamedTuple):
  loss: jax.Array  # scalar
  td: jax.Array  # [B, T] TD errors Q_tot - G, 0 where invalid


def td_loss(q_tot: jax.Array, targets: jax.Array, valid: jax.Array,
            weight: jax.Array) -> TDLossOutput:
  """PyMARL2's TD loss (Hu et al., 2021; ``NQLearner``): over valid
  transitions, the importance-weighted mean of ``0.5 (Q_tot - G)^2``,
      L = sum_{b,t} valid_bt w_b 0.5 (Q_tot_bt - G_bt)^2 / sum_{b,t} valid_bt,
  so that ``dL / dQ_tot_bt = valid_bt w_b (Q_tot_bt - G_bt) / sum valid``.

  Args:
    q_tot: ``[B, T]`` mixed Q-values of the actions taken.
    targets: ``[B, T]`` targets ``G`` (no gradient flows into them).
    valid: ``[B, T]`` 1.0 for valid transitions.
    weight: ``[B]`` importance weights.
  """
  chex.assert_rank([q_tot, targets, valid, weight], [2, 2, 2, 1])
  chex.assert_equal_shape([q_tot, targets, valid])
  td = (q_tot - jax.lax.stop_gradient(targets)) * valid
  n = jnp.maximum(jnp.sum(valid), 1.)
  w = weight.astype(jnp.float32)[:, None]
  return TDLossOutput(0.5 * jnp.sum(w * jnp.square(td)) / n, td)


class RewardStats(NamedTuple):
  count: jax.Array
  mean: jax.Array
  m2: jax.Array  # sum of squared deviations


def reward_stats_update(stats: RewardStats, x, w) -> RewardStats:
  """Merges the weighted batch ``x`` into the running moments (Chan et al.)."""
  n_b = jnp.sum(w)
  mean_b = jnp.sum(w * x) / jnp.maximum(n_b, 1.)
  m2_b = jnp.sum(w * jnp.square(x - mean_b))
  n = stats.count + n_b
  delta = mean_b - stats.mean
  mean = stats.mean + delta * n_b / jnp.maximum(n, 1.)
  m2 = stats.m2 + m2_b + jnp.square(delta) * stats.count * n_b / jnp.maximum(
      n, 1.)
  return RewardStats(n, mean, m2)


# The names ``algorithms.make`` builds with this module (more than one:
# ``make`` takes the name as ``variant``), and per name the config key that
# names the privileged observation it reads (a GLOBAL the env may lack).
NAMES = ('qmix', 'vdn')
GLOBAL_STATE_KEYS = {'qmix': 'global_state_key'}
# Learns from the team's summed reward (refused where that is always 0).
TEAM_REWARD = True


def make(env_spec: EnvSpec, config, variant: str = 'qmix') -> Algorithm:
  """Builds QMIX (``variant='qmix'``) or VDN from an ml_collections config."""
  if variant not in ('qmix', 'vdn'):
    raise ValueError(f'variant must be qmix or vdn, got {variant!r}.')
  if config.target_update not in ('hard', 'soft'):
    raise ValueError('target_update must be "hard" or "soft", got '
                     f'{config.target_update!r}.')
  if config.target_update == 'hard' and config.target_update_interval <= 0:
    raise ValueError('target_update_interval must be positive, got '
                     f'{config.target_update_interval}.')
  if not 0. < config.target_tau <= 1.:
    raise ValueError(f'target_tau must be in (0, 1], got {config.target_tau}.')
  if config.lr_schedule not in ('constant', 'cosine'):
    raise ValueError('lr_schedule must be "constant" or "cosine", got '
                     f'{config.lr_schedule!r}.')
  reward_scale = float(config.get('reward_scale', 1.))
  if not reward_scale > 0.:
    raise ValueError(f'reward_scale must be positive, got {reward_scale}.')
  if not 0. <= config.td_lambda <= 1.:
    raise ValueError(f'td_lambda must be in [0, 1], got {config.td_lambda}.')
  gkey = config.global_state_key
  if variant == 'qmix' and gkey not in env_spec.observation:
    raise ValueError(f'global_state_key={gkey!r} is not an observation of this '
                     f'environment (it has {sorted(env_spec.observation)}); '
                     'QMIX\'s mixer needs the global state: add '
                     '--config.env_wrappers=global_state.')
  episode_limit = int(config.max_episode_steps or
                      env_spec.max_episode_steps or 0)
  if episode_limit <= 0:
    raise ValueError('QMIX stores whole episodes and needs their maximum '
                     'length: set max_episode_steps (the environment gives '
                     'none).')
  num_agents, num_actions = env_spec.num_agents, env_spec.num_actions
  state_size = (int(jnp.prod(jnp.array(env_spec.observation[gkey].shape)))
                if gkey in env_spec.observation else 1)
  agent = make_q_network(env_spec, config.network, bool(config.use_agent_id))
  mixer = make_mixer(variant, num_agents, state_size, config)
  optimizer = common.make_optimizer(config)
  eps = epsilon_schedule(config)
  if config.lr_schedule == 'cosine':
    lr_factor = optax.cosine_decay_schedule(
        1.0, max(int(config.lr_decay_updates), 1), alpha=config.lr_min_ratio)
  else:
    lr_factor = lambda step: 1.0

  def init(key) -> LearnerState:
    k1, k2 = jax.random.split(key)
    params = {'agent': agent.init(k1), 'mixer': mixer.init(k2)}
    extras = {'target': params}
    if config.standardise_rewards:
      zero = jnp.zeros((), jnp.float32)
      extras['reward_stats'] = RewardStats(zero, zero, zero)
    return LearnerState(
        params=params, opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        hyperparams={'learning_rate': jnp.asarray(config.learning_rate,
                                                  jnp.float32)},
        extras=extras)

  def acting_params(params, env_steps):
    return {**params, 'epsilon': eps(env_steps)}

  def act(params, inputs: AgentInput, core_state, key, greedy: bool = False):
    q, core_state = agent.step(params['agent'], inputs, core_state)
    q = masked_q(q, inputs.observation)
    best = jnp.argmax(q, axis=-1).astype(jnp.int32)
    if greedy:
      return best, ActorExtras(logits=q), core_state
    epsilon = params.get('epsilon', config.epsilon_finish)
    k1, k2 = jax.random.split(key)
    available = (inputs.observation[ACTION_MASK] > 0
                 if ACTION_MASK in inputs.observation else
                 jnp.ones_like(q, bool))
    random = jax.random.categorical(
        k1, jnp.where(available, 0., _UNAVAILABLE)).astype(jnp.int32)
    explore = jax.random.uniform(k2, best.shape) < epsilon
    return jnp.where(explore, random, best), ActorExtras(logits=q), core_state

  def agent_qs(agent_params, batch: EpisodeBatch):
    """``[B, T+1, N, A]`` Q-values of every agent and step."""
    B, T1, N = batch.action.shape
    rows = lambda x: jnp.swapaxes(x, 0, 1).reshape((T1, B * N) + x.shape[3:])
    step_type = jnp.broadcast_to(batch.step_type[:, :, None], (B, T1, N))
    inputs = AgentInput(
        observation=jax.tree.map(rows, dict(batch.observation)),
        prev_action=rows(batch.prev_action),
        prev_reward=rows(jnp.zeros((B, T1, N), jnp.float32)),
        step_type=rows(step_type))
    q, _ = agent.unroll(agent_params, inputs, agent.initial_state(B * N))
    return jnp.swapaxes(q.reshape((T1, B, N, -1)), 0, 1)

  def loss_fn(params, target, batch: EpisodeBatch, reward_mean, reward_std):
    q = agent_qs(params['agent'], batch)  # [B, T+1, N, A]
    q_target = agent_qs(target['agent'], batch)
    q_taken = jnp.take_along_axis(q[:, :-1], batch.action[:, :-1, :, None],
                                  axis=-1)[..., 0]  # [B, T, N]
    chooser = jax.lax.stop_gradient(q) if config.double_q else q_target
    # The greedy next action, among the actions available there.
    a_next = jnp.argmax(masked_q(chooser, batch.observation)[:, 1:], axis=-1)
    q_next = jnp.take_along_axis(q_target[:, 1:], a_next[..., None],
                                 axis=-1)[..., 0]  # [B, T, N]
    if gkey in batch.observation:
      state = batch.observation[gkey][:, :, 0]
      state = state.reshape(state.shape[:2] + (-1,))
    else:
      state = jnp.zeros(batch.step_type.shape + (1,))
    q_tot = mixer.apply(params['mixer'], q_taken, state[:, :-1])  # [B, T]
    v_next = mixer.apply(target['mixer'], q_next, state[:, 1:])
    team_reward = reward_scale * jnp.mean(batch.reward.astype(jnp.float32),
                                          axis=-1)
    team_reward = (team_reward - reward_mean) / reward_std
    targets, valid = jax.vmap(lambda r, d, s, m, v: td_lambda_targets(
        r, d, s, m, v, discount=config.discount, lambda_=config.td_lambda))(
            team_reward, batch.discount.astype(jnp.float32), batch.step_type,
            batch.mask, jax.lax.stop_gradient(v_next))
    loss, td = td_loss(q_tot, targets, valid, batch.weight)
    n = jnp.maximum(jnp.sum(valid), 1.)
    per_episode = jnp.sum(jnp.abs(td), axis=1) / jnp.maximum(
        jnp.sum(valid, axis=1), 1.)
    metrics = {
        'loss': loss, 'td_error_abs': jnp.sum(jnp.abs(td)) / n,
        'q_taken_mean': jnp.sum(q_tot * valid) / n,
        'target_mean': jnp.sum(targets * valid) / n,
        'valid_fraction': n / valid.size,
    }
    return loss, (metrics, jax.lax.stop_gradient(per_episode))

  def update(state: LearnerState, batch: EpisodeBatch):
    chex.assert_rank([batch.action, batch.reward, batch.discount,
                      batch.step_type, batch.mask, batch.weight],
                     [3, 3, 2, 2, 2, 1])
    chex.assert_equal_shape([batch.discount, batch.step_type, batch.mask])
    extras = dict(state.extras)
    if config.standardise_rewards:
      valid = jax.vmap(common.valid_transitions)(batch.step_type, batch.mask)
      team = reward_scale * jnp.mean(batch.reward[:, 1:].astype(jnp.float32),
                                     axis=-1)
      stats = reward_stats_update(extras['reward_stats'], team, valid)
      extras['reward_stats'] = stats
      reward_mean = stats.mean
      reward_std = jnp.sqrt(stats.m2 / jnp.maximum(stats.count, 1.)) + 1e-6
    else:
      reward_mean, reward_std = 0., 1.
    grads, (metrics, priorities) = jax.grad(loss_fn, has_aux=True)(
        state.params, extras['target'], batch, reward_mean, reward_std)
    lr = state.hyperparams['learning_rate'] * lr_factor(state.step)
    params, opt_state, opt_metrics = common.apply_gradients(
        optimizer, state._replace(hyperparams={**state.hyperparams,
                                               'learning_rate': lr}), grads)
    metrics.update(opt_metrics)
    step = state.step + 1
    if config.target_update == 'hard':
      copy = step % int(config.target_update_interval) == 0
      extras['target'] = jax.tree.map(lambda p, t: jnp.where(copy, p, t),
                                      params, extras['target'])
    else:
      tau = config.target_tau
      extras['target'] = jax.tree.map(lambda p, t: tau * p + (1. - tau) * t,
                                      params, extras['target'])
    metrics['priorities'] = priorities + config.priority_eps
    return LearnerState(params=params, opt_state=opt_state, step=step,
                        hyperparams=state.hyperparams, extras=extras), metrics

  if config.get('joint_rollout', 'episodes') not in JOINT_ROLLOUTS:
    raise ValueError(f'joint_rollout must be one of {", ".join(JOINT_ROLLOUTS)}'
                     f', got {config.joint_rollout!r}.')
  # PyMARL2's replay ratio, as the anakin runtime runs it: updates_per_iteration
  # updates of batch_size items for every num_envs_per_actor new items. The
  # rate limiter holds the distributed learner (and the single launcher) to
  # it too; an unthrottled learner replays each episode many more times and
  # its Q-values can diverge (QMIX on pettingzoo/simple_spread did).
  samples_per_insert = (config.batch_size *
                        max(int(config.get('updates_per_iteration', 1)), 1) /
                        max(int(config.num_envs_per_actor), 1))
  table = TableSpec(
      sampler='prioritized' if config.prioritized_replay else 'uniform',
      item=JOINT_ROLLOUTS[config.get('joint_rollout', 'episodes')],
      sequence_length=episode_limit, batch_size=config.batch_size,
      max_size=config.replay_max_size, samples_per_insert=samples_per_insert,
      priority_exponent=config.priority_alpha,
      importance_exponent_start=config.priority_beta_start).validate()
  return Algorithm(name=variant, init=init, act=act,
                   initial_core_state=agent.initial_state, update=update,
                   replay_table=table, acting_params=acting_params)


__all__ = ['RewardStats', 'TDLossOutput', 'epsilon_schedule', 'make',
           'masked_q', 'reward_stats_update', 'td_lambda_targets', 'td_loss']
