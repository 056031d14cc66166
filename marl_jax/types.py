"""Shared data types. NamedTuples only: every part of marl_jax speaks these.

Conventions (see DESIGN.md):
  * every per-agent array carries a leading ``[num_agents]`` axis;
  * observations are dicts of arrays keyed by upper-case names (``FEATURES``,
    ``GRID``, ``RGB``, ``GLOBAL`` ...);
  * ``step_type`` and ``discount`` follow dm_env: a ``LAST`` step with discount
    0 is a termination, with discount 1 a truncation (time limit).
"""

from __future__ import annotations

import enum
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

Array = Any  # np.ndarray or jax.Array
PyTree = Any


class StepType(enum.IntEnum):
  """As dm_env.StepType."""
  FIRST = 0
  MID = 1
  LAST = 2


class TimeStep(NamedTuple):
  """One step of a multi-agent environment.

  Attributes:
    step_type: scalar int (``StepType``).
    reward: ``[num_agents]`` float32, reward received on arriving here (0 on FIRST).
    discount: scalar float32, 0 on termination, 1 otherwise.
    observation: dict of ``[num_agents, ...]`` arrays.
    info: dict of extra per-agent ``[num_agents]`` arrays that are not for the
      policy (e.g. ``sparse_reward`` and ``shaped_reward`` in Overcooked). Used for
      logging only; an environment must return the same keys on every step.
  """
  step_type: Array
  reward: Array
  discount: Array
  observation: Mapping[str, Array]
  info: Mapping[str, Array] = {}

  def first(self) -> bool:
    return int(self.step_type) == StepType.FIRST

  def mid(self) -> bool:
    return int(self.step_type) == StepType.MID

  def last(self) -> bool:
    return int(self.step_type) == StepType.LAST


class ArraySpec(NamedTuple):
  """Shape and dtype of one observation entry *for one agent* (no agent axis)."""
  shape: tuple
  dtype: Any

  def zeros(self, leading: tuple = ()) -> np.ndarray:
    return np.zeros(tuple(leading) + tuple(self.shape), dtype=self.dtype)


class EnvSpec(NamedTuple):
  """What an algorithm needs to know about an environment.

  Attributes:
    num_agents: number of agent slots.
    observation: dict name -> ``ArraySpec`` of one agent's observation entry.
    num_actions: size of the (shared) discrete action space.
    max_episode_steps: the time limit, if any.
    info_keys: keys of ``TimeStep.info``.
    zero_sum: the agents' rewards sum to 0 in every step (e.g. two-player
      poker), so a team's summed reward carries nothing to learn from.
  """
  num_agents: int
  observation: Mapping[str, ArraySpec]
  num_actions: int
  max_episode_steps: Optional[int] = None
  info_keys: tuple = ()
  zero_sum: bool = False


class Trajectory(NamedTuple):
  """A batch of fixed-length sequences for one population member.

  Leading axes ``[batch, T + 1]`` (batch-major). Index ``t`` holds the time step
  ``x_t`` as the environment returned it (so ``reward[t]`` and ``discount[t]``
  arrived *with* ``observation[t]``) and what the behaviour policy did there
  (``action[t]``, ``behaviour_logits[t]``). An action taken on a ``LAST`` step is
  a placeholder: the next index is the ``FIRST`` step of a new episode, and
  learners must mask that transition. Consecutive sequences overlap by one step,
  as Acme's sequence adder writes them for IMPALA.

  Attributes:
    observation: dict of ``[B, T+1, ...]``.
    prev_action: ``[B, T+1]`` int32, the agent's previous action (0 after FIRST).
    prev_reward: ``[B, T+1]`` float32, the agent's previous reward.
    action: ``[B, T+1]`` int32.
    reward: ``[B, T+1]`` float32.
    discount: ``[B, T+1]`` float32.
    step_type: ``[B, T+1]`` int32.
    behaviour_logits: ``[B, T+1, num_actions]`` float32.
    mask: ``[B, T+1]`` float32, 1 on real steps and 0 on the padding that fills
      a sequence after its episode's ``LAST`` step (sequences never cross
      episodes, so each belongs to one member).
    core_state: the recurrent state at index 0, ``[B, ...]`` leaves.
    policy_version: ``[B]`` int32, learner step of the params that acted.
  """
  observation: Mapping[str, Array]
  prev_action: Array
  prev_reward: Array
  action: Array
  reward: Array
  discount: Array
  step_type: Array
  behaviour_logits: Array
  mask: Array
  core_state: PyTree
  policy_version: Array


class EpisodeBatch(NamedTuple):
  """Whole episodes of all agents of one environment together (QMIX, VDN).

  Leading axes ``[batch, T+1]`` then, for per-agent fields, ``[num_agents]``.
  Index ``t`` holds time step ``x_t`` exactly as in ``Trajectory``
  (``reward[t]`` and ``discount[t]`` arrived with ``observation[t]``); index 0
  is the episode's ``FIRST`` step and ``T`` is the longest episode the table
  holds. Steps after the episode's ``LAST`` step are padding (``mask`` 0).

  Attributes:
    observation: dict of ``[B, T+1, N, ...]``.
    prev_action: ``[B, T+1, N]`` int32, each agent's previous action (0 on
      FIRST).
    action: ``[B, T+1, N]`` int32 (a placeholder on ``LAST`` and padding).
    reward: ``[B, T+1, N]`` float32.
    discount: ``[B, T+1]`` float32.
    step_type: ``[B, T+1]`` int32.
    mask: ``[B, T+1]`` float32, 1 on the episode's steps, 0 on padding.
    weight: ``[B]`` float32 importance-sampling weight of each episode
      (prioritized replay; 1 for uniform sampling).
  """
  observation: Mapping[str, Array]
  prev_action: Array
  action: Array
  reward: Array
  discount: Array
  step_type: Array
  mask: Array
  weight: Array
