"""Trained runs of ours as the background players of Melting Pot scenarios.

The scenario environment (``envs/meltingpot``) knows nothing of runs: it
takes a meltingpot ``Policy`` or a factory of one as ``background``. Here a
run directory (``run_dir.load_run``) or an algorithm and its params become
such a policy, acting through ``algorithms.acting`` like every other player
of ours:

  env = envs.make('meltingpot_scenario/coins_0',
                  background=backgrounds.TrainedBackground('runs/coins'))
"""

from __future__ import annotations

import threading
from typing import Optional

import jax
import numpy as np

from marl_jax import run_dir
from marl_jax.algorithms import acting
from marl_jax.envs import meltingpot
from marl_jax.types import StepType


class TrainedPolicy(meltingpot.BackgroundPolicy):
  """A population member of a marl_jax run as a background player.

  ``TrainedPolicy(exp_dir)`` loads the run with ``run_dir.load_run``;
  ``TrainedPolicy(algorithm=..., params=...)`` takes an algorithm and its
  ``[P, ...]`` params directly. Each background slot acts with member
  ``member`` on its own observation (converted as for the focal agents, with
  ``GLOBAL``), its previous action and reward, and its own recurrent state.
  The run must have been trained on ``meltingpot/<substrate>`` of the
  scenario's substrate (the same observation shapes) without extra wrappers
  such as ``agent_id``. Pass it as a scenario's ``background`` (it is then
  the caller's to close), or build it through ``TrainedBackground``.
  """

  def __init__(self, exp_dir: Optional[str] = None, *, member: int = 0,
               greedy: bool = False, seed: int = 0, step: Optional[int] = None,
               algorithm=None, params=None, act=None):
    """``act``: a ``acting.make_host_act`` of ``algorithm`` to share (by
    ``TrainedBackground``); by default one is built."""
    if (exp_dir is None) == (algorithm is None):
      raise ValueError('TrainedPolicy needs exp_dir, or algorithm and params.')
    if exp_dir is not None:
      _, algorithm, params, _ = run_dir.load_run(exp_dir, step=step)
    self._algorithm = algorithm
    self._params = params
    population_size = acting.population_size_of(params)
    if not 0 <= int(member) < population_size or int(member) != member:
      raise ValueError(f'member must be an integer in [0, {population_size})'
                       f'; got {member!r}.')
    self._member = int(member)
    self._members = np.full((1,), self._member, np.int32)
    self._act = act or acting.make_host_act(algorithm, population_size,
                                            greedy=bool(greedy))
    self._seed = int(seed)
    self._converter = None
    self._episodes = 0
    self._lock = threading.Lock()

  def setup(self, substrate, num_actions, converter):
    super().setup(substrate, num_actions, converter)
    self._converter = converter

  def initial_state(self):
    with self._lock:
      self._episodes += 1
      key = jax.random.fold_in(jax.random.PRNGKey(self._seed), self._episodes)
    return (self._algorithm.initial_core_state(1), np.zeros((1,), np.int32),
            key)

  def step(self, timestep, prev_state):
    if self._converter is None:
      raise RuntimeError('TrainedPolicy.setup was not called: pass it to '
                         "make('meltingpot_scenario/...', background=...).")
    core, prev_action, key = prev_state
    first = int(timestep.step_type) == int(StepType.FIRST)
    reward = 0.0 if first or timestep.reward is None else float(
        np.sum(timestep.reward))
    if first:
      prev_action = np.zeros((1,), np.int32)
    key, sub = jax.random.split(key)
    action, core = self._act(
        self._params, self._members, self._converter([timestep.observation]),
        prev_action, np.full((1,), reward, np.float32),
        np.full((1,), int(timestep.step_type), np.int32), core, sub)
    return int(action[0]), (core, action, key)


class TrainedBackground:
  """A factory of ``TrainedPolicy`` for ``background=``: each scenario
  environment gets its own policy (closed with it), all sharing one loaded
  run and one jitted act.

  Args:
    exp_dir: the run directory (loaded once, here); or None with
      ``algorithm`` and ``params``.
    member: the member that plays every background slot.
    greedy: act greedily.
    seed: the ``k``-th environment's policy is seeded ``seed + k``.
    step: the checkpoint (default: the latest).
    substrate: the substrate the run was trained on, checked against every
      scenario's (default: read from the run's config when it has one).
  """

  def __init__(self, exp_dir: Optional[str] = None, *, member: int = 0,
               greedy: bool = False, seed: int = 0, step: Optional[int] = None,
               algorithm=None, params=None, substrate: Optional[str] = None):
    if (exp_dir is None) == (algorithm is None):
      raise ValueError('TrainedBackground needs exp_dir, or algorithm and '
                       'params.')
    self._name = exp_dir or 'the background run'
    if exp_dir is not None:
      config, algorithm, params, _ = run_dir.load_run(exp_dir, step=step)
      substrate = substrate or meltingpot.substrate_of(config.env)
    self._substrate = substrate
    self._kwargs = dict(member=member, algorithm=algorithm, params=params,
                        act=acting.make_host_act(
                            algorithm, acting.population_size_of(params),
                            greedy=bool(greedy)))
    # Checks member now rather than in the first environment.
    TrainedPolicy(**self._kwargs)
    self._seed = int(seed)
    self._built = 0
    self._lock = threading.Lock()

  def __call__(self, *, substrate: str, seed: Optional[int] = None
               ) -> TrainedPolicy:
    del seed  # Episodes are keyed by this factory's seed and count.
    if self._substrate is not None and substrate != self._substrate:
      raise ValueError(
          f'{self._name} was trained on {self._substrate}; it cannot play the '
          f'background of a scenario of {substrate}.')
    with self._lock:
      k = self._built
      self._built += 1
    return TrainedPolicy(seed=self._seed + k, **self._kwargs)

  def __repr__(self) -> str:
    return f'TrainedBackground({self._name!r})'
