"""Anakin's training program: ``make_anakin`` and ``make_train`` (pure).

``make_anakin(config, env, algorithm)`` returns the pure pieces of a run:
``init(key) -> state [P]`` and ``iteration(state) -> (state, metrics [P])``
(each member's rollout, ``anakin.rollouts``, then its update: on the
sequences just played, or ``updates_per_iteration`` updates sampled from its
on-device replay of episodes or chunks), and the greedy ``test``.
``make_train`` scans iterations into one ``train(key)`` (PureJaxRL), which
jits as one program and vmaps over seeds.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from marl_jax.algorithms.base import Algorithm
from marl_jax.envs.base import JaxEnvironment
from marl_jax.replay import episode_buffer
from marl_jax.runtime.anakin.rollouts import MemberState, make_rollouts
from marl_jax.types import EpisodeBatch, TimeStep


class Anakin(NamedTuple):
  """``init(key) -> state [P]``; ``iteration(state) -> (state, metrics)``.

  ``steps_per_iteration`` is the (maximum) number of env steps of one
  iteration summed over members; iterations count their real steps in
  ``metrics['env_steps']`` (fewer when episodes end early, and a step on a
  ``LAST`` timestep only resets the env), and ``num_iterations`` (the default
  length of ``make_train``) assumes every step is real, so it takes at most
  ``num_steps``.
  """
  init: Callable[[jax.Array], MemberState]
  iteration: Callable[[MemberState], Any]
  steps_per_iteration: int
  num_iterations: int
  # ``test(state [P], key) -> {'test_return': [P], 'test_<info>': [P]}``
  # (module docstring); None when ``test_episodes`` is 0.
  test: Optional[Callable[[MemberState, jax.Array], Any]] = None


def make_anakin(config, env: JaxEnvironment, algorithm: Algorithm,
                num_iterations: Optional[int] = None,
                partners=None) -> Anakin:
  """The pure pieces of an anakin run of ``algorithm`` on ``env``.

  Args:
    config: the run config (``population_size``, ``num_envs_per_actor``,
      ``num_steps``, algorithm keys).
    env: a functional environment.
    algorithm: built for ``env.spec()``.
    num_iterations: iterations of ``train`` (default: enough for
      ``num_steps``).
    partners: a ``runtime.partners.Pool`` of fixed training partners
      (sequence algorithms only), or None.
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
  if partners is not None and joint:
    raise ValueError(f'{algorithm.name} learns from joint episodes; fixed '
                     'partners play beside learners of sequences (IMPALA, '
                     'OPRE, MAPPO/IPPO).')
  r = make_rollouts(env, algorithm, P, M, T, partners=partners)
  act, acting_params = r.act, r.acting_params

  # ----------------------------------------------------------------- init
  def member_init(key) -> MemberState:
    k_learner, k_env, k_act, k_run = jax.random.split(key, 4)
    learner = algorithm.init(k_learner)
    env_state, ts = r.env_reset(k_env)
    core_in = algorithm.initial_core_state(M * N)
    prev_action = jnp.zeros((M, N), jnp.int32)
    prev_reward = jnp.zeros((M, N), jnp.float32)
    env_steps = jnp.zeros((), jnp.int32)
    pstate = r.partner_init()
    if joint:
      action = prev_action
      logits = jnp.zeros((M, N, spec.num_actions), jnp.float32)
      core = core_in
      example = _episode_item(jax.tree.map(lambda x: x[0], ts))
      buffer = episode_buffer.init(example, int(table.max_size))
    else:
      k_partner = None
      if partners is not None:
        k_act, k_partner = jax.random.split(k_act)
      action, logits, core = act(acting_params(learner, env_steps), ts,
                                 prev_action, prev_reward, core_in, k_act)
      action, pstate = r.partner_act(pstate, ts, prev_action, prev_reward,
                                     action, k_partner)
      buffer = ()
    return MemberState(learner, env_state, ts, action, logits, core, core_in,
                       prev_action, prev_reward,
                       jnp.zeros((M, N), jnp.float32),
                       {k: jnp.zeros((M, N), jnp.float32) for k in info_keys},
                       buffer, env_steps, k_run, pstate)

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
    """A rollout of ``T`` steps per copy, then the member's update on it."""
    key, k_rollout = jax.random.split(ms.key)
    params = acting_params(ms.learner, ms.env_steps)
    ms, traj, steps_taken, episode_metrics = r.sequences(ms, params,
                                                         k_rollout)
    learner, metrics = algorithm.update(ms.learner, traj)
    metrics = dict(metrics)
    metrics.update(episode_metrics)
    metrics['env_steps'] = steps_taken.astype(jnp.float32)
    ms = ms._replace(learner=learner, env_steps=ms.env_steps + steps_taken,
                     key=key)
    return ms, metrics

  # ------------------------------------------ joint episodes (replay-based)
  # Replay semantics come from the algorithm's TableSpec alone.
  alpha = float(table.priority_exponent) if table.prioritized else 0.
  total_member_steps = max(int(config.num_steps) // P, 1)
  updates = int(config.get('updates_per_iteration', 1))
  B = int(table.batch_size)
  chunked = table.item == 'chunk'
  rollout = r.chunks if chunked else r.episodes

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
    return r.test(ms, key, E, horizon, reward_inputs=not joint)

  def test(state: MemberState, key):
    return jax.vmap(member_test)(state, jax.random.split(key, P))

  def init(key) -> MemberState:
    state = jax.vmap(member_init)(jax.random.split(key, P))
    # Strongly typed, as ``iteration`` returns it: a weakly typed leaf (from
    # an env's reset, say) would make every jitted chunk compile twice.
    return jax.tree.map(
        lambda x: jax.lax.convert_element_type(x, jnp.result_type(x)), state)

  def iteration(state: MemberState):
    return jax.vmap(member_iteration)(state)

  return Anakin(init=init, iteration=iteration,
                steps_per_iteration=steps_per_iteration,
                num_iterations=num_iterations, test=test if E > 0 else None)


def make_train(config, env: JaxEnvironment, algorithm: Algorithm,
               num_iterations: Optional[int] = None, partners=None):
  """``train(key) -> (final state [P], metrics [iterations, P])``, pure."""
  anakin = make_anakin(config, env, algorithm, num_iterations,
                       partners=partners)

  def train(key):
    state = anakin.init(key)
    return jax.lax.scan(lambda s, _: anakin.iteration(s), state, None,
                        length=anakin.num_iterations)

  return train
