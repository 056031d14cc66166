"""Matchmaking: which population member controls each agent slot of an episode.

Pure functions of a numpy ``Generator`` (whose state is checkpointed with the
run). Each returns the ``[num_agents]`` member ids for one new episode.

  * ``self_play``: every slot of the episode is played by the same member;
    members take episodes in turn (``episode_index`` round-robin), so that each
    receives the same share of experience.
  * ``random``: every slot independently picks a member uniformly at random
    (marl-jax's random pairing across the population).
  * ``fsp``: fictitious self-play. One learning member (round-robin) takes a
    random seat; every other seat is a frozen snapshot drawn uniformly from
    those that exist, ids ``population_size + k`` for snapshot ``k`` (the
    member itself while there are none yet). Snapshot seats are not learned
    from.
  * ``psro``: as ``fsp``, but snapshots are drawn by ``snapshot_weights``,
    the meta-strategy of PSRO (Lanctot et al., 2017) over the snapshots, so
    the learner trains a best response to that mixture. The weights come
    from the runtime's PSRO loop (``runtime/launchers/single.py``); without them (as
    under the local and Ray launchers, which have no PSRO loop yet) this
    matchmaker refuses to run rather than silently fall back to self-play.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

Matchmaker = Callable[..., np.ndarray]


def self_play(rng: np.random.Generator, episode_index: int, num_agents: int,
              population_size: int, num_snapshots: int = 0) -> np.ndarray:
  del rng, num_snapshots
  return np.full((num_agents,), episode_index % population_size, np.int32)


def random_pairing(rng: np.random.Generator, episode_index: int,
                   num_agents: int, population_size: int,
                   num_snapshots: int = 0) -> np.ndarray:
  del episode_index, num_snapshots
  return rng.integers(0, population_size, size=(num_agents,)).astype(np.int32)


def fictitious_self_play(rng: np.random.Generator, episode_index: int,
                         num_agents: int, population_size: int,
                         num_snapshots: int = 0) -> np.ndarray:
  learner = episode_index % population_size
  if num_snapshots <= 0:
    return np.full((num_agents,), learner, np.int32)
  ids = population_size + rng.integers(0, num_snapshots, size=(num_agents,))
  ids[rng.integers(0, num_agents)] = learner
  return ids.astype(np.int32)


def psro(rng: np.random.Generator, episode_index: int, num_agents: int,
         population_size: int, num_snapshots: int = 0,
         snapshot_weights: Optional[np.ndarray] = None) -> np.ndarray:
  learner = episode_index % population_size
  if num_snapshots <= 0:
    return np.full((num_agents,), learner, np.int32)
  if snapshot_weights is None:
    raise ValueError('matchmaking=psro needs the meta-strategy of a PSRO '
                     'loop (snapshot_weights) once there are snapshots; it '
                     'runs under --launcher=single only.')
  w = np.asarray(snapshot_weights, np.float64)
  if w.shape != (num_snapshots,) or (w < 0).any() or not w.sum() > 0:
    raise ValueError(f'snapshot_weights must be {num_snapshots} non-negative '
                     f'weights with a positive sum, got {w}.')
  ids = population_size + rng.choice(num_snapshots, size=(num_agents,),
                                     p=w / w.sum())
  ids[rng.integers(0, num_agents)] = learner
  return ids.astype(np.int32)


MATCHMAKERS: Dict[str, Matchmaker] = {
    'self_play': self_play,
    'random': random_pairing,
    'fsp': fictitious_self_play,
    'psro': psro,
}


def get(name: str) -> Matchmaker:
  if name not in MATCHMAKERS:
    raise ValueError(f'Unknown matchmaking {name!r}; valid: '
                     f'{", ".join(sorted(MATCHMAKERS))}.')
  return MATCHMAKERS[name]
