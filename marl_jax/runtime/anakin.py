"""The anakin runtime: rollout and update in one jitted program (JAX envs).

For functional environments (``envs.base.JaxEnvironment``), in the style of
PureJaxRL (Lu et al., 2022): ``make_train(config, env, algorithm)`` returns a
pure ``train(key)`` built from ``lax.scan``, so that it jits as one program
and vmaps over seeds (``jax.vmap(train)(keys)``). Inside, each iteration is
vmapped over the ``population_size`` members; each member plays self-play in
its own ``num_envs_per_actor`` env copies (every agent slot of its copies acts
with its params), each step is one vmapped ``act`` over all ``M * N`` agent
rows, and the member's ``update`` follows its rollout.

Two kinds of iteration, chosen by ``algorithm.replay_table``:
  * sequences (IMPALA, OPRE, MAPPO/IPPO): ``sequence_length`` (T) steps of
    every copy, written as ``Trajectory[M * N, T + 1]`` exactly as the
    distributed actors write them (one row per agent, ``reward[t]`` arriving
    with ``observation[t]``, ``FIRST`` after ``LAST`` inside a sequence, no
    padding). Env states, the recurrent state and the pending action carry
    over between iterations, so consecutive sequences overlap by one step
    and index 0 of a sequence holds the action (and behaviour logits) that
    was really taken there. Recurrent states reset on ``FIRST``.
  * joint episodes (QMIX, VDN; ``replay_table.joint``): every copy plays one
    whole episode from ``reset`` (``replay_table.sequence_length`` steps at
    most; steps after ``LAST`` are padding), the episodes go to the member's
    on-device replay (``replay.episode_buffer``, uniform or prioritized with
    the table's ``priority_exponent`` and ``beta`` annealed from its
    ``importance_exponent_start`` to 1
    over ``num_steps``), and ``updates_per_iteration`` updates sample
    ``batch_size`` episodes once the replay holds that many. Acting uses
    ``algorithm.acting_params(params, env_steps)`` (QMIX's epsilon) with the
    member's own env-step count. With ``joint_rollout='chunks'`` each copy
    instead plays ``T`` steps on from where it stopped, through its resets,
    and the replay holds these chunks (JaxMARL's layout, ``rollout_chunks``):
    no padding, so short episodes cost no compute on steps after ``LAST``.

Test episodes (``test_episodes`` > 0 in the config): ``Anakin.test`` plays
that many episodes per member from ``reset`` with greedy actions (``act``
with ``greedy=True``: no exploration) and returns each member's mean
episode return and mean per-episode sum of every ``info`` key (e.g. SMAX's
``won``: the win rate); ``run`` calls it every ``test_interval_steps`` env
steps and at the end, and logs it as ``test.csv`` (PyMARL's test episodes),
with the number of episodes per member in its ``test_episodes`` column. The
test at the end plays ``final_test_episodes`` episodes instead when that is
set (a tighter final figure: 1,024 episodes give a win rate to about +-0.01).

Metrics come back as arrays with a leading ``[population_size]`` axis per
iteration: the learner's metrics, and the mean episode return (and each
``info`` key's per-episode sum, e.g. sparse reward or wins) over episodes
that ended during the iteration (``nan`` if none), with their count. ``run``
is the imperative shell: it runs jitted chunks of iterations and logs,
prints progress and checkpoints between them.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from marl_jax.algorithms.base import Algorithm, LearnerState
from marl_jax.envs.base import JaxEnvironment
from marl_jax.networks.actor_critic import AgentInput
from marl_jax.replay import episode_buffer
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


class Anakin(NamedTuple):
  """``init(key) -> state [P]``; ``iteration(state) -> (state, metrics)``.

  ``steps_per_iteration`` is the (maximum) number of env steps of one
  iteration summed over members; joint-episode iterations count the real
  steps in ``metrics['env_steps']``, and ``num_iterations`` (the default
  length of ``make_train``) assumes full-length episodes, so it takes at most
  ``num_steps``.
  """
  init: Callable[[jax.Array], MemberState]
  iteration: Callable[[MemberState], Any]
  steps_per_iteration: int
  num_iterations: int
  # ``test(state [P], key) -> {'test_return': [P], 'test_<info>': [P]}``
  # (module docstring); None when ``test_episodes`` is 0.
  test: Optional[Callable[[MemberState, jax.Array], Any]] = None


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


def make_anakin(config, env: JaxEnvironment, algorithm: Algorithm,
                num_iterations: Optional[int] = None) -> Anakin:
  """The pure pieces of an anakin run of ``algorithm`` on ``env``.

  Args:
    config: the run config (``population_size``, ``num_envs_per_actor``,
      ``num_steps``, algorithm keys).
    env: a functional environment.
    algorithm: built for ``env.spec()``.
    num_iterations: iterations of ``train`` (default: enough for
      ``num_steps``).
  """
  if not isinstance(env, JaxEnvironment):
    raise TypeError('The anakin runtime needs a JaxEnvironment, got '
                    f'{type(env).__name__}.')
  spec = env.spec()
  P = int(config.population_size)
  M = int(config.num_envs_per_actor)
  N = spec.num_agents
  table = algorithm.replay_table
  joint = bool(table.joint)
  T = int(table.sequence_length)
  if P <= 0 or M <= 0 or T <= 0:
    raise ValueError('population_size, num_envs_per_actor and the sequence '
                     f'length must be positive, got {P}, {M}, {T}.')
  info_keys = tuple(spec.info_keys)
  steps_per_iteration = P * M * T
  if num_iterations is None:
    num_iterations = max(1, -(-int(config.num_steps) // steps_per_iteration))

  def act(params, ts, prev_action, prev_reward, core, key):
    action, extras, core = algorithm.act(
        params, _agent_input(ts, prev_action, prev_reward), core, key, False)
    return (action.reshape(M, N).astype(jnp.int32),
            extras.logits.reshape(M, N, -1), core)

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

  def zeros_info(ts):
    return {k: jnp.zeros((M, N), jnp.float32) for k in info_keys}

  # ----------------------------------------------------------------- init
  def member_init(key) -> MemberState:
    k_learner, k_env, k_act, k_run = jax.random.split(key, 4)
    learner = algorithm.init(k_learner)
    env_state, ts = env_reset(k_env)
    core_in = algorithm.initial_core_state(M * N)
    prev_action = jnp.zeros((M, N), jnp.int32)
    prev_reward = jnp.zeros((M, N), jnp.float32)
    env_steps = jnp.zeros((), jnp.int32)
    if joint:
      action = prev_action
      logits = jnp.zeros((M, N, spec.num_actions), jnp.float32)
      core = core_in
      example = _episode_item(jax.tree.map(lambda x: x[0], ts))
      buffer = episode_buffer.init(example, int(table.max_size))
    else:
      action, logits, core = act(acting_params(learner, env_steps), ts,
                                 prev_action, prev_reward, core_in, k_act)
      buffer = ()
    return MemberState(learner, env_state, ts, action, logits, core, core_in,
                       prev_action, prev_reward,
                       jnp.zeros((M, N), jnp.float32), zeros_info(ts), buffer,
                       env_steps, k_run)

  def _episode_item(ts0: TimeStep) -> EpisodeBatch:
    """An all-zero episode of ``T + 1`` steps (the replay's item shape)."""
    z = lambda x, lead: jnp.zeros(lead + jnp.shape(x), jnp.asarray(x).dtype)
    return EpisodeBatch(
        observation={k: z(v, (T + 1,)) for k, v in ts0.observation.items()},
        prev_action=jnp.zeros((T + 1, N), jnp.int32),
        action=jnp.zeros((T + 1, N), jnp.int32),
        reward=jnp.zeros((T + 1, N), jnp.float32),
        discount=jnp.zeros((T + 1,), jnp.float32),
        step_type=jnp.zeros((T + 1,), jnp.int32),
        mask=jnp.zeros((T + 1,), jnp.float32),
        weight=jnp.ones((), jnp.float32))

  # ------------------------------------------------- sequences (on-policy)
  def sequence_iteration(ms: MemberState):
    key, k_rollout = jax.random.split(ms.key)
    params = acting_params(ms.learner, ms.env_steps)
    env_state = progress(ms.env_state, ms.env_steps)

    def step(carry, key):
      (env_state, ts, action, logits, core, core_in, prev_a, prev_r, returns,
       info_returns, done) = carry
      record = (ts.observation, prev_a, prev_r, action, ts.reward,
                ts.discount, ts.step_type, logits)
      k_env, k_act = jax.random.split(key)
      env_state, nts = env_step(env_state, action, k_env)
      was_last = (ts.step_type == StepType.LAST)[:, None]
      prev_a = jnp.where(was_last, 0, action)
      prev_r = jnp.where(was_last, 0., nts.reward)
      returns, info_returns, done = _track_episodes(
          nts, returns, info_returns, done, info_keys)
      new_action, new_logits, new_core = act(params, nts, prev_a, prev_r,
                                             core, k_act)
      carry = (env_state, nts, new_action, new_logits, new_core, core,
               prev_a, prev_r, returns, info_returns, done)
      return carry, record

    carry0 = (env_state, ms.timestep, ms.action, ms.logits, ms.core,
              ms.core_in, ms.prev_action, ms.prev_reward, ms.returns,
              ms.info_returns, _no_episodes(info_keys))
    carry, records = jax.lax.scan(step, carry0,
                                  jax.random.split(k_rollout, T))
    (env_state, ts, action, logits, core, core_in, prev_a, prev_r, returns,
     info_returns, done) = carry
    last_record = (ts.observation, prev_a, prev_r, action, ts.reward,
                   ts.discount, ts.step_type, logits)
    records = jax.tree.map(lambda xs, x: jnp.concatenate([xs, x[None]]),
                           records, last_record)  # [T+1, M, ...]
    obs, r_prev_a, r_prev_r, r_action, r_reward, r_discount, r_step, r_logits = (
        records)

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
        mask=jnp.ones((M * N, T + 1), jnp.float32),
        core_state=ms.core_in,
        policy_version=jnp.broadcast_to(ms.learner.step, (M * N,)))
    learner, metrics = algorithm.update(ms.learner, traj)
    metrics = dict(metrics)
    metrics.update(_episode_means(*done, info_keys))
    env_steps = ms.env_steps + M * T
    metrics['env_steps'] = jnp.asarray(M * T, jnp.float32)
    ms = MemberState(learner, env_state, ts, action, logits, core, core_in,
                     prev_a, prev_r, returns, info_returns, ms.buffer,
                     env_steps, key)
    return ms, metrics

  # ------------------------------------------ joint episodes (replay-based)
  # Replay semantics come from the algorithm's TableSpec alone.
  alpha = float(table.priority_exponent) if table.prioritized else 0.
  total_member_steps = max(int(config.num_steps) // P, 1)
  updates = int(config.get('updates_per_iteration', 1))
  B = int(table.batch_size)
  chunked = table.item == 'chunk'

  def rollout_episodes(ms: MemberState, params, key):
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

  def rollout_chunks(ms: MemberState, params, key):
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

  rollout = rollout_chunks if chunked else rollout_episodes

  def episode_iteration(ms: MemberState):
    """A rollout (whole episodes or chunks) into the member's replay, then
    ``updates_per_iteration`` updates on batches sampled from it."""
    key, k_roll, k_upd = jax.random.split(ms.key, 3)
    params = acting_params(ms.learner, ms.env_steps)
    ms, items, steps_taken, episode_metrics = rollout(ms, params, k_roll)
    buffer = episode_buffer.add(ms.buffer, items)
    env_steps = ms.env_steps + steps_taken
    beta = table.importance_exponent(env_steps / total_member_steps)

    def do_update(learner, buffer, key):
      sample = episode_buffer.sample(buffer, key, B, alpha, beta)
      batch = sample.items._replace(weight=sample.weights)
      learner, metrics = algorithm.update(learner, batch)
      metrics = dict(metrics)
      priorities = metrics.pop('priorities', None)
      if priorities is not None and alpha > 0:
        buffer = episode_buffer.set_priorities(buffer, sample.indices,
                                               priorities)
      return learner, buffer, metrics

    metrics_shape = jax.eval_shape(do_update, ms.learner, buffer, k_upd)[2]

    def update_step(carry, key):
      learner, buffer = carry
      ready = buffer.size >= B

      def skip(learner, buffer, key):
        del key
        return learner, buffer, jax.tree.map(
            lambda s: jnp.full(s.shape, jnp.nan, s.dtype), metrics_shape)

      learner, buffer, metrics = jax.lax.cond(ready, do_update, skip,
                                              learner, buffer, key)
      return (learner, buffer), metrics

    (learner, buffer), metrics = jax.lax.scan(
        update_step, (ms.learner, buffer), jax.random.split(k_upd, updates))
    metrics = jax.tree.map(lambda x: x[-1], metrics)
    metrics.update(episode_metrics)
    metrics['env_steps'] = steps_taken.astype(jnp.float32)
    metrics['replay_size'] = buffer.size.astype(jnp.float32)
    if algorithm.acting_params is not None:
      eps = algorithm.acting_params(ms.learner.params, ms.env_steps)
      if isinstance(eps, dict) and 'epsilon' in eps:
        metrics['epsilon'] = jnp.asarray(eps['epsilon'], jnp.float32)
    ms = ms._replace(learner=learner, buffer=buffer, env_steps=env_steps,
                     key=key)
    return ms, metrics

  member_iteration = episode_iteration if joint else sequence_iteration

  # ------------------------------------------------ greedy test episodes
  E = int(config.get('test_episodes', 0) or 0)
  if E < 0:
    raise ValueError(f'test_episodes must be >= 0, got {E}.')
  horizon = T if joint else int(spec.max_episode_steps or T)

  def member_test(ms: MemberState, key):
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
      prev_r = jnp.zeros_like(nts.reward) if joint else nts.reward
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

  def test(state: MemberState, key):
    return jax.vmap(member_test)(state, jax.random.split(key, P))

  def init(key) -> MemberState:
    return jax.vmap(member_init)(jax.random.split(key, P))

  def iteration(state: MemberState):
    return jax.vmap(member_iteration)(state)

  return Anakin(init=init, iteration=iteration,
                steps_per_iteration=steps_per_iteration,
                num_iterations=num_iterations, test=test if E > 0 else None)


def make_train(config, env: JaxEnvironment, algorithm: Algorithm,
               num_iterations: Optional[int] = None):
  """``train(key) -> (final state [P], metrics [iterations, P])``, pure."""
  anakin = make_anakin(config, env, algorithm, num_iterations)

  def train(key):
    state = anakin.init(key)
    return jax.lax.scan(lambda s, _: anakin.iteration(s), state, None,
                        length=anakin.num_iterations)

  return train


# -----------------------------------------------------------------------------
# The imperative shell: train.py --runtime=anakin.


def make_env(config) -> JaxEnvironment:
  """The functional environment of ``config`` (``env``, ``env_kwargs``,
  ``env_wrappers``)."""
  from marl_jax.envs import wrappers  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  return wrappers.make_jax_wrapped(
      config.env, tuple(config.get('env_wrappers', ()) or ()),
      **config_lib.env_kwargs(config))


_RUNTIME_STATE_VERSION = 1


def _runtime_blob(state: MemberState, **counters) -> bytes:
  """Everything of ``state`` but the learner (env states, the pending step,
  recurrent states, the replay, keys), with the shell's counters: what a
  checkpoint's ``runtime`` entry holds so that a resumed run goes on exactly
  where this one stopped. Leaves only (numpy), in tree order: the tree
  comes back from the code that restores it."""
  leaves = [np.asarray(x) for x in
            jax.device_get(jax.tree.leaves(state._replace(learner=())))]
  return pickle.dumps(dict(version=_RUNTIME_STATE_VERSION, leaves=leaves,
                           counters=counters), protocol=4)


def _restore_runtime(blob: bytes, template: MemberState, learner,
                     where: str) -> tuple[MemberState, dict]:
  """``(state, counters)`` from a ``_runtime_blob``, on ``template``'s tree
  (shapes from ``jax.eval_shape`` of ``init``), with ``learner``; a clear
  error if the blob is of another layout than this config gives."""
  from marl_jax.utils.checkpointing import CheckpointError  # pylint: disable=g-import-not-at-top
  if not blob:
    raise CheckpointError(
        f'{where} holds no anakin runtime state (written by another runtime, '
        'or before anakin checkpoints could be resumed): it cannot be resumed '
        'with --runtime=anakin.')
  try:
    saved = pickle.loads(blob)
    version, leaves = saved['version'], saved['leaves']
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f'{where}: unreadable anakin runtime state: {e}'
                          ) from e
  if version != _RUNTIME_STATE_VERSION:
    raise CheckpointError(f'{where}: anakin runtime state version {version}, '
                          f'this code reads {_RUNTIME_STATE_VERSION}.')
  wanted, treedef = jax.tree.flatten(template._replace(learner=()))
  if len(leaves) != len(wanted):
    raise CheckpointError(
        f'{where}: the saved runtime state has {len(leaves)} arrays where this '
        f'config\'s has {len(wanted)}: was the config changed?')
  paths = [jax.tree_util.keystr(p) for p, _ in
           jax.tree_util.tree_flatten_with_path(
               template._replace(learner=()))[0]]
  bad = [f'{path}: saved {x.shape} {x.dtype}, expected {w.shape} {w.dtype}'
         for path, x, w in zip(paths, leaves, wanted)
         if x.shape != w.shape or x.dtype != w.dtype]
  if bad:
    raise CheckpointError(
        f'{where}: the saved runtime state does not fit this config '
        f'({len(bad)} arrays differ: {"; ".join(bad[:5])}).')
  state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])
  return state._replace(learner=learner), dict(saved.get('counters', {}))


def run(config, exp_dir: str, max_iterations: Optional[int] = None,
        resume: bool = False):
  """Trains ``config`` with the anakin runtime, writing under ``exp_dir``.

  Logs every ``log_every_updates`` iterations (one jitted chunk), prints
  progress, and checkpoints every ``checkpoint_every_s`` and at the end
  (Ctrl-C ends the run after the current chunk, with a final checkpoint).
  A checkpoint holds the learner state (what ``evaluate.py`` loads) and the
  rest of the runner state (env states, replay, keys, counters), so
  ``resume=True`` (``train.py --resume``) continues from the latest one
  exactly as the run would have gone on: the same updates and the same
  numbers as an uninterrupted run. ``max_iterations`` counts the run's
  iterations from its start, resumed or not.
  """
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime.program import RunResult, StopSignals  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  from marl_jax.utils.logging import MetricLogger, ProgressLine  # pylint: disable=g-import-not-at-top

  from marl_jax.utils.config import ConfigError  # pylint: disable=g-import-not-at-top
  env = make_env(config)
  algorithm = algorithms.make(config.algo, env.spec(), config)
  try:  # Shape errors (e.g. indivisible minibatches) as one line, early.
    anakin = make_anakin(config, env, algorithm)
    jax.eval_shape(anakin.iteration,
                   jax.eval_shape(anakin.init, jax.random.PRNGKey(0)))
  except ValueError as e:
    raise ConfigError(f'{config.algo} under the anakin runtime: {e}') from e
  chunk = max(1, int(config.log_every_updates))
  # Joint-episode iterations take fewer steps when episodes end early, so the
  # loop runs until num_steps rather than for a fixed number of iterations.
  total = np.inf if max_iterations is None else max_iterations

  def run_chunk(state):
    return jax.lax.scan(lambda s, _: anakin.iteration(s), state, None,
                        length=chunk)

  run_chunk = jax.jit(run_chunk, donate_argnums=0)
  # A resumed run takes its state from the checkpoint instead (below).
  state = None if resume else jax.jit(anakin.init)(jax.random.PRNGKey(config.seed))
  test_fn = jax.jit(anakin.test) if anakin.test is not None else None
  test_episodes = int(config.get('test_episodes', 0) or 0)
  final_episodes = int(config.get('final_test_episodes', 0) or 0)
  if final_episodes < 0:
    raise ConfigError(f'final_test_episodes must be >= 0, got {final_episodes}.')
  final_fn = test_fn
  if test_fn is not None and final_episodes not in (0, test_episodes):
    final_config = ml_collections.ConfigDict(config.to_dict())
    final_config.test_episodes = final_episodes
    final_fn = jax.jit(make_anakin(final_config, env, algorithm).test)
  else:
    final_episodes = test_episodes
  test_interval = max(int(config.get('test_interval_steps', 0) or 0), 1)
  # Each test's key is a function of the env step it is taken at, so a
  # resumed run tests as the uninterrupted run would have.
  test_key = jax.random.PRNGKey(config.seed + 1_000_003)

  ckpt = checkpointing.Checkpointer(os.path.join(exp_dir, 'checkpoints'),
                                    max_to_keep=config.max_checkpoints_to_keep)
  logger = MetricLogger(exp_dir)
  env_steps, iterations, interrupted = 0, 0, False
  last_returns = None
  next_test, last_test, tested_at = 0, {}, -1
  if resume:
    template = jax.eval_shape(anakin.init, jax.random.PRNGKey(0))
    restored, meta = ckpt.restore(
        target=dict(learner=template.learner, runtime=b''))
    where = f'the checkpoint at env step {meta.get("env_steps")} in {ckpt.directory}'
    state, counters = _restore_runtime(
        restored['runtime'],
        template, jax.tree.map(jnp.asarray, restored['learner']), where)
    env_steps = int(meta['env_steps'])
    iterations = int(counters['iterations'])
    next_test, tested_at = int(counters['next_test']), int(counters['tested_at'])
    print(f'anakin: resumed from env step {env_steps:,} ({iterations:,} '
          f'iterations, {int(np.asarray(state.learner.step)[0]):,} updates)',
          flush=True)
  progress = ProgressLine(total_steps=int(config.num_steps),
                          interval_s=config.progress_every_s,
                          initial_steps=env_steps)
  last_ckpt = time.monotonic()

  def run_test(fn=test_fn, episodes=test_episodes):
    nonlocal last_test, tested_at
    sub = jax.random.fold_in(
        jax.random.fold_in(test_key, env_steps % (2**31 - 1)), episodes)
    last_test = {k: np.asarray(v, np.float64)
                 for k, v in jax.device_get(fn(state, sub)).items()}
    tested_at = env_steps
    logger.write('test', env_steps, {'test_episodes': episodes, **last_test})

  def save(force=False):
    # The same layout as the distributed runtime's, so load_run reads both;
    # ``runtime`` holds the rest of the runner state, for resume.
    runtime = _runtime_blob(state, iterations=iterations, next_test=next_test,
                            tested_at=tested_at)
    ckpt.save(env_steps, dict(learner=state.learner, runtime=runtime), metadata=dict(
        env_steps=env_steps, learner_steps=int(np.asarray(
            state.learner.step)[0]), algo=config.algo, env=config.env,
        population_size=int(config.population_size), runtime='anakin'),
              force=force)

  with StopSignals() as flag:
    try:
      while iterations < total and env_steps < config.num_steps:
        if flag.stop:
          interrupted = True
          break
        t0 = time.monotonic()
        state, metrics = run_chunk(state)
        metrics = jax.device_get(metrics)  # [chunk, P]
        iterations += chunk
        env_steps += int(np.sum(metrics.pop('env_steps')))
        counts = np.asarray(metrics['episodes'], np.float64)
        episode = {}
        for k in [k for k in metrics if k.startswith('episode_')]:
          v = np.nan_to_num(np.asarray(metrics.pop(k), np.float64))
          with np.errstate(invalid='ignore', divide='ignore'):
            episode[k] = np.where(counts.sum(0) > 0, (v * counts).sum(0) /
                                  counts.sum(0), np.nan)
        # Keys with no value yet (no episode ended, no update made) are left
        # out rather than logged as nan.
        episode = {k: v for k, v in episode.items() if np.any(np.isfinite(v))}
        if 'episode_return' in episode:
          last_returns = episode['episode_return']
          logger.write('actor', env_steps, episode)
        learner = {k: np.asarray(v[-1], np.float64) for k, v in metrics.items()
                   if np.ndim(v) == 2 and np.any(np.isfinite(v[-1]))}
        learner['iterations_per_s'] = chunk / max(time.monotonic() - t0, 1e-9)
        logger.write('learner', env_steps, learner)
        if test_fn is not None and env_steps >= next_test:
          run_test()
          next_test = (env_steps // test_interval + 1) * test_interval
        extra = {'updates': int(np.asarray(state.learner.step)[0])}
        extra.update({k: float(v[0]) if v.size == 1 else
                      ' '.join(f'{x:.2f}' for x in v)
                      for k, v in last_test.items() if k != 'test_return'})
        progress.update(env_steps, last_returns, extra)
        if time.monotonic() - last_ckpt >= config.checkpoint_every_s:
          save()
          last_ckpt = time.monotonic()
      if test_fn is not None and (tested_at != env_steps or
                                  final_episodes != test_episodes):
        run_test(final_fn, final_episodes)  # the final test, maybe larger
        if final_episodes != test_episodes:
          print('anakin: final greedy test, '
                f'{final_episodes} episodes per member: ' + ', '.join(
                    f'{k[5:] if k.startswith("test_") else k} '
                    + ' '.join(f'{x:.3f}' for x in np.ravel(v))
                    for k, v in last_test.items()), flush=True)
      save(force=True)
      ckpt.wait()
    finally:
      progress.final(env_steps, last_returns)
      logger.close()
      ckpt.close()
  logging.info('anakin: %d iterations, %d env steps.', iterations, env_steps)
  return RunResult(env_steps=env_steps,
                   learner_steps=int(np.asarray(state.learner.step)[0]),
                   interrupted=interrupted, member_returns=last_returns)
