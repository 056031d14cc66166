"""Tests for marl_jax.replay.samplers, against plain-Python references."""

import numpy as np
import pytest

from marl_jax.replay import samplers


def _chi_square(counts, expected):
  return float(np.sum((counts - expected) ** 2 / expected))


# -- Fifo / Lifo / heaps --------------------------------------------------------


def test_fifo_returns_oldest_remaining():
  s = samplers.Fifo()
  rng = np.random.default_rng(0)
  for k in [5, 3, 9, 1]:
    s.insert(k, 1.0)
  assert s.sample(rng) == (5, 1.0)
  s.delete(5)
  assert s.sample(rng) == (3, 1.0)
  s.delete(9)  # deleting from the middle keeps the order of the rest
  s.delete(3)
  assert s.sample(rng) == (1, 1.0)
  s.update(1, 7.0)  # priorities do not reorder a FIFO
  assert len(s) == 1 and 1 in s


def test_lifo_returns_newest_remaining():
  s = samplers.Lifo()
  rng = np.random.default_rng(0)
  for k in range(4):
    s.insert(k, 1.0)
  assert s.sample(rng)[0] == 3
  s.delete(3)
  s.delete(1)
  assert s.sample(rng)[0] == 2


def test_empty_and_duplicate_errors():
  for s in [samplers.Fifo(), samplers.Uniform(), samplers.Prioritized(1.0),
            samplers.MinHeap()]:
    with pytest.raises(ValueError, match='empty'):
      s.sample(np.random.default_rng(0))
    s.insert(1, 1.0)
    with pytest.raises(KeyError):
      s.insert(1, 1.0)
    with pytest.raises(ValueError, match='non-negative'):
      s.insert(2, -1.0)


def test_min_heap_and_max_heap_against_sorting():
  rng = np.random.default_rng(1)
  lo, hi = samplers.MinHeap(), samplers.MaxHeap()
  ref = {}
  for step in range(400):
    op = rng.integers(3) if ref else 0
    if op == 0:
      key, p = step, float(rng.integers(20))
      lo.insert(key, p)
      hi.insert(key, p)
      ref[key] = p
    elif op == 1:
      key = int(rng.choice(list(ref)))
      lo.delete(key)
      hi.delete(key)
      del ref[key]
    else:
      key, p = int(rng.choice(list(ref))), float(rng.integers(20))
      lo.update(key, p)
      hi.update(key, p)
      ref[key] = p
    if ref:
      assert ref[lo.sample(rng)[0]] == min(ref.values())
      assert ref[hi.sample(rng)[0]] == max(ref.values())
    assert len(lo) == len(hi) == len(ref)


# -- Uniform ---------------------------------------------------------------------


def test_uniform_frequencies_match_one_over_n():
  s = samplers.Uniform(initial_capacity=2)  # exercises growth
  keys = list(range(100, 120))
  for k in keys:
    s.insert(k, 1.0)
  for k in [103, 111, 119]:
    s.delete(k)  # swap-removes, incl. the last slot
  live = [k for k in keys if k not in (103, 111, 119)]
  n_draws = 34_000
  drawn, probs = s.sample_batch(np.random.default_rng(0), n_draws)
  assert set(drawn.tolist()) == set(live)
  np.testing.assert_allclose(probs, 1.0 / len(live))
  counts = np.array([(drawn == k).sum() for k in live], dtype=np.float64)
  # 16 degrees of freedom: the 99.9% quantile of chi2(16) is 39.3.
  assert _chi_square(counts, n_draws / len(live)) < 39.3
  assert s.sample(np.random.default_rng(1))[1] == pytest.approx(1 / len(live))


# -- Prioritized -----------------------------------------------------------------


def _exact_probs(priorities, alpha):
  w = {k: p ** alpha for k, p in priorities.items()}
  total = sum(w.values())
  return {k: v / total for k, v in w.items()}


def test_prioritized_probabilities_are_exact_and_update_changes_them():
  alpha = 0.7
  s = samplers.Prioritized(alpha)
  pri = {10: 1.0, 11: 2.0, 12: 0.5, 13: 4.0, 14: 3.0}
  for k, p in pri.items():
    s.insert(k, p)
  rng = np.random.default_rng(0)
  exact = _exact_probs(pri, alpha)
  for k in pri:
    assert s.probability(k) == pytest.approx(exact[k], rel=1e-12)
  keys, probs = s.sample_batch(rng, 200)
  for k, p in zip(keys, probs):
    assert p == pytest.approx(exact[int(k)], rel=1e-12)

  s.update(12, 10.0)
  pri[12] = 10.0
  exact = _exact_probs(pri, alpha)
  for k in pri:
    assert s.probability(k) == pytest.approx(exact[k], rel=1e-12)
  k, p = s.sample(rng)
  assert p == pytest.approx(exact[k], rel=1e-12)


def test_prioritized_frequencies_match_p_alpha():
  alpha = 0.6
  s = samplers.Prioritized(alpha, initial_capacity=1)  # exercises growth
  pri = {k: float(k + 1) for k in range(12)}
  pri[5] = 0.0  # never sampled
  for k, p in pri.items():
    s.insert(k, p)
  exact = _exact_probs(pri, alpha)
  n_draws = 60_000
  drawn, _ = s.sample_batch(np.random.default_rng(42), n_draws)
  assert 5 not in set(drawn.tolist())
  live = [k for k in pri if pri[k] > 0]
  counts = np.array([(drawn == k).sum() for k in live], dtype=np.float64)
  expected = np.array([exact[k] for k in live]) * n_draws
  # 10 degrees of freedom: the 99.9% quantile of chi2(10) is 29.6.
  assert _chi_square(counts, expected) < 29.6
  np.testing.assert_allclose(counts / n_draws, expected / n_draws, atol=0.01)


def test_prioritized_exponent_zero_is_uniform_and_all_zero_falls_back():
  s = samplers.Prioritized(0.0)
  for k, p in enumerate([0.1, 5.0, 100.0]):
    s.insert(k, p)
  assert s.probability(2) == pytest.approx(1 / 3)
  z = samplers.Prioritized(1.0)
  for k in range(4):
    z.insert(k, 0.0)
  keys, probs = z.sample_batch(np.random.default_rng(0), 100)
  np.testing.assert_allclose(probs, 0.25)
  assert set(keys.tolist()) == {0, 1, 2, 3}


def test_sum_tree_total_matches_dict_reference_under_random_ops():
  rng = np.random.default_rng(7)
  alpha = 0.5
  s = samplers.Prioritized(alpha, initial_capacity=4)
  ref = {}
  next_key = 0
  for _ in range(3000):
    op = rng.integers(4) if ref else 0
    if op <= 1:  # insert, twice as likely, so the tree grows
      p = float(rng.exponential(2.0))
      s.insert(next_key, p)
      ref[next_key] = p
      next_key += 1
    elif op == 2:
      k = int(rng.choice(list(ref)))
      s.delete(k)
      del ref[k]
    else:
      k, p = int(rng.choice(list(ref))), float(rng.exponential(2.0))
      s.update(k, p)
      ref[k] = p
    total = sum(p ** alpha for p in ref.values())
    assert s.total == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert len(s) == len(ref)
  exact = _exact_probs(ref, alpha)
  for k in list(ref)[:50]:
    assert s.probability(k) == pytest.approx(exact[k], rel=1e-9)
  keys, _ = s.sample_batch(rng, 1000)
  assert set(keys.tolist()) <= set(ref)
