"""The Melting Pot scenario protocol on hand-built environments and policies.

A fake scenario whose focal rewards are fixed numbers gives focal per-capita
returns, intervals and substrate means that are worked out by hand below.
"""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marl_jax.algorithms.base import ActorExtras
from marl_jax.envs import meltingpot
from marl_jax.envs.base import Environment
from marl_jax.evaluation import scenarios
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

CRAMPED = 'collaborative_cooking__cramped'


# ----------------------------------------------------------------------------
# Names.
# ----------------------------------------------------------------------------


def test_all_is_the_packages_own_scenario_list_of_the_substrate():
  if meltingpot.package_dir() is None:
    pytest.skip('dm-meltingpot is not installed')
  # The package's own grouping (meltingpot.scenario.SCENARIOS_BY_SUBSTRATE,
  # which imports TensorFlow, groups SCENARIO_CONFIGS by their substrate).
  configs = meltingpot.modules()['scenario_configs'].SCENARIO_CONFIGS
  by_substrate = {}
  for name, config in configs.items():
    by_substrate.setdefault(config.substrate, set()).add(name)
  assert set(by_substrate) == set(meltingpot.SUBSTRATES)
  for substrate, names in by_substrate.items():
    got = scenarios.resolve_scenarios('all', substrate)
    assert set(got) == names and len(got) == len(names), substrate
  assert scenarios.resolve_scenarios('all', CRAMPED) == tuple(
      f'{CRAMPED}_{i}' for i in range(3))
  # Numerical order, not lexicographic: clean_up_2 before clean_up_10.
  clean_up = scenarios.resolve_scenarios('all', 'clean_up')
  assert clean_up[:3] == ('clean_up_0', 'clean_up_1', 'clean_up_2')
  assert clean_up[-1] == 'clean_up_22'


def test_names_keep_their_order_without_repeats():
  got = scenarios.resolve_scenarios(
      f'{CRAMPED}_2, {CRAMPED}_0,{CRAMPED}_2', CRAMPED)
  assert got == (f'{CRAMPED}_2', f'{CRAMPED}_0')


def test_bad_names_are_one_line_errors_naming_what_was_wrong():
  with pytest.raises(scenarios.ScenarioError) as e:
    scenarios.resolve_scenarios(f'{CRAMPED}_9', CRAMPED, 'runs/cook')
  message = str(e.value)
  assert f"Unknown Melting Pot scenario '{CRAMPED}_9'" in message
  assert 'Did you mean' in message and f'{CRAMPED}_0' in message
  assert '\n' not in message
  with pytest.raises(scenarios.ScenarioError,
                     match=r'coins_0 is a scenario of coins, but runs/cook '
                     f'was trained on {CRAMPED}'):
    scenarios.resolve_scenarios('coins_0', CRAMPED, 'runs/cook')
  with pytest.raises(scenarios.ScenarioError, match='all alone'):
    scenarios.resolve_scenarios(f'all,{CRAMPED}_0', CRAMPED)
  with pytest.raises(scenarios.ScenarioError, match='empty'):
    scenarios.resolve_scenarios(' ', CRAMPED)
  with pytest.raises(scenarios.ScenarioError, match='empty name'):
    scenarios.resolve_scenarios(f'{CRAMPED}_0,,{CRAMPED}_1', CRAMPED)


def test_substrate_of_the_runs_env():
  assert scenarios.substrate_of_env(f'meltingpot/{CRAMPED}') == CRAMPED
  assert scenarios.substrate_of_env('meltingpot_scenario/clean_up_3') == (
      'clean_up')
  with pytest.raises(scenarios.ScenarioError,
                     match='needs runs trained on Melting Pot.*runs/oc was '
                     'trained on overcooked/cramped_room'):
    scenarios.substrate_of_env('overcooked/cramped_room', 'runs/oc')
  with pytest.raises(scenarios.ScenarioError, match='meltingpot/nope'):
    scenarios.substrate_of_env('meltingpot/nope')


def test_run_env_and_background_errors(tmp_path):
  with pytest.raises(scenarios.ScenarioError, match='config.json does not'):
    scenarios.run_env(str(tmp_path))
  (tmp_path / 'config.json').write_text('{not json')
  with pytest.raises(scenarios.ScenarioError, match='not a readable'):
    scenarios.run_env(str(tmp_path))
  assert scenarios.background('noop', [CRAMPED]) == 'noop'
  with pytest.raises(scenarios.ScenarioError,
                     match="bots, random, noop or a train.py run directory; "
                     "got 'nah'"):
    scenarios.background('nah', [CRAMPED])
  (tmp_path / 'config.json').write_text(json.dumps({'env': 'meltingpot/coins'}))
  with pytest.raises(scenarios.ScenarioError,
                     match=f'trained on coins, but the scenarios are of '
                     f'{CRAMPED}'):
    scenarios.background(str(tmp_path), [CRAMPED])


# ----------------------------------------------------------------------------
# The protocol, on a fake scenario with known rewards.
# ----------------------------------------------------------------------------

LENGTH = 3  # steps per episode


class FakeScenario(Environment):
  """``n`` focal players; on every step focal player ``i`` gets
  ``(action_i + 1) * (i + 1) + bonus``, ``bonus`` cycling through
  ``bonuses`` from one episode to the next."""

  def __init__(self, n, bonuses):
    self._n, self._bonuses = n, bonuses
    self._episode, self._t = -1, 0
    self.closed = False

  def spec(self):
    return EnvSpec(num_agents=self._n,
                   observation={'RGB': ArraySpec((2, 2, 3), np.dtype(np.uint8))},
                   num_actions=4, max_episode_steps=LENGTH)

  def _obs(self):
    return {'RGB': np.zeros((self._n, 2, 2, 3), np.uint8)}

  def reset(self):
    self._episode += 1
    self._t = 0
    return TimeStep(StepType.FIRST, np.zeros(self._n, np.float32),
                    np.float32(1), self._obs(), {})

  def step(self, actions):
    self._t += 1
    bonus = self._bonuses[self._episode % len(self._bonuses)]
    reward = ((np.asarray(actions) + 1) * (np.arange(self._n) + 1) +
              bonus).astype(np.float32)
    kind = StepType.LAST if self._t == LENGTH else StepType.MID
    return TimeStep(kind, reward, np.float32(1), self._obs(), {})

  def close(self):
    self.closed = True


class MemberIsAction:
  """Every slot plays its member's number as its action."""

  def reset(self, members):
    self._members = np.asarray(members)

  def step(self, timestep):
    assert set(timestep.observation) == {'RGB'}
    return self._members.copy()

  def observe_reward(self, reward):
    pass


def test_focal_per_capita_return_worked_by_hand(tmp_path):
  # Scenario a: 2 focal players, bonuses 0, 1, 2 over the 3 episodes.
  # Member m, episode e: player i's return is 3 * ((m + 1) * (i + 1) + e);
  # the per-capita return 3 * (1.5 (m + 1) + e): member 0 -> 4.5, 7.5, 10.5
  # (mean 7.5, sample std 3), member 1 -> 9, 12, 15 (mean 12, std 3).
  # Scenario b: 1 focal player, bonus 4 always: 3 * (m + 1 + 4) -> 15 and
  # 18 every episode (interval 0).
  built = {}

  def make_env(name):
    built[name] = FakeScenario(*{'sub_0': (2, [0, 1, 2]),
                                 'sub_1': (1, [4])}[name])
    return built[name]

  policies = {}

  def make_policy(spec, scenario):
    policies[scenario] = spec.num_agents
    return MemberIsAction()

  seen = []
  result = scenarios.evaluate_run(
      'pop', 'sub', ['sub_0', 'sub_1'], make_env, make_policy, size=2,
      num_episodes=3, progress=lambda *a: seen.append(a[:3]))
  ci = 1.96 * 3 / np.sqrt(3)
  np.testing.assert_allclose(result.episodes[0, 0], [4.5, 7.5, 10.5])
  np.testing.assert_allclose(result.episodes[1, 0], [9, 12, 15])
  np.testing.assert_allclose(result.mean, [[7.5, 15], [12, 18]])
  np.testing.assert_allclose(result.ci95, [[ci, 0], [ci, 0]])
  np.testing.assert_allclose(result.substrate_mean, [11.25, 15])
  assert policies == {'sub_0': 2, 'sub_1': 1}
  assert all(env.closed for env in built.values())
  assert seen == [('pop', 'sub_0', 0), ('pop', 'sub_0', 1),
                  ('pop', 'sub_1', 0), ('pop', 'sub_1', 1)]

  paths = scenarios.write_report(
      str(tmp_path), [result], {'pop': dict(exp_dir='/runs/pop')}, 'noop', 3)
  with open(paths['csv']) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['run', 'member', 'scenario',
                           'focal_per_capita_return', 'ci95', 'num_episodes']
  assert [(r['member'], r['scenario']) for r in rows] == [
      ('0', 'sub_0'), ('0', 'sub_1'), ('1', 'sub_0'), ('1', 'sub_1')]
  assert float(rows[2]['focal_per_capita_return']) == 12.
  assert float(rows[0]['ci95']) == pytest.approx(ci)
  with open(paths['json']) as f:
    doc = json.load(f)
  assert doc['metric'] == 'focal_per_capita_return'
  assert doc['background'] == 'noop' and doc['num_episodes'] == 3
  assert doc['runs']['pop']['exp_dir'] == '/runs/pop'
  assert doc['runs']['pop']['scenarios'] == ['sub_0', 'sub_1']
  assert [m['focal_per_capita_return'] for m in doc['substrate_mean']] == [
      11.25, 15.]
  with open(paths['markdown']) as f:
    md = f.read()
  assert '| scenario | pop[0] | pop[1] |' in md
  assert f'| sub_0 | 7.50 +- {ci:.2f} | 12.00 +- {ci:.2f} |' in md
  assert '| **11.25** | **15.00** |' in md
  with open(paths['heatmap'], 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_one_episode_has_no_interval():
  result = scenarios.summarize('r', 's', ['s_0'], np.array([[[2.]]]))
  assert result.mean[0, 0] == 2. and np.isnan(result.ci95[0, 0])
  with pytest.raises(ValueError, match='episodes must be'):
    scenarios.summarize('r', 's', ['s_0', 's_1'], np.zeros((1, 1, 1)))


# ----------------------------------------------------------------------------
# Permitted observations.
# ----------------------------------------------------------------------------

SPEC = {'RGB': ArraySpec((4, 4, 3), np.dtype(np.uint8)),
        'INVENTORY': ArraySpec((2,), np.dtype(np.float32)),
        'GLOBAL': ArraySpec((6, 6, 3), np.dtype(np.uint8))}


class FakeAlgorithm:
  """``act``'s action reads ``action_key``; its value estimate (an extra,
  not used to act) reads GLOBAL; its core state adds up INVENTORY."""

  def __init__(self, action_key):
    self.action_key = action_key

  def initial_core_state(self, n):
    return jnp.zeros((n,), jnp.float32)

  def act(self, params, inputs, core, key, greedy=False):
    del key, greedy
    x = inputs.observation[self.action_key].reshape(core.shape[0], -1)
    action = (jnp.sum(x.astype(jnp.float32), -1) * params['w']).astype(
        jnp.int32) % 3
    value = jnp.sum(inputs.observation['GLOBAL'].astype(jnp.float32))
    core = core + jnp.sum(inputs.observation['INVENTORY'], -1)
    return action, ActorExtras(logits=jnp.zeros((core.shape[0], 3)) + value), core


def params(population=2):
  return {'w': jnp.ones((population,), jnp.float32)}


def test_the_action_depends_only_on_what_it_reads():
  keys = scenarios.action_observation_keys(FakeAlgorithm('RGB'), params(),
                                           SPEC)
  assert keys == {'RGB', 'INVENTORY'}  # not GLOBAL: only the value reads it
  keys = scenarios.action_observation_keys(FakeAlgorithm('GLOBAL'), params(),
                                           SPEC)
  assert keys == {'GLOBAL', 'INVENTORY'}


def test_the_conservative_walk_agrees_on_separate_paths():
  def f(a, b, c):
    return a * 2, jnp.sum(c)
  jaxpr = jax.make_jaxpr(f)(1., 2., jnp.ones(3)).jaxpr
  assert scenarios._conservative_used_inputs(jaxpr, [True, True]) == [  # pylint: disable=protected-access
      True, False, True]
  assert scenarios._used_inputs(jaxpr, [True, False]) == [True, False, False]  # pylint: disable=protected-access


def fake_run(action_key):
  return scenarios.ScenarioRun(
      name='fake', exp_dir='', env=f'meltingpot/{CRAMPED}', substrate=CRAMPED,
      algorithm=FakeAlgorithm(action_key), params=params(),
      spec=EnvSpec(num_agents=2, observation=SPEC, num_actions=3),
      size=2, env_steps=0)


def scenario_spec(n=1, **changes):
  observation = {k: v for k, v in SPEC.items() if k != 'GLOBAL'}
  observation.update(changes)
  return EnvSpec(num_agents=n, observation=observation, num_actions=3)


def test_a_run_acting_on_global_is_refused():
  make = scenarios.focal_policy_factory(fake_run('GLOBAL'))
  with pytest.raises(scenarios.ScenarioError,
                     match='fake acts on GLOBAL, which Melting Pot does not '
                     'let focal players observe'):
    make(scenario_spec(), f'{CRAMPED}_0')


def test_a_scenario_of_other_shapes_is_refused():
  make = scenarios.focal_policy_factory(fake_run('RGB'))
  with pytest.raises(scenarios.ScenarioError,
                     match=r'acts on RGB of shape \(4, 4, 3\) uint8, but '
                     r'scenario s_0 gives \(8, 8, 3\) uint8'):
    make(scenario_spec(RGB=ArraySpec((8, 8, 3), np.dtype(np.uint8))), 's_0')


def test_focal_policy_sees_permitted_observations_and_zeros():
  make = scenarios.focal_policy_factory(fake_run('RGB'))
  policy = make(scenario_spec(n=2), f'{CRAMPED}_0')
  assert make(scenario_spec(n=2), f'{CRAMPED}_1') is policy  # one per size
  policy.reset(np.array([1, 1]))
  rgb = np.zeros((2, 4, 4, 3), np.uint8)
  rgb[0, 0, 0, 0], rgb[1, 0, 0, 0] = 1, 2
  observation = {'RGB': rgb, 'INVENTORY': np.ones((2, 2), np.float32),
                 'COLLECTIVE_REWARD': np.zeros(2, np.float32)}
  ts = TimeStep(StepType.FIRST, np.zeros(2, np.float32), np.float32(1),
                observation, {})
  # action = sum(RGB) * w % 3 for member 1 (w = 1).
  np.testing.assert_array_equal(policy.step(ts), [1, 2])
  passed = []

  class Recorder:

    def reset(self, members):
      pass

    def step(self, timestep):
      passed.append(timestep.observation)
      return np.zeros(2, np.int32)

    def observe_reward(self, reward):
      pass

  zeros = {'GLOBAL': np.zeros((2, 6, 6, 3), np.uint8)}
  focal = scenarios.FocalPolicy(Recorder(), keep=['RGB', 'INVENTORY'],
                                fill=zeros)
  focal.step(ts._replace(observation={**observation,
                                      'GLOBAL': np.ones((2, 6, 6, 3))}))
  assert set(passed[0]) == {'RGB', 'INVENTORY', 'GLOBAL'}
  assert not passed[0]['GLOBAL'].any()  # never the real world frame


def test_scenario_env_factory_builds_focal_players_without_global():
  if meltingpot.package_dir() is None:
    pytest.skip('dm-meltingpot is not installed')
  make = scenarios.scenario_env_factory('noop', seed=0, max_episode_steps=4)
  env = make('coins_0')
  try:
    spec = env.spec()
    assert spec.num_agents == 1 and spec.max_episode_steps == 4
    assert set(spec.observation) <= scenarios.PERMITTED_OBSERVATIONS
    assert 'GLOBAL' not in spec.observation
  finally:
    env.close()
  if not meltingpot.bots_installed():
    with pytest.raises(scenarios.ScenarioError,
                       match='--scenario_background=random'):
      scenarios.scenario_env_factory('bots')('coins_0')
