"""Background populations of Melting Pot scenarios (meltingpot's ``Policy``).

A scenario's background players are played by one policy object through
meltingpot's own scenario machinery. ``MeltingPot(scenario=...,
background=...)`` takes:
  * ``'bots'``: the scenario's official saved-model bots (built in ``env.py``);
  * ``'random'`` or ``'noop'``: ``RandomPolicy`` or ``NoopPolicy``;
  * a policy with meltingpot's ``Policy`` interface (``initial_state()``,
    ``step(timestep, prev_state) -> (action, state)``, ``close()``), which the
    caller owns: the environment does not close it;
  * a factory, ``factory(substrate=<name>, seed=<env seed or None>) ->
    Policy``, called once per environment, whose policy the environment owns
    and closes. This is how a trained run plays the background
    (``marl_jax.evaluation.backgrounds``): the environment knows nothing of
    runs, checkpoints or algorithms.
A ``BackgroundPolicy`` (passed in or built by a factory) is ``setup`` with the
substrate's name, number of actions and observation converter before the
scenario is built.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

BACKGROUNDS = ('bots', 'random', 'noop')
_POLICY_METHODS = ('initial_state', 'step', 'close')


class BackgroundPolicy:
  """Base of our background policies: meltingpot's ``Policy`` interface.

  meltingpot's ``Population`` shares one policy object between all the slots
  it plays and keeps each slot's state apart: ``initial_state()`` at the start
  of every episode, then ``step(timestep, prev_state) -> (action, state)``
  where ``timestep`` is one player's dm_env ``TimeStep`` (observation dict,
  scalar reward). ``setup`` is called by ``MeltingPot`` before the scenario is
  built, with the substrate's name, ``num_actions`` and the observation
  converter: ``converter([observation dict, ...])`` gives our observations
  (``RGB``, ``INVENTORY``, ..., ``GLOBAL``) with a leading player axis.
  """

  def setup(self, substrate: str, num_actions: int, converter) -> None:
    del substrate, converter
    self.num_actions = num_actions

  def initial_state(self):
    return None

  def step(self, timestep, prev_state):
    raise NotImplementedError

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class NoopPolicy(BackgroundPolicy):
  """Always action 0 (``NOOP`` in every substrate's action set)."""

  def step(self, timestep, prev_state):
    del timestep
    return 0, prev_state


class RandomPolicy(BackgroundPolicy):
  """Uniformly random actions, from a generator seeded once by ``seed``."""

  def __init__(self, seed: Optional[int] = None):
    self._rng = np.random.default_rng(seed)

  def step(self, timestep, prev_state):
    del timestep
    return int(self._rng.integers(self.num_actions)), prev_state


class NoClose:
  """A policy whose ``close`` does nothing (the caller owns it)."""

  def __init__(self, policy):
    self._policy = policy

  def initial_state(self):
    return self._policy.initial_state()

  def step(self, timestep, prev_state):
    return self._policy.step(timestep, prev_state)

  def close(self):
    pass


def is_policy(x) -> bool:
  """Whether ``x`` has meltingpot's ``Policy`` interface."""
  return all(callable(getattr(x, m, None)) for m in _POLICY_METHODS)


def _usage(background) -> str:
  return (f'background must be one of {", ".join(BACKGROUNDS)}, a meltingpot '
          'Policy (initial_state, step, close) or a factory '
          f'factory(substrate=..., seed=...) of one; got {background!r}.')


def check(background) -> None:
  """``ValueError`` unless ``background`` is one of the accepted kinds."""
  if isinstance(background, str):
    if background not in BACKGROUNDS:
      raise ValueError(_usage(background))
  elif not is_policy(background) and not callable(background):
    raise ValueError(_usage(background))


def build(background, *, substrate: str, num_actions: int, converter,
          seed: Optional[int]) -> Tuple[object, bool]:
  """``(policy, owned)`` for a background other than ``'bots'``.

  ``owned``: the environment built it and closes it. A ``BackgroundPolicy``
  is ``setup`` here.
  """
  check(background)
  if isinstance(background, str):
    if background == 'bots':
      raise ValueError("build() is not for background='bots'.")
    policy, owned = (RandomPolicy(seed) if background == 'random'
                     else NoopPolicy()), True
  elif is_policy(background):
    policy, owned = background, False
  else:
    policy, owned = background(substrate=substrate, seed=seed), True
    if not is_policy(policy):
      raise ValueError(
          f'The background factory {background!r} returned {policy!r}, which '
          "has not meltingpot's Policy interface (initial_state, step, "
          'close).')
  if isinstance(policy, BackgroundPolicy):
    try:
      policy.setup(substrate, num_actions, converter)
    except BaseException:
      if owned:
        policy.close()
      raise
  return policy, owned
