"""Elo ratings against hand-worked cases."""

import numpy as np
import pytest

from marl_jax.evaluation import elo


def test_two_players_three_wins_in_four():
  # Expected score 0.75 <=> a rating gap of 400 log10(3).
  matches = [(0, 1, 1.), (0, 1, 1.), (0, 1, 1.), (0, 1, 0.)]
  r = elo.elo_ratings(2, matches)
  assert r[0] - r[1] == pytest.approx(400 * np.log10(3), abs=1e-6)
  assert r.mean() == pytest.approx(1500.)


def test_transitive_chain_is_ordered_and_draws_are_equal():
  matches = []
  for a, b, score in [(0, 1, 0.8), (1, 2, 0.8), (0, 2, 0.9)]:
    matches += [(a, b, 1.)] * int(score * 10) + [(a, b, 0.)] * int(
        round((1 - score) * 10))
  r = elo.elo_ratings(3, matches)
  assert r[0] > r[1] > r[2]
  d = elo.elo_ratings(2, [(0, 1, 0.5)] * 5)
  assert d[0] == pytest.approx(d[1])


def test_order_of_matches_does_not_matter():
  rng = np.random.default_rng(0)
  matches = [(int(a), int(b), float(rng.integers(0, 2)))
             for a, b in rng.integers(0, 4, size=(40, 2)) if a != b]
  r1 = elo.elo_ratings(4, matches, prior=1.)
  r2 = elo.elo_ratings(4, matches[::-1], prior=1.)
  np.testing.assert_allclose(r1, r2, atol=1e-6)


def test_prior_keeps_undefeated_finite_and_errors():
  r = elo.elo_ratings(2, [(0, 1, 1.)] * 3, prior=1.)
  assert np.isfinite(r).all() and r[0] > r[1]
  with pytest.raises(ValueError, match='range'):
    elo.elo_ratings(2, [(0, 2, 1.)])
  with pytest.raises(ValueError, match='scores'):
    elo.elo_ratings(2, [(0, 1, 2.)])
