"""Scripted held-out partners: ``evaluate.py --heldout=scripted:<name>``.

Each is a population of one member with ``crossplay.Policy``'s protocol
(``reset(members)``, ``step(timestep) -> actions [N]``,
``observe_reward(reward)``), proposing an action for every agent slot:

  * ``random``: uniformly random actions (any environment).
  * ``stay``: Overcooked's ``STAY`` (no-op) every step.
  * ``greedy``: Overcooked-AI's own planning agent, ``GreedyHumanModel``
    (Carroll et al., 2019, "On the utility of learning about humans for
    human-AI coordination"), one per slot, over the layout's
    ``MediumLevelActionManager`` (``overcooked.action_manager``: built in
    memory once per layout per process).

How a scripted policy sees the game. The environment contract gives policies
only observation arrays; a planner needs the simulator's state. Scripted
policies that need it are *built with the environment they play in*
(``make(name, env)``) and read its documented ``overcooked_state`` property
when asked to act. They must therefore be stepped in lockstep with that
environment, as ``crossplay.play_seated`` does: ``step(timestep)`` is called
with the time step the environment has just returned. The greedy policy
checks this (the state's ``timestep`` must equal the steps since ``FIRST``)
and raises otherwise, so a policy built with another environment copy fails
loudly instead of acting on the wrong state.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from marl_jax.envs.base import Environment

PREFIX = 'scripted:'


def parse(spec: str) -> Optional[str]:
  """``'scripted:greedy' -> 'greedy'``; None when ``spec`` is not scripted."""
  if not spec.startswith(PREFIX):
    return None
  name = spec[len(PREFIX):]
  if name not in POLICIES:
    raise ValueError(f'Unknown scripted policy {name!r} in {spec!r}; valid: '
                     f'{", ".join(PREFIX + n for n in sorted(POLICIES))}.')
  return name


def _unwrap(env: Environment) -> Environment:
  return getattr(env, 'unwrapped', env)


def _overcooked(env: Environment, name: str):
  # pylint: disable-next=g-import-not-at-top
  from marl_jax.envs import overcooked
  base = _unwrap(env)
  if not isinstance(base, overcooked.Overcooked):
    raise ValueError(f'scripted:{name} plays Overcooked only; the environment '
                     f'is {base!r}.')
  return base


class RandomPolicy:
  """Uniformly random actions for every slot, from its own generator."""

  size = 1

  def __init__(self, env: Environment, seed: int = 0):
    spec = env.spec()
    self._n, self._num_actions = spec.num_agents, spec.num_actions
    self._rng = np.random.default_rng(seed)

  def reset(self, members: np.ndarray) -> None:
    del members

  def step(self, timestep) -> np.ndarray:
    del timestep
    return self._rng.integers(0, self._num_actions, size=(self._n,)).astype(
        np.int32)

  def observe_reward(self, reward: np.ndarray) -> None:
    del reward


class StayPolicy:
  """Overcooked's ``STAY`` for every slot."""

  size = 1

  def __init__(self, env: Environment, seed: int = 0):
    del seed
    # pylint: disable-next=g-import-not-at-top
    from marl_jax.envs import overcooked
    _overcooked(env, 'stay')
    self._actions = np.full((env.spec().num_agents,),
                            overcooked.ACTION_NAMES.index('STAY'), np.int32)

  def reset(self, members: np.ndarray) -> None:
    del members

  def step(self, timestep) -> np.ndarray:
    del timestep
    return self._actions.copy()

  def observe_reward(self, reward: np.ndarray) -> None:
    del reward


class GreedyPolicy:
  """``GreedyHumanModel`` in every slot of the Overcooked env it is built with.

  The package's agent draws from numpy's *global* generator (to get unstuck
  when both players stood still); each call runs with this policy's own
  generator swapped in, so episodes are a function of ``seed`` and the global
  generator is left untouched.
  """

  size = 1

  def __init__(self, env: Environment, seed: int = 0):
    # pylint: disable=g-import-not-at-top
    from marl_jax.envs import overcooked
    overcooked._package()  # pylint: disable=protected-access
    from overcooked_ai_py.agents.agent import GreedyHumanModel
    from overcooked_ai_py.mdp.actions import Action
    # pylint: enable=g-import-not-at-top
    self._env = _overcooked(env, 'greedy')
    self._mlam = overcooked.action_manager(self._env.layout)
    self._configure = lambda: overcooked.configure_recipes(self._env.mdp)
    self._index = Action.ACTION_TO_INDEX
    self._n = env.spec().num_agents
    self._agents = [GreedyHumanModel(self._mlam) for _ in range(self._n)]
    self._rng = np.random.RandomState(seed)
    self._t = 0
    self.reset(np.zeros((self._n,), np.int32))

  def reset(self, members: np.ndarray) -> None:
    del members
    for k, agent in enumerate(self._agents):
      agent.reset()  # Also clears the index and MDP: set them again.
      agent.set_agent_index(k)
      agent.set_mdp(self._mlam.mdp)
    self._t = 0

  def step(self, timestep) -> np.ndarray:
    if timestep.first():
      self.reset(np.zeros((self._n,), np.int32))
    state = self._env.overcooked_state
    if state is None or state.timestep != self._t:
      raise RuntimeError(
          'scripted:greedy must act on the time step its environment just '
          f'returned (step {self._t} of the episode), but the environment is '
          f'at step {None if state is None else state.timestep}: build the '
          'policy with the environment it plays in.')
    self._configure()
    saved = np.random.get_state()
    np.random.set_state(self._rng.get_state())
    try:
      actions = [self._index[agent.action(state)[0]] for agent in self._agents]
    finally:
      self._rng.set_state(np.random.get_state())
      np.random.set_state(saved)
    self._t += 1
    return np.asarray(actions, np.int32)

  def observe_reward(self, reward: np.ndarray) -> None:
    del reward


POLICIES: Dict[str, Callable[..., object]] = {
    'random': RandomPolicy,
    'stay': StayPolicy,
    'greedy': GreedyPolicy,
}


def make(name: str, env: Environment, seed: int = 0):
  """The scripted policy ``name`` (one member) playing in ``env``."""
  if name.startswith(PREFIX):
    name = parse(name)
  if name not in POLICIES:
    raise ValueError(f'Unknown scripted policy {name!r}; valid: '
                     f'{", ".join(sorted(POLICIES))}.')
  return POLICIES[name](env, seed=seed)
