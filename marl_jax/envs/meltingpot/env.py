"""Melting Pot (dm-meltingpot 2.4.1, dmlab2d 1.0.2) as marl_jax environments.

Two families:
  * ``make("meltingpot/<substrate>")``: every player of a substrate is one of
    our agents (``clean_up``, ``collaborative_cooking__cramped``, ...: the
    names of meltingpot's substrate registry).
  * ``make("meltingpot_scenario/<scenario>")``: a scenario of the Melting Pot
    test suite (``clean_up_0``, ...): the *focal* players are our agents, the
    other slots are played by a background population through meltingpot's
    own scenario machinery (``meltingpot.utils.scenarios``). The background is
    ``background='bots'`` (default), the scenario's official saved-model bots,
    which need the assets archive (see ``bots_installed``) and TensorFlow; or
    ``'random'``, ``'noop'``, any object with meltingpot's ``Policy`` interface
    (``initial_state()``, ``step(timestep, prev_state) -> (action, state)``,
    ``close()``), or a factory of one (``backgrounds.py``; a trained run of
    ours is injected so, by ``marl_jax.evaluation.backgrounds``).

Observations (per agent, leading ``[num_agents]`` axis), the same keys for
every substrate:
  * ``RGB`` ``[H, W, 3]`` uint8: the player's egocentric view.
  * ``INVENTORY`` ``[K]`` float32 and ``READY_TO_SHOOT`` ``[]`` float32: as the
    substrate gives them; zeros of shape ``[1]`` and ``[]`` where a substrate
    has none (see ``MeltingPot.zero_filled``).
  * ``COLLECTIVE_REWARD`` ``[]`` float32: the sum of all players' rewards on
    this step (in a scenario, focal and background players alike).
  * ``GLOBAL`` ``[H', W', 3]`` uint8 (``global_state='world_rgb'``, default):
    the whole map (``WORLD.RGB``), the same for every agent, as privileged
    state for centralised critics and OPRE's posterior. Not a Melting Pot
    permitted observation: a policy evaluated on the scenarios must not act on
    it. ``global_state='none'`` leaves it out.
  Other substrate-specific observations (``HUNGER``, ``STAMINA``, ``VOTING``,
  ...) are not passed on.

Rewards are ``[num_agents]`` float32. ``LAST`` comes at ``max_episode_steps``
(the substrate's ``maxEpisodeLengthFrames`` unless overridden) with discount 1,
a truncation (dmlab2d itself reports 0), or earlier when the substrate ends the
episode itself (many end episodes at random after a minimum length,
``StochasticIntervalEpisodeEnding``), keeping the substrate's discount 0.
Stepping after ``LAST`` starts the next episode (the actions are ignored) as
meltingpot's own ``step`` does: dmlab2d restarts the level in the same Lua
state. ``reset()`` rebuilds the level, as meltingpot's ``reset`` does, several
times slower (62 ms against 9 ms for collaborative_cooking__cramped here).

Scenarios report the background separately: ``reward`` holds the focal
agents' rewards only; ``info['background_reward']`` (``[num_agents]``, every
entry the same) is the mean reward of the background players on that step,
and ``last_background_rewards`` has each background player's reward.

``render()`` returns the current ``WORLD.RGB`` frame. ``get_state()`` returns
None: dmlab2d cannot snapshot a running episode, so a resumed run starts new
episodes. ``seed`` fixes what Python draws (the map of ``coins``, the Lua seed
of each episode) without touching the global ``random`` state; episodes are
still not reproducible bit for bit: two environments built with the same seed
here started from the same frame only about half the time (Lua-side
nondeterminism), so tests and evaluations must not rely on it.

TensorFlow: ``import meltingpot`` imports the bot modules and with them
TensorFlow (about 3 s here). This module imports only the substrate
modules: it registers the ``meltingpot`` package without running its
``__init__`` (attributes such as ``meltingpot.bot`` still import on first
use), so TensorFlow is imported only when official bots are built. Names are
read from the package's config files without importing them; when
dm-meltingpot is not installed the names of 2.4.1 are listed and ``make``
raises ``ImportError`` with the install command.

dmlab2d's Lua prints warnings to stdout whenever it builds a level (every
reset); ``quiet=True`` (default) silences stdout during builds and resets.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import importlib
import importlib.util
import os
import random
import sys
import tempfile
import threading
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs.meltingpot import backgrounds
from marl_jax.envs.base import Environment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

_PACKAGE = 'meltingpot'
ASSETS_VERSION = '2.3.0'
ASSETS_ARCHIVE = f'meltingpot-assets-{ASSETS_VERSION}.tar.gz'
ASSETS_URL = f'https://storage.googleapis.com/dm-meltingpot/{ASSETS_ARCHIVE}'
# Written by third_party/meltingpot_assets when the download failed.
STANDIN_MARKER = 'MARL_JAX_STANDIN_NO_BOTS.txt'
_INSTALL_HINT = (
    'Melting Pot needs dm-meltingpot: from the repository root, '
    'pip install -r requirements.txt (or: pip install ./third_party/'
    'meltingpot_assets ./third_party/pygame_ce_placeholder '
    'dm-meltingpot==2.4.1 dmlab2d==1.0.2).')

OBSERVATION_KEYS = ('RGB', 'INVENTORY', 'READY_TO_SHOOT', 'COLLECTIVE_REWARD')
GLOBAL = 'GLOBAL'
GLOBAL_STATES = ('world_rgb', 'none')
INFO_KEYS_SCENARIO = ('background_reward',)
_WORLD_RGB = 'WORLD.RGB'
_ZERO_SHAPES = {'INVENTORY': (1,), 'READY_TO_SHOOT': ()}
_FIRST, _MID, _LAST = StepType.FIRST, StepType.MID, StepType.LAST
_ONE = np.float32(1.0)  # numpy scalars are immutable: one is enough

# dm-meltingpot 2.4.1: substrate -> one past its last scenario number
# (scenarios are ``<substrate>_0`` ...). Used only when the package is not
# installed, so that ``make`` can say how to install it; a test checks it
# against the package.
SUBSTRATES_2_4_1 = {
    'allelopathic_harvest__open': 13,
    'bach_or_stravinsky_in_the_matrix__arena': 7,
    'bach_or_stravinsky_in_the_matrix__repeated': 8,
    'boat_race__eight_races': 5,
    'chemistry__three_metabolic_cycles': 4,
    'chemistry__three_metabolic_cycles_with_plentiful_distractors': 4,
    'chemistry__two_metabolic_cycles': 4,
    'chemistry__two_metabolic_cycles_with_distractors': 4,
    'chicken_in_the_matrix__arena': 7,
    'chicken_in_the_matrix__repeated': 10,
    'clean_up': 23,
    'coins': 7,
    'collaborative_cooking__asymmetric': 3,
    'collaborative_cooking__circuit': 3,
    'collaborative_cooking__cramped': 3,
    'collaborative_cooking__crowded': 3,
    'collaborative_cooking__figure_eight': 3,
    'collaborative_cooking__forced': 2,
    'collaborative_cooking__ring': 2,
    'commons_harvest__closed': 4,
    'commons_harvest__open': 2,
    'commons_harvest__partnership': 6,
    'coop_mining': 6,
    'daycare': 4,
    'externality_mushrooms__dense': 4,
    'factory_commons__either_or': 4,
    'fruit_market__concentric_rivers': 4,
    'gift_refinements': 7,
    'hidden_agenda': 3,
    'paintball__capture_the_flag': 2,
    'paintball__king_of_the_hill': 4,
    'predator_prey__alley_hunt': 4,
    'predator_prey__open': 7,
    'predator_prey__orchard': 7,
    'predator_prey__random_forest': 4,
    'prisoners_dilemma_in_the_matrix__arena': 22,
    'prisoners_dilemma_in_the_matrix__repeated': 10,
    'pure_coordination_in_the_matrix__arena': 9,
    'pure_coordination_in_the_matrix__repeated': 6,
    'rationalizable_coordination_in_the_matrix__arena': 9,
    'rationalizable_coordination_in_the_matrix__repeated': 6,
    'running_with_scissors_in_the_matrix__arena': 8,
    'running_with_scissors_in_the_matrix__one_shot': 4,
    'running_with_scissors_in_the_matrix__repeated': 9,
    'stag_hunt_in_the_matrix__arena': 8,
    'stag_hunt_in_the_matrix__repeated': 10,
    'territory__inside_out': 6,
    'territory__open': 4,
    'territory__rooms': 15,
}
# Gaps in the numbering of 2.4.1's scenarios.
_NO_SCENARIOS_2_4_1 = ('territory__rooms_6',)


class MissingBotsError(RuntimeError):
  """A scenario's official bots were asked for but are not installed."""


# ----------------------------------------------------------------------------
# Names, read from the package's config files (no import).
# ----------------------------------------------------------------------------


def package_dir() -> Optional[str]:
  """The installed ``meltingpot`` package directory, or None."""
  try:
    spec = importlib.util.find_spec(_PACKAGE)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


def _parse_substrates(path: str) -> Tuple[str, ...]:
  """``SUBSTRATES = frozenset({...})`` of ``configs/substrates/__init__.py``."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    targets = []
    if isinstance(node, ast.Assign):
      targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign):
      targets, value = [node.target], node.value
    if any(isinstance(t, ast.Name) and t.id == 'SUBSTRATES' for t in targets):
      names = [n.value for n in ast.walk(value)
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
      if names:
        return tuple(sorted(names))
  raise ValueError(f'{path} has no SUBSTRATES.')


def _parse_scenarios(path: str) -> Tuple[str, ...]:
  """Keyword names of ``SCENARIO_CONFIGS = immutabledict(...)``."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    targets = []
    if isinstance(node, ast.Assign):
      targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign):
      targets, value = [node.target], node.value
    if (any(isinstance(t, ast.Name) and t.id == 'SCENARIO_CONFIGS'
            for t in targets) and isinstance(value, ast.Call)):
      names = [k.arg for k in value.keywords if k.arg]
      if names:
        return tuple(sorted(names))
  raise ValueError(f'{path} has no SCENARIO_CONFIGS.')


def _fallback_names() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
  substrates = tuple(sorted(SUBSTRATES_2_4_1))
  scenarios = tuple(sorted(
      f'{s}_{i}' for s, n in SUBSTRATES_2_4_1.items() for i in range(n)
      if f'{s}_{i}' not in _NO_SCENARIOS_2_4_1))
  return substrates, scenarios


def _discover() -> Tuple[Tuple[str, ...], Tuple[str, ...], bool]:
  """``(substrates, scenarios, installed)``."""
  root = package_dir()
  if root is None:
    return _fallback_names() + (False,)
  try:
    substrates = _parse_substrates(
        os.path.join(root, 'configs', 'substrates', '__init__.py'))
    scenarios = _parse_scenarios(
        os.path.join(root, 'configs', 'scenarios', '__init__.py'))
  except (OSError, SyntaxError, ValueError):
    return _fallback_names() + (True,)
  return substrates, scenarios, True


SUBSTRATES, SCENARIOS, _INSTALLED = _discover()


# ----------------------------------------------------------------------------
# The package, imported without TensorFlow, lazily and once.
# ----------------------------------------------------------------------------

_SUBMODULES = ('bot', 'scenario', 'substrate')
_import_lock = threading.Lock()


def _register_bare_package() -> None:
  """Puts ``meltingpot`` in ``sys.modules`` without running its ``__init__``.

  ``meltingpot/__init__.py`` imports ``meltingpot.bot``, which imports
  TensorFlow. The bare package module has the same ``__path__``, so every
  submodule imports as usual; its ``__getattr__`` imports ``bot``,
  ``scenario`` and ``substrate`` on first access, so ``import meltingpot;
  meltingpot.bot`` keeps working (and only then imports TensorFlow).
  """
  if _PACKAGE in sys.modules:
    return
  spec = importlib.util.find_spec(_PACKAGE)
  if spec is None:
    raise ImportError(_INSTALL_HINT)
  module = importlib.util.module_from_spec(spec)

  def lazy_attribute(name):
    if name in _SUBMODULES:
      return importlib.import_module(f'{_PACKAGE}.{name}')
    raise AttributeError(f'module {_PACKAGE!r} has no attribute {name!r}')

  module.__getattr__ = lazy_attribute
  sys.modules[_PACKAGE] = module


@functools.lru_cache(maxsize=None)
def modules():
  """The TensorFlow-free meltingpot modules we use, as a dict:
  ``substrate_configs``, ``scenario_configs`` (``meltingpot.configs``),
  ``substrate_lib``, ``scenario_lib`` (``meltingpot.utils``). ``ImportError``
  saying how to install dm-meltingpot when it is not installed."""
  if package_dir() is None:
    raise ImportError(_INSTALL_HINT)
  with _import_lock:
    _register_bare_package()
    try:
      # pylint: disable=g-import-not-at-top
      from meltingpot.configs import scenarios as scenario_configs
      from meltingpot.configs import substrates as substrate_configs
      from meltingpot.utils.scenarios import scenario as scenario_lib
      from meltingpot.utils.substrates import substrate as substrate_lib
      # pylint: enable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f'{_INSTALL_HINT} ({e})') from e
  return dict(substrate_configs=substrate_configs,
              scenario_configs=scenario_configs, scenario_lib=scenario_lib,
              substrate_lib=substrate_lib)


@contextlib.contextmanager
def _silenced_stdout(enabled: bool):
  """Sends file descriptor 1 to /dev/null (dmlab2d's Lua writes there)."""
  if not enabled:
    yield
    return
  try:
    sys.stdout.flush()
  except (AttributeError, ValueError):
    pass
  try:
    saved = os.dup(1)
  except OSError:
    yield
    return
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 1)
    yield
  finally:
    os.dup2(saved, 1)
    os.close(saved)
    os.close(devnull)


# ----------------------------------------------------------------------------
# Assets (the scenario bots).
# ----------------------------------------------------------------------------


def assets_dir() -> Optional[str]:
  root = package_dir()
  return None if root is None else os.path.join(root, 'assets')


def bots_installed() -> bool:
  """Whether the official bots (``assets/saved_models``) are installed."""
  root = assets_dir()
  return root is not None and os.path.isdir(os.path.join(root, 'saved_models'))


def missing_bots_message(missing: Sequence[str], needed_by: str,
                         instead: str) -> str:
  """One line: ``needed_by`` needs the official bots ``missing``, which are
  not installed; why, and how to install them; then ``instead``."""
  root = assets_dir()
  marker = os.path.join(root, STANDIN_MARKER) if root else None
  models = os.path.join(root or '<meltingpot>/assets', 'saved_models')
  why = (f'dm-meltingpot was installed with a stand-in for the assets '
         f'(no network when it was built; see {marker}).'
         if marker and os.path.exists(marker) else
         f'their saved models are not under {models}.')
  cached = os.path.join(tempfile.gettempdir(), ASSETS_ARCHIVE)
  return (
      f'{needed_by} needs the official Melting Pot bots '
      f'({", ".join(sorted(missing)[:4])}{", ..." if len(missing) > 4 else ""}'
      f'), which are not installed: {why} To install them, download '
      f'{ASSETS_URL} to {cached} (or set MARL_JAX_MELTINGPOT_ASSETS=/path/to/'
      f'{ASSETS_ARCHIVE}), then run: pip install --no-cache-dir '
      f'--force-reinstall --no-deps dm-meltingpot==2.4.1. {instead}')


def _missing_bots_message(scenario: str, missing: Sequence[str]) -> str:
  return missing_bots_message(
      missing, f'Scenario {scenario!r}',
      "Or use another background: background='random', 'noop', a trained "
      'run (marl_jax.evaluation.backgrounds) or any meltingpot Policy.')


# ----------------------------------------------------------------------------
# Observations.
# ----------------------------------------------------------------------------


def _readonly(x: np.ndarray) -> np.ndarray:
  x.setflags(write=False)
  return x


class _Converter:
  """Per-player Melting Pot observation dicts -> our ``[N, ...]`` arrays."""

  def __init__(self, player_spec, global_state: str):
    """Args: ``player_spec``: one player's dict name -> dm_env Array spec."""
    if 'RGB' not in player_spec:
      raise ValueError(f'The substrate has no RGB observation: '
                       f'{sorted(player_spec)}.')
    self.has = {k: k in player_spec for k in _ZERO_SHAPES}
    self.spec = {'RGB': ArraySpec(tuple(player_spec['RGB'].shape),
                                  np.dtype(np.uint8))}
    for key, zero_shape in _ZERO_SHAPES.items():
      shape = tuple(player_spec[key].shape) if self.has[key] else zero_shape
      self.spec[key] = ArraySpec(shape, np.dtype(np.float32))
    self.spec['COLLECTIVE_REWARD'] = ArraySpec((), np.dtype(np.float32))
    self._present = tuple(k for k, present in self.has.items() if present)
    self._global = global_state == 'world_rgb'
    if self._global:
      if _WORLD_RGB not in player_spec:
        raise ValueError("global_state='world_rgb' but the substrate has no "
                         f'{_WORLD_RGB} observation.')
      self.spec[GLOBAL] = ArraySpec(tuple(player_spec[_WORLD_RGB].shape),
                                    np.dtype(np.uint8))
      self._world_shape = self.spec[GLOBAL].shape
    self._zeros = {}
    self._views = {}

  def zeros_for(self, n: int) -> Dict[str, np.ndarray]:
    """Read-only zero arrays ``[n, ...]`` of the keys the substrate lacks."""
    zeros = self._zeros.get(n)
    if zeros is None:
      zeros = self._zeros[n] = {
          k: _readonly(self.spec[k].zeros((n,)))
          for k, present in self.has.items() if not present}
      if self._global:  # shape and strides of GLOBAL's stride-0 view
        strides = np.zeros(self._world_shape, np.uint8).strides
        self._views[n] = ((n,) + self._world_shape, (0,) + strides)
    return zeros

  def __call__(self, observations: Sequence[Any]) -> Dict[str, Any]:
    """``observations``: a sequence of per-player dicts."""
    n = len(observations)
    first = observations[0]
    zeros = self._zeros.get(n)
    if zeros is None:
      zeros = self.zeros_for(n)
    # np.array of a list is several times faster than np.stack here.
    out = {**zeros,
           'RGB': np.array([o['RGB'] for o in observations]),
           'COLLECTIVE_REWARD': np.array(
               (float(first['COLLECTIVE_REWARD']),) * n, np.float32)}
    for key in self._present:
      out[key] = np.array([o[key] for o in observations], np.float32)
    if self._global:
      world = first[_WORLD_RGB]
      view = self._views.get(n)
      if view is not None and world.shape == self._world_shape:
        try:  # a read-only view repeating `world` n times (stride 0)
          out[GLOBAL] = rows = np.ndarray(view[0], np.uint8, world, 0, view[1])
          rows.setflags(write=False)
          return out
        except (TypeError, ValueError, BufferError):  # not contiguous
          pass
      out[GLOBAL] = _repeat_view(world, n)
    return out


def _repeat_view(x: np.ndarray, n: int) -> np.ndarray:
  """``x`` repeated ``n`` times along a new axis 0, without copying.

  A read-only view, as ``np.broadcast_to`` gives, about 3x faster.
  """
  try:
    out = np.ndarray((n,) + x.shape, x.dtype, x, 0, (0,) + x.strides)
  except (TypeError, ValueError, BufferError):  # not a contiguous buffer
    return np.broadcast_to(x, (n,) + x.shape)
  out.setflags(write=False)
  return out


# ----------------------------------------------------------------------------
# The environment.
# ----------------------------------------------------------------------------


class MeltingPot(Environment):
  """A Melting Pot substrate, or a scenario's focal players, as one env."""

  def __init__(self,
               substrate: Optional[str] = None,
               *,
               scenario: Optional[str] = None,
               roles: Optional[Sequence[str]] = None,
               max_episode_steps: Optional[int] = None,
               global_state: str = 'world_rgb',
               background='bots',
               seed: Optional[int] = None,
               quiet: bool = True):
    """Builds the environment.

    Args:
      substrate: a substrate name (``SUBSTRATES``); or None with ``scenario``.
      scenario: a scenario name (``SCENARIOS``): focal players vs background.
      roles: one role per player (substrates only; default: the substrate's
        ``default_player_roles``); their number is the number of agents.
      max_episode_steps: episode length; default: the substrate's own.
      global_state: ``'world_rgb'`` adds ``GLOBAL`` (``WORLD.RGB``), ``'none'``
        does not.
      background: scenarios only: ``'bots'`` (the official saved-model bots),
        ``'random'``, ``'noop'``, a meltingpot Policy (not closed by
        ``close()``) or a factory ``factory(substrate=..., seed=...)`` of one
        (closed by ``close()``); see ``backgrounds.py``.
      seed: seeds what Python draws for the substrate (and ``'random'``'s
        generator); None draws a seed. Not an exact-replay seed (see above).
      quiet: silence dmlab2d's Lua warnings on stdout during builds/resets.

    Raises:
      ValueError: an invalid argument (the message names it).
      ImportError: dm-meltingpot is not installed.
      MissingBotsError: ``background='bots'`` without the bots installed.
    """
    if (substrate is None) == (scenario is None):
      raise ValueError('Give exactly one of substrate and scenario.')
    if scenario is not None:
      _check_name('scenario', scenario, SCENARIOS)
    else:
      _check_name('substrate', substrate, SUBSTRATES)
    self._global_state = _checks.one_of('global_state', global_state,
                                        GLOBAL_STATES)
    if max_episode_steps is not None:
      max_episode_steps = _checks.positive_int('max_episode_steps',
                                               max_episode_steps)
    if seed is not None:
      seed = _checks.non_negative_int('seed', seed)
    if scenario is not None and roles is not None:
      raise ValueError('roles is for substrates; a scenario fixes its roles.')
    if scenario is not None:
      backgrounds.check(background)
    self._quiet = bool(quiet)
    self._scenario_name = scenario
    mods = modules()
    self._mods = mods

    self._is_focal = None
    if scenario is not None:
      scenario_config = mods['scenario_configs'].SCENARIO_CONFIGS[scenario]
      substrate = scenario_config.substrate
      roles = tuple(scenario_config.roles)
      self._is_focal = np.asarray(scenario_config.is_focal, bool)
    self._substrate_name = substrate
    config = mods['substrate_configs'].get_config(substrate)
    if roles is None:
      roles = tuple(config.default_player_roles)
    else:
      roles = tuple(roles)
      if not roles:
        raise ValueError('roles must name at least one role.')
      invalid = sorted(set(roles) - set(config.valid_roles))
      if invalid:
        raise ValueError(f'roles {invalid} are not roles of {substrate}; valid '
                         f'roles: {", ".join(sorted(config.valid_roles))}.')
    self._roles = roles
    self._num_actions = int(config.action_spec.num_values)

    # Build the substrate (and the scenario around it).
    self._owned_policy = None
    self._substrate = self._build_substrate(config, roles, max_episode_steps,
                                            seed)
    self._player_spec = dict(self._substrate.observation_spec()[0])
    try:
      self._converter = _Converter(self._player_spec, self._global_state)
    except ValueError:
      self._substrate.close()
      raise
    num_players = len(roles)
    self._n = (num_players if self._is_focal is None
               else int(self._is_focal.sum()))
    self._spec = EnvSpec(
        num_agents=self._n, observation=dict(self._converter.spec),
        num_actions=self._num_actions, max_episode_steps=self._max_steps,
        info_keys=() if self._is_focal is None else INFO_KEYS_SCENARIO)
    self._env = self._substrate
    if self._is_focal is not None:
      try:
        self._env = self._build_scenario(scenario_config, background, seed)
      except BaseException:
        self._substrate.close()
        raise
    self._needs_reset = True
    self._t = 0
    self._last_obs = None
    self._last_raw = None
    self._background_rewards = np.zeros(
        (0 if self._is_focal is None else int((~self._is_focal).sum()),),
        np.float32)
    self._info_empty = {}

  # -- Building ---------------------------------------------------------------

  def _build_substrate(self, config, roles, max_episode_steps, seed):
    substrate_lib = self._mods['substrate_lib']
    state = random.getstate()
    try:
      if seed is not None:
        # Some configs draw their map from the global `random` (coins), and
        # builder.builder draws the Lua seed of the first episode from it
        # (later episodes count up from there).
        random.seed(seed)
      settings = dict(config.lab2d_settings_builder(roles=roles,
                                                    config=config))
      if max_episode_steps is not None:
        settings['maxEpisodeLengthFrames'] = max_episode_steps
      self._max_steps = int(settings['maxEpisodeLengthFrames'])
      with _silenced_stdout(self._quiet):
        return substrate_lib.build_substrate(
            lab2d_settings=settings,
            individual_observations=config.individual_observation_names,
            global_observations=config.global_observation_names,
            action_table=config.action_set)
    finally:
      if seed is not None:
        random.setstate(state)

  def _build_scenario(self, scenario_config, background, seed):
    scenario_lib = self._mods['scenario_lib']
    background_roles = sorted({
        r for r, focal in zip(scenario_config.roles, scenario_config.is_focal)
        if not focal})
    if isinstance(background, str) and background == 'bots':
      bot_names = sorted(set().union(*(
          scenario_config.bots_by_role[r] for r in background_roles)))
      bots = self._official_bots(bot_names)
      bots_by_role = {r: scenario_config.bots_by_role[r]
                      for r in background_roles}
    else:
      # Background players always see GLOBAL: a run trained with it works
      # as background whatever this environment's global_state.
      policy, owned = backgrounds.build(
          background, substrate=self._substrate_name,
          num_actions=self._num_actions,
          converter=_Converter(self._player_spec, 'world_rgb'), seed=seed)
      if owned:
        self._owned_policy = policy
      else:
        policy = backgrounds.NoClose(policy)
      bots = {'marl_jax_background': policy}
      bots_by_role = {r: ('marl_jax_background',) for r in background_roles}
    # All observations are kept for the focal players (GLOBAL needs
    # WORLD.RGB); the converter passes on only ours.
    permitted = frozenset().union(*self._substrate.observation_spec())
    env = scenario_lib.build_scenario(
        substrate=self._substrate, bots=bots, bots_by_role=bots_by_role,
        roles=scenario_config.roles, is_focal=scenario_config.is_focal,
        permitted_observations=permitted)
    env.observables().background.timestep.subscribe(self._on_background)
    return env

  def _official_bots(self, bot_names):
    # pylint: disable=g-import-not-at-top
    from meltingpot.configs import bots as bot_configs
    # pylint: enable=g-import-not-at-top
    missing = [b for b in bot_names if b in bot_configs.BOT_CONFIGS and
               not os.path.isdir(bot_configs.BOT_CONFIGS[b].model_path)]
    if missing:
      raise MissingBotsError(_missing_bots_message(self._scenario_name,
                                                   missing))
    bot_lib = importlib.import_module('meltingpot.bot')  # imports TensorFlow
    bots = {}
    try:
      for name in bot_names:
        bots[name] = bot_lib.build(name)
    except BaseException:
      for policy in bots.values():
        policy.close()
      raise
    return bots

  def _on_background(self, timestep) -> None:
    self._background_rewards = np.array(timestep.reward, np.float32)

  # -- Properties -------------------------------------------------------------

  @property
  def substrate_name(self) -> str:
    return self._substrate_name

  @property
  def scenario_name(self) -> Optional[str]:
    return self._scenario_name

  @property
  def roles(self) -> Tuple[str, ...]:
    """Every player's role (focal and background)."""
    return self._roles

  @property
  def is_focal(self) -> Optional[np.ndarray]:
    """Scenarios: which player slots are our agents; None for substrates."""
    return None if self._is_focal is None else self._is_focal.copy()

  @property
  def zero_filled(self) -> Tuple[str, ...]:
    """Observation keys the substrate lacks, given as zeros."""
    return tuple(k for k, present in self._converter.has.items()
                 if not present)

  @property
  def last_background_rewards(self) -> np.ndarray:
    """Each background player's reward on the last step (scenarios)."""
    return self._background_rewards.copy()

  @property
  def last_meltingpot_timestep(self):
    """The dm_env ``TimeStep`` meltingpot's env last returned, as its own
    policies see it (every player's observation dict with all the
    substrate's keys, per-player rewards); None before the first reset."""
    return self._last_raw

  @property
  def meltingpot_env(self):
    """meltingpot's ``Substrate`` or ``Scenario`` (do not step it)."""
    return self._env

  # -- Contract ---------------------------------------------------------------

  def spec(self) -> EnvSpec:
    return self._spec

  def reset(self) -> TimeStep:
    with _silenced_stdout(self._quiet):
      ts = self._env.reset()
    self._needs_reset = False
    self._t = 0
    self._background_rewards = np.zeros_like(self._background_rewards)
    return self._first_timestep(ts)

  def step(self, actions) -> TimeStep:
    actions = _checks.actions(actions, self._n, self._num_actions)
    if self._needs_reset:
      return self._next_episode(actions)
    ts = self._env.step(actions)
    t = self._t = self._t + 1
    if t < self._max_steps and ts.step_type != _LAST:
      step_type, discount = _MID, _ONE
    else:
      # At the time limit a truncation; else the substrate ended the episode.
      self._needs_reset = True
      step_type = _LAST
      discount = _ONE if t >= self._max_steps else np.float32(ts.discount)
    observations = self._last_obs = ts.observation
    self._last_raw = ts
    info = (self._info_empty if self._is_focal is None else
            self._background_info())
    return TimeStep(step_type, np.array(ts.reward, np.float32), discount,
                    self._converter(observations), info)

  def _next_episode(self, actions) -> TimeStep:
    """The step after ``LAST`` (or before any reset)."""
    if self._last_obs is None:
      return self.reset()
    # meltingpot's own continuation: dmlab2d starts the next episode in the
    # same Lua state (reset() rebuilds it, several times slower).
    with _silenced_stdout(self._quiet):
      ts = self._env.step(actions)
    if ts.step_type != _FIRST:
      return self.reset()
    self._needs_reset = False
    self._t = 0
    self._background_rewards = np.zeros_like(self._background_rewards)
    return self._first_timestep(ts)

  def _background_info(self) -> Dict[str, np.ndarray]:
    background = self._background_rewards
    mean = background.mean() if background.size else 0.0
    return {'background_reward': np.full((self._n,), mean, np.float32)}

  def _first_timestep(self, ts) -> TimeStep:
    observations = self._last_obs = ts.observation
    self._last_raw = ts
    info = (self._info_empty if self._is_focal is None else
            self._background_info())
    return TimeStep(_FIRST, np.zeros((self._n,), np.float32), _ONE,
                    self._converter(observations), info)

  def render(self) -> np.ndarray:
    """The whole map (``WORLD.RGB``) ``[H, W, 3]`` uint8 of the current step."""
    if self._last_obs is None:
      self.reset()
    return np.array(self._last_obs[0][_WORLD_RGB], np.uint8)

  def get_state(self) -> None:
    """None: dmlab2d cannot snapshot an episode (resumed runs start anew)."""
    return None

  def close(self) -> None:
    if self._env is not None:
      self._env.close()
      self._env = None
    if self._owned_policy is not None:
      self._owned_policy.close()
      self._owned_policy = None

  def __repr__(self) -> str:
    what = (f'scenario={self._scenario_name!r}' if self._scenario_name else
            f'substrate={self._substrate_name!r}')
    return (f'MeltingPot({what}, num_agents={self._n}, '
            f'max_episode_steps={self._max_steps})')


def _check_name(kind: str, name: str, valid: Sequence[str]) -> None:
  if name not in valid:
    close = difflib.get_close_matches(str(name), valid, n=3)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    raise ValueError(f'Unknown Melting Pot {kind} {name!r}.{hint} Valid '
                     f'{kind}s: {", ".join(valid)}.')


def make_substrate(name: str, **kwargs) -> MeltingPot:
  """``make("meltingpot/<substrate>", **kwargs)``: the registry's factory."""
  return MeltingPot(substrate=name, **kwargs)


def make_scenario(name: str, **kwargs) -> MeltingPot:
  """``make("meltingpot_scenario/<scenario>", **kwargs)``: the registry's
  factory."""
  return MeltingPot(scenario=name, **kwargs)


def substrate_of(env_name: str) -> Optional[str]:
  """The substrate of ``meltingpot/<substrate>`` or
  ``meltingpot_scenario/<scenario>``; None for any other name."""
  family, _, name = str(env_name).partition('/')
  if family == 'meltingpot' and name in SUBSTRATES:
    return name
  if family == 'meltingpot_scenario' and name in SCENARIOS:
    return name.rpartition('_')[0]
  return None
