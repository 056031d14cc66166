r"""Learning curves of train.py runs: a Markdown table and a PNG.

Reads ``actor.csv`` of each run directory (episode return per member against
env steps and wall time) and prints, per run, the return at evenly spaced
points; with --png, plots return and sparse return against env steps.
With --test it reads ``test.csv`` instead (the anakin runtime's greedy test
episodes) and reports the test win rate (``test_won``) and test return.

  python benchmarks/learning_curves.py runs/default_s0 runs/default_s1 \
      --png=benchmarks/cramped_room_impala.png
  python benchmarks/learning_curves.py runs/qmix_3m_s0 runs/qmix_3m_s1 --test
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np


def read_run(exp_dir: str, member: int = 0):
  path = os.path.join(exp_dir, 'actor.csv')
  if not os.path.exists(path):
    raise SystemExit(f'{path} does not exist: is {exp_dir} a train.py run dir?')
  with open(path) as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise SystemExit(f'{path} has no rows yet.')

  def col(name):
    key = f'member_{member}/{name}'
    if key not in rows[0]:
      return None
    return np.array([float(r[key]) if r[key] not in ('', None) else np.nan
                     for r in rows])

  t = np.array([float(r['time']) for r in rows])
  with open(os.path.join(exp_dir, 'config.json')) as f:
    config = json.load(f)
  return dict(steps=np.array([int(r['step']) for r in rows]),
              wall=t - t[0], ret=col('episode_return'),
              sparse=col('episode_sparse_reward'), config=config)


def read_test_run(exp_dir: str, member: int = 0):
  """test.csv of an anakin run: greedy test win rate and return per test."""
  path = os.path.join(exp_dir, 'test.csv')
  if not os.path.exists(path):
    raise SystemExit(f'{path} does not exist: --test reads the greedy tests '
                     'that the anakin runtime writes (train.py --runtime=anakin).')
  with open(path) as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise SystemExit(f'{path} has no rows yet.')
  won_key = f'member_{member}/test_won'
  t = np.array([float(r['time']) for r in rows])
  with open(os.path.join(exp_dir, 'config.json')) as f:
    config = json.load(f)
  return dict(
      steps=np.array([int(r['step']) for r in rows]), wall=t - t[0],
      ret=np.array([float(r[f'member_{member}/test_return']) for r in rows]),
      won=(np.array([float(r[won_key]) for r in rows]) if won_key in rows[0]
           else None),
      episodes=np.array([int(r.get('test_episodes') or 0) for r in rows]),
      config=config)


def smooth(x, k=5):
  if x is None or len(x) < k:
    return x
  return np.convolve(np.nan_to_num(x), np.ones(k) / k, mode='valid')


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('runs', nargs='+')
  parser.add_argument('--points', type=int, default=10)
  parser.add_argument('--png', default='')
  parser.add_argument('--test', action='store_true',
                      help='greedy tests (test.csv) instead of actor.csv')
  args = parser.parse_args(argv)
  if args.test:
    return _test_curves(args)
  runs = {d: read_run(d) for d in args.runs}
  for d, r in runs.items():
    c = r['config']
    print(f'\n{d}: {c["algo"]} on {c["env"]}, seed {c["seed"]}, population '
          f'{c["population_size"]}')
    print('| env steps | wall time (s) | return (mean of last 5 logs) | '
          'sparse (soup) return |')
    print('| ---: | ---: | ---: | ---: |')
    idx = np.unique(np.linspace(0, len(r['steps']) - 1, args.points).astype(int))
    for i in idx:
      lo = max(0, i - 4)
      ret = np.nanmean(r['ret'][lo:i + 1])
      sp = (np.nanmean(r['sparse'][lo:i + 1]) if r['sparse'] is not None
            else float('nan'))
      print(f'| {r["steps"][i]:,} | {r["wall"][i]:.0f} | {ret:.1f} | {sp:.1f} |')
  if args.png:
    first = next(iter(runs.values()))['config']

    def draw(ax):
      for r in runs.values():
        label = f'seed {r["config"]["seed"]}'
        line, = ax.plot(*_smoothed(r['steps'], r['ret']),
                        label=f'{label}: return')
        if r['sparse'] is not None:
          ax.plot(*_smoothed(r['steps'], r['sparse']), '--',
                  color=line.get_color(),
                  label=f'{label}: sparse (soups x 20)')

    _save_plot(args.png, draw, ylabel='episode return (member 0)',
               title=f'{first["algo"]} on {first["env"]}')
  return 0


def _smoothed(steps, y, k: int = 5):
  """(steps, trailing mean of ``k`` points), aligned on each window's end."""
  return (steps[k - 1:] if len(steps) >= k else steps), smooth(y, k)


def _save_plot(png: str, draw, ylabel: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(1, 1, figsize=(7, 4))
  draw(ax)
  ax.set_xlabel('environment steps')
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(png, dpi=100)
  print(f'\nwrote {png}')


def _test_curves(args) -> int:
  runs = {d: read_test_run(d) for d in args.runs}
  for d, r in runs.items():
    c = r['config']
    print(f'\n{d}: {c["algo"]} on {c["env"]}, seed {c["seed"]}')
    print('| env steps | wall time (s) | test win rate (mean of last 5 tests) |'
          ' test return |')
    print('| ---: | ---: | ---: | ---: |')
    # The last row may be a larger final test (test_episodes): keep it apart.
    final = (len(r['episodes']) > 1 and r['episodes'][-1] > r['episodes'][0])
    n = len(r['steps']) - int(final)
    idx = np.unique(np.linspace(0, n - 1, args.points).astype(int))
    for i in idx:
      lo = max(0, i - 4)
      won = (np.mean(r['won'][lo:i + 1]) if r['won'] is not None
             else float('nan'))
      print(f'| {r["steps"][i]:,} | {r["wall"][i]:.0f} | {won:.3f} | '
            f'{np.mean(r["ret"][lo:i + 1]):.3f} |')
    if final:
      won = r['won'][-1] if r['won'] is not None else float('nan')
      print(f'| final test, {r["episodes"][-1]} episodes: '
            f'{r["steps"][-1]:,} | {r["wall"][-1]:.0f} | **{won:.3f}** | '
            f'{r["ret"][-1]:.3f} |')
  if args.png:
    first = next(iter(runs.values()))['config']

    def draw(ax):
      for r in runs.values():
        # The larger final test, if any, is a table row, not a curve point.
        n = len(r['steps']) - int(len(r['episodes']) > 1 and
                                  r['episodes'][-1] > r['episodes'][0])
        y = r['won'] if r['won'] is not None else r['ret']
        ax.plot(*_smoothed(r['steps'][:n], y[:n]),
                label=f'{r["config"]["env"]} seed {r["config"]["seed"]}')

    _save_plot(args.png, draw, ylabel='greedy test win rate (mean of 5 tests)',
               title=f'{first["algo"]}: greedy test episodes')
  return 0


if __name__ == '__main__':
  sys.exit(main())
