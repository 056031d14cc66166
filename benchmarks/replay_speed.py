"""Replay throughput: our replay node against dm-reverb, side by side.

Reverb's own measured setting: trajectories of T=20 steps, 2 agents, 11x11x3
uint8 observations plus action, reward, discount and logits; batches of 32; a
writer process and a learner process, the server in a third. Two tables:
  queue    FIFO queue (Reverb's Table.queue, max size 4 batches), end to end:
           trajectories/s the learner receives (each sampled once).
  uniform  uniform sampling, FIFO eviction, max size 10,000, sampling starts at
           2 batches; trajectories/s the learner samples while a writer keeps
           inserting.

Ours: ``ReplayNode`` (one member) served by ``courier`` in its own process; the
writer sends its trajectories in lists of ``--write_chunk`` per call (as our
actors do), the learner samples through a prefetching thread (as the learner
node does) and puts every batch on the JAX device.

Reverb runs from its own virtualenv (it needs TF 2.15, numpy<2, jax 0.4.34):
``--reverb_python`` and ``--reverb_bench`` point at it and at its probe
(../shared/reference/reverb/). Without them only ours runs.

  python benchmarks/replay_speed.py --secs=20 \\
      --reverb_python=/tmp/venv-reverb/bin/python \\
      --reverb_bench=../shared/reference/reverb/bench.py
"""

import multiprocessing as mp
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

_SECS = flags.DEFINE_float('secs', 20., 'Seconds measured per configuration.')
_REPEATS = flags.DEFINE_integer('repeats', 1, 'Runs per configuration (median).')
_WRITE_CHUNK = flags.DEFINE_integer('write_chunk', 8,
                                    'Trajectories per insert call.')
_REVERB_PYTHON = flags.DEFINE_string('reverb_python', None,
                                     'Python of a virtualenv with dm-reverb.')
_REVERB_BENCH = flags.DEFINE_string('reverb_bench', None,
                                    "Path of Reverb's bench.py probe.")
_TABLES = flags.DEFINE_list('tables', ['queue', 'uniform'], 'Tables to run.')

T, N_AGENTS, N_ACT, BATCH = 20, 2, 5, 32


def _spec():
  import numpy as np  # pylint: disable=g-import-not-at-top
  return {
      'obs': ((T, N_AGENTS, 11, 11, 3), np.uint8),
      'action': ((T, N_AGENTS), np.int32),
      'reward': ((T, N_AGENTS), np.float32),
      'discount': ((T, N_AGENTS), np.float32),
      'logits': ((T, N_AGENTS, N_ACT), np.float32),
  }


def _table_spec(kind):
  from marl_jax.replay.table import TableSpec  # pylint: disable=g-import-not-at-top
  if kind == 'queue':
    return TableSpec(sampler='fifo', item='sequence', sequence_length=T,
                     batch_size=BATCH, max_size=4 * BATCH)
  return TableSpec(sampler='uniform', item='sequence', sequence_length=T,
                   batch_size=BATCH, max_size=10_000)


def _server(address, kind, ready):
  from marl_jax.replay.server import ReplayNode  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime import courier  # pylint: disable=g-import-not-at-top
  replay = ReplayNode(dict(population_size=1, seed=0),
                      table_spec=_table_spec(kind)._replace(
                          **({} if kind == 'queue' else {})))
  if kind == 'uniform':  # Reverb's MinSize(2 * BATCH) limiter.
    from marl_jax.replay.table import Table  # pylint: disable=g-import-not-at-top
    replay._tables[0] = Table.uniform('member_0', 10_000,  # pylint: disable=protected-access
                                      min_size_to_sample=2 * BATCH)
  server = courier.Server(replay, address)
  ready.set()
  while True:
    time.sleep(3600)
  del server


def _writer(address, secs, chunk, out, stop):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime import courier  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  pool = [{k: rng.integers(0, 255, size=s).astype(d)
           for k, (s, d) in _spec().items()} for _ in range(8)]
  client = courier.Client(address, 'replay')
  n = 0
  t0 = time.monotonic()
  deadline = t0 + secs
  while time.monotonic() < deadline and not stop.is_set():
    items = [(0, pool[(n + i) % 8]) for i in range(chunk)]
    while items and not stop.is_set():
      left = client.insert(items, timeout=0.5)
      n += len(items) - len(left)
      items = [items[i] for i in left]
  out.put(('writer', n / (time.monotonic() - t0)))


def _learner(address, secs, out, stop):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from marl_jax.replay.table import ReplayTimeoutError  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime import courier  # pylint: disable=g-import-not-at-top

  @jax.jit
  def consume(b):
    return (jnp.mean(b['obs'].astype(jnp.float32)) + jnp.sum(b['reward']) +
            jnp.sum(b['logits']) + jnp.sum(b['action']) +
            jnp.sum(b['discount']))

  client = courier.Client(address, 'replay')
  batches = queue.Queue(maxsize=2)

  def prefetch():
    while not stop.is_set():
      try:
        batches.put(client.sample(timeout=1.)[0])
      except ReplayTimeoutError:
        continue

  threading.Thread(target=prefetch, daemon=True).start()
  b = batches.get()
  consume(jax.device_put(b)).block_until_ready()  # compile
  n = 0
  t0 = time.monotonic()
  while time.monotonic() - t0 < secs:
    b = batches.get()
    consume(jax.device_put(b)).block_until_ready()
    n += 1
  rate = n * BATCH / (time.monotonic() - t0)
  stop.set()
  out.put(('learner', rate))


def run_ours(kind, secs, chunk):
  ctx = mp.get_context('spawn')
  address = os.path.join(tempfile.mkdtemp(prefix='replay_bench_'), 'r.sock')
  ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
  server = ctx.Process(target=_server, args=(address, kind, ready), daemon=True)
  server.start()
  ready.wait(120)
  writer = ctx.Process(target=_writer, args=(address, secs + 60, chunk, out,
                                             stop), daemon=True)
  learner = ctx.Process(target=_learner, args=(address, secs, out, stop),
                        daemon=True)
  writer.start()
  learner.start()
  results = dict(out.get(timeout=secs + 180) for _ in range(2))
  for p in (writer, learner, server):
    p.join(5)
    if p.is_alive():
      p.kill()
  return results


def run_reverb(kind, secs):
  sampler = 'pybind' if kind == 'queue' else 'dataset'
  cmd = [_REVERB_PYTHON.value, _REVERB_BENCH.value, '--table', kind,
         '--writer', 'traj', '--sampler', sampler, '--secs', str(secs)]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 240,
                       cwd=os.path.dirname(_REVERB_BENCH.value)).stdout
  writer = re.search(r"writer :.*'traj_per_s': ([\d.]+)", out)
  learner = re.search(r"learner:.*'traj_per_s': ([\d.]+)", out)
  if not (writer and learner):
    raise RuntimeError(f'Could not parse the Reverb probe output:\n{out}')
  return dict(writer=float(writer.group(1)), learner=float(learner.group(1)))


def _median(values):
  values = sorted(values)
  return values[len(values) // 2]


def main(argv):
  del argv
  print(f'replay_speed: T={T}, {N_AGENTS} agents, 11x11x3 uint8 obs, batch '
        f'{BATCH}; {_SECS.value:.0f} s per run, median of {_REPEATS.value}; '
        f'{os.cpu_count()} CPUs', flush=True)
  reverb = _REVERB_PYTHON.value and _REVERB_BENCH.value
  for kind in _TABLES.value:
    ours = [run_ours(kind, _SECS.value, _WRITE_CHUNK.value)
            for _ in range(_REPEATS.value)]
    line = (f'{kind:8s} ours:   learner {_median([o["learner"] for o in ours]):8.0f}'
            f' traj/s, writer {_median([o["writer"] for o in ours]):8.0f} traj/s')
    print(line, flush=True)
    if reverb:
      theirs = [run_reverb(kind, _SECS.value) for _ in range(_REPEATS.value)]
      lt = _median([r['learner'] for r in theirs])
      wt = _median([r['writer'] for r in theirs])
      lo = _median([o['learner'] for o in ours])
      print(f'{kind:8s} reverb: learner {lt:8.0f} traj/s, writer {wt:8.0f} '
            f'traj/s | ours/reverb (learner) {lo / lt:.2f}', flush=True)


if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  app.run(main)
