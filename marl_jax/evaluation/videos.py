"""Videos: of a trained population (``train.py --record_video``), and of
evaluation episodes (``evaluate.py --videos``).

``record_crossplay`` and ``record_scenarios`` play *extra* episodes, after the
measured ones and with policies the caller has reseeded (and, for cross-play,
in another copy of the environment), so recording never changes a reported
number. Each GIF holds ``env.render()`` after the reset and after every step
(episode length + 1 frames at 10 fps; ``utils/video.write_video``). Names say
who played whom: ``<run>_m<i>__vs__<partner>_m<j>.gif`` (the focal member in
slot 0) and ``<run>_m<i>__on__<scenario>.gif``, under ``<out_dir>/videos``.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from marl_jax import algorithms
from marl_jax import run_dir
from marl_jax.evaluation import crossplay
from marl_jax.evaluation import policies
from marl_jax.utils import video


def record_population(config, exp_dir: str, num_episodes: int | None = None,
                      seed: int = 0) -> List[str]:
  """Records self-play episodes of every member from the run's latest checkpoint.

  Writes ``exp_dir/videos/member_<m>_step_<env steps>_ep<k>.gif`` and returns
  the paths.
  """
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
    for k in range(episodes):
      stats, frames = policies.play_episode(
          env, policy, np.full((n,), member, np.int32), render=True)
      path = os.path.join(out_dir, f'member_{member}_step_{step}_ep{k}.gif')
      video.write_video(frames, path)
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


def _write(out_dir: str, stem: str, frames, used: set) -> str:
  name, k = stem, 1
  while name in used:
    k += 1
    name = f'{stem}_{k}'
  used.add(name)
  path = os.path.join(out_dir, VIDEO_DIR, name + '.gif')
  video.write_video(frames, path)
  return path


def _progress(path: str, what: str) -> None:
  print(f'evaluate.py: video of {what}: {path}', file=sys.stderr, flush=True)


def record_crossplay(env, matches: Sequence[Tuple[object, object]],
                     out_dir: str, metric: str,
                     max_per_block: Optional[int] = None,
                     progress: Callable[[str, str], None] = _progress
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

  Returns:
    One dict per video: the players, ``metric``'s value (mean over agents),
    ``steps`` and ``file`` (relative to ``out_dir``).
  """
  out, used = [], set()
  for focal, partner in matches:
    for i, j in video_pairs(focal.size, partner.size, max_per_block):
      episode = crossplay.play_seated_episode(
          env, [(focal.policy, i), (partner.policy, j)], metric, render=True)
      who = f'{focal.name}[{i}] with {partner.name}[{j}]'
      path = _write(out_dir, f'{file_stem(focal.name)}_m{i}__vs__'
                    f'{file_stem(partner.name)}_m{j}', episode.frames, used)
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
                     progress: Callable[[str, str], None] = _progress
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

  Returns:
    One dict per video: ``run``, ``member``, ``scenario``, the focal
    per-capita return ``value``, ``steps``, ``file`` (relative to
    ``out_dir``).
  """
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
        episode = crossplay.play_seated_episode(env, seats, 'episode_return',
                                                render=True)
        path = _write(out_dir, f'{file_stem(run)}_m{m}__on__'
                      f'{file_stem(scenario)}', episode.frames, used)
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
