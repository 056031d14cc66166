"""PettingZoo both ways: the API test on exported envs, the MPE adapter."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('pettingzoo')
pytest.importorskip('mpe2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import gymnasium
import pettingzoo
from pettingzoo.test import parallel_api_test
from mpe2 import simple_speaker_listener_v4, simple_spread_v3

from marl_jax import envs
from marl_jax.envs import pettingzoo as pz
from marl_jax.envs import pettingzoo_export
from marl_jax.types import StepType


def _check_against_spec(env, ts):
  spec = env.spec()
  assert set(ts.observation) == set(spec.observation)
  for name, entry in spec.observation.items():
    x = ts.observation[name]
    assert x.shape == (spec.num_agents,) + tuple(entry.shape), name
    assert x.dtype == entry.dtype, name
  assert ts.reward.shape == (spec.num_agents,)
  assert ts.reward.dtype == np.float32
  assert np.asarray(ts.discount).dtype == np.float32


def _check_in_spaces(par_env, obs):
  for agent, o in obs.items():
    assert par_env.observation_space(agent).contains(o), agent


# -- marl_jax -> PettingZoo ---------------------------------------------------


@pytest.mark.parametrize('name,kwargs', [
    ('toy/cue_coordination', dict(horizon=8)),
    ('overcooked/cramped_room', dict(horizon=12)),
])
def test_exported_env_passes_parallel_api_test(name, kwargs):
  par_env = pettingzoo_export.to_parallel_env(envs.make(name, **kwargs),
                                              render_mode='rgb_array')
  assert isinstance(par_env, pettingzoo.ParallelEnv)
  parallel_api_test(par_env, num_cycles=50)
  obs, infos = par_env.reset(seed=3)
  assert par_env.agents == ['agent_0', 'agent_1'] == par_env.possible_agents
  assert isinstance(par_env.action_space('agent_0'), gymnasium.spaces.Discrete)
  assert isinstance(par_env.observation_space('agent_0'),
                    gymnasium.spaces.Box)
  assert set(infos['agent_0']) == set(
      envs.make(name, **kwargs).spec().info_keys)
  _check_in_spaces(par_env, obs)
  for t in range(kwargs['horizon']):
    obs, rewards, term, trunc, _ = par_env.step(
        {a: par_env.action_space(a).sample() for a in par_env.agents})
    _check_in_spaces(par_env, obs)
    assert all(isinstance(r, float) for r in rewards.values())
  assert par_env.agents == []
  # The toy game terminates (discount 0); Overcooked truncates at the horizon.
  if name.startswith('toy'):
    assert all(term.values()) and not any(trunc.values())
  else:
    assert all(trunc.values()) and not any(term.values())
  frame = par_env.render()
  assert frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8
  with pytest.raises(RuntimeError, match='reset'):
    par_env.step({})


def test_exported_dict_space_and_state():
  # The MPE adapter has FEATURES and GLOBAL: a Dict space, and state().
  inner = envs.make('pettingzoo/simple_spread', max_cycles=5, seed=0)
  par_env = pettingzoo_export.to_parallel_env(inner)
  space = par_env.observation_space('agent_0')
  assert isinstance(space, gymnasium.spaces.Dict)
  assert set(space.spaces) == {'FEATURES', 'GLOBAL'}
  parallel_api_test(par_env, num_cycles=10)
  obs, _ = par_env.reset(seed=1)
  _check_in_spaces(par_env, obs)
  np.testing.assert_array_equal(par_env.state(), obs['agent_2']['GLOBAL'])
  assert par_env.render() is None  # render_mode None
  # And back: GLOBAL comes from the Dict entry, once, equal to the original.
  again = pz.from_parallel_env(par_env, seed=4)
  assert set(again.spec().observation) == {'FEATURES', 'GLOBAL'}
  inner.reseed(4)
  x, y = inner.reset(), again.reset()
  for name in ('FEATURES', 'GLOBAL'):
    np.testing.assert_array_equal(x.observation[name], y.observation[name])


# -- PettingZoo -> marl_jax ---------------------------------------------------


def test_simple_spread_spec_and_rewards_match_raw_env():
  env = envs.make('pettingzoo/simple_spread', seed=7)
  raw = simple_spread_v3.parallel_env()
  spec = env.spec()
  assert spec.num_agents == 3 and spec.num_actions == 5
  assert spec.max_episode_steps == 25
  assert set(spec.observation) == {'FEATURES', 'GLOBAL'}
  assert spec.observation['FEATURES'].shape == (18,)
  assert spec.observation['GLOBAL'].shape == (54,)

  ts = env.reset()
  raw_obs, _ = raw.reset(seed=7)
  assert ts.step_type == StepType.FIRST
  _check_against_spec(env, ts)
  agents = raw.possible_agents
  np.testing.assert_array_equal(ts.observation['FEATURES'],
                                np.stack([raw_obs[a] for a in agents]))
  rng = np.random.default_rng(0)
  total = 0.
  for _ in range(10):
    actions = rng.integers(0, 5, size=3)
    ts = env.step(actions)
    raw_obs, raw_rew, _, _, _ = raw.step(
        {a: int(x) for a, x in zip(agents, actions)})
    _check_against_spec(env, ts)
    assert ts.step_type == StepType.MID and ts.discount == 1.
    np.testing.assert_array_equal(
        ts.reward, np.array([raw_rew[a] for a in agents], np.float32))
    np.testing.assert_array_equal(ts.observation['FEATURES'],
                                  np.stack([raw_obs[a] for a in agents]))
    for i in range(3):  # GLOBAL: the raw state, the same for every agent.
      np.testing.assert_array_equal(ts.observation['GLOBAL'][i], raw.state())
    total += abs(ts.reward).sum()
  assert total > 0


def test_episode_ends_at_max_cycles_with_truncation_and_seeds_increment():
  env = envs.make('pettingzoo/simple_spread', seed=11, max_cycles=6)
  assert env.spec().max_episode_steps == 6
  ts = env.reset()
  for t in range(6):
    ts = env.step(np.zeros(3, np.int32))
    assert ts.step_type == (StepType.LAST if t == 5 else StepType.MID)
  assert ts.discount == 1.  # truncation only
  ts = env.step(np.zeros(3, np.int32))  # after LAST: a new episode, seed 12
  assert ts.step_type == StepType.FIRST
  raw = simple_spread_v3.parallel_env(max_cycles=6)
  raw_obs, _ = raw.reset(seed=12)
  np.testing.assert_array_equal(
      ts.observation['FEATURES'],
      np.stack([raw_obs[a] for a in raw.possible_agents]))
  # Two adapters with the same seed replay the same episodes.
  other = envs.make('pettingzoo/simple_spread', seed=11, max_cycles=6)
  first = other.reset()
  env.reseed(11)
  np.testing.assert_array_equal(env.reset().observation['FEATURES'],
                                first.observation['FEATURES'])


def test_heterogeneous_agents_are_padded_and_masked():
  env = envs.make('pettingzoo/simple_speaker_listener', seed=0)
  spec = env.spec()
  assert env.agent_ids == ('speaker_0', 'listener_0')
  np.testing.assert_array_equal(env.num_valid_actions, [3, 5])
  assert spec.num_actions == 5
  assert spec.observation['FEATURES'].shape == (11,)
  assert env.observation_shapes[0]['FEATURES'] == (3,)
  ts = env.reset()
  _check_against_spec(env, ts)
  np.testing.assert_array_equal(ts.observation['FEATURES'][0, 3:], 0.)
  raw = simple_speaker_listener_v4.parallel_env()
  raw_obs, _ = raw.reset(seed=0)
  np.testing.assert_array_equal(ts.observation['FEATURES'][0, :3],
                                raw_obs['speaker_0'])
  np.testing.assert_array_equal(ts.observation['ACTION_MASK'],
                                [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  ts = env.step(np.array([2, 4]))
  _check_against_spec(env, ts)
  with pytest.raises(ValueError, match="speaker_0.*3 actions"):
    env.step(np.array([4, 4]))


def test_round_trip_toy_gives_identical_trajectories():
  direct = envs.make('toy/cue_coordination', horizon=5, num_actions=3)
  round_trip = pz.from_parallel_env(pettingzoo_export.to_parallel_env(
      envs.make('toy/cue_coordination', horizon=5, num_actions=3)))
  assert round_trip.spec().observation == direct.spec().observation
  assert round_trip.spec().num_actions == direct.spec().num_actions
  rng = np.random.default_rng(1)
  a, b = direct.reset(), round_trip.reset()
  terminations = 0
  for _ in range(13):  # crosses two episode boundaries
    assert int(a.step_type) == int(b.step_type)
    np.testing.assert_array_equal(a.reward, b.reward)
    assert float(a.discount) == float(b.discount)
    np.testing.assert_array_equal(a.observation['FEATURES'],
                                  b.observation['FEATURES'])
    terminations += int(b.last() and float(b.discount) == 0.)
    actions = rng.integers(0, 3, size=2)
    a, b = direct.step(actions), round_trip.step(actions)
  assert terminations == 2  # the toy game's terminations keep discount 0


def test_unsupported_action_space_is_a_clear_error():
  with pytest.raises(ValueError, match='discrete.*continuous_actions=False'):
    envs.make('pettingzoo/simple_spread', continuous_actions=True)
  with pytest.raises(ValueError, match='Bad arguments.*simple_spread'):
    envs.make('pettingzoo/simple_spread', no_such_argument=1)


class _Staggered(pettingzoo.ParallelEnv):
  """Agent b terminates after 2 steps, agent a is truncated after 3."""

  metadata = {'name': 'staggered'}

  def __init__(self, truncate_last=True):
    self.possible_agents = ['a', 'b']
    self.agents = []
    self._truncate_last = truncate_last
    self._space = gymnasium.spaces.Box(-1., 1., (2,), np.float64)
    self._actions = gymnasium.spaces.Discrete(2)
    self.received = []

  def observation_space(self, agent):
    return self._space

  def action_space(self, agent):
    return self._actions

  def reset(self, seed=None, options=None):
    self.t = 0
    self.agents = list(self.possible_agents)
    return {a: np.ones(2) for a in self.agents}, {a: {} for a in self.agents}

  def step(self, actions):
    self.received.append(dict(actions))
    self.t += 1
    obs = {a: np.full(2, 0.5) for a in self.agents}
    rew = {a: 1. for a in self.agents}
    term = {a: a == 'b' and self.t == 2 for a in self.agents}
    trunc = {a: a == 'a' and self.t == 3 for a in self.agents}
    if not self._truncate_last:
      term, trunc = ({a: term[a] or trunc[a] for a in self.agents},
                     {a: False for a in self.agents})
    self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
    return obs, rew, term, trunc, {a: {} for a in obs}


@pytest.mark.parametrize('truncate_last', [True, False])
def test_agents_done_early_get_zeros(truncate_last):
  raw = _Staggered(truncate_last)
  env = pz.from_parallel_env(raw)
  spec = env.spec()
  assert 'GLOBAL' not in spec.observation and spec.max_episode_steps is None
  assert spec.observation['FEATURES'].dtype == np.float32
  env.reset()
  steps = [env.step(np.array([1, 1])) for _ in range(3)]
  assert [int(s.step_type) for s in steps] == [StepType.MID, StepType.MID,
                                               StepType.LAST]
  np.testing.assert_array_equal(steps[1].reward, [1., 1.])  # b's final reward
  np.testing.assert_array_equal(steps[2].reward, [1., 0.])
  np.testing.assert_array_equal(steps[2].observation['FEATURES'],
                                [[.5, .5], [0., 0.]])
  assert raw.received[2] == {'a': 1}  # b's action is not sent once it is done
  assert float(steps[2].discount) == (1. if truncate_last else 0.)


def test_pettingzoo_is_imported_lazily_and_missing_package_message(
    monkeypatch):
  code = ('import sys; from marl_jax import envs; envs.list_envs(); '
          'assert "pettingzoo/simple_spread" in envs.list_envs(); '
          'assert "pettingzoo" not in sys.modules; '
          'assert "mpe2" not in sys.modules')
  subprocess.run([sys.executable, '-c', code], check=True)
  real = pz.importlib.util.find_spec
  monkeypatch.setattr(pz.importlib.util, 'find_spec',
                      lambda n, *a: None if n == 'pettingzoo' else real(n, *a))
  # The registry names the extra that installs the family's packages.
  with pytest.raises(ImportError, match=r'pip install "marl_jax\[pettingzoo\]"'):
    envs.make('pettingzoo/simple_spread')


def test_mpe_render_rgb_array():
  env = envs.make('pettingzoo/simple_spread', render_mode='rgb_array', seed=0)
  env.reset()
  frame = env.render()
  assert frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8
