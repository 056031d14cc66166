"""The ``single`` launcher: the program's nodes in one process, in turn.

For debugging and exact reproducibility. ``run`` builds the same program as
``local`` and ``ray`` (``program.make_program``: counter, replay, learner,
actors, evaluator; the same node classes), holds the nodes as plain objects
instead of processes, and steps them in a fixed order:
every actor plays ``T`` steps of its copies and writes to the replay, then the
learner updates on every batch the replay holds, then the evaluator looks for
new params. A run is thus a deterministic function of its config and seed.
The replay's queues evict their oldest item when full instead of blocking
(one thread cannot wait for itself). A checkpoint holds the learner state and
everything else the nodes need to continue exactly (env states, partial
sequences, queued sequences, RNG states, the counter), so a resumed run gives
the same params as an uninterrupted one.

Population training that needs the whole population in one place runs here:
PBT (``pbt_every_updates``: members are scored by ``pbt_eval_episodes``
evaluation episodes each, in self-play, on ``episode_sparse_reward`` where the
env reports it and the return otherwise), fictitious self-play (``matchmaking=fsp``: a ring
of ``fsp_pool_size`` frozen snapshots) and PSRO (``matchmaking=psro``).

PSRO (Lanctot et al., 2017, "A unified game-theoretic approach to
multiagent reinforcement learning") with learned policies: the snapshot ring
is the policy set. At the start and then every ``psro_iteration_updates``
updates, the learning member (population of one) plays
``psro_eval_episodes`` evaluation episodes with every policy of the set and
with itself (seats rotating); the results fill the payoff table saved with
the run (``payoff.json``). The learner is then frozen into the set as
``snapshot_<k>``, the meta-solver (``psro_meta_solver``: ``nash`` for
two-player zero-sum games, ``replicator`` for general-sum) computes the
meta-strategy over the set, and until the next iteration training partners
are drawn from the set by it, so the learner trains a best response to the
mixture. Each iteration writes a row to ``psro.csv``: the meta-strategy per
ring slot (and which snapshot is in it), its exploitability within the
restricted game, and the best-response gain of the new policy over the
previous mixture (an estimate of that mixture's exploitability).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from marl_jax import algorithms
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import policies as policies_lib
from marl_jax.population import payoff as payoff_lib
from marl_jax.population import pbt
from marl_jax.population import psro as psro_lib
from marl_jax.replay.server import ReplayNode
from marl_jax.runtime import program as program_lib
from marl_jax.runtime.actor import ActorNode
from marl_jax.runtime.counter import Counter
from marl_jax.runtime.evaluator import EvaluatorNode
from marl_jax.runtime.learner import LearnerNode
from marl_jax.runtime.program import RunResult
from marl_jax.utils import checkpointing
from marl_jax.utils import config as config_lib
from marl_jax.utils.logging import ProgressLine


def _check_population_config(config) -> None:
  """FSP/PSRO settings: one clear error per bad value."""
  if config.matchmaking in ('fsp', 'psro'):
    pool_size = int(config.get('fsp_pool_size', 0))
    if pool_size <= 0 or (config.matchmaking == 'fsp' and
                          config.fsp_snapshot_every_updates <= 0):
      raise config_lib.ConfigError(
          f'matchmaking={config.matchmaking} needs fsp_pool_size and '
          'fsp_snapshot_every_updates > 0, got '
          f'{config.get("fsp_pool_size")} and '
          f'{config.get("fsp_snapshot_every_updates")}.')
  if config.matchmaking == 'psro':
    for key in ('psro_iteration_updates', 'psro_eval_episodes'):
      value = config.get(key, 0)
      if not isinstance(value, int) or value <= 0:
        raise config_lib.ConfigError(
            f'matchmaking=psro needs {key} > 0, got {value!r}.')
    solver = config.get('psro_meta_solver', 'replicator')
    if solver not in psro_lib.META_SOLVERS:
      raise config_lib.ConfigError(
          f'psro_meta_solver {solver!r} is not available; valid: '
          f'{", ".join(psro_lib.META_SOLVERS)}.')
    if config.population_size != 1:
      raise config_lib.ConfigError(
          'matchmaking=psro trains one learning member (population_size=1), '
          f'got population_size={config.population_size}.')
  if config.get('pbt_every_updates', 0):
    episodes = config.get('pbt_eval_episodes', 0)
    if not isinstance(episodes, int) or episodes <= 0:
      raise config_lib.ConfigError(
          f'pbt_every_updates needs pbt_eval_episodes > 0, got {episodes!r}.')


class _ActingVariables:
  """The actors' variable source under ``single``: the learner's params,
  followed by the ring of frozen snapshots under FSP and PSRO."""

  def __init__(self, learner: LearnerNode, pool: Dict[str, Any]):
    self._learner = learner
    self._pool = pool

  def get_variables(self, known_version: int = -1):
    version, params = self._learner.get_variables(known_version)
    if params is None or self._pool.get('params') is None:
      return version, params
    return version, jax.tree.map(lambda a, b: np.concatenate([a, b], axis=0),
                                 params, self._pool['params'])


def _build(program: program_lib.Program, variables_for_actors):
  """The program's node objects, built in this process in program order
  (handles resolve to the objects themselves; actors pull params from
  ``variables_for_actors(learner)``)."""
  objects: Dict[str, Any] = {}
  for node in program.nodes:
    def resolve(handle, node=node):
      obj = objects[handle.node.label]
      if node.group == 'actor' and handle.node.group == 'learner':
        return variables_for_actors(obj)
      return obj
    args, kwargs = node.resolved_arguments(resolve)
    if node.constructor is ReplayNode:
      kwargs = dict(kwargs, evicting=True)
    objects[node.label] = node.constructor(*args, **kwargs)
  return objects


def run(config, exp_dir: str, resume: bool = False,
        max_env_steps_this_run: Optional[int] = None) -> RunResult:
  """Trains ``config`` in one process, writing everything under ``exp_dir``.

  Args:
    config: a validated ``ml_collections.ConfigDict`` (see configs/).
    exp_dir: the run directory (config copy, logs, checkpoints, videos).
    resume: continue from the latest checkpoint in ``exp_dir/checkpoints``.
    max_env_steps_this_run: stop early after this many env steps (tests).
  """
  config_lib.validate(config)
  _check_population_config(config)
  population_size = config.population_size
  psro_on = config.matchmaking == 'psro'
  fsp = config.matchmaking in ('fsp', 'psro')  # a ring of frozen snapshots
  pool_size = int(config.get('fsp_pool_size', 0)) if fsp else 0
  # Frozen snapshots for fictitious self-play: a ring of pool_size params,
  # filled with copies of member 0 until real snapshots replace them.
  pool: Dict[str, Any] = dict(count=0, params=None)
  program = program_lib.make_program(config, exp_dir, resume=resume)
  objects = _build(program, lambda learner: _ActingVariables(learner, pool))
  counter: Counter = objects['counter']
  replay: ReplayNode = objects['replay']
  learner_node: LearnerNode = objects['learner']
  actors: List[ActorNode] = [objects[n.label]
                             for n in program.groups['actor']]
  evaluator: Optional[EvaluatorNode] = objects.get('evaluator')
  # Queues are drained each round. A sampled (uniform/prioritized) table gets
  # batches at its TableSpec's samples_per_insert (QMIX: PyMARL2's ratio) or,
  # without one, one batch per num_envs_per_actor items inserted. Credits
  # keep the ratio here: this one thread cannot wait on a rate limiter, so
  # the replay node builds the table without one (evicting=True).
  credited = replay.spec.sampler != 'fifo'
  items_per_update = (
      replay.spec.batch_size / replay.spec.samples_per_insert
      if replay.spec.samples_per_insert else float(config.num_envs_per_actor))

  runtime = learner_node.setup()  # restores the counter too
  learner = learner_node.learner
  algorithm = learner_node.algorithm
  closers = [lambda: learner_node.finish(save=False)]
  pbt_rng = np.random.default_rng([config.seed, 7])
  # PSRO: names of the snapshots in the ring slots in use, the meta-strategy
  # over them, and the payoff table of every policy the set ever held.
  psro_state = dict(iteration=0, slots=[], weights=None,
                    table=payoff_lib.PayoffTable())
  pbt_rounds = [0]
  loops = []

  def runtime_state() -> Dict[str, Any]:
    state = dict(loops=[loop.get_state() for loop in loops],
                 replay=replay.get_state(),
                 pbt_rng=pbt_rng.bit_generator.state,
                 pbt_rounds=pbt_rounds[0], pool=dict(pool))
    if psro_on:
      state['psro'] = dict(psro_state, slots=list(psro_state['slots']),
                           table=psro_state['table'].to_dict())
    return state

  def set_snapshot_weights(weights) -> None:
    for loop in loops:
      loop.snapshot_weights = weights

  try:
    if fsp:
      pool['params'] = jax.tree.map(
          lambda x: np.repeat(np.asarray(x)[:1], pool_size, axis=0),
          learner.state.params)
    if resume:
      if (len(runtime.get('loops', ())) != len(actors) or
          'replay' not in runtime):
        raise checkpointing.CheckpointError(
            f'The latest checkpoint in {exp_dir} was not written by the single '
            f'launcher with {len(actors)} actors (num_actors), so it cannot '
            'be resumed exactly: resume it with the launcher that wrote it.')
      pbt_rng.bit_generator.state = runtime['pbt_rng']
      pbt_rounds[0] = runtime['pbt_rounds']
      if fsp and runtime.get('pool', {}).get('params') is not None:
        pool.update(runtime['pool'])
      if psro_on and 'psro' in runtime:
        psro_state.update(runtime['psro'], slots=list(runtime['psro']['slots']),
                          table=payoff_lib.PayoffTable.from_dict(
                              runtime['psro']['table']))
    # Actors pull their first params (with the snapshot ring) here.
    for actor in actors:
      actor.setup()
      closers.append(actor.close)
      loops.append(actor.loop)
    if evaluator is not None:
      evaluator.setup()
      closers.append(evaluator.close)
    if resume:
      for loop, state in zip(loops, runtime['loops']):
        loop.set_state(state)
      replay.set_state(runtime['replay'])
      if psro_on and 'psro' in runtime:
        set_snapshot_weights(psro_state['weights'])
      logging.info('Resumed from env step %d (learner step %d).',
                   counter.get_state()['env_steps'], learner.steps)
  except BaseException:
    for close in reversed(closers):
      close()
    raise
  spec = loops[0].spec
  learner_node.extra_state = runtime_state
  learner_node.autosave = False  # Saved below, between whole iterations.

  logger = learner_node._logger  # pylint: disable=protected-access
  eval_policy = []  # built on first use, then only its params change
  metric = ('episode_sparse_reward' if 'sparse_reward' in spec.info_keys
            else 'episode_return')

  def env_steps() -> int:
    return counter.get_state()['env_steps']

  def policy_for(params, seed: int):
    if not eval_policy:
      eval_policy.append(policies_lib.PopulationPolicy(
          algorithm, params, spec.num_agents, greedy=False, seed=seed))
    eval_policy[0].set_params(params, seed=seed)
    return eval_policy[0]

  def take_snapshot() -> None:
    member = pool['count'] % population_size
    slot = pool['count'] % pool_size
    current = jax.tree.map(np.asarray, learner.state.params)

    def put(buf, x):
      buf = buf.copy()
      buf[slot] = x[member]
      return buf

    pool['params'] = jax.tree.map(put, pool['params'], current)
    pool['count'] += 1
    for loop in loops:
      loop.num_snapshots = min(pool['count'], pool_size)

  def psro_matches(env, policy, partner: int) -> np.ndarray:
    """``[episodes, 2]``: the learner's own value of ``metric`` and its
    partner's (mean over the partner's seats); the learner's seat rotates."""
    n = spec.num_agents
    episodes = config.psro_eval_episodes
    out = np.zeros((episodes, 2))
    for e in range(episodes):
      ids = [partner] * n
      ids[e % n] = 0
      values = crossplay.play_seated_episode(
          env, [(policy, m) for m in ids], metric).values
      others = np.delete(values, e % n)
      out[e] = values[e % n], others.mean() if others.size else values[e % n]
    return out

  def psro_iteration() -> None:
    new = f'snapshot_{pool["count"]}'
    slots, table = psro_state['slots'], psro_state['table']
    acting = _ActingVariables(learner_node, pool).get_variables()[1]
    seed = int(np.random.default_rng([config.seed, 11, psro_state['iteration']])
               .integers(2**31 - 1))
    policy = policy_for(acting, seed)
    env = algorithms.make_env(config)
    try:
      env.set_training_progress(env_steps())
      for slot, name in enumerate(slots):
        results = psro_matches(env, policy, population_size + slot)
        table.update(new, name, results[:, 0])
        table.update(name, new, results[:, 1])
      table.update(new, new, psro_matches(env, policy, 0).reshape(-1))
    finally:
      env.close()
    row = {'iteration': float(psro_state['iteration']),
           'updates': float(learner.steps)}
    if slots:
      previous = psro_state['weights']
      m, _ = table.matrix(slots, slots)
      against = np.array([table.mean(new, name) for name in slots])
      row['return_vs_meta_strategy'] = float(previous @ against)
      row['best_response_gain'] = float(previous @ against -
                                        previous @ m @ previous)
    take_snapshot()
    slot = (pool['count'] - 1) % pool_size
    if slot < len(slots):
      slots[slot] = new
    else:
      slots.append(new)
    m, _ = table.matrix(slots, slots)
    meta = psro_lib.meta_strategy(m, config.psro_meta_solver)
    psro_state['weights'] = meta.weights
    set_snapshot_weights(meta.weights)
    psro_state['iteration'] += 1
    table.save(exp_dir)
    row['exploitability'] = meta.exploitability
    row['pool_size'] = float(len(slots))
    for k, name in enumerate(slots):
      row[f'meta_strategy/slot_{k}'] = float(meta.weights[k])
      row[f'snapshot_id/slot_{k}'] = float(name[len('snapshot_'):])
    logger.write('psro', env_steps(), row)
    logging.info('PSRO iteration %d: %s in the set, meta-strategy %s',
                 psro_state['iteration'], new, np.round(meta.weights, 3))

  def pbt_scores() -> np.ndarray:
    """Each member's mean ``metric`` over ``pbt_eval_episodes`` self-play
    evaluation episodes with its current params."""
    params = jax.tree.map(np.asarray, learner.state.params)
    seed = int(np.random.default_rng([config.seed, 13, pbt_rounds[0]])
               .integers(2**31 - 1))
    policy = policy_for(params, seed)
    env = algorithms.make_env(config)
    scores = np.zeros((population_size,))
    try:
      env.set_training_progress(env_steps())
      for member in range(population_size):
        scores[member] = np.mean([
            crossplay.play_seated_episode(
                env, [(policy, member)] * spec.num_agents, metric).values.mean()
            for _ in range(config.pbt_eval_episodes)])
    finally:
      env.close()
    return scores

  def pbt_round() -> None:
    scores = pbt_scores()
    pbt_rounds[0] += 1
    cfg = pbt.PBTConfig(
        truncation=config.pbt_truncation,
        perturb_factors=tuple(config.pbt_perturb_factors),
        bounds={'learning_rate': tuple(config.pbt_learning_rate_bounds),
                'entropy_cost': tuple(config.pbt_entropy_cost_bounds)})
    state, events = pbt.exploit_and_explore(
        pbt_rng, jax.tree.map(np.asarray, learner.state), scores, cfg)
    learner.set_state(state)
    learner_node.publish()
    for e in events:
      logging.warning('PBT: member %d (%s %.2f) copies member %d (%.2f); '
                      'hyperparameters now %s', e.target, metric,
                      scores[e.target], e.source, scores[e.source],
                      e.hyperparams)
    logger.write('pbt', env_steps(), {
        'score': scores, 'copied_from': np.array([
            next((e.source for e in events if e.target == m), -1)
            for m in range(population_size)], np.float64),
        **{k: np.asarray(v, np.float64)
           for k, v in learner.state.hyperparams.items()}})

  progress = ProgressLine(total_steps=config.num_steps,
                          interval_s=config.progress_every_s,
                          initial_steps=env_steps())
  start_steps = env_steps()
  interrupted = False
  ok = False
  try:
    if psro_on and pool['count'] == 0:
      psro_iteration()  # The initial policy set: the learner at its start.
    credit = 0.  # updates due on a sampled table
    with program_lib.StopSignals() as flag:
      while not counter.should_stop():
        if (max_env_steps_this_run is not None and
            env_steps() - start_steps >= max_env_steps_this_run):
          break
        if flag.stop:
          interrupted = True
          counter.request_stop()
          break
        inserts = replay.info()['inserts']
        for actor in actors:
          actor.step()
        if credited:
          credit += ((replay.info()['inserts'] - inserts) /
                     config.population_size / items_per_update)
        while replay.can_sample() and (not credited or credit >= 1):
          credit -= 1
          learner_node.step(replay.sample(timeout=0))
          version = learner_node.version
          if (config.get('pbt_every_updates', 0) and
              version % config.pbt_every_updates == 0):
            pbt_round()
          if psro_on and version % config.psro_iteration_updates == 0:
            psro_iteration()
          elif (fsp and not psro_on and
                version % config.fsp_snapshot_every_updates == 0):
            take_snapshot()
        if evaluator is not None:
          evaluator.step()
        learner_node.save_if_due()
        counts = counter.get()
        progress.update(counts['env_steps'], counts['member_returns'],
                        {'updates': counts['learner_steps']})
    ok = True
  finally:
    counts = counter.get()
    progress.final(counts['env_steps'], counts['member_returns'])
    # Finished, interrupted or stopped early: a final, complete checkpoint.
    # (After an exception nothing is saved: the latest checkpoint stays the
    # last consistent one.)
    learner_node.finish(save=ok)
    for close in reversed(closers[1:]):
      close()
    counter.close()
  return RunResult(env_steps=counts['env_steps'],
                   learner_steps=learner.steps, interrupted=interrupted,
                   member_returns=counts['member_returns'])
