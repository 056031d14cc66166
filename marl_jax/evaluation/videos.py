"""Videos: of a trained population (``train.py --record_video``), and of
evaluation episodes (``evaluate.py --videos``).

``record_crossplay`` and ``record_scenarios`` play *extra* episodes, after the
measured ones and with policies the caller has reseeded (and, for cross-play,
in another copy of the environment), so recording never changes a reported
number. Each GIF holds ``env.render()`` after the reset and after every step
(episode length + 1 frames at 10 fps; ``utils/video.write_video``). Names say
who played whom: ``<run>_m<i>__vs__<partner>_m<j>.gif`` (the focal member in
slot 0) and ``<run>_m<i>__on__<scenario>.gif``, under ``<out_dir>/videos``.

Frames are made for people to watch (``for_people``): every family's render
is enlarged by an integer factor, nearest neighbour (``upscale``: each pixel a
``k x k`` block, no blurring), until its short side is at least ``min_size``
pixels (``video_min_size`` of the config, ``min_size`` of ``record_crossplay``
and ``record_scenarios``; default 256: a Melting Pot world view of 40x72
becomes 280x504; a larger frame is never shrunk), and a caption strip under
it gives the step, each agent's return so far and who plays each seat
(``caption_strip``, in PIL's default font).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from marl_jax import algorithms
from marl_jax import run_dir
from marl_jax.envs import wrappers
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import policies
from marl_jax.utils import video

# The short side, in pixels, frames are enlarged to (at least).
DEFAULT_MIN_SIZE = 256
_BACKGROUND = (24, 24, 24)  # the caption strip's
_TEXT = (240, 240, 240)
_GAP = '   '  # between the caption's items on one line


def check_min_size(min_size, what: str = 'video_min_size') -> int:
  """``min_size`` as an int, or a ``ValueError`` naming ``what``."""
  if (isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer))
      or min_size <= 0):
    raise ValueError(f'{what} must be a positive integer (pixels of a video '
                     f'frame\'s short side), got {min_size!r}.')
  return int(min_size)


def scale_factor(height: int, width: int, min_size: int) -> int:
  """The smallest integer ``k >= 1`` with ``k * min(height, width) >=
  min_size`` (1: a frame already that large is kept, never shrunk)."""
  min_size = check_min_size(min_size)
  short = min(int(height), int(width))
  if short <= 0:
    raise ValueError(f'Cannot scale an empty frame ({height}x{width}).')
  return max(1, -(-min_size // short))


def upscale(frame: np.ndarray, min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
  """``frame`` [H, W, C] enlarged by ``scale_factor``, nearest neighbour:
  each pixel becomes a ``k x k`` block of itself (no new colours)."""
  frame = np.asarray(frame)
  if frame.ndim != 3:
    raise ValueError(f'A frame must be [H, W, C], got shape {frame.shape}.')
  k = scale_factor(frame.shape[0], frame.shape[1], min_size)
  if k == 1:
    return frame
  return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)


def _font(width: int):
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  size = max(11, width // 30)
  try:
    return ImageFont.load_default(size)
  except (TypeError, OSError, ImportError):  # no FreeType: the bitmap font
    return ImageFont.load_default()


def _number(x: float) -> str:
  x = float(x)
  if x == int(x) and abs(x) < 1e9:
    return str(int(x))
  return f'{x:.2f}'


def caption_items(step: int, returns: Sequence[float],
                  seats: Optional[Sequence[str]] = None) -> List[str]:
  """The caption's items: ``step <t>``, then per agent ``P<k> (who): <return>``
  (the first prefixed ``returns:``), ``who`` from ``seats`` when given."""
  items = [f'step {int(step)}']
  for k, r in enumerate(np.asarray(returns, np.float64).reshape(-1)):
    who = f' ({seats[k]})' if seats is not None and k < len(seats) else ''
    items.append(('returns: ' if k == 0 else '') + f'P{k}{who}: {_number(r)}')
  return items


def _wrap(items: Sequence[str], width: int, measure) -> List[str]:
  """``items`` packed greedily into lines at most ``width`` wide (an item
  wider than a line on its own is cut, ending ``..``)."""
  lines: List[str] = []
  for item in items:
    while measure(item) > width and len(item) > 2:
      item = item[:-3] + '..'
    if lines and measure(lines[-1] + _GAP + item) <= width:
      lines[-1] += _GAP + item
    else:
      lines.append(item)
  return lines


def caption_strip(items: Sequence[str], width: int,
                  num_lines: Optional[int] = None) -> np.ndarray:
  """A ``[H, width, 3]`` uint8 strip with ``items`` written on it (light on
  dark, wrapped to fit, no anti-aliasing so a GIF palette holds it
  exactly); ``num_lines`` (at least as many as the text needs) fixes ``H``.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  font = _font(width)
  ascent, descent = font.getmetrics()
  line_h = ascent + descent + 2
  pad = max(3, line_h // 4)
  lines = _wrap(items, width - 2 * pad, font.getlength)
  n = max(len(lines), num_lines or 0)
  image = Image.new('RGB', (width, n * line_h + 2 * pad), _BACKGROUND)
  draw = ImageDraw.Draw(image)
  draw.fontmode = '1'
  for i, line in enumerate(lines):
    draw.text((pad, pad + i * line_h), line, fill=_TEXT, font=font)
  return np.asarray(image, np.uint8)


def caption_lines(items: Sequence[str], width: int) -> int:
  """How many lines ``caption_strip(items, width)`` writes."""
  font = _font(width)
  pad = max(3, (sum(font.getmetrics()) + 2) // 4)
  return len(_wrap(items, width - 2 * pad, font.getlength))


def for_people(frames: Sequence[np.ndarray],
               captions: Optional[Sequence[Sequence[str]]] = None,
               min_size: int = DEFAULT_MIN_SIZE) -> List[np.ndarray]:
  """``frames`` enlarged (``upscale``) with, when given, ``captions[t]``
  (``caption_items``) in a strip under frame ``t``; the strip is as tall for
  every frame (the most lines any needs), so the video's size is fixed."""
  min_size = check_min_size(min_size)
  if captions is not None and len(captions) != len(frames):
    raise ValueError(f'{len(frames)} frames need as many captions, got '
                     f'{len(captions)}.')
  big = [upscale(f, min_size) for f in frames]
  if captions is None or not big:
    return big
  width = big[0].shape[1]
  n = max(caption_lines(c, width) for c in captions)
  return [np.concatenate([f, caption_strip(c, f.shape[1], n)], axis=0)
          for f, c in zip(big, captions)]


class CaptionRecorder(wrappers.Wrapper):
  """Keeps, at every ``render()``, the step and each agent's return so far,
  as the caption of that frame (``captions``, restarted by ``reset``).

  Wrap the environment an episode is played in with it, then give its
  ``captions`` with the frames to ``for_people``.
  """

  def __init__(self, env, seats: Optional[Sequence[str]] = None):
    super().__init__(env)
    self.seats = None if seats is None else list(seats)
    self.captions: List[List[str]] = []
    self._step = 0
    self._returns = np.zeros((env.spec().num_agents,))

  def reset(self):
    self._step = 0
    self._returns = np.zeros_like(self._returns)
    self.captions = []
    return self._env.reset()

  def step(self, actions):
    ts = self._env.step(actions)
    self._step += 1
    self._returns = self._returns + np.asarray(ts.reward, np.float64)
    return ts

  def render(self) -> np.ndarray:
    frame = self._env.render()
    self.captions.append(caption_items(self._step, self._returns, self.seats))
    return frame

  def close(self) -> None:
    """Leaves the wrapped environment open: its owner closes it."""


def record_population(config, exp_dir: str, num_episodes: int | None = None,
                      seed: int = 0) -> List[str]:
  """Records self-play episodes of every member from the run's latest checkpoint.

  Writes ``exp_dir/videos/member_<m>_step_<env steps>_ep<k>.gif`` (frames
  ``for_people``, at least ``config.video_min_size`` pixels on the short
  side) and returns the paths.
  """
  min_size = check_min_size(config.get('video_min_size', DEFAULT_MIN_SIZE))
  _, algorithm, params, meta = run_dir.load_run(exp_dir)
  env = algorithms.make_env(config)
  n = env.spec().num_agents
  policy = policies.PopulationPolicy(algorithm, params, n, greedy=False,
                                     seed=seed)
  out_dir = os.path.join(exp_dir, 'videos')
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  episodes = num_episodes or config.get('video_episodes', 1)
  step = int(meta.get('env_steps', 0))
  for member in range(config.population_size):
    recorder = CaptionRecorder(env, [f'm{member}'] * n)
    for k in range(episodes):
      stats, frames = policies.play_episode(
          recorder, policy, np.full((n,), member, np.int32), render=True)
      path = os.path.join(out_dir, f'member_{member}_step_{step}_ep{k}.gif')
      video.write_video(for_people(frames, recorder.captions, min_size), path)
      paths.append(path)
      print(f'video: member {member} episode {k}: return '
            f'{float(np.mean(stats["episode_return"])):.1f} -> {path}',
            flush=True)
  env.close()
  return paths


VIDEO_DIR = 'videos'
# Videos' policies and environments are seeded with the evaluation's seed
# plus this, apart from the measured episodes'.
SEED_OFFSET = 1_000_000


def file_stem(name: str) -> str:
  """``name`` with anything but letters, digits, ``._-`` replaced by ``-``
  (``scripted:random`` -> ``scripted-random``)."""
  return re.sub(r'[^A-Za-z0-9._-]+', '-', str(name)).strip('-') or 'x'


def video_pairs(rows: int, cols: int,
                limit: Optional[int] = None) -> List[Tuple[int, int]]:
  """The first ``limit`` (None: all) pairs ``(i, j)`` of a ``rows x cols``
  block, diagonal by diagonal: ``(i, (i + d) % cols)`` for ``d = 0, 1, ...``,
  so every row member gets a video before any gets a second one (and a
  population with itself starts with self-play)."""
  pairs = [(i, (i + d) % cols) for d in range(cols) for i in range(rows)]
  return pairs if limit is None else pairs[:limit]


def _write(out_dir: str, stem: str, frames, captions, min_size: int,
           used: set) -> str:
  name, k = stem, 1
  while name in used:
    k += 1
    name = f'{stem}_{k}'
  used.add(name)
  path = os.path.join(out_dir, VIDEO_DIR, name + '.gif')
  video.write_video(for_people(frames, captions, min_size), path)
  return path


def _progress(path: str, what: str) -> None:
  print(f'evaluate.py: video of {what}: {path}', file=sys.stderr, flush=True)


def record_crossplay(env, matches: Sequence[Tuple[object, object]],
                     out_dir: str, metric: str,
                     max_per_block: Optional[int] = None,
                     progress: Callable[[str, str], None] = _progress,
                     min_size: int = DEFAULT_MIN_SIZE
                     ) -> List[Dict[str, object]]:
  """One episode per pair of members of each ``(focal, partner)`` match.

  Args:
    env: the environment to play in (two agent slots; it must render).
    matches: ``(focal, partner)`` pairs of ``report.LoadedRun`` (anything with
      ``name``, ``policy``, ``size``) whose policies play in ``env``.
    out_dir: GIFs go to ``out_dir/videos``.
    metric: the episode statistic to note for each video.
    max_per_block: at most this many videos per match (``video_pairs``).
    progress: called with each path and who played.
    min_size: frames' short side in pixels, at least (``for_people``).

  Returns:
    One dict per video: the players, ``metric``'s value (mean over agents),
    ``steps`` and ``file`` (relative to ``out_dir``).
  """
  min_size = check_min_size(min_size)
  out, used = [], set()
  for focal, partner in matches:
    for i, j in video_pairs(focal.size, partner.size, max_per_block):
      recorder = CaptionRecorder(env, [f'{focal.name}[{i}]',
                                       f'{partner.name}[{j}]'])
      episode = crossplay.play_seated_episode(
          recorder, [(focal.policy, i), (partner.policy, j)], metric,
          render=True)
      who = f'{focal.name}[{i}] with {partner.name}[{j}]'
      path = _write(out_dir, f'{file_stem(focal.name)}_m{i}__vs__'
                    f'{file_stem(partner.name)}_m{j}', episode.frames,
                    recorder.captions, min_size, used)
      progress(path, who)
      out.append(dict(focal_run=focal.name, focal_member=i,
                      partner_run=partner.name, partner_member=j,
                      value=float(episode.values.mean()),
                      steps=len(episode.frames) - 1,
                      file=os.path.relpath(path, out_dir)))
  return out


def record_scenarios(run: str, scenarios: Sequence[str],
                     make_env: Callable[[str], object],
                     make_policy: Callable[..., object], size: int,
                     out_dir: str, max_per_scenario: Optional[int] = None,
                     seed: int = SEED_OFFSET,
                     progress: Callable[[str, str], None] = _progress,
                     min_size: int = DEFAULT_MIN_SIZE
                     ) -> List[Dict[str, object]]:
  """One episode per member (the first ``max_per_scenario``) of ``run`` in
  control of all focal players of each scenario.

  Args:
    run: the run's name.
    scenarios: scenario names.
    make_env: ``scenario -> Environment`` (closed here); give it its own seed.
    make_policy: ``(env_spec, scenario) -> Policy`` (reseeded with ``seed``
      when it has ``reseed``).
    size: population size.
    out_dir: GIFs go to ``out_dir/videos``.
    max_per_scenario: at most this many members per scenario.
    seed: the policy's seed for the videos.
    progress: called with each path and who played.
    min_size: frames' short side in pixels, at least (``for_people``).

  Returns:
    One dict per video: ``run``, ``member``, ``scenario``, the focal
    per-capita return ``value``, ``steps``, ``file`` (relative to
    ``out_dir``).
  """
  min_size = check_min_size(min_size)
  out, used = [], set()
  for scenario in scenarios:
    env = make_env(scenario)
    try:
      policy = make_policy(env.spec(), scenario)
      if callable(getattr(policy, 'reseed', None)):
        policy.reseed(seed)
      members = range(size if max_per_scenario is None else
                      min(size, max_per_scenario))
      for m in members:
        seats = [(policy, m)] * env.spec().num_agents
        recorder = CaptionRecorder(env, [f'{run}[{m}]'] * len(seats))
        episode = crossplay.play_seated_episode(recorder, seats,
                                                'episode_return', render=True)
        path = _write(out_dir, f'{file_stem(run)}_m{m}__on__'
                      f'{file_stem(scenario)}', episode.frames,
                      recorder.captions, min_size, used)
        progress(path, f'{run}[{m}] on {scenario}')
        out.append(dict(run=run, member=m, scenario=scenario,
                        value=float(episode.values.mean()),
                        steps=len(episode.frames) - 1,
                        file=os.path.relpath(path, out_dir)))
    finally:
      env.close()
  return out


def markdown_lines(videos: Sequence[Dict[str, object]],
                   metric: str) -> List[str]:
  """A Markdown section listing ``videos`` (as ``record_*`` return them)."""
  lines = ['', '## Videos', '',
           f'One extra episode each, recorded after the measured ones (not '
           f'counted above); `{metric}` of that episode.', '']
  for v in videos:
    if 'scenario' in v:
      who = f'{v["run"]}[{v["member"]}] on {v["scenario"]}'
    else:
      who = (f'{v["focal_run"]}[{v["focal_member"]}] with '
             f'{v["partner_run"]}[{v["partner_member"]}]')
    lines.append(f'- [{who}]({v["file"]}): {v["value"]:.2f} '
                 f'({v["steps"]} steps)')
  return lines
