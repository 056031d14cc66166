"""The 2019 human-human trials replayed in ``jaxmarl/overcooked_<layout>``:
the replayed players follow the recorded states, and each observation is the
one before its action, read against the recorded players (JaxMARL's
agent-centric layers: 0 own cell, 1 partner's cell, 2-5 own facing, 6-9
partner's facing, in the order up, down, right, left; 25 urgency)."""

import jax
import numpy as np
import pytest

pytest.importorskip('jaxmarl')
pytest.importorskip('overcooked_ai_py')
pytest.importorskip('pandas')

# pylint: disable=g-import-not-at-top,wrong-import-position
from marl_jax.envs import jaxmarl as jm
from marl_jax.envs import jaxmarl_human as jh

_FACING = {(0, -1): 0, (0, 1): 1, (1, 0): 2, (-1, 0): 3}


def test_with_players_moves_both_agents_and_is_jittable():
  env = jm.JaxMarlOvercooked('cramped_room', global_state=False)
  state, _ = env.reset(jax.random.PRNGKey(3))
  # The agents swap cells (agent 0 onto agent 1's start and back).
  starts = np.asarray(state.env_state.agent_pos)
  moved = jax.jit(env.with_players)(state, starts[::-1], [[1, 0], [0, 1]])
  s = moved.env_state
  np.testing.assert_array_equal(s.agent_pos, starts[::-1])
  np.testing.assert_array_equal(s.agent_dir, [[1, 0], [0, 1]])
  grid = np.asarray(env.observation(moved)['GRID'])
  for i, ((x, y), facing) in enumerate(zip(starts[::-1], [2, 1])):
    assert grid[i, y, x, 0] == 1 and grid[i, :, :, 0].sum() == 1
    assert grid[1 - i, y, x, 1] == 1 and grid[1 - i, :, :, 1].sum() == 1
    assert grid[i, y, x, 2 + facing] == 1
  # The kitchen has exactly two agent cells, where the agents are.
  pad = (s.maze_map.shape[0] - 4) // 2
  kitchen = np.asarray(s.maze_map[pad:-pad, pad:-pad, 0])
  assert sorted(zip(*np.nonzero(kitchen == 10))) == sorted(
      (y, x) for x, y in starts)


def test_replay_follows_a_recorded_trial_and_aligns_observations():
  env = jm.JaxMarlOvercooked('cramped_room', horizon=400, global_state=False)
  trial = jh.load_trials('test', 'cramped_room')[0]
  r = jh.replay(trial, env)
  steps = trial.num_steps
  want_pos = np.array([[p[0] for p in s['players']] for s in trial.states])
  want_dir = np.array([[p[1] for p in s['players']] for s in trial.states])
  np.testing.assert_array_equal(r.positions, want_pos)
  np.testing.assert_array_equal(r.directions, want_dir)
  np.testing.assert_allclose(r.sparse_reward, trial.sparse_reward)
  assert trial.score > 0
  grid = r.observation['GRID']
  assert set(r.observation) == {'GRID'}
  assert grid.shape == (steps, 2, 4, 5, 26) and grid.dtype == np.uint8
  # obs[0] is the observation of a reset that starts at the recorded start.
  positions, directions = jh.start_of(trial)
  _, ts = env.reset_with_players(jax.random.PRNGKey(0), positions, directions)
  np.testing.assert_array_equal(grid[0], ts.observation['GRID'])
  # obs[t] shows the recorded state t (the one before actions[t]).
  t = np.arange(steps)
  for i in range(2):
    x, y = want_pos[:steps, i, 0], want_pos[:steps, i, 1]
    facing = np.array([_FACING[tuple(d)] for d in want_dir[:steps, i]])
    assert np.all(grid[t, i, y, x, 0] == 1)
    assert np.all(grid[t, 1 - i, y, x, 1] == 1)
    assert np.all(grid[t, i, y, x, 2 + facing] == 1)
    assert np.all(grid[t, 1 - i, y, x, 6 + facing] == 1)
  # Each step is observed as step t % 400 of an episode: urgency in the last
  # 39 steps of every 400 (JaxMARL: fewer than 40 steps remain).
  urgent = (400 - t % 400) < 40
  np.testing.assert_array_equal(grid[:, 0, 0, 0, 25], urgent)


def test_replay_refuses_another_layout():
  env = jm.JaxMarlOvercooked('coord_ring')
  trial = jh.load_trials('test', 'cramped_room')[0]
  with pytest.raises(ValueError, match='cannot be replayed'):
    jh.replay(trial, env)
  with pytest.raises(ValueError, match='has no human data'):
    jh.layout_of('nowhere')
