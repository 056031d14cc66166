"""The one host-side act path of a population.

``make_slot_act`` is what every caller that acts outside a jitted rollout
runs: the env loop of the distributed runtime (``runtime/actor.py``),
evaluation (``evaluation/policies.py``: cross-play, videos) and trained
Melting Pot background players (``evaluation/backgrounds.py``). Each agent
slot acts with the params of the population member assigned to it, all slots
in one jitted, vmapped ``act``. ``make_host_act`` wraps it for numpy callers
that hold observations and previous actions/rewards rather than an
``AgentInput``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import jax
import numpy as np

from marl_jax.algorithms.base import Algorithm
from marl_jax.networks import AgentInput


def population_size_of(params) -> int:
  """``P`` of params with a leading population axis ``[P, ...]``."""
  return int(jax.tree.leaves(params)[0].shape[0])


def make_slot_act(algorithm: Algorithm, population_size: int):
  """Jitted ``(params [P], member_ids [S], inputs [S], core [S], key, greedy)``.

  Every agent slot acts with the params of its member: one vmapped ``act``
  over all slots (with a population of one, a plain batched ``act``).
  """

  def act(params, member_ids, inputs, core_state, key, greedy):
    if population_size == 1:
      p = jax.tree.map(lambda x: x[0], params)
      return algorithm.act(p, inputs, core_state, key, greedy)
    slot_params = jax.tree.map(lambda x: x[member_ids], params)
    add_axis = lambda x: x[:, None]
    keys = jax.random.split(key, member_ids.shape[0])
    action, extras, core = jax.vmap(
        lambda p, i, c, k: algorithm.act(p, i, c, k, greedy))(
            slot_params, jax.tree.map(add_axis, inputs),
            jax.tree.map(add_axis, core_state), keys)
    squeeze = lambda x: x[:, 0]
    return (squeeze(action), jax.tree.map(squeeze, extras),
            jax.tree.map(squeeze, core))

  return jax.jit(act, static_argnames='greedy')


HostAct = Callable[..., Tuple[np.ndarray, Any]]


def make_host_act(algorithm: Algorithm, population_size: int,
                  greedy: bool = False) -> HostAct:
  """``act(params [P], members [S], observation {k: [S, ...]}, prev_action
  [S], prev_reward [S], step_type [S], core [S], key) -> (action, core)``.

  ``make_slot_act`` with numpy in and out: ``action`` is an int32 numpy
  array ``[S]``; ``core`` the next recurrent state (on device).
  """
  slot_act = make_slot_act(algorithm, population_size)

  def act(params, members, observation: Dict[str, Any], prev_action,
          prev_reward, step_type, core, key):
    inputs = AgentInput(
        observation={k: np.asarray(v) for k, v in observation.items()},
        prev_action=np.asarray(prev_action, np.int32),
        prev_reward=np.asarray(prev_reward, np.float32),
        step_type=np.asarray(step_type, np.int32))
    action, _, core = slot_act(params, np.asarray(members, np.int32), inputs,
                               core, key, greedy=greedy)
    return np.asarray(action, np.int32), core

  return act
