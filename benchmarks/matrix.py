r"""Every algorithm x environment family x runtime: does it train?

Each cell builds the config ``train.py --algo=A --env=E --runtime=R`` builds
(``configs/A.py:E@R``: the algorithm's defaults with the family's, the rest
from the env spec), shrinks it (tiny networks, short episodes and sequences,
a few updates), and runs it through the real runtime: the distributed program
under the ``single`` launcher, or anakin. A cell is

  ok        it ran its updates and every logged loss is finite;
  refused   the runtime cannot run it by its nature, and said why in one line;
  FAILED    anything else (the test fails).

  python benchmarks/matrix.py                  # the whole matrix, a table
  python benchmarks/matrix.py --algos=qmix --envs=pettingzoo/simple_spread

Cells run one after the other in a fresh worker process (``--jobs`` for
more). What a cell checks is whether it trains, not how fast, so workers
compile with XLA's backend optimisation off
(``--xla_backend_optimization_level=0``: the same programs, compiled in about
half the time; ``--optimized`` keeps XLA's default). ``tests/test_matrix.py``
runs the same cells the same way.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import importlib
import math
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from typing import Dict, NamedTuple, Optional, Tuple

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

# One environment per built-in family (and per JaxMARL family: Overcooked, MPE,
# SMAX); tests/test_matrix.py checks that none is missing.
ENVS = (
    'overcooked/cramped_room',
    'toy/cue_coordination',
    'pettingzoo/simple_spread',
    'meltingpot/collaborative_cooking__cramped',
    'meltingpot_scenario/collaborative_cooking__cramped_0',
    'jax/penalty',
    'jaxmarl/overcooked_cramped_room',
    'jaxmarl/mpe_simple_spread',
    'jaxmarl/smax_3m',
    'openspiel/kuhn_poker',
)
JAX_FAMILIES = ('jax', 'jaxmarl')
# Where an offline learner (behaviour cloning) has a dataset of its own.
DEMONSTRATIONS = ('overcooked/cramped_room', 'jaxmarl/overcooked_cramped_room')
ZERO_SUM_FAMILIES = ('openspiel',)  # two-player zero-sum games
MIN_UPDATES = 2  # learner.csv rows (one per update, or per anakin iteration)
RUNTIMES = ('distributed', 'anakin')


class Cell(NamedTuple):
  algo: str
  env: str
  runtime: str
  status: str  # 'ok' | 'refused' | 'FAILED'
  detail: str
  seconds: float


def refused_by_nature(algo: str, env: str, runtime: str) -> Optional[str]:
  """A phrase the refusal of a cell that cannot work by its nature says,
  or None for a cell that must train."""
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  family = env.split('/')[0]
  if runtime == 'anakin' and family not in JAX_FAMILIES:
    return 'JAX-native'
  if family in ZERO_SUM_FAMILIES and algorithms.learns_team_reward(algo):
    return 'zero-sum'
  if algorithms.is_offline(algo):
    if runtime == 'anakin':
      return 'offline'
    if env not in DEMONSTRATIONS:
      return 'demonstrations'
  return None


def cells(algos=None, env_names=ENVS, runtimes=RUNTIMES):
  """The cells to run: every registered algorithm (or ``algos``), anakin
  only for JAX-native envs (elsewhere it refuses by nature; one such cell per
  algorithm shows the refusal)."""
  if not algos:
    from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
    algos = algorithms.names()
  out = []
  for algo in algos:
    for env in env_names:
      for runtime in runtimes:
        jax_env = env.split('/')[0] in JAX_FAMILIES
        if runtime == 'anakin' and not jax_env and env != ENVS[0]:
          continue
        out.append((algo, env, runtime))
  return out


# Per family: shorter episodes so that one episode (QMIX) or a few
# sequences take a fraction of a second.
_SHORT_EPISODES = {
    'overcooked': dict(horizon=16),
    'meltingpot': dict(max_episode_steps=16),
    'meltingpot_scenario': dict(max_episode_steps=16, background='random'),
    'jaxmarl': dict(horizon=16),
}


def config_for(algo: str, env: str, runtime: str):
  """``configs/<algo>.py:<env>@<runtime>``, shrunk to a few updates."""
  module = importlib.import_module(f'configs.{algo}')
  c = module.get_config(f'{env}@{runtime}')
  family, _, name = env.partition('/')
  short = dict(_SHORT_EPISODES.get(family, {}))
  if family == 'jaxmarl' and name.startswith('mpe'):
    short = dict(horizon=16)
  for k, v in short.items():
    c.env_kwargs[k] = v
  c.seed = 0
  c.launcher = 'single'
  c.num_actors = 1
  c.num_envs_per_actor = 2
  c.num_learner_devices = 1
  c.eval_every_updates = 0
  c.progress_every_s = 1e9
  c.checkpoint_every_s = 1e9
  c.log_every_updates = 1
  net = c.network
  net.mlp_sizes = (16,)
  if family.startswith('meltingpot'):
    net.conv_channels = (4, 8)
  else:
    net.conv_channels = (8,)
    net.conv_kernels = (3,)
    net.conv_strides = (1,)
  if algo in ('impala', 'opre'):
    c.sequence_length = 4
    c.batch_size = 4
    c.replay_max_size = 8
    net.lstm_size = 0
    c.num_steps = 48
  elif algo in ('mappo', 'ippo'):
    c.sequence_length = 8
    c.batch_size = 4
    c.replay_max_size = 8
    c.num_epochs = 1
    c.num_minibatches = 1
    net.core_size = 8
    c.num_steps = 64
  elif algo == 'bc':
    c.num_epochs = 2
    c.batch_size = 256
  else:  # qmix, vdn
    c.batch_size = 2
    c.replay_max_size = 8
    c.num_envs_per_actor = 2
    c.updates_per_iteration = 1
    c.test_episodes = 0
    c.final_test_episodes = 0
    net.gru_size = 8
    c.mixer_embed = 8
    c.hypernet_embed = 8
    c.num_steps = 200
  return c


def _finite_losses(exp_dir: str) -> Tuple[Optional[str], int]:
  """``(None, updates)`` if learner.csv has enough rows and every loss column
  is finite, else ``(why, updates)``."""
  path = os.path.join(exp_dir, 'learner.csv')
  if not os.path.exists(path):
    return 'no learner.csv written (no update ran)', 0
  with open(path) as f:
    rows = list(csv.DictReader(f))
  if not rows:
    return 'learner.csv is empty (no update ran)', 0
  losses = [k for k in rows[0] if 'loss' in k]
  if not losses:
    return f'learner.csv has no loss column ({sorted(rows[0])})', len(rows)
  for row in rows:
    for k in losses:
      if row[k] not in ('', None) and not math.isfinite(float(row[k])):
        return f'{k} = {row[k]} at step {row.get("step")}', len(rows)
  if len(rows) < MIN_UPDATES:
    return (f'{len(rows)} update(s) logged, fewer than {MIN_UPDATES} (the '
            'second shows the state an update returns can be updated again)'
            ), len(rows)
  return None, len(rows)


def run_cell(algo: str, env: str, runtime: str, workdir: str) -> Cell:
  """Runs one cell in this process (see the module docstring)."""
  from marl_jax.runtime import build  # pylint: disable=g-import-not-at-top
  start = time.monotonic()
  exp_dir = os.path.join(workdir, f'{algo}__{env.replace("/", "_")}__{runtime}')
  try:
    config = config_for(algo, env, runtime)
    config = build.prepare(config, runtime).config
    config.exp_dir = exp_dir
    if runtime == 'anakin':
      from marl_jax.runtime import anakin  # pylint: disable=g-import-not-at-top
      anakin.run(config, exp_dir, max_iterations=2)
    else:
      from marl_jax.runtime import launchers  # pylint: disable=g-import-not-at-top
      launchers.run(config, exp_dir)
  except build.UnsupportedError as e:
    return Cell(algo, env, runtime, 'refused', str(e).splitlines()[0],
                time.monotonic() - start)
  except Exception as e:  # pylint: disable=broad-except
    detail = f'{type(e).__name__}: {e}'.splitlines()[0][:300]
    tb = traceback.format_exc().strip().splitlines()
    where = next((l.strip() for l in reversed(tb) if 'marl_jax' in l), '')
    return Cell(algo, env, runtime, 'FAILED', f'{detail} [{where}]',
                time.monotonic() - start)
  problem, updates = _finite_losses(exp_dir)
  return Cell(algo, env, runtime, 'FAILED' if problem else 'ok',
              problem or f'{updates} updates', time.monotonic() - start)


FAST_COMPILE = '--xla_backend_optimization_level=0'


def _init_worker(xla_flags: str):
  # Before the worker imports jax (its first cell does).
  os.environ['XLA_FLAGS'] = xla_flags
  import logging  # pylint: disable=g-import-not-at-top
  logging.disable(logging.WARNING)
  sys.stdout = open(os.devnull, 'w')  # The runs' progress lines.


def run_cells(cell_list, workdir: str, jobs: int = 1, optimized: bool = False,
              timeout_s: float = 3600.) -> list:
  """Runs ``cell_list`` in ``jobs`` fresh worker processes.

  Workers take the next cell as they finish one, so long and short cells
  balance. Returns the cells' results in ``cell_list``'s order; a cell whose
  worker died, or that had not finished after ``timeout_s`` in all, is FAILED
  with that as its detail.
  """
  flags = os.environ.get('XLA_FLAGS', '')
  if not optimized and FAST_COMPILE not in flags:
    flags = f'{flags} {FAST_COMPILE}'.strip()
  pool = concurrent.futures.ProcessPoolExecutor(
      max_workers=jobs, mp_context=multiprocessing.get_context('spawn'),
      initializer=_init_worker, initargs=(flags,))
  start = time.monotonic()
  futures = [pool.submit(run_cell, *cell, workdir) for cell in cell_list]
  results = []
  try:
    for cell, future in zip(cell_list, futures):
      left = max(timeout_s - (time.monotonic() - start), 0.)
      try:
        results.append(future.result(timeout=left))
      except concurrent.futures.TimeoutError:
        results.append(Cell(*cell, 'FAILED',
                            f'not finished after {timeout_s:.0f} s', 0.))
      except Exception as e:  # pylint: disable=broad-except
        results.append(Cell(*cell, 'FAILED',
                            f'worker process failed: {type(e).__name__}: {e}',
                            0.))
  finally:
    for future in futures:
      future.cancel()
    # A worker stuck in a cell is not waited for.
    for process in list(getattr(pool, '_processes', {}).values()):
      if process.is_alive() and any(not f.done() for f in futures):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
  return results


def table(results) -> str:
  lines = ['| algorithm | environment | runtime | result | seconds |',
           '| --- | --- | --- | --- | ---: |']
  for c in results:
    result = c.status + (f': {c.detail}' if c.detail else '')
    lines.append(f'| {c.algo} | {c.env} | {c.runtime} | {result} | '
                 f'{c.seconds:.1f} |')
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--algos', default='',
                      help='comma-separated (default: every registered one)')
  parser.add_argument('--envs', default=','.join(ENVS))
  parser.add_argument('--runtimes', default=','.join(RUNTIMES))
  parser.add_argument('--jobs', type=int, default=1,
                      help='worker processes (XLA compiles on every core: '
                      'more than one rarely helps)')
  parser.add_argument('--optimized', action='store_true',
                      help="compile with XLA's default optimisation")
  args = parser.parse_args(argv)
  start = time.monotonic()
  with tempfile.TemporaryDirectory(prefix='marl_jax_matrix_') as workdir:
    results = run_cells(cells([a for a in args.algos.split(',') if a],
                              args.envs.split(','),
                              args.runtimes.split(',')), workdir,
                        jobs=args.jobs, optimized=args.optimized)
  for cell in results:
    print(f'{cell.algo:7s} {cell.env:52s} {cell.runtime:11s} '
          f'{cell.status:8s} {cell.seconds:6.1f}s {cell.detail}')
  print()
  print(table(results))
  counts: Dict[str, int] = {}
  for c in results:
    counts[c.status] = counts.get(c.status, 0) + 1
  print('\n' + ', '.join(f'{v} {k}' for k, v in sorted(counts.items())) +
        f' in {time.monotonic() - start:.0f} s')
  return 1 if counts.get('FAILED') else 0


if __name__ == '__main__':
  sys.exit(main())
