r"""Zero-shot evaluation of trained populations against held-out partners.

  python evaluate.py --exp_dir=runs/pop_random --heldout=runs/sp_s1 \
      --heldout=runs/sp_s2 --num_episodes=10 --out_dir=runs/eval

Every member of each --exp_dir run plays with every member of its own run
(self-play on the diagonal, within-population cross-play off it) and with
every member of each --heldout run (zero-shot cross-play), on two-player
environments, seats alternating between episodes. Runs load from their run
directory alone (config.json + checkpoints). Writes results.json,
crossplay.csv, report.md and heatmap.png into --out_dir.

Melting Pot scenarios, scripted held-out policies and Elo ratings are not
available yet.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging

_EXP_DIR = flags.DEFINE_multi_string('exp_dir', None,
                                     'Trained run(s) to evaluate (focal).')
_HELDOUT = flags.DEFINE_multi_string('heldout', [],
                                     'Held-out partner run directories.')
_ENV = flags.DEFINE_string('env', None, 'Environment (default: the runs\').')
_NUM_EPISODES = flags.DEFINE_integer('num_episodes', 10,
                                     'Episodes per pair of members.')
_GREEDY = flags.DEFINE_bool('greedy', False, 'Act greedily (argmax).')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed of the policies.')
_OUT_DIR = flags.DEFINE_string('out_dir', None,
                               'Where to write the report (default: '
                               '<first exp_dir>/eval).')
_METRIC = flags.DEFINE_string(
    'metric', None, 'Episode statistic to report (default: '
    'episode_sparse_reward when the env has it, else episode_return).')


class UsageError(Exception):
  pass


def _main(argv):
  if len(argv) > 1:
    raise UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if not _EXP_DIR.value:
    raise UsageError('--exp_dir is required (one or more trained runs).')
  if _NUM_EPISODES.value <= 0:
    raise UsageError(f'--num_episodes must be positive, got '
                     f'{_NUM_EPISODES.value}.')
  # pylint: disable=g-import-not-at-top
  from marl_jax.evaluation import report
  from marl_jax.utils import config as config_lib
  # pylint: enable=g-import-not-at-top
  for d in list(_EXP_DIR.value) + list(_HELDOUT.value):
    if not os.path.isdir(d):
      raise UsageError(f'{d} is not a directory (expected a train.py run dir).')
  focal = [report.load(d, _GREEDY.value, _SEED.value) for d in _EXP_DIR.value]
  heldout = [report.load(d, _GREEDY.value, _SEED.value + 1 + k)
             for k, d in enumerate(_HELDOUT.value)]
  runs = {}
  for r in focal + heldout:
    if r.name in runs and runs[r.name].exp_dir != r.exp_dir:
      raise UsageError(f'Two runs are both named {r.name!r}; give run dirs '
                       'with different names.')
    runs[r.name] = r
  env_name = _ENV.value or focal[0].config.env
  for r in focal + heldout:
    if r.config.env != env_name and not _ENV.value:
      raise UsageError(f'{r.exp_dir} was trained on {r.config.env}, '
                       f'{focal[0].exp_dir} on {env_name}; pass --env to '
                       'evaluate all on one environment.')
  env = config_lib.make_env(focal[0].config, env_name)
  metric = _METRIC.value or ('episode_sparse_reward' if 'sparse_reward' in
                             env.spec().info_keys else 'episode_return')
  blocks = report.evaluate_runs(env, focal, heldout, _NUM_EPISODES.value,
                                metric)
  out_dir = _OUT_DIR.value or os.path.join(_EXP_DIR.value[0], 'eval')
  paths = report.write_report(out_dir, blocks, runs, env_name, metric,
                              _NUM_EPISODES.value)
  with open(paths['markdown']) as f:
    print(f.read())
  for k, p in paths.items():
    print(f'evaluate.py: {k}: {p}')


def main(argv):
  from marl_jax import envs  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  try:
    _main(argv)
  except (UsageError, envs.UnknownEnvironmentError,
          checkpointing.CheckpointError, ValueError) as e:
    print(f'evaluate.py: error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == '__main__':
  logging.set_verbosity(logging.WARNING)
  app.run(main)
