"""Elo ratings from match results (for competitive games).

Ratings are the maximum-likelihood Bradley-Terry fit in Elo units: the
expected score of ``i`` against ``j`` is ``1 / (1 + 10 ** ((R_j - R_i) / 400))``.
Unlike sequential Elo updates, the fit does not depend on the order in which
matches were played. Ratings are anchored to a mean of ``anchor``; a small
``prior`` (virtual draws against an average player) keeps the ratings of
undefeated or winless players finite.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

_SCALE = 400. / np.log(10.)


def elo_ratings(num_players: int, matches: Sequence[Tuple[int, int, float]],
                anchor: float = 1500., prior: float = 0.0,
                iterations: int = 2000) -> np.ndarray:
  """Fits ratings to ``matches`` of ``(i, j, score of i)`` (1 win, 0.5 draw).

  Args:
    num_players: number of rated players.
    matches: results; each counts once for ``i`` and once (1 - score) for j.
    anchor: the mean rating.
    prior: virtual draws of every player against a player rated ``anchor``.
    iterations: MM iterations (at most; stops when converged).

  Returns:
    ``[num_players]`` ratings.
  """
  if num_players <= 0:
    raise ValueError(f'num_players must be positive, got {num_players}.')
  m = np.asarray(matches, np.float64).reshape(-1, 3)
  i, j, s = m[:, 0].astype(int), m[:, 1].astype(int), m[:, 2]
  if ((i < 0) | (i >= num_players) | (j < 0) | (j >= num_players)).any():
    raise ValueError('match player index out of range.')
  if ((s < 0) | (s > 1)).any():
    raise ValueError('scores must be in [0, 1].')
  # Hunter's (2004) MM iteration for Bradley-Terry strengths g = exp(r):
  # g_i <- W_i / sum_games 1 / (g_i + g_opponent), draws as half wins; the
  # prior adds virtual draws against a fixed player of strength 1.
  wins = np.zeros(num_players)
  np.add.at(wins, i, s)
  np.add.at(wins, j, 1. - s)
  wins += 0.5 * prior
  if (wins <= 0).any():
    raise ValueError('A player without any win or draw has no finite rating; '
                     'pass prior > 0.')
  g = np.ones(num_players)
  for _ in range(iterations):
    denom = np.zeros(num_players)
    inv = 1. / (g[i] + g[j])
    np.add.at(denom, i, inv)
    np.add.at(denom, j, inv)
    denom += prior / (g + 1.)
    new = wins / denom
    if not prior:  # Only ratios are identified: fix the geometric mean.
      new /= np.exp(np.mean(np.log(new)))
    done = np.max(np.abs(np.log(new) - np.log(g))) < 1e-12
    g = new
    if done:
      break
  r = np.log(g)
  r -= r.mean()
  return anchor + _SCALE * r
