r"""Zero-shot evaluation of trained populations against held-out partners.

  python evaluate.py --exp_dir=runs/pop_random --heldout=runs/sp_s1 \
      --heldout=runs/sp_s2 --num_episodes=10 --out_dir=runs/eval

  python evaluate.py --exp_dir=runs/overcooked_fsp --heldout=scripted:greedy \
      --heldout=scripted:random --num_episodes=4

Every member of each --exp_dir run plays with every member of its own run
(self-play on the diagonal, within-population cross-play off it) and with
every member of each --heldout run (zero-shot cross-play), on two-player
environments, seats alternating between episodes. Runs load from their run
directory alone (config.json + checkpoints). A held-out partner can also be
a scripted policy, ``scripted:<name>`` (``random``; on Overcooked also
``stay`` and ``greedy``, the package's planning agent; see
marl_jax/evaluation/scripted.py).

Writes results.json, crossplay.csv, payoff.json (every match as a payoff
table of run[member] policies), report.md and heatmap.png into --out_dir.
For competitive games (every step's rewards summed to zero, or --elo) also
Elo ratings of every member and held-out policy: in results.json, elo.csv
and the report. A run's own payoff table (payoff.json in its run dir,
written by PSRO training) is shown in the report when present (--nopayoff
hides it).

Melting Pot scenarios are not available yet.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging

_EXP_DIR = flags.DEFINE_multi_string('exp_dir', None,
                                     'Trained run(s) to evaluate (focal).')
_HELDOUT = flags.DEFINE_multi_string(
    'heldout', [], 'Held-out partners: run directories, or scripted:<name> '
    '(random, stay, greedy).')
_ENV = flags.DEFINE_string('env', None, 'Environment (default: the runs\').')
_NUM_EPISODES = flags.DEFINE_integer('num_episodes', 10,
                                     'Episodes per pair of members.')
_GREEDY = flags.DEFINE_bool('greedy', False, 'Act greedily (argmax).')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed of the policies.')
_OUT_DIR = flags.DEFINE_string('out_dir', None,
                               'Where to write the report (default: '
                               '<first exp_dir>/eval).')
_ELO = flags.DEFINE_bool(
    'elo', None, 'Rate every member and held-out policy by Elo (default: '
    'when the game turned out zero-sum).')
_PAYOFF = flags.DEFINE_bool(
    'payoff', True, 'Show each run\'s saved payoff table (payoff.json in its '
    'run dir) in the report when present.')
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
  from marl_jax.evaluation import scripted
  from marl_jax.population import payoff as payoff_lib
  from marl_jax.utils import config as config_lib
  # pylint: enable=g-import-not-at-top
  scripted_specs = {d for d in _HELDOUT.value if scripted.parse(d)}
  for d in list(_EXP_DIR.value) + list(_HELDOUT.value):
    if d not in scripted_specs and not os.path.isdir(d):
      raise UsageError(f'{d} is not a directory (expected a train.py run dir, '
                       'or scripted:<name> for --heldout).')
  focal = [report.load(d, _GREEDY.value, _SEED.value) for d in _EXP_DIR.value]
  heldout_runs = {d: report.load(d, _GREEDY.value, _SEED.value + 1 + k)
                  for k, d in enumerate(_HELDOUT.value)
                  if d not in scripted_specs}
  runs = {}
  for r in focal + list(heldout_runs.values()):
    if r.name in runs and runs[r.name].exp_dir != r.exp_dir:
      raise UsageError(f'Two runs are both named {r.name!r}; give run dirs '
                       'with different names.')
    runs[r.name] = r
  env_name = _ENV.value or focal[0].config.env
  for r in runs.values():
    if r.config.env != env_name and not _ENV.value:
      raise UsageError(f'{r.exp_dir} was trained on {r.config.env}, '
                       f'{focal[0].exp_dir} on {env_name}; pass --env to '
                       'evaluate all on one environment.')
  env = config_lib.make_env(focal[0].config, env_name)
  # Scripted partners are built with the environment they play in.
  heldout = []
  for k, d in enumerate(_HELDOUT.value):
    if d in scripted_specs:
      if d not in runs:
        runs[d] = report.load_scripted(d, env, _SEED.value + 1 + k)
      heldout.append(runs[d])
    else:
      heldout.append(heldout_runs[d])
  metric = _METRIC.value or ('episode_sparse_reward' if 'sparse_reward' in
                             env.spec().info_keys else 'episode_return')
  blocks = report.evaluate_runs(env, focal, heldout, _NUM_EPISODES.value,
                                metric)
  use_elo = report.is_zero_sum(blocks) if _ELO.value is None else _ELO.value
  elo_ratings = report.elo_table(blocks) if use_elo else None
  run_payoffs = {}
  if _PAYOFF.value:
    for r in runs.values():
      if r.exp_dir and os.path.exists(
          os.path.join(r.exp_dir, payoff_lib.FILENAME)):
        run_payoffs[r.name] = payoff_lib.PayoffTable.load(r.exp_dir)
  out_dir = _OUT_DIR.value or os.path.join(_EXP_DIR.value[0], 'eval')
  paths = report.write_report(out_dir, blocks, runs, env_name, metric,
                              _NUM_EPISODES.value, elo_ratings=elo_ratings,
                              run_payoffs=run_payoffs)
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
