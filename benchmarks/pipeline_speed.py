r"""Pipeline efficiency of the ``local`` program against the raw environment.

Measured in one run of this script on the same machine:
  raw    ``--num_actors`` processes, each stepping one copy of the environment
         (our Overcooked wrapper, featurized observations, as actors use it)
         with random actions as fast as it can; the sum of their steps/s.
  train  IMPALA through the ``local`` program (replay, counter, learner and
         ``--num_actors`` actor processes; the evaluator off) on the same
         environment with the default config: env steps/s counted by the
         counter over ``--secs`` seconds, after a warm-up of
         ``--warmup_updates`` learner updates (jit compilation, process
         start-up) and ``--warmup_secs``.
Efficiency = train / raw. Every env step the actors take is trained on (the
queue table blocks writers rather than dropping data; ``replay_dropped`` in
learner.csv stays 0), so this is the rate of *trained* env steps.

  python benchmarks/pipeline_speed.py --secs=60 --repeats=3
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
from configs import impala as impala_configs
# pylint: enable=g-import-not-at-top

FLAGS = flags.FLAGS


def _define_flags():
  # Only when run as a script: other benchmarks import the functions below.
  flags.DEFINE_string('env', 'overcooked/cramped_room', 'Environment.')
  flags.DEFINE_integer('num_actors', 2, 'Actor processes.')
  flags.DEFINE_float('secs', 60., 'Seconds measured.')
  flags.DEFINE_float('warmup_secs', 15., 'Warm-up seconds.')
  flags.DEFINE_integer('warmup_updates', 20, 'Learner updates before measuring.')
  flags.DEFINE_integer('repeats', 1, 'Runs of each (median).')


def program_config(env: str = 'overcooked/cramped_room', num_actors: int = 2):
  """The default IMPALA config, as a measured local program."""
  config = impala_configs.get_config('overcooked')
  config.env = env
  config.launcher = 'local'
  config.num_actors = num_actors
  config.num_steps = 10**9
  config.eval_every_updates = 0
  config.progress_every_s = 3600.
  config.checkpoint_every_s = 10**6
  return config


def _raw_worker(config_dict, secs, out):
  import ml_collections
  import numpy as np
  from marl_jax import algorithms
  config = ml_collections.ConfigDict(config_dict)
  env = algorithms.make_env(config)
  spec = env.spec()
  rng = np.random.default_rng(os.getpid())
  actions = rng.integers(0, spec.num_actions, size=(4096, spec.num_agents))
  env.reset()
  n = 0
  t0 = time.perf_counter()
  while time.perf_counter() - t0 < secs:
    ts = env.step(actions[n % 4096])
    if ts.last():
      env.reset()
    n += 1
  out.put(n / (time.perf_counter() - t0))


def raw_steps_per_second(config, secs: float) -> float:
  ctx = mp.get_context('spawn')
  out = ctx.Queue()
  procs = [ctx.Process(target=_raw_worker, args=(config.to_dict(), secs, out))
           for _ in range(config.num_actors)]
  for p in procs:
    p.start()
  rates = [out.get(timeout=secs + 120) for _ in procs]
  for p in procs:
    p.join()
  return sum(rates)


def train_steps_per_second(config, secs: float, warmup_updates: int = 20,
                           warmup_secs: float = 15.):
  """Env steps/s and updates/s of the local program over ``secs``."""
  from marl_jax.runtime import program
  from marl_jax.runtime.launchers import local
  marks = {}

  def stop_when(counts):
    now = time.monotonic()
    if 'start' not in marks:
      if counts['learner_steps'] >= warmup_updates:
        marks.setdefault('ready', now)
        if now - marks['ready'] >= warmup_secs:
          marks['start'] = (now, counts['env_steps'], counts['learner_steps'])
      return False
    t0, s0, u0 = marks['start']
    if now - t0 >= secs:
      marks['end'] = (now, counts['env_steps'], counts['learner_steps'])
      return True
    return False

  with tempfile.TemporaryDirectory() as exp_dir:
    prog = program.make_program(config, exp_dir)
    local.launch(prog, stop_when=stop_when, progress_every_s=0.5,
                 node_env={'actor': program.actor_thread_env()})
  (t0, s0, u0), (t1, s1, u1) = marks['start'], marks['end']
  return (s1 - s0) / (t1 - t0), (u1 - u0) / (t1 - t0)


def main(argv):
  del argv
  config = program_config(FLAGS.env, FLAGS.num_actors)
  print(f'pipeline_speed: {config.env}, {config.num_actors} actor processes x '
        f'{config.num_envs_per_actor} copies, batch {config.batch_size} x '
        f'T={config.sequence_length}; {FLAGS.secs:.0f} s per measurement, '
        f'median of {FLAGS.repeats}; {os.cpu_count()} CPUs', flush=True)
  raws, trains, updates = [], [], []
  for _ in range(FLAGS.repeats):
    raws.append(raw_steps_per_second(config, FLAGS.secs))
    print(f'  raw   {raws[-1]:8.0f} env steps/s ({config.num_actors} processes)',
          flush=True)
    rate, ups = train_steps_per_second(config, FLAGS.secs,
                                       FLAGS.warmup_updates, FLAGS.warmup_secs)
    trains.append(rate)
    updates.append(ups)
    print(f'  train {rate:8.0f} env steps/s ({ups:.1f} updates/s)', flush=True)
  raw, train = statistics.median(raws), statistics.median(trains)
  print(f'median: raw {raw:.0f}, train {train:.0f} env steps/s, '
        f'{statistics.median(updates):.1f} updates/s; efficiency '
        f'{train / raw:.2f}', flush=True)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
