"""OpenSpiel's Kuhn and Leduc poker under the environment contract."""

import pickle

import numpy as np
import pytest

pytest.importorskip('pyspiel')

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax_contract
import pyspiel

from marl_jax import envs
from marl_jax.envs import openspiel
from marl_jax.types import StepType

NAMES = ('openspiel/kuhn_poker', 'openspiel/leduc_poker')
PASS, BET = 0, 1  # Kuhn's actions (pass/check/fold, bet/call).


def _legal_random(rng, ts):
  """One action per agent, uniform among its ACTION_MASK's allowed ones."""
  return np.asarray([rng.choice(np.flatnonzero(m))
                     for m in ts.observation['ACTION_MASK']], np.int32)


def _episodes(env, num_episodes, seed=0):
  """Random legal play: a list of episodes, each a list of TimeSteps."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(num_episodes):
    ts = env.reset()
    episode = [ts]
    while not ts.last():
      ts = env.step(_legal_random(rng, ts))
      episode.append(ts)
    out.append(episode)
  return out


@pytest.mark.parametrize('name', NAMES)
def test_contract_masks_and_spec(name):
  env = envs.make(name, seed=0)
  game = pyspiel.load_game(name.split('/')[1])
  spec = env.spec()
  assert spec.num_agents == 2
  assert spec.num_actions == game.num_distinct_actions()
  assert spec.max_episode_steps == game.max_game_length()
  assert spec.observation['FEATURES'].shape == tuple(
      game.information_state_tensor_shape())
  assert set(spec.observation) == {'FEATURES', 'ACTION_MASK'}
  lengths = []
  for episode in _episodes(env, 30):
    lengths.append(len(episode) - 1)
    for t, ts in enumerate(episode):
      jax_contract.check_timestep_against_spec(spec, ts)
      assert ts.step_type == (StepType.FIRST if t == 0 else StepType.LAST
                              if t == len(episode) - 1 else StepType.MID)
      mask = ts.observation['ACTION_MASK']
      if ts.last():
        assert ts.discount == 0.
        assert ts.reward.sum() == 0.  # zero-sum (Leduc may split the pot)
        assert ts.reward.any() or 'leduc' in name
        np.testing.assert_array_equal(mask, [[1] + [0] * (spec.num_actions - 1)]
                                      * 2)
        continue
      assert ts.discount == 1.
      np.testing.assert_array_equal(ts.reward, 0.)
      assert sorted(mask.sum(-1).tolist())[0] == 1.  # the idle player: one
  assert max(lengths) <= spec.max_episode_steps
  # After LAST, step starts a new episode whatever the actions.
  ts = env.step(np.zeros(2, np.int32))
  assert ts.step_type == StepType.FIRST


@pytest.mark.parametrize('name', NAMES)
def test_non_acting_player_has_one_legal_action_which_is_ignored(name):
  env = envs.make(name, seed=4)
  other = envs.make(name, seed=4)
  rng = np.random.default_rng(1)
  for _ in range(10):
    ts, ts_other = env.reset(), other.reset()
    while not ts.last():
      player = env.current_player
      state = env.state
      mask = ts.observation['ACTION_MASK']
      np.testing.assert_array_equal(mask[player],
                                    state.legal_actions_mask(player))
      assert mask[1 - player].tolist() == [1.] + [0.] * (len(mask[0]) - 1)
      for i in (0, 1):  # Both see their own information state.
        np.testing.assert_array_equal(ts.observation['FEATURES'][i],
                                      state.information_state_tensor(i))
      actions = _legal_random(rng, ts)
      scrambled = actions.copy()  # Any action of the idle player is ignored.
      scrambled[1 - player] = rng.integers(env.spec().num_actions)
      ts, ts_other = env.step(actions), other.step(scrambled)
      np.testing.assert_array_equal(ts.observation['FEATURES'],
                                    ts_other.observation['FEATURES'])
      np.testing.assert_array_equal(ts.reward, ts_other.reward)


def _deal(ts):
  """Kuhn: each player's card (0 J, 1 Q, 2 K) read from its FEATURES
  (player one-hot [2], card one-hot [3], then the betting)."""
  return [int(np.argmax(ts.observation['FEATURES'][i, 2:5])) for i in (0, 1)]


def _kuhn_returns(cards, line):
  """Player 0's return for a betting line of ``'p'``/``'b'``, by the rules:
  ante 1 each; a fold loses what is in; a showdown wins the pot."""
  if line in ('bp', 'pbp'):  # the second bettor's opponent folds
    return 1. if line == 'bp' else -1.
  stake = 2. if 'b' in line else 1.  # 'pp': 1; 'bb', 'pbb': 2
  return stake if cards[0] > cards[1] else -stake


def test_kuhn_episodes_by_hand():
  env = envs.make('openspiel/kuhn_poker', seed=11)
  seen = set()
  for episode in range(40):
    line = ('pp', 'bp', 'bb', 'pbp', 'pbb')[episode % 5]
    ts = env.reset()
    cards = _deal(ts)
    assert cards[0] != cards[1]
    assert env.state.history()[:2] == cards  # the deal the env drew
    for t, move in enumerate(line):
      player = t % 2
      assert env.current_player == player
      actions = np.zeros(2, np.int32)
      actions[player] = BET if move == 'b' else PASS
      ts = env.step(actions)
      assert ts.last() == (t == len(line) - 1)
    expected = _kuhn_returns(cards, line)
    np.testing.assert_array_equal(ts.reward, [expected, -expected])
    assert ts.reward.dtype == np.float32 and ts.discount == 0.
    seen.add((tuple(cards), line))
  assert len(seen) > 20  # many deals and lines, both winners


def test_kuhn_known_deal_by_stepping_chance():
  # K to player 0, J to player 1; player 0 checks, 1 bets, 0 calls: +2.
  env = envs.make('openspiel/kuhn_poker', seed=0)
  env.reset()
  snapshot = env.get_state()
  snapshot['history'] = [2, 0]  # the two chance moves
  env.set_state(snapshot)
  assert env.current_player == 0
  env.step(np.array([PASS, 0]))
  env.step(np.array([0, BET]))
  ts = env.step(np.array([BET, 0]))
  assert ts.last()
  np.testing.assert_array_equal(ts.reward, [2., -2.])


@pytest.mark.parametrize('name', NAMES)
def test_reset_is_reproducible_with_the_seed(name):
  def deals(env, n=12):
    return [tuple(env.reset().observation['FEATURES'].ravel()) for _ in
            range(n)]

  a, b = envs.make(name, seed=5), envs.make(name, seed=5)
  first = deals(a)
  assert first == deals(b)
  assert first != deals(envs.make(name, seed=6))
  assert len(set(first)) > 1
  a.reseed(5)
  assert deals(a) == first
  # Whole episodes too (Leduc deals a public card mid-game).
  x = _episodes(envs.make(name, seed=9), 5)
  y = _episodes(envs.make(name, seed=9), 5)
  for u, v in zip(x, y):
    assert len(u) == len(v)
    for s, t in zip(u, v):
      np.testing.assert_array_equal(s.observation['FEATURES'],
                                    t.observation['FEATURES'])
      np.testing.assert_array_equal(s.reward, t.reward)


def test_snapshot_resumes_exactly():
  env = envs.make('openspiel/leduc_poker', seed=2)
  rng = np.random.default_rng(0)
  ts = env.reset()
  ts = env.step(_legal_random(rng, ts))
  snapshot = pickle.loads(pickle.dumps(env.get_state()))
  actions, first = [], []
  for _ in range(25):  # across episode ends: later deals come from the rng
    actions.append(_legal_random(rng, ts))
    ts = env.step(actions[-1])
    first.append(ts)
  assert sum(ts.last() for ts in first) >= 2
  other = envs.make('openspiel/leduc_poker')  # unseeded
  other.set_state(snapshot)
  for a, x in zip(actions, first):
    y = other.step(a)
    assert x.step_type == y.step_type
    np.testing.assert_array_equal(x.reward, y.reward)
    for k in x.observation:
      np.testing.assert_array_equal(x.observation[k], y.observation[k])
  with pytest.raises(ValueError, match='get_state'):
    other.set_state({'history': []})
  with pytest.raises(ValueError, match='leduc_poker'):
    envs.make('openspiel/kuhn_poker').set_state(snapshot)


def test_illegal_and_malformed_actions_raise():
  env = envs.make('openspiel/leduc_poker', seed=0)
  ts = env.reset()
  player = env.current_player
  assert ts.observation['ACTION_MASK'][player, 0] == 0.  # no bet: no fold
  actions = np.ones(2, np.int32)
  actions[player] = 0
  with pytest.raises(ValueError, match='legal actions: 1=Call, 2=Raise'):
    env.step(actions)
  with pytest.raises(ValueError, match='actions'):
    env.step(np.array([0, 5]))
  with pytest.raises(ValueError, match='actions'):
    env.step(np.array([0.5, 1.]))


def test_bad_games_and_arguments():
  with pytest.raises(envs.UnknownEnvironmentError) as e:
    envs.make('openspiel/kuhn_pokr')
  assert 'openspiel/kuhn_poker' in str(e.value)
  assert 'openspiel/leduc_poker' in str(e.value)
  with pytest.raises(ValueError, match='has 3 players'):
    envs.make('openspiel/kuhn_poker', players=3)
  with pytest.raises(ValueError, match="Unknown parameter 'foo'"):
    envs.make('openspiel/kuhn_poker', foo=1)
  with pytest.raises(ValueError, match='seed'):
    envs.make('openspiel/kuhn_poker', seed=-1)
  with pytest.raises(ValueError, match='not turn-based'):
    openspiel.OpenSpielEnvironment('goofspiel')
  with pytest.raises(ValueError, match='not zero-sum'):
    openspiel.OpenSpielEnvironment('tiny_hanabi')
  with pytest.raises(ValueError, match='kuhn_poker, leduc_poker'):
    openspiel.OpenSpielEnvironment('no_such_game')
  # A loaded game works too, and its parameters show in the repr.
  env = openspiel.OpenSpielEnvironment(
      pyspiel.load_game('leduc_poker', {'suit_isomorphism': True}), seed=0)
  assert 'suit_isomorphism=True' in repr(env)


def test_exported_kuhn_passes_parallel_api_test():
  pytest.importorskip('pettingzoo')
  from pettingzoo.test import parallel_api_test  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import pettingzoo_export  # pylint: disable=g-import-not-at-top
  par_env = pettingzoo_export.to_parallel_env(
      envs.make('openspiel/kuhn_poker', seed=0))
  # Kuhn's two actions are legal at every decision, and the idle player's
  # action is ignored, so the test's unmasked random actions are valid.
  parallel_api_test(par_env, num_cycles=50)
  obs, _ = par_env.reset(seed=3)
  assert set(obs['agent_0']) == {'FEATURES', 'ACTION_MASK'}
  for _ in range(3):
    obs, rewards, term, trunc, _ = par_env.step({a: 1 for a in par_env.agents})
    if not par_env.agents:
      break
  # Bet, call: a showdown for 2.
  assert sorted(rewards.values()) == [-2., 2.]
  assert all(term.values()) and not any(trunc.values())
