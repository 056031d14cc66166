"""Cross-play on the toy game, with scripted populations worked by hand."""

import numpy as np
import pytest

from marl_jax import envs
from marl_jax.evaluation import crossplay

HORIZON, A = 6, 3


class Scripted:
  """Member 0 plays the cue; member m > 0 always plays action m - 1."""

  def __init__(self):
    self.members = None
    self.resets = 0

  def reset(self, members):
    self.members = np.asarray(members)
    self.resets += 1

  def step(self, ts):
    cue = int(np.argmax(ts.observation['FEATURES'][0, :A]))
    return np.array([cue if m == 0 else m - 1 for m in self.members])

  def observe_reward(self, reward):
    pass


def cues(episode):
  return [(3 * t + episode) % A for t in range(HORIZON)]


def test_cross_play_matrix_by_hand():
  env = envs.make('toy/cue_coordination', horizon=HORIZON, num_actions=A)
  pop_a, pop_b = Scripted(), Scripted()
  result = crossplay.cross_play(env, pop_a, 2, pop_b, 3, num_episodes=2)
  assert result.mean.shape == (2, 3) and result.episodes.shape == (2, 3, 2)
  # The env's episode counter runs through all pairs in order: pair (i, j)
  # uses episodes 2 * (3 i + j) and 2 * (3 i + j) + 1.
  expected = np.zeros((2, 3, 2))
  for i in range(2):
    for j in range(3):
      for e in range(2):
        episode = 2 * (3 * i + j) + e
        c = cues(episode)
        play = lambda m, t: c[t] if m == 0 else m - 1
        expected[i, j, e] = sum(play(i, t) == c[t] and play(j, t) == c[t]
                                for t in range(HORIZON))
  np.testing.assert_array_equal(result.episodes, expected)
  assert result.mean[0, 0] == HORIZON  # both follow the cue
  finite = result.ci95[np.isfinite(result.ci95)]
  assert (finite >= 0).all()


def test_seats_swap_between_episodes():
  """A proposes 0 for every slot and B proposes 1: the env must receive
  [0, 1] in even episodes (A in slot 0) and [1, 0] in odd ones."""
  from marl_jax.envs import wrappers  # pylint: disable=g-import-not-at-top

  class Recorder(wrappers.Wrapper):
    actions = []

    def step(self, actions):
      self.actions.append(tuple(int(a) for a in actions))
      return super().step(actions)

  env = Recorder(envs.make('toy/cue_coordination', horizon=2, num_actions=A))
  pop_a, pop_b = Scripted(), Scripted()  # member 1 plays action 0, 2 plays 1
  crossplay.cross_play(env, pop_a, 2, pop_b, 3, num_episodes=2)
  # Pair (1, 2) is the last: episodes 10 (A first) and 11 (B first).
  assert env.actions[-4:] == [(0, 1), (0, 1), (1, 0), (1, 0)]


def test_bad_inputs():
  env = envs.make('toy/cue_coordination')
  with pytest.raises(ValueError, match='positive'):
    crossplay.cross_play(env, Scripted(), 1, Scripted(), 1, num_episodes=0)
  with pytest.raises(ValueError, match='metric'):
    crossplay.play_seated(env, [(Scripted(), 0), (Scripted(), 0)],
                          metric='episode_bogus')


def test_cross_play_of_two_trained_runs(tmp_path):
  """Two tiny runs loaded from their run directories alone."""

  from configs import impala as impala_configs  # pylint: disable=g-import-not-at-top
  from marl_jax import run_dir  # pylint: disable=g-import-not-at-top
  from marl_jax.evaluation import policies  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime.launchers import single  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  pops = []
  for seed, size in ((0, 2), (1, 1)):
    c = impala_configs.get_config('toy')
    c.num_steps, c.seed, c.population_size = 400, seed, size
    c.progress_every_s = 1e9
    exp_dir = str(tmp_path / f'run{seed}')
    import os  # pylint: disable=g-import-not-at-top
    os.makedirs(exp_dir)
    with open(os.path.join(exp_dir, 'config.json'), 'w') as f:
      f.write(config_lib.to_json(c))
    single.run(c, exp_dir)
    _, algo, params, _ = run_dir.load_run(exp_dir)
    pops.append((policies.PopulationPolicy(algo, params, 2, seed=seed), size))

  env = envs.make('toy/cue_coordination')
  result = crossplay.cross_play(env, pops[0][0], pops[0][1], pops[1][0],
                                pops[1][1], num_episodes=2)
  assert result.mean.shape == (2, 1)
  assert np.isfinite(result.mean).all()
  assert ((0 <= result.episodes) & (result.episodes <= 16)).all()
