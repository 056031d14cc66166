"""Evaluation videos: which pairs, their names, frames, unchanged numbers, and
frames people can watch (enlarged, nearest neighbour, with a caption)."""

import types

import imageio.v2 as imageio
import ml_collections
import numpy as np
import pytest

from marl_jax import envs
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import scripted
from marl_jax.evaluation import videos
from marl_jax.utils import config as config_lib

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


# Frames for people: nearest-neighbour enlargement and a caption strip.


def _nearest_reference(frame, k):
  """Output pixel (y, x) is input pixel (y // k, x // k)."""
  h, w = frame.shape[:2]
  out = np.empty((h * k, w * k) + frame.shape[2:], frame.dtype)
  for y in range(h * k):
    for x in range(w * k):
      out[y, x] = frame[y // k, x // k]
  return out


def test_upscale_is_exact_nearest_neighbour():
  frame = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
  big = videos.upscale(frame, min_size=20)  # short side 5 -> k = 4
  assert big.shape == (20, 28, 3) and big.dtype == np.uint8
  np.testing.assert_array_equal(big, _nearest_reference(frame, 4))
  # Each source pixel is a 4 x 4 block of itself; no new colours.
  blocks = big.reshape(5, 4, 7, 4, 3)
  np.testing.assert_array_equal(blocks, np.broadcast_to(
      frame[:, None, :, None], blocks.shape))


@pytest.mark.parametrize('shape,k', [
    ((40, 72), 7),  # Melting Pot's world view: 280 x 504
    ((240, 225), 2),  # Overcooked-AI's render: 480 x 450
    ((32, 32), 8),  # the toy games'
    ((1, 3), 256),
    ((255, 900), 2),
])
def test_short_side_reaches_the_minimum_with_the_smallest_factor(shape, k):
  frame = np.zeros(shape + (3,), np.uint8)
  big = videos.upscale(frame, 256)
  assert big.shape == (shape[0] * k, shape[1] * k, 3)
  assert min(big.shape[:2]) >= 256 > (k - 1) * min(shape)


@pytest.mark.parametrize('shape', [(256, 256), (300, 400), (512, 260)])
def test_frames_already_large_are_not_shrunk(shape):
  frame = np.random.default_rng(1).integers(0, 256, shape + (3,), np.uint8)
  assert videos.scale_factor(*shape, 256) == 1
  np.testing.assert_array_equal(videos.upscale(frame, 256), frame)
  assert videos.for_people([frame])[0].shape == frame.shape


@pytest.mark.parametrize('bad', [0, -3, 2.5, None, True, '256'])
def test_bad_min_size_is_a_clear_error(bad):
  frame = np.zeros((4, 4, 3), np.uint8)
  with pytest.raises(ValueError, match='video_min_size must be a positive'):
    videos.upscale(frame, bad)
  with pytest.raises(ValueError, match='video_min_size'):
    videos.for_people([frame], [['step 0']], bad)


def test_bad_video_min_size_in_a_config_names_the_key():
  config = ml_collections.ConfigDict(dict(
      launcher='single', replay_max_size=8, batch_size=1,
      num_learner_devices=0, video_min_size=0))
  with pytest.raises(config_lib.ConfigError, match='video_min_size'):
    config_lib.validate(config)


def test_caption_strip_adds_rows_with_text_under_the_frame():
  frame = np.random.default_rng(2).integers(0, 256, (40, 72, 3), np.uint8)
  items = videos.caption_items(12, [3., 0.5], ['pop[0]', 'pop[1]'])
  assert items == ['step 12', 'returns: P0 (pop[0]): 3', 'P1 (pop[1]): 0.50']
  strip = videos.caption_strip(items, 504)
  assert strip.dtype == np.uint8 and strip.shape[1:] == (504, 3)
  (out,) = videos.for_people([frame], [items], 256)
  assert out.shape == (280 + strip.shape[0], 504, 3)
  np.testing.assert_array_equal(out[:280], videos.upscale(frame, 256))
  np.testing.assert_array_equal(out[280:], strip)
  # The text: light pixels on the dark strip, across much of its width.
  text = np.all(strip > 200, axis=-1)
  assert text.sum() > 100
  assert np.ptp(np.flatnonzero(text.any(axis=0))) > 200
  # A strip without text is blank.
  assert not np.any(videos.caption_strip([], 504) > 200)


def test_caption_strip_is_as_tall_in_every_frame_of_a_video():
  frames = [np.zeros((32, 32, 3), np.uint8)] * 2
  short = videos.caption_items(0, [0., 0.])
  long = videos.caption_items(9, [1.25] * 6, [f'a_long_run_name[{k}]'
                                              for k in range(6)])
  assert videos.caption_lines(long, 256) > videos.caption_lines(short, 256)
  out = videos.for_people(frames, [short, long], 256)
  assert out[0].shape == out[1].shape
  assert out[0].shape[0] == 256 + videos.caption_strip(
      long, 256).shape[0]
  with pytest.raises(ValueError, match='2 frames need as many captions'):
    videos.for_people(frames, [short], 256)


def test_recorded_video_frames_are_enlarged_and_captioned(tmp_path):
  """The cheapest producer end to end: the toy game's 32 x 32 frames become
  256 x 256, with the step and both seats' returns under each."""
  env = envs.make('toy/cue_coordination')
  pop = _run('pop', MemberIsAction(), 1)
  (v,) = videos.record_crossplay(env, [(pop, pop)], str(tmp_path),
                                 'episode_return', progress=lambda *a: None)
  frames = [np.asarray(f)[..., :3] for f in
            imageio.mimread(str(tmp_path / v['file']))]
  assert len(frames) == HORIZON + 1
  strip_h = videos.caption_strip(['step 16'], 256).shape[0]
  assert frames[0].shape == (256 + strip_h, 256, 3)
  # Nearest neighbour: 8 x 8 blocks, the colours of the toy's own render.
  raw = envs.make('toy/cue_coordination')
  raw.reset()
  np.testing.assert_array_equal(frames[0][:256],
                                videos.upscale(raw.render(), 256))
  # What the captions said: step t and the returns so far (both play 0,
  # the cue is 0 at steps 0, 4, 8, 12: a hit pays 1 to each seat).
  recorder = videos.CaptionRecorder(env, ['pop[0]', 'pop[0]'])
  crossplay.play_seated_episode(recorder, [(pop.policy, 0)] * 2,
                                render=True)
  assert recorder.captions[0] == videos.caption_items(0, [0, 0],
                                                      ['pop[0]'] * 2)
  assert recorder.captions[-1][0] == f'step {HORIZON}'
  assert recorder.captions[-1][1] == f'returns: P0 (pop[0]): {v["value"]:g}'
