"""Anakin's imperative shell: ``train.py --runtime=anakin``.

``run(config, exp_dir)`` builds the functional environment (``make_env``) and
the algorithm, runs jitted chunks of ``log_every_updates`` iterations, and
between them logs (``actor.csv``, ``learner.csv``, ``test.csv``), prints
progress, plays the greedy tests and checkpoints: the learner state (what
``evaluate.py`` loads) beside the rest of the runner state, so that
``resume=True`` continues exactly. Ctrl-C (``program.StopSignals``) ends the
run after the current chunk, with a final checkpoint.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from marl_jax.envs.base import JaxEnvironment
from marl_jax.runtime.anakin.rollouts import MemberState
from marl_jax.runtime.anakin.train import make_anakin


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
  from marl_jax.utils.logging import MetricLogger, ProgressLine, wandb_options  # pylint: disable=g-import-not-at-top

  from marl_jax.utils.config import ConfigError  # pylint: disable=g-import-not-at-top
  env = make_env(config)
  algorithm = algorithms.make(config.algo, env.spec(), config)
  chunk = max(1, int(config.log_every_updates))
  # Joint-episode iterations take fewer steps when episodes end early, so the
  # loop runs until num_steps rather than for a fixed number of iterations.
  total = np.inf if max_iterations is None else max_iterations
  try:  # Shape errors (e.g. indivisible minibatches) as one line, early.
    from marl_jax.runtime import partners as partners_lib  # pylint: disable=g-import-not-at-top
    pool = partners_lib.load_pool(config.get('partners', ''), config.env)
    if pool is not None:
      print(f'anakin: {pool.size} fixed partner policies '
            f'({", ".join(pool.names[:4])}{", ..." if pool.size > 4 else ""})',
            flush=True)
    anakin = make_anakin(config, env, algorithm, partners=pool)

    def run_chunk(state):
      return jax.lax.scan(lambda s, _: anakin.iteration(s), state, None,
                          length=chunk)

    # Each traced once, here (tracing a whole iteration takes seconds), the
    # chunk compiled for exactly the state init returns.
    init = jax.jit(anakin.init).lower(jax.random.PRNGKey(0))
    template = init.out_info
    run_chunk = jax.jit(run_chunk, donate_argnums=0).lower(template).compile()
  except ValueError as e:
    raise ConfigError(f'{config.algo} under the anakin runtime: {e}') from e
  # A resumed run takes its state from the checkpoint instead (below).
  state = None if resume else init.compile()(jax.random.PRNGKey(config.seed))
  test_fn = jax.jit(anakin.test) if anakin.test is not None else None
  test_episodes = int(config.get('test_episodes', 0) or 0)
  final_episodes = int(config.get('final_test_episodes', 0) or 0)
  if final_episodes < 0:
    raise ConfigError(f'final_test_episodes must be >= 0, got {final_episodes}.')
  final_fn = test_fn
  if test_fn is not None and final_episodes not in (0, test_episodes):
    final_config = ml_collections.ConfigDict(config.to_dict())
    final_config.test_episodes = final_episodes
    final_fn = jax.jit(make_anakin(final_config, env, algorithm,
                                   partners=pool).test)
  else:
    final_episodes = test_episodes
  test_interval = max(int(config.get('test_interval_steps', 0) or 0), 1)
  # Each test's key is a function of the env step it is taken at, so a
  # resumed run tests as the uninterrupted run would have.
  test_key = jax.random.PRNGKey(config.seed + 1_000_003)

  ckpt = checkpointing.Checkpointer(os.path.join(exp_dir, 'checkpoints'),
                                    max_to_keep=config.max_checkpoints_to_keep)
  logger = MetricLogger(exp_dir, wandb=wandb_options(config))
  env_steps, iterations, interrupted = 0, 0, False
  last_returns = None
  next_test, last_test, tested_at = 0, {}, -1
  if resume:
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

  # Checkpoints at fixed env steps too (e.g. the start, middle and end of a
  # self-play run whose stages become Fictitious Co-Play partners).
  every_steps = int(config.get('checkpoint_every_steps', 0) or 0)
  if every_steps < 0:
    raise ConfigError(f'checkpoint_every_steps must be >= 0, got {every_steps}.')
  next_step_ckpt = ((env_steps // every_steps + 1) * every_steps
                    if every_steps else None)
  with StopSignals() as flag:
    try:
      if every_steps and not resume:
        save(force=True)  # the policies before any training
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
        if next_step_ckpt is not None and env_steps >= next_step_ckpt:
          save(force=True)
          last_ckpt = time.monotonic()
          next_step_ckpt = (env_steps // every_steps + 1) * every_steps
        elif time.monotonic() - last_ckpt >= config.checkpoint_every_s:
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
