"""Videos: frames written to GIF read back identical in number and size."""

import imageio.v2 as imageio
import numpy as np
import pytest

from marl_jax.utils import video


def test_gif_round_trip(tmp_path):
  frames = [np.full((12, 16, 3), 20 * i, np.uint8) for i in range(7)]
  path = video.write_video(frames, str(tmp_path / 'sub' / 'a.gif'), fps=5)
  back = imageio.mimread(path)
  assert len(back) == 7
  assert back[0].shape[:2] == (12, 16)
  assert not any(p.name.endswith('.tmp.gif') for p in (tmp_path / 'sub').iterdir())


@pytest.mark.parametrize('frames,match', [
    ([], 'at least one'),
    ([np.zeros((4, 4, 3), np.float32)], 'uint8'),
    ([np.zeros((4, 4), np.uint8)], r'\[H, W, 3\]'),
    ([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)], 'same size'),
])
def test_bad_frames(tmp_path, frames, match):
  with pytest.raises(ValueError, match=match):
    video.write_video(frames, str(tmp_path / 'x.gif'))
  assert not (tmp_path / 'x.gif').exists()


def test_bad_extension(tmp_path):
  with pytest.raises(ValueError, match='.gif or .mp4'):
    video.write_video([np.zeros((4, 4, 3), np.uint8)], str(tmp_path / 'x.avi'))


def test_gif_colours_round_trip_exactly_with_one_palette(tmp_path):
  rng = np.random.default_rng(0)
  colours = rng.integers(0, 256, (200, 3), np.uint8)  # <= 256 colours
  frames = [colours[rng.integers(0, 200, (24, 20))] for _ in range(40)]
  path = video.write_video(frames, str(tmp_path / 'c.gif'))
  back = [np.asarray(f)[..., :3] for f in imageio.mimread(path)]
  assert len(back) == 40
  for f, b in zip(frames, back):
    np.testing.assert_array_equal(f, b)


def test_gif_of_more_than_256_colours_is_close(tmp_path):
  ramp = np.arange(24 * 32, dtype=np.int32).reshape(24, 32)  # 768 colours
  frame = np.stack([ramp % 256, ramp // 3 % 256, 255 - ramp % 256],
                   -1).astype(np.uint8)
  frames = [frame, np.roll(frame, 1, axis=1)]
  path = video.write_video(frames, str(tmp_path / 'm.gif'))
  back = [np.asarray(f)[..., :3] for f in imageio.mimread(path)]
  assert len(back) == 2
  for f, b in zip(frames, back):
    assert np.abs(f.astype(int) - b).mean() < 8
