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
