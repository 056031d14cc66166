"""Replay tables, with Reverb's vocabulary.

``TableSpec`` is what an algorithm asks of the replay: what actors write
(fixed-length sequences or whole episodes) and how the learner samples them.
``Table`` is a thread-safe table with Reverb's semantics (a sampler, a remover,
``max_size``, ``max_times_sampled`` and a rate limiter), the core that the
replay server wraps.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.replay import rate_limiters
from marl_jax.replay import samplers


SAMPLERS = ('fifo', 'uniform', 'prioritized')
# What one item of a table holds: 'sequence' is one agent's fixed-length
# ``Trajectory`` (``sequence_length + 1`` steps, consecutive sequences
# overlapping by one step); 'episode' is a whole episode of all agents of an env
# copy (``EpisodeBatch``, padded to ``sequence_length`` steps), 'chunk' the same
# joint layout for ``sequence_length`` steps that run on through episode ends
# (the anakin runtime only: the distributed actors write whole episodes).
ITEMS = ('sequence', 'episode', 'chunk')


class TableSpec(NamedTuple):
  """An algorithm's replay table, whole: what actors write and how it is
  sampled. Both runtimes build their tables from this alone (``make_table``,
  ``replay.episode_buffer``); no replay setting is read from the config.

  Attributes:
    sampler: ``'fifo'`` (a queue: each item sampled once, in order; inserts
      wait while it is full), ``'uniform'`` or ``'prioritized'``.
    item: one of ``ITEMS``: per-agent sequences, or joint episodes/chunks.
    sequence_length: T, transitions per sequence (or steps per episode/chunk).
    batch_size: items per member per learner update.
    max_size: items kept per member; beyond it the remover evicts one.
    remover: which item a full uniform/prioritized table evicts: ``'fifo'``
      (the oldest; Reverb's Fifo remover). A queue always removes the oldest.
    min_size_to_sample: items a table holds before sampling starts (0: one
      batch).
    samples_per_insert: Reverb's SampleToInsertRatio limiter for uniform and
      prioritized tables (None: no ratio, sample as fast as the learner goes).
    error_buffer: the ratio limiter's slack (None: one batch's worth, or
      Acme's 10% of the samples owed for ``min_size_to_sample`` items if
      that is more).
    priority_exponent: alpha of prioritized sampling, ``P(i) ~ p_i ** alpha``.
    importance_exponent_start: beta of the importance weights at the run's
      start, annealed linearly to 1 at its end (Schaul et al. 2016); 1: full
      correction throughout. Prioritized tables only.
  """
  sampler: str
  item: str
  sequence_length: int
  batch_size: int
  max_size: int
  remover: str = 'fifo'
  min_size_to_sample: int = 0
  samples_per_insert: Optional[float] = None
  error_buffer: Optional[float] = None
  priority_exponent: float = 0.6
  importance_exponent_start: float = 1.0

  @property
  def joint(self) -> bool:
    """Items hold all agents of an env copy (``EpisodeBatch``) rather than one
    agent's ``Trajectory``."""
    return self.item != 'sequence'

  @property
  def prioritized(self) -> bool:
    return self.sampler == 'prioritized'

  def importance_exponent(self, progress: Any) -> Any:
    """beta at ``progress`` in [0, 1] of the run (numpy or jax scalars)."""
    beta0 = self.importance_exponent_start
    return beta0 + (1. - beta0) * jnp.minimum(1., progress)

  def validate(self) -> 'TableSpec':
    """Raises ``ValueError`` naming the first field that cannot work."""
    if self.sampler not in SAMPLERS:
      raise ValueError(f'replay sampler {self.sampler!r} is not one of '
                       f'{", ".join(SAMPLERS)}.')
    if self.item not in ITEMS:
      raise ValueError(f'replay item {self.item!r} is not one of '
                       f'{", ".join(ITEMS)}.')
    if self.remover != 'fifo':
      raise ValueError(f'replay remover {self.remover!r}: only fifo is '
                       'supported.')
    for name in ('sequence_length', 'batch_size', 'max_size'):
      value = getattr(self, name)
      if int(value) != value or value <= 0:
        raise ValueError(f'replay {name} must be a positive integer, got '
                         f'{value!r}.')
    if self.max_size < self.batch_size:
      raise ValueError(f'replay max_size ({self.max_size}) must be at least '
                       f'batch_size ({self.batch_size}).')
    if not 0 <= self.min_size_to_sample <= self.max_size:
      raise ValueError(f'replay min_size_to_sample ({self.min_size_to_sample})'
                       f' must be in [0, max_size={self.max_size}].')
    if self.samples_per_insert is not None and self.samples_per_insert <= 0:
      raise ValueError('replay samples_per_insert must be positive (or None),'
                       f' got {self.samples_per_insert!r}.')
    if self.priority_exponent < 0:
      raise ValueError('replay priority_exponent must be >= 0, got '
                       f'{self.priority_exponent!r}.')
    if not 0. <= self.importance_exponent_start <= 1.:
      raise ValueError('replay importance_exponent_start must be in [0, 1], '
                       f'got {self.importance_exponent_start!r}.')
    return self


def make_table(spec: TableSpec, name: str, seed: int = 0,
               evicting: bool = False) -> 'Table':
  """A ``Table`` with ``spec``'s semantics.

  ``evicting``: a fifo table is a queue whose full inserts evict the oldest
  item rather than wait (the ``single`` launcher, whose one thread cannot wait
  for itself).
  """
  spec.validate()
  if spec.sampler == 'fifo':
    if evicting:
      return Table.evicting_queue(name, spec.max_size, spec.batch_size,
                                  seed=seed)
    return Table.queue(name, spec.max_size, seed=seed)
  min_size = spec.min_size_to_sample or spec.batch_size
  error_buffer = spec.error_buffer
  if spec.samples_per_insert and error_buffer is None:
    # A whole batch must fit in the limiter's range (Acme's 10% of the
    # samples owed for min_size_to_sample items can be narrower).
    error_buffer = max(float(spec.batch_size), float(spec.samples_per_insert),
                       0.1 * spec.samples_per_insert * min_size)
  if spec.sampler == 'uniform':
    return Table.uniform(name, spec.max_size, min_size_to_sample=min_size,
                         samples_per_insert=spec.samples_per_insert,
                         error_buffer=error_buffer, seed=seed)
  return Table.prioritized(name, spec.max_size,
                           priority_exponent=spec.priority_exponent,
                           min_size_to_sample=min_size,
                           samples_per_insert=spec.samples_per_insert,
                           error_buffer=error_buffer, seed=seed)


def stack(items: Sequence[Any]) -> Any:
  """Stacks a list of pytrees of numpy arrays on a new leading axis."""
  return jax.tree.map(lambda *xs: np.stack(xs), *items)


# -----------------------------------------------------------------------------
# Table: Reverb's semantics, in-process and thread-safe.


class ReplayTimeoutError(TimeoutError):
  """An insert or sample waited for the rate limiter longer than its timeout."""


class ReplayClosedError(RuntimeError):
  """The table was closed, before or while a call waited on it."""


class SampleBatch(NamedTuple):
  """What ``Table.sample`` returns; leading axis ``[batch_size]`` throughout.

  Attributes:
    keys: int64, the sampled items' keys (for ``update_priorities``).
    items: the items, stacked with ``stack``.
    probabilities: float64, the chance each draw had of returning its item.
    times_sampled: int64, how often each item has been sampled, this time
      included.
    table_size: int64, the table's size when each item was drawn.
  """
  keys: np.ndarray
  items: Any
  probabilities: np.ndarray
  times_sampled: np.ndarray
  table_size: np.ndarray


class TableInfo(NamedTuple):
  """Counters of a ``Table`` (``info()._asdict()`` for a logger)."""
  name: str
  size: int
  max_size: int
  max_times_sampled: int
  num_inserts: int
  num_samples: int
  num_deletes: int
  num_evicted: int
  num_expired: int
  insert_blocked_seconds: float
  sample_blocked_seconds: float
  num_blocked_inserts: int
  num_blocked_samples: int
  closed: bool


def importance_weights(probabilities: np.ndarray, table_size: Any,
                       beta: float) -> np.ndarray:
  """Prioritized replay's importance-sampling weights, normalised by the max.

  ``w_i = (N * P(i)) ** -beta / max_j w_j`` (Schaul et al. 2016, Sec. 3.4).

  Args:
    probabilities: ``[B]`` sampling probabilities (``SampleBatch.probabilities``).
    table_size: ``N``, a scalar or ``[B]`` (``SampleBatch.table_size``).
    beta: the correction exponent in ``[0, 1]``; 1 corrects fully.

  Returns:
    ``[B]`` float32 weights in ``(0, 1]``.
  """
  p = np.asarray(probabilities, dtype=np.float64)
  n = np.asarray(table_size, dtype=np.float64)
  if np.any(p <= 0) or np.any(n <= 0):
    raise ValueError('importance_weights needs positive probabilities and '
                     'table sizes.')
  w = (n * p) ** (-float(beta))
  return (w / w.max()).astype(np.float32)


class Table:
  """A replay table with Reverb's semantics, safe to share between threads.

  Actors ``insert`` items, learners ``sample`` batches. The ``sampler`` picks
  sampled items, the ``remover`` picks the item evicted when an insert finds
  the table full (``max_size``), items sampled ``max_times_sampled`` times are
  deleted (0: never), and the ``rate_limiter`` blocks inserts and samples that
  would break its ratio (see ``rate_limiters``). Blocking calls wait on a
  condition variable and honour a ``timeout``; ``close()`` wakes them all.

  A batch is taken atomically: ``sample(B)`` waits until the limiter allows
  all ``B`` samples at once, so a timeout never loses items. Hence ``B`` may
  not exceed ``rate_limiter.max_diff - rate_limiter.min_diff`` (a
  ``ValueError`` says so), and with ``max_times_sampled > 0`` not the samples
  the table can still give (``max_size * max_times_sampled``).

  Args:
    name: the table's name, used in errors and logs.
    sampler: an item selector from ``samplers`` (a fresh one per table).
    remover: an item selector choosing evictions (a fresh one per table).
    max_size: the most items held at once.
    rate_limiter: a ``rate_limiters.RateLimiter``.
    max_times_sampled: delete an item once sampled this often; 0 for never.
    seed: seeds the table's random generator (the sampler's draws).
  """

  def __init__(self, name: str, sampler: samplers.ItemSelector,
               remover: samplers.ItemSelector, max_size: int,
               rate_limiter: rate_limiters.RateLimiter,
               max_times_sampled: int = 0, seed: int = 0):
    _check_max_size(name, max_size)
    if int(max_times_sampled) != max_times_sampled or max_times_sampled < 0:
      raise ValueError(f'Table {name!r}: max_times_sampled must be a '
                       f'non-negative integer, got {max_times_sampled}.')
    if sampler is remover:
      raise ValueError(f'Table {name!r}: sampler and remover must be distinct '
                       'objects (each keeps its own view of the keys).')
    if len(sampler) or len(remover):
      raise ValueError(f'Table {name!r}: sampler and remover must be empty.')
    if rate_limiter.min_size_to_sample > max_size:
      raise ValueError(
          f'Table {name!r}: min_size_to_sample '
          f'({rate_limiter.min_size_to_sample}) exceeds max_size ({max_size}); '
          'sampling could never start.')
    self.name = name
    self.max_size = int(max_size)
    self.max_times_sampled = int(max_times_sampled)
    self.rate_limiter = rate_limiter
    self._sampler = sampler
    self._remover = remover
    self._rng = np.random.default_rng(seed)

    self._lock = threading.Lock()
    self._can_insert = threading.Condition(self._lock)
    self._can_sample = threading.Condition(self._lock)
    self._closed = False

    self._items: Dict[int, Any] = {}
    self._times_sampled: Dict[int, int] = {}
    self._next_key = 0
    # Samples the items can still give before max_times_sampled deletes them.
    self._samples_left = 0
    self._num_inserts = 0
    self._num_samples = 0
    self._num_deletes = 0
    self._num_evicted = 0
    self._num_expired = 0
    self._blocked_seconds = {'insert': 0.0, 'sample': 0.0}
    self._num_blocked = {'insert': 0, 'sample': 0}

  # -- factories, as Reverb's Table.queue / Table.stack and Acme's tables -----

  @classmethod
  def queue(cls, name: str, max_size: int, seed: int = 0) -> 'Table':
    """A FIFO queue: each item sampled once, in order; inserts block when full."""
    _check_max_size(name, max_size)
    return cls(name, samplers.Fifo(), samplers.Fifo(), max_size,
               rate_limiters.Queue(max_size), max_times_sampled=1, seed=seed)

  @classmethod
  def evicting_queue(cls, name: str, max_size: int,
                     min_size_to_sample: int = 1, seed: int = 0) -> 'Table':
    """A FIFO queue whose inserts never block: when full, an insert evicts
    the oldest item (counted in ``info().num_evicted``)."""
    _check_max_size(name, max_size)
    return cls(name, samplers.Fifo(), samplers.Fifo(), max_size,
               rate_limiters.MinSize(min_size_to_sample), max_times_sampled=1,
               seed=seed)

  @classmethod
  def stack(cls, name: str, max_size: int, seed: int = 0) -> 'Table':
    """A LIFO stack: each item sampled once, newest first."""
    _check_max_size(name, max_size)
    return cls(name, samplers.Lifo(), samplers.Lifo(), max_size,
               rate_limiters.Stack(max_size), max_times_sampled=1, seed=seed)

  @classmethod
  def uniform(cls, name: str, max_size: int, min_size_to_sample: int = 1,
              samples_per_insert: Optional[float] = None,
              error_buffer: Optional[float] = None, max_times_sampled: int = 0,
              seed: int = 0) -> 'Table':
    """Uniform sampling, FIFO eviction; see ``_limiter`` for the rate limiter."""
    limiter = _limiter(min_size_to_sample, samples_per_insert, error_buffer)
    return cls(name, samplers.Uniform(), samplers.Fifo(), max_size, limiter,
               max_times_sampled=max_times_sampled, seed=seed)

  @classmethod
  def prioritized(cls, name: str, max_size: int, priority_exponent: float = 0.6,
                  min_size_to_sample: int = 1,
                  samples_per_insert: Optional[float] = None,
                  error_buffer: Optional[float] = None,
                  max_times_sampled: int = 0, seed: int = 0) -> 'Table':
    """Prioritized sampling (``p^a / sum p^a``), FIFO eviction."""
    limiter = _limiter(min_size_to_sample, samples_per_insert, error_buffer)
    return cls(name, samplers.Prioritized(priority_exponent), samplers.Fifo(),
               max_size, limiter, max_times_sampled=max_times_sampled, seed=seed)

  # -- the API -----------------------------------------------------------------

  def insert(self, item: Any, priority: float = 1.0,
             timeout: Optional[float] = None) -> int:
    """Adds ``item``, waiting while the rate limiter forbids inserting.

    Args:
      item: any pytree (of numpy arrays, if it is to be batched by ``sample``).
      priority: its priority, finite and non-negative.
      timeout: seconds to wait at most; None waits for ever.

    Returns:
      The item's key.

    Raises:
      ReplayTimeoutError: the limiter still forbade the insert after ``timeout``.
      ReplayClosedError: the table is or was closed meanwhile.
    """
    priority = float(priority)
    if not (priority >= 0 and math.isfinite(priority)):
      raise ValueError(f'Table {self.name!r}: priority must be finite and '
                       f'non-negative, got {priority}.')
    with self._lock:
      self._wait('insert', self._can_insert, self._insert_allowed, timeout,
                 self._insert_blocked_message)
      if len(self._items) >= self.max_size:
        evicted, _ = self._remover.sample(self._rng)
        self._delete(evicted)
        self._num_evicted += 1
      key = self._next_key
      self._next_key += 1
      self._sampler.insert(key, priority)
      self._remover.insert(key, priority)
      self._items[key] = item
      self._times_sampled[key] = 0
      self._samples_left += self.max_times_sampled
      self._num_inserts += 1
      self._can_sample.notify_all()
    return key

  def sample(self, batch_size: int,
             timeout: Optional[float] = None) -> SampleBatch:
    """Samples ``batch_size`` items, waiting while the rate limiter forbids it.

    Draws are independent, with replacement unless ``max_times_sampled``
    deletes an item within the batch. Items reaching ``max_times_sampled``
    are deleted.

    Raises:
      ValueError: ``batch_size`` can never be sampled at once from this table.
      ReplayTimeoutError: the learner was still starved after ``timeout``; the
        message says why (size, min size, inserts, samples).
      ReplayClosedError: the table is or was closed meanwhile.
    """
    self._check_batch_size(batch_size)
    with self._lock:
      self._wait('sample', self._can_sample,
                 lambda: self._sample_allowed(batch_size), timeout,
                 lambda: self._sample_blocked_message(batch_size))
      if self.max_times_sampled == 0:
        keys, probs = self._sampler.sample_batch(self._rng, batch_size)
        keys = [int(k) for k in keys]
        sizes = np.full(batch_size, len(self._items), dtype=np.int64)
        items = [self._items[k] for k in keys]
        times = np.empty(batch_size, dtype=np.int64)
        for i, k in enumerate(keys):
          self._times_sampled[k] += 1
          times[i] = self._times_sampled[k]
      else:
        keys, probs = [], np.empty(batch_size, dtype=np.float64)
        items, sizes = [], np.empty(batch_size, dtype=np.int64)
        times = np.empty(batch_size, dtype=np.int64)
        for i in range(batch_size):
          k, probs[i] = self._sampler.sample(self._rng)
          sizes[i] = len(self._items)
          keys.append(k)
          items.append(self._items[k])
          self._times_sampled[k] += 1
          self._samples_left -= 1
          times[i] = self._times_sampled[k]
          if times[i] >= self.max_times_sampled:
            self._delete(k)
            self._num_expired += 1
      self._num_samples += batch_size
      self._can_insert.notify_all()
    return SampleBatch(keys=np.asarray(keys, dtype=np.int64), items=stack(items),
                       probabilities=np.asarray(probs, dtype=np.float64),
                       times_sampled=times, table_size=sizes)

  def update_priorities(self, keys: Sequence[int],
                        priorities: Sequence[float]) -> None:
    """Sets new priorities; keys no longer in the table are ignored."""
    keys = [int(k) for k in np.asarray(keys).reshape(-1)]
    priorities = [float(p) for p in np.asarray(priorities).reshape(-1)]
    if len(keys) != len(priorities):
      raise ValueError(f'Table {self.name!r}: {len(keys)} keys but '
                       f'{len(priorities)} priorities.')
    for p in priorities:
      if not (p >= 0 and math.isfinite(p)):
        raise ValueError(f'Table {self.name!r}: priorities must be finite and '
                         f'non-negative, got {p}.')
    with self._lock:
      for k, p in zip(keys, priorities):
        if k in self._items:
          self._sampler.update(k, p)
          self._remover.update(k, p)

  def size(self) -> int:
    with self._lock:
      return len(self._items)

  def can_sample(self, batch_size: int) -> bool:
    """Whether ``sample(batch_size)`` would return now without waiting (the
    rate limiter and ``max_times_sampled`` allow it)."""
    with self._lock:
      return self._sample_allowed(batch_size)

  def items(self) -> List[Any]:
    """The items held, in insertion order (e.g. to checkpoint a queue)."""
    with self._lock:
      return [self._items[k] for k in sorted(self._items)]

  def info(self) -> TableInfo:
    with self._lock:
      return TableInfo(
          name=self.name, size=len(self._items), max_size=self.max_size,
          max_times_sampled=self.max_times_sampled,
          num_inserts=self._num_inserts, num_samples=self._num_samples,
          num_deletes=self._num_deletes, num_evicted=self._num_evicted,
          num_expired=self._num_expired,
          insert_blocked_seconds=self._blocked_seconds['insert'],
          sample_blocked_seconds=self._blocked_seconds['sample'],
          num_blocked_inserts=self._num_blocked['insert'],
          num_blocked_samples=self._num_blocked['sample'],
          closed=self._closed)

  def close(self) -> None:
    """Refuses further calls and wakes every waiter with ``ReplayClosedError``."""
    with self._lock:
      self._closed = True
      self._can_insert.notify_all()
      self._can_sample.notify_all()

  def __repr__(self) -> str:
    return (f'Table(name={self.name!r}, sampler={type(self._sampler).__name__}, '
            f'remover={type(self._remover).__name__}, max_size={self.max_size}, '
            f'max_times_sampled={self.max_times_sampled}, '
            f'rate_limiter={self.rate_limiter!r})')

  # -- internals (called with the lock held) ----------------------------------

  def _delete(self, key: int) -> None:
    del self._items[key]
    self._samples_left -= (self.max_times_sampled - self._times_sampled.pop(key)
                           if self.max_times_sampled else 0)
    self._sampler.delete(key)
    self._remover.delete(key)
    self._num_deletes += 1

  def _insert_allowed(self) -> bool:
    return self.rate_limiter.can_insert(self._num_inserts, self._num_samples,
                                        len(self._items))

  def _sample_allowed(self, batch_size: int) -> bool:
    size = len(self._items)
    if size == 0:
      return False
    if self.max_times_sampled and self._samples_left < batch_size:
      return False
    return self.rate_limiter.can_sample(self._num_inserts, self._num_samples,
                                        size, batch_size)

  def _wait(self, kind: str, condition: threading.Condition,
            allowed: Callable[[], bool], timeout: Optional[float],
            message: Callable[[], str]) -> None:
    """Waits on ``condition`` until ``allowed()``; counts the time blocked."""
    if self._closed:
      raise ReplayClosedError(f'Table {self.name!r} is closed; cannot {kind}.')
    if allowed():
      return
    start = time.monotonic()
    deadline = None if timeout is None else start + max(0.0, float(timeout))
    self._num_blocked[kind] += 1
    try:
      while True:
        if deadline is None:
          condition.wait()
        else:
          remaining = deadline - time.monotonic()
          if remaining <= 0:
            raise ReplayTimeoutError(
                f'Table {self.name!r}: {kind} timed out after {timeout:g} s: '
                f'{message()}.')
          condition.wait(remaining)
        if self._closed:
          raise ReplayClosedError(
              f'Table {self.name!r} was closed while a {kind} call waited.')
        if allowed():
          return
    finally:
      self._blocked_seconds[kind] += time.monotonic() - start

  def _insert_blocked_message(self) -> str:
    return ('the rate limiter blocks inserts, ' + self.rate_limiter.why_cannot_insert(
        self._num_inserts, self._num_samples, len(self._items)))

  def _sample_blocked_message(self, batch_size: int) -> str:
    size = len(self._items)
    head = f'the learner is starved (sample of {batch_size}): '
    if (size >= self.rate_limiter.min_size_to_sample and size > 0 and
        self.max_times_sampled and self._samples_left < batch_size):
      return head + (
          f'the {size} items can only be sampled {self._samples_left} more '
          f'times before max_times_sampled={self.max_times_sampled} deletes '
          f'them (inserts={self._num_inserts}, samples={self._num_samples})')
    return head + self.rate_limiter.why_cannot_sample(
        self._num_inserts, self._num_samples, size, batch_size)

  def _check_batch_size(self, batch_size: int) -> None:
    if int(batch_size) != batch_size or batch_size < 1:
      raise ValueError(f'Table {self.name!r}: batch_size must be a positive '
                       f'integer, got {batch_size}.')
    window = self.rate_limiter.window
    if batch_size > window:
      raise ValueError(
          f'Table {self.name!r}: batch_size {batch_size} can never be sampled '
          f'at once: the rate limiter allows at most max_diff - min_diff = '
          f'{window:g} samples ahead ({self.rate_limiter!r}); use a larger '
          'error_buffer or a smaller batch.')
    if self.max_times_sampled and batch_size > self.max_size * self.max_times_sampled:
      raise ValueError(
          f'Table {self.name!r}: batch_size {batch_size} exceeds the '
          f'max_size * max_times_sampled = '
          f'{self.max_size * self.max_times_sampled} samples the table can hold.')


def _check_max_size(name: str, max_size: int) -> None:
  if int(max_size) != max_size or max_size < 1:
    raise ValueError(f'Table {name!r}: max_size must be a positive integer, '
                     f'got {max_size}.')


def _limiter(min_size_to_sample: int, samples_per_insert: Optional[float],
             error_buffer: Optional[float]) -> rate_limiters.RateLimiter:
  """``MinSize`` without ``samples_per_insert``, else ``SampleToInsertRatio``.

  The default ``error_buffer`` is, as in Acme, 10% of the samples owed for
  ``min_size_to_sample`` items, and at least ``max(1, samples_per_insert)``
  (the narrowest buffer Reverb accepts).
  """
  if samples_per_insert is None:
    if error_buffer is not None:
      raise ValueError('error_buffer needs samples_per_insert.')
    return rate_limiters.MinSize(min_size_to_sample)
  if error_buffer is None:
    error_buffer = max(1.0, samples_per_insert,
                       0.1 * samples_per_insert * min_size_to_sample)
  return rate_limiters.SampleToInsertRatio(samples_per_insert,
                                           min_size_to_sample, error_buffer)
