"""Episode frames to GIF (imageio) or MP4 (imageio-ffmpeg, if installed)."""

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
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp{ext}'
  try:
    if ext == '.gif':
      imageio.mimsave(tmp, frames, format='GIF', duration=1000. / fps, loop=0)
    else:
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
