"""Cross-play: every member of one population with every member of another.

A *population* here is anything with the ``PopulationPolicy`` protocol
(``reset(members)``, ``step(timestep) -> actions [N]``,
``observe_reward(reward)``) and a number of members. For a pair
``(i, j)`` half of the episodes seat member ``i`` of A in slot 0 and member
``j`` of B in slot 1, the other half the other way round, so that asymmetric
layouts do not favour one side. Each policy computes actions for every slot;
only its own seats are used.

Results are per-pair means over episodes of the mean over agents of one
episode statistic (``episode_return``, or ``episode_sparse_reward`` for
Overcooked's soup score), with a 95% normal-approximation interval. Each
side's own value is kept too (``seat_values``), as is whether every step's
rewards summed to zero over agents (``zero_sum``): what Elo ratings of
competitive games are computed from.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Protocol

import numpy as np

from marl_jax.envs.base import Environment


class Policy(Protocol):

  def reset(self, members: np.ndarray) -> None:
    ...

  def step(self, timestep) -> np.ndarray:
    ...

  def observe_reward(self, reward: np.ndarray) -> None:
    ...


class CrossPlayResult(NamedTuple):
  mean: np.ndarray  # [P_A, P_B]
  ci95: np.ndarray  # [P_A, P_B] half-width of the 95% interval
  episodes: np.ndarray  # [P_A, P_B, num_episodes] per-episode values
  metric: str
  # [P_A, P_B, num_episodes, 2]: the metric of A's seat and of B's seat.
  seat_values: Optional[np.ndarray] = None
  zero_sum: bool = False  # every step's rewards summed to 0 over agents


class SeatedEpisode(NamedTuple):
  values: np.ndarray  # [num_agents] the metric of each slot
  zero_sum: bool  # every step's rewards summed to 0 over agents
  # With render=True: env.render() after the reset and after every step
  # (episode length + 1 frames); else None.
  frames: Optional[list] = None


_ZERO_SUM_ATOL = 1e-6


def play_seated(env: Environment, seats, metric: str = 'episode_return',
                max_steps: Optional[int] = None) -> float:
  """One episode with ``seats[k] = (policy, member)`` controlling slot ``k``.

  Returns the mean over agents of ``metric``.
  """
  return float(play_seated_episode(env, seats, metric, max_steps).values.mean())


def play_seated_episode(env: Environment, seats,
                        metric: str = 'episode_return',
                        max_steps: Optional[int] = None,
                        render: bool = False) -> SeatedEpisode:
  """As ``play_seated``, but returns every slot's ``metric``, whether the
  rewards were zero-sum at every step and, with ``render``, the frames."""
  n = env.spec().num_agents
  if len(seats) != n:
    raise ValueError(f'{n} agent slots need {n} seats, got {len(seats)}.')
  policies = []
  for policy, member in seats:
    if not any(policy is p for p in policies):
      policies.append(policy)
  for p in policies:
    members = np.zeros((n,), np.int32)
    for k, (q, m) in enumerate(seats):
      if q is p:
        members[k] = m
    p.reset(members)
  info_key = metric[len('episode_'):] if metric.startswith('episode_') else None
  if metric != 'episode_return' and info_key not in env.spec().info_keys:
    raise ValueError(
        f'Unknown metric {metric!r}: use episode_return or one of '
        f'{["episode_" + k for k in env.spec().info_keys]}.')
  ts = env.reset()
  frames = [env.render()] if render else None
  total = np.zeros((n,))
  zero_sum = True
  steps = 0
  while not ts.last() and (max_steps is None or steps < max_steps):
    proposals = {id(p): np.asarray(p.step(ts)) for p in policies}
    actions = np.array([proposals[id(q)][k] for k, (q, _) in enumerate(seats)],
                       np.int32)
    ts = env.step(actions)
    for p in policies:
      p.observe_reward(ts.reward)
    total += ts.reward if metric == 'episode_return' else ts.info[info_key]
    zero_sum &= abs(float(np.sum(ts.reward))) <= _ZERO_SUM_ATOL
    steps += 1
    if render:
      frames.append(env.render())
  return SeatedEpisode(total, bool(zero_sum), frames)


def cross_play(env: Environment, pop_a: Policy, size_a: int, pop_b: Policy,
               size_b: int, num_episodes: int,
               metric: str = 'episode_return') -> CrossPlayResult:
  """Plays every pair ``(i in A, j in B)`` for ``num_episodes`` (two-player)."""
  if env.spec().num_agents != 2:
    raise ValueError('cross_play is for two-player environments; this one has '
                     f'{env.spec().num_agents} agents.')
  if num_episodes <= 0 or size_a <= 0 or size_b <= 0:
    raise ValueError('num_episodes and population sizes must be positive, got '
                     f'{num_episodes}, {size_a}, {size_b}.')
  values = np.zeros((size_a, size_b, num_episodes))
  seat_values = np.zeros((size_a, size_b, num_episodes, 2))
  zero_sum = True
  for i in range(size_a):
    for j in range(size_b):
      for e in range(num_episodes):
        a_first = e % 2 == 0
        seats = ([(pop_a, i), (pop_b, j)] if a_first else
                 [(pop_b, j), (pop_a, i)])
        episode = play_seated_episode(env, seats, metric)
        values[i, j, e] = episode.values.mean()
        seat_values[i, j, e] = (episode.values if a_first else
                                episode.values[::-1])
        zero_sum &= episode.zero_sum
  mean, ci = mean_ci95(values)
  return CrossPlayResult(mean, ci, values, metric, seat_values, bool(zero_sum))


def mean_ci95(values: np.ndarray):
  """``(mean, half-width of the 95% normal-approximation interval)`` over
  the last axis (episodes): ``1.96 * std (ddof=1) / sqrt(n)``; NaN for n = 1.
  """
  values = np.asarray(values, np.float64)
  n = values.shape[-1]
  mean = values.mean(-1)
  if n > 1:
    return mean, 1.96 * values.std(-1, ddof=1) / np.sqrt(n)
  return mean, np.full_like(mean, np.nan)
