"""Overcooked-AI through our contract, checked against a hand-played episode."""

import pickle

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import overcooked
from marl_jax.types import StepType

N, S, E, W, STAY, INTERACT = range(6)


def soup_script():
  """A hand-worked cramped_room episode that delivers one soup.

  cramped_room (x right, y down):   XXPXX   agent 0 starts at (1, 2),
                                    O  2O   agent 1 at (3, 1); onions at
                                    X1  X   (0, 1)/(4, 1), the pot at (2, 0),
                                    XDXSX   dishes at (1, 3), serving at (3, 3).
  Agent 1 carries three onions from (4, 1) to the pot, then starts cooking;
  agent 0 takes a dish, waits below the pot for the 20-step cook, picks up
  the soup and serves it. Returns [steps, 2] actions.
  """
  a1 = [E] + [INTERACT, W, N, INTERACT, E] * 3 + [W, N, INTERACT] + [E]
  a0 = [STAY] * len(a1)
  a0[1], a0[2] = S, INTERACT  # face the dish dispenser, take a dish
  a1 += [STAY] * 8
  a0 += [N, E, N] + [STAY] * 5  # to (2, 1), facing the pot
  a1 += [STAY] * 15
  a0 += [STAY] * 14 + [INTERACT]  # the soup is ready: pick it up
  a1 += [STAY] * 4
  a0 += [S, E, S, INTERACT]  # to (3, 2), face serving, deliver
  return np.stack([a0, a1], axis=1)


def run(env, actions):
  out = []
  for a in actions:
    out.append(env.step(np.asarray(a)))
  return out


def test_classic_layouts_are_registered():
  names = envs.list_envs()
  for layout in overcooked.CLASSIC_LAYOUTS:
    assert f'overcooked/{layout}' in names
  # 1- and 4-player layouts of the package are left out (2-player wrapper).
  assert 'overcooked/cramped_room_single' not in names


@pytest.mark.parametrize('layout', overcooked.CLASSIC_LAYOUTS)
@pytest.mark.parametrize('observation', ['featurized', 'lossless'])
def test_spec_matches_timesteps(layout, observation):
  env = envs.make(f'overcooked/{layout}', observation=observation, horizon=3)
  spec = env.spec()
  assert spec.num_agents == 2 and spec.num_actions == 6
  ts = env.reset()
  rng = np.random.default_rng(0)
  for t in range(4):
    assert set(ts.observation) == set(spec.observation)
    for k, s in spec.observation.items():
      assert ts.observation[k].shape == (2,) + tuple(s.shape)
      assert ts.observation[k].dtype == s.dtype
    assert ts.reward.shape == (2,) and ts.reward.dtype == np.float32
    assert set(ts.info) == set(spec.info_keys)
    if t < 3:
      ts = env.step(rng.integers(0, 6, size=2))
  if observation == 'featurized':
    assert spec.observation['FEATURES'].shape == (96,)
  else:
    w, h = env.mdp.shape
    assert spec.observation['GRID'].shape == (w, h, 26)


def test_episode_ends_at_the_horizon_and_restarts():
  env = envs.make('overcooked/cramped_room', horizon=5)
  ts = env.reset()
  assert ts.step_type == StepType.FIRST
  types = [int(env.step(np.array([STAY, STAY])).step_type) for _ in range(5)]
  assert types == [StepType.MID] * 4 + [StepType.LAST]
  ts = env.step(np.array([STAY, STAY]))  # a step after LAST starts anew
  assert ts.step_type == StepType.FIRST and (ts.reward == 0).all()


def test_time_limit_is_a_truncation():
  env = envs.make('overcooked/cramped_room', horizon=2)
  env.reset()
  env.step(np.array([STAY, STAY]))
  ts = env.step(np.array([STAY, STAY]))
  assert ts.last() and ts.discount == 1.0


def test_hand_played_soup_scores_20_for_both():
  env = envs.make('overcooked/cramped_room', horizon=100,
                  reward_shaping_factor=0.0)
  env.reset()
  steps = run(env, soup_script())
  sparse = np.stack([ts.info['sparse_reward'] for ts in steps])
  delivered = np.nonzero(sparse[:, 0])[0]
  assert delivered.tolist() == [len(steps) - 1]
  np.testing.assert_array_equal(sparse[-1], [20., 20.])
  np.testing.assert_array_equal(steps[-1].reward, [20., 20.])
  # With the shaping weight at 0 the training reward is the sparse reward.
  np.testing.assert_array_equal(np.stack([ts.reward for ts in steps]), sparse)
  # The package's shaped rewards: 3 per onion into the pot (agent 1), 5 for
  # picking up the soup (agent 0).
  shaped = np.stack([ts.info['shaped_reward'] for ts in steps]).sum(0)
  np.testing.assert_array_equal(shaped, [5., 9.])


def test_shaped_reward_weight_anneals_with_training_progress():
  env = envs.make('overcooked/cramped_room', horizon=100,
                  reward_shaping_factor=0.5, reward_shaping_horizon=1000)
  env.reset()
  env.set_training_progress(500)  # weight 0.5 * (1 - 500/1000) = 0.25
  steps = run(env, soup_script())
  rewards = np.stack([ts.reward for ts in steps])
  sparse = np.stack([ts.info['sparse_reward'] for ts in steps])
  shaped = np.stack([ts.info['shaped_reward'] for ts in steps])
  np.testing.assert_allclose(rewards, sparse + 0.25 * shaped)
  env.set_training_progress(5000)
  assert env.reward_shaping_weight == 0.0


def test_linear_anneal_by_hand():
  assert overcooked.linear_anneal(0, 2.0, 100) == 2.0
  assert overcooked.linear_anneal(25, 2.0, 100) == 1.5
  assert overcooked.linear_anneal(100, 2.0, 100) == 0.0
  assert overcooked.linear_anneal(10**9, 2.0, 100) == 0.0
  assert overcooked.linear_anneal(10**9, 2.0, 0) == 2.0
  with pytest.raises(ValueError, match='step'):
    overcooked.linear_anneal(-1, 1.0, 10)


def test_state_snapshot_reproduces_the_rest_of_the_episode():
  script = soup_script()
  env = envs.make('overcooked/cramped_room', horizon=100)
  env.reset()
  run(env, script[:20])  # onions in the pot, dish in hand
  snapshot = pickle.loads(pickle.dumps(env.get_state()))
  first = run(env, script[20:])
  other = envs.make('overcooked/cramped_room', horizon=100)
  other.reset()
  other.set_state(snapshot)
  second = run(other, script[20:])
  for a, b in zip(first, second):
    assert a.step_type == b.step_type
    np.testing.assert_array_equal(a.reward, b.reward)
    np.testing.assert_array_equal(a.observation['FEATURES'],
                                  b.observation['FEATURES'])
  assert first[-1].info['sparse_reward'][0] == 20.


@pytest.mark.parametrize('kwargs,match', [
    (dict(observation='pixels'), 'observation'),
    (dict(horizon=0), 'horizon'),
    (dict(reward_shaping_horizon=-1), 'reward_shaping_horizon'),
    (dict(layout='cramped_rom'), 'cramped_room'),
])
def test_bad_arguments_are_named(kwargs, match):
  with pytest.raises(ValueError, match=match):
    overcooked.Overcooked(**kwargs)


@pytest.mark.parametrize('actions,match', [
    ([0], 'shape'), ([0, 6], r'\[0, 6\)'), ([0.5, 1.0], 'integer')])
def test_bad_actions_are_named(actions, match):
  env = envs.make('overcooked/cramped_room')
  env.reset()
  with pytest.raises(ValueError, match=match):
    env.step(np.asarray(actions))


def test_render_frame():
  env = envs.make('overcooked/cramped_room', horizon=10)
  env.reset()
  frame = env.render()
  assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
  env.step(np.array([N, W]))
  assert env.render().shape == frame.shape


def test_featurized_start_state_by_hand():
  """cramped_room's start: both face north, hands empty, at (1, 2) and (3, 1)."""
  env = envs.make('overcooked/cramped_room')
  f = env.reset().observation['FEATURES']
  for i, (own, other) in enumerate([((1, 2), (3, 1)), ((3, 1), (1, 2))]):
    np.testing.assert_array_equal(f[i, 0:4], [1, 0, 0, 0])  # facing NORTH
    np.testing.assert_array_equal(f[i, 4:8], [0, 0, 0, 0])  # holding nothing
    np.testing.assert_array_equal(f[i, -2:], own)  # absolute position
    np.testing.assert_array_equal(f[i, -4:-2], np.subtract(other, own))
  # Player-centric: each agent's own 46 features are the other's "other" block.
  np.testing.assert_array_equal(f[0, :46], f[1, 46:92])
  np.testing.assert_array_equal(f[1, :46], f[0, 46:92])


def test_lossless_layers_by_hand():
  """The package's layer order: own loc, other loc, 8 orientations, terrain."""
  env = envs.make('overcooked/cramped_room', observation='lossless')
  grid = env.reset().observation['GRID']  # [2, x, y, 26]
  assert grid.shape == (2, 5, 4, 26)

  def cells(layer):
    return sorted(map(tuple, np.argwhere(layer).tolist()))

  assert cells(grid[0, ..., 0]) == [(1, 2)] and cells(grid[0, ..., 1]) == [(3, 1)]
  assert cells(grid[1, ..., 0]) == [(3, 1)] and cells(grid[1, ..., 1]) == [(1, 2)]
  assert cells(grid[0, ..., 10]) == [(2, 0)]  # pot
  assert cells(grid[0, ..., 12]) == [(0, 1), (4, 1)]  # onion dispensers
  assert cells(grid[0, ..., 14]) == [(1, 3)]  # dish dispenser
  assert cells(grid[0, ..., 15]) == [(3, 3)]  # serving counter


def test_layouts_with_different_recipes_share_a_process():
  """The package configures Recipe globally, per the last MDP built.

  simple_o cooks an onion soup in 5 steps; cramped_room in the default 20.
  Stepping both in turn, cramped_room must still cook for 20 steps.
  """
  env = envs.make('overcooked/cramped_room', horizon=100,
                  observation='lossless')
  other = envs.make('overcooked/simple_o', horizon=100)
  env.reset()
  other.reset()
  remaining = []
  for a in soup_script():
    ts = env.step(a)
    other.step(np.array([INTERACT, INTERACT]))
    remaining.append(int(ts.observation['GRID'][0, 2, 0, 20]))  # cook time left
  started = next(i for i, r in enumerate(remaining) if r > 0)
  assert remaining[started:started + 20] == list(range(19, -1, -1))
  assert ts.info['sparse_reward'][0] == 20.


def test_snapshot_is_checked_and_survives_the_episode_end():
  env = envs.make('overcooked/cramped_room', horizon=3)
  env.reset()
  for _ in range(3):
    env.step(np.array([STAY, STAY]))
  snapshot = env.get_state()  # at LAST: the next step starts a new episode
  other = envs.make('overcooked/cramped_room', horizon=3)
  other.set_state(pickle.loads(pickle.dumps(snapshot)))
  assert other.step(np.array([STAY, STAY])).first()
  with pytest.raises(ValueError, match='horizon'):
    envs.make('overcooked/cramped_room', horizon=4).set_state(snapshot)
  with pytest.raises(ValueError, match='get_state'):
    other.set_state({'not': 'a snapshot'})


def test_render_shows_the_move():
  env = envs.make('overcooked/cramped_room', horizon=10)
  env.reset()
  before = env.render()
  env.step(np.array([N, STAY]))  # agent 0 walks from (1, 2) to (1, 1)
  after = env.render()
  assert before.shape == after.shape
  assert (before != after).any()
