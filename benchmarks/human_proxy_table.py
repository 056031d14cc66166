r"""Carroll et al.'s (2019) table with the human proxy, regenerated here.

For each layout of JaxMARL's Overcooked (on overcooked_ai's kitchens and
start cells, under the 2019 cooking rules), in the anakin runtime:

  1. the human proxy (``H_proxy``, a clone of the test trials) and ``BC`` (a
     clone of the train trials), ``train.py --algo=bc``;
  2. SP: ``--seeds`` IPPO self-play agents (JaxMARL's IPPO baseline: an MLP
     on the flattened grid, on every layout), one population run whose
     members are the seeds, with checkpoints at the start, middle and end;
  3. PPO_BC: IPPO trained with ``BC`` as its fixed partner
     (``--config.partners=human_proxy:train``);
  4. FCP (Strouse et al. 2021), stage 2: IPPO trained with the SP run's
     checkpoints as its partner pool (``--config.partners=<sp>@all``: every
     seed at the start, middle and end of its training);

then plays each of them with the proxy, both seat orders (every member,
``--episodes`` per member and seat order), and the proxy with itself, next
to the published numbers. Every stage is a ``train.py`` run directory under
``--out``; a stage whose run directory already has a checkpoint is reused.

  python benchmarks/human_proxy_table.py --layouts=cramped_room \
      --seeds=3 --steps=2000000 --episodes=10 --out=runs/human_table

Writes ``<out>/table.md`` and ``<out>/table.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

# JaxMARL layout -> (overcooked_ai layout, published numbers of Carroll et
# al. 2019, agent at index 0 / index 1 with the proxy in the other seat:
# SP, PPO_BC, PPO trained with the proxy itself; proxy + proxy).
PUBLISHED = {
    'cramped_room': ('cramped_room', (96.8, 111.2), (156.4, 163.9),
                     (163.7, 169.9), 115.0),
    'asymm_advantages': ('asymmetric_advantages', (37.5, 103.2),
                         (72.6, 178.8), (127.0, 185.2), 140.5),
    'coord_ring': ('coordination_ring', (66.9, 72.8), (126.4, 129.8),
                   (146.5, 142.0), 67.0),
    'forced_coord': ('forced_coordination', (23.2, 37.9), (58.9, 76.9),
                     (90.9, 79.8), 30.0),
    'counter_circuit': ('counter_circuit_o_1order', (31.0, 32.0),
                        (69.5, 57.6), (83.6, 82.0), 47.5),
}


def _has_checkpoint(d: str) -> bool:
  c = os.path.join(d, 'checkpoints')
  return os.path.isdir(c) and bool(os.listdir(c))


def _train(d: str, args, log) -> float:
  """``train.py`` with ``args`` into run dir ``d`` (reused when done)."""
  if _has_checkpoint(d):
    return 0.0
  start = time.monotonic()
  cmd = [sys.executable, os.path.join(_ROOT, 'train.py'),
         f'--exp_dir={d}'] + args
  with open(log, 'a') as f:
    f.write(' '.join(cmd) + '\n')
    f.flush()
    r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=_ROOT,
                       check=False)
  if r.returncode != 0:
    raise RuntimeError(f'{" ".join(cmd)} failed (exit {r.returncode}); '
                       f'see {log}')
  return time.monotonic() - start


def _with_proxy(run_d: str, proxy_d: str, episodes: int, seed: int):
  """Every member of ``run_d`` with the proxy: ``(seat_0, seat_1)`` of
  ``(mean, standard error, n)`` over members and episodes."""
  # pylint: disable=g-import-not-at-top
  from marl_jax import algorithms
  from marl_jax.evaluation import crossplay, report
  # pylint: enable=g-import-not-at-top
  run = report.load(run_d, False, seed)
  proxy = report.load(proxy_d, False, seed + 1)
  env = algorithms.make_env(run.config)
  try:
    result = crossplay.cross_play(env, run.policy, run.size, proxy.policy,
                                  proxy.size, 2 * episodes,
                                  'episode_sparse_reward')
  finally:
    env.close()
  seats = report.seat_orders(result)
  return seats['seat_0'], seats['seat_1']


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--layouts', default=','.join(PUBLISHED))
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=2_000_000,
                      help='env steps per seed of each trained agent')
  parser.add_argument('--episodes', type=int, default=10,
                      help='per member and seat order, with the proxy')
  parser.add_argument('--out', default='runs/human_table')
  args = parser.parse_args(argv)
  out = os.path.abspath(args.out)
  os.makedirs(out, exist_ok=True)
  os.environ['MARL_JAX_HUMAN_PROXY_DIR'] = os.path.join(out, 'proxies')
  log = os.path.join(out, 'train.log')
  # pylint: disable=g-import-not-at-top
  from marl_jax.cli import human_proxies
  from marl_jax.evaluation import human_proxy
  # pylint: enable=g-import-not-at-top
  start = time.monotonic()
  rows, seconds = {}, {}
  S, steps = args.seeds, args.steps
  total = S * steps
  for layout in args.layouts.split(','):
    if layout not in PUBLISHED:
      raise SystemExit(f'Unknown layout {layout!r}: use {", ".join(PUBLISHED)}.')
    env = f'jaxmarl/overcooked_{layout}'
    proxy = human_proxy.Proxy('jaxmarl', layout, 'GRID')
    t0 = time.monotonic()
    proxy_d = human_proxies.ensure(proxy, 'test', 'human_proxy_table')
    human_proxies.ensure(proxy, 'train', 'human_proxy_table')
    seconds[f'{layout}/clones'] = time.monotonic() - t0
    # One network on every layout: the cramped_room preset's (JaxMARL's IPPO
    # baseline, an MLP on the flattened grid), which train.py applies to
    # cramped_room alone; elsewhere the default would be a conv net.
    common = ['--runtime=anakin', '--algo=ippo', f'--env={env}',
              f'--population_size={S}', f'--num_steps={total}',
              '--config.progress_every_s=60',
              '--config.network.observation_key=GRID',
              '--config.network.torso=mlp']
    d = {k: os.path.join(out, f'{layout}_{k}') for k in
         ('sp', 'ppo_bc', 'fcp')}
    seconds[f'{layout}/sp'] = _train(d['sp'], common + [
        f'--config.checkpoint_every_steps={total // 2}',
        '--config.max_checkpoints_to_keep=10'], log)
    seconds[f'{layout}/ppo_bc'] = _train(
        d['ppo_bc'], common + ['--config.partners=human_proxy:train'], log)
    seconds[f'{layout}/fcp'] = _train(
        d['fcp'], common + [f'--config.partners={d["sp"]}@all'], log)
    t0 = time.monotonic()
    row = {k: _with_proxy(v, proxy_d, args.episodes, 100 + i)
           for i, (k, v) in enumerate(d.items())}
    row['proxy_proxy'] = _with_proxy(proxy_d, proxy_d, args.episodes, 200)
    seconds[f'{layout}/evaluation'] = time.monotonic() - t0
    rows[layout] = row
    print(layout, json.dumps(row), flush=True)
  wall = time.monotonic() - start

  cell = lambda s: f'{s[0]:.1f} +- {s[1]:.1f}'
  pair = lambda a, b: f'{a:.1f} / {b:.1f}'
  lines = ['| layout | SP + proxy | PPO_BC + proxy | FCP + proxy | '
           'proxy + proxy |', '| --- | --- | --- | --- | --- |']
  for layout, r in rows.items():
    name, sp, ppo_bc, _, pp = PUBLISHED[layout]
    both = lambda k: f'{cell(r[k][0])} / {cell(r[k][1])}'
    lines.append(f'| {name} (ours) | {both("sp")} | {both("ppo_bc")} | '
                 f'{both("fcp")} | '
                 f'{np.mean([r["proxy_proxy"][0][0], r["proxy_proxy"][1][0]]):.1f} |')
    lines.append(f'| {name} (published) | {pair(*sp)} | {pair(*ppo_bc)} | - '
                 f'| {pp:.1f} |')
  lines += ['', f'Agent at index 0 / at index 1 with the proxy in the other '
            f'seat; ours: {S} seeds x {args.episodes} episodes per seat order, '
            f'{steps:,} env steps per seed, +- standard error; wall time '
            f'{wall / 60:.1f} min.']
  text = '\n'.join(lines)
  with open(os.path.join(out, 'table.md'), 'w') as f:
    f.write(text + '\n')
  with open(os.path.join(out, 'table.json'), 'w') as f:
    json.dump(dict(rows=rows, seconds=seconds, seeds=S, steps=steps,
                   episodes=args.episodes, wall_s=wall), f, indent=2)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
