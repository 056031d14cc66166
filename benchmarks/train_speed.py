r"""Training env steps/s of the default run next to the raw environment's.

Both are measured in one run of this script on the same machine:
  raw    random actions in one copy of the environment (our Overcooked wrapper,
         featurized observations, as the learner consumes them), one process;
  train  the default ``train.py`` config (IMPALA, single launcher, 16 copies)
         for --train_steps env steps, including acting, sequence writing and
         learner updates; reported with and without the one-off start-up
         (jit compilation, planner build).

  python benchmarks/train_speed.py                       # cramped_room
  python benchmarks/train_speed.py --train_steps=1000000 --repeats=3
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
from configs import impala as impala_configs
from marl_jax import algorithms
from marl_jax.runtime.launchers import single
import numpy as np
# pylint: enable=g-import-not-at-top

_ENV = flags.DEFINE_string('env', 'overcooked/cramped_room', 'Environment.')
_RAW_STEPS = flags.DEFINE_integer('raw_steps', 20_000, 'Random-action steps.')
_TRAIN_STEPS = flags.DEFINE_integer('train_steps', 200_000, 'Training steps.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Runs of each; the median counts.')


def raw_steps_per_second(config, num_steps: int, seed: int) -> float:
  env = algorithms.make_env(config)
  spec = env.spec()
  rng = np.random.default_rng(seed)
  actions = rng.integers(0, spec.num_actions, size=(num_steps, spec.num_agents))
  env.reset()
  returns, sparse, ret, sp = [], [], 0., 0.
  start = time.perf_counter()
  for i in range(num_steps):
    ts = env.step(actions[i])
    ret += float(ts.reward[0])
    sp += float(ts.info.get('sparse_reward', ts.reward)[0])
    if ts.last():
      returns.append(ret)
      sparse.append(sp)
      ret = sp = 0.
      env.reset()
  speed = num_steps / (time.perf_counter() - start)
  return speed, (np.mean(returns) if returns else float('nan'),
                 np.mean(sparse) if sparse else float('nan'))


def train_steps_per_second(config, seed: int):
  config = config.copy_and_resolve_references()
  config.seed = seed
  config.progress_every_s = 1e9
  config.checkpoint_every_s = 1e9
  with tempfile.TemporaryDirectory() as d:
    # Start-up cost: a run of one iteration (compiles act and update).
    t0 = time.perf_counter()
    warm = config.copy_and_resolve_references()
    warm.num_steps = 1
    single.run(warm, os.path.join(d, 'warm'))
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = single.run(config, os.path.join(d, 'run'))
    wall = time.perf_counter() - t0
  return result.env_steps / wall, result.env_steps / max(wall - startup, 1e-9), (
      result.member_returns)


def main(argv):
  del argv
  config = impala_configs.get_config('overcooked')
  config.env = _ENV.value
  config.num_steps = _TRAIN_STEPS.value
  raw, train, steady = [], [], []
  for r in range(_REPEATS.value):
    speed, (random_return, random_sparse) = raw_steps_per_second(
        config, _RAW_STEPS.value, seed=r)
    raw.append(speed)
    print(f'repeat {r}: random policy episode return {random_return:.2f} '
          f'(sparse {random_sparse:.2f})', flush=True)
    total, warm, returns = train_steps_per_second(config, seed=r)
    train.append(total)
    steady.append(warm)
    print(f'repeat {r}: raw {raw[-1]:,.0f} steps/s | train {total:,.0f} steps/s '
          f'(excluding start-up {warm:,.0f}) | final return {returns}',
          flush=True)
  med = statistics.median
  print(f'\n{config.env}, {_REPEATS.value} repeats, medians:')
  print(f'  raw env, random actions, 1 copy : {med(raw):8,.0f} env steps/s')
  print(f'  training (default config)       : {med(train):8,.0f} env steps/s'
        f'  ({med(steady):,.0f} excluding start-up)')
  print(f'  ratio train / raw               : {med(train) / med(raw):8.2f}'
        f'  ({med(steady) / med(raw):.2f} excluding start-up)')


if __name__ == '__main__':
  app.run(main)
