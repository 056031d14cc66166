"""Item selectors: which item a table samples next, and which it evicts.

As in Reverb, one kind of object plays both roles: a table's *sampler* picks
the items a learner receives and its *remover* picks the item to evict when
the table is full. Every selector keeps its own view of the table's keys
(plain ``int`` keys handed out by the table) and offers

* ``insert(key, priority)`` / ``delete(key)`` / ``update(key, priority)``;
* ``sample(rng) -> (key, probability)``, where ``probability`` is the chance
  that this draw returned ``key`` (1 for deterministic selectors), so that
  prioritized replay can compute importance weights;
* ``sample_batch(rng, n) -> (keys, probabilities)``, ``n`` independent draws
  with replacement from the same state (vectorised where it matters);
* ``len(selector)``.

Selectors are not thread-safe on their own; the table serialises all calls.
"""

from __future__ import annotations

import collections
import heapq
import math
from typing import Dict, Tuple

import numpy as np


def _check_priority(priority: float) -> float:
  priority = float(priority)
  if not (priority >= 0.0 and math.isfinite(priority)):
    raise ValueError(f'priorities must be finite and non-negative, got {priority}.')
  return priority


class ItemSelector:
  """Base class: the selector interface, and a looping ``sample_batch``."""

  def insert(self, key: int, priority: float) -> None:
    raise NotImplementedError

  def delete(self, key: int) -> None:
    raise NotImplementedError

  def update(self, key: int, priority: float) -> None:
    raise NotImplementedError

  def sample(self, rng: np.random.Generator) -> Tuple[int, float]:
    raise NotImplementedError

  def __len__(self) -> int:
    raise NotImplementedError

  def __contains__(self, key: int) -> bool:
    raise NotImplementedError

  def sample_batch(self, rng: np.random.Generator,
                   n: int) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` draws with replacement, without changing the selector."""
    draws = [self.sample(rng) for _ in range(n)]
    keys = np.array([k for k, _ in draws], dtype=np.int64)
    probs = np.array([p for _, p in draws], dtype=np.float64)
    return keys, probs

  def _check_new(self, key: int) -> None:
    if key in self:
      raise KeyError(f'key {key} is already in the {type(self).__name__} selector.')

  def _check_nonempty(self) -> None:
    if len(self) == 0:
      raise ValueError(f'cannot sample from an empty {type(self).__name__} selector.')


class _Ordered(ItemSelector):
  """Keys in insertion order; O(1) insert, delete and access at either end."""

  def __init__(self):
    self._keys: 'collections.OrderedDict[int, None]' = collections.OrderedDict()

  def insert(self, key: int, priority: float) -> None:
    _check_priority(priority)
    self._check_new(key)
    self._keys[key] = None

  def delete(self, key: int) -> None:
    del self._keys[key]

  def update(self, key: int, priority: float) -> None:
    _check_priority(priority)
    if key not in self._keys:
      raise KeyError(key)
    # Order is by insertion only; priorities are ignored.

  def __len__(self) -> int:
    return len(self._keys)

  def __contains__(self, key: int) -> bool:
    return key in self._keys


class Fifo(_Ordered):
  """Selects the oldest item (first in, first out), with probability 1."""

  def sample(self, rng: np.random.Generator) -> Tuple[int, float]:
    del rng
    self._check_nonempty()
    return next(iter(self._keys)), 1.0


class Lifo(_Ordered):
  """Selects the newest item (last in, first out), with probability 1."""

  def sample(self, rng: np.random.Generator) -> Tuple[int, float]:
    del rng
    self._check_nonempty()
    return next(reversed(self._keys)), 1.0


class Uniform(ItemSelector):
  """Selects every item with probability ``1 / size``.

  Keys live in a dense array; a delete moves the last key into the freed slot
  (swap-remove), so insert, delete and sample are all O(1).
  """

  def __init__(self, initial_capacity: int = 1024):
    self._keys = np.zeros(max(1, initial_capacity), dtype=np.int64)
    self._index: Dict[int, int] = {}

  def insert(self, key: int, priority: float) -> None:
    _check_priority(priority)
    self._check_new(key)
    n = len(self._index)
    if n == len(self._keys):
      self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
    self._keys[n] = key
    self._index[key] = n

  def delete(self, key: int) -> None:
    i = self._index.pop(key)
    last = len(self._index)  # index of the last key, after the pop
    if i != last:
      moved = int(self._keys[last])
      self._keys[i] = moved
      self._index[moved] = i

  def update(self, key: int, priority: float) -> None:
    _check_priority(priority)
    if key not in self._index:
      raise KeyError(key)

  def sample(self, rng: np.random.Generator) -> Tuple[int, float]:
    self._check_nonempty()
    n = len(self._index)
    return int(self._keys[rng.integers(n)]), 1.0 / n

  def sample_batch(self, rng: np.random.Generator,
                   n: int) -> Tuple[np.ndarray, np.ndarray]:
    self._check_nonempty()
    size = len(self._index)
    keys = self._keys[rng.integers(size, size=n)].copy()
    return keys, np.full(n, 1.0 / size)

  def __len__(self) -> int:
    return len(self._index)

  def __contains__(self, key: int) -> bool:
    return key in self._index


class Prioritized(ItemSelector):
  """Selects item ``i`` with probability ``p_i^a / sum_j p_j^a``.

  Schaul et al. (2016), "Prioritized Experience Replay", Eq. 1, with
  ``a = priority_exponent`` (0 is uniform, 1 is fully proportional).

  The weights ``p^a`` sit in the leaves of a sum tree stored in one numpy
  array (``tree[1]`` is the root, node ``i`` has children ``2i`` and ``2i+1``,
  leaves start at ``capacity``). Occupied leaves are kept dense in
  ``[0, size)`` by swap-remove, and the capacity doubles when full. Each write
  recomputes its ancestors from their children, so the total never drifts
  through accumulated floating point error. If every priority is zero, the
  selector samples uniformly.
  """

  def __init__(self, priority_exponent: float, initial_capacity: int = 1024):
    priority_exponent = float(priority_exponent)
    if not (priority_exponent >= 0.0 and math.isfinite(priority_exponent)):
      raise ValueError('priority_exponent must be finite and non-negative, got '
                       f'{priority_exponent}.')
    self.priority_exponent = priority_exponent
    capacity = 1
    while capacity < initial_capacity:
      capacity *= 2
    self._capacity = capacity
    self._tree = np.zeros(2 * capacity, dtype=np.float64)
    self._keys = np.zeros(capacity, dtype=np.int64)
    self._index: Dict[int, int] = {}

  # -- public API --------------------------------------------------------------

  def insert(self, key: int, priority: float) -> None:
    weight = self._weight(priority)
    self._check_new(key)
    n = len(self._index)
    if n == self._capacity:
      self._grow()
    self._keys[n] = key
    self._index[key] = n
    self._set(n, weight)

  def delete(self, key: int) -> None:
    i = self._index.pop(key)
    last = len(self._index)
    if i != last:
      moved = int(self._keys[last])
      self._keys[i] = moved
      self._index[moved] = i
      self._set(i, self._tree[self._capacity + last])
    self._set(last, 0.0)

  def update(self, key: int, priority: float) -> None:
    weight = self._weight(priority)
    self._set(self._index[key], weight)

  def sample(self, rng: np.random.Generator) -> Tuple[int, float]:
    keys, probs = self.sample_batch(rng, 1)
    return int(keys[0]), float(probs[0])

  def sample_batch(self, rng: np.random.Generator,
                   n: int) -> Tuple[np.ndarray, np.ndarray]:
    self._check_nonempty()
    size = len(self._index)
    total = self._tree[1]
    if total <= 0.0:
      slots = rng.integers(size, size=n)
      return self._keys[slots].copy(), np.full(n, 1.0 / size)
    slots = self._descend(rng.random(n) * total)
    # Rounding can, very rarely, walk into a zero-weight or empty leaf.
    leaves = self._tree[self._capacity:]
    for _ in range(8):
      bad = (slots >= size) | (leaves[np.minimum(slots, size - 1)] <= 0.0)
      if not bad.any():
        break
      slots[bad] = self._descend(rng.random(int(bad.sum())) * total)
    else:
      bad = (slots >= size) | (leaves[np.minimum(slots, size - 1)] <= 0.0)
      slots[bad] = int(np.flatnonzero(leaves[:size] > 0.0)[-1])
    return self._keys[slots].copy(), leaves[slots] / total

  def probability(self, key: int) -> float:
    """The probability that one draw returns ``key``."""
    total = self._tree[1]
    if total <= 0.0:
      return 1.0 / len(self._index)
    return float(self._tree[self._capacity + self._index[key]] / total)

  @property
  def total(self) -> float:
    """The sum of ``priority ** priority_exponent`` over all items."""
    return float(self._tree[1])

  def __len__(self) -> int:
    return len(self._index)

  def __contains__(self, key: int) -> bool:
    return key in self._index

  # -- internals ---------------------------------------------------------------

  def _weight(self, priority: float) -> float:
    return _check_priority(priority) ** self.priority_exponent

  def _set(self, slot: int, weight: float) -> None:
    tree = self._tree
    node = self._capacity + slot
    tree[node] = weight
    node //= 2
    while node >= 1:
      tree[node] = tree[2 * node] + tree[2 * node + 1]
      node //= 2

  def _descend(self, u: np.ndarray) -> np.ndarray:
    """Leaf slots holding the prefix sums ``u`` (a vectorised tree walk)."""
    tree = self._tree
    node = np.ones(u.shape, dtype=np.int64)
    u = u.copy()
    while self._capacity > 1 and node[0] < self._capacity:
      left = tree[2 * node]
      right = u >= left
      u = np.where(right, u - left, u)
      node = 2 * node + right
    return node - self._capacity

  def _grow(self) -> None:
    old_cap = self._capacity
    cap = 2 * old_cap
    tree = np.zeros(2 * cap, dtype=np.float64)
    tree[cap:cap + old_cap] = self._tree[old_cap:]
    start = cap // 2
    while start >= 1:  # rebuild each level from the one below
      children = tree[2 * start:4 * start]
      tree[start:2 * start] = children[0::2] + children[1::2]
      start //= 2
    self._tree = tree
    self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
    self._capacity = cap


class _Heap(ItemSelector):
  """Selects the item with the extreme priority; ties go to the oldest write.

  A binary heap with lazy deletion: ``delete`` and ``update`` leave stale
  entries behind that are skipped (and dropped) when they reach the top, and
  the heap is rebuilt when stale entries outnumber live ones.
  """

  _sign = 1.0

  def __init__(self):
    self._heap = []
    self._live: Dict[int, Tuple[float, int]] = {}
    self._counter = 0

  def insert(self, key: int, priority: float) -> None:
    self._check_new(key)
    self._push(key, priority)

  def delete(self, key: int) -> None:
    del self._live[key]
    self._maybe_compact()

  def update(self, key: int, priority: float) -> None:
    if key not in self._live:
      raise KeyError(key)
    self._push(key, priority)
    self._maybe_compact()

  def sample(self, rng: np.random.Generator) -> Tuple[int, float]:
    del rng
    self._check_nonempty()
    heap = self._heap
    while True:
      value, seq, key = heap[0]
      if self._live.get(key) == (value, seq):
        return key, 1.0
      heapq.heappop(heap)

  def __len__(self) -> int:
    return len(self._live)

  def __contains__(self, key: int) -> bool:
    return key in self._live

  def _push(self, key: int, priority: float) -> None:
    entry = (self._sign * _check_priority(priority), self._counter)
    self._counter += 1
    self._live[key] = entry
    heapq.heappush(self._heap, (entry[0], entry[1], key))

  def _maybe_compact(self) -> None:
    if len(self._heap) > 2 * len(self._live) + 16:
      self._heap = [(v, s, k) for k, (v, s) in self._live.items()]
      heapq.heapify(self._heap)


class MinHeap(_Heap):
  """Selects the lowest-priority item (as a remover: evict the least useful)."""
  _sign = 1.0


class MaxHeap(_Heap):
  """Selects the highest-priority item."""
  _sign = -1.0
