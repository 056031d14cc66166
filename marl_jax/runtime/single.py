"""The ``single`` launcher: actor, replay and learner nodes in one process.

For debugging and exact reproducibility: the loop alternates ``T`` vectorised
environment steps with as many learner updates as the replay allows, so a run
is a deterministic function of its config and seed. A checkpoint holds the
learner state and everything else the loop needs to continue exactly (env
states, partial sequences, queued sequences, RNG states), so a resumed run
gives the same params as an uninterrupted one.
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
from marl_jax.population import pbt
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
  fsp = config.matchmaking == 'fsp'
  pool_size = int(config.get('fsp_pool_size', 0)) if fsp else 0
  if fsp and (pool_size <= 0 or config.fsp_snapshot_every_updates <= 0):
    raise config_lib.ConfigError(
        'matchmaking=fsp needs fsp_pool_size and fsp_snapshot_every_updates '
        f'> 0, got {config.get("fsp_pool_size")} and '
        f'{config.get("fsp_snapshot_every_updates")}.')
  loop = EnvLoop(env_list, algorithm, population_size, config.matchmaking,
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

  def runtime_state() -> Dict[str, Any]:
    return dict(loop=loop.get_state(), replay=replay.get_state(),
                pbt_rng=pbt_rng.bit_generator.state, pbt_window=pbt_window,
                pool=dict(pool))

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
    except BaseException:
      checkpointer.close()
      raise

  acting_device = jax.local_devices()[0]
  logger = MetricLogger(exp_dir)
  progress = ProgressLine(total_steps=config.num_steps,
                          interval_s=config.progress_every_s,
                          initial_steps=loop.env_steps)
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
          if fsp and version % config.fsp_snapshot_every_updates == 0:
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
