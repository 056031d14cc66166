"""Matchmaking, PBT, snapshots, meta-solvers and PSRO against known answers."""

import jax.numpy as jnp
import numpy as np
import pytest

from marl_jax.algorithms.base import LearnerState
from marl_jax.population import matchmaking, meta_solvers, pbt, psro

RPS = np.array([[0., -1., 1.], [1., 0., -1.], [-1., 1., 0.]])


def test_nash_of_rock_paper_scissors_is_uniform():
  sol = meta_solvers.nash_zero_sum(RPS)
  np.testing.assert_allclose(sol.row, [1 / 3] * 3, atol=1e-8)
  np.testing.assert_allclose(sol.col, [1 / 3] * 3, atol=1e-8)
  assert abs(sol.value) < 1e-9
  assert meta_solvers.exploitability(RPS, sol.row, sol.col) < 1e-8


def test_nash_of_biased_rps_by_hand():
  """Winning with rock pays 2: A = [[0,-1,2],[1,0,-1],[-2,1,0]].

  Indifference for the column player's mix (r, p, s): -p + 2s = r - s =
  -2r + p, with r + p + s = 1, gives (1/4, 1/2, 1/4) and value 0; the row
  player's equilibrium is (1/4, 1/2, 1/4) as well (the game is symmetric).
  """
  biased = np.array([[0., -1., 2.], [1., 0., -1.], [-2., 1., 0.]])
  sol = meta_solvers.nash_zero_sum(biased)
  np.testing.assert_allclose(sol.row, [0.25, 0.5, 0.25], atol=1e-8)
  np.testing.assert_allclose(sol.col, [0.25, 0.5, 0.25], atol=1e-8)
  assert abs(sol.value) < 1e-9


def test_exploitability_of_pure_rock():
  rock = np.array([1., 0., 0.])
  # Paper beats rock by 1 on each side: 1 + 1.
  assert meta_solvers.exploitability(RPS, rock, rock) == pytest.approx(2.)


def test_replicator_dynamics_finds_the_dominant_strategy():
  # Prisoner's dilemma (symmetric): defect (1) dominates cooperate (0).
  pd = np.array([[3., 0.], [5., 1.]])
  x = meta_solvers.replicator_dynamics(pd, iterations=3000, step_size=0.05)
  assert x[1] > 0.99
  # Coordination game with a payoff-dominant equilibrium from uniform start.
  coord = np.array([[2., 0.], [0., 1.]])
  x = meta_solvers.replicator_dynamics(coord, iterations=3000, step_size=0.05)
  assert x[0] > 0.99


def test_psro_exploitability_falls_to_zero_on_rps():
  result = psro.psro_matrix(RPS, iterations=4, initial=(0, 0))
  expl = result.exploitability
  assert expl[0] == pytest.approx(2.)  # {rock} vs {rock}
  assert expl[-1] < expl[0]
  assert expl[-1] < 1e-8
  assert sorted(result.row_strategies) == [0, 1, 2]


def test_snapshot_pool_samples_only_existing_snapshots():
  pool = psro.SnapshotPool(max_size=3)
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match='No snapshots'):
    pool.sample(rng)
  for step in range(5):
    pool.add(member=step % 2, step=step, params={'w': np.full(2, step)})
  assert pool.keys() == [(0, 2), (1, 3), (0, 4)]
  seen = {pool.sample(rng)[1] for _ in range(200)}
  assert seen == {2, 3, 4}


def _population(P=4):
  params = {'w': jnp.arange(P * 3, dtype=jnp.float32).reshape(P, 3)}
  opt = {'mu': jnp.arange(P, dtype=jnp.float32) * 10.}
  return LearnerState(params=params, opt_state=opt,
                      step=jnp.zeros((P,), jnp.int32),
                      hyperparams={'learning_rate': jnp.full((P,), 1e-3),
                                   'entropy_cost': jnp.full((P,), 0.01)},
                      extras={})


def test_pbt_bottom_copies_top_and_perturbs_within_bounds():
  state = _population(5)
  scores = [5., 1., 9., 3., 7.]  # bottom: member 1; top: member 2
  cfg = pbt.PBTConfig(truncation=0.2, perturb_factors=(0.8, 1.2),
                      bounds={'learning_rate': (1e-5, 1.1e-3),
                              'entropy_cost': (1e-4, 0.1)})
  new, events = pbt.exploit_and_explore(np.random.default_rng(0), state,
                                        scores, cfg)
  assert [(e.target, e.source) for e in events] == [(1, 2)]
  np.testing.assert_array_equal(new.params['w'][1], state.params['w'][2])
  assert float(new.opt_state['mu'][1]) == float(state.opt_state['mu'][2])
  for m in (0, 2, 3, 4):  # everyone else untouched
    np.testing.assert_array_equal(new.params['w'][m], state.params['w'][m])
    assert float(new.hyperparams['learning_rate'][m]) == pytest.approx(1e-3)
  lr = float(new.hyperparams['learning_rate'][1])
  ent = float(new.hyperparams['entropy_cost'][1])
  assert lr in (pytest.approx(0.8e-3), pytest.approx(1.1e-3))  # 1.2e-3 clipped
  assert ent in (pytest.approx(0.008), pytest.approx(0.012))


def test_pbt_rejects_bad_scores():
  with pytest.raises(ValueError, match='scores'):
    pbt.exploit_and_explore(np.random.default_rng(0), _population(4), [1., 2.])


def test_matchmaking():
  rng = np.random.default_rng(0)
  sp = [matchmaking.self_play(rng, e, 2, 3) for e in range(6)]
  assert [int(s[0]) for s in sp] == [0, 1, 2, 0, 1, 2]
  assert all(s[0] == s[1] for s in sp)
  pairs = np.stack([matchmaking.random_pairing(rng, e, 2, 3)
                    for e in range(3000)])
  counts = np.bincount(pairs.reshape(-1), minlength=3) / pairs.size
  np.testing.assert_allclose(counts, [1 / 3] * 3, atol=0.02)
  assert (pairs[:, 0] != pairs[:, 1]).mean() == pytest.approx(2 / 3, abs=0.03)
  with pytest.raises(ValueError, match='self_play'):
    matchmaking.get('bogus')


def test_fsp_samples_only_existing_snapshots():
  rng = np.random.default_rng(0)
  P = 2
  # No snapshots yet: plain self-play of the learning member.
  ids = matchmaking.fictitious_self_play(rng, 3, 2, P, num_snapshots=0)
  np.testing.assert_array_equal(ids, [1, 1])
  seen = set()
  for e in range(400):
    ids = matchmaking.fictitious_self_play(rng, e, 3, P, num_snapshots=2)
    learners = [i for i in ids if i < P]
    assert learners == [e % P]  # exactly one learning seat
    frozen = [i for i in ids if i >= P]
    assert all(P <= i < P + 2 for i in frozen)  # only snapshots 0 and 1 exist
    seen.update(frozen)
    seen.add(('seat', int(np.argmin(ids))))
  assert {P, P + 1} <= seen
  assert {('seat', 0), ('seat', 1), ('seat', 2)} <= seen


def test_psro_matchmaking_samples_snapshots_by_the_meta_strategy():
  rng = np.random.default_rng(0)
  weights = np.array([0.5, 0.3, 0.2, 0.])
  P, n = 1, 20_000
  partners = []
  for e in range(n):
    ids = matchmaking.psro(rng, e, 2, P, num_snapshots=4,
                           snapshot_weights=weights)
    assert (ids == 0).sum() == 1  # the learner holds exactly one seat
    partners.append(int(ids[ids != 0][0]) - P)
  freq = np.bincount(partners, minlength=4) / n
  sigma = np.sqrt(weights * (1 - weights) / n)
  assert (np.abs(freq - weights) <= 4 * sigma + 1e-12).all(), freq
  assert freq[3] == 0.  # a zero weight is never drawn
  # Unnormalised weights are a mixture too; the learner seat is uniform.
  seats = [int(np.argmin(matchmaking.psro(rng, 0, 2, P, 2, np.array([2., 2.]))))
           for _ in range(2000)]
  assert 900 < sum(seats) < 1100
  # No snapshot yet: the learner plays itself.
  np.testing.assert_array_equal(
      matchmaking.psro(rng, 3, 2, P, 0, snapshot_weights=np.zeros(0)), [0, 0])
  # Before the first snapshot no meta-strategy is needed; after it, one
  # must come from a PSRO loop (no silent fallback to uniform).
  np.testing.assert_array_equal(matchmaking.psro(rng, 1, 2, P, 0), [0, 0])
  with pytest.raises(ValueError, match='launcher=single'):
    matchmaking.psro(rng, 0, 2, P, num_snapshots=2)
  with pytest.raises(ValueError, match='2 non-negative'):
    matchmaking.psro(rng, 0, 2, P, 2, snapshot_weights=np.array([1., -1.]))


def test_meta_strategy_solvers():
  nash = psro.meta_strategy(RPS, 'nash')
  np.testing.assert_allclose(nash.weights, [1 / 3] * 3, atol=1e-8)
  assert abs(nash.exploitability) < 1e-8
  # Replicator dynamics on the prisoner's dilemma: all weight on defect, and
  # then no pure policy gains over the mixture.
  pd = np.array([[3., 0.], [5., 1.]])
  rd = psro.meta_strategy(pd, 'replicator')
  assert rd.weights[1] > 0.99 and 0 <= rd.exploitability < 0.05
  # Rock-paper-scissors from the uniform mixture is a rest point of the
  # replicator dynamics: weights stay uniform, no pure policy gains.
  rd = psro.meta_strategy(RPS, 'replicator')
  np.testing.assert_allclose(rd.weights, [1 / 3] * 3, atol=1e-9)
  assert abs(rd.exploitability) < 1e-9
  with pytest.raises(ValueError, match='meta-solver'):
    psro.meta_strategy(RPS, 'bogus')
  with pytest.raises(ValueError, match='square'):
    psro.meta_strategy(np.ones((2, 3)), 'nash')
