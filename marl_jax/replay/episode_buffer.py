"""An on-device episode replay for the anakin runtime: pure functions.

A ring of ``capacity`` whole episodes (any pytree of arrays with a leading
``[capacity]`` axis), with a priority per episode. ``add`` overwrites the
oldest episodes with new ones at the highest priority seen so far;
``sample`` draws a batch with replacement, uniformly or in proportion to
``priority ** alpha`` (prioritized replay, Schaul et al., 2016,
arXiv:1511.05952, eq. 1), and returns the importance weights
``(N P(i)) ** -beta`` normalised by the batch's largest (Sec. 3.4, as
``replay.table.importance_weights``); ``set_priorities`` writes the learner's
new priorities. Everything jits and vmaps (over members and seeds), and the
buffer's size is static, so it lives inside the anakin ``lax.scan``.

It does the job of flashbax's prioritised item buffer, without its flax and
tensorstore dependencies: sampling is a categorical draw over the whole ring
(``O(capacity)``, a few thousand episodes), not a sum tree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class EpisodeBufferState(NamedTuple):
  items: Any  # pytree, leaves [capacity, ...]
  priorities: jax.Array  # [capacity] float32
  position: jax.Array  # int32, next slot to write
  size: jax.Array  # int32, filled slots
  max_priority: jax.Array  # float32


class Sample(NamedTuple):
  indices: jax.Array  # [B] int32
  items: Any  # leaves [B, ...]
  weights: jax.Array  # [B] float32 importance weights in (0, 1]
  probabilities: jax.Array  # [B] float32


def init(example_item: Any, capacity: int) -> EpisodeBufferState:
  """An empty buffer for items shaped like ``example_item`` (no batch axis)."""
  if capacity <= 0:
    raise ValueError(f'capacity must be positive, got {capacity}.')
  items = jax.tree.map(
      lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype),
      example_item)
  return EpisodeBufferState(items, jnp.zeros((capacity,), jnp.float32),
                            jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                            jnp.ones((), jnp.float32))


def capacity_of(state: EpisodeBufferState) -> int:
  return state.priorities.shape[0]


def add(state: EpisodeBufferState, items: Any) -> EpisodeBufferState:
  """Writes ``items`` (leaves ``[M, ...]``, ``M <= capacity``) at the oldest
  slots, with priority ``max_priority``."""
  capacity = capacity_of(state)
  m = jax.tree.leaves(items)[0].shape[0]
  if m > capacity:
    raise ValueError(f'Cannot add {m} items to a buffer of {capacity}.')
  slots = (state.position + jnp.arange(m)) % capacity
  new_items = jax.tree.map(lambda buf, x: buf.at[slots].set(x), state.items,
                           items)
  priorities = state.priorities.at[slots].set(state.max_priority)
  return EpisodeBufferState(new_items, priorities,
                            (state.position + m) % capacity,
                            jnp.minimum(state.size + m, capacity),
                            state.max_priority)


def sample(state: EpisodeBufferState, key: jax.Array, batch_size: int,
           alpha: float = 0.0, beta: float | jax.Array = 0.0) -> Sample:
  """Draws ``batch_size`` items with replacement (``alpha`` 0: uniformly).

  Only filled slots are drawn; the caller checks ``size > 0``.
  """
  capacity = capacity_of(state)
  filled = jnp.arange(capacity) < state.size
  p = jnp.where(filled, jnp.maximum(state.priorities, 1e-12) ** alpha, 0.)
  probs = p / jnp.maximum(jnp.sum(p), 1e-12)
  indices = jax.random.choice(key, capacity, (batch_size,), p=probs)
  prob = probs[indices]
  w = (jnp.maximum(state.size, 1).astype(jnp.float32) *
       jnp.maximum(prob, 1e-12)) ** (-beta)
  w = w / jnp.max(w)
  items = jax.tree.map(lambda x: x[indices], state.items)
  return Sample(indices.astype(jnp.int32), items, w.astype(jnp.float32), prob)


def set_priorities(state: EpisodeBufferState, indices: jax.Array,
                   priorities: jax.Array) -> EpisodeBufferState:
  """Sets the priorities of ``indices`` (a repeated index keeps its last)."""
  priorities = priorities.astype(jnp.float32)
  return state._replace(
      priorities=state.priorities.at[indices].set(priorities),
      max_priority=jnp.maximum(state.max_priority, jnp.max(priorities)))
