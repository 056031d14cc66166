r"""The mean episode return of a uniformly random policy: the floor a learning
curve is read against.

The environment is built as ``train.py --env=<env>`` builds it (the family's
kwargs from configs/common.py, plus any ``--kwarg key=value``); every agent
picks uniformly among its available actions (``ACTION_MASK`` where the env
has one). Prints the mean and standard error over episodes of the per-agent
mean return, and of every per-episode sum the env reports in its info (the
sparse return on Overcooked, ``won`` on SMAX), as the actor logs them.

  python benchmarks/random_policy.py --env=jaxmarl/smax_3m --episodes=200
  python benchmarks/random_policy.py --env=overcooked/cramped_room
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)


def random_returns(env_name: str, episodes: int, seed: int = 0, **kwargs):
  """``(returns, {info key: per-episode sums})``: means over agents."""
  from configs import common  # pylint: disable=g-import-not-at-top
  from marl_jax import envs  # pylint: disable=g-import-not-at-top
  env = envs.make(env_name, **{**common.env_kwargs_for(env_name), **kwargs})
  spec = env.spec()
  rng = np.random.default_rng(seed)
  returns, infos = [], {k: [] for k in spec.info_keys}
  try:
    for _ in range(episodes):
      ts = env.reset()
      total = np.zeros(spec.num_agents)
      total_info = {k: 0. for k in spec.info_keys}
      while True:
        mask = ts.observation.get('ACTION_MASK')
        if mask is None:
          actions = rng.integers(0, spec.num_actions, spec.num_agents)
        else:
          actions = np.array([rng.choice(np.flatnonzero(m > 0)) for m in mask])
        ts = env.step(actions.astype(np.int32))
        total += np.asarray(ts.reward, np.float64)
        for k in spec.info_keys:
          total_info[k] += float(np.mean(ts.info[k]))
        if ts.last():
          break
      returns.append(total.mean())
      for k in spec.info_keys:
        infos[k].append(total_info[k])
  finally:
    env.close()
  return np.array(returns), {k: np.array(v) for k, v in infos.items()}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--env', required=True)
  parser.add_argument('--episodes', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--kwarg', action='append', default=[],
                      help='extra env kwarg, key=value (Python literal)')
  args = parser.parse_args(argv)
  kwargs = {}
  for kv in args.kwarg:
    k, _, v = kv.partition('=')
    kwargs[k] = ast.literal_eval(v)
  returns, infos = random_returns(args.env, args.episodes, args.seed,
                                  **kwargs)
  def fmt(x):
    return f'{x.mean():.3f} +- {x.std(ddof=1) / np.sqrt(len(x)):.3f}'
  print(f'{args.env}: random policy, {len(returns)} episodes: return '
        f'{fmt(returns)}' + ''.join(f', {k} {fmt(v)}' for k, v in infos.items()))
  return 0


if __name__ == '__main__':
  sys.exit(main())
