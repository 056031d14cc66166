"""Tests for marl_jax.replay.table.Table and marl_jax.replay.rate_limiters.

References are hand-worked counts, plain-Python formulas and the defining
properties of a queue; threads synchronise on the table's own counters (never
on sleeps).
"""

import threading
import time

import numpy as np
import pytest

from marl_jax.replay import rate_limiters, samplers
from marl_jax.replay.table import (ReplayClosedError, ReplayTimeoutError,
                                   Table, importance_weights)


def _wait_until(predicate, timeout=5.0):
  """Polls ``predicate`` (state the table reports), failing after ``timeout``."""
  deadline = time.monotonic() + timeout
  while not predicate():
    if time.monotonic() > deadline:
      raise AssertionError('condition not reached in time')
    time.sleep(0.001)


class _Thread(threading.Thread):
  """Runs ``fn`` and keeps its result or exception."""

  def __init__(self, fn):
    super().__init__(daemon=True)
    self._fn = fn
    self.result = self.error = None

  def run(self):
    try:
      self.result = self._fn()
    except BaseException as e:  # pylint: disable=broad-except
      self.error = e


# -- rate limiters, hand-worked -------------------------------------------------


def test_sample_to_insert_ratio_offsets_error_buffer():
  rl = rate_limiters.SampleToInsertRatio(samples_per_insert=2.0,
                                         min_size_to_sample=2, error_buffer=3)
  # offset = 2 * 2 = 4, so [min_diff, max_diff] = [1, 7].
  assert (rl.min_diff, rl.max_diff) == (1.0, 7.0)
  explicit = rate_limiters.SampleToInsertRatio(2.0, 2, (-1.0, 9.0))
  assert (explicit.min_diff, explicit.max_diff) == (-1.0, 9.0)
  with pytest.raises(ValueError, match='span at least'):
    rate_limiters.SampleToInsertRatio(2.0, 2, error_buffer=1.5)
  with pytest.raises(ValueError, match='deadlock'):
    rate_limiters.SampleToInsertRatio(1.0, 2, (3.0, 10.0))


def test_rate_limiter_rules_by_hand():
  rl = rate_limiters.SampleToInsertRatio(2.0, 2, 3)  # [min_diff, max_diff] = [1, 7]
  # Filling to min_size_to_sample is free: size + 1 <= 2.
  assert rl.can_insert(num_inserts=0, num_samples=0, size=0)
  assert rl.can_insert(num_inserts=1, num_samples=0, size=1)
  assert not rl.can_sample(num_inserts=1, num_samples=0, size=1)  # size < 2
  # 3rd insert: (2 + 1) * 2 - 0 = 6 <= 7; 4th: 8 > 7 blocks (learner behind).
  assert rl.can_insert(2, 0, 2)
  assert not rl.can_insert(3, 0, 3)
  # With 3 inserts the credit is 6: 5 samples take it to 1 = min_diff.
  assert rl.can_sample(3, 4, 3)      # 6 - 4 - 1 = 1 >= 1
  assert not rl.can_sample(3, 5, 3)  # 6 - 5 - 1 = 0 < 1 (learner ahead)
  assert rl.can_sample(3, 0, 3, n=5) and not rl.can_sample(3, 0, 3, n=6)
  assert rl.can_insert(3, 1, 3)      # 8 - 1 = 7 <= 7
  q = rate_limiters.Queue(3)
  assert (q.samples_per_insert, q.min_size_to_sample, q.min_diff,
          q.max_diff) == (1.0, 1, 0.0, 3.0)
  assert q.can_insert(2, 0, 2) and not q.can_insert(3, 0, 3)
  m = rate_limiters.MinSize(4)
  assert not m.can_sample(3, 0, 3) and m.can_sample(4, 10 ** 9, 4)
  assert m.can_insert(10 ** 9, 0, 10)


def test_table_sample_to_insert_ratio_blocks_both_ways():
  t = Table('ratio', samplers.Uniform(), samplers.Fifo(), max_size=100,
            rate_limiter=rate_limiters.SampleToInsertRatio(2.0, 2, 3))
  for i in range(3):
    t.insert(np.float32(i), timeout=0)
  with pytest.raises(ReplayTimeoutError, match="'ratio'.*insert"):
    t.insert(np.float32(3), timeout=0)  # 4 * 2 - 0 = 8 > 7
  t.sample(5, timeout=0)  # credit 6 -> 1
  with pytest.raises(ReplayTimeoutError, match="'ratio'.*starved.*ahead"):
    t.sample(1, timeout=0)  # 6 - 5 - 1 = 0 < 1
  t.insert(np.float32(3), timeout=0)  # 8 - 5 = 3 <= 7
  t.sample(2, timeout=0)  # 8 - 5 - 2 = 1 >= 1
  info = t.info()
  assert (info.num_inserts, info.num_samples) == (4, 7)
  assert (info.num_blocked_inserts, info.num_blocked_samples) == (1, 1)


# -- queue semantics -------------------------------------------------------------


def test_queue_samples_each_item_once_in_order():
  t = Table.queue('q', max_size=5)
  for i in range(5):
    t.insert({'x': np.array([i, -i])})
  b = t.sample(2)
  np.testing.assert_array_equal(b.items['x'], [[0, 0], [1, -1]])
  np.testing.assert_array_equal(b.keys, [0, 1])
  np.testing.assert_array_equal(b.times_sampled, [1, 1])
  np.testing.assert_array_equal(b.probabilities, [1.0, 1.0])
  np.testing.assert_array_equal(b.table_size, [5, 4])
  b = t.sample(3)
  np.testing.assert_array_equal(b.items['x'][:, 0], [2, 3, 4])
  assert t.size() == 0
  with pytest.raises(ReplayTimeoutError, match="'q'.*starved.*size=0") as e:
    t.sample(1, timeout=0.01)
  assert 'min_size_to_sample=1' in str(e.value)
  assert 'inserts=5' in str(e.value) and 'samples=5' in str(e.value)


def test_queue_insert_blocks_when_full_until_a_sample_frees_space():
  t = Table.queue('q', max_size=2)
  t.insert(np.int32(0))
  t.insert(np.int32(1))
  with pytest.raises(ReplayTimeoutError, match="Table 'q': insert timed out"):
    t.insert(np.int32(2), timeout=0.01)
  writer = _Thread(lambda: t.insert(np.int32(2), timeout=5.0))
  writer.start()
  _wait_until(lambda: t.info().num_blocked_inserts == 2)
  assert writer.is_alive() and t.size() == 2  # blocked, not evicting
  np.testing.assert_array_equal(t.sample(1).items, [0])
  writer.join(5.0)
  assert writer.error is None and writer.result == 2  # keys count successful inserts
  np.testing.assert_array_equal(t.sample(2).items, [1, 2])
  info = t.info()
  assert info.num_evicted == 0 and info.insert_blocked_seconds > 0


def test_queue_with_concurrent_writers_and_reader():
  t = Table.queue('q', max_size=8)
  n_per_writer, batch = 200, 4

  def write(w):
    for i in range(n_per_writer):
      t.insert(np.array([w, i]), timeout=5.0)

  def read():
    out = []
    for _ in range(2 * n_per_writer // batch):
      out.extend(t.sample(batch, timeout=5.0).items.tolist())
    return out

  threads = [_Thread(lambda: write(0)), _Thread(lambda: write(1)),
             _Thread(read)]
  for th in threads:
    th.start()
  for th in threads:
    th.join(10.0)
  assert all(th.error is None for th in threads)
  got = threads[2].result
  assert len(got) == 2 * n_per_writer
  for w in range(2):  # every item once, each writer's items in order
    assert [i for ww, i in got if ww == w] == list(range(n_per_writer))
  assert t.size() == 0


# -- eviction, max_times_sampled, priorities -------------------------------------


def test_max_size_evicts_the_oldest():
  t = Table.uniform('u', max_size=3)
  for i in range(5):
    t.insert(np.int64(i))
  assert t.size() == 3
  b = t.sample(300)
  assert set(b.items.tolist()) == {2, 3, 4}
  np.testing.assert_array_equal(b.table_size, 3)
  np.testing.assert_allclose(b.probabilities, 1 / 3)
  info = t.info()
  assert (info.num_evicted, info.num_deletes, info.size) == (2, 2, 3)


def test_max_times_sampled_deletes_items():
  t = Table.uniform('u', max_size=10, max_times_sampled=2)
  for i in range(3):
    t.insert(np.int64(i))
  b = t.sample(6)  # exactly the samples the three items can give
  assert sorted(b.items.tolist()) == [0, 0, 1, 1, 2, 2]
  for k in range(3):
    assert sorted(b.times_sampled[b.keys == k].tolist()) == [1, 2]
  assert t.size() == 0 and t.info().num_expired == 3
  t.insert(np.int64(3))
  with pytest.raises(ReplayTimeoutError, match='only be sampled 2 more times'):
    t.sample(3, timeout=0)
  assert t.sample(2).items.tolist() == [3, 3]


def test_prioritized_table_probabilities_updates_and_weights():
  alpha = 0.5
  t = Table.prioritized('per', max_size=10, priority_exponent=alpha, seed=3)
  pri = {}
  for i, p in enumerate([1.0, 4.0, 9.0, 16.0]):
    pri[t.insert(np.float32(i), priority=p)] = p

  def exact(k):
    return pri[k] ** alpha / sum(v ** alpha for v in pri.values())

  b = t.sample(50)
  for k, p in zip(b.keys.tolist(), b.probabilities):
    assert p == pytest.approx(exact(k), rel=1e-12)
  t.update_priorities([0, 3, 99], [25.0, 0.0, 1.0])  # 99: unknown, ignored
  pri[0], pri[3] = 25.0, 0.0
  b = t.sample(200)
  assert 3 not in b.keys.tolist()
  for k, p in zip(b.keys.tolist(), b.probabilities):
    assert p == pytest.approx(exact(k), rel=1e-12)
  w = importance_weights(b.probabilities, b.table_size, beta=0.4)
  ref = (4 * b.probabilities) ** -0.4
  np.testing.assert_allclose(w, ref / ref.max(), rtol=1e-6)
  assert w.max() == pytest.approx(1.0)
  with pytest.raises(ValueError):
    t.update_priorities([0], [-1.0])


# -- timeouts, close, bad input --------------------------------------------------


def test_min_size_timeout_explains_starvation():
  t = Table.uniform('learner_table', max_size=10, min_size_to_sample=4)
  for i in range(3):
    t.insert(np.int64(i))
  with pytest.raises(ReplayTimeoutError) as e:
    t.sample(2, timeout=0.01)
  msg = str(e.value)
  assert isinstance(e.value, TimeoutError)
  for part in ["'learner_table'", 'starved', 'size=3', 'min_size_to_sample=4',
               'inserts=3', 'samples=0']:
    assert part in msg, (part, msg)


def test_blocked_sampler_wakes_on_insert_and_close_wakes_inserter():
  t = Table.queue('q', max_size=1)
  reader = _Thread(lambda: t.sample(1))  # no timeout
  reader.start()
  _wait_until(lambda: t.info().num_blocked_samples == 1)
  t.insert(np.int32(0))  # wakes the reader, which takes the item
  reader.join(5.0)
  assert reader.error is None and reader.result.items.tolist() == [0]

  t.insert(np.int32(1))
  writer = _Thread(lambda: t.insert(np.int32(2)))  # full: blocks, no timeout
  writer.start()
  _wait_until(lambda: t.info().num_blocked_inserts == 1)
  t.close()
  writer.join(5.0)
  assert not writer.is_alive()
  assert isinstance(writer.error, ReplayClosedError)
  assert "'q'" in str(writer.error)
  assert t.info().closed
  with pytest.raises(ReplayClosedError):
    t.insert(np.int32(3))
  with pytest.raises(ReplayClosedError):
    t.sample(1)


def test_close_wakes_a_sampler_blocked_without_timeout():
  t = Table.uniform('u', max_size=4, min_size_to_sample=2)
  reader = _Thread(lambda: t.sample(1))
  reader.start()
  _wait_until(lambda: t.info().num_blocked_samples == 1)
  t.close()
  reader.join(5.0)
  assert not reader.is_alive()
  assert isinstance(reader.error, ReplayClosedError)
  assert t.info().sample_blocked_seconds > 0


def test_bad_arguments_raise_clear_errors():
  with pytest.raises(ValueError, match='max_size'):
    Table.queue('q', max_size=0)
  with pytest.raises(ValueError, match='min_size_to_sample .*exceeds max_size'):
    Table.uniform('u', max_size=2, min_size_to_sample=3)
  with pytest.raises(ValueError, match='distinct'):
    s = samplers.Fifo()
    Table('t', s, s, 4, rate_limiters.MinSize(1))
  t = Table.queue('q', max_size=4)
  with pytest.raises(ValueError, match='batch_size 5 can never be sampled'):
    t.sample(5)
  with pytest.raises(ValueError, match='batch_size'):
    t.sample(0)
  with pytest.raises(ValueError, match='priority'):
    t.insert(np.int32(0), priority=float('nan'))
  r = Table.uniform('r', max_size=100, min_size_to_sample=10,
                    samples_per_insert=1.0)  # default error_buffer: 1
  with pytest.raises(ValueError, match='error_buffer'):
    r.sample(32)


def test_a_table_spec_with_a_ratio_samples_a_whole_batch():
  """make_table's default error_buffer fits a batch: Acme's 10% of the
  samples owed for min_size_to_sample items (6.4 here) would not fit 32."""
  from marl_jax.replay.table import TableSpec, make_table  # pylint: disable=g-import-not-at-top
  spec = TableSpec(sampler='uniform', item='episode', sequence_length=5,
                   batch_size=32, max_size=100, samples_per_insert=2.)
  table = make_table(spec, 'ratio')
  for i in range(32):
    table.insert(i, timeout=1.)
  assert table.can_sample(32)
  assert len(table.sample(32, timeout=1.).keys) == 32
  assert not table.can_sample(32)  # the ratio now owes inserts first
