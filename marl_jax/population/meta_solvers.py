"""Meta-solvers over a payoff table, for PSRO-style population training.

  * ``nash_zero_sum``: a Nash equilibrium of a two-player zero-sum matrix
    game by linear programming (the maximin LP of each player).
  * ``replicator_dynamics``: the symmetric replicator dynamics on a (general
    sum) symmetric game, from the uniform mixture.
  * ``exploitability``: how much a best response gains against a profile.

Payoffs are for the row player: ``payoff[i, j]`` is what row strategy ``i``
earns against column strategy ``j`` (zero-sum: the column player earns
``-payoff``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize


class NashSolution(NamedTuple):
  row: np.ndarray
  col: np.ndarray
  value: float  # the row player's equilibrium payoff


def _check_matrix(payoff) -> np.ndarray:
  payoff = np.asarray(payoff, np.float64)
  if payoff.ndim != 2 or 0 in payoff.shape:
    raise ValueError(f'payoff must be a non-empty 2-D matrix, got shape '
                     f'{payoff.shape}.')
  if not np.isfinite(payoff).all():
    raise ValueError('payoff has non-finite entries.')
  return payoff


def _maximin(payoff: np.ndarray):
  """max_x min_j x^T A[:, j] over the simplex: variables (x, v)."""
  m, n = payoff.shape
  # minimise -v  s.t.  v - x^T A[:, j] <= 0  for all j;  sum x = 1; x >= 0.
  c = np.zeros(m + 1)
  c[-1] = -1.
  a_ub = np.hstack([-payoff.T, np.ones((n, 1))])
  b_ub = np.zeros(n)
  a_eq = np.hstack([np.ones((1, m)), np.zeros((1, 1))])
  bounds = [(0, None)] * m + [(None, None)]
  res = optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.],
                         bounds=bounds, method='highs')
  if not res.success:
    raise RuntimeError(f'Nash LP failed: {res.message}')
  x = np.clip(res.x[:m], 0., None)
  return x / x.sum(), float(res.x[-1])


def nash_zero_sum(payoff) -> NashSolution:
  """A Nash equilibrium of the zero-sum game with row payoffs ``payoff``."""
  payoff = _check_matrix(payoff)
  row, value = _maximin(payoff)
  col, _ = _maximin(-payoff.T)
  return NashSolution(row, col, value)


def exploitability(payoff, row, col) -> float:
  """Zero-sum: sum of both players' best-response gains over the profile.

  Zero exactly at a Nash equilibrium.
  """
  payoff = _check_matrix(payoff)
  row, col = np.asarray(row, np.float64), np.asarray(col, np.float64)
  # (best row reply - value) + (value - best column reply).
  return float(np.max(payoff @ col) - np.min(row @ payoff))


def replicator_dynamics(payoff, iterations: int = 5000, step_size: float = 0.01,
                        floor: float = 1e-12) -> np.ndarray:
  """Symmetric replicator dynamics x_i <- x_i + dt x_i ((A x)_i - x^T A x).

  Args:
    payoff: ``[n, n]`` payoff of strategy i against j (symmetric game).
    iterations: Euler steps from the uniform mixture.
    step_size: dt.
    floor: probabilities are kept above this so strategies can recover.

  Returns:
    The mixture after ``iterations`` steps.
  """
  payoff = _check_matrix(payoff)
  if payoff.shape[0] != payoff.shape[1]:
    raise ValueError('replicator_dynamics needs a square (symmetric) game, got '
                     f'{payoff.shape}.')
  if iterations <= 0 or step_size <= 0:
    raise ValueError('iterations and step_size must be positive.')
  x = np.full(payoff.shape[0], 1. / payoff.shape[0])
  for _ in range(iterations):
    fitness = payoff @ x
    x = x + step_size * x * (fitness - x @ fitness)
    x = np.maximum(x, floor)
    x /= x.sum()
  return x
