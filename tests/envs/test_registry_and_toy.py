"""The registry's errors, and the toy cooperative game by hand."""

import pickle

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.types import StepType


def test_unknown_name_lists_valid_and_suggests():
  with pytest.raises(envs.UnknownEnvironmentError) as e:
    envs.make('overcooked/cramped_rom')
  message = str(e.value)
  assert 'Did you mean overcooked/cramped_room' in message
  assert 'toy/cue_coordination' in message  # the full list follows
  with pytest.raises(envs.UnknownEnvironmentError, match='Valid environments'):
    envs.make('nonsense')


def test_cue_coordination_by_hand():
  env = envs.make('toy/cue_coordination', horizon=4, num_actions=3)
  ts = env.reset()
  total = np.zeros(2)
  for t in range(4):
    cue = int(np.argmax(ts.observation['FEATURES'][0, :3]))
    assert cue == (3 * t + 0) % 3  # episode 0
    wrong = (cue + 1) % 3
    ts = env.step(np.array([cue, cue if t % 2 == 0 else wrong]))
    total += ts.reward
  assert ts.step_type == StepType.LAST and ts.discount == 0.
  np.testing.assert_array_equal(total, [2., 2.])  # steps 0 and 2 coordinated
  ts = env.step(np.array([0, 0]))
  assert ts.step_type == StepType.FIRST
  # Episode 1 shifts the cues.
  assert int(np.argmax(ts.observation['FEATURES'][0, :3])) == 1


def test_toy_bad_arguments():
  with pytest.raises(ValueError, match='horizon'):
    envs.make('toy/cue_coordination', horizon=0)
  env = envs.make('toy/cue_coordination')
  env.reset()
  with pytest.raises(ValueError, match='actions'):
    env.step(np.array([0, 9]))


def test_toy_spec_matches_timesteps():
  env = envs.make('toy/cue_coordination', horizon=3, num_actions=5)
  spec = env.spec()
  ts = env.reset()
  while True:
    for k, s in spec.observation.items():
      assert ts.observation[k].shape == (spec.num_agents,) + tuple(s.shape)
      assert ts.observation[k].dtype == s.dtype
    assert ts.reward.shape == (2,) and ts.reward.dtype == np.float32
    assert set(ts.info) == set(spec.info_keys)
    if ts.last():
      break
    ts = env.step(np.array([0, 0]))
  assert spec.num_actions == 5 and spec.max_episode_steps == 3


def test_toy_random_and_optimal_returns():
  horizon, a = 16, 4
  env = envs.make('toy/cue_coordination', horizon=horizon, num_actions=a)
  rng = np.random.default_rng(0)
  random_returns, optimal_returns = [], []
  for policy in ('random', 'optimal'):
    for _ in range(400):
      ts, ret = env.reset(), 0.
      while not ts.last():
        cue = int(np.argmax(ts.observation['FEATURES'][0, :a]))
        act = rng.integers(0, a, 2) if policy == 'random' else np.array([cue, cue])
        ts = env.step(act)
        ret += ts.reward[0]
      (random_returns if policy == 'random' else optimal_returns).append(ret)
  assert set(optimal_returns) == {float(horizon)}
  # Expected horizon / a**2 = 1; the standard error over 400 episodes is ~0.05.
  assert abs(np.mean(random_returns) - horizon / a**2) < 0.2


def test_toy_snapshot_reproduces_and_render():
  env = envs.make('toy/cue_coordination', horizon=6)
  env.reset()
  env.step(np.array([1, 2]))
  snapshot = pickle.loads(pickle.dumps(env.get_state()))
  actions = [np.array([i % 4, (i * 3) % 4]) for i in range(12)]  # past LAST
  first = [env.step(a) for a in actions]
  other = envs.make('toy/cue_coordination', horizon=6)
  other.set_state(snapshot)
  second = [other.step(a) for a in actions]
  for x, y in zip(first, second):
    assert x.step_type == y.step_type
    np.testing.assert_array_equal(x.reward, y.reward)
    np.testing.assert_array_equal(x.observation['FEATURES'],
                                  y.observation['FEATURES'])
  frame = env.render()
  assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
  with pytest.raises(ValueError, match='get_state'):
    other.set_state({'t': 0})


def test_toy_bad_actions_raise_even_after_last():
  env = envs.make('toy/cue_coordination', horizon=1)
  env.reset()
  env.step(np.array([0, 0]))  # LAST
  with pytest.raises(ValueError, match='actions'):
    env.step(np.array([0, 0, 0]))
