"""The 2019 human-human Overcooked trials as a dataset for ``overcooked/``.

Carroll et al. (NeurIPS 2019, "On the Utility of Learning about Humans for
Human-AI Coordination") recorded pairs of people playing the five classic
layouts; overcooked-ai 1.1.0 ships the cleaned trials, already split, in
``overcooked_ai_py/data/human_data/clean_{train,test}_trials.pickle``. In
their protocol the model cloned from the *train* split (``BC``) is what a
method that uses human data may train with, and the model cloned from the
*test* split is the held-out human proxy (``H_proxy``).

``load_trials(split, layout)`` gives each trial (one worker pair, layout and
round, about 1,200 steps) as recorded states in the ``Overcooked`` snapshot
format, our action indices for both players, and the team's sparse reward
per step in our units (20 per soup; the recorded ``reward`` column counts 5).
``observations(trial, env)`` encodes every recorded state as the
environment's observation for both players (featurized or lossless), so a
policy can be cloned from the recorded states themselves.

The trials were played under the 2019 cooking rules: build the environment
with ``old_dynamics=True``. Replaying a trial's joint actions from its first
recorded state then reproduces every recorded state and the score
(``tests/envs/test_overcooked_human.py``).

Facts about the files (checked on overcooked-ai 1.1.0):
  * They were pickled by pandas 1.x; pandas 2+ lacks the module
    ``pandas.core.indexes.numeric`` they name. ``_read_pickle`` installs an
    alias (``Int64Index`` etc. are ``pandas.Index``) for the load only if
    pandas has no such module.
  * Layout names: ``random0`` is ``forced_coordination`` and ``random3`` is
    ``counter_circuit_o_1order`` (the onion-only counter circuit). For
    ``random3`` the recorded start positions, (6, 3) and (1, 3), differ from
    the package's layout file, (3, 3) and (3, 1); the grids are the same.
    A trial starts from its own first recorded state, so this only matters
    for where a fresh episode starts.
  * States are strings holding the old (2019) state format: soups as
    ``{'name': 'soup', 'position': [x, y], 'state': ['onion', n, tick]}``,
    where ``tick`` is 0 until the pot is full and may read one past the cook
    time (20) once ready; ``_state_code`` maps them to the package's
    conventions (idle soups tick -1, ticks clipped at the cook time).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
import types
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

SPLITS = ('train', 'test')
_FILES = {'train': 'clean_train_trials.pickle',
          'test': 'clean_test_trials.pickle'}
# Our layout name (``overcooked/<layout>``) -> the name the trials use.
LAYOUTS = {
    'cramped_room': 'cramped_room',
    'asymmetric_advantages': 'asymmetric_advantages',
    'coordination_ring': 'coordination_ring',
    'forced_coordination': 'random0',
    'counter_circuit_o_1order': 'random3',
}
RECORDED_REWARD_PER_SOUP = 5.0
SOUP_REWARD = 20.0
COOK_TIME = 20
# The recorded moves ([dx, dy] or 'INTERACT') -> our action indices (NORTH,
# SOUTH, EAST, WEST, STAY, INTERACT; overcooked.ACTION_NAMES).
_ACTION_INDEX = {(0, -1): 0, (0, 1): 1, (1, 0): 2, (-1, 0): 3, (0, 0): 4,
                 'INTERACT': 5}
_ALL_ORDERS = [('onion', 'onion', 'onion')]


class Trial(NamedTuple):
  """One recorded game of two people on one layout.

  Attributes:
    layout: our layout name (a key of ``LAYOUTS``).
    split: ``'train'`` or ``'test'``.
    worker: the recorded ``workerid_num`` (a pair of people).
    round: the recorded ``round_num``.
    states: ``T + 1`` recorded states, each the ``'state'`` entry of an
      ``Overcooked.get_state()`` snapshot; ``states[t + 1]`` is what
      ``actions[t]`` led to.
    actions: ``[T, 2]`` int32, both players' actions (our indices).
    sparse_reward: ``[T]`` float32, the team's delivery reward of each step
      (20 per soup).
  """
  layout: str
  split: str
  worker: int
  round: int
  states: Tuple[Dict[str, Any], ...]
  actions: np.ndarray
  sparse_reward: np.ndarray

  @property
  def num_steps(self) -> int:
    return int(self.actions.shape[0])

  @property
  def score(self) -> float:
    """The team's recorded sparse return over the whole trial."""
    return float(self.sparse_reward.sum())


def data_dir() -> str:
  """The package's ``human_data`` directory (ImportError if not installed)."""
  spec = importlib.util.find_spec('overcooked_ai_py')
  if spec is None or not spec.submodule_search_locations:
    raise ImportError('The human data ships with overcooked-ai: '
                      'pip install overcooked-ai==1.1.0')
  package = list(spec.submodule_search_locations)[0]
  return os.path.join(package, 'data', 'human_data')


def check_layout(layout: str) -> str:
  """``layout`` if the trials cover it, else a ValueError naming those that do."""
  if layout not in LAYOUTS:
    raise ValueError(
        f'overcooked/{layout} has no human data: the 2019 trials cover '
        f'{", ".join(LAYOUTS)}.')
  return layout


def _read_pickle(path: str):
  """Reads a pandas 1.x pickle, aliasing the module pandas 2 removed."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  name = 'pandas.core.indexes.numeric'
  added = False
  if name not in sys.modules and importlib.util.find_spec(name) is None:
    shim = types.ModuleType(name)
    for attr in ('Int64Index', 'Float64Index', 'UInt64Index', 'NumericIndex'):
      setattr(shim, attr, pd.Index)
    sys.modules[name] = shim
    added = True
  try:
    return pd.read_pickle(path)
  finally:
    if added:
      del sys.modules[name]


def _object_code(obj: Dict[str, Any]) -> tuple:
  """A recorded object as ``overcooked._encode_object`` writes it."""
  position = tuple(int(v) for v in obj['position'])
  if obj['name'] != 'soup':
    return (obj['name'], position)
  kind, count, tick = obj['state']
  ingredients = (str(kind),) * int(count)
  if int(count) < 3:
    tick = -1  # Idle: the 2019 format writes 0 until the pot is full.
  return ('soup', position, ingredients, min(int(tick), COOK_TIME))


def _state_code(recorded: str, timestep: int) -> Dict[str, Any]:
  """A recorded state string as an ``Overcooked`` snapshot's ``'state'``."""
  state = ast.literal_eval(recorded)
  players = []
  for p in state['players']:
    held = p.get('held_object')
    players.append((tuple(int(v) for v in p['position']),
                    tuple(int(v) for v in p['orientation']),
                    None if held is None else _object_code(held)))
  objects = state['objects']
  if isinstance(objects, dict):
    objects = list(objects.values())
  return {'players': players,
          'objects': sorted(_object_code(o) for o in objects),
          'bonus_orders': [], 'all_orders': list(_ALL_ORDERS),
          'timestep': int(timestep)}


def _action_index(move) -> int:
  key = move if isinstance(move, str) else tuple(int(v) for v in move)
  if key not in _ACTION_INDEX:
    raise ValueError(f'Unrecognised recorded action {move!r}.')
  return _ACTION_INDEX[key]


@functools.lru_cache(maxsize=None)
def _load_split(split: str) -> Tuple[Trial, ...]:
  path = os.path.join(data_dir(), _FILES[split])
  if not os.path.exists(path):
    raise FileNotFoundError(f'The {split} split of the human data is missing: '
                            f'{path}.')
  frame = _read_pickle(path)
  ours = {recorded: layout for layout, recorded in LAYOUTS.items()}
  trials = []
  keys = ['layout_name', 'workerid_num', 'round_num']
  for (name, worker, rnd), rows in frame.groupby(keys, sort=True):
    if name not in ours:
      continue
    rows = rows.sort_values('cur_gameloop')
    loops = rows['cur_gameloop'].to_numpy().astype(np.int64)
    if loops[0] != 0 or np.any(np.diff(loops) != 1):
      raise ValueError(f'Trial {name}/{worker}/{rnd} in {path} is not one '
                       'run of consecutive steps from 0.')
    states = [_state_code(s, t) for s, t in zip(rows['state'], loops)]
    states.append(_state_code(rows['next_state'].iloc[-1], loops[-1] + 1))
    actions = np.array([[_action_index(m) for m in ast.literal_eval(j)]
                        for j in rows['joint_action']], np.int32)
    reward = (rows['reward'].to_numpy().astype(np.float32)
              * np.float32(SOUP_REWARD / RECORDED_REWARD_PER_SOUP))
    trials.append(Trial(layout=ours[name], split=split, worker=int(worker),
                        round=int(rnd), states=tuple(states), actions=actions,
                        sparse_reward=reward))
  return tuple(trials)


def load_trials(split: str, layout: Optional[str] = None) -> List[Trial]:
  """The trials of ``split`` (all layouts, or one of ``LAYOUTS``).

  Loaded once per split and process (a few seconds), then shared: do not
  mutate the arrays.
  """
  if split not in SPLITS:
    raise ValueError(f'Unknown human-data split {split!r}: use one of '
                     f'{", ".join(SPLITS)}.')
  if layout is not None:
    check_layout(layout)
  return [t for t in _load_split(split) if layout in (None, t.layout)]


def observations(trial: Trial, env) -> Dict[str, np.ndarray]:
  """Every recorded state before an action, as ``env`` observes it.

  Args:
    trial: a trial of ``env``'s layout.
    env: an ``overcooked.Overcooked`` of that layout (its observation type
      and horizon decide the encoding; the lossless encoding's urgency layer
      reads the step within a ``horizon``-long episode, so each state's
      timestep is taken modulo the horizon).

  Returns:
    The observation dict with ``[T, 2, ...]`` arrays, aligned with
    ``trial.actions``.
  """
  if env.layout != trial.layout:
    raise ValueError(f'A trial of {trial.layout} cannot be observed in an '
                     f'environment of {env.layout}.')
  frames = []
  for code in trial.states[:-1]:
    code = dict(code, timestep=code['timestep'] % env.horizon)
    frames.append(env.observe(code))
  return {k: np.stack([f[k] for f in frames]) for k in frames[0]}


def state_key(code: Dict[str, Any]) -> tuple:
  """What the recorded format can express of a snapshot state, comparable.

  Player positions, orientations and held objects, and the kitchen's objects
  (soups by ingredients and cooking tick clipped at the cook time), without
  the orders and the timestep.
  """
  def obj(o):
    if o is None or o[0] != 'soup':
      return o
    return ('soup', tuple(o[1]), tuple(o[2]), min(int(o[3]), COOK_TIME))
  players = tuple((tuple(p), tuple(o), obj(h)) for p, o, h in code['players'])
  return players, tuple(sorted(obj(o) for o in code['objects']))
