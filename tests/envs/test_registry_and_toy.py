"""The registry's errors, and the toy cooperative game by hand."""

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
