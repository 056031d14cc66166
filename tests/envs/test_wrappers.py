"""Wrappers, checked on the toy game by hand."""

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import wrappers
from marl_jax.types import StepType


def toy(**kwargs):
  return envs.make('toy/cue_coordination', horizon=4, num_actions=3, **kwargs)


def test_agent_id_one_hot_in_spec_and_steps():
  env = wrappers.AgentId(toy())
  spec = env.spec()
  assert spec.observation['AGENT_ID'].shape == (2,)
  ts = env.reset()
  np.testing.assert_array_equal(ts.observation['AGENT_ID'], np.eye(2))
  ts = env.step(np.array([0, 0]))
  np.testing.assert_array_equal(ts.observation['AGENT_ID'], np.eye(2))
  assert 'FEATURES' in ts.observation
  with pytest.raises(ValueError, match='AGENT_ID'):
    wrappers.AgentId(env)


def test_global_state_concatenates_all_agents():
  env = wrappers.GlobalState(toy())
  ts = env.reset()
  features = ts.observation['FEATURES']  # [2, 4]
  g = ts.observation['GLOBAL']
  assert g.shape == (2, 8) == (2,) + env.spec().observation['GLOBAL'].shape
  np.testing.assert_array_equal(g[0], np.concatenate([features[0], features[1]]))
  np.testing.assert_array_equal(g[0], g[1])
  with pytest.raises(ValueError, match='RGB'):
    wrappers.GlobalState(toy(), key='RGB')


def test_reward_scale_keeps_info_unscaled():
  env = wrappers.RewardScale(toy(), 0.5)
  ts = env.reset()
  cue = int(np.argmax(ts.observation['FEATURES'][0, :3]))
  ts = env.step(np.array([cue, cue]))
  np.testing.assert_array_equal(ts.reward, [0.5, 0.5])
  np.testing.assert_array_equal(ts.info['coordinated'], [1., 1.])


def test_episode_statistics_by_hand():
  env = wrappers.EpisodeStatistics(toy())
  ts = env.reset()
  for t in range(4):
    cue = int(np.argmax(ts.observation['FEATURES'][0, :3]))
    ts = env.step(np.array([cue, cue if t < 3 else (cue + 1) % 3]))
  assert ts.step_type == StepType.LAST
  np.testing.assert_array_equal(env.last['episode_return'], [3., 3.])
  assert env.last['episode_length'] == 4 and env.num_episodes == 1
  env.step(np.array([0, 0]))  # next episode starts
  assert env.current['episode_length'] == 0


def test_wrappers_forward_hooks_and_state():
  env = wrappers.EpisodeStatistics(wrappers.AgentId(toy()))
  assert isinstance(env.unwrapped, envs.toy.CueCoordination)
  env.reset()
  env.step(np.array([0, 1]))
  snapshot = env.get_state()
  a = [env.step(np.array([1, 1])).observation['FEATURES'] for _ in range(2)]
  env.set_state(snapshot)
  b = [env.step(np.array([1, 1])).observation['FEATURES'] for _ in range(2)]
  np.testing.assert_array_equal(a, b)
  assert env.render().dtype == np.uint8
