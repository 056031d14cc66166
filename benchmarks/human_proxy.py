r"""The human models of Carroll et al. (2019) on the five classic layouts.

For each layout this clones the 2019 human-human trials with ``--algo=bc``
(``runtime/offline.py``; ``--seeds`` members trained at once, each its own
init and minibatch order): the test split gives the human proxy
(``H_proxy``), the train split the ``BC`` model. It reports each clone's
validation loss and accuracy next to what predicting the validation trials'
action frequencies blind would score, and plays proxy + proxy and BC + proxy
(every member pair, seats alternated; the value is the team's soups x 20 in
a 400-step episode, as the paper's tables) next to the paper's proxy + proxy.

  python benchmarks/human_proxy.py                 # all five layouts
  python benchmarks/human_proxy.py --layouts=cramped_room --episodes=4

Writes ``<out>/human_proxy.md`` and ``.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

# Carroll et al. (2019), H_proxy + H_proxy over 400 steps (mean of 5 seeds).
PUBLISHED_PROXY_PROXY = {
    'cramped_room': 115.0, 'asymmetric_advantages': 140.5,
    'coordination_ring': 67.0, 'forced_coordination': 30.0,
    'counter_circuit_o_1order': 47.5}


def clone(layout: str, split: str, seeds: int, out: str):
  """Trains the clone of ``split`` on ``layout``; returns its run dir and
  the validation numbers."""
  # pylint: disable=g-import-not-at-top
  from configs import bc
  from marl_jax import algorithms, run_dir
  from marl_jax.runtime import build, offline
  from marl_jax.utils import config as config_lib
  # pylint: enable=g-import-not-at-top
  c = bc.get_config(f'overcooked/{layout}')
  c.dataset = f'human:{split}'
  c.population_size = seeds
  c.progress_every_s = 1e9
  c = build.prepare(c).config
  d = os.path.join(out, f'{layout}_{split}')
  c.exp_dir = d
  os.makedirs(d, exist_ok=True)
  with open(run_dir.config_path(d), 'w') as f:
    f.write(config_lib.to_json(c))
  start = time.monotonic()
  offline.run(c, d)
  seconds = time.monotonic() - start
  meta = run_dir.load_run(d).meta
  env = algorithms.make_env(c)
  data = offline.dataset_for(c, env)
  env.close()
  _, val = offline.split_by_group(data, c.validation_fraction, c.seed)
  p = np.bincount(val.action, minlength=6) / max(len(val.action), 1)
  nz = p[p > 0]
  return d, dict(val_loss=meta['best_loss'], val_accuracy=meta['best_accuracy'],
                 blind_loss=float(-(nz * np.log(nz)).sum()),
                 majority_accuracy=float(p.max()), epochs=int(meta['epochs']),
                 seconds=seconds)


def play(a_dir: str, b_dir: str, episodes: int, seed: int):
  """Every member pair of the two clones, seats alternated (stochastic)."""
  # pylint: disable=g-import-not-at-top
  from marl_jax import algorithms
  from marl_jax.evaluation import crossplay, report
  # pylint: enable=g-import-not-at-top
  a = report.load(a_dir, False, seed)
  b = a if a_dir == b_dir else report.load(b_dir, False, seed + 1)
  env = algorithms.make_env(a.config)
  try:
    result = crossplay.cross_play(env, a.policy, a.size, b.policy, b.size,
                                  episodes, 'episode_sparse_reward')
  finally:
    env.close()
  values = result.episodes.ravel()
  seats = report.seat_orders(result)
  return dict(mean=float(values.mean()),
              se=float(values.std(ddof=1) / np.sqrt(values.size)),
              episodes=int(values.size),
              seat_0=seats['seat_0'][0], seat_1=seats['seat_1'][0])


def main(argv=None) -> int:
  from marl_jax.envs import overcooked_human  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--layouts', default=','.join(overcooked_human.LAYOUTS))
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--episodes', type=int, default=6,
                      help='per member pair (seats alternate)')
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)
  out = args.out or tempfile.mkdtemp(prefix='human_proxy_')
  start = time.monotonic()
  rows = {}
  for layout in args.layouts.split(','):
    proxy, proxy_val = clone(layout, 'test', args.seeds, out)
    bc_dir, bc_val = clone(layout, 'train', args.seeds, out)
    rows[layout] = dict(
        proxy=proxy_val, bc=bc_val,
        proxy_proxy=play(proxy, proxy, args.episodes, 0),
        bc_proxy=play(bc_dir, proxy, args.episodes, 10))
    print(layout, json.dumps(rows[layout]), flush=True)
  wall = time.monotonic() - start
  fmt = lambda r: f'{r["mean"]:.1f} +- {r["se"]:.1f}'
  lines = [
      '| layout | H_proxy val. loss (blind) | H_proxy val. acc. (majority) | '
      'proxy + proxy | published proxy + proxy | BC + proxy (BC at 0 / at 1) |',
      '| --- | ---: | ---: | ---: | ---: | ---: |']
  for layout, r in rows.items():
    pv = r['proxy']
    lines.append(
        f'| {layout} | {np.mean(pv["val_loss"]):.3f} ({pv["blind_loss"]:.3f}) '
        f'| {np.mean(pv["val_accuracy"]):.3f} ({pv["majority_accuracy"]:.3f}) '
        f'| {fmt(r["proxy_proxy"])} | {PUBLISHED_PROXY_PROXY[layout]:.1f} | '
        f'{fmt(r["bc_proxy"])} ({r["bc_proxy"]["seat_0"]:.1f} / '
        f'{r["bc_proxy"]["seat_1"]:.1f}) |')
  lines.append('')
  lines.append(f'{args.seeds} clone seeds per split, {args.episodes} episodes '
               f'per member pair; wall time {wall / 60:.1f} min.')
  text = '\n'.join(lines)
  with open(os.path.join(out, 'human_proxy.md'), 'w') as f:
    f.write(text + '\n')
  with open(os.path.join(out, 'human_proxy.json'), 'w') as f:
    json.dump(dict(rows=rows, seeds=args.seeds, episodes=args.episodes,
                   wall_s=wall), f, indent=2)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
