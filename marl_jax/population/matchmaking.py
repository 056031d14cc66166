"""Matchmaking: which population member controls each agent slot of an episode.

Pure functions of a numpy ``Generator`` (whose state is checkpointed with the
run). Each returns the ``[num_agents]`` member ids for one new episode.

  * ``self_play``: every slot of the episode is played by the same member;
    members take episodes in turn (``episode_index`` round-robin), so that each
    receives the same share of experience.
  * ``random``: every slot independently picks a member uniformly at random
    (marl-jax's random pairing across the population).
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

Matchmaker = Callable[[np.random.Generator, int, int, int], np.ndarray]


def self_play(rng: np.random.Generator, episode_index: int, num_agents: int,
              population_size: int) -> np.ndarray:
  del rng
  return np.full((num_agents,), episode_index % population_size, np.int32)


def random_pairing(rng: np.random.Generator, episode_index: int,
                   num_agents: int, population_size: int) -> np.ndarray:
  del episode_index
  return rng.integers(0, population_size, size=(num_agents,)).astype(np.int32)


MATCHMAKERS: Dict[str, Matchmaker] = {
    'self_play': self_play,
    'random': random_pairing,
}


def get(name: str) -> Matchmaker:
  if name not in MATCHMAKERS:
    raise ValueError(f'Unknown matchmaking {name!r}; valid: '
                     f'{", ".join(sorted(MATCHMAKERS))}.')
  return MATCHMAKERS[name]
