"""Evaluation videos: which pairs, their names, frames, and unchanged numbers."""

import types

import imageio.v2 as imageio
import numpy as np

from marl_jax import envs
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import scripted
from marl_jax.evaluation import videos

HORIZON = 16  # the toy game's default


def test_video_pairs_go_diagonal_by_diagonal():
  assert videos.video_pairs(2, 2) == [(0, 0), (1, 1), (0, 1), (1, 0)]
  assert videos.video_pairs(3, 1) == [(0, 0), (1, 0), (2, 0)]
  assert videos.video_pairs(3, 1, 2) == [(0, 0), (1, 0)]
  # Every pair once; every row before any row gets a second.
  pairs = videos.video_pairs(2, 4)
  assert sorted(pairs) == [(i, j) for i in range(2) for j in range(4)]
  assert [i for i, _ in pairs[:2]] == [0, 1]
  assert videos.video_pairs(3, 5, 4)[:3] == [(0, 0), (1, 1), (2, 2)]


def test_file_stems():
  assert videos.file_stem('scripted:random') == 'scripted-random'
  assert videos.file_stem('meltingpot_bots:coins__x_0') == (
      'meltingpot_bots-coins__x_0')
  assert videos.file_stem('pop_s1.v2') == 'pop_s1.v2'


def test_rendering_an_episode_changes_nothing_but_gives_its_frames():
  env = envs.make('toy/cue_coordination')
  runs = []
  for render in (False, True):
    a = scripted.make('random', env, seed=3)
    b = scripted.make('random', env, seed=4)
    runs.append(crossplay.play_seated_episode(
        envs.make('toy/cue_coordination'), [(a, 0), (b, 0)],
        'episode_coordinated', render=render))
  assert runs[0].frames is None
  np.testing.assert_array_equal(runs[0].values, runs[1].values)
  assert len(runs[1].frames) == HORIZON + 1  # the reset, then every step
  assert runs[1].frames[0].dtype == np.uint8


def _run(name, policy, size):
  return types.SimpleNamespace(name=name, policy=policy, size=size)


class MemberIsAction:
  """Every slot plays its member's number."""

  def reset(self, members):
    self._members = np.asarray(members)

  def step(self, timestep):
    del timestep
    return self._members.copy()

  def observe_reward(self, reward):
    del reward


def test_record_crossplay_names_who_played_whom(tmp_path):
  env = envs.make('toy/cue_coordination')
  pop = _run('pop', MemberIsAction(), 2)
  rand = _run('scripted:random', scripted.make('random', env, seed=0), 1)
  got = videos.record_crossplay(env, [(pop, pop), (pop, rand)],
                                str(tmp_path), 'episode_return',
                                max_per_block=3, progress=lambda *a: None)
  assert [v['file'] for v in got] == [
      'videos/pop_m0__vs__pop_m0.gif', 'videos/pop_m1__vs__pop_m1.gif',
      'videos/pop_m0__vs__pop_m1.gif',
      'videos/pop_m0__vs__scripted-random_m0.gif',
      'videos/pop_m1__vs__scripted-random_m0.gif']
  assert got[2] == dict(focal_run='pop', focal_member=0, partner_run='pop',
                        partner_member=1, value=got[2]['value'],
                        steps=HORIZON, file='videos/pop_m0__vs__pop_m1.gif')
  # The cue cycles through the actions: both play 0 -> 4 hits in 16 steps
  # (episode 0's cue is 0 at steps 0, 4, 8, 12); 0 and 1 never agree.
  assert got[0]['value'] == 4. and got[2]['value'] == 0.
  for v in got:
    frames = imageio.mimread(str(tmp_path / v['file']))
    assert len(frames) == HORIZON + 1
  lines = videos.markdown_lines(got, 'episode_return')
  assert '## Videos' in lines
  assert ('- [pop[0] with pop[1]](videos/pop_m0__vs__pop_m1.gif): 0.00 '
          f'({HORIZON} steps)') in lines


def test_record_scenarios_one_video_per_member_and_scenario(tmp_path):
  made, closed = [], []

  class Env(type(envs.make('toy/cue_coordination'))):

    def close(self):
      closed.append(self)

  def make_env(scenario):
    made.append(scenario)
    return Env()

  reseeded = []
  policy = MemberIsAction()
  policy.reseed = reseeded.append
  got = videos.record_scenarios(
      'run', ['s_0', 's_1'], make_env, lambda spec, scenario: policy, 3,
      str(tmp_path), max_per_scenario=2, seed=7, progress=lambda *a: None)
  assert [v['file'] for v in got] == [
      'videos/run_m0__on__s_0.gif', 'videos/run_m1__on__s_0.gif',
      'videos/run_m0__on__s_1.gif', 'videos/run_m1__on__s_1.gif']
  assert made == ['s_0', 's_1'] and len(closed) == 2
  assert reseeded == [7, 7]
  assert got[0]['value'] == 4. and got[0]['steps'] == HORIZON
