"""Videos of a trained population (``train.py --record_video``)."""

from __future__ import annotations

import os
from typing import List

import numpy as np

from marl_jax.evaluation import policies
from marl_jax.utils import config as config_lib
from marl_jax.utils import video


def record_population(config, exp_dir: str, num_episodes: int | None = None,
                      seed: int = 0) -> List[str]:
  """Records self-play episodes of every member from the run's latest checkpoint.

  Writes ``exp_dir/videos/member_<m>_step_<env steps>_ep<k>.gif`` and returns
  the paths.
  """
  run_config, algorithm, params, meta = policies.load_run(exp_dir)
  del run_config
  env = config_lib.make_env(config)
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
