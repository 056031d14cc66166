"""Episode frames to GIF (Pillow) or MP4 (imageio-ffmpeg, if installed).

A GIF has one palette for all its frames (``gif_palette``), taken from a
sample of up to 16 of them: their exact colours when there are at most 256
(a colour no sampled frame has maps to its nearest), else a median cut,
without dithering. Frames then differ only where something moved, which
Pillow's writer stores as small rectangles; with a palette per frame a
rendering of more than 256 colours is quantised differently every frame and
the file is several times larger.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def _check_frames(frames: Sequence[np.ndarray]) -> list:
  if frames is None or len(frames) == 0:
    raise ValueError('write_video needs at least one frame.')
  out = []
  shape = None
  for i, f in enumerate(frames):
    f = np.asarray(f)
    if f.dtype != np.uint8 or f.ndim != 3 or f.shape[-1] != 3:
      raise ValueError(f'frame {i} must be an [H, W, 3] uint8 array, got '
                       f'{f.dtype} {f.shape}.')
    if shape is not None and f.shape != shape:
      raise ValueError(f'frame {i} has shape {f.shape}, frame 0 has {shape}: '
                       'all frames must have the same size.')
    shape = f.shape
    out.append(f)
  return out


_PALETTE_SAMPLE_FRAMES = 16


def gif_palette(frames: Sequence[np.ndarray]):
  """A Pillow ``P`` image whose palette all of ``frames`` are mapped to."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  stride = max(1, -(-len(frames) // _PALETTE_SAMPLE_FRAMES))
  sample = np.concatenate([f.reshape(-1, 3) for f in frames[::stride]], 0)
  packed = np.unique((sample[:, 0].astype(np.uint32) << 16) |
                     (sample[:, 1].astype(np.uint32) << 8) | sample[:, 2])
  if len(packed) <= 256:  # the exact colours
    colours = np.stack([(packed >> 16) & 255, (packed >> 8) & 255,
                        packed & 255], -1).astype(np.uint8)
    colours = np.concatenate(
        [colours, np.repeat(colours[-1:], 256 - len(colours), 0)], 0)
    palette = Image.new('P', (1, 1))
    palette.putpalette(colours.reshape(-1).tolist())
    return palette
  return Image.fromarray(sample.reshape(-1, 1, 3)).quantize(
      256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _write_gif(frames: Sequence[np.ndarray], path: str, fps: int) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  palette = gif_palette(frames)
  images = [Image.fromarray(f).quantize(palette=palette,
                                        dither=Image.Dither.NONE)
            for f in frames]
  images[0].save(path, format='GIF', save_all=True,
                 append_images=images[1:], duration=1000. / fps, loop=0)


def write_video(frames: Sequence[np.ndarray], path: str, fps: int = 10) -> str:
  """Writes ``frames`` to ``path`` (``.gif`` or ``.mp4``); returns the path.

  Written to a temporary name first and renamed, so a failed write never
  leaves a truncated video behind.
  """
  frames = _check_frames(frames)
  if fps <= 0:
    raise ValueError(f'fps must be positive, got {fps}.')
  ext = os.path.splitext(path)[1].lower()
  if ext not in ('.gif', '.mp4'):
    raise ValueError(f'Video path must end in .gif or .mp4, got {path!r}.')
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp{ext}'
  try:
    if ext == '.gif':
      _write_gif(frames, tmp, fps)
    else:
      import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
      try:
        import imageio_ffmpeg  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      except ImportError as e:
        raise ValueError('Writing .mp4 needs imageio-ffmpeg '
                         '(pip install imageio-ffmpeg); or write a .gif.') from e
      imageio.mimsave(tmp, frames, format='FFMPEG', fps=fps)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
