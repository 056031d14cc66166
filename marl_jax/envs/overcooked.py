"""Overcooked-AI (the ``overcooked-ai`` 1.1.0 package) as a marl_jax environment.

``make("overcooked/<layout>")`` gives a two-player ``Overcooked`` environment
for every two-player layout the package ships. Observations are either the
package's hand-designed features (``FEATURES``, ``[2, 96]`` float32) or its
lossless grid encoding (``GRID``, ``[2, width, height, 26]`` float32), both
player-centric: row ``i`` is what agent ``i`` sees, with itself first.

Rewards: each agent receives the sparse *team* reward (20 per soup delivered,
by either agent) plus ``weight`` times its own shaped reward (placing an
ingredient in a pot, picking up a useful dish, picking up a soup). ``weight``
starts at ``reward_shaping_factor`` and anneals linearly to 0 over
``reward_shaping_horizon`` environment steps of the *whole run*, which the
runtime reports through ``set_training_progress``.

The horizon is a time limit: the ``LAST`` step has discount 1 (truncation).

Dynamics: by default the package's (1.1.0) rules, where a full pot waits for
an empty-handed interact to start cooking. ``old_dynamics=True`` gives the
2019 rules of Carroll et al., under which the human-human trials were played
(``overcooked_human``) and which JaxMARL's Overcooked implements: a pot
starts cooking by itself when its third onion goes in, and an empty-handed
interact on a pot does nothing. Cooking takes 20 steps either way; a soup
is worth 20. (overcooked-ai 1.1.0 has no such switch; later releases do.)

Notes on the package, and what this module does about them:
  * overcooked-ai 1.1.0 uses ``np.Inf``, which numpy 2 removed; we restore the
    alias before importing it. (``np.int`` is also used, but only by the random
    layout generator, which we never call; we do not restore it.)
  * ``import gym`` prints a deprecation notice to stderr; we silence that one
    import.
  * ``OvercookedEnv.step`` (and the package's ``MediumLevelActionManager``,
    which steps an ``OvercookedEnv`` internally) builds its planner with
    ``from_pickle_or_compute``, which pickles planners into the package's own
    data directory in site-packages. We never call either: we step the MDP
    with ``OvercookedGridworld.get_state_transition`` (the same transition
    ``OvercookedEnv.step`` uses) and featurize with a ``MotionPlanner`` built
    in memory, once per layout per process. ``featurize_state`` only reads
    ``mlam.motion_planner``, and the action manager's motion planner is built
    with the same arguments (``counter_goals=[]``), so the features are the
    package's own.
  * The package's planning agents (``GreedyHumanModel``) need a
    ``MediumLevelActionManager``. Its constructor rolls joint plans out in an
    ``OvercookedEnv`` whose ``step`` loads (or computes and pickles) a motion
    planner in site-packages. ``action_manager(layout)`` builds the same
    manager with the same parameters (``NO_COUNTERS_PARAMS``) in memory:
    plans are rolled out with ``get_state_transition`` instead, which gives
    the same end positions (``OvercookedEnv.step`` calls exactly that), and
    the result is cached in this process only.
  * ``Recipe`` (cook times, soup values) is configured *globally* by whichever
    ``OvercookedGridworld`` was built last. Every call that simulates or
    encodes a state first re-applies this environment's recipe configuration
    (an identity check when nothing changed), so environments of different
    layouts can share a process.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import glob
import importlib.util
import io
import os
import sys
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs.base import Environment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

NUM_AGENTS = 2
NUM_ACTIONS = 6
ACTION_NAMES = ('NORTH', 'SOUTH', 'EAST', 'WEST', 'STAY', 'INTERACT')
OBSERVATION_TYPES = ('featurized', 'lossless')
INFO_KEYS = ('sparse_reward', 'shaped_reward')
# The layouts of Carroll et al. (2019), "On the utility of learning about humans
# for human-AI coordination".
CLASSIC_LAYOUTS = ('cramped_room', 'asymmetric_advantages', 'coordination_ring',
                   'forced_coordination', 'counter_circuit_o_1order')
_PACKAGE = 'overcooked_ai_py'
_INSTALL_HINT = ('Overcooked needs the overcooked-ai package: '
                 'pip install overcooked-ai==1.1.0')


def linear_anneal(step: float, start: float, horizon: int) -> float:
  """A weight that decays linearly from ``start`` to 0 over ``horizon`` steps.

  Args:
    step: steps taken so far (>= 0).
    start: the weight at step 0.
    horizon: steps until the weight reaches 0; 0 means never anneal.

  Returns:
    ``start * max(0, 1 - step / horizon)``, or ``start`` when ``horizon == 0``.
  """
  if step < 0:
    raise ValueError(f'step must be >= 0, got {step!r}.')
  if horizon < 0:
    raise ValueError(f'horizon must be >= 0, got {horizon!r}.')
  if horizon == 0:
    return float(start)
  return float(start) * max(0.0, 1.0 - float(step) / float(horizon))


# ----------------------------------------------------------------------------
# Layout discovery (no import of the package: it imports gym).
# ----------------------------------------------------------------------------


def _package_dir() -> Optional[str]:
  spec = importlib.util.find_spec(_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


def _layout_num_players(path: str) -> int:
  """Counts the players ('1'..'9') in a ``.layout`` file's grid."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  tree = ast.parse(text, mode='eval')
  if isinstance(tree.body, ast.Dict):
    for key, value in zip(tree.body.keys, tree.body.values):
      if isinstance(key, ast.Constant) and key.value == 'grid':
        grid = ast.literal_eval(value)
        return sum(c in '123456789' for c in grid)
  raise ValueError(f'{path} has no "grid" entry.')


def _discover_layouts() -> Tuple[str, ...]:
  """Names of the package's two-player layouts, sorted."""
  package_dir = _package_dir()
  if package_dir is None:
    return CLASSIC_LAYOUTS
  names = []
  for path in glob.glob(os.path.join(package_dir, 'data', 'layouts',
                                     '*.layout')):
    try:
      num_players = _layout_num_players(path)
    except (OSError, SyntaxError, ValueError):
      continue
    # The wrapper is two-player: the package's lossless encoding asserts two
    # players and its featurization fails for one. In 1.1.0 this leaves out
    # `cramped_room_single` (1 player) and `multiplayer_schelling` (4).
    if num_players == NUM_AGENTS:
      names.append(os.path.basename(path)[:-len('.layout')])
  return tuple(sorted(names))


LAYOUTS = _discover_layouts()


# ----------------------------------------------------------------------------
# The package, imported lazily and once.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _package():
  """Imports overcooked_ai_py with the numpy 2 and gym fixes; returns modules."""
  if importlib.util.find_spec(_PACKAGE) is None:
    raise ImportError(_INSTALL_HINT)
  if not hasattr(np, 'Inf'):
    np.Inf = np.inf  # Removed in numpy 2; the planners use it.
  os.environ.setdefault('PYGAME_HIDE_SUPPORT_PROMPT', '1')
  if 'gym' not in sys.modules:
    # gym 0.26 prints a multi-line "please upgrade to Gymnasium" notice.
    with contextlib.redirect_stderr(io.StringIO()):
      import gym  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  # pylint: disable=g-import-not-at-top
  from overcooked_ai_py.mdp import actions
  from overcooked_ai_py.mdp import overcooked_mdp
  from overcooked_ai_py.planning import planners
  # pylint: enable=g-import-not-at-top
  return actions, overcooked_mdp, planners


class _MotionPlannerOnly:
  """What ``OvercookedGridworld.featurize_state`` reads from its ``mlam``."""

  def __init__(self, motion_planner):
    self.motion_planner = motion_planner


@functools.lru_cache(maxsize=None)
def _old_dynamics_class():
  """``OvercookedGridworld`` with the 2019 cooking rules (module docstring)."""
  _, overcooked_mdp, _ = _package()

  class OldDynamicsGridworld(overcooked_mdp.OvercookedGridworld):
    """A pot starts cooking when its last ingredient goes in, by itself.

    The rules of the 2019 game (Carroll et al.), under which the human-human
    trials were recorded: interacting with an empty hand on a pot does
    nothing, and a pot that has just been filled starts cooking within the
    same step, so the environment effects of that step already advance it
    by one tick (the recorded soups read 1 right after the third onion).
    """

    def soup_to_be_cooked_at_location(self, state, pos):
      del state, pos
      return False  # Only read by the empty-handed pot interact.

    def resolve_interacts(self, new_state, joint_action, events_infos):
      rewards = super().resolve_interacts(new_state, joint_action,
                                          events_infos)
      for obj in new_state.objects.values():
        if obj.name == 'soup' and obj.is_idle and obj.is_full:
          obj.begin_cooking()
      return rewards

  return OldDynamicsGridworld


@functools.lru_cache(maxsize=None)
def _load_layout(layout: str, old_dynamics: bool = False):
  """The layout's MDP and featurization planner, built once per process.

  Returns:
    ``(mdp, planner, seconds)`` where ``seconds`` is how long building took.
  """
  _, overcooked_mdp, planners = _package()
  start = time.perf_counter()
  mdp = overcooked_mdp.OvercookedGridworld.from_layout_name(layout)
  if old_dynamics:
    # `from_layout_name` always builds the base class; this instance is ours
    # alone (cached per (layout, dynamics)), so retyping it is safe.
    mdp.__class__ = _old_dynamics_class()
  counter_goals = planners.NO_COUNTERS_PARAMS['counter_goals']
  planner = _MotionPlannerOnly(
      planners.MotionPlanner(mdp, counter_goals=counter_goals))
  return mdp, planner, time.perf_counter() - start


def setup_seconds(layout: str) -> float:
  """Seconds this process spent building ``layout``'s MDP and planner."""
  return _load_layout(layout)[2]


@functools.lru_cache(maxsize=None)
def _load_action_manager(layout: str):
  """``(MediumLevelActionManager, seconds)`` of ``layout``, built in memory."""
  _, overcooked_mdp, planners = _package()
  mdp, _, _ = _load_layout(layout)
  configure_recipes(mdp)
  horizon = 200  # As the package's rollout: plans are far shorter.

  class InMemoryJointMotionPlanner(planners.JointMotionPlanner):
    """Rolls plans out on the MDP, never through ``OvercookedEnv``."""

    def _rollout_end_pos_and_or(self, joint_start_state, joint_action_plan):
      state = overcooked_mdp.OvercookedState.from_players_pos_and_or(
          joint_start_state, all_orders=self.mdp.start_all_orders)
      for joint_action in joint_action_plan:
        if state.timestep >= horizon:
          raise RuntimeError(f'A joint plan on {layout} is longer than '
                             f'{horizon} steps.')
        state, _ = self.mdp.get_state_transition(state, joint_action)
      return state.players_pos_and_or

  class InMemoryActionManager(planners.MediumLevelActionManager):
    """``MediumLevelActionManager.__init__`` with the joint planner above."""

    # pylint: disable-next=super-init-not-called
    def __init__(self, mdp, mlam_params):
      self.mdp = mdp
      self.params = mlam_params
      self.wait_allowed = mlam_params['wait_allowed']
      self.counter_drop = mlam_params['counter_drop']
      self.counter_pickup = mlam_params['counter_pickup']
      self.joint_motion_planner = InMemoryJointMotionPlanner(mdp, mlam_params)
      self.motion_planner = self.joint_motion_planner.motion_planner

  start = time.perf_counter()
  mlam = InMemoryActionManager(mdp, dict(planners.NO_COUNTERS_PARAMS))
  return mlam, time.perf_counter() - start


def action_manager(layout: str):
  """The package's ``MediumLevelActionManager`` for ``layout`` (shared).

  Built in memory on first use (nothing is written to disk) and cached for
  the life of the process; see ``action_manager_seconds``. Do not mutate.
  """
  if layout not in LAYOUTS:
    raise ValueError(f'Unknown Overcooked layout {layout!r}.')
  return _load_action_manager(layout)[0]


def action_manager_seconds(layout: str) -> float:
  """Seconds this process spent building ``layout``'s action manager."""
  return _load_action_manager(layout)[1]


def configure_recipes(mdp) -> None:
  """Makes ``mdp``'s recipe configuration the package's global one.

  ``Recipe`` is configured globally by the last ``OvercookedGridworld`` built;
  anything that simulates or plans on ``mdp`` calls this first (an identity
  check when nothing changed).
  """
  _, overcooked_mdp, _ = _package()
  recipe = overcooked_mdp.Recipe
  # pylint: disable-next=protected-access
  if recipe._conf is not mdp.recipe_config:
    recipe.configure(mdp.recipe_config)


# ----------------------------------------------------------------------------
# Picklable snapshots of OvercookedState, as plain Python data.
# ----------------------------------------------------------------------------


def _encode_object(obj) -> tuple:
  if obj.name == 'soup':
    return ('soup', tuple(obj.position), tuple(obj.ingredients),
            int(obj._cooking_tick))  # pylint: disable=protected-access
  return (obj.name, tuple(obj.position))


def _decode_object(code: tuple, overcooked_mdp):
  if code[0] == 'soup':
    _, pos, ingredients, cooking_tick = code
    return overcooked_mdp.SoupState(
        pos, [overcooked_mdp.ObjectState(name, pos) for name in ingredients],
        cooking_tick)
  return overcooked_mdp.ObjectState(code[0], code[1])


def _encode_state(state) -> Dict[str, Any]:
  return {
      'players': [(tuple(p.position), tuple(p.orientation),
                   None if p.held_object is None else
                   _encode_object(p.held_object)) for p in state.players],
      'objects': [_encode_object(o) for o in state.objects.values()],
      'bonus_orders': [tuple(r.ingredients) for r in state.bonus_orders],
      'all_orders': [tuple(r.ingredients) for r in state.all_orders],
      'timestep': int(state.timestep),
  }


def _decode_state(code: Dict[str, Any], overcooked_mdp):
  players = []
  for pos, orientation, held in code['players']:
    held = None if held is None else _decode_object(held, overcooked_mdp)
    players.append(overcooked_mdp.PlayerState(pos, orientation, held))
  objects = {}
  for obj_code in code['objects']:
    obj = _decode_object(obj_code, overcooked_mdp)
    objects[obj.position] = obj
  return overcooked_mdp.OvercookedState(
      players, objects,
      bonus_orders=[{'ingredients': i} for i in code['bonus_orders']],
      all_orders=[{'ingredients': i} for i in code['all_orders']],
      timestep=code['timestep'])


# ----------------------------------------------------------------------------
# The environment.
# ----------------------------------------------------------------------------


class Overcooked(Environment):
  """Two-player Overcooked-AI on one of the package's layouts."""

  def __init__(self,
               layout: str = 'cramped_room',
               horizon: int = 400,
               observation: str = 'featurized',
               reward_shaping_factor: float = 1.0,
               reward_shaping_horizon: int = 0,
               render_tile_size: int = 45,
               old_dynamics: bool = False):
    """Builds the environment.

    Args:
      layout: a two-player layout shipped with overcooked-ai (see ``LAYOUTS``).
      horizon: episode length in steps; the last step is a truncation.
      observation: ``'featurized'`` (``FEATURES`` ``[2, 96]``) or
        ``'lossless'`` (``GRID`` ``[2, width, height, 26]``).
      reward_shaping_factor: initial weight of the shaped reward.
      reward_shaping_horizon: run-wide environment steps over which the weight
        anneals linearly to 0; 0 keeps it constant.
      render_tile_size: pixels per grid tile in ``render()``.
      old_dynamics: the 2019 cooking rules under which the human-human
        trials were played (and which JaxMARL's Overcooked implements): a pot
        starts cooking by itself when its third ingredient goes in. False
        gives the package's rules, where a full pot waits for an
        empty-handed interact.

    Raises:
      ValueError: an invalid argument (the message names it).
      ImportError: overcooked-ai is not installed.
    """
    if layout not in LAYOUTS:
      close = difflib.get_close_matches(str(layout), LAYOUTS, n=3)
      hint = f' Did you mean {", ".join(close)}?' if close else ''
      raise ValueError(f'Unknown Overcooked layout {layout!r}.{hint} Valid '
                       f'layouts: {", ".join(LAYOUTS)}.')
    self._layout = layout
    self._horizon = _checks.positive_int('horizon', horizon)
    self._observation_type = _checks.one_of('observation', observation,
                                            OBSERVATION_TYPES)
    self._shaping_start = _checks.finite_float('reward_shaping_factor',
                                               reward_shaping_factor)
    self._shaping_horizon = _checks.non_negative_int('reward_shaping_horizon',
                                                     reward_shaping_horizon)
    self._tile_size = _checks.positive_int('render_tile_size', render_tile_size)
    if not isinstance(old_dynamics, (bool, np.bool_)):
      raise ValueError(f'old_dynamics must be True or False, got '
                       f'{old_dynamics!r}.')
    self._old_dynamics = bool(old_dynamics)

    actions, self._om, _ = _package()
    self._mdp, self._planner, _ = _load_layout(layout, self._old_dynamics)
    self._joint_actions = [[a0, a1] for a0 in actions.Action.INDEX_TO_ACTION
                           for a1 in actions.Action.INDEX_TO_ACTION]
    width, height = self._mdp.shape
    if self._observation_type == 'featurized':
      self._obs_key = 'FEATURES'
      feature_shape = tuple(self._mdp.get_featurize_state_shape())
      obs_spec = ArraySpec(feature_shape, np.float32)
    else:
      self._obs_key = 'GRID'
      obs_spec = ArraySpec((width, height, 26), np.float32)
    self._spec = EnvSpec(
        num_agents=NUM_AGENTS, observation={self._obs_key: obs_spec},
        num_actions=NUM_ACTIONS, max_episode_steps=self._horizon,
        info_keys=INFO_KEYS)

    self._training_env_steps = 0
    self._shaping_weight = linear_anneal(0, self._shaping_start,
                                         self._shaping_horizon)
    self._state = None          # OvercookedState; None before the first reset.
    self._needs_reset = True    # True before the first reset and after LAST.
    self._episode_sparse_return = 0.0
    self._visualizer = None
    self._pygame = None

  # -- Properties -------------------------------------------------------------

  @property
  def layout(self) -> str:
    return self._layout

  @property
  def horizon(self) -> int:
    return self._horizon

  @property
  def old_dynamics(self) -> bool:
    return self._old_dynamics

  @property
  def reward_shaping_weight(self) -> float:
    """The current weight of the shaped reward."""
    return self._shaping_weight

  @property
  def overcooked_state(self):
    """The package's ``OvercookedState`` (do not mutate), or None."""
    return self._state

  @property
  def mdp(self):
    """The package's ``OvercookedGridworld`` (shared; do not mutate)."""
    return self._mdp

  # -- Contract ---------------------------------------------------------------

  def spec(self) -> EnvSpec:
    return self._spec

  def reset(self) -> TimeStep:
    self._configure_recipes()
    # Transitions deep-copy the state, so the MDP's start state is never
    # mutated by stepping.
    self._state = self._mdp.get_standard_start_state()
    self._needs_reset = False
    self._episode_sparse_return = 0.0
    zeros = np.zeros(NUM_AGENTS, np.float32)
    return TimeStep(step_type=StepType.FIRST, reward=zeros,
                    discount=np.float32(1.0), observation=self._observe(),
                    info={'sparse_reward': zeros.copy(),
                          'shaped_reward': zeros.copy()})

  def step(self, actions) -> TimeStep:
    a0, a1 = _checks.actions(actions, NUM_AGENTS, NUM_ACTIONS, ACTION_NAMES)
    if self._needs_reset:
      return self.reset()
    self._configure_recipes()
    self._state, infos = self._mdp.get_state_transition(
        self._state, self._joint_actions[a0 * NUM_ACTIONS + a1])
    team_sparse = float(sum(infos['sparse_reward_by_agent']))
    self._episode_sparse_return += team_sparse
    sparse = np.full(NUM_AGENTS, team_sparse, np.float32)
    shaped = np.asarray(infos['shaped_reward_by_agent'], np.float32)
    reward = sparse + np.float32(self._shaping_weight) * shaped
    if self._state.timestep >= self._horizon:
      step_type = StepType.LAST
      self._needs_reset = True
    else:
      step_type = StepType.MID
    return TimeStep(step_type=step_type, reward=reward,
                    discount=np.float32(1.0), observation=self._observe(),
                    info={'sparse_reward': sparse, 'shaped_reward': shaped})

  def set_training_progress(self, env_steps: int) -> None:
    self._training_env_steps = _checks.non_negative_int('env_steps', env_steps)
    self._shaping_weight = linear_anneal(
        self._training_env_steps, self._shaping_start, self._shaping_horizon)

  def render(self) -> np.ndarray:
    """An RGB frame ``[H, W, 3]`` uint8 by the package's ``StateVisualizer``.

    The frame has a two-line header (time left, score = team sparse return of
    the episode so far) above the grid; its size is fixed per layout.
    """
    if self._state is None:
      self.reset()
    if self._visualizer is None:
      os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')
      os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
      # pylint: disable=g-import-not-at-top
      from overcooked_ai_py.visualization.state_visualizer import StateVisualizer
      import pygame
      # pylint: enable=g-import-not-at-top
      self._pygame = pygame
      self._visualizer = StateVisualizer(tile_size=self._tile_size)
    self._configure_recipes()
    hud = {'time_left': self._horizon - self._state.timestep,
           'score': int(self._episode_sparse_return)}
    surface = self._visualizer.render_state(self._state, self._mdp.terrain_mtx,
                                            hud_data=hud)
    frame = self._pygame.surfarray.array3d(surface)  # [W, H, 3]
    return np.ascontiguousarray(frame.transpose(1, 0, 2), dtype=np.uint8)

  def get_state(self) -> Dict[str, Any]:
    """A picklable snapshot (plain Python data) of the episode in progress."""
    return {
        'layout': self._layout,
        'horizon': self._horizon,
        'state': None if self._state is None else _encode_state(self._state),
        'needs_reset': self._needs_reset,
        'episode_sparse_return': self._episode_sparse_return,
        'training_env_steps': self._training_env_steps,
    }

  def set_state(self, state: Dict[str, Any]) -> None:
    """Restores a snapshot from ``get_state`` of an env of the same layout."""
    expected = {'layout', 'horizon', 'state', 'needs_reset',
                'episode_sparse_return', 'training_env_steps'}
    if not isinstance(state, dict) or set(state) != expected:
      raise ValueError('state must be a snapshot returned by '
                       'Overcooked.get_state().')
    if (state['layout'], state['horizon']) != (self._layout, self._horizon):
      raise ValueError(
          f'Snapshot of layout {state["layout"]!r} with horizon '
          f'{state["horizon"]} cannot be restored into layout '
          f'{self._layout!r} with horizon {self._horizon}.')
    self._configure_recipes()
    self._state = (None if state['state'] is None else
                   _decode_state(state['state'], self._om))
    self._needs_reset = bool(state['needs_reset'])
    self._episode_sparse_return = float(state['episode_sparse_return'])
    self.set_training_progress(state['training_env_steps'])

  def observe(self, state_code: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """The observation of a state given as a snapshot's ``'state'`` entry.

    Does not touch the episode in progress; used to encode recorded states
    (``overcooked_human.observations``).
    """
    self._configure_recipes()
    return self._encode(_decode_state(state_code, self._om))

  # -- Internals --------------------------------------------------------------

  def _configure_recipes(self) -> None:
    configure_recipes(self._mdp)

  def _observe(self) -> Dict[str, np.ndarray]:
    return self._encode(self._state)

  def _encode(self, state) -> Dict[str, np.ndarray]:
    if self._obs_key == 'FEATURES':
      features = self._mdp.featurize_state(state, self._planner)
    else:
      features = self._mdp.lossless_state_encoding(state, self._horizon)
    return {self._obs_key: np.array(features, dtype=np.float32)}

  def __repr__(self) -> str:
    return (f'Overcooked(layout={self._layout!r}, horizon={self._horizon}, '
            f'observation={self._observation_type!r}, '
            f'old_dynamics={self._old_dynamics})')


def make(layout: str, **kwargs) -> Overcooked:
  """``make("overcooked/<layout>", **kwargs)``: the registry's factory."""
  return Overcooked(layout=layout, **kwargs)


