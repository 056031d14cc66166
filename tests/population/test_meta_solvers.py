"""α-Rank and fictitious play against OpenSpiel and hand-worked answers.

OpenSpiel's ``open_spiel.python.egt.alpharank.compute`` is the reference for
α-Rank: it builds the same Markov chain independently and takes its
stationary distribution from an eigendecomposition. Its eigensolver loses
accuracy (or finds several stationary distributions) when fixation
probabilities underflow, at large alpha * m * payoff gaps; the comparisons
use alphas and population sizes where it is accurate, and one test checks our
solver beyond that against an 80-digit computation.
"""

import numpy as np
import pytest

from marl_jax.population import meta_solvers, psro

alpharank = pytest.importorskip('open_spiel.python.egt.alpharank')

RPS = np.array([[0., -1., 1.], [1., 0., -1.], [-1., 1., 0.]])
PENNIES = np.array([[1., -1.], [-1., 1.]])
ALPHAS = (0.1, 1., 10.)


def openspiel_pi(tables, **kwargs):
  with np.errstate(over='ignore'):  # its 1 - exp(-u) overflows harmlessly
    return alpharank.compute(list(tables), **kwargs)[2]


@pytest.mark.parametrize('local', [True, False])
@pytest.mark.parametrize('size', [2, 3, 5, 8])
def test_alpha_rank_single_population_matches_openspiel(size, local):
  """Random symmetric games [K, K]: pi and the fixation probabilities, for
  the local-selection model (OpenSpiel's default) and the Moran model of a
  well-mixed population (``use_local_selection_model=False``)."""
  rng = np.random.default_rng(size)
  for alpha in ALPHAS:
    for m in (2, 10, 30):
      payoff = rng.uniform(-1., 1., (size, size))
      ours = meta_solvers.alpha_rank(payoff, alpha=alpha, m=m,
                                     local_selection=local)
      with np.errstate(over='ignore'):
        # (rhos, rho_m, pi, num_profiles, num_strats_per_population)
        rhos, rho_m, pi = alpharank.compute(
            [payoff], m=m, alpha=alpha, use_local_selection_model=local)[:3]
      np.testing.assert_allclose(ours.pi, pi, rtol=0, atol=1e-9,
                                 err_msg=f'alpha={alpha} m={m}')
      np.testing.assert_allclose(ours.fixation, rhos, rtol=1e-9, atol=1e-12)
      assert rho_m == pytest.approx(1. / m)
      assert ours.marginals[0] is ours.pi
      np.testing.assert_allclose(ours.transition.sum(1), 1., atol=1e-12)


@pytest.mark.parametrize('shape', [(2, 2), (3, 4), (5, 5)])
def test_alpha_rank_two_populations_matches_openspiel(shape):
  """Random two-player games, zero-sum ([A, -A]) and general-sum ([A, B]):
  pi over the K1 * K2 profiles (row-major) and the marginals."""
  rng = np.random.default_rng(sum(shape))
  for alpha in ALPHAS:
    for m in (2, 10, 30):
      a = rng.uniform(-1., 1., shape)
      b = rng.uniform(-1., 1., shape)
      for tables in ([a, -a], [a, b]):
        ours = meta_solvers.alpha_rank(tables, alpha=alpha, m=m)
        pi = openspiel_pi(tables, m=m, alpha=alpha)
        np.testing.assert_allclose(ours.pi, pi, rtol=0, atol=1e-9,
                                   err_msg=f'alpha={alpha} m={m}')
        joint = pi.reshape(shape)
        np.testing.assert_allclose(ours.marginals[0], joint.sum(1), atol=1e-9)
        np.testing.assert_allclose(ours.marginals[1], joint.sum(0), atol=1e-9)


def test_alpha_rank_infinite_alpha_matches_openspiel():
  """``use_inf_alpha``: strictly fitter mutants fixate with 1 - eps, less
  fit ones with eps, neutral ones with 1/m; single and two populations, and
  a game with tied payoffs."""
  rng = np.random.default_rng(7)
  tied = np.array([[0., 0., 1.], [0., 0., 1.], [-1., -1., 0.]])
  games = [[rng.uniform(-1., 1., (k, k))] for k in (2, 4, 7)]
  games += [[a, -a] for a in (rng.uniform(-1., 1., (3, 4)), tied)]
  games += [[rng.uniform(-1., 1., (4, 3)), rng.uniform(-1., 1., (4, 3))],
            [tied]]
  for tables in games:
    for eps in (0.01, 0.1):
      for m in (2, 50):
        ours = meta_solvers.alpha_rank(tables, m=m, use_inf_alpha=True,
                                       inf_alpha_eps=eps)
        pi = openspiel_pi(tables, m=m, use_inf_alpha=True, inf_alpha_eps=eps)
        np.testing.assert_allclose(ours.pi, pi, rtol=0, atol=1e-12)


def test_alpha_rank_stays_accurate_where_an_eigensolver_fails():
  """Large alpha * m: fixation probabilities down to ~exp(-alpha m delta)
  underflow float64 and OpenSpiel finds several stationary distributions;
  the log-space state reduction still matches an 80-digit linear solve of
  pi C = pi for the same chain (every rho recomputed in mpmath)."""
  mpmath = pytest.importorskip('mpmath')
  a, b = np.random.default_rng(2).uniform(-1., 1., (2, 3, 3))
  alpha, m = 10., 50
  with pytest.raises(ValueError, match='stationary distribution'):
    openspiel_pi([a, b], m=m, alpha=alpha)
  ours = meta_solvers.alpha_rank([a, b], alpha=alpha, m=m)

  with mpmath.workdps(80):
    n, eta = 9, mpmath.mpf(1) / 4
    c = mpmath.zeros(n, n)
    for s in range(n):
      i, j = divmod(s, 3)
      for p, table in enumerate((a, b)):
        for t in range(3):
          dest = (t, j) if p == 0 else (i, t)
          if dest == (i, j):
            continue
          delta = mpmath.mpf(table[dest]) - mpmath.mpf(table[i, j])
          rho = (-mpmath.expm1(-alpha * delta)) / (
              -mpmath.expm1(-m * alpha * delta))
          c[s, dest[0] * 3 + dest[1]] = eta * rho
    # pi (C - I) = 0 with the last equation replaced by sum(pi) = 1.
    system = mpmath.zeros(n, n)
    for u in range(n):
      for v in range(n):
        system[u, v] = c[v, u]
      system[u, u] -= sum(c[u, v] for v in range(n))
    for v in range(n):
      system[n - 1, v] = 1
    rhs = mpmath.zeros(n, 1)
    rhs[n - 1] = 1
    exact = np.array([float(x) for x in mpmath.lu_solve(system, rhs)])
  np.testing.assert_allclose(ours.pi, exact, rtol=1e-9, atol=1e-300)
  assert exact.min() < 1e-30  # the regime where float64 eigensolvers fail


def test_alpha_rank_rock_paper_scissors_is_uniform():
  for tables in ([RPS], [RPS, -RPS]):
    for alpha in (0.5, 100.):
      sol = meta_solvers.alpha_rank(tables, alpha=alpha)
      for marginal in sol.marginals:
        np.testing.assert_allclose(marginal, [1 / 3] * 3, atol=1e-12)


def test_alpha_rank_by_hand_two_strategies():
  """K = 2, single population, local selection: delta = M[1,0] - M[0,1] = 1
  (M = [[0, 0], [1, 0]]), m = 2, alpha = log 3: rho(0 -> 1) = (1 - 1/3) /
  (1 - 1/9) = 3/4, rho(1 -> 0) = (1 - 3) / (1 - 9) = 1/4, eta = 1; balance
  pi_0 * 3/4 = pi_1 * 1/4 gives pi = (1/4, 3/4)."""
  sol = meta_solvers.alpha_rank([[0., 0.], [1., 0.]], alpha=np.log(3.), m=2)
  np.testing.assert_allclose(sol.fixation, [[0., .75], [.25, 0.]], atol=1e-15)
  np.testing.assert_allclose(sol.pi, [.25, .75], atol=1e-15)


def test_alpha_rank_strictly_dominant_strategy_takes_all_the_mass():
  # Prisoner's dilemma: defect (1) strictly dominates cooperate (0).
  pd = np.array([[3., 0.], [5., 1.]])
  assert meta_solvers.alpha_rank(pd, alpha=100.).pi[1] > 1 - 1e-12
  assert meta_solvers.alpha_rank(pd, alpha=100.,
                                 local_selection=False).pi[1] > 1 - 1e-12
  # Row strategy 2 and column strategy 0 strictly dominant: profile (2, 0).
  rng = np.random.default_rng(0)
  a = rng.uniform(-1., 1., (3, 3))
  a[2] = a.max() + 1.
  b = rng.uniform(-1., 1., (3, 3))
  b[:, 0] = b.max() + 1.
  sol = meta_solvers.alpha_rank([a, b], alpha=100.)
  assert sol.pi.reshape(3, 3)[2, 0] > 1 - 1e-12
  assert sol.marginals[0][2] > 1 - 1e-12 and sol.marginals[1][0] > 1 - 1e-12
  # Weak selection spreads the mass: alpha -> 0 tends to uniform.
  np.testing.assert_allclose(meta_solvers.alpha_rank(pd, alpha=1e-9).pi,
                             [.5, .5], atol=1e-6)


def test_alpha_rank_ties_fixate_neutrally():
  """Equal payoffs: every mutant fixates with 1/m, pi uniform."""
  for m in (2, 7, 50):
    sol = meta_solvers.alpha_rank(np.full((3, 3), 2.5), alpha=100., m=m)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(sol.fixation[off], 1. / m, rtol=1e-12)
    np.testing.assert_allclose(sol.pi, [1 / 3] * 3, atol=1e-12)


def test_fictitious_play_rock_paper_scissors_and_matching_pennies():
  """From pure starts (rock vs rock; heads vs tails) the averages cycle
  toward the unique equilibria; exploitability falls with iterations."""
  previous = (np.inf, np.inf)
  for iterations in (10, 100, 1000, 10000):
    rps = meta_solvers.fictitious_play(RPS, iterations=iterations,
                                       initial=([1., 0., 0.], [1., 0., 0.]))
    mp = meta_solvers.fictitious_play(PENNIES, iterations=iterations,
                                      initial=([1., 0.], [0., 1.]))
    gaps = (meta_solvers.exploitability(RPS, *rps),
            meta_solvers.exploitability(PENNIES, *mp))
    assert gaps[0] < previous[0] and gaps[1] < previous[1]
    previous = gaps
  np.testing.assert_allclose(rps.row, [1 / 3] * 3, atol=0.01)
  np.testing.assert_allclose(rps.col, [1 / 3] * 3, atol=0.01)
  np.testing.assert_allclose(mp.row, [.5, .5], atol=0.01)
  np.testing.assert_allclose(mp.col, [.5, .5], atol=0.01)
  assert previous[0] < 0.02 and previous[1] < 0.02
  # From the uniform start every strategy ties, and ties are split evenly.
  np.testing.assert_allclose(meta_solvers.fictitious_play(RPS, iterations=50)
                             .row, [1 / 3] * 3, atol=1e-12)


def test_fictitious_play_random_zero_sum_exploitability_falls():
  for seed in range(3):
    payoff = np.random.default_rng(seed).uniform(-1., 1., (6, 6))
    sols = [meta_solvers.fictitious_play(payoff, iterations=iterations)
            for iterations in (10, 100, 1000, 10000)]
    gaps = [meta_solvers.exploitability(payoff, *sol) for sol in sols]
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))
    assert gaps[-1] < 0.02
    # The game's value: the averages' payoff approaches the LP's.
    sol = sols[-1]
    value = meta_solvers.nash_zero_sum(payoff).value
    assert sol.row @ payoff @ sol.col == pytest.approx(value, abs=0.02)


def test_fictitious_play_general_sum_finds_the_dominant_profile():
  # Prisoner's dilemma as a bimatrix game: (defect, defect).
  pd = np.array([[3., 0.], [5., 1.]])
  sol = meta_solvers.fictitious_play(pd, pd.T, iterations=200)
  assert sol.row[1] > 0.99 and sol.col[1] > 0.99


def test_psro_meta_strategy_with_the_new_solvers():
  assert {'alpharank', 'fictitious_play'} <= set(psro.META_SOLVERS)
  for solver in ('alpharank', 'fictitious_play'):
    meta = psro.meta_strategy(RPS, solver)
    np.testing.assert_allclose(meta.weights, [1 / 3] * 3, atol=1e-9)
    assert abs(meta.exploitability) < 1e-9
    # Rock, paper, and a copy of rock: paper beats both rocks.
    meta = psro.meta_strategy(RPS[np.ix_([0, 1, 0], [0, 1, 0])], solver)
    assert meta.weights[1] > 0.99
    fitness = RPS[np.ix_([0, 1, 0], [0, 1, 0])] @ meta.weights
    assert meta.exploitability == pytest.approx(
        fitness.max() - meta.weights @ fitness)
  with pytest.raises(ValueError, match='valid: nash, replicator, alpharank, '
                     'fictitious_play'):
    psro.meta_strategy(RPS, 'alpha_rank')


@pytest.mark.parametrize('call, message', [
    (lambda: meta_solvers.alpha_rank(np.ones((2, 3))), 'must be square'),
    (lambda: meta_solvers.alpha_rank(np.ones(3)), r'one \[K, K\] table'),
    (lambda: meta_solvers.alpha_rank(np.ones((3, 2, 2))),
     r'one \[K, K\] table'),
    (lambda: meta_solvers.alpha_rank([np.ones((2, 2)), np.ones((2, 3))]),
     'payoff_tables'),
    (lambda: meta_solvers.alpha_rank([[0., np.nan], [1., 0.]]), 'non-finite'),
    (lambda: meta_solvers.alpha_rank([RPS, RPS + np.inf]), 'non-finite'),
    (lambda: meta_solvers.alpha_rank(RPS, alpha=0.), 'alpha'),
    (lambda: meta_solvers.alpha_rank(RPS, alpha=-1.), 'alpha'),
    (lambda: meta_solvers.alpha_rank(RPS, alpha=np.inf), 'alpha'),
    (lambda: meta_solvers.alpha_rank(RPS, m=1), r'm \(population size\)'),
    (lambda: meta_solvers.alpha_rank(RPS, m=2.5), r'm \(population size\)'),
    (lambda: meta_solvers.alpha_rank(RPS, use_inf_alpha=True,
                                     inf_alpha_eps=0.), 'inf_alpha_eps'),
    (lambda: meta_solvers.fictitious_play(RPS, iterations=0), 'iterations'),
    (lambda: meta_solvers.fictitious_play(RPS, iterations=-5), 'iterations'),
    (lambda: meta_solvers.fictitious_play([[np.inf, 0.]]), 'non-finite'),
    (lambda: meta_solvers.fictitious_play(RPS, np.ones((3, 2))), 'col_payoff'),
    (lambda: meta_solvers.fictitious_play(RPS, RPS * np.nan), 'col_payoff'),
    (lambda: meta_solvers.fictitious_play(RPS, initial=([1., 0.], [1, 0, 0])),
     'initial row mixture'),
    (lambda: psro.meta_strategy(np.ones((2, 3)), 'alpharank'), 'square'),
    (lambda: psro.meta_strategy([[0., np.nan], [0., 0.]], 'fictitious_play'),
     'non-finite'),
    (lambda: psro.meta_strategy(RPS, 'bogus'), 'Unknown meta-solver'),
])
def test_bad_inputs_raise_value_errors_naming_the_problem(call, message):
  with pytest.raises(ValueError, match=message):
    call()
