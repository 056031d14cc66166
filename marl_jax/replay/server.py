"""The replay node: one replay table per population member (Reverb's roles).

``ReplayNode`` is what the distributed program's actors write to and its
learner samples from, under every launcher: one table per member, each with
the semantics of the algorithm's ``TableSpec`` (``replay/table.py``: sampler,
remover, sizes, rate limiter, priorities). Built from a ``TableSpec``, or from
a function of the config that returns one (so that the program description
stays cheap and the algorithm is built in the node's own process).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import numpy as np

from marl_jax.replay import table as table_lib


class ReplayNode:
  """The replay server: one table per member, with Reverb's semantics.

  ``insert`` takes a list of ``(member, item)``; ``sample`` returns one batch
  of every member, stacked ``[P, B, ...]``. Both block as the tables' rate
  limiters say, up to a timeout, and never lose or half-write data: an insert
  that times out reports how many items went in, so the writer retries the
  rest; a sample that times out takes nothing.

  One guard against a population deadlock: with queue tables, a writer blocked
  on member A's full queue while the learner waits for member B's batch would
  wait for ever. When that happens (an insert and a sample both blocked), the
  oldest item of A's queue is dropped to make room, and counted in
  ``info()['dropped']``.
  """

  def __init__(self, config_dict,
               table_spec: Union[table_lib.TableSpec,
                                 Callable[[Any], table_lib.TableSpec]],
               evicting: bool = False):
    """Args:
      config_dict: the run config (``population_size``, ``seed``).
      table_spec: the tables' ``TableSpec``, or ``table_spec(config_dict)``
        returning it.
      evicting: no write ever waits (the ``single`` launcher: one thread
        cannot wait for itself): queue tables drop their oldest item when
        full, and sampled tables keep no samples-per-insert limiter (the
        launcher keeps the spec's ratio by counting).
    """
    if callable(table_spec):
      table_spec = table_spec(config_dict)
    self.spec = table_spec
    self._population_size = int(config_dict['population_size'])
    self._evicting = evicting and table_spec.sampler == 'fifo'
    seed = int(config_dict['seed'])
    built = (table_spec._replace(samples_per_insert=None, error_buffer=None)
             if evicting and table_spec.sampler != 'fifo' else table_spec)
    self._tables = [
        table_lib.make_table(built, f'member_{m}', seed=seed + m,
                             evicting=evicting)
        for m in range(self._population_size)]
    self._sampling = 0  # samples currently waiting
    self._lock = threading.Lock()
    self._sample_lock = threading.Lock()
    self._held: List[Any] = [None] * self._population_size
    self._dropped = 0
    self._evicted_before = 0  # evictions before a resume (evicting queues)

  def insert(self, items: Sequence[Tuple[int, Any]],
             timeout: float = 5.0) -> List[int]:
    """Inserts ``(member, item)`` pairs; returns the positions not inserted.

    Each member's items go in in their order, and a member whose table is full
    does not hold up the others' (no head-of-line blocking across members).
    Whatever is not in by ``timeout`` is reported back for the writer to retry.
    """
    for member, _ in items:
      if not 0 <= member < self._population_size:
        raise ValueError(f'member {member} is not in a population of '
                         f'{self._population_size}.')
    pending: Dict[int, collections.deque] = {}
    for pos, (member, _) in enumerate(items):
      pending.setdefault(member, collections.deque()).append(pos)
    deadline = time.monotonic() + timeout
    stuck_since = None
    while True:
      progressed = False
      for member, queue_ in pending.items():
        table = self._tables[member]
        while queue_:
          try:
            table.insert(items[queue_[0]][1], timeout=0)
          except table_lib.ReplayTimeoutError:
            break
          queue_.popleft()
          progressed = True
      left = [m for m, q in pending.items() if q]
      now = time.monotonic()
      if not left or now >= deadline:
        return sorted(p for q in pending.values() for p in q)
      if progressed:
        stuck_since = None
        continue
      stuck_since = stuck_since or now
      with self._lock:
        starved = self._sampling > 0
      if (starved and now - stuck_since >= 0.1 and
          self.spec.sampler == 'fifo' and self._population_size > 1):
        # Every pending item is for a full queue while the learner waits for
        # another member's data, which this writer cannot produce until its
        # write is done: drop those queues' oldest items to make room for all
        # of it at once, rather than wait for ever.
        for member in left:
          table = self._tables[member]
          room = table.max_size - table.size()
          for _ in range(max(0, len(pending[member]) - room)):
            try:
              table.sample(1, timeout=0)
            except table_lib.ReplayTimeoutError:
              break
            with self._lock:
              self._dropped += 1
        stuck_since = None
        continue
      # Wait for room in one of the tables (briefly: others may free first).
      member = left[0]
      try:
        self._tables[member].insert(items[pending[member][0]][1],
                                    timeout=min(0.05, deadline - now))
        pending[member].popleft()
        stuck_since = None
      except table_lib.ReplayTimeoutError:
        pass

  def sample(self, timeout: float = 30.0) -> Tuple[Any, Dict[str, np.ndarray]]:
    """One batch per member, ``[P, B, ...]``, and its sampling info.

    Members' batches are taken in turn; if the timeout strikes before all are
    in, those already taken are held here for the next call (nothing is lost,
    nothing is put back out of order) and ``ReplayTimeoutError`` is raised.
    """
    with self._lock:
      self._sampling += 1
    try:
      deadline = time.monotonic() + timeout
      with self._sample_lock:
        for m, table in enumerate(self._tables):
          if self._held[m] is None:
            self._held[m] = table.sample(
                self.spec.batch_size,
                timeout=max(0., deadline - time.monotonic()))
        batches, self._held = self._held, [None] * self._population_size
    finally:
      with self._lock:
        self._sampling -= 1
    items = table_lib.stack([b.items for b in batches])
    info = dict(keys=np.stack([b.keys for b in batches]),
                probabilities=np.stack([b.probabilities for b in batches]),
                table_size=np.stack([b.table_size for b in batches]))
    return items, info

  def can_sample(self) -> bool:
    """Whether every member's table would give a batch now (its size and
    rate limiter allow it)."""
    return all(t.can_sample(self.spec.batch_size) for t in self._tables)

  def get_state(self) -> Dict[str, Any]:
    """The tables' contents, oldest first (the single launcher's resume:
    exact for queues; a sampled table's items come back in order, with the
    sampler's draws and priorities starting afresh)."""
    return dict(items=[t.items() for t in self._tables],
                evicted=[t.info().num_evicted for t in self._tables])

  def set_state(self, state: Dict[str, Any]) -> None:
    if len(state['items']) != self._population_size:
      raise ValueError(f'The saved replay has {len(state["items"])} members, '
                       f'this run has {self._population_size}.')
    for m, (table, items) in enumerate(zip(self._tables, state['items'])):
      if table.size():
        raise ValueError(f'set_state needs empty tables; member {m} has '
                         f'{table.size()} items.')
      for item in items:
        table.insert(item, timeout=0)
    self._evicted_before = sum(state['evicted'])

  def update_priorities(self, member: int, keys, priorities) -> None:
    self._tables[member].update_priorities(keys, priorities)

  def info(self) -> Dict[str, Any]:
    infos = [t.info() for t in self._tables]
    inserts = sum(i.num_inserts for i in infos)
    samples = sum(i.num_samples for i in infos)
    dropped = self._dropped
    if self._evicting:
      dropped += self._evicted_before + sum(i.num_evicted for i in infos)
    return dict(sizes=[i.size for i in infos], inserts=inserts,
                samples=samples, dropped=dropped,
                samples_per_insert=samples / inserts if inserts else 0.,
                insert_blocked_s=sum(i.insert_blocked_seconds for i in infos),
                sample_blocked_s=sum(i.sample_blocked_seconds for i in infos))

  def close(self) -> None:
    for t in self._tables:
      t.close()
