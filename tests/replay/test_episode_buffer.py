"""The on-device episode replay against hand-computed probabilities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marl_jax.replay import episode_buffer


def _items(values):
  values = np.asarray(values, np.float32)
  return {'x': values, 'y': np.stack([values, -values], axis=-1)}


def test_ring_overwrites_the_oldest_and_tracks_size():
  state = episode_buffer.init({'x': jnp.zeros(()), 'y': jnp.zeros(2)}, 4)
  state = episode_buffer.add(state, _items([1, 2, 3]))
  assert int(state.size) == 3 and int(state.position) == 3
  state = episode_buffer.add(state, _items([4, 5]))
  assert int(state.size) == 4 and int(state.position) == 1
  np.testing.assert_array_equal(state.items['x'], [5, 2, 3, 4])
  np.testing.assert_array_equal(state.items['y'][:, 1], [-5, -2, -3, -4])
  with pytest.raises(ValueError, match='Cannot add'):
    episode_buffer.add(state, _items(range(5)))


def test_uniform_sampling_only_draws_filled_slots():
  state = episode_buffer.init({'x': jnp.zeros(()), 'y': jnp.zeros(2)}, 10)
  state = episode_buffer.add(state, _items([7, 8, 9]))
  sample = episode_buffer.sample(state, jax.random.PRNGKey(0), 3000)
  counts = np.bincount(np.asarray(sample.indices), minlength=10)
  assert counts[3:].sum() == 0
  np.testing.assert_allclose(counts[:3] / 3000, 1 / 3, atol=0.04)
  np.testing.assert_allclose(sample.weights, 1.)
  np.testing.assert_array_equal(sample.items['x'],
                                np.array([7, 8, 9])[sample.indices])


def test_prioritized_probabilities_and_weights():
  state = episode_buffer.init({'x': jnp.zeros(()), 'y': jnp.zeros(2)}, 8)
  state = episode_buffer.add(state, _items([0, 1, 2, 3]))
  # New items enter at the max priority (1 at first).
  np.testing.assert_array_equal(state.priorities[:4], 1.)
  prios = np.array([1., 4., 9., 16.], np.float32)
  state = episode_buffer.set_priorities(state, jnp.arange(4), prios)
  assert float(state.max_priority) == 16.
  alpha, beta = 0.5, 0.4
  sample = episode_buffer.sample(state, jax.random.PRNGKey(1), 20000, alpha,
                                 beta)
  expected = prios ** alpha / np.sum(prios ** alpha)  # 1,2,3,4 / 10
  counts = np.bincount(np.asarray(sample.indices), minlength=8)
  np.testing.assert_allclose(counts[:4] / 20000, expected, atol=0.015)
  np.testing.assert_allclose(sample.probabilities,
                             expected[sample.indices], rtol=1e-5)
  w = (4 * expected[sample.indices]) ** -beta
  np.testing.assert_allclose(sample.weights, w / w.max(), rtol=1e-5)
  # Later additions enter at the largest priority seen.
  state = episode_buffer.add(state, _items([5]))
  assert float(state.priorities[4]) == 16.


def test_vmaps_over_members():
  init = lambda _: episode_buffer.init({'x': jnp.zeros(())}, 3)
  states = jax.vmap(init)(jnp.arange(2))
  items = {'x': jnp.array([[1., 2.], [3., 4.]])}
  states = jax.vmap(episode_buffer.add)(states, items)
  np.testing.assert_array_equal(states.items['x'], [[1, 2, 0], [3, 4, 0]])
  sample = jax.vmap(lambda s, k: episode_buffer.sample(s, k, 5))(
      states, jax.random.split(jax.random.PRNGKey(0), 2))
  assert set(np.asarray(sample.items['x'][0]).tolist()) <= {1., 2.}
  assert set(np.asarray(sample.items['x'][1]).tolist()) <= {3., 4.}
