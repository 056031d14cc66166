"""Tiny deterministic games for fast tests: ``make("toy/cue_coordination")``.

``cue_coordination``: two agents see the same cue, a one-hot of size A (the
number of actions) that is a deterministic function of the step and the
episode, plus the normalised time. Both receive 1 when *both* pick the action
equal to the cue, else 0. Random play scores ``horizon / A**2`` per episode,
optimal play ``horizon``. The episode terminates (discount 0) at the horizon.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs.base import Environment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

GAMES = ('cue_coordination',)


class CueCoordination(Environment):
  """See the module docstring."""

  def __init__(self, horizon: int = 16, num_actions: int = 4):
    if not isinstance(horizon, int) or horizon <= 0:
      raise ValueError(f'horizon must be a positive integer, got {horizon!r}.')
    if not isinstance(num_actions, int) or num_actions < 2:
      raise ValueError(f'num_actions must be an integer >= 2, got '
                       f'{num_actions!r}.')
    self._horizon = horizon
    self._a = num_actions
    self._episode = -1
    self._t = 0
    self._needs_reset = True

  def spec(self) -> EnvSpec:
    return EnvSpec(num_agents=2,
                   observation={'FEATURES': ArraySpec((self._a + 1,),
                                                      np.float32)},
                   num_actions=self._a, max_episode_steps=self._horizon,
                   info_keys=('coordinated',))

  def cue(self) -> int:
    return (3 * self._t + self._episode) % self._a

  def _observe(self) -> Dict[str, np.ndarray]:
    x = np.zeros((self._a + 1,), np.float32)
    x[self.cue()] = 1.
    x[-1] = self._t / self._horizon
    return {'FEATURES': np.stack([x, x])}

  def reset(self) -> TimeStep:
    self._episode += 1
    self._t = 0
    self._needs_reset = False
    return TimeStep(StepType.FIRST, np.zeros((2,), np.float32), np.float32(1.),
                    self._observe(), {'coordinated': np.zeros((2,), np.float32)})

  def step(self, actions) -> TimeStep:
    # Checked before the reset below, so a bad action is never silently
    # swallowed by the step that starts a new episode.
    actions = _checks.actions(actions, 2, self._a)
    if self._needs_reset:
      return self.reset()
    cue = self.cue()
    hit = float(actions[0] == cue and actions[1] == cue)
    self._t += 1
    last = self._t >= self._horizon
    self._needs_reset = last
    reward = np.full((2,), hit, np.float32)
    return TimeStep(StepType.LAST if last else StepType.MID, reward,
                    np.float32(0. if last else 1.), self._observe(),
                    {'coordinated': reward.copy()})

  def render(self) -> np.ndarray:
    """Cells coloured by the cue, a bar for the time: [32, 8*A, 3] uint8."""
    frame = np.full((32, 8 * self._a, 3), 30, np.uint8)
    frame[:16, 8 * self.cue():8 * self.cue() + 8] = (240, 180, 40)
    frame[24:, :int(8 * self._a * self._t / self._horizon)] = (90, 160, 240)
    return frame

  def get_state(self) -> Any:
    return dict(episode=self._episode, t=self._t, needs_reset=self._needs_reset)

  def set_state(self, state: Any) -> None:
    if not isinstance(state, dict) or set(state) != {
        'episode', 't', 'needs_reset'}:
      raise ValueError('state must be a snapshot returned by '
                       'CueCoordination.get_state().')
    self._episode = state['episode']
    self._t = state['t']
    self._needs_reset = state['needs_reset']


def make(name: str, **kwargs) -> Environment:
  """``make("toy/<name>", **kwargs)``: the registry's factory."""
  del name
  return CueCoordination(**kwargs)

