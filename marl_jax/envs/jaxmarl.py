"""JaxMARL's games under the functional contract: ``make_jax("jaxmarl/...")``.

Adapters from JaxMARL (0.2.0) ``MultiAgentEnv`` to ``JaxEnvironment``, for
the anakin runtime; ``make("jaxmarl/...")`` gives the same games behind the
stateful ``Environment`` contract (``functional.HostEnvironment``). Names:

  * ``jaxmarl/overcooked_<layout>`` for the five classic layouts
    (``OVERCOOKED_LAYOUTS``: cramped_room, asymm_advantages, coord_ring,
    forced_coord, counter_circuit), two agents, 6 actions (up, down, right,
    left, stay, interact). JaxMARL's rules, overcooked_ai's kitchens: the
    grids and start cells are overcooked_ai 1.1.0's (``OVERCOOKED_GRIDS``,
    its names in ``OVERCOOKED_AI_LAYOUTS``; agent 0 starts at '1', agent 1
    at '2'), so that results compare with the human-proxy and other
    overcooked_ai work. JaxMARL's own layout dicts have the same kitchens
    but other starts everywhere except coord_ring (cramped_room: (1, 1) and
    (3, 1) where overcooked_ai has (1, 2) and (3, 1); asymm_advantages,
    forced_coord and counter_circuit differ too).
  * ``jaxmarl/mpe_<game>`` for JaxMARL's MPE games with discrete actions
    (``MPE_GAMES``). The FACMAC variants only have continuous actions and are
    not offered.
  * ``jaxmarl/smax_<map>`` for every map of JaxMARL's SMAX scenario list
    (``SMAX_MAPS``). Our agents are the allies; the enemies are JaxMARL's
    heuristic policy (``HeuristicEnemySMAX``, the setting of JaxMARL's SMAX
    baselines).

Conventions, the same for every family:
  * Agent slot ``i`` is the JaxMARL agent ``env.agents[i]``; actions ``[N]``
    int32; rewards ``[N]`` float32.
  * ``FEATURES`` (MPE, SMAX): the agent's flat observation, float32. When the
    agents' sizes differ (e.g. simple_speaker_listener: speaker 3, listener
    11) each is **zero-padded at the end** to the largest size;
    ``observation_sizes`` gives each agent's true size. ``GRID`` (Overcooked):
    JaxMARL's ``[height, width, 26]`` uint8 grid encoding, agent-centric (the
    agent's own layers first).
  * ``GLOBAL``: privileged state, the same ``[N, ...]`` row for every agent.
    SMAX: JaxMARL's world state, normalised (``smax_world_state``).
    Otherwise every agent's own observation, flattened (unpadded) and
    concatenated in slot order, with the observation's dtype.
    ``global_state=False`` leaves it out (and XLA then never computes it):
    for Overcooked it is ``[2, 2 * H * W * 26]``, twice the ``GRID`` data,
    and materialising it is most of the adapter's cost over raw JaxMARL
    (benchmarks/RESULTS.md); Overcooked's ``GRID`` is already the whole
    kitchen, so a centralised critic can do without it.
  * ``ACTION_MASK`` ``[num_actions]`` float32, 1 where allowed. SMAX: the
    env's available actions on this step. MPE games whose agents have
    different action counts (``num_actions`` is the maximum; e.g.
    simple_speaker_listener 3 and 5, simple_world_comm 20 and 5): 1 for the
    agent's own actions; an action beyond its own count is replaced by 0.
    Overcooked and the other MPE games have no mask.
  * Episode end: ``LAST`` after ``horizon`` steps with discount 1 (a time
    limit, a truncation), or, in SMAX, when one team is wiped out, with
    discount 0 (a termination; if that happens on the last allowed step it
    is still a termination). Overcooked and MPE never terminate.
  * No auto-reset inside JaxMARL: the adapter calls the env's transition
    (``step_env``) and keeps its own ``last`` flag; stepping from ``LAST``
    resets with that step's key and returns ``FIRST`` (the actions are
    ignored), as the contract says. Like JaxMARL's own ``step``, both the
    transition and the reset are computed and one is selected, so the
    adapter jits and vmaps without ``cond``.
  * MPE horizon: JaxMARL's own ``step`` ends MPE episodes after
    ``max_steps + 1`` transitions (its check reads the step counter before
    incrementing it). The adapter ends them after ``horizon`` (default 25)
    transitions, as PettingZoo's MPE (``max_cycles=25``) and our
    ``pettingzoo/`` family do.

Family specifics:
  * Overcooked start: with ``random_reset=False`` (the default) the agents
    start on the layout's cells and, as in JaxMARL, each facing a random
    direction (overcooked_ai starts them facing north); ``random_reset=True``
    is JaxMARL's randomised start (cells, inventories, pot states).
    ``with_players(state, positions, directions)`` moves the agents of a
    state to given cells and facings (``reset_with_players(key, ...)``:
    a reset that starts there; ``observation(state)``: a state's
    observation), e.g. a human trial's recorded start (``jaxmarl_human``).
  * Overcooked rules: JaxMARL's are the 2019 game's (the third onion starts
    the cook, 20 steps to cook), under which the human-human trials shipped
    with overcooked_ai were recorded. Replayed from their first state, all
    76 trials (train and test splits) match here step for step: cells,
    orientations, held objects, pots, counters and soups delivered
    (tests/envs/test_jaxmarl.py replays one per layout).
  * Overcooked info: ``sparse_reward`` (the team's delivery reward, 20 per
    soup, the same for both agents) and ``shaped_reward`` (each agent's own
    shaped reward: 3 for an onion into a pot, 3 for picking up a plate, 5 for
    picking up a soup). The reward is ``sparse + w * shaped`` where ``w``
    starts at ``reward_shaping_factor`` (default 1.0) and decays linearly to
    0 over ``reward_shaping_horizon`` environment steps of the whole run
    (default 0: never), as in ``overcooked/``. The weight lives in the state;
    the annealing hook is the pure ``set_training_progress(state, env_steps)
    -> state`` (the anakin loop calls it, ``HostEnvironment`` forwards its own
    ``set_training_progress``); resets inside ``step`` keep the weight.
  * SMAX ``GLOBAL`` (``smax_world_state``): for every unit, allies then
    enemies, ``[health / max health, x / map width, y / map height, weapon
    cooldown / the type's cooldown clipped to [0, 1], unit-type one-hot]``
    (zeros once dead), then each unit's team (0 ally, 1 enemy). That is
    JaxMARL's ``world_state`` with each entry scaled as JaxMARL scales it in
    the agents' own observations, without its trailing raw unit-type indices
    (the one-hot has them). JaxMARL's raw world state has positions in map
    units (0-32) and the raw weapon cooldown, which falls by 0.5 on every
    step a unit does not fire and is never floored: it is a clock that
    reaches -50 in a long episode. QMIX's mixer, fed that, did not learn
    3m at all (0 wins in 400k steps where VDN reached 0.67).
  * SMAX info: ``won`` is 1 on the ``LAST`` step of a won battle (every enemy
    dead, an ally alive) and 0 otherwise. The reward is JaxMARL's (the
    enemy's lost health fraction, plus ``won_battle_bonus`` on a win), the
    same for all allies.
  * Other keyword arguments of ``make_jax``/``make`` go to the JaxMARL
    constructor (MPE: e.g. ``num_agents``, ``local_ratio``; SMAX: e.g.
    ``won_battle_bonus``, ``enemy_shoots``). JaxMARL's MPE constructors
    accept and ignore unknown keywords; SMAX rejects them (``ValueError``).
  * ``render(state)``: Overcooked uses JaxMARL's tile renderer; SMAX and MPE
    are drawn here with numpy (SMAX: allies blue, enemies red, brightness by
    health; MPE: entities in their JaxMARL colours).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import sys
import warnings
from typing import Any, Dict, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs import functional
from marl_jax.envs.base import JaxEnvironment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

# The five classic kitchens, as overcooked_ai 1.1.0 draws them in
# overcooked_ai_py/data/layouts/<OVERCOOKED_AI_LAYOUTS[name]>.layout (copied
# here, so this family does not depend on that package): X counter, P pot,
# O onion pile, D dish (plate) pile, S serving spot, ' ' floor, '1' and '2'
# the start cells of agents 0 and 1. Keyed by JaxMARL's layout names.
OVERCOOKED_GRIDS = {
    'cramped_room': ('XXPXX',
                     'O  2O',
                     'X1  X',
                     'XDXSX'),
    'asymm_advantages': ('XXXXXXXXX',
                         'O XSXOX S',
                         'X   P 1 X',
                         'X2  P   X',
                         'XXXDXDXXX'),
    'coord_ring': ('XXXPX',
                   'X 1 P',
                   'D2X X',
                   'O   X',
                   'XOSXX'),
    'forced_coord': ('XXXPX',
                     'O X1P',
                     'O2X X',
                     'D X X',
                     'XXXSX'),
    'counter_circuit': ('XXXPPXXX',
                        'X  2   X',
                        'D XXXX S',
                        'X  1   X',
                        'XXXOOXXX'),
}
OVERCOOKED_LAYOUTS = tuple(OVERCOOKED_GRIDS)
# Our (JaxMARL's) layout name -> overcooked_ai's.
OVERCOOKED_AI_LAYOUTS = {
    'cramped_room': 'cramped_room',
    'asymm_advantages': 'asymmetric_advantages',
    'coord_ring': 'coordination_ring',
    'forced_coord': 'forced_coordination',
    'counter_circuit': 'counter_circuit_o_1order',
}
# Our name -> JaxMARL's registered id.
MPE_GAMES = {
    'simple': 'MPE_simple_v3',
    'simple_adversary': 'MPE_simple_adversary_v3',
    'simple_crypto': 'MPE_simple_crypto_v3',
    'simple_push': 'MPE_simple_push_v3',
    'simple_reference': 'MPE_simple_reference_v3',
    'simple_speaker_listener': 'MPE_simple_speaker_listener_v4',
    'simple_spread': 'MPE_simple_spread_v3',
    'simple_tag': 'MPE_simple_tag_v3',
    'simple_world_comm': 'MPE_simple_world_comm_v3',
}
# JaxMARL 0.2.0's MAP_NAME_TO_SCENARIO (tests check that they agree).
SMAX_MAPS = ('2s3z', '3m', '3s5z', '3s5z_vs_3s6z', '3s_vs_5z', '5m_vs_6m',
             '6h_vs_8z', '8m', '10m_vs_11m', '25m', '27m_vs_30m',
             'smacv2_5_units', 'smacv2_10_units', 'smacv2_20_units')
NAMES = (tuple(f'overcooked_{x}' for x in OVERCOOKED_LAYOUTS)
         + tuple(f'mpe_{x}' for x in MPE_GAMES)
         + tuple(f'smax_{x}' for x in SMAX_MAPS))
ACTION_MASK = 'ACTION_MASK'
GLOBAL = 'GLOBAL'
_INSTALL_HINT = ('The jaxmarl/ environments need JaxMARL: '
                 'pip install jaxmarl==0.2.0')


@functools.lru_cache(maxsize=None)
def _jaxmarl():
  """Imports jaxmarl once, quietly, leaving ``sys.stdout``/``stderr`` alone.

  Importing jaxmarl 0.2.0 prints two lines about optional submodules, and its
  MABrax module, when brax is missing, resets ``sys.stdout`` and
  ``sys.stderr`` to ``sys.__stdout__``/``__stderr__`` (which would undo any
  redirection, e.g. pytest's capture). We point all four at a sink for the
  import and put the originals back.
  """
  if importlib.util.find_spec('jaxmarl') is None:
    raise ImportError(_INSTALL_HINT)
  saved = sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__
  sink = io.StringIO()
  sys.stdout = sys.__stdout__ = sink
  sys.__stderr__ = sys.stderr
  try:
    import jaxmarl  # pylint: disable=g-import-not-at-top
  finally:
    sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved
  return jaxmarl


class JaxMarlState(NamedTuple):
  """The adapter's state.

  Attributes:
    env_state: JaxMARL's state.
    t: int32, transitions in this episode.
    last: bool, the previous step was ``LAST`` (the next step resets).
    shaping_weight: float32, Overcooked's shaped-reward weight (0 elsewhere).
  """
  env_state: Any
  t: jax.Array
  last: jax.Array
  shaping_weight: jax.Array


def _select(pred, on_true, on_false):
  return jax.tree.map(lambda x, y: jnp.where(pred, x, y), on_true, on_false)


def _pad_to(x, size):
  return jnp.pad(x, (0, size - x.shape[0])) if x.shape[0] < size else x


class JaxMarlEnvironment(functional.ConfigEquality, JaxEnvironment):
  """The shared adapter; families override the ``_`` hooks below."""

  def __init__(self, name: str, env, horizon: int, global_state: bool = True):
    self._name = name
    self._global = bool(global_state)
    self._env = env
    self._horizon = _checks.positive_int('horizon', horizon)
    self._agents = tuple(env.agents)
    self._n = len(self._agents)
    valid = []
    for agent in self._agents:
      space = env.action_space(agent)
      if not hasattr(space, 'n'):
        raise ValueError(f'{name}: agent {agent!r} has a non-discrete action '
                         f'space ({type(space).__name__}).')
      valid.append(int(space.n))
    self._num_valid = np.asarray(valid, np.int32)
    self._num_actions = int(self._num_valid.max())
    shapes = jax.eval_shape(lambda k: self._env.reset(k)[0],
                            jax.random.PRNGKey(0))
    self._raw_shapes = {a: (tuple(shapes[a].shape), np.dtype(shapes[a].dtype))
                        for a in self._agents}
    obs_spec = self._observation_spec(shapes)
    if not self._global:
      del obs_spec[GLOBAL]
    self._spec = EnvSpec(num_agents=self._n, observation=obs_spec,
                         num_actions=self._num_actions,
                         max_episode_steps=self._horizon,
                         info_keys=self._info_keys())

  # -- Hooks ------------------------------------------------------------------

  def _observation_spec(self, shapes) -> Dict[str, ArraySpec]:
    raise NotImplementedError

  def _observe(self, obs, env_state) -> Dict[str, jax.Array]:
    raise NotImplementedError

  def _info_keys(self) -> tuple:
    return ()

  def _reward_and_info(self, state, env_state, rewards, infos, last):
    """``([N] float32 reward, info dict)`` of a transition."""
    del state, env_state, infos, last
    reward = jnp.stack([rewards[a] for a in self._agents])
    return reward.astype(jnp.float32), {}

  def _episode_end(self, env_state, dones, t):
    """``(last, terminated)`` after a transition."""
    del env_state, dones
    return t >= self._horizon, jnp.bool_(False)

  def _initial_shaping_weight(self) -> float:
    return 0.

  # -- Properties -------------------------------------------------------------

  @property
  def jaxmarl_env(self):
    """The wrapped JaxMARL ``MultiAgentEnv``."""
    return self._env

  @property
  def agent_ids(self) -> tuple:
    """JaxMARL's agent names, in slot order."""
    return self._agents

  @property
  def num_valid_actions(self) -> np.ndarray:
    """``[N]`` int32: each agent's own number of actions."""
    return self._num_valid.copy()

  @property
  def observation_sizes(self) -> tuple:
    """Each agent's unpadded observation shape."""
    return tuple(self._raw_shapes[a][0] for a in self._agents)

  # -- Contract ---------------------------------------------------------------

  def spec(self) -> EnvSpec:
    return self._spec

  def reset(self, key):
    state, obs, ts = self._reset(key)
    return self._finish(state, obs, ts)

  def step(self, state: JaxMarlState, actions, key):
    actions = jnp.asarray(actions, jnp.int32)
    actions = jnp.where((actions >= 0) & (actions < self._num_valid), actions,
                        0)
    joint = {a: actions[i] for i, a in enumerate(self._agents)}
    obs, env_state, rewards, dones, infos = self._env.step_env(
        key, state.env_state, joint)
    t = state.t + 1
    last, terminated = self._episode_end(env_state, dones, t)
    nxt = JaxMarlState(env_state=env_state, t=t, last=last,
                       shaping_weight=state.shaping_weight)
    reward, info = self._reward_and_info(state, env_state, rewards, infos,
                                         last)
    ts = TimeStep(
        step_type=jnp.where(last, StepType.LAST, StepType.MID).astype(
            jnp.int32),
        reward=reward,
        discount=jnp.where(terminated, 0., 1.).astype(jnp.float32),
        observation={}, info=info)
    reset_state, reset_obs, reset_ts = self._reset(key)
    reset_state = reset_state._replace(shaping_weight=state.shaping_weight)
    # Choose JaxMARL's raw observations, then convert once.
    return self._finish(*_select(state.last, (reset_state, reset_obs, reset_ts),
                                 (nxt, obs, ts)))

  def __repr__(self) -> str:
    return f'{type(self).__name__}({self._name!r}, horizon={self._horizon})'

  # -- Helpers ----------------------------------------------------------------

  def _reset(self, key):
    """``(state, JaxMARL's observations, TimeStep without observation)``."""
    obs, env_state = self._env.reset(key)
    # Some JaxMARL envs return weakly typed leaves from reset (SMAX's
    # enemy_policy_state) that step returns strongly typed: make them strong,
    # or every jitted function of the state compiles twice (once per kind).
    env_state = jax.tree.map(_strong, env_state)
    state = JaxMarlState(env_state=env_state, t=jnp.int32(0),
                         last=jnp.bool_(False),
                         shaping_weight=jnp.float32(
                             self._initial_shaping_weight()))
    zeros = jnp.zeros((self._n,), jnp.float32)
    info = {k: zeros for k in self._info_keys()}
    return state, obs, TimeStep(step_type=jnp.int32(StepType.FIRST),
                                reward=zeros, discount=jnp.float32(1.),
                                observation={}, info=info)

  def _finish(self, state, obs, ts):
    """Converts JaxMARL's observations (once, after any select)."""
    observation = self._observe(obs, state.env_state)
    if self._global:
      derived = self._derived_global(observation)
      if derived is not None:
        observation[GLOBAL] = derived
    else:
      observation.pop(GLOBAL, None)  # Never computed: XLA drops the work.
    return state, ts._replace(observation=observation)

  def _derived_global(self, observation) -> Optional[jax.Array]:
    """``GLOBAL`` as a function of the other entries, or None (in them)."""
    del observation
    return None

  def _broadcast(self, x):
    return jnp.broadcast_to(x, (self._n,) + x.shape)

  def _global_spec(self) -> ArraySpec:
    size = sum(int(np.prod(s)) for s, _ in self._raw_shapes.values())
    dtypes = {d for _, d in self._raw_shapes.values()}
    return ArraySpec((size,), np.dtype(np.result_type(*dtypes)))


# ----------------------------------------------------------------------------
# Overcooked.
# ----------------------------------------------------------------------------

# overcooked_ai's grid symbol -> JaxMARL's layout key (every one of them is
# also in ``wall_idx``: JaxMARL's agents cannot enter these cells).
_GRID_KEYS = {'P': 'pot_idx', 'O': 'onion_pile_idx', 'D': 'plate_pile_idx',
              'S': 'goal_idx', 'X': None}


def overcooked_layout(grid: Sequence[str]):
  """JaxMARL's layout dict of a kitchen drawn in overcooked_ai's notation.

  Args:
    grid: the rows, top first, of equal length, in the symbols of
      ``OVERCOOKED_GRIDS`` (exactly one '1' and one '2'). A cell ``(x, y)``
      (column, row) is JaxMARL's index ``y * width + x``.

  Returns:
    A ``flax.core.FrozenDict`` with JaxMARL's keys: ``height``, ``width``
    and int32 index arrays ``wall_idx`` (every cell but floor and starts),
    ``agent_idx`` (agent 0's start, agent 1's), ``goal_idx``,
    ``plate_pile_idx``, ``onion_pile_idx``, ``pot_idx``.
  """
  rows = [str(r) for r in grid]
  if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
    raise ValueError(f'An Overcooked grid needs non-empty rows of one length, '
                     f'got {rows!r}.')
  width = len(rows[0])
  cells = {k: [] for k in ('wall_idx', 'goal_idx', 'plate_pile_idx',
                           'onion_pile_idx', 'pot_idx')}
  starts = {}
  for y, row in enumerate(rows):
    for x, symbol in enumerate(row):
      idx = y * width + x
      if symbol in _GRID_KEYS:
        cells['wall_idx'].append(idx)
        if _GRID_KEYS[symbol]:
          cells[_GRID_KEYS[symbol]].append(idx)
      elif symbol in '12':
        if symbol in starts:
          raise ValueError(f'Overcooked grid {rows!r}: two starts {symbol!r}.')
        starts[symbol] = idx
      elif symbol != ' ':
        raise ValueError(f'Overcooked grid {rows!r}: unknown symbol '
                         f'{symbol!r} (known: X P O D S, space, 1, 2).')
  if set(starts) != {'1', '2'}:
    raise ValueError(f'Overcooked grid {rows!r} needs one start each for '
                     f"'1' and '2'.")
  # pylint: disable-next=g-import-not-at-top
  from flax.core.frozen_dict import FrozenDict
  layout = {k: jnp.asarray(v, jnp.int32) for k, v in cells.items()}
  layout['agent_idx'] = jnp.asarray([starts['1'], starts['2']], jnp.int32)
  return FrozenDict(layout, height=len(rows), width=width)


class JaxMarlOvercooked(JaxMarlEnvironment):
  """JaxMARL's Overcooked (module docstring)."""

  def __init__(self, layout: str = 'cramped_room', horizon: int = 400,
               reward_shaping_factor: float = 1.0,
               reward_shaping_horizon: int = 0, random_reset: bool = False,
               global_state: bool = True, render_tile_size: int = 32):
    _checks.one_of('layout', layout, OVERCOOKED_LAYOUTS)
    horizon = _checks.positive_int('horizon', horizon)
    self._shaping_start = _checks.finite_float('reward_shaping_factor',
                                               reward_shaping_factor)
    self._shaping_horizon = _checks.non_negative_int('reward_shaping_horizon',
                                                     reward_shaping_horizon)
    self._tile_size = _checks.positive_int('render_tile_size',
                                           render_tile_size)
    self._config = (layout, horizon, self._shaping_start,
                    self._shaping_horizon, bool(random_reset),
                    bool(global_state), self._tile_size)
    jaxmarl = _jaxmarl()
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', DeprecationWarning)  # "Use V2".
      env = jaxmarl.make('overcooked',
                         layout=overcooked_layout(OVERCOOKED_GRIDS[layout]),
                         max_steps=horizon, random_reset=bool(random_reset))
    super().__init__(f'overcooked_{layout}', env, horizon, global_state)

  def _observation_spec(self, shapes):
    shape, dtype = self._raw_shapes[self._agents[0]]
    return {'GRID': ArraySpec(shape, dtype), GLOBAL: self._global_spec()}

  @property
  def layout(self) -> str:
    """The kitchen's name (a key of ``OVERCOOKED_GRIDS``)."""
    return self._config[0]

  def with_players(self, state: JaxMarlState, positions,
                   directions) -> JaxMarlState:
    """``state`` with the agents moved to ``positions``, facing
    ``directions``; everything else (pots, counters, what they hold, the
    step) as it was. Pure and jittable.

    Args:
      state: a state of this environment (e.g. from ``reset``).
      positions: ``[2, 2]`` int, each agent's cell ``(x, y)`` (column, row,
        as overcooked_ai's ``position``), in slot order. They must be floor
        cells, different from each other (not checked: traced values).
      directions: ``[2, 2]`` int, each agent's facing as a unit vector
        ``(dx, dy)`` (overcooked_ai's ``orientation``; ``(0, -1)`` is up).

    Returns:
      The state; its observation is ``observation(state)``.
    """
    # pylint: disable-next=g-import-not-at-top
    from jaxmarl.environments.overcooked.common import (DIR_TO_VEC,
                                                        OBJECT_TO_INDEX)
    s = state.env_state
    positions = jnp.asarray(positions, s.agent_pos.dtype).reshape(self._n, 2)
    directions = jnp.asarray(directions, jnp.int32).reshape(self._n, 2)
    # JaxMARL's direction index: the row of DIR_TO_VEC (up, down, right,
    # left: the order of the move actions).
    dirs = jnp.argmax(jnp.all(jnp.asarray(DIR_TO_VEC, jnp.int32)[None]
                              == directions[:, None], axis=-1), axis=-1)
    pad = (s.maze_map.shape[0] - self._env.height) // 2
    maze = s.maze_map
    empty = jnp.array([OBJECT_TO_INDEX['empty'], 0, 0], maze.dtype)
    for i in range(self._n):  # Clear both old cells before filling any.
      x, y = s.agent_pos[i, 0], s.agent_pos[i, 1]
      maze = maze.at[pad + y, pad + x].set(empty)
    for i in range(self._n):
      # JaxMARL's agent cell: object, colour (red 0 + 2 * i), direction.
      cell = jnp.stack([jnp.asarray(OBJECT_TO_INDEX['agent'], maze.dtype),
                        jnp.asarray(2 * i, maze.dtype),
                        dirs[i].astype(maze.dtype)])
      maze = maze.at[pad + positions[i, 1], pad + positions[i, 0]].set(cell)
    dirs = dirs.astype(s.agent_dir_idx.dtype)
    s = s.replace(agent_pos=positions, agent_dir_idx=dirs,
                  agent_dir=jnp.asarray(DIR_TO_VEC)[dirs].astype(
                      s.agent_dir.dtype),
                  maze_map=maze)
    return state._replace(env_state=s)

  def observation(self, state: JaxMarlState) -> Dict[str, jax.Array]:
    """The observation dict of ``state`` (what ``reset``/``step`` would
    return in their ``TimeStep`` for it). Pure and jittable."""
    obs = self._env.get_obs(state.env_state)
    zeros = jnp.zeros((self._n,), jnp.float32)
    ts = TimeStep(step_type=jnp.int32(StepType.MID), reward=zeros,
                  discount=jnp.float32(1.), observation={}, info={})
    return self._finish(state, obs, ts)[1].observation

  def reset_with_players(self, key, positions, directions):
    """``reset(key)``, with the agents at ``positions`` facing
    ``directions`` (``with_players``): ``(state, TimeStep)``, ``FIRST``,
    its observation that of the moved agents."""
    state, ts = self.reset(key)
    state = self.with_players(state, positions, directions)
    return state, ts._replace(observation=self.observation(state))

  def _observe(self, obs, env_state):
    del env_state
    return {'GRID': jnp.stack([obs[a] for a in self._agents])}

  def _derived_global(self, observation):
    return self._broadcast(observation['GRID'].reshape(-1))

  def _info_keys(self):
    return ('sparse_reward', 'shaped_reward')

  def _initial_shaping_weight(self):
    return self._shaping_start

  def _reward_and_info(self, state, env_state, rewards, infos, last):
    del env_state, last
    sparse = jnp.stack([rewards[a] for a in self._agents]).astype(jnp.float32)
    shaped = jnp.stack([infos['shaped_reward'][a]
                        for a in self._agents]).astype(jnp.float32)
    return (sparse + state.shaping_weight * shaped,
            {'sparse_reward': sparse, 'shaped_reward': shaped})

  def shaping_weight(self, env_steps) -> jax.Array:
    """The shaped-reward weight after ``env_steps`` steps of the whole run."""
    start = jnp.float32(self._shaping_start)
    if self._shaping_horizon == 0:
      return start
    frac = jnp.asarray(env_steps, jnp.float32) / self._shaping_horizon
    return start * jnp.maximum(0., 1. - frac)

  def set_training_progress(self, state: JaxMarlState,
                            env_steps) -> JaxMarlState:
    """The annealing hook: ``state`` with the weight for ``env_steps``."""
    return state._replace(shaping_weight=self.shaping_weight(env_steps))

  def render(self, state: JaxMarlState) -> np.ndarray:
    """JaxMARL's tile rendering of the kitchen, ``[H, W, 3]`` uint8."""
    # pylint: disable-next=g-import-not-at-top
    from jaxmarl.viz.overcooked_visualizer import OvercookedVisualizer
    s = jax.device_get(state.env_state)
    pad = self._env.agent_view_size - 2
    grid = np.asarray(s.maze_map[pad:-pad, pad:-pad, :])
    # pylint: disable-next=protected-access
    frame = OvercookedVisualizer._render_grid(
        grid, tile_size=self._tile_size, highlight_mask=None,
        agent_dir_idx=s.agent_dir_idx, agent_inv=s.agent_inv)
    return np.ascontiguousarray(frame, dtype=np.uint8)


# ----------------------------------------------------------------------------
# MPE.
# ----------------------------------------------------------------------------


def _disc(frame, centre, radius, colour) -> None:
  """Fills a disc (pixel units) into ``frame`` in place."""
  h, w = frame.shape[:2]
  cy, cx = centre
  r = max(radius, 1.)
  y0, y1 = int(max(0, cy - r)), int(min(h, cy + r + 1))
  x0, x1 = int(max(0, cx - r)), int(min(w, cx + r + 1))
  if y0 >= y1 or x0 >= x1:
    return
  yy, xx = np.mgrid[y0:y1, x0:x1]
  inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
  frame[y0:y1, x0:x1][inside] = colour


class JaxMarlMPE(JaxMarlEnvironment):
  """JaxMARL's MPE games with discrete actions (module docstring)."""

  def __init__(self, game: str = 'simple_spread', horizon: int = 25,
               global_state: bool = True, render_size: int = 256,
               **env_kwargs):
    _checks.one_of('game', game, tuple(MPE_GAMES))
    horizon = _checks.positive_int('horizon', horizon)
    self._render_size = _checks.positive_int('render_size', render_size)
    self._config = (game, horizon, bool(global_state), self._render_size,
                    repr(sorted(env_kwargs.items())))
    jaxmarl = _jaxmarl()
    try:
      env = jaxmarl.make(MPE_GAMES[game], action_type='Discrete',
                         max_steps=horizon, **env_kwargs)
    except TypeError as e:
      raise ValueError(f'Bad arguments for jaxmarl/mpe_{game}: {e}') from e
    super().__init__(f'mpe_{game}', env, horizon, global_state)

  def _observation_spec(self, shapes):
    sizes = [s[0] for s, _ in self._raw_shapes.values()]
    if any(len(s) != 1 for s, _ in self._raw_shapes.values()):
      raise ValueError(f'{self._name}: expected flat observations, got '
                       f'{self._raw_shapes}.')
    self._size = max(sizes)
    spec = {'FEATURES': ArraySpec((self._size,), np.float32),
            GLOBAL: ArraySpec((sum(sizes),), np.float32)}
    self._mask = None
    if len(set(self._num_valid.tolist())) > 1:
      self._mask = (np.arange(self._num_valid.max())[None, :]
                    < self._num_valid[:, None]).astype(np.float32)
      spec[ACTION_MASK] = ArraySpec((int(self._num_valid.max()),), np.float32)
    return spec

  def _observe(self, obs, env_state):
    del env_state
    out = {
        'FEATURES': jnp.stack([_pad_to(obs[a].astype(jnp.float32), self._size)
                               for a in self._agents]),
    }
    if self._mask is not None:
      out[ACTION_MASK] = jnp.asarray(self._mask)
    return out

  def _derived_global(self, observation):
    features = observation['FEATURES']
    return self._broadcast(jnp.concatenate(
        [features[i, :shape[0]] for i, shape in
         enumerate(self.observation_sizes)]))

  def render(self, state: JaxMarlState) -> np.ndarray:
    """Entities as discs in JaxMARL's colours on a white square."""
    s = jax.device_get(state.env_state)
    size = self._render_size
    frame = np.full((size, size, 3), 255, np.uint8)
    extent = 1.5  # World coordinates [-1.5, 1.5] fill the frame.
    scale = size / (2 * extent)
    radii = np.asarray(self._env.rad)
    colours = list(self._env.colour)
    # Landmarks first, agents on top.
    order = list(range(self._env.num_agents, len(radii))) + list(
        range(self._env.num_agents))
    for i in order:
      x, y = np.asarray(s.p_pos[i])
      _disc(frame, ((extent - y) * scale, (x + extent) * scale),
            radii[i] * scale, colours[i])
    return frame


# ----------------------------------------------------------------------------
# SMAX.
# ----------------------------------------------------------------------------


class JaxMarlSMAX(JaxMarlEnvironment):
  """JaxMARL's SMAX against its heuristic enemy (module docstring)."""

  def __init__(self, map_name: str = '3m', horizon: int = 100,
               global_state: bool = True, render_scale: int = 8,
               **env_kwargs):
    _checks.one_of('map', map_name, SMAX_MAPS)
    horizon = _checks.positive_int('horizon', horizon)
    self._render_scale = _checks.positive_int('render_scale', render_scale)
    self._config = (map_name, horizon, bool(global_state), self._render_scale,
                    repr(sorted(env_kwargs.items())))
    jaxmarl = _jaxmarl()
    # pylint: disable-next=g-import-not-at-top
    from jaxmarl.environments.smax import map_name_to_scenario
    try:
      env = jaxmarl.make('HeuristicEnemySMAX',
                         scenario=map_name_to_scenario(map_name),
                         max_steps=horizon, **env_kwargs)
    except TypeError as e:
      raise ValueError(f'Bad arguments for jaxmarl/smax_{map_name}: {e}') from e
    super().__init__(f'smax_{map_name}', env, horizon, global_state)

  def _observation_spec(self, shapes):
    size = self._raw_shapes[self._agents[0]][0]
    units = self._env.num_allies + self._env.num_enemies
    state_size = units * (4 + int(self._env.unit_type_bits) + 1)
    return {'FEATURES': ArraySpec(size, np.float32),
            GLOBAL: ArraySpec((state_size,), np.float32),
            ACTION_MASK: ArraySpec((self._num_actions,), np.float32)}

  def smax_world_state(self, env_state) -> jax.Array:
    """The normalised world state of the module docstring, ``[S]``."""
    env, s = self._env, env_state.state
    types = s.unit_types
    health = s.unit_health / jnp.asarray(env.unit_type_health)[types]
    position = s.unit_positions / jnp.array(
        [env.map_width, env.map_height], jnp.float32)
    cooldown = jnp.clip(
        s.unit_weapon_cooldowns /
        jnp.asarray(env.unit_type_weapon_cooldowns)[types], 0., 1.)
    one_hot = jax.nn.one_hot(types, int(env.unit_type_bits))
    units = jnp.concatenate([health[:, None], position, cooldown[:, None],
                             one_hot], axis=-1)
    units = jnp.where(s.unit_alive[:, None], units, 0.)
    return jnp.concatenate([units.reshape(-1),
                            s.unit_teams.astype(jnp.float32)]).astype(
                                jnp.float32)

  def _observe(self, obs, env_state):
    avail = self._env.get_avail_actions(env_state)
    return {
        'FEATURES': jnp.stack([obs[a] for a in self._agents]).astype(
            jnp.float32),
        GLOBAL: self._broadcast(self.smax_world_state(env_state)),
        ACTION_MASK: jnp.stack([avail[a] for a in self._agents]).astype(
            jnp.float32),
    }

  def _info_keys(self):
    return ('won',)

  def _outcome(self, env_state):
    alive = env_state.state.unit_alive
    allies_dead = ~jnp.any(alive[:self._env.num_allies])
    enemies_dead = ~jnp.any(alive[self._env.num_allies:])
    return allies_dead, enemies_dead

  def _episode_end(self, env_state, dones, t):
    allies_dead, enemies_dead = self._outcome(env_state)
    terminated = allies_dead | enemies_dead
    return dones['__all__'] | terminated | (t >= self._horizon), terminated

  def _reward_and_info(self, state, env_state, rewards, infos, last):
    reward, _ = super()._reward_and_info(state, env_state, rewards, infos,
                                         last)
    allies_dead, enemies_dead = self._outcome(env_state)
    won = (last & enemies_dead & ~allies_dead).astype(jnp.float32)
    return reward, {'won': jnp.full((self._n,), won)}

  def render(self, state: JaxMarlState) -> np.ndarray:
    """Units as discs: allies blue, enemies red, darker when hurt."""
    s = jax.device_get(state.env_state.state)
    env = self._env
    scale = self._render_scale
    h, w = int(env.map_height * scale), int(env.map_width * scale)
    frame = np.full((h, w, 3), 235, np.uint8)
    health = np.asarray(env.unit_type_health)
    radii = np.asarray(env.unit_type_radiuses)
    for i in range(env.num_allies + env.num_enemies):
      if not s.unit_alive[i]:
        continue
      kind = int(s.unit_types[i])
      frac = float(np.clip(s.unit_health[i] / health[kind], 0., 1.))
      base = np.array((40, 80, 230) if i < env.num_allies else (220, 50, 50))
      colour = (base * (0.35 + 0.65 * frac)).astype(np.uint8)
      x, y = np.asarray(s.unit_positions[i])
      _disc(frame, ((env.map_height - y) * scale, x * scale),
            radii[kind] * scale * 1.5, colour)
    return frame


# ----------------------------------------------------------------------------
# Construction by name.
# ----------------------------------------------------------------------------


def make_env(name: str, **kwargs: Any) -> JaxMarlEnvironment:
  """The functional adapter of ``name`` (one of ``NAMES``)."""
  _checks.one_of('name', name, NAMES)
  family, _, short = name.partition('_')
  try:
    if family == 'overcooked':
      return JaxMarlOvercooked(short, **kwargs)
    if family == 'mpe':
      return JaxMarlMPE(short, **kwargs)
    return JaxMarlSMAX(short, **kwargs)
  except TypeError as e:
    raise ValueError(f'Bad arguments for jaxmarl/{name}: {e}') from e


def make_host(name: str, seed: int = 0, **kwargs: Any):
  """``make("jaxmarl/<name>", seed=0, **kwargs)``: behind ``Environment``."""
  return functional.HostEnvironment(make_env(name, **kwargs), seed=seed)


def _strong(x):
  """``x`` with its dtype, never weakly typed."""
  return jax.lax.convert_element_type(x, jnp.result_type(x))
