"""The counter node: global step counts, episode statistics, the stop flag.

``Counter`` counts env and learner steps for the whole program, writes the
episodes the actors report to ``actor.csv`` (mean per member, with the policy
lag of the params they were played with), and owns the program's stop flag:
set when ``num_steps`` env steps are done or when anyone asks
(``request_stop``: the learner at its end, a launcher on Ctrl-C). Its counts
are part of the learner's checkpoint (``get_state``/``set_state``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import ml_collections
import numpy as np


class Counter:
  """Counts steps and episodes for the whole program; owns the stop flag."""

  def __init__(self, config_dict, exp_dir: str):
    config = ml_collections.ConfigDict(config_dict)
    self._num_steps = int(config.num_steps)
    self._population_size = int(config.population_size)
    self._exp_dir = exp_dir
    self._config = config
    self._lock = threading.Lock()
    self._env_steps = 0
    self._learner_steps = 0
    self._num_episodes = 0
    self._stop_requested = False
    self._recent: List[Dict[str, Any]] = []
    self._logger = None
    self._start = time.monotonic()

  def _log(self, stats: Sequence[Dict[str, Any]], env_steps: int,
           policy_lag: Optional[float]) -> None:
    from marl_jax.utils.logging import MetricLogger, wandb_options  # pylint: disable=g-import-not-at-top
    if self._logger is None:
      self._logger = MetricLogger(
          self._exp_dir, tensorboard=False,
          wandb=wandb_options(self._config, 'counter'))
    keys = [k for k in stats[0] if k.startswith('episode_')]
    row = {}
    for k in keys:
      row[k] = _member_means(stats, k, self._population_size)
    if policy_lag is not None:
      row['actor_policy_lag'] = float(policy_lag)
    self._logger.write('actor', env_steps, row)

  def increment(self, env_steps: int = 0, learner_steps: int = 0,
                episodes: Sequence[Dict[str, Any]] = (),
                policy_version: Optional[int] = None) -> Dict[str, Any]:
    """Adds counts and finished episodes; returns the totals and ``stop``.

    ``policy_version``: the learner step of the params an actor acted with;
    its lag behind the learner is logged with the episodes.
    """
    with self._lock:
      self._env_steps += int(env_steps)
      self._learner_steps += int(learner_steps)
      if episodes:
        self._num_episodes += len(episodes)
        self._recent.extend(episodes)
        del self._recent[:-50 * self._population_size]
        lag = (None if policy_version is None else
               self._learner_steps - int(policy_version))
        self._log(list(episodes), self._env_steps, lag)
      return self._counts()

  def _counts(self) -> Dict[str, Any]:
    return dict(env_steps=self._env_steps, learner_steps=self._learner_steps,
                num_episodes=self._num_episodes, stop=self._should_stop())

  def get(self) -> Dict[str, Any]:
    """Totals, the stop flag, and the mean recent return per member."""
    with self._lock:
      counts = self._counts()
      counts['member_returns'] = (
          _member_means(self._recent, 'episode_return', self._population_size)
          if self._recent else None)
      return counts

  def _should_stop(self) -> bool:
    return self._stop_requested or self._env_steps >= self._num_steps

  def should_stop(self) -> bool:
    with self._lock:
      return self._should_stop()

  def request_stop(self) -> None:
    with self._lock:
      self._stop_requested = True

  def get_state(self) -> Dict[str, Any]:
    with self._lock:
      return dict(env_steps=self._env_steps, learner_steps=self._learner_steps,
                  num_episodes=self._num_episodes)

  def set_state(self, state: Dict[str, Any]) -> None:
    with self._lock:
      self._env_steps = int(state['env_steps'])
      self._learner_steps = int(state['learner_steps'])
      self._num_episodes = int(state['num_episodes'])

  def close(self) -> None:
    if self._logger is not None:
      self._logger.close()


def _member_means(stats, key: str, population_size: int) -> np.ndarray:
  out = np.full((population_size,), np.nan)
  for m in range(population_size):
    values = [s[key] for s in stats if s['member'] == m and key in s]
    if values:
      out[m] = float(np.mean(values))
  return out
