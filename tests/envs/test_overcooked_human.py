"""The 2019 human-human trials against our Overcooked: the recorded joint
actions, replayed from each trial's first recorded state under the 2019
cooking rules, reproduce every recorded state and the recorded score."""

import numpy as np
import pytest

pytest.importorskip('overcooked_ai_py')
pytest.importorskip('pandas')

from marl_jax.envs import overcooked  # pylint: disable=g-import-not-at-top
from marl_jax.envs import overcooked_human as human  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope='module')
def train_trials():
  return human.load_trials('train')


def _replay(trial, old_dynamics, steps=None):
  """``(first step whose state differs or None, team sparse return)``."""
  env = overcooked.Overcooked(trial.layout, horizon=10**6,
                              old_dynamics=old_dynamics)
  env.reset()
  snapshot = env.get_state()
  snapshot['state'] = trial.states[0]
  env.set_state(snapshot)
  first_bad, score = None, 0.
  for t in range(steps or trial.num_steps):
    ts = env.step(trial.actions[t])
    score += float(ts.info['sparse_reward'][0])
    if first_bad is None and (human.state_key(env.get_state()['state']) !=
                              human.state_key(trial.states[t + 1])):
      first_bad = t
  return first_bad, score


def test_splits_cover_the_five_layouts(train_trials):
  assert {t.layout for t in train_trials} == set(human.LAYOUTS)
  assert len(train_trials) == 39  # the cleaned train split's trials
  for t in train_trials:
    assert t.actions.shape == (t.num_steps, 2)
    assert len(t.states) == t.num_steps + 1
    assert t.actions.min() >= 0 and t.actions.max() < overcooked.NUM_ACTIONS
    # The recorded reward counts 5 per soup; ours 20.
    assert np.all(np.isin(t.sparse_reward, [0., 20., 40.]))


@pytest.mark.parametrize('layout', sorted(human.LAYOUTS))
def test_replay_reproduces_every_recorded_state_and_the_score(
    train_trials, layout):
  trial = next(t for t in train_trials if t.layout == layout)
  assert trial.score > 0
  first_bad, score = _replay(trial, old_dynamics=True)
  assert first_bad is None
  assert score == trial.score


def test_the_package_rules_diverge_at_the_first_full_pot(train_trials):
  # Under the package's rules a full pot waits for an interact: the replay
  # departs from the record where the first pot fills, and no soup is made.
  trial = next(t for t in train_trials if t.layout == 'cramped_room')
  first_bad, score = _replay(trial, old_dynamics=False, steps=300)
  assert first_bad is not None
  pot = [o for o in trial.states[first_bad + 1]['objects'] if o[0] == 'soup']
  assert any(len(o[2]) == 3 and o[3] == 1 for o in pot)  # just filled
  assert score == 0


def test_observations_encode_recorded_states_as_the_env_does(train_trials):
  trial = next(t for t in train_trials if t.layout == 'cramped_room')
  env = overcooked.Overcooked('cramped_room', old_dynamics=True)
  obs = human.observations(trial, env)['FEATURES']
  assert obs.shape == (trial.num_steps, 2, 96)
  # The trial starts where the layout does: its first observation is reset's.
  np.testing.assert_array_equal(obs[0], env.reset().observation['FEATURES'])
  # Later ones: the env stepped through the record observes the same.
  env.reset()
  snapshot = env.get_state()
  snapshot['state'] = trial.states[0]
  env.set_state(snapshot)
  for t in range(60):
    ts = env.step(trial.actions[t])
  np.testing.assert_array_equal(obs[60], ts.observation['FEATURES'])
  lossless = overcooked.Overcooked('cramped_room', observation='lossless')
  grid = human.observations(trial, lossless)['GRID']
  assert grid.shape == (trial.num_steps, 2, 5, 4, 26)


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match='split'):
    human.load_trials('validation')
  with pytest.raises(ValueError, match='overcooked/large_room has no human '
                     'data'):
    human.load_trials('train', 'large_room')
  with pytest.raises(ValueError, match='old_dynamics'):
    overcooked.Overcooked('cramped_room', old_dynamics='yes')
