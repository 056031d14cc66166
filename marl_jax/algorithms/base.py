"""The algorithm contract (see DESIGN.md, "Algorithm").

An algorithm is a small bundle of pure functions over one population member;
the runtime vmaps them over members and env copies, jits them, and shards the
learner's batch across devices. Nothing here is stateful.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax

from marl_jax.replay.table import TableSpec

Params = Any
Metrics = Mapping[str, jax.Array]


class LearnerState(NamedTuple):
  """One member's learner state; the runtime stacks members on a leading axis.

  Attributes:
    params: network parameters.
    opt_state: optimiser state.
    step: number of updates applied (int32 scalar).
    hyperparams: per-member scalar hyperparameters (e.g. ``learning_rate``,
      ``entropy_cost``) that population-based training may change.
    extras: algorithm-specific state (PopArt statistics, target networks, ...).
  """
  params: Params
  opt_state: Any
  step: jax.Array
  hyperparams: Mapping[str, jax.Array]
  extras: Mapping[str, Any]


class ActorExtras(NamedTuple):
  """What acting returns besides the action: the behaviour policy's logits."""
  logits: jax.Array


class Algorithm(NamedTuple):
  """Pure functions of one algorithm, built by ``make(env_spec, config)``.

  Attributes:
    name: registry name.
    init: ``key -> LearnerState`` for one member.
    act: ``(params, AgentInput[B], core_state, key, greedy) -> (action [B],
      ActorExtras, core_state)``; ``greedy`` is static.
    initial_core_state: ``batch_size -> core_state``.
    update: ``(LearnerState, Trajectory[B, T+1]) -> (LearnerState, metrics)``
      for one member (``EpisodeBatch`` instead of ``Trajectory`` when
      ``replay_table.joint``); metrics are scalars, except ``priorities``
      ``[B]`` for the replay when it is prioritized.
    replay_table: what actors write and how the learner samples it; None
      for an offline learner (module ``OFFLINE``), which learns from a
      dataset (``runtime/offline.py``) and has no actors.
    acting_params: ``(params, env_steps) -> params`` that ``act`` receives,
      for acting that depends on training progress (QMIX's epsilon schedule);
      pure. ``None``: act with the learner's params as they are.
    evaluate: offline learners: ``(params, batch) -> metrics`` of one
      member's params on a held-out batch, without updating (the validation
      loss that early stopping reads). ``None`` for online learners.
  """
  name: str
  init: Callable[[jax.Array], LearnerState]
  act: Callable[..., Any]
  initial_core_state: Callable[[int], Any]
  update: Callable[[LearnerState, Any], Any]
  replay_table: Optional[TableSpec]
  acting_params: Optional[Callable[[Params, jax.Array], Params]] = None
  evaluate: Optional[Callable[[Params, Any], Metrics]] = None
