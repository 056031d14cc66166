"""Replay tables, with Reverb's vocabulary.

``TableSpec`` is what an algorithm asks of the replay: what actors write
(fixed-length sequences or whole episodes) and how the learner samples them.
``PopulationQueue`` is the in-process FIFO queue table used by the ``single``
launcher: one queue per population member, so that every member receives a
batch of its own experience in each update.
"""

from __future__ import annotations

import collections
from typing import Any, List, NamedTuple, Optional, Sequence

import jax
import numpy as np


class TableSpec(NamedTuple):
  """What actors write and how it is sampled.

  Attributes:
    sampler: ``'fifo'`` (a queue: each item sampled once), ``'uniform'`` or
      ``'prioritized'``.
    item: ``'sequence'`` (fixed length ``sequence_length + 1``, consecutive
      sequences overlapping by one step) or ``'episode'``.
    sequence_length: T, the number of transitions in a sequence.
    batch_size: items per member per learner update.
    max_size: items kept per member; the oldest are dropped beyond it.
  """
  sampler: str
  item: str
  sequence_length: int
  batch_size: int
  max_size: int


def stack(items: Sequence[Any]) -> Any:
  """Stacks a list of pytrees of numpy arrays on a new leading axis."""
  return jax.tree.map(lambda *xs: np.stack(xs), *items)


class PopulationQueue:
  """FIFO queues of items, one per population member.

  ``sample()`` returns ``[population_size, batch_size, ...]`` once every member
  has ``batch_size`` items; members that produce faster than they are consumed
  lose their oldest items past ``max_size`` (counted in ``num_dropped``).
  """

  def __init__(self, population_size: int, batch_size: int, max_size: int):
    if population_size <= 0 or batch_size <= 0:
      raise ValueError('population_size and batch_size must be positive, got '
                       f'{population_size} and {batch_size}.')
    if max_size < batch_size:
      raise ValueError(f'replay max_size ({max_size}) must be at least the batch '
                       f'size ({batch_size}).')
    self._batch_size = batch_size
    self._queues: List[collections.deque] = [
        collections.deque() for _ in range(population_size)]
    self._max_size = max_size
    self.num_inserted = 0
    self.num_dropped = 0

  def insert(self, member: int, item: Any) -> None:
    q = self._queues[member]
    q.append(item)
    self.num_inserted += 1
    if len(q) > self._max_size:
      q.popleft()
      self.num_dropped += 1

  def can_sample(self) -> bool:
    return all(len(q) >= self._batch_size for q in self._queues)

  def sizes(self) -> List[int]:
    return [len(q) for q in self._queues]

  def sample(self) -> Optional[Any]:
    """Pops one batch per member, stacked ``[P, B, ...]``; None if any is short."""
    if not self.can_sample():
      return None
    per_member = []
    for q in self._queues:
      per_member.append(stack([q.popleft() for _ in range(self._batch_size)]))
    return stack(per_member)

  # Exact resume: the queue's contents are part of a run's state.
  def get_state(self) -> Any:
    return dict(queues=[list(q) for q in self._queues],
                num_inserted=self.num_inserted, num_dropped=self.num_dropped)

  def set_state(self, state: Any) -> None:
    if len(state['queues']) != len(self._queues):
      raise ValueError(
          f'Saved replay has {len(state["queues"])} members, this run has '
          f'{len(self._queues)}.')
    self._queues = [collections.deque(q) for q in state['queues']]
    self.num_inserted = state['num_inserted']
    self.num_dropped = state['num_dropped']
