"""The ``single`` launcher: actor, replay and learner nodes in one process.

For debugging and exact reproducibility: the loop alternates ``T`` vectorised
environment steps with as many learner updates as the replay allows, so a run
is a deterministic function of its config and seed. A checkpoint holds the
learner state and everything else the loop needs to continue exactly (env
states, partial sequences, queued sequences, RNG states), so a resumed run
gives the same params as an uninterrupted one.

Population training that needs the whole population in one place runs here:
PBT (``pbt_every_updates``), fictitious self-play (``matchmaking=fsp``: a ring
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

import dataclasses
import logging
import os
import pickle
import signal
import time
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax import algorithms
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import policies as policies_lib
from marl_jax.population import matchmaking
from marl_jax.population import payoff as payoff_lib
from marl_jax.population import pbt
from marl_jax.population import psro as psro_lib
from marl_jax.replay.table import PopulationQueue
from marl_jax.runtime.actor import EnvLoop
from marl_jax.runtime.learner import Learner
from marl_jax.utils import checkpointing
from marl_jax.utils import config as config_lib
from marl_jax.utils.logging import MetricLogger, ProgressLine


@dataclasses.dataclass
class RunResult:
  env_steps: int
  learner_steps: int
  interrupted: bool
  member_returns: Optional[np.ndarray]  # mean episode return per member, last window


class _StopFlag:
  """Set by SIGINT/SIGTERM so the loop ends at a safe point."""

  def __init__(self):
    self.stop = False
    self._previous = {}

  def __enter__(self):
    def handler(signum, frame):
      del frame
      if self.stop:  # Second Ctrl-C: give up on the graceful stop.
        raise KeyboardInterrupt
      logging.warning('Received signal %d: stopping after this iteration and '
                      'writing a final checkpoint (Ctrl-C again to abort).',
                      signum)
      self.stop = True
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, handler)
      except ValueError:  # Not the main thread: leave signals alone.
        pass
    return self

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)


def _member_means(stats: List[Dict[str, Any]], key: str,
                  population_size: int) -> np.ndarray:
  out = np.full((population_size,), np.nan)
  for m in range(population_size):
    values = [s[key] for s in stats if s['member'] == m]
    if values:
      out[m] = float(np.mean(values))
  return out


def learner_devices(config) -> list:
  devices = jax.local_devices()
  n = config.num_learner_devices or len(devices)
  if n > len(devices):
    raise config_lib.ConfigError(
        f'num_learner_devices={n} but only {len(devices)} local devices exist.')
  return devices[:n]


def _restore(checkpointer, learner, loop, replay, ckpt_dir) -> Dict[str, Any]:
  """Loads the latest checkpoint into the learner, env loop and replay."""
  target = dict(learner=learner.state, runtime=b'')
  restored, meta = checkpointer.restore(target=target)
  learner.set_state(restored['learner'])
  try:
    rt = pickle.loads(restored['runtime'])
    loop.set_state(rt['loop'])
    replay.set_state(rt['replay'])
  except Exception as e:  # A checkpoint of another layout or version.
    raise checkpointing.CheckpointError(
        f'The checkpoint at step {meta.get("env_steps")} in {ckpt_dir} has a '
        f'runtime state this run cannot use: {e}') from e
  logging.info('Resumed from env step %d (learner step %d).', loop.env_steps,
               learner.steps)
  return rt


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
  population_size = config.population_size
  num_copies = config.num_envs_per_actor * config.num_actors
  env_list = [config_lib.make_env(config) for _ in range(num_copies)]
  spec = env_list[0].spec()
  algorithm = algorithms.make(config.algo, spec, config)
  table = algorithm.replay_table
  devices = learner_devices(config)
  if table.batch_size % len(devices):
    raise config_lib.ConfigError(
        f'batch_size ({table.batch_size}) must be divisible by the number of '
        f'learner devices ({len(devices)}); set --config.num_learner_devices.')

  key = jax.random.PRNGKey(config.seed)
  learner_key, actor_seed_key = jax.random.split(key)
  learner = Learner(algorithm, population_size, learner_key, devices)
  replay = PopulationQueue(population_size, table.batch_size, table.max_size)
  actor_seed = int(jax.random.randint(actor_seed_key, (), 0, 2**31 - 1))
  psro_on = config.matchmaking == 'psro'
  fsp = config.matchmaking in ('fsp', 'psro')  # a ring of frozen snapshots
  pool_size = int(config.get('fsp_pool_size', 0)) if fsp else 0
  if fsp and (pool_size <= 0 or (not psro_on and
                                 config.fsp_snapshot_every_updates <= 0)):
    raise config_lib.ConfigError(
        f'matchmaking={config.matchmaking} needs fsp_pool_size and '
        'fsp_snapshot_every_updates > 0, got '
        f'{config.get("fsp_pool_size")} and '
        f'{config.get("fsp_snapshot_every_updates")}.')
  if psro_on:
    psro_every = config.get('psro_iteration_updates', 0)
    psro_solver = config.get('psro_meta_solver', 'replicator')
    psro_episodes = config.get('psro_eval_episodes', 2)
    for key, value in (('psro_iteration_updates', psro_every),
                       ('psro_eval_episodes', psro_episodes)):
      if not isinstance(value, int) or value <= 0:
        raise config_lib.ConfigError(
            f'matchmaking=psro needs {key} > 0, got {value!r}.')
    if psro_solver not in psro_lib.META_SOLVERS:
      raise config_lib.ConfigError(
          f'psro_meta_solver {psro_solver!r} is not available; valid: '
          f'{", ".join(psro_lib.META_SOLVERS)}.')
    if population_size != 1:
      raise config_lib.ConfigError(
          'matchmaking=psro trains one learning member (population_size=1), '
          f'got population_size={population_size}.')
  # Under PSRO the loop starts as FSP with no snapshot (the learner plays
  # itself) and draws partners by the meta-strategy once there is one.
  loop = EnvLoop(env_list, algorithm, population_size,
                 'fsp' if psro_on else config.matchmaking,
                 table.sequence_length, replay.insert, seed=actor_seed,
                 num_frozen=pool_size)
  # Frozen snapshots for fictitious self-play: a ring of pool_size params,
  # filled with copies of member 0 until real snapshots replace them.
  pool = dict(count=0, params=None)
  if fsp:
    pool['params'] = jax.tree.map(
        lambda x: np.repeat(np.asarray(x)[:1], pool_size, axis=0),
        learner.state.params)

  ckpt_dir = os.path.join(exp_dir, 'checkpoints')
  checkpointer = checkpointing.Checkpointer(
      ckpt_dir, max_to_keep=config.max_checkpoints_to_keep)

  pbt_rng = np.random.default_rng([config.seed, 7])
  pbt_window: List[Dict[str, Any]] = []
  # PSRO: names of the snapshots in the ring slots in use, the meta-strategy
  # over them, and the payoff table of every policy the set ever held.
  psro_state = dict(iteration=0, slots=[], weights=None,
                    table=payoff_lib.PayoffTable())
  def runtime_state() -> Dict[str, Any]:
    state = dict(loop=loop.get_state(), replay=replay.get_state(),
                 pbt_rng=pbt_rng.bit_generator.state, pbt_window=pbt_window,
                 pool=dict(pool))
    if psro_on:
      state['psro'] = dict(psro_state, slots=list(psro_state['slots']),
                           table=psro_state['table'].to_dict())
    return state

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
    loop.num_snapshots = min(pool['count'], pool_size)

  def acting_params():
    params = learner.params_on(acting_device)
    if not fsp:
      return params
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=0), params,
                        jax.device_put(pool['params'], acting_device))

  eval_policy = []  # built on first use, then only its params change
  metric = ('episode_sparse_reward' if 'sparse_reward' in spec.info_keys
            else 'episode_return')

  def psro_matches(env, partner: int) -> np.ndarray:
    """``[episodes, 2]``: the learner's own value of ``metric`` and its
    partner's (mean over the partner's seats); the learner's seat rotates."""
    n = spec.num_agents
    out = np.zeros((psro_episodes, 2))
    for e in range(psro_episodes):
      ids = [partner] * n
      ids[e % n] = 0
      values = crossplay.play_seated_episode(
          env, [(eval_policy[0], m) for m in ids], metric).values
      others = np.delete(values, e % n)
      out[e] = values[e % n], others.mean() if others.size else values[e % n]
    return out

  def psro_iteration() -> None:
    new = f'snapshot_{pool["count"]}'
    slots, table = psro_state['slots'], psro_state['table']
    acting = acting_params()
    seed = int(np.random.default_rng([config.seed, 11, psro_state['iteration']])
               .integers(2**31 - 1))
    if not eval_policy:
      eval_policy.append(policies_lib.PopulationPolicy(
          algorithm, acting, spec.num_agents, greedy=False, seed=seed))
    eval_policy[0].set_params(acting, seed=seed)
    env = config_lib.make_env(config)
    try:
      env.set_training_progress(loop.env_steps)
      for slot, name in enumerate(slots):
        results = psro_matches(env, population_size + slot)
        table.update(new, name, results[:, 0])
        table.update(name, new, results[:, 1])
      table.update(new, new, psro_matches(env, 0).reshape(-1))
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
    meta = psro_lib.meta_strategy(m, psro_solver)
    psro_state['weights'] = meta.weights
    loop.snapshot_weights = meta.weights
    psro_state['iteration'] += 1
    table.save(exp_dir)
    row['exploitability'] = meta.exploitability
    row['pool_size'] = float(len(slots))
    for k, name in enumerate(slots):
      row[f'meta_strategy/slot_{k}'] = float(meta.weights[k])
      row[f'snapshot_id/slot_{k}'] = float(name[len('snapshot_'):])
    logger.write('psro', loop.env_steps, row)
    logging.info('PSRO iteration %d: %s in the set, meta-strategy %s',
                 psro_state['iteration'], new, np.round(meta.weights, 3))

  def pbt_round() -> None:
    scores = _member_means(pbt_window, 'episode_return', population_size)
    cfg = pbt.PBTConfig(
        truncation=config.pbt_truncation,
        perturb_factors=tuple(config.pbt_perturb_factors),
        bounds={'learning_rate': tuple(config.pbt_learning_rate_bounds),
                'entropy_cost': tuple(config.pbt_entropy_cost_bounds)})
    state, events = pbt.exploit_and_explore(
        pbt_rng, jax.tree.map(np.asarray, learner.state), scores, cfg)
    learner.set_state(state)
    pbt_window.clear()
    for e in events:
      logging.warning('PBT: member %d (score %.2f) copies member %d (%.2f); '
                      'hyperparameters now %s', e.target, scores[e.target],
                      e.source, scores[e.source], e.hyperparams)
    logger.write('pbt', loop.env_steps, {
        'score': scores, 'copied_from': np.array([
            next((e.source for e in events if e.target == m), -1)
            for m in range(population_size)], np.float64),
        **{k: np.asarray(v, np.float64)
           for k, v in learner.state.hyperparams.items()}})

  def save(force: bool = False):
    state = dict(learner=learner.state,
                 runtime=pickle.dumps(runtime_state()))
    checkpointer.save(loop.env_steps, state,
                      metadata=dict(env_steps=loop.env_steps,
                                    learner_steps=learner.steps,
                                    algo=config.algo, env=config.env,
                                    population_size=population_size),
                      force=force)

  if resume:
    try:
      rt = _restore(checkpointer, learner, loop, replay, ckpt_dir)
      if 'pbt_rng' in rt:
        pbt_rng.bit_generator.state = rt['pbt_rng']
        pbt_window.extend(rt['pbt_window'])
      if fsp and rt.get('pool', {}).get('params') is not None:
        pool.update(rt['pool'])
      if psro_on and 'psro' in rt:
        psro_state.update(rt['psro'], slots=list(rt['psro']['slots']),
                          table=payoff_lib.PayoffTable.from_dict(
                              rt['psro']['table']))
        loop.snapshot_weights = psro_state['weights']
    except BaseException:
      checkpointer.close()
      raise

  acting_device = jax.local_devices()[0]
  logger = MetricLogger(exp_dir)
  progress = ProgressLine(total_steps=config.num_steps,
                          interval_s=config.progress_every_s,
                          initial_steps=loop.env_steps)
  if psro_on and pool['count'] == 0:
    try:
      psro_iteration()  # The initial policy set: the learner at its start.
    except BaseException:
      logger.close()
      checkpointer.close()
      raise
  params = acting_params()
  version = learner.steps
  start_steps = loop.env_steps
  last_ckpt = time.monotonic()
  last_returns = None
  interrupted = False

  with _StopFlag() as flag:
    try:
      while loop.env_steps < config.num_steps:
        if (max_env_steps_this_run is not None and
            loop.env_steps - start_steps >= max_env_steps_this_run):
          break
        if flag.stop:
          interrupted = True
          break
        loop.run(params, table.sequence_length, policy_version=version)
        stats = loop.pop_episode_stats()
        if stats:
          if config.get('pbt_every_updates', 0):
            pbt_window.extend(stats)
          last_returns = _member_means(stats, 'episode_return', population_size)
          episode_metrics = {
              'episode_return': last_returns,
              'episode_length': _member_means(stats, 'episode_length',
                                              population_size)}
          for info_key in spec.info_keys:
            episode_metrics[f'episode_{info_key}'] = _member_means(
                stats, f'episode_{info_key}', population_size)
          logger.write('actor', loop.env_steps, episode_metrics)

        updated = False
        while replay.can_sample():
          batch = replay.sample()
          ages = version - np.asarray(batch.policy_version)
          metrics = learner.update(batch)
          updated = True
          version += 1
          if version % config.log_every_updates == 0:
            m = {k: np.asarray(v) for k, v in metrics.items()}
            m['policy_lag'] = ages.mean(axis=1).astype(np.float64)
            m['replay_dropped'] = float(replay.num_dropped)
            logger.write('learner', loop.env_steps, m)
          if (config.get('pbt_every_updates', 0) and
              version % config.pbt_every_updates == 0):
            pbt_round()
          if psro_on and version % psro_every == 0:
            psro_iteration()
          elif (fsp and not psro_on and
                version % config.fsp_snapshot_every_updates == 0):
            take_snapshot()
        if updated:
          params = acting_params()

        progress.update(loop.env_steps, last_returns, {'updates': version})
        if time.monotonic() - last_ckpt >= config.checkpoint_every_s:
          save()
          last_ckpt = time.monotonic()
      # Finished, interrupted or stopped early: a final, complete checkpoint.
      # (After an exception nothing is saved: the latest checkpoint stays the
      # last consistent one.)
      save(force=True)
      checkpointer.wait()
    finally:
      progress.final(loop.env_steps, last_returns)
      logger.close()
      checkpointer.close()
      for env in env_list:
        env.close()

  return RunResult(env_steps=loop.env_steps, learner_steps=learner.steps,
                   interrupted=interrupted, member_returns=last_returns)
