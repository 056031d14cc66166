"""Meta-solvers over a payoff table, for PSRO-style population training.

  * ``nash_zero_sum``: a Nash equilibrium of a two-player zero-sum matrix
    game by linear programming (the maximin LP of each player).
  * ``replicator_dynamics``: the symmetric replicator dynamics on a (general
    sum) symmetric game, from the uniform mixture.
  * ``alpha_rank``: the α-Rank stationary distribution over pure strategy
    profiles (Omidshafiei et al., 2019), single-population (symmetric game)
    or multi-population (e.g. the two players of a matrix game), and the
    mixture per population that PSRO uses as its meta-strategy.
  * ``fictitious_play``: Brown's fictitious play on a two-player matrix game
    (zero-sum or general sum), the average strategies after a number of
    simultaneous best responses.
  * ``exploitability``: how much a best response gains against a profile.

Payoffs are for the row player: ``payoff[i, j]`` is what row strategy ``i``
earns against column strategy ``j`` (zero-sum: the column player earns
``-payoff``).
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np
from scipy import optimize
from scipy import special


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


class AlphaRankSolution(NamedTuple):
  # [n] the stationary distribution over pure profiles: single population,
  # over the K strategies (monomorphic states); N populations, over the
  # K_1 * ... * K_N profiles in row-major (``np.ravel_multi_index``) order.
  pi: np.ndarray
  # One [K_p] mixture per population: pi summed over the other populations'
  # strategies (single population: ``(pi,)``).
  marginals: Tuple[np.ndarray, ...]
  # [n, n] fixation probability of the mutant profile (column) in the
  # resident profile (row); 0 between profiles more than one mutation apart.
  fixation: np.ndarray
  # [n, n] the Markov chain C over profiles (rows sum to 1).
  transition: np.ndarray


def _check_positive_int(value, name: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}.')
  if value < minimum:
    raise ValueError(f'{name} must be >= {minimum}, got {value}.')
  return int(value)


def _payoff_tables(payoff_tables) -> Tuple[np.ndarray, ...]:
  """One ``[K, K]`` table, or N tables of one shape ``[K_1, ..., K_N]``."""
  try:
    tables = np.asarray(payoff_tables, np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError('payoff_tables must be one [K, K] table or N tables of '
                     f'one shape [K_1, ..., K_N]: {e}') from None
  if tables.ndim == 3 and tables.shape[0] == 1:
    tables = tables[0]  # a list holding one (symmetric) table
  if tables.ndim == 2:
    if tables.shape[0] != tables.shape[1] or 0 in tables.shape:
      raise ValueError('a single payoff table (one population, symmetric game) '
                       f'must be square [K, K], got shape {tables.shape}.')
    tables = tables[None]
  elif tables.ndim < 3 or tables.shape[0] != tables.ndim - 1:
    raise ValueError('payoff_tables must be one [K, K] table or N tables of '
                     'shape [K_1, ..., K_N] (one per population), got shape '
                     f'{tables.shape}.')
  elif 0 in tables.shape:
    raise ValueError(f'payoff_tables has an empty axis: shape {tables.shape}.')
  if not np.isfinite(tables).all():
    raise ValueError('payoff_tables has non-finite entries.')
  return tuple(tables)


def _log_fixation(partial_sums: np.ndarray, alpha: float,
                  use_inf_alpha: bool, inf_alpha_eps: float) -> np.ndarray:
  """log rho from the cumulative fitness advantages of the mutant.

  ``partial_sums[..., l] = sum_{k <= l} (f_mutant(k) - f_resident(k))`` for
  ``l = 0 .. m-1`` (``l = 0``: the empty sum), k the number of mutants. The
  fixation probability of one mutant under the Fermi selection function,
  where the mutant's share goes from k to k+1 with odds
  ``exp(alpha (f_mutant(k) - f_resident(k)))`` against going to k-1, is

    rho = 1 / sum_{l=0}^{m-1} exp(-alpha * partial_sums[l]),

  computed as ``-logsumexp`` so that large alpha neither overflows nor
  underflows (every neighbouring transition stays > 0 in log space). With
  equal payoffs every partial sum is 0 and rho is the neutral 1/m.

  ``use_inf_alpha``: the alpha -> infinity limit, 1 for a mutant whose
  partial sums for l >= 1 are all > 0 (strictly fitter), 0 if one is < 0,
  1/(number of zero partial sums, l = 0 included) otherwise (1/m for a
  neutral mutant); a limit of 1 or 0 is perturbed to 1 - eps or eps so the
  chain stays irreducible. |sums| <= 1e-12 max(1, max |sums|) count as 0.
  """
  if not use_inf_alpha:
    return -special.logsumexp(-alpha * partial_sums, axis=-1)
  scale = max(1., float(np.max(np.abs(partial_sums))))
  zero = np.abs(partial_sums) <= 1e-12 * scale
  negative = (partial_sums < 0) & ~zero
  limit = np.where(negative.any(-1), 0., 1. / zero.sum(-1))
  limit = np.where(limit == 1., 1. - inf_alpha_eps,
                   np.where(limit == 0., inf_alpha_eps, limit))
  return np.log(limit)


def _stationary_distribution(log_c: np.ndarray) -> np.ndarray:
  """The stationary distribution of an irreducible chain, by GTH in log space.

  Grassmann-Taksar-Heyman state reduction (Grassmann, Taksar & Heyman, 1985,
  Operations Research 33(5)): eliminate states n-1, ..., 1 in turn, folding
  each one's transitions into the others', then back-substitute. It uses
  only off-diagonal entries and adds non-negative numbers (no 1 - sum, no
  cancellation), so small probabilities keep their relative accuracy; done
  on log-probabilities it also holds for ones that underflow float64, e.g.
  exp(-alpha m delta) at large alpha. O(n^3) for n profiles.

  Args:
    log_c: ``[n, n]`` log transition probabilities (the diagonal is unused).
  """
  n = log_c.shape[0]
  lp = log_c.copy()
  np.fill_diagonal(lp, -np.inf)
  with np.errstate(divide='ignore', invalid='ignore'):
    for k in range(n - 1, 0, -1):
      out = special.logsumexp(lp[k, :k])
      if not np.isfinite(out):
        raise RuntimeError('alpha-rank Markov chain is reducible: state '
                           f'{k} cannot reach states 0..{k - 1}.')
      lp[:k, k] -= out
      lp[:k, :k] = np.logaddexp(lp[:k, :k], lp[:k, k, None] + lp[None, k, :k])
    log_pi = np.full(n, -np.inf)
    log_pi[0] = 0.
    for j in range(1, n):
      log_pi[j] = special.logsumexp(log_pi[:j] + lp[:j, j])
  return np.exp(log_pi - special.logsumexp(log_pi))


def alpha_rank(payoff_tables, alpha: float = 100., m: int = 50,
               use_inf_alpha: bool = False, inf_alpha_eps: float = 0.01,
               local_selection: bool = True) -> AlphaRankSolution:
  """α-Rank (Omidshafiei et al., 2019, "α-Rank: Multi-agent evaluation by
  evolution", Scientific Reports 9:9937, Methods: the Markov chain over
  strategy profiles in the small-mutation-rate limit).

  Each population has m individuals and is monomorphic (all play one pure
  strategy) between mutations, so the state is a pure profile. A mutant
  strategy tau appears in one population whose residents play sigma and
  either fixates (the profile moves) or dies out, with the fixation
  probability of a Moran process under the Fermi selection function of
  intensity alpha:

    multi-population (population p; the others' strategies s^{-p} fixed, so
    the fitness difference is constant, delta = M^p(tau, s^{-p}) -
    M^p(sigma, s^{-p})):
      rho = (1 - exp(-alpha delta)) / (1 - exp(-m alpha delta)),  1/m at 0;
    single population (symmetric game M), local selection (the paper's
    single-population α-Rank; the default): a mutant and a resident are
    compared on their payoffs against each other, delta = M[tau, sigma] -
    M[sigma, tau], in the same rho;
    single population, ``local_selection=False`` (the Moran process of a
    well-mixed population, Traulsen, Nowak & Pacheco, 2006; k of the m
    individuals mutants, fitness the mean payoff against the m-1 others):
      f_tau(k)   = ((k-1) M[tau, tau] + (m-k) M[tau, sigma]) / (m-1),
      f_sigma(k) = (k M[sigma, tau] + (m-k-1) M[sigma, sigma]) / (m-1),
      rho = 1 / (1 + sum_{l=1}^{m-1} prod_{k=1}^{l}
                     exp(-alpha (f_tau(k) - f_sigma(k))))
    (with a constant difference the two formulas for rho agree).

  The chain moves from profile s to s' (differing in one population) with
  C[s, s'] = eta rho, eta = 1 / sum_p (K_p - 1) (the mutant is uniform over
  all single-population deviations), and stays with the rest. α-Rank is its
  unique stationary distribution pi; the paper's ranking regime is large
  alpha (where it approaches the Markov-Conley chains of the game).

  Args:
    payoff_tables: one ``[K, K]`` table, ``M[i, j]`` the payoff of strategy
      i against j (single population, symmetric game); or N tables of shape
      ``[K_1, ..., K_N]``, ``payoff_tables[p][s]`` population p's payoff at
      the profile s (two players of a matrix game: the row player's ``A``
      and the column player's ``B``, ``-A`` if zero-sum).
    alpha: selection intensity (> 0). Payoff differences are multiplied by
      it, so its scale is relative to the payoffs'.
    m: population size (>= 2).
    use_inf_alpha: use the alpha -> infinity limit of rho (1 for a strictly
      fitter mutant, 0 for a less fit one, 1/m for a neutral one), with the
      limits 1 and 0 perturbed to 1 - inf_alpha_eps and inf_alpha_eps so
      the stationary distribution is unique; ``alpha`` is then unused.
    inf_alpha_eps: that perturbation, in (0, 1).
    local_selection: single population only: compare a mutant with a
      resident on their payoffs against each other (True) or on their mean
      payoffs in the mixed population (False); see above.

  Returns:
    ``AlphaRankSolution``: pi over profiles, its marginal mixture per
    population, the fixation probabilities and the transition matrix.
  """
  tables = _payoff_tables(payoff_tables)
  m = _check_positive_int(m, 'm (population size)', 2)
  alpha, eps = float(alpha), float(inf_alpha_eps)
  if not (np.isfinite(alpha) and alpha > 0):
    raise ValueError(f'alpha (selection intensity) must be a finite number '
                     f'> 0, got {alpha}.')
  if not 0. < eps < 1.:
    raise ValueError(f'inf_alpha_eps must be in (0, 1), got {eps}.')
  fix = lambda sums: _log_fixation(sums, alpha, use_inf_alpha, eps)

  if len(tables) == 1:  # single population
    payoff = tables[0]
    k_strats = payoff.shape[0]
    n = k_strats
    if n == 1:
      return AlphaRankSolution(np.ones(1), (np.ones(1),), np.zeros((1, 1)),
                               np.ones((1, 1)))
    if local_selection:
      # [sigma, tau]: f_tau - f_sigma = M[tau, sigma] - M[sigma, tau] for
      # every k.
      diff = np.repeat((payoff.T - payoff)[..., None], m - 1, -1)
    else:
      # Differences first, so that equal payoffs give exact zeros (neutral
      # fixation): [sigma, tau] M[tau,tau] - M[sigma,tau], M[tau,sigma] -
      # M[sigma,sigma] and M[tau,sigma] - M[sigma,tau].
      diag = np.diag(payoff)
      a = diag[None, :] - payoff
      b = payoff.T - diag[:, None]
      c = payoff.T - payoff
      k = np.arange(1, m)
      # f_tau(k) - f_sigma(k) = ((k-1) a + (m-k-1) b + c) / (m-1).
      diff = ((k - 1) * a[..., None] + (m - k - 1) * b[..., None] +
              c[..., None]) / (m - 1)
    sums = np.concatenate([np.zeros((n, n, 1)), np.cumsum(diff, -1)], -1)
    log_rho = fix(sums)
    neighbours = ~np.eye(n, dtype=bool)
    log_rho = np.where(neighbours, log_rho, -np.inf)
    eta = 1. / (k_strats - 1)
  else:  # one population per player
    shape = tables[0].shape
    n = int(np.prod(shape))
    if n == 1:
      return AlphaRankSolution(np.ones(1), tuple(np.ones(1) for _ in shape),
                               np.zeros((1, 1)), np.ones((1, 1)))
    profiles = np.stack(np.unravel_index(np.arange(n), shape), -1)  # [n, N]
    strides = np.array([int(np.prod(shape[p + 1:])) for p in range(len(shape))])
    log_rho = np.full((n, n), -np.inf)
    l = np.arange(m)
    for p, table in enumerate(tables):
      flat = table.reshape(-1)
      tau = np.arange(shape[p])
      # [n, K_p]: the profile with population p's strategy replaced by tau.
      dest = (np.arange(n)[:, None] +
              (tau[None] - profiles[:, p, None]) * strides[p])
      delta = flat[dest] - flat[:, None]
      rho_p = fix(l * delta[..., None])
      rows = np.repeat(np.arange(n), shape[p])
      keep = (dest != np.arange(n)[:, None]).reshape(-1)
      log_rho[rows[keep], dest.reshape(-1)[keep]] = rho_p.reshape(-1)[keep]
    eta = 1. / sum(k_p - 1 for k_p in shape)

  log_c = np.log(eta) + log_rho
  pi = _stationary_distribution(log_c)
  fixation = np.exp(log_rho)
  transition = np.exp(log_c)
  np.fill_diagonal(transition, 0.)
  np.fill_diagonal(transition, 1. - transition.sum(1))
  # The check: pi is stationary for the chain as float64 sees it.
  residual = float(np.max(np.abs(pi @ transition - pi)))
  if not (np.isfinite(pi).all() and residual < 1e-9):
    raise RuntimeError(f'alpha-rank stationary distribution failed the check '
                       f'pi C = pi (max residual {residual:.3g}).')
  if len(tables) == 1:
    marginals = (pi,)
  else:
    joint = pi.reshape(shape)
    axes = range(len(shape))
    marginals = tuple(joint.sum(tuple(q for q in axes if q != p))
                      for p in axes)
  return AlphaRankSolution(pi, marginals, fixation, transition)


class FictitiousPlaySolution(NamedTuple):
  row: np.ndarray  # [K_row] the row player's average strategy
  col: np.ndarray  # [K_col] the column player's average strategy


def _check_mixture(mixture, size: int, name: str) -> np.ndarray:
  mixture = np.asarray(mixture, np.float64)
  if (mixture.shape != (size,) or not np.isfinite(mixture).all() or
      (mixture < 0).any() or abs(mixture.sum() - 1.) > 1e-9):
    raise ValueError(f'{name} must be a probability vector of length {size}, '
                     f'got {mixture!r}.')
  return mixture


def _best_response(values: np.ndarray, tol: float) -> np.ndarray:
  """Uniform over the maximisers of ``values`` (ties within ``tol``)."""
  best = values >= values.max() - tol
  return best / np.count_nonzero(best)


def fictitious_play(payoff, col_payoff=None, iterations: int = 1000,
                    initial=None) -> FictitiousPlaySolution:
  """Fictitious play (Brown, 1951, "Iterative solution of games by
  fictitious play"; Robinson, 1951, proved convergence in zero-sum games).

  Both players start from the uniform mixture (or ``initial``) and then,
  simultaneously for ``iterations`` steps, play a best response to the
  other's empirical average so far and fold it into their own average:

    x_{t+1} = x_t + (BR_row(y_t) - x_t) / (t + 1),  BR_row(y) = argmax A y,
    y_{t+1} = y_t + (BR_col(x_t) - y_t) / (t + 1),  BR_col(x) = argmax x B.

  (Ties are split uniformly among the best responses.) In zero-sum games the
  averages approach a Nash equilibrium (exploitability falls roughly as
  t^{-1/2}); in general-sum games they need not converge.

  Args:
    payoff: ``[K_row, K_col]`` the row player's payoffs ``A``.
    col_payoff: the column player's payoffs ``B`` (same shape); ``None``
      for a zero-sum game, ``B = -A``.
    iterations: the number of best-response steps (>= 1).
    initial: ``(x_0, y_0)``, the mixtures the averages start from (counted
      as one play each); ``None``: uniform.

  Returns:
    The row and column players' average strategies.
  """
  payoff = _check_matrix(payoff)
  if col_payoff is None:
    col_payoff = -payoff
  else:
    col_payoff = np.asarray(col_payoff, np.float64)
    if col_payoff.shape != payoff.shape:
      raise ValueError(f'col_payoff must have the shape of payoff '
                       f'{payoff.shape}, got {col_payoff.shape}.')
    if not np.isfinite(col_payoff).all():
      raise ValueError('col_payoff has non-finite entries.')
  iterations = _check_positive_int(iterations, 'iterations', 1)
  if initial is None:
    x = np.full(payoff.shape[0], 1. / payoff.shape[0])
    y = np.full(payoff.shape[1], 1. / payoff.shape[1])
  else:
    if len(initial) != 2:
      raise ValueError('initial must be a pair (row mixture, column mixture).')
    x = _check_mixture(initial[0], payoff.shape[0], 'initial row mixture')
    y = _check_mixture(initial[1], payoff.shape[1], 'initial column mixture')
  # Ties: payoffs equal up to rounding of the averages' weighted sums.
  tol_x = 1e-12 * (1. + np.abs(payoff).max())
  tol_y = 1e-12 * (1. + np.abs(col_payoff).max())
  for t in range(1, iterations + 1):
    br_x = _best_response(payoff @ y, tol_x)
    br_y = _best_response(x @ col_payoff, tol_y)
    x = x + (br_x - x) / (t + 1)
    y = y + (br_y - y) / (t + 1)
  return FictitiousPlaySolution(x, y)
