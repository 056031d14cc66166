"""Scripted held-out partners, the package's greedy planner among them."""

import os

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import overcooked
from marl_jax.evaluation import crossplay, scripted

STAY = overcooked.ACTION_NAMES.index('STAY')


def cramped(horizon=400):
  return envs.make('overcooked/cramped_room', horizon=horizon)


def planners_dir():
  overcooked._package()  # pylint: disable=protected-access
  # pylint: disable-next=g-import-not-at-top
  from overcooked_ai_py.static import PLANNERS_DIR
  return PLANNERS_DIR


def test_greedy_with_itself_delivers_soups_and_writes_nothing():
  before = sorted(os.listdir(planners_dir()))
  env = cramped()
  greedy = scripted.make('scripted:greedy', env, seed=0)
  episode = crossplay.play_seated_episode(env, [(greedy, 0), (greedy, 0)],
                                          'episode_sparse_reward')
  # 20 per soup, the team reward of both agents.
  assert episode.values[0] == episode.values[1] > 0
  assert episode.values[0] % 20 == 0
  assert env.overcooked_state.timestep == 400
  # The action manager was built in memory: no planner pickled in the package.
  assert sorted(os.listdir(planners_dir())) == before


def test_action_manager_equals_the_packages_own(monkeypatch):
  """Same plans as the package's constructor (whose motion planner is kept
  in memory here, so the reference writes nothing either)."""
  _, _, planners = overcooked._package()  # pylint: disable=protected-access
  monkeypatch.setattr(
      planners.MotionPlanner, 'from_pickle_or_compute',
      staticmethod(lambda mdp, counter_goals, **_: planners.MotionPlanner(
          mdp, counter_goals)))
  env = cramped()
  reference = planners.MediumLevelActionManager(
      env.mdp, dict(planners.NO_COUNTERS_PARAMS))
  mlam = overcooked.action_manager('cramped_room')
  assert overcooked.action_manager('cramped_room') is mlam  # cached
  assert overcooked.action_manager_seconds('cramped_room') > 0
  assert (mlam.joint_motion_planner.all_plans ==
          reference.joint_motion_planner.all_plans)
  assert mlam.params == reference.params


def test_stay_and_random_baselines():
  env = cramped(horizon=60)
  stay = scripted.make('stay', env)
  ts = env.reset()
  np.testing.assert_array_equal(stay.step(ts), [STAY, STAY])
  # Nobody moves: nothing is ever cooked.
  assert crossplay.play_seated(env, [(stay, 0), (stay, 0)],
                               'episode_sparse_reward') == 0
  rnd = scripted.make('random', env, seed=3)
  actions = np.stack([rnd.step(ts) for _ in range(600)])
  assert actions.shape == (600, 2)
  counts = np.bincount(actions.ravel(), minlength=6)
  assert counts.sum() == 1200 and (counts > 150).all()  # ~200 each
  # Random is generic: it plays the toy game too.
  toy = envs.make('toy/cue_coordination')
  value = crossplay.play_seated(toy, [(scripted.make('random', toy), 0)] * 2)
  assert 0 <= value <= 16


def test_greedy_is_a_function_of_its_seed_and_keeps_numpys_generator():
  env = cramped(horizon=80)

  def episode(seed):
    g = scripted.make('greedy', env, seed=seed)
    r = scripted.make('random', env, seed=seed)
    return crossplay.play_seated_episode(env, [(g, 0), (r, 0)],
                                         'episode_shaped_reward').values

  np.random.seed(123)
  expected_global = np.random.get_state()[1].copy()
  a, b = episode(0), episode(0)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.random.get_state()[1], expected_global)


def test_greedy_refuses_a_state_it_was_not_given():
  env, other = cramped(), cramped()
  greedy = scripted.make('greedy', env)
  ts = other.reset()
  env.reset()
  env.step(np.array([STAY, STAY]))  # env is one step ahead of `other`.
  with pytest.raises(RuntimeError, match='environment it plays in'):
    greedy.step(ts)


def test_bad_names_and_environments():
  with pytest.raises(ValueError, match='scripted:greedy'):
    scripted.parse('scripted:bogus')
  assert scripted.parse('runs/some_dir') is None
  toy = envs.make('toy/cue_coordination')
  for name in ('greedy', 'stay'):
    with pytest.raises(ValueError, match='Overcooked only'):
      scripted.make(name, toy)
