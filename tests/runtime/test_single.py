"""The single launcher: exact resume and learning on a small cooperative game."""

import csv
import os

import jax
import numpy as np
import pytest

from configs import impala as impala_configs
from marl_jax.runtime.launchers import single
from marl_jax.utils import checkpointing


def toy_config(**overrides):
  c = impala_configs.get_config('toy')
  c.progress_every_s = 1e9
  for k, v in overrides.items():
    c[k] = v
  return c


def final_params(exp_dir):
  with checkpointing.Checkpointer(os.path.join(exp_dir, 'checkpoints'),
                                  read_only=True) as ckpt:
    state, meta = ckpt.restore()
  return state['learner']['params'], meta


def assert_resume_is_exact(config, straight, interrupted, stop_after):
  """Runs ``config`` to ``stop_after`` steps in ``interrupted``, resumes it
  to the end, and checks its final params equal the run in ``straight``."""
  first = single.run(config, interrupted, max_env_steps_this_run=stop_after)
  assert 0 < first.env_steps < config.num_steps
  single.run(config, interrupted, resume=True)
  assert_same_final_params(straight, interrupted)


def assert_same_final_params(straight, other):
  """Both runs ended at the same step with identical params."""
  a, meta_a = final_params(straight)
  b, meta_b = final_params(other)
  assert meta_a['env_steps'] == meta_b['env_steps']
  assert meta_a['learner_steps'] == meta_b['learner_steps'] > 0
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize('population_size,matchmaking,lstm', [
    (1, 'self_play', 0), (2, 'random', 8)])
def test_resume_equals_uninterrupted_run(tmp_path, population_size,
                                         matchmaking, lstm):
  config = toy_config(population_size=population_size, matchmaking=matchmaking,
                      num_steps=1600)
  config.network.lstm_size = lstm
  straight = str(tmp_path / 'straight')
  single.run(config, straight)
  assert_resume_is_exact(config, straight, str(tmp_path / 'interrupted'),
                         stop_after=700)


def test_different_seeds_differ(tmp_path):
  a = single.run(toy_config(num_steps=400, seed=0), str(tmp_path / 'a'))
  b = single.run(toy_config(num_steps=400, seed=1), str(tmp_path / 'b'))
  pa, _ = final_params(str(tmp_path / 'a'))
  pb, _ = final_params(str(tmp_path / 'b'))
  assert a.learner_steps == b.learner_steps
  assert any(not np.array_equal(x, y)
             for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)))


def _returns(exp_dir, member=0):
  with open(os.path.join(exp_dir, 'actor.csv')) as f:
    rows = list(csv.DictReader(f))
  return np.array([float(r[f'member_{member}/episode_return']) for r in rows
                   if r[f'member_{member}/episode_return'] not in ('', 'nan')])


def test_impala_learns_cue_coordination(tmp_path):
  """Random play scores horizon / A^2 = 1 per episode; IMPALA gets near 16."""
  config = toy_config(num_steps=12_000)
  result = single.run(config, str(tmp_path / 'toy'))
  returns = _returns(str(tmp_path / 'toy'))
  horizon, num_actions = 16, 4
  random_return = horizon / num_actions**2
  assert returns[:3].mean() < 3 * random_return
  assert returns[-5:].mean() > 0.8 * horizon, returns[-10:]
  assert result.member_returns[0] > 0.8 * horizon


def test_logs_have_the_debugging_signals(tmp_path):
  config = toy_config(num_steps=1000, population_size=2)
  config.log_every_updates = 1
  single.run(config, str(tmp_path / 'logs'))
  with open(tmp_path / 'logs' / 'learner.csv') as f:
    header = next(csv.reader(f))
  for member in (0, 1):
    for key in ('loss', 'pg_loss', 'baseline_loss', 'entropy', 'grad_norm',
                'importance_ratio', 'kl_behaviour_learner', 'policy_lag'):
      assert f'member_{member}/{key}' in header, header
  assert any(name.startswith('events.out.tfevents')
             for name in os.listdir(tmp_path / 'logs'))


def test_pbt_rounds_copy_and_perturb_within_bounds_and_resume_exactly(tmp_path):
  config = toy_config(population_size=4, matchmaking='random', num_steps=2400)
  config.pbt_every_updates = 6
  config.pbt_learning_rate_bounds = (1e-3, 1.1e-2)
  straight = str(tmp_path / 'pbt')
  single.run(config, straight)
  with open(os.path.join(straight, 'pbt.csv')) as f:
    rows = list(csv.DictReader(f))
  assert rows, 'no PBT round ran'
  copied = [float(r[f'member_{m}/copied_from']) for r in rows for m in range(4)]
  assert any(c >= 0 for c in copied)
  # truncation 0.25 of 4 members: exactly one member is replaced per round.
  for r in rows:
    assert sum(float(r[f'member_{m}/copied_from']) >= 0 for m in range(4)) == 1
    for m in range(4):
      assert 1e-3 - 1e-9 <= float(r[f'member_{m}/learning_rate']) <= 1.1e-2 + 1e-9
  # Exact resume holds with PBT too (its RNG and score window are saved).
  interrupted = str(tmp_path / 'pbt_resumed')
  assert_resume_is_exact(config, straight, interrupted, stop_after=1000)


def test_fsp_trains_against_snapshots_and_resumes_exactly(tmp_path):
  config = toy_config(matchmaking='fsp', num_steps=2400)
  config.fsp_pool_size = 3
  config.fsp_snapshot_every_updates = 4
  straight = str(tmp_path / 'fsp')
  result = single.run(config, straight)
  assert result.learner_steps >= 12  # several snapshots were taken
  with checkpointing.Checkpointer(os.path.join(straight, 'checkpoints'),
                                  read_only=True) as ckpt:
    state, _ = ckpt.restore()
  import pickle  # pylint: disable=g-import-not-at-top
  runtime = pickle.loads(state['runtime'])
  assert runtime['pool']['count'] == result.learner_steps // 4
  assert all(loop['num_snapshots'] == 3 for loop in runtime['loops'])
  # Snapshots are the member's params at different times: not all equal.
  w = jax.tree.leaves(runtime['pool']['params'])[0]
  assert not np.array_equal(w[0], w[1])
  interrupted = str(tmp_path / 'fsp_resumed')
  assert_resume_is_exact(config, straight, interrupted, stop_after=1000)


def test_psro_fills_the_payoff_table_and_resumes_exactly(tmp_path):
  config = toy_config(matchmaking='psro', num_steps=1600)
  config.fsp_pool_size = 3
  config.psro_iteration_updates = 2
  config.psro_eval_episodes = 2
  straight = str(tmp_path / 'psro')
  result = single.run(config, straight)
  iterations = 1 + result.learner_steps // 2  # the start, then every 2
  with open(os.path.join(straight, 'psro.csv')) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == iterations >= 6  # the ring of 3 is refilled
  for i, r in enumerate(rows):
    assert int(float(r['iteration'])) == i
    size = int(float(r['pool_size']))
    assert size == min(i + 1, 3)
    weights = [float(r[f'meta_strategy/slot_{k}']) for k in range(size)]
    assert abs(sum(weights) - 1) < 1e-9 and min(weights) >= 0
    assert np.isfinite(float(r['exploitability']))
    if i:
      assert np.isfinite(float(r['best_response_gain']))
  from marl_jax.population import payoff  # pylint: disable=g-import-not-at-top
  table = payoff.PayoffTable.load(straight)
  assert table.names == [f'snapshot_{k}' for k in range(iterations)]
  mean, count = table.matrix()
  # Every policy played each of the (at most 3) policies in the set when it
  # joined, the oldest of which it then replaced: 2 episodes each way, and
  # 4 seat values against itself.
  for i in range(iterations):
    for j in range(iterations):
      if i == j:
        assert count[i, j] == 4
      elif abs(i - j) <= 3:
        assert count[i, j] == 2, (i, j)
      else:
        assert count[i, j] == 0  # evicted from the ring before they met
  assert np.isfinite(mean[count > 0]).all()
  assert ((0 <= mean[count > 0]) & (mean[count > 0] <= 16)).all()
  assert_resume_is_exact(config, straight, str(tmp_path / 'psro_resumed'),
                         stop_after=700)
  assert payoff.PayoffTable.load(str(tmp_path / 'psro_resumed')) == table


def test_psro_partners_are_drawn_by_the_meta_strategy(tmp_path, monkeypatch):
  """The learner's partners follow the meta-strategy the PSRO loop computes:
  with a meta-solver that puts all weight on the ring's first slot, the
  learner meets only that snapshot, though the ring holds three (uniform
  fictitious play would draw all three)."""
  from marl_jax.population import matchmaking  # pylint: disable=g-import-not-at-top
  from marl_jax.population import psro  # pylint: disable=g-import-not-at-top
  solved = []

  def first_slot_only(payoff, solver):
    solved.append(np.asarray(payoff).shape[0])
    weights = np.zeros(np.asarray(payoff).shape[0])
    weights[0] = 1.
    return psro.MetaStrategy(weights, 0.)

  drawn = []
  real = matchmaking.MATCHMAKERS['psro']

  def recording(rng, episode_index, num_agents, population_size,
                num_snapshots=0, snapshot_weights=None):
    ids = real(rng, episode_index, num_agents, population_size,
               num_snapshots, snapshot_weights)
    drawn.append((num_snapshots, ids))
    return ids

  monkeypatch.setattr(psro, 'meta_strategy', first_slot_only)
  monkeypatch.setitem(matchmaking.MATCHMAKERS, 'psro', recording)
  config = toy_config(matchmaking='psro', num_steps=1000)
  config.fsp_pool_size = 3
  config.psro_iteration_updates = 2
  single.run(config, str(tmp_path / 'psro'))
  assert max(solved) == 3  # the ring filled up
  full = [ids for k, ids in drawn if k == 3]
  assert len(full) >= 20
  for ids in full:
    assert sorted(ids.tolist()) == [0, 1]  # the learner and slot 0 (id 1)


def test_psro_config_errors(tmp_path):
  config = toy_config(matchmaking='psro', population_size=2)
  with pytest.raises(Exception, match='population_size=1'):
    single.run(config, str(tmp_path / 'a'))
  config = toy_config(matchmaking='psro')
  config.psro_meta_solver = 'bogus'
  with pytest.raises(Exception, match='psro_meta_solver'):
    single.run(config, str(tmp_path / 'b'))


def test_psro_with_the_nash_meta_solver(tmp_path):
  config = toy_config(matchmaking='psro', num_steps=800)
  config.fsp_pool_size = 2
  config.psro_iteration_updates = 2
  config.psro_meta_solver = 'nash'
  result = single.run(config, str(tmp_path / 'nash'))
  with open(tmp_path / 'nash' / 'psro.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 1 + result.learner_steps // 2
  for r in rows:
    w = [float(r[f'meta_strategy/slot_{k}'])
         for k in range(int(float(r['pool_size'])))]
    assert abs(sum(w) - 1) < 1e-9 and min(w) >= 0
    assert float(r['exploitability']) >= -1e-9


def test_pbt_scores_members_by_evaluation_episodes(tmp_path, monkeypatch):
  """PBT ranks members by fresh evaluation episodes (pbt_eval_episodes per
  member, every member in all seats), not by their training returns."""
  from marl_jax.evaluation import crossplay  # pylint: disable=g-import-not-at-top
  played = []
  real = crossplay.play_seated_episode

  def counting(env, seats, metric='episode_return', **kwargs):
    played.append(([m for _, m in seats], metric))
    return real(env, seats, metric, **kwargs)

  monkeypatch.setattr(crossplay, 'play_seated_episode', counting)
  config = toy_config(population_size=3, matchmaking='random', num_steps=1200)
  config.pbt_every_updates = 5
  config.pbt_eval_episodes = 2
  config.eval_every_updates = 0
  single.run(config, str(tmp_path / 'pbt'))
  with open(tmp_path / 'pbt' / 'pbt.csv') as f:
    rows = list(csv.DictReader(f))
  assert rows
  assert len(played) == len(rows) * 3 * 2
  for r in range(len(rows)):
    for m in range(3):
      for e in range(2):
        assert played[(r * 3 + m) * 2 + e] == ([m, m], 'episode_return')
  for row in rows:
    for m in range(3):
      assert 0 <= float(row[f'member_{m}/score']) <= 16  # the toy's horizon


def test_resume_from_a_periodic_checkpoint_is_exact(tmp_path):
  """Periodic checkpoints are written between whole iterations (after the
  learner drained the replay and PBT ran), so resuming from any of them —
  not only from the final one — continues exactly."""
  import shutil  # pylint: disable=g-import-not-at-top
  config = toy_config(population_size=2, matchmaking='random', num_steps=1600)
  config.pbt_every_updates = 3
  config.checkpoint_every_s = 0.  # one at the end of every iteration
  config.max_checkpoints_to_keep = 1000
  config.eval_every_updates = 0
  straight = str(tmp_path / 'straight')
  single.run(config, straight)
  steps = sorted(int(s) for s in os.listdir(os.path.join(straight,
                                                         'checkpoints'))
                 if s.isdigit())
  assert len(steps) > 4
  middle = steps[len(steps) // 2]
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(straight, resumed)
  for step in steps:
    if step > middle:
      shutil.rmtree(os.path.join(resumed, 'checkpoints', str(step)))
  single.run(config, resumed, resume=True)
  assert_same_final_params(straight, resumed)
