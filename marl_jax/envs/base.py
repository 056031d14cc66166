"""The environment contract (see DESIGN.md, "Environment").

An ``Environment`` is a dm_env-like multi-agent environment:
  * ``reset() -> TimeStep`` starts an episode (``step_type == FIRST``, reward 0).
  * ``step(actions) -> TimeStep`` takes ``[num_agents]`` int actions. Calling
    ``step`` after a ``LAST`` step starts a new episode (returns ``FIRST``), as
    dm_env environments do.
  * ``spec() -> EnvSpec``.
Every per-agent array has a leading ``[num_agents]`` axis; rewards are float32.

Optional hooks, with no-op defaults so that the runtime may always call them:
  * ``render() -> np.ndarray`` ``[H, W, 3]`` uint8 frame of the current state.
  * ``set_training_progress(env_steps)`` tells the environment how many
    environment steps the whole run has taken so far, for schedules that live in
    the environment (e.g. Overcooked's shaped-reward annealing).
  * ``get_state()`` / ``set_state(state)``: a picklable snapshot of everything the
    environment needs to continue exactly where it was, used for exact resume.
    ``None`` means "not supported": a resumed run then starts new episodes.
  * ``reseed(seed)``: restarts the environment's randomness from ``seed``
    (its next ``reset`` draws from it). The runtime gives each env copy its
    own seed, so copies built from one config do not play the same episodes;
    an environment without randomness of its own ignores it.
"""

from __future__ import annotations

import abc
from typing import Any, Optional

import numpy as np

from marl_jax.types import EnvSpec, TimeStep


class Environment(abc.ABC):
  """Base class of every (non-JAX) environment."""

  @abc.abstractmethod
  def reset(self) -> TimeStep:
    """Starts a new episode."""

  @abc.abstractmethod
  def step(self, actions: np.ndarray) -> TimeStep:
    """Advances all agents by one step."""

  @abc.abstractmethod
  def spec(self) -> EnvSpec:
    """The environment's specification."""

  def render(self) -> np.ndarray:
    raise NotImplementedError(f'{type(self).__name__} cannot render frames.')

  def set_training_progress(self, env_steps: int) -> None:
    del env_steps

  def get_state(self) -> Optional[Any]:
    return None

  def set_state(self, state: Any) -> None:
    raise NotImplementedError(f'{type(self).__name__} cannot restore a state.')

  def reseed(self, seed: Optional[int]) -> None:
    del seed

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class JaxEnvironment(abc.ABC):
  """The functional contract of JAX-native environments (the anakin runtime).

  The same data as ``Environment``, as pure functions that jit and vmap:
    * ``reset(key) -> (state, TimeStep)`` starts an episode (``FIRST``).
    * ``step(state, actions, key) -> (state, TimeStep)`` with ``[num_agents]``
      int32 actions. As in ``Environment``, stepping from a ``LAST`` step starts
      a new episode and returns ``FIRST`` (so trajectories from both runtimes
      have the same layout and the same losses apply); the actions given on
      that step are ignored.
    * ``spec() -> EnvSpec`` (host-side, static).
  ``TimeStep`` fields are jax arrays: ``step_type`` int32 scalar, ``reward``
  ``[num_agents]`` float32, ``discount`` float32 scalar, observation and info
  dicts of ``[num_agents, ...]`` arrays, with the same keys on every step.
  ``render(state) -> [H, W, 3] uint8`` (host-side) is optional.
  """

  @abc.abstractmethod
  def reset(self, key) -> tuple:
    """Starts a new episode: ``(state, TimeStep)``."""

  @abc.abstractmethod
  def step(self, state, actions, key) -> tuple:
    """Advances all agents by one step: ``(state, TimeStep)``."""

  @abc.abstractmethod
  def spec(self) -> EnvSpec:
    """The environment's specification."""

  def render(self, state) -> np.ndarray:
    raise NotImplementedError(f'{type(self).__name__} cannot render frames.')
