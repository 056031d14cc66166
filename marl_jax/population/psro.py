"""Fictitious self-play snapshots and PSRO on matrix games.

``SnapshotPool`` keeps frozen copies of members' params; fictitious self-play
samples partners only from snapshots that exist. ``meta_strategy`` is the
meta-solver step of PSRO with learned policies (``runtime/launchers/single.py``,
``matchmaking=psro``): the mixture over the policy set that partners are
drawn from, from the set's payoff matrix. ``psro_matrix`` runs PSRO
(Lanctot et al., 2017) on a two-player zero-sum matrix game where a policy is
a pure strategy and the best response is exact, which makes the algorithm's
loop (payoff table -> meta-solver -> best response -> grow the table) testable
on its own.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Tuple

import numpy as np

from marl_jax.population import meta_solvers


class SnapshotPool:
  """Frozen params of past members, for fictitious self-play."""

  def __init__(self, max_size: int = 0):
    if max_size < 0:
      raise ValueError(f'max_size must be >= 0 (0: unbounded), got {max_size}.')
    self._max_size = max_size
    self._snapshots: List[Tuple[int, int, Any]] = []  # (member, step, params)

  def add(self, member: int, step: int, params: Any) -> None:
    self._snapshots.append((int(member), int(step), params))
    if self._max_size and len(self._snapshots) > self._max_size:
      self._snapshots.pop(0)

  def __len__(self) -> int:
    return len(self._snapshots)

  def keys(self) -> List[Tuple[int, int]]:
    return [(m, s) for m, s, _ in self._snapshots]

  def sample(self, rng: np.random.Generator) -> Tuple[int, int, Any]:
    """A uniformly drawn existing snapshot ``(member, step, params)``."""
    if not self._snapshots:
      raise ValueError('No snapshots yet: fictitious self-play needs at least '
                       'one snapshot before partners can be sampled.')
    return self._snapshots[int(rng.integers(len(self._snapshots)))]


META_SOLVERS = ('nash', 'replicator', 'alpharank', 'fictitious_play')


class MetaStrategy(NamedTuple):
  weights: np.ndarray  # [K] the mixture over the policy set
  exploitability: float  # of the mixture within the restricted game


def meta_strategy(payoff, solver: str) -> MetaStrategy:
  """The meta-strategy of a symmetric game over the PSRO policy set.

  Args:
    payoff: ``[K, K]``, ``payoff[i, j]`` is what policy ``i`` earns with (or
      against) policy ``j``.
    solver: ``'nash'``, a Nash equilibrium by linear programming (two-player
      zero-sum games; the row player's strategy); ``'replicator'``,
      replicator dynamics (general-sum games); ``'alpharank'``, the
      single-population α-Rank stationary distribution
      (``meta_solvers.alpha_rank`` with its defaults alpha=100, m=50: the
      large-alpha regime, relative to the payoffs' scale); or
      ``'fictitious_play'``, the average strategy after 1000 iterations of
      fictitious play on the symmetric game (the column player's payoffs
      ``A^T``; ``-A`` when zero-sum).

  Returns:
    The weights and their exploitability in the restricted game: for
    ``nash``, ``meta_solvers.exploitability`` of the (row, column) profile;
    for ``replicator``, ``alpharank`` and ``fictitious_play``, the gain of
    the best pure policy over the mixture, ``max_i (A x)_i - x^T A x`` (0 at
    a rest point with full support; α-Rank's distribution is not an
    equilibrium in general, so it need not approach 0 there).
  """
  payoff = np.asarray(payoff, np.float64)
  if payoff.ndim != 2 or payoff.shape[0] != payoff.shape[1]:
    raise ValueError(f'payoff must be square, got shape {payoff.shape}.')
  if solver == 'nash':
    sol = meta_solvers.nash_zero_sum(payoff)
    return MetaStrategy(sol.row, meta_solvers.exploitability(
        payoff, sol.row, sol.col))
  if solver == 'replicator':
    x = meta_solvers.replicator_dynamics(payoff)
  elif solver == 'alpharank':
    x = meta_solvers.alpha_rank(payoff).pi
  elif solver == 'fictitious_play':
    x = meta_solvers.fictitious_play(payoff, payoff.T, iterations=1000).row
  else:
    raise ValueError(f'Unknown meta-solver {solver!r}; valid: '
                     f'{", ".join(META_SOLVERS)}.')
  fitness = payoff @ x
  return MetaStrategy(x, float(np.max(fitness) - x @ fitness))


class PSROResult(NamedTuple):
  row_strategies: List[int]
  col_strategies: List[int]
  exploitability: List[float]  # of the meta-strategy profile, per iteration


def psro_matrix(payoff, iterations: int, initial: Tuple[int, int] = (0, 0)
                ) -> PSROResult:
  """PSRO with the Nash meta-solver on a zero-sum matrix game.

  Each iteration solves the restricted game on the strategies found so far,
  measures the exploitability of its Nash profile in the full game, and adds
  each player's exact best response to the other's meta-strategy.
  """
  payoff = np.asarray(payoff, np.float64)
  rows, cols = [initial[0]], [initial[1]]
  history = []
  for _ in range(iterations):
    sub = payoff[np.ix_(rows, cols)]
    nash = meta_solvers.nash_zero_sum(sub)
    row = np.zeros(payoff.shape[0])
    col = np.zeros(payoff.shape[1])
    np.add.at(row, rows, nash.row)
    np.add.at(col, cols, nash.col)
    history.append(meta_solvers.exploitability(payoff, row, col))
    br_row = int(np.argmax(payoff @ col))
    br_col = int(np.argmin(row @ payoff))
    if br_row not in rows:
      rows.append(br_row)
    if br_col not in cols:
      cols.append(br_col)
  return PSROResult(rows, cols, history)
