"""Rate limiters: when a table lets actors insert and learners sample.

Reverb's rule, stated on the table's running counts (``inserts`` and
``samples`` since the table was created, ``size`` the items it holds now):

* Inserting ``n`` items is allowed while ``size + n <= min_size_to_sample``
  (filling up to the minimum size is always free); beyond that, only if
  ``diff_after = (inserts + n) * samples_per_insert - samples <= max_diff``.
* Sampling ``n`` items needs ``size >= min_size_to_sample`` and
  ``inserts * samples_per_insert - samples - n >= min_diff``.

``diff = inserts * samples_per_insert - samples`` is the sampling "credit":
each insert earns ``samples_per_insert`` samples and each sample spends one.
``max_diff`` bounds how far actors may run ahead of the learner and
``min_diff`` how far the learner may run ahead of the actors. A sample counts
every item of a batch.

A limiter only holds its parameters and answers questions about counts that
the table owns and passes in, so it is stateless and may be shared.
"""

from __future__ import annotations

import math
from typing import Tuple, Union


class RateLimiter:
  """Reverb's rate limiter: ``samples_per_insert`` within ``[min_diff, max_diff]``.

  Args:
    samples_per_insert: how many samples each insert pays for.
    min_size_to_sample: sampling is blocked while the table holds fewer items.
    min_diff: sampling is blocked when it would bring ``diff`` below this.
    max_diff: inserting is blocked when it would bring ``diff`` above this
      (once the table holds ``min_size_to_sample`` items).
  """

  def __init__(self, samples_per_insert: float, min_size_to_sample: int,
               min_diff: float, max_diff: float):
    samples_per_insert = float(samples_per_insert)
    if not (samples_per_insert > 0 and math.isfinite(samples_per_insert)):
      raise ValueError(
          f'samples_per_insert must be positive, got {samples_per_insert}.')
    if int(min_size_to_sample) != min_size_to_sample or min_size_to_sample < 1:
      raise ValueError('min_size_to_sample must be a positive integer, got '
                       f'{min_size_to_sample}.')
    min_diff, max_diff = float(min_diff), float(max_diff)
    if math.isnan(min_diff) or math.isnan(max_diff) or min_diff > max_diff:
      raise ValueError(
          f'min_diff ({min_diff}) must not be greater than max_diff ({max_diff}).')
    self.samples_per_insert = samples_per_insert
    self.min_size_to_sample = int(min_size_to_sample)
    self.min_diff = min_diff
    self.max_diff = max_diff

  def diff(self, num_inserts: int, num_samples: int) -> float:
    """The sampling credit ``inserts * samples_per_insert - samples``."""
    return num_inserts * self.samples_per_insert - num_samples

  def can_insert(self, num_inserts: int, num_samples: int, size: int,
                 n: int = 1) -> bool:
    """Whether ``n`` more items may be inserted, given the counts so far."""
    if size + n <= self.min_size_to_sample:
      return True
    return self.diff(num_inserts + n, num_samples) <= self.max_diff

  def can_sample(self, num_inserts: int, num_samples: int, size: int,
                 n: int = 1) -> bool:
    """Whether ``n`` more items may be sampled, given the counts so far."""
    if size < self.min_size_to_sample:
      return False
    return self.diff(num_inserts, num_samples) - n >= self.min_diff

  @property
  def window(self) -> float:
    """``max_diff - min_diff``: the most samples one call can ever take."""
    return self.max_diff - self.min_diff

  def why_cannot_insert(self, num_inserts: int, num_samples: int, size: int,
                        n: int = 1) -> str:
    """A sentence saying why ``can_insert`` is False (for error messages)."""
    after = self.diff(num_inserts + n, num_samples)
    return (f'inserting {n} would bring inserts*samples_per_insert - samples to '
            f'{after:g} > max_diff={self.max_diff:g}: the learner has not '
            f'sampled enough (inserts={num_inserts}, samples={num_samples}, '
            f'samples_per_insert={self.samples_per_insert:g}, size={size})')

  def why_cannot_sample(self, num_inserts: int, num_samples: int, size: int,
                        n: int = 1) -> str:
    """A sentence saying why ``can_sample`` is False (for error messages)."""
    counts = (f'size={size}, min_size_to_sample={self.min_size_to_sample}, '
              f'inserts={num_inserts}, samples={num_samples}, '
              f'samples_per_insert={self.samples_per_insert:g}, '
              f'min_diff={self.min_diff:g}')
    if size < self.min_size_to_sample:
      return (f'the table holds {size} items, fewer than min_size_to_sample='
              f'{self.min_size_to_sample}: actors have not inserted enough '
              f'({counts})')
    after = self.diff(num_inserts, num_samples) - n
    return (f'sampling {n} would bring inserts*samples_per_insert - samples to '
            f'{after:g} < min_diff={self.min_diff:g}: the learner is ahead of '
            f'the actors ({counts})')

  def __repr__(self) -> str:
    return (f'{type(self).__name__}(samples_per_insert={self.samples_per_insert:g}, '
            f'min_size_to_sample={self.min_size_to_sample}, '
            f'min_diff={self.min_diff:g}, max_diff={self.max_diff:g})')


class MinSize(RateLimiter):
  """Blocks sampling until the table holds ``min_size_to_sample`` items."""

  def __init__(self, min_size_to_sample: int):
    super().__init__(samples_per_insert=1.0,
                     min_size_to_sample=min_size_to_sample,
                     min_diff=-math.inf, max_diff=math.inf)


class SampleToInsertRatio(RateLimiter):
  """Keeps samples per insert near ``samples_per_insert``, within a buffer.

  Below ``min_size_to_sample`` items it behaves like ``MinSize``. Past it, the
  error ``(inserts - min_size_to_sample) * samples_per_insert - samples`` may
  drift within ``[-error_buffer, error_buffer]``: beyond the upper edge inserts
  block, below the lower edge samples block. The offset
  ``samples_per_insert * min_size_to_sample`` keeps the items inserted while
  filling up to the minimum size out of the ratio: it is kept on what happens
  afterwards.

  Args:
    samples_per_insert: the target number of samples per inserted item.
    min_size_to_sample: the table size at which sampling may start.
    error_buffer: a number ``b`` (the range is then offset +- b), or an
      explicit ``(min_diff, max_diff)`` pair used without offset. Must span at
      least ``2 * max(1, samples_per_insert)``, or calls could block forever.
  """

  def __init__(self, samples_per_insert: float, min_size_to_sample: int,
               error_buffer: Union[float, Tuple[float, float]]):
    if isinstance(error_buffer, (tuple, list)):
      min_diff, max_diff = (float(x) for x in error_buffer)
    else:
      offset = float(samples_per_insert) * min_size_to_sample
      min_diff = offset - float(error_buffer)
      max_diff = offset + float(error_buffer)
    if max_diff - min_diff < 2 * max(1.0, float(samples_per_insert)):
      raise ValueError(
          f'SampleToInsertRatio: the error_buffer range [{min_diff:g}, '
          f'{max_diff:g}] must span at least 2 * max(1, samples_per_insert) = '
          f'{2 * max(1.0, float(samples_per_insert)):g}; a narrower one can '
          'block inserts and samples for ever.')
    if min_diff > float(samples_per_insert) * min_size_to_sample:
      raise ValueError(
          f'SampleToInsertRatio: min_diff ({min_diff:g}) is above '
          'samples_per_insert * min_size_to_sample '
          f'({float(samples_per_insert) * min_size_to_sample:g}); sampling '
          'would deadlock once min_size_to_sample items are inserted.')
    super().__init__(samples_per_insert, min_size_to_sample, min_diff, max_diff)


class Queue(RateLimiter):
  """Turns a table into a queue of at most ``size`` items (use ``Table.queue``).

  Each insert earns exactly one sample: inserts block while ``size`` items
  wait unsampled, samples block while none wait. Needs a FIFO sampler and
  ``max_times_sampled=1``.
  """

  def __init__(self, size: int):
    if int(size) != size or size < 1:
      raise ValueError(f'Queue size must be a positive integer, got {size}.')
    super().__init__(samples_per_insert=1.0, min_size_to_sample=1,
                     min_diff=0.0, max_diff=float(size))


class Stack(Queue):
  """As ``Queue``, for a table with a LIFO sampler (use ``Table.stack``)."""
