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

``tests/test_matrix.py`` runs the same cells.
"""

from __future__ import annotations

import argparse
import csv
import glob
import importlib
import math
import os
import sys
import tempfile
import time
import traceback
from typing import Dict, NamedTuple, Optional

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

ALGORITHMS = ('impala', 'opre', 'mappo', 'ippo', 'qmix', 'vdn')
# One environment per registered family (and per JaxMARL family).
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
)
JAX_FAMILIES = ('jax', 'jaxmarl')
RUNTIMES = ('distributed', 'anakin')


class Cell(NamedTuple):
  algo: str
  env: str
  runtime: str
  status: str  # 'ok' | 'refused' | 'FAILED'
  detail: str
  seconds: float


def cells(algos=ALGORITHMS, env_names=ENVS, runtimes=RUNTIMES):
  """The cells to run: anakin only for JAX-native envs (elsewhere it refuses
  by nature; one such cell per algorithm shows the refusal)."""
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
    c.num_steps = 400
  elif algo in ('mappo', 'ippo'):
    c.sequence_length = 8
    c.batch_size = 4
    c.replay_max_size = 8
    c.num_epochs = 1
    c.num_minibatches = 1
    net.core_size = 8
    c.num_steps = 400
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


def _finite_losses(exp_dir: str) -> Optional[str]:
  """None if learner.csv has rows and every loss column is finite, else why."""
  path = os.path.join(exp_dir, 'learner.csv')
  if not os.path.exists(path):
    return 'no learner.csv written (no update ran)'
  with open(path) as f:
    rows = list(csv.DictReader(f))
  if not rows:
    return 'learner.csv is empty (no update ran)'
  losses = [k for k in rows[0] if 'loss' in k]
  if not losses:
    return f'learner.csv has no loss column ({sorted(rows[0])})'
  for row in rows:
    for k in losses:
      if row[k] not in ('', None) and not math.isfinite(float(row[k])):
        return f'{k} = {row[k]} at step {row.get("step")}'
  return None


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
  problem = _finite_losses(exp_dir)
  return Cell(algo, env, runtime, 'FAILED' if problem else 'ok',
              problem or '', time.monotonic() - start)


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
  parser.add_argument('--algos', default=','.join(ALGORITHMS))
  parser.add_argument('--envs', default=','.join(ENVS))
  parser.add_argument('--runtimes', default=','.join(RUNTIMES))
  args = parser.parse_args(argv)
  import logging  # pylint: disable=g-import-not-at-top
  logging.disable(logging.WARNING)
  results = []
  with tempfile.TemporaryDirectory(prefix='marl_jax_matrix_') as workdir:
    for algo, env, runtime in cells(args.algos.split(','),
                                    args.envs.split(','),
                                    args.runtimes.split(',')):
      cell = run_cell(algo, env, runtime, workdir)
      print(f'{algo:7s} {env:52s} {runtime:11s} {cell.status:8s} '
            f'{cell.seconds:6.1f}s {cell.detail}', flush=True)
      results.append(cell)
  print()
  print(table(results))
  counts: Dict[str, int] = {}
  for c in results:
    counts[c.status] = counts.get(c.status, 0) + 1
  print('\n' + ', '.join(f'{v} {k}' for k, v in sorted(counts.items())))
  return 1 if counts.get('FAILED') else 0


if __name__ == '__main__':
  sys.exit(main())
