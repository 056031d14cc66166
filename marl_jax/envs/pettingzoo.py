"""PettingZoo environments as ours: ``ParallelEnv`` -> marl_jax ``Environment``.

``from_parallel_env(env)`` (and ``make("pettingzoo/simple_spread")`` for the MPE
games of the ``mpe2`` package) adapts any PettingZoo ``ParallelEnv`` with
discrete actions to our contract (``pettingzoo_export.to_parallel_env`` is the
other direction). Tested with pettingzoo 1.27.0, gymnasium 1.3.0 and mpe2
1.0.0 (mpe2 1.1 depends on ``pygame-ce``, which clashes with the ``pygame``
that overcooked-ai needs).

The adapter (``PettingZooEnvironment``), in detail:
  * Agents: slot ``i`` is ``possible_agents[i]``.
  * Observations: a ``Box`` observation of rank 1 becomes ``FEATURES``; an image
    (rank 3, ``uint8``, 1, 3 or 4 channels last) becomes ``RGB``; any other Box
    of rank >= 2 becomes ``GRID``. A ``Dict`` observation maps each key to its
    upper-case name (so PettingZoo's ``action_mask`` becomes ``ACTION_MASK``).
    Floating-point entries are cast to float32; integer and boolean entries
    keep their dtype; a ``Discrete`` entry of a Dict is an int32 scalar.
  * Heterogeneous agents: if the agents' shapes for an entry differ (e.g.
    ``simple_speaker_listener``: speaker 3 features, listener 11) each agent's
    array is **zero-padded at the end of every axis** to the per-axis maximum,
    so the speaker's ``FEATURES`` is its 3 values followed by 8 zeros. The
    ranks must agree. ``observation_shapes`` gives each agent's true shapes.
  * Actions: discrete spaces only (``Discrete``; ``ValueError`` otherwise).
    ``num_actions`` is the maximum over agents; ``num_valid_actions[i]`` is
    agent ``i``'s own count, and an action outside it raises ``ValueError``.
    When the counts differ, and the env has no ``action_mask`` of its own,
    the observation gains ``ACTION_MASK`` ``[num_actions]`` float32 (1 for the
    agent's valid actions) so that policies can mask their logits.
  * Rewards ``[N]`` float32.
  * ``GLOBAL``: when the env offers ``state()`` (it has a ``state_space`` Box),
    ``state()`` (for MPE the concatenation of all agents' observations) is
    added as privileged information, the same array for every agent, float32.
  * Episode end: the step is ``LAST`` once every agent is done (terminated or
    truncated). Its discount is 0 if any agent that finished on that step was
    terminated, and 1 if they were all only truncated (a time limit). Other
    steps have discount 1.
  * Agents done before the others: from the step after they finish they get
    zero observations and zero rewards, and their actions are ignored (not
    sent to the env). The step on which they finish carries their final
    observation and reward as usual.
  * Seeding: episode ``k`` (counting from 0) is reset with ``seed + k``, so two
    adapters built with the same ``seed`` replay the same episodes; with
    ``seed=None`` the env is reset unseeded.
  * ``TimeStep.info`` is empty (PettingZoo infos have no fixed keys); the raw
    per-agent infos of the last step are in ``last_infos``.
  * ``render()`` returns the env's frame; build it with
    ``render_mode='rgb_array'``.
"""

from __future__ import annotations

import functools
import importlib
import os
import importlib.util
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs.base import Environment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

INSTALL_HINT = ('PettingZoo environments need the pettingzoo package: '
                'pip install pettingzoo==1.27.0')
_MPE_INSTALL_HINT = ('The MPE environments need the mpe2 package: '
                     'pip install mpe2==1.0.0 pettingzoo==1.27.0')

# Our name -> the module of mpe2 (also under pettingzoo.mpe before 1.25).
MPE_MODULES = {
    'collect_treasure': 'collect_treasure_v1',
    'simple': 'simple_v3',
    'simple_adversary': 'simple_adversary_v3',
    'simple_crypto': 'simple_crypto_v3',
    'simple_formation': 'simple_formation_v1',
    'simple_line': 'simple_line_v1',
    'simple_push': 'simple_push_v3',
    'simple_reference': 'simple_reference_v3',
    'simple_speaker_listener': 'simple_speaker_listener_v4',
    'simple_spread': 'simple_spread_v3',
    'simple_tag': 'simple_tag_v3',
    'simple_world_comm': 'simple_world_comm_v3',
}
ACTION_MASK = 'ACTION_MASK'
GLOBAL = 'GLOBAL'
# The family's names: make("pettingzoo/<name>").
NAMES = tuple(MPE_MODULES)


@functools.lru_cache(maxsize=None)
def gymnasium_spaces():
  if importlib.util.find_spec('pettingzoo') is None:
    raise ImportError(INSTALL_HINT)
  from gymnasium import spaces  # pylint: disable=g-import-not-at-top
  return spaces


def _mpe_module(name: str):
  """Imports the MPE module of ``name`` from mpe2 (or old pettingzoo.mpe)."""
  module = MPE_MODULES[name]
  if importlib.util.find_spec('pettingzoo') is None:
    raise ImportError(_MPE_INSTALL_HINT)
  # MPE imports pygame; without a display SDL complains on stderr.
  os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')
  os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
  os.environ.setdefault('PYGAME_HIDE_SUPPORT_PROMPT', '1')
  for package in ('mpe2', 'pettingzoo.mpe'):
    try:
      return importlib.import_module(f'{package}.{module}')
    except ImportError:
      continue
  raise ImportError(_MPE_INSTALL_HINT)


# ----------------------------------------------------------------------------
# PettingZoo -> marl_jax.
# ----------------------------------------------------------------------------


def _entry_dtype(dtype) -> np.dtype:
  dtype = np.dtype(dtype)
  return np.dtype(np.float32) if dtype.kind in 'fc' else dtype


def _box_name(shape: tuple, dtype) -> str:
  if len(shape) <= 1:
    return 'FEATURES'
  if (len(shape) == 3 and np.dtype(dtype) == np.uint8
      and shape[-1] in (1, 3, 4)):
    return 'RGB'
  return 'GRID'


def _entries(space, agent: str) -> Dict[str, Tuple[tuple, np.dtype, Any]]:
  """name -> (shape, dtype, key in the raw observation or None) of a space."""
  spaces = gymnasium_spaces()

  def leaf(sub, where):
    if isinstance(sub, spaces.Box):
      return tuple(sub.shape), _entry_dtype(sub.dtype)
    if isinstance(sub, spaces.Discrete):
      return (), np.dtype(np.int32)
    if isinstance(sub, (spaces.MultiDiscrete, spaces.MultiBinary)):
      return tuple(sub.shape), _entry_dtype(sub.dtype)
    raise ValueError(
        f'Agent {agent!r}: unsupported observation space {sub!r}{where}; the '
        'adapter supports Box, and Dict of Box, Discrete, MultiDiscrete and '
        'MultiBinary.')

  if isinstance(space, spaces.Box):
    shape, dtype = leaf(space, '')
    return {_box_name(shape, dtype): (shape, dtype, None)}
  if isinstance(space, spaces.Dict):
    out = {}
    for key, sub in space.spaces.items():
      name = str(key).upper()
      if name in out:
        raise ValueError(f'Agent {agent!r}: observation keys collide when '
                         f'upper-cased: {list(space.spaces)}.')
      out[name] = leaf(sub, f' under key {key!r}') + (key,)
    return out
  raise ValueError(
      f'Agent {agent!r}: unsupported observation space {space!r}; the adapter '
      'supports Box and Dict observation spaces.')


def _pad_to(x: np.ndarray, shape: tuple) -> np.ndarray:
  if x.shape == shape:
    return x
  out = np.zeros(shape, x.dtype)
  out[tuple(slice(0, n) for n in x.shape)] = x
  return out


class PettingZooEnvironment(Environment):
  """A PettingZoo ``ParallelEnv`` as a marl_jax ``Environment``.

  See the module docstring for the conventions.
  """

  def __init__(self, env, seed: Optional[int] = None,
               global_state: Optional[bool] = None,
               max_episode_steps: Optional[int] = None):
    """Wraps ``env``.

    Args:
      env: a PettingZoo ``ParallelEnv`` with discrete action spaces.
      seed: seed of the first episode (episode ``k`` uses ``seed + k``), or
        None for unseeded resets.
      global_state: add ``GLOBAL`` from ``env.state()``; None (default) adds it
        when the env has a ``state_space`` Box and its observations have no
        ``GLOBAL`` entry of their own.
      max_episode_steps: the time limit to report in the spec; None reads
        ``env.max_cycles`` when the env has one (MPE does).

    Raises:
      ValueError: a non-discrete action space, an unsupported observation
        space, or agents whose observations cannot be padded to one shape.
      ImportError: pettingzoo is not installed.
    """
    spaces = gymnasium_spaces()
    if seed is not None:
      seed = _checks.non_negative_int('seed', seed)
    self._env = env
    self._seed = seed
    self._agents: Tuple[str, ...] = tuple(getattr(env, 'possible_agents', ()))
    if not self._agents:
      raise ValueError(f'{env!r} has no possible_agents; is it a PettingZoo '
                       'ParallelEnv?')
    n = len(self._agents)

    valid = []
    self._action_starts = []
    for agent in self._agents:
      space = env.action_space(agent)
      if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f'Agent {agent!r} has action space {space!r}; marl_jax supports '
            'discrete (gymnasium.spaces.Discrete) action spaces only. For MPE, '
            'build the env with continuous_actions=False (the default).')
      valid.append(int(space.n))
      self._action_starts.append(int(space.start))
    self._num_valid = np.asarray(valid, np.int32)
    self._num_actions = int(self._num_valid.max())

    per_agent = [_entries(env.observation_space(a), a) for a in self._agents]
    names = list(per_agent[0])
    for agent, entries in zip(self._agents, per_agent):
      if list(entries) != names:
        raise ValueError(
            f'Agents have different observation entries: {self._agents[0]!r} '
            f'has {names}, {agent!r} has {list(entries)}.')
    self._keys = {name: per_agent[0][name][2] for name in names}
    self.observation_shapes = tuple({k: v[0] for k, v in e.items()}
                                    for e in per_agent)
    obs_spec = {}
    for name in names:
      shapes = [e[name][0] for e in per_agent]
      dtypes = {e[name][1] for e in per_agent}
      if len({len(s) for s in shapes}) != 1:
        raise ValueError(f'Observation {name!r} has different ranks across '
                         f'agents ({shapes}); cannot zero-pad them.')
      shape = tuple(int(max(dims)) for dims in zip(*shapes))
      obs_spec[name] = ArraySpec(shape, np.dtype(np.result_type(*dtypes)))
    self._mask = None
    if ACTION_MASK not in obs_spec and len(set(valid)) > 1:
      self._mask = (np.arange(self._num_actions)[None, :]
                    < self._num_valid[:, None]).astype(np.float32)
      obs_spec[ACTION_MASK] = ArraySpec((self._num_actions,),
                                        np.dtype(np.float32))

    state_space = getattr(env, 'state_space', None)
    if global_state is None:
      global_state = (isinstance(state_space, spaces.Box)
                      and GLOBAL not in obs_spec)
    self._global = bool(global_state)
    if self._global:
      if GLOBAL in obs_spec:
        raise ValueError('global_state=True but the observations already have '
                         'a GLOBAL entry.')
      if not isinstance(state_space, spaces.Box):
        raise ValueError(f'global_state=True but {env!r} has no state_space '
                         'Box.')
      obs_spec[GLOBAL] = ArraySpec(tuple(state_space.shape),
                                   np.dtype(np.float32))

    if max_episode_steps is None:
      max_episode_steps = getattr(env, 'max_cycles', None)
      if max_episode_steps is None:
        max_episode_steps = getattr(getattr(env, 'unwrapped', None),
                                    'max_cycles', None)
      if not isinstance(max_episode_steps, int) or max_episode_steps <= 0:
        max_episode_steps = None
    self._spec = EnvSpec(num_agents=n, observation=obs_spec,
                         num_actions=self._num_actions,
                         max_episode_steps=max_episode_steps)
    self._episode = 0
    self._done = np.ones(n, bool)
    self._needs_reset = True
    self.last_infos: Dict[str, Any] = {}

  # -- Properties -------------------------------------------------------------

  @property
  def parallel_env(self):
    """The wrapped PettingZoo env."""
    return self._env

  @property
  def agent_ids(self) -> Tuple[str, ...]:
    """PettingZoo agent names, in slot order."""
    return self._agents

  @property
  def num_valid_actions(self) -> np.ndarray:
    """``[N]`` int32: each agent's own number of actions."""
    return self._num_valid.copy()

  # -- Contract ---------------------------------------------------------------

  def spec(self) -> EnvSpec:
    return self._spec

  def reseed(self, seed: Optional[int]) -> None:
    """Restarts the seed sequence: the next episode is reset with ``seed``."""
    if seed is not None:
      seed = _checks.non_negative_int('seed', seed)
    self._seed = seed
    self._episode = 0

  def reset(self) -> TimeStep:
    seed = None if self._seed is None else self._seed + self._episode
    self._episode += 1
    obs, infos = self._env.reset(seed=seed)
    self.last_infos = dict(infos)
    self._done = np.zeros(len(self._agents), bool)
    self._needs_reset = False
    n = len(self._agents)
    return TimeStep(StepType.FIRST, np.zeros(n, np.float32), np.float32(1.),
                    self._observe(obs))

  def step(self, actions) -> TimeStep:
    n = len(self._agents)
    actions = _checks.actions(actions, n, self._num_actions)
    if self._needs_reset:
      return self.reset()
    live = set(getattr(self._env, 'agents', self._agents))
    joint = {}
    for i, agent in enumerate(self._agents):
      if self._done[i] or agent not in live:
        continue
      if actions[i] >= self._num_valid[i]:
        raise ValueError(
            f'Agent {i} ({agent!r}) has {self._num_valid[i]} actions; got '
            f'action {actions[i]}.')
      joint[agent] = actions[i] + self._action_starts[i]
    obs, rewards, terminations, truncations, infos = self._env.step(joint)
    self.last_infos = dict(infos)
    reward = np.zeros(n, np.float32)
    terminated_now = False
    was_done = self._done.copy()
    for i, agent in enumerate(self._agents):
      if was_done[i]:
        continue
      reward[i] = rewards.get(agent, 0.)
      term = bool(terminations.get(agent, False))
      trunc = bool(truncations.get(agent, False))
      if term or trunc:
        self._done[i] = True
        terminated_now |= term
    remaining = getattr(self._env, 'agents', None)
    if remaining is not None and not remaining:
      self._done[:] = True  # The env ended the episode for everyone.
    observation = self._observe(obs, was_done)
    if self._done.all():
      self._needs_reset = True
      return TimeStep(StepType.LAST, reward,
                      np.float32(0. if terminated_now else 1.), observation)
    return TimeStep(StepType.MID, reward, np.float32(1.), observation)

  def render(self) -> np.ndarray:
    frame = self._env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
      raise ValueError(
          f'{self._env!r}.render() returned {type(frame).__name__}, not an RGB '
          "frame; build the env with render_mode='rgb_array'.")
    return np.asarray(frame, np.uint8)

  def close(self) -> None:
    self._env.close()

  # -- Internals --------------------------------------------------------------

  def _observe(self, obs: Mapping[str, Any],
               zero: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    n = len(self._agents)
    out = {}
    for name, key in self._keys.items():
      spec = self._spec.observation[name]
      rows = spec.zeros((n,))
      for i, agent in enumerate(self._agents):
        if (zero is not None and zero[i]) or agent not in obs:
          continue
        x = obs[agent] if key is None else obs[agent][key]
        x = np.asarray(x, spec.dtype)
        rows[i] = _pad_to(x, spec.shape)
      out[name] = rows
    if self._mask is not None:
      out[ACTION_MASK] = self._mask.copy()
    if self._global:
      state = np.asarray(self._env.state(), np.float32)
      out[GLOBAL] = np.broadcast_to(state, (n,) + state.shape).copy()
    return out

  def __repr__(self) -> str:
    return f'PettingZooEnvironment({self._env!r}, seed={self._seed})'


def from_parallel_env(env, seed: Optional[int] = None,
                      **kwargs) -> PettingZooEnvironment:
  """Any PettingZoo ``ParallelEnv`` as a marl_jax ``Environment``.

  Args:
    env: the ``ParallelEnv``.
    seed: seed of the first episode; episode ``k`` is reset with ``seed + k``.
    **kwargs: ``global_state`` and ``max_episode_steps`` of
      ``PettingZooEnvironment``.

  Returns:
    The adapter.
  """
  return PettingZooEnvironment(env, seed=seed, **kwargs)


# ----------------------------------------------------------------------------
# The registry family.
# ----------------------------------------------------------------------------


_ADAPTER_KWARGS = ('seed', 'global_state', 'max_episode_steps')


def make(name: str, **kwargs) -> PettingZooEnvironment:
  """``make("pettingzoo/<mpe game>", seed=..., N=..., max_cycles=...)``.

  ``seed``, ``global_state`` and ``max_episode_steps`` go to the adapter; every
  other keyword goes to the game's ``parallel_env`` (e.g. ``N``,
  ``local_ratio``, ``max_cycles``, ``render_mode``).
  """
  adapter_kwargs = {k: kwargs.pop(k) for k in _ADAPTER_KWARGS if k in kwargs}
  module = _mpe_module(name)
  try:
    env = module.parallel_env(**kwargs)
  except TypeError as e:
    raise ValueError(f'Bad arguments for pettingzoo/{name}: {e}') from e
  return PettingZooEnvironment(env, **adapter_kwargs)

