r"""Melting Pot's official bots as held-out partners (``evaluate.py --heldout``).

  python evaluate.py --exp_dir=runs/cooking \
      --heldout=meltingpot_bots:collaborative_cooking__cramped__chef_0
  python evaluate.py --exp_dir=runs/cooking --heldout=meltingpot_bots:all

Names are those of meltingpot's own bot registry
(``meltingpot.configs.bots.BOT_CONFIGS``, ``<substrate>__<bot>_<k>``), plus
``noop_bot`` (``meltingpot.bot.NOOP_BOT_NAME``: always action 0, no saved
model). ``all`` is every bot of ``BOT_CONFIGS`` trained on the substrate the
runs are evaluated on. Each bot is a held-out policy of one member, named
``meltingpot_bots:<name>``.

Bots are built by meltingpot itself (``meltingpot.bot.build``: a saved-model
policy, puppeteered on some substrates), which imports TensorFlow. Names are
checked and the saved models looked for without it, before anything is
played: without the assets archive the request fails at once with one line
saying how to install it (``meltingpot.missing_bots_message``, the one the
environment gives for scenarios).

How a bot plays one of our agent slots. A meltingpot ``Policy``
(``initial_state()``, ``step(timestep, prev_state) -> (action, state)``,
``close()``) sees one player's dm_env ``TimeStep`` with *all* the substrate's
observations of that player, as meltingpot's ``Population`` gives them to its
background bots, not only the ones our environment passes on. ``BotPolicy`` is
therefore built with the environment it plays in and reads its
``last_meltingpot_timestep`` when asked to act: it must be stepped in lockstep
with that environment, as ``crossplay.play_seated`` does (checked: the time
step it is given must show the same ``RGB`` as meltingpot's). It keeps one bot
state per agent slot, started anew on ``FIRST``, and, like every cross-play
policy, proposes an action for every slot; bots' steps have no side effects
(meltingpot's contract), so the slots it does not hold change nothing. A bot
trained for some roles only plays where every player slot has one of them
(cross-play alternates seats).
"""

from __future__ import annotations

import difflib
import importlib
import os
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

PREFIX = 'meltingpot_bots:'
ALL = 'all'
NOOP_BOT = 'noop_bot'  # meltingpot.bot.NOOP_BOT_NAME: needs no saved model
_INSTEAD = ('Or evaluate against other held-out partners: run directories or '
            'scripted:random.')


class BotsError(ValueError):
  """A bad ``meltingpot_bots:`` request; the message names what was wrong."""


def parse(spec: str) -> Optional[Tuple[str, ...]]:
  """``'meltingpot_bots:a,b' -> ('a', 'b')`` (``('all',)`` for all), without
  repeats; None when ``spec`` does not start with ``meltingpot_bots:``.

  Only the syntax is checked here; ``resolve`` checks the names.
  """
  if not str(spec).startswith(PREFIX):
    return None
  names = [n.strip() for n in spec[len(PREFIX):].split(',')]
  if not any(names):
    raise BotsError(f'--heldout={spec} names no bot: give '
                    f'{PREFIX}<bot>[,<bot>...] or {PREFIX}{ALL}.')
  if '' in names:
    raise BotsError(f'--heldout={spec} has an empty bot name.')
  if ALL in names and len(names) > 1:
    raise BotsError(f'--heldout={spec}: give {ALL} alone, or a list of bot '
                    'names.')
  return tuple(dict.fromkeys(names))


def bot_configs() -> Mapping[str, object]:
  """meltingpot's ``BOT_CONFIGS`` (name -> ``BotConfig``), without
  TensorFlow."""
  from marl_jax.envs import meltingpot  # pylint: disable=g-import-not-at-top
  try:
    meltingpot.modules()
    from meltingpot.configs import bots  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # dm-meltingpot is not installed: how to
    raise BotsError(str(e)) from None
  return bots.BOT_CONFIGS


def bots_of(substrate: str) -> Tuple[str, ...]:
  """Every bot of ``BOT_CONFIGS`` trained on ``substrate``, sorted."""
  return tuple(sorted(n for n, c in bot_configs().items()
                      if c.substrate == substrate))


def substrate_of(env_name: str, spec: str) -> str:
  """The substrate of ``meltingpot/<substrate>`` (or of a scenario env)."""
  from marl_jax.envs import meltingpot  # pylint: disable=g-import-not-at-top
  substrate = meltingpot.substrate_of(env_name)
  if substrate is None:
    raise BotsError(
        f'--heldout={spec}: Melting Pot bots play Melting Pot substrates '
        f'(meltingpot/<substrate>); the runs are evaluated on {env_name}.')
  return substrate


def resolve(spec: str, env_name: str) -> Tuple[str, ...]:
  """The bot names of ``spec`` for cross-play on ``env_name``: ``all``
  expanded to the substrate's bots, every name checked against meltingpot's
  registry and the substrate."""
  names = parse(spec)
  if names is None:
    raise BotsError(f'{spec!r} is not {PREFIX}<bot>[,<bot>...].')
  substrate = substrate_of(env_name, spec)
  own = bots_of(substrate)
  listing = (f'Bots of {substrate}: {", ".join(own) or "none"} (or {ALL}, or '
             f'{NOOP_BOT}).')
  if names == (ALL,):
    if not own:
      raise BotsError(f'--heldout={spec}: meltingpot has no bots of '
                      f'{substrate}.')
    return own
  configs = bot_configs()
  for name in names:
    if name == NOOP_BOT:
      continue
    if name not in configs:
      close = (difflib.get_close_matches(name, own, n=3) or
               difflib.get_close_matches(name, list(configs), n=3))
      hint = f' Did you mean {", ".join(close)}?' if close else ''
      raise BotsError(f'Unknown Melting Pot bot {name!r} in --heldout={spec}.'
                      f'{hint} {listing}')
    if configs[name].substrate != substrate:
      raise BotsError(f'--heldout={spec}: {name} is a bot of '
                      f'{configs[name].substrate}, but the runs are evaluated '
                      f'on {substrate}. {listing}')
  return names


def missing(names: Sequence[str]) -> Tuple[str, ...]:
  """The bots of ``names`` whose saved model is not installed."""
  configs = bot_configs()
  return tuple(n for n in names if n != NOOP_BOT and
               not os.path.isdir(configs[n].model_path))


def check_installed(names: Sequence[str], spec: str) -> None:
  """``BotsError`` (one line: what is missing, how to install it) unless
  every bot of ``names`` can be built. Does not import TensorFlow."""
  absent = missing(names)
  if absent:
    # pylint: disable-next=g-import-not-at-top
    from marl_jax.envs import meltingpot
    raise BotsError(meltingpot.missing_bots_message(
        absent, f'--heldout={spec}', _INSTEAD))


def build_bot(name: str):
  """meltingpot's own policy for the bot ``name`` (imports TensorFlow)."""
  bot_configs()  # registers the package (its __init__ imports TensorFlow)
  return importlib.import_module('meltingpot.bot').build(name)


def _slot_roles(base) -> Tuple[str, ...]:
  roles = tuple(base.roles)
  if base.is_focal is None:
    return roles
  return tuple(r for r, focal in zip(roles, base.is_focal) if focal)


def _base_env(env, name: str):
  from marl_jax.envs import meltingpot  # pylint: disable=g-import-not-at-top
  base = getattr(env, 'unwrapped', env)
  if not isinstance(base, meltingpot.MeltingPot):
    raise BotsError(f'{PREFIX}{name} plays Melting Pot only; the environment '
                    f'is {base!r}.')
  return base


def check_env(name: str, env) -> None:
  """``BotsError`` unless the bot ``name`` can hold every slot of ``env``:
  a Melting Pot env of its substrate whose player roles it was trained for."""
  base = _base_env(env, name)
  if name == NOOP_BOT:
    return
  config = bot_configs()[name]
  if config.substrate != base.substrate_name:
    raise BotsError(f'{PREFIX}{name} is a bot of {config.substrate}; the '
                    f'environment is {base.substrate_name}.')
  roles = _slot_roles(base)
  if set(roles) - set(config.roles):
    raise BotsError(
        f'{PREFIX}{name} was trained for the role(s) '
        f'{", ".join(sorted(config.roles))}, but cross-play seats it in every '
        f'player slot of {base.substrate_name}, whose roles are '
        f'{", ".join(roles)}.')


class BotPolicy:
  """A meltingpot ``Policy`` (one bot) as a one-member ``crossplay.Policy``,
  built with the Melting Pot environment it plays in (module docstring)."""

  size = 1

  def __init__(self, bot, env, name: str = 'bot', owns_bot: bool = True):
    for method in ('initial_state', 'step', 'close'):
      if not callable(getattr(bot, method, None)):
        raise BotsError(f'{PREFIX}{name}: {bot!r} has no {method}(), as '
                        "meltingpot's Policy interface has.")
    self._base = _base_env(env, name)
    self._bot = bot
    self._name = name
    self._owns_bot = owns_bot
    self._n = env.spec().num_agents
    self._states = []
    self.reset(np.zeros((self._n,), np.int32))

  @property
  def name(self) -> str:
    return self._name

  def for_env(self, env) -> 'BotPolicy':
    """The same bot (not closed by the copy) playing in ``env``."""
    check_env(self._name, env)
    return BotPolicy(self._bot, env, self._name, owns_bot=False)

  def reset(self, members: np.ndarray) -> None:
    del members
    self._states = [self._bot.initial_state() for _ in range(self._n)]

  def step(self, timestep) -> np.ndarray:
    raw = self._base.last_meltingpot_timestep
    if raw is None or not self._same_step(raw, timestep):
      raise RuntimeError(
          f'{PREFIX}{self._name} must act on the time step its environment '
          'just returned; build it with the environment it plays in.')
    if timestep.first():
      self.reset(np.zeros((self._n,), np.int32))
    actions = np.zeros((self._n,), np.int32)
    for k in range(self._n):
      # What meltingpot's Population gives each of its bots.
      player = raw._replace(observation=raw.observation[k],
                            reward=raw.reward[k])
      action, self._states[k] = self._bot.step(timestep=player,
                                               prev_state=self._states[k])
      actions[k] = int(action)
    return actions

  def _same_step(self, raw, timestep) -> bool:
    if len(raw.observation) != self._n:
      return False
    if (int(raw.step_type) == 0) != bool(timestep.first()):
      return False
    rgb = timestep.observation.get('RGB')
    if rgb is None or 'RGB' not in raw.observation[0]:
      return True
    mine = np.asarray(raw.observation[0]['RGB'])
    theirs = np.asarray(rgb[0])
    return mine.shape != theirs.shape or np.array_equal(mine, theirs)

  def observe_reward(self, reward: np.ndarray) -> None:
    del reward

  def close(self) -> None:
    if self._owns_bot and self._bot is not None:
      self._bot.close()
    self._bot = None


def make(name: str, env) -> BotPolicy:
  """The bot ``name`` playing in ``env``: checks the env and the saved model
  first (without TensorFlow), then builds it with ``build_bot``."""
  if name != NOOP_BOT and name not in bot_configs():
    raise BotsError(f'Unknown Melting Pot bot {name!r}.')
  check_env(name, env)
  check_installed([name], PREFIX + name)
  bot = build_bot(name)
  try:
    return BotPolicy(bot, env, name)
  except BaseException:
    bot.close()
    raise
