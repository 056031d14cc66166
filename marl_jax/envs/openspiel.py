"""OpenSpiel's two-player zero-sum card games: ``make("openspiel/kuhn_poker")``.

Turn-based, two-player, zero-sum, imperfect-information games of OpenSpiel
(``pyspiel``, tested with open-spiel 2.0.2) behind the simultaneous-move
``Environment`` contract. ``NAMES``: ``kuhn_poker`` and ``leduc_poker``.
``OpenSpielEnvironment(game)`` takes any game of that kind (a name with
OpenSpiel parameters, or a loaded ``pyspiel.Game``).

Conventions:
  * Agent slot ``i`` is OpenSpiel player ``i``. Every step both agents give an
    action; only the action of the player to move is applied, the other one
    is ignored. An action the player to move may not take raises
    ``ValueError`` naming the legal ones.
  * ``FEATURES`` ``[D]`` float32: each player's information-state tensor
    (``state.information_state_tensor(i)``, the same vector
    ``evaluation/openspiel.py`` feeds a policy when it enumerates the game).
  * ``ACTION_MASK`` ``[num_actions]`` float32, 1 where allowed: for the player
    to move, OpenSpiel's legal actions; for the other player (and for both on
    the ``LAST`` step) exactly one action, 0, so its policy is deterministic
    there and its gradient and entropy are zero: it learns nothing from turns
    that are not its own.
  * Chance nodes (the deal, Leduc's public card) are resolved inside the
    environment with its own generator: ``seed`` seeds it once, so two
    environments built with the same seed deal the same episodes; ``seed=None``
    (the default) draws fresh entropy, so env copies built from one config do
    not deal in lockstep. ``reseed(seed)`` restarts the sequence.
  * Rewards ``[2]`` float32: 0 until the terminal step, which carries the
    game's returns (``state.returns()``) with discount 0. A step is one
    decision; ``max_episode_steps`` is ``game.max_game_length()``, the most
    decisions an episode can take (chance nodes are not steps).
  * ``TimeStep.info`` is empty. ``get_state``/``set_state`` snapshot the game's
    history and the generator, for exact resume.
"""

from __future__ import annotations

import functools
import importlib.util
import numbers
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs.base import Environment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

# The family's names: make("openspiel/<name>").
NAMES = ('kuhn_poker', 'leduc_poker')
ACTION_MASK = 'ACTION_MASK'
FEATURES = 'FEATURES'
NUM_PLAYERS = 2
INSTALL_HINT = ('The openspiel/ environments need OpenSpiel: '
                'pip install open-spiel==2.0.2')


@functools.lru_cache(maxsize=None)
def pyspiel():
  """The ``pyspiel`` module (imported on first use, with an install hint)."""
  if importlib.util.find_spec('pyspiel') is None:
    raise ImportError(INSTALL_HINT)
  import pyspiel as module  # pylint: disable=g-import-not-at-top
  return module


def _game_param(key: str, value):
  """A keyword argument as a value ``pyspiel.load_game`` accepts."""
  if isinstance(value, (bool, str)):
    return value
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return float(value)
  raise ValueError(f'game parameter {key}={value!r}: OpenSpiel parameters are '
                   'bool, int, float or str.')


def check_game(game, where: str = '') -> None:
  """Raises ``ValueError`` unless ``game`` is a turn-based, two-player,
  zero-sum game with terminal rewards and information-state tensors."""
  spiel = pyspiel()
  kind = game.get_type()
  name = where or kind.short_name
  problems = []
  if game.num_players() != NUM_PLAYERS:
    problems.append(f'has {game.num_players()} players (need 2)')
  if kind.utility != spiel.GameType.Utility.ZERO_SUM:
    problems.append(f'is not zero-sum ({kind.utility})')
  if kind.dynamics != spiel.GameType.Dynamics.SEQUENTIAL:
    problems.append(f'is not turn-based ({kind.dynamics})')
  if kind.reward_model != spiel.GameType.RewardModel.TERMINAL:
    problems.append('has intermediate rewards')
  if not kind.provides_information_state_tensor:
    problems.append('provides no information-state tensor')
  if problems:
    raise ValueError(
        f'{name} {"; ".join(problems)}: the openspiel family supports '
        'turn-based two-player zero-sum games with terminal rewards and '
        f'information-state tensors, such as {", ".join(NAMES)}.')


def load_game(game, **params):
  """``game`` (a name, ``"openspiel/<name>"`` or a ``pyspiel.Game``) loaded
  with ``params`` and checked by ``check_game``.

  Raises:
    ValueError: unknown game, bad parameters, or a game of another kind.
  """
  spiel = pyspiel()
  if isinstance(game, spiel.Game):
    if params:
      raise ValueError('game parameters go with a game name, not with a '
                       f'loaded game ({game}); got {sorted(params)}.')
    check_game(game)
    return game
  if not isinstance(game, str):
    raise ValueError(f'game must be a name or a pyspiel.Game, got {game!r}.')
  name = game[len('openspiel/'):] if game.startswith('openspiel/') else game
  if name not in spiel.registered_names():
    raise ValueError(f'Unknown OpenSpiel game {name!r}; the openspiel family '
                     f'offers {", ".join(NAMES)}.')
  values = {k: _game_param(k, v) for k, v in params.items()}
  try:
    loaded = spiel.load_game(name, values)
  except (spiel.SpielError, RuntimeError, TypeError) as e:
    raise ValueError(f'Bad arguments for openspiel/{name} {values}: '
                     f'{str(e).splitlines()[0]}') from e
  check_game(loaded, f'openspiel/{name}' + (f' {values}' if values else ''))
  return loaded


def observe(state, player: int) -> Tuple[np.ndarray, np.ndarray]:
  """``(FEATURES [D] float32, ACTION_MASK [A] float32)`` of ``player`` in
  ``state``, as the environment gives them (see the module docstring)."""
  features = np.asarray(state.information_state_tensor(player), np.float32)
  num_actions = state.get_game().num_distinct_actions()
  if not state.is_terminal() and state.current_player() == player:
    mask = np.asarray(state.legal_actions_mask(player),
                      np.float32)[:num_actions]
  else:
    mask = np.zeros((num_actions,), np.float32)
    mask[0] = 1.
  return features, mask


class OpenSpielEnvironment(Environment):
  """A turn-based two-player zero-sum OpenSpiel game (module docstring)."""

  def __init__(self, game, seed: Optional[int] = None, **params):
    """Loads the game.

    Args:
      game: an OpenSpiel game name (e.g. ``'leduc_poker'``) or a loaded
        ``pyspiel.Game``.
      seed: seeds the chance outcomes (deals); None draws fresh entropy.
      **params: OpenSpiel game parameters (e.g. ``suit_isomorphism=True``).

    Raises:
      ValueError: unknown game, bad parameters, a game that is not turn-based
        two-player zero-sum, or a bad seed.
      ImportError: OpenSpiel is not installed.
    """
    if seed is not None:
      seed = _checks.non_negative_int('seed', seed)
    self._game = load_game(game, **params)
    self._seed = seed
    self._rng = np.random.default_rng(seed)
    self._num_actions = int(self._game.num_distinct_actions())
    size = int(np.prod(self._game.information_state_tensor_shape()))
    self._spec = EnvSpec(
        num_agents=NUM_PLAYERS,
        observation={FEATURES: ArraySpec((size,), np.dtype(np.float32)),
                     ACTION_MASK: ArraySpec((self._num_actions,),
                                            np.dtype(np.float32))},
        num_actions=self._num_actions,
        max_episode_steps=int(self._game.max_game_length()),
        zero_sum=True)
    self._state = None
    self._needs_reset = True

  # -- Properties -------------------------------------------------------------

  @property
  def game(self):
    """The ``pyspiel.Game``."""
    return self._game

  @property
  def state(self):
    """The current ``pyspiel.State`` (a copy), or None before ``reset``."""
    return None if self._state is None else self._state.clone()

  @property
  def current_player(self) -> int:
    """The player whose action the next ``step`` applies (-4: terminal)."""
    if self._state is None:
      raise RuntimeError('current_player before reset().')
    return int(self._state.current_player())

  # -- Contract ---------------------------------------------------------------

  def spec(self) -> EnvSpec:
    return self._spec

  def reseed(self, seed: Optional[int]) -> None:
    """Restarts the chance generator from ``seed`` (None: fresh entropy)."""
    if seed is not None:
      seed = _checks.non_negative_int('seed', seed)
    self._seed = seed
    self._rng = np.random.default_rng(seed)

  def reset(self) -> TimeStep:
    self._state = self._game.new_initial_state()
    self._resolve_chance()
    if self._state.is_terminal():
      raise RuntimeError(f'{self._game} ended before any decision.')
    self._needs_reset = False
    return TimeStep(StepType.FIRST, np.zeros((NUM_PLAYERS,), np.float32),
                    np.float32(1.), self._observe())

  def step(self, actions) -> TimeStep:
    actions = _checks.actions(actions, NUM_PLAYERS, self._num_actions)
    if self._needs_reset:
      return self.reset()
    player = int(self._state.current_player())
    action = actions[player]
    legal = self._state.legal_actions(player)
    if action not in legal:
      names = ', '.join(f'{a}={self._state.action_to_string(player, a)}'
                        for a in legal)
      raise ValueError(f'Player {player} may not take action {action} in '
                       f'{self._game} here; legal actions: {names}.')
    self._state.apply_action(action)
    self._resolve_chance()
    if self._state.is_terminal():
      self._needs_reset = True
      return TimeStep(StepType.LAST,
                      np.asarray(self._state.returns(), np.float32),
                      np.float32(0.), self._observe())
    return TimeStep(StepType.MID, np.zeros((NUM_PLAYERS,), np.float32),
                    np.float32(1.), self._observe())

  def get_state(self) -> Dict[str, Any]:
    return dict(game=str(self._game),
                history=(None if self._state is None
                         else list(self._state.history())),
                rng=self._rng.bit_generator.state,
                needs_reset=self._needs_reset)

  def set_state(self, state: Any) -> None:
    if not isinstance(state, Mapping) or set(state) != {
        'game', 'history', 'rng', 'needs_reset'}:
      raise ValueError('state must be a snapshot returned by '
                       'OpenSpielEnvironment.get_state().')
    if state['game'] != str(self._game):
      raise ValueError(f'The snapshot is of {state["game"]}, this environment '
                       f'plays {self._game}.')
    if state['history'] is None:
      self._state = None
    else:
      self._state = self._game.new_initial_state()
      for action in state['history']:
        self._state.apply_action(int(action))
    self._rng.bit_generator.state = state['rng']
    self._needs_reset = bool(state['needs_reset'])

  # -- Internals --------------------------------------------------------------

  def _resolve_chance(self) -> None:
    while self._state.is_chance_node():
      outcomes, probs = zip(*self._state.chance_outcomes())
      probs = np.asarray(probs, np.float64)
      index = self._rng.choice(len(outcomes), p=probs / probs.sum())
      self._state.apply_action(outcomes[index])

  def _observe(self) -> Dict[str, np.ndarray]:
    rows = [observe(self._state, i) for i in range(NUM_PLAYERS)]
    return {FEATURES: np.stack([r[0] for r in rows]),
            ACTION_MASK: np.stack([r[1] for r in rows])}

  def __repr__(self) -> str:
    return f'OpenSpielEnvironment({self._game}, seed={self._seed})'


def make(name: str, seed: Optional[int] = None,
         **params) -> OpenSpielEnvironment:
  """``make("openspiel/<name>", seed=None, **game_params)``: the registry's
  factory."""
  return OpenSpielEnvironment(name, seed=seed, **params)
