"""Anakin's rollouts: the runner state of a member and what it plays.

``MemberState`` is one member's runner state (the runtime stacks members on
axis 0). ``make_rollouts(env, algorithm, ...)`` builds the pure functions
that play a member's ``M`` env copies, all ``N`` agent slots acting with its
params in one vmapped ``act`` per step: ``sequences`` (T steps on from where
each copy stopped, the distributed actors' layout), ``episodes`` (one whole
episode per copy from ``reset``, padded to ``T + 1`` steps), ``chunks`` (T
steps on through resets, unpadded) and ``test`` (greedy episodes). Each
returns the member's new runner state, the items for its update, the env
steps taken and the metrics of the episodes that ended.

Env steps: a step taken on a ``LAST`` timestep only resets the env, so it is
not counted; every layout counts the same steps as the distributed actors
(what ``num_steps``, epsilon and the reward-shaping anneal are measured in).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp

from marl_jax.algorithms.base import Algorithm, LearnerState
from marl_jax.envs.base import JaxEnvironment
from marl_jax.networks.actor_critic import AgentInput
from marl_jax.types import EpisodeBatch, StepType, TimeStep, Trajectory


class MemberState(NamedTuple):
  """One member's runner state (the runtime stacks members on axis 0)."""
  learner: LearnerState
  env_state: Any  # [M, ...]
  timestep: TimeStep  # [M, ...], the current step
  action: jax.Array  # [M, N] pending action on ``timestep`` (sequences)
  logits: jax.Array  # [M, N, A] its behaviour logits
  # [M * N, ...] recurrent state after acting on ``timestep`` (sequences);
  # before acting on it (chunks)
  core: Any
  core_in: Any  # [M * N, ...] recurrent state before acting on ``timestep``
  prev_action: jax.Array  # [M, N]
  prev_reward: jax.Array  # [M, N]
  returns: jax.Array  # [M, N] running episode returns
  info_returns: Dict[str, jax.Array]  # [M, N] running sums of info entries
  buffer: Any  # episode replay (joint episodes) or ()
  env_steps: jax.Array  # int32, this member's env steps so far
  key: jax.Array
  # With fixed training partners (``runtime/partners.py``): who plays beside
  # the learner in each copy (``PartnerState``); else ().
  partner: Any = ()


class PartnerState(NamedTuple):
  """Per env copy ``[M]``: the pool policy playing, the slot it plays (both
  drawn at every ``FIRST`` step) and its recurrent state."""
  policy: jax.Array  # [M] int32, index into the pool
  seat: jax.Array  # [M] int32, the agent slot it plays
  core: Any  # [M, ...] its recurrent state


class Rollouts(NamedTuple):
  """The rollout functions of one env and algorithm (``make_rollouts``).

  ``act(params, ts, prev_action, prev_reward, core, key) -> (action [M, N],
  logits [M, N, A], core)``; ``env_reset(key) -> (env_state, ts)`` of the
  ``M`` copies; ``acting_params(learner, env_steps)``;
  ``progress(env_state, member_env_steps)`` (the env's training-progress
  hook); ``sequences``/``episodes``/``chunks(ms, params, key) -> (ms, items,
  env steps taken, episode metrics)``; ``test(ms, key, num_episodes, horizon,
  reward_inputs) -> metrics``.
  """
  act: Callable[..., Any]
  env_reset: Callable[..., Any]
  acting_params: Callable[..., Any]
  progress: Callable[..., Any]
  sequences: Callable[..., Any]
  episodes: Callable[..., Any]
  chunks: Callable[..., Any]
  test: Callable[..., Any]
  partner_init: Callable[[], Any] = lambda: ()
  partner_act: Optional[Callable[..., Any]] = None


def _flat(x):
  """``[M, N, ...] -> [M * N, ...]``."""
  return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _agent_input(ts: TimeStep, prev_action, prev_reward) -> AgentInput:
  n = ts.reward.shape[1]
  return AgentInput(
      observation={k: _flat(v) for k, v in ts.observation.items()},
      prev_action=_flat(prev_action), prev_reward=_flat(prev_reward),
      step_type=jnp.repeat(ts.step_type, n))


def _track_episodes(nts: TimeStep, returns, info_returns, done, info_keys):
  """Adds step ``nts``'s rewards to the running ``[M, N]`` episode returns
  (restarted on ``FIRST``) and folds the episodes ending at ``nts``
  (``LAST``) into ``done = (sum of agent-mean returns, count, info sums)``."""
  n = nts.reward.shape[1]
  first = (nts.step_type == StepType.FIRST)[:, None]
  last = (nts.step_type == StepType.LAST)[:, None]
  returns = jnp.where(first, 0., returns + nts.reward)
  info_returns = {k: jnp.where(first, 0., info_returns[k] +
                               nts.info[k].astype(jnp.float32))
                  for k in info_keys}
  sum_done, count_done, info_done = done
  sum_done += jnp.sum(jnp.where(last, returns, 0.)) / n
  count_done += jnp.sum(last[:, 0])
  info_done = {k: info_done[k] + jnp.sum(jnp.where(last, info_returns[k],
                                                   0.)) / n
               for k in info_keys}
  return returns, info_returns, (sum_done, count_done, info_done)


def _no_episodes(info_keys):
  zero = jnp.zeros((), jnp.float32)
  return (zero, zero, {k: zero for k in info_keys})


def _episode_means(sum_done, count_done, info_done, info_keys):
  """Mean over ended episodes (and agents); nan when none ended."""
  n = jnp.maximum(count_done, 1.)
  nan_if_none = lambda x: jnp.where(count_done > 0, x / n, jnp.nan)
  out = {'episode_return': nan_if_none(sum_done),
         'episodes': count_done}
  for k in info_keys:
    out[f'episode_{k}'] = nan_if_none(info_done[k])
  return out


def make_rollouts(env: JaxEnvironment, algorithm: Algorithm,
                  population_size: int, num_envs: int,
                  length: int, partners=None) -> Rollouts:
  """The rollouts of ``num_envs`` (M) copies of ``env`` per member, ``length``
  (T) steps long; ``population_size`` (P) scales the env-step count given to
  the env's training-progress hook (members advance in step).

  ``partners`` (a ``runtime.partners.Pool``, sequences only): in every
  episode of every copy one slot, drawn uniformly, is played by a pool
  policy drawn uniformly; ``sequences`` then masks those rows (``mask`` 0),
  so the member learns from its own slots only. ``act`` takes and returns
  the ``PartnerState`` as well (``partner_act``)."""
  spec = env.spec()
  P, M, N, T = population_size, num_envs, spec.num_agents, length
  info_keys = tuple(spec.info_keys)

  def act(params, ts, prev_action, prev_reward, core, key):
    action, extras, core = algorithm.act(
        params, _agent_input(ts, prev_action, prev_reward), core, key, False)
    return (action.reshape(M, N).astype(jnp.int32),
            extras.logits.reshape(M, N, -1), core)

  copies = jnp.arange(M)

  def partner_init() -> Any:
    if partners is None:
      return ()
    return PartnerState(policy=jnp.zeros((M,), jnp.int32),
                        seat=jnp.zeros((M,), jnp.int32),
                        core=partners.algorithm.initial_core_state(M))

  def partner_act(pstate, ts, prev_action, prev_reward, action, key):
    """``action`` [M, N] with each copy's partner slot played by its pool
    policy; a new policy and slot are drawn where ``ts`` is ``FIRST``."""
    if partners is None:
      return action, pstate
    k_pick, k_seat, k_act = jax.random.split(key, 3)
    first = ts.step_type == StepType.FIRST
    policy = jnp.where(first, jax.random.randint(k_pick, (M,), 0,
                                                 partners.size), pstate.policy)
    seat = jnp.where(first, jax.random.randint(k_seat, (M,), 0, N),
                     pstate.seat)
    inputs = AgentInput(
        observation={k: v[copies, seat] for k, v in ts.observation.items()},
        prev_action=prev_action[copies, seat],
        prev_reward=prev_reward[copies, seat], step_type=ts.step_type)
    params = jax.tree.map(lambda x: jnp.asarray(x)[policy], partners.params)

    def one(p, inp, core, k):
      add = lambda x: x[None]
      a, _, core = partners.algorithm.act(
          p, jax.tree.map(add, inp), jax.tree.map(add, core), k, False)
      return a[0], jax.tree.map(lambda x: x[0], core)

    a, core = jax.vmap(one)(params, inputs, pstate.core,
                            jax.random.split(k_act, M))
    action = action.at[copies, seat].set(a.astype(jnp.int32))
    return action, PartnerState(policy, seat, core)

  def env_reset(key):
    return jax.vmap(env.reset)(jax.random.split(key, M))

  def env_step(env_state, action, key):
    return jax.vmap(env.step)(env_state, action, jax.random.split(key, M))

  def acting_params(learner: LearnerState, env_steps):
    if algorithm.acting_params is None:
      return learner.params
    return algorithm.acting_params(learner.params, env_steps)

  def progress(env_state, member_env_steps):
    """The env's training-progress hook (e.g. reward-shaping annealing) with
    the run's env steps (members advance in step)."""
    if not hasattr(env, 'set_training_progress'):
      return env_state
    steps = (member_env_steps * P).astype(jnp.int32)
    return jax.vmap(lambda s: env.set_training_progress(s, steps))(env_state)

  # ------------------------------------------------- sequences (on-policy)
  def sequences(ms: MemberState, params, key):
    """``T`` steps of every copy on from where it stopped: ``(ms, Trajectory
    [M * N, T + 1], env steps taken, episode metrics)``, exactly as the
    distributed actors write sequences (module docstring of ``anakin``)."""
    env_state = progress(ms.env_state, ms.env_steps)

    def own_rows(pstate):
      """[M, N]: 1 where the member plays the slot, 0 for its partner's."""
      if partners is None:
        return jnp.ones((M, N), jnp.float32)
      return (jnp.arange(N)[None, :] != pstate.seat[:, None]).astype(
          jnp.float32)

    def step(carry, key):
      (env_state, ts, action, logits, core, core_in, prev_a, prev_r, returns,
       info_returns, done, pstate) = carry
      record = (ts.observation, prev_a, prev_r, action, ts.reward,
                ts.discount, ts.step_type, logits, own_rows(pstate))
      if partners is None:  # The key stream of runs without partners.
        (k_env, k_act), k_partner = jax.random.split(key), None
      else:
        k_env, k_act, k_partner = jax.random.split(key, 3)
      env_state, nts = env_step(env_state, action, k_env)
      was_last = (ts.step_type == StepType.LAST)[:, None]
      prev_a = jnp.where(was_last, 0, action)
      prev_r = jnp.where(was_last, 0., nts.reward)
      returns, info_returns, done = _track_episodes(
          nts, returns, info_returns, done, info_keys)
      new_action, new_logits, new_core = act(params, nts, prev_a, prev_r,
                                             core, k_act)
      new_action, pstate = partner_act(pstate, nts, prev_a, prev_r,
                                       new_action, k_partner)
      carry = (env_state, nts, new_action, new_logits, new_core, core,
               prev_a, prev_r, returns, info_returns, done, pstate)
      return carry, record

    carry0 = (env_state, ms.timestep, ms.action, ms.logits, ms.core,
              ms.core_in, ms.prev_action, ms.prev_reward, ms.returns,
              ms.info_returns, _no_episodes(info_keys), ms.partner)
    carry, records = jax.lax.scan(step, carry0, jax.random.split(key, T))
    (env_state, ts, action, logits, core, core_in, prev_a, prev_r, returns,
     info_returns, done, pstate) = carry
    last_record = (ts.observation, prev_a, prev_r, action, ts.reward,
                   ts.discount, ts.step_type, logits, own_rows(pstate))
    records = jax.tree.map(lambda xs, x: jnp.concatenate([xs, x[None]]),
                           records, last_record)  # [T+1, M, ...]
    (obs, r_prev_a, r_prev_r, r_action, r_reward, r_discount, r_step, r_logits,
     r_own) = records

    def rows(x):
      """``[T+1, M, N, ...] -> [M * N, T+1, ...]``."""
      x = jnp.moveaxis(x, 0, 2)
      return _flat(x)

    def per_agent(x):
      """``[T+1, M] -> [M * N, T+1]``."""
      return rows(jnp.broadcast_to(x[:, :, None], x.shape[:2] + (N,)))

    traj = Trajectory(
        observation={k: rows(v) for k, v in obs.items()},
        prev_action=rows(r_prev_a), prev_reward=rows(r_prev_r),
        action=rows(r_action), reward=rows(r_reward),
        discount=per_agent(r_discount), step_type=per_agent(r_step),
        behaviour_logits=rows(r_logits),
        mask=rows(r_own),
        core_state=ms.core_in,
        policy_version=jnp.broadcast_to(ms.learner.step, (M * N,)))
    # A step on a LAST timestep only resets the env: not a transition.
    steps_taken = jnp.sum(r_step[:-1] != StepType.LAST).astype(jnp.int32)
    ms = ms._replace(env_state=env_state, timestep=ts, action=action,
                     logits=logits, core=core, core_in=core_in,
                     prev_action=prev_a, prev_reward=prev_r, returns=returns,
                     info_returns=info_returns, partner=pstate)
    return ms, traj, steps_taken, _episode_means(*done, info_keys)

  # --------------------------------------------- joint episodes and chunks
  def episodes(ms: MemberState, params, key):
    """Every copy plays one episode from ``reset``: ``(ms, episodes [M],
    env steps taken, episode metrics)``."""
    k_env, k_roll = jax.random.split(key)
    env_state, ts = env_reset(k_env)
    env_state = progress(env_state, ms.env_steps)
    core = algorithm.initial_core_state(M * N)
    prev_a = jnp.zeros((M, N), jnp.int32)

    def step(carry, key):
      env_state, ts, core, prev_a, alive = carry
      k_env, k_act = jax.random.split(key)
      action, _, core = act(params, ts, prev_a, jnp.zeros((M, N)), core,
                            k_act)
      record = (ts.observation, prev_a, action, ts.reward, ts.discount,
                ts.step_type, alive, ts.info)
      env_state, nts = env_step(env_state, action, k_env)
      alive = alive * (ts.step_type != StepType.LAST)
      return (env_state, nts, core, action, alive), record

    alive0 = jnp.ones((M,), jnp.float32)
    (_, ts_end, _, prev_end, alive_end), records = jax.lax.scan(
        step, (env_state, ts, core, prev_a, alive0),
        jax.random.split(k_roll, T))
    last = (ts_end.observation, prev_end, jnp.zeros((M, N), jnp.int32),
            ts_end.reward, ts_end.discount, ts_end.step_type, alive_end,
            ts_end.info)
    records = jax.tree.map(lambda xs, x: jnp.concatenate([xs, x[None]]),
                           records, last)
    records = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), records)
    (obs, r_prev, r_action, r_reward, r_discount, r_step, r_mask,
     r_info) = records
    r_step = jnp.where(r_mask > 0, r_step, 0)
    zero_pad = lambda x: x * r_mask.reshape(r_mask.shape + (1,) *
                                            (x.ndim - 2)).astype(x.dtype)
    episodes = EpisodeBatch(
        observation={k: zero_pad(v) for k, v in obs.items()},
        prev_action=zero_pad(r_prev), action=zero_pad(r_action),
        reward=zero_pad(r_reward), discount=zero_pad(r_discount),
        step_type=r_step, mask=r_mask, weight=jnp.ones((M,), jnp.float32))
    valid = r_mask[:, 1:] * (r_step[:, :-1] != StepType.LAST)
    steps_taken = jnp.sum(valid).astype(jnp.int32)
    ep_return = jnp.sum(valid[:, :, None] * episodes.reward[:, 1:]) / N
    ended = jnp.sum(jnp.any(r_step == StepType.LAST, axis=1)).astype(
        jnp.float32)
    # Every episode counts (one cut at T steps without LAST ends there).
    metrics = {f'episode_{k}': jnp.sum(
        valid[:, :, None] * r_info[k][:, 1:].astype(jnp.float32)) / (N * M)
               for k in info_keys}
    metrics['episode_return'] = ep_return / M
    metrics['episodes'] = jnp.asarray(M, jnp.float32)
    metrics['episodes_ended'] = ended
    return ms, episodes, steps_taken, metrics

  def chunks(ms: MemberState, params, key):
    """Every copy plays ``T`` steps on from where it stopped, through its
    auto-resets (JaxMARL's layout): ``(ms, chunks [M], env steps taken,
    episode metrics)``. A chunk's ``T + 1`` steps are all real (mask 1);
    ``FIRST`` follows ``LAST`` inside it, ``prev_action`` is 0 at ``FIRST``,
    and consecutive chunks of a copy overlap by one step, as sequences do.
    The recurrent state the copy acts with carries over between
    iterations; the learner unrolls a chunk from the initial state (and
    from ``FIRST`` wherever an episode starts inside it)."""
    env_state = progress(ms.env_state, ms.env_steps)

    def step(carry, key):
      env_state, ts, core, prev_a, returns, info_returns, done = carry
      k_env, k_act = jax.random.split(key)
      action, _, core = act(params, ts, prev_a, jnp.zeros((M, N)), core,
                            k_act)
      record = (ts.observation, prev_a, action, ts.reward, ts.discount,
                ts.step_type)
      env_state, nts = env_step(env_state, action, k_env)
      # After LAST the env resets: ``nts`` is FIRST, with no previous action.
      prev_a = jnp.where((ts.step_type == StepType.LAST)[:, None], 0, action)
      returns, info_returns, done = _track_episodes(
          nts, returns, info_returns, done, info_keys)
      return (env_state, nts, core, prev_a, returns, info_returns, done), record

    carry0 = (env_state, ms.timestep, ms.core, ms.prev_action, ms.returns,
              ms.info_returns, _no_episodes(info_keys))
    carry, records = jax.lax.scan(step, carry0, jax.random.split(key, T))
    env_state, ts, core, prev_a, returns, info_returns, done = carry
    last = (ts.observation, prev_a, jnp.zeros((M, N), jnp.int32), ts.reward,
            ts.discount, ts.step_type)
    records = jax.tree.map(lambda xs, x: jnp.swapaxes(
        jnp.concatenate([xs, x[None]]), 0, 1), records, last)
    obs, r_prev, r_action, r_reward, r_discount, r_step = records
    chunks = EpisodeBatch(
        observation=obs, prev_action=r_prev, action=r_action, reward=r_reward,
        discount=r_discount, step_type=r_step,
        mask=jnp.ones((M, T + 1), jnp.float32),
        weight=jnp.ones((M,), jnp.float32))
    # A step on a LAST timestep only resets the env: not a transition.
    steps_taken = jnp.sum(r_step[:, :-1] != StepType.LAST).astype(jnp.int32)
    metrics = _episode_means(*done, info_keys)
    ms = ms._replace(env_state=env_state, timestep=ts, core=core,
                     prev_action=prev_a, returns=returns,
                     info_returns=info_returns)
    return ms, chunks, steps_taken, metrics

  # ------------------------------------------------ greedy test episodes
  def test(ms: MemberState, key, num_episodes: int, horizon: int,
           reward_inputs: bool):
    """``num_episodes`` greedy episodes from ``reset``, ``horizon`` steps at
    most: ``{'test_return': mean return, 'test_<info>': mean info sums}``.
    ``reward_inputs``: the policy sees the previous reward (else zeros)."""
    E = num_episodes
    k_env, k_roll = jax.random.split(key)
    env_state, ts = jax.vmap(env.reset)(jax.random.split(k_env, E))
    env_state = progress(env_state, ms.env_steps)
    params = acting_params(ms.learner, ms.env_steps)

    def step(carry, key):
      env_state, ts, core, prev_a, prev_r, ongoing, ret, info = carry
      k_env, k_act = jax.random.split(key)
      action, _, core = algorithm.act(
          params, _agent_input(ts, prev_a, prev_r), core, k_act, True)
      action = action.reshape(E, N).astype(jnp.int32)
      env_state, nts = jax.vmap(env.step)(env_state, action,
                                          jax.random.split(k_env, E))
      # The transition counts unless the episode already ended.
      ongoing = ongoing * (ts.step_type != StepType.LAST)
      ret = ret + ongoing * jnp.mean(nts.reward, axis=-1)
      info = {k: info[k] + ongoing * jnp.mean(
          nts.info[k].astype(jnp.float32), axis=-1) for k in info_keys}
      prev_r = nts.reward if reward_inputs else jnp.zeros_like(nts.reward)
      return (env_state, nts, core, action, prev_r, ongoing, ret, info), None

    zeros = jnp.zeros((E,), jnp.float32)
    carry = (env_state, ts, algorithm.initial_core_state(E * N),
             jnp.zeros((E, N), jnp.int32), jnp.zeros((E, N), jnp.float32),
             jnp.ones((E,), jnp.float32), zeros,
             {k: zeros for k in info_keys})
    carry, _ = jax.lax.scan(step, carry, jax.random.split(k_roll, horizon))
    out = {'test_return': jnp.mean(carry[6])}
    out.update({f'test_{k}': jnp.mean(v) for k, v in carry[7].items()})
    return out

  return Rollouts(act=act, env_reset=env_reset, acting_params=acting_params,
                  progress=progress, sequences=sequences, episodes=episodes,
                  chunks=chunks, test=test, partner_init=partner_init,
                  partner_act=partner_act)
