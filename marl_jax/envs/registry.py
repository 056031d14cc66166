"""Environments by name: ``make("overcooked/cramped_room")``.

Names are ``"family/name"``. The built-in families are a static table below:
family -> ``"module:factory"`` and ``"module:names"``, imported on first use
(``make`` of one name imports its family's module only; ``list_envs`` imports
them all), so ``import marl_jax`` imports no simulator and a family module
never imports this one. ``names`` is a tuple, or a function returning one, of
the family's environments; ``factory(name, **kwargs)`` builds one of them.
An unknown name raises ``UnknownEnvironmentError`` listing the valid ones; a
family whose third-party package is not installed raises
``MissingExtraError`` naming the extra of ``pip install "marl_jax[...]"``
that installs it (``FAMILY_EXTRAS``).

JAX-native families have a second table of functional factories:
``make_jax("jax/climbing")`` gives the ``JaxEnvironment`` for the anakin
runtime, ``make`` of the same name the same game behind ``Environment``.

``register`` / ``register_jax`` add a family of the caller's at run time
(names and factory given as objects, not strings).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, Iterable, List, NamedTuple, Tuple

from marl_jax.envs.base import Environment, JaxEnvironment
from marl_jax.utils import extras


class UnknownEnvironmentError(ValueError):
  """An environment name that no family provides."""


class Family(NamedTuple):
  """Where a family lives: ``"module:attribute"`` strings."""
  factory: str  # factory(name, **kwargs) -> environment
  names: str  # a tuple of names, or a function returning one


_MELTINGPOT = 'marl_jax.envs.meltingpot.env'

# family -> Family: the built-in families of ``make``.
FAMILIES: Dict[str, Family] = {
    'jax': Family('marl_jax.envs.jax_games:make_host',
                  'marl_jax.envs.jax_games:GAMES'),
    'jaxmarl': Family('marl_jax.envs.jaxmarl:make_host',
                      'marl_jax.envs.jaxmarl:NAMES'),
    'meltingpot': Family(f'{_MELTINGPOT}:make_substrate',
                         f'{_MELTINGPOT}:SUBSTRATES'),
    'meltingpot_scenario': Family(f'{_MELTINGPOT}:make_scenario',
                                  f'{_MELTINGPOT}:SCENARIOS'),
    'openspiel': Family('marl_jax.envs.openspiel:make',
                        'marl_jax.envs.openspiel:NAMES'),
    'overcooked': Family('marl_jax.envs.overcooked:make',
                         'marl_jax.envs.overcooked:LAYOUTS'),
    'pettingzoo': Family('marl_jax.envs.pettingzoo:make',
                         'marl_jax.envs.pettingzoo:NAMES'),
    'toy': Family('marl_jax.envs.toy:make', 'marl_jax.envs.toy:GAMES'),
}
# family -> Family: the built-in families of ``make_jax``.
JAX_FAMILIES: Dict[str, Family] = {
    'jax': Family('marl_jax.envs.jax_games:make_game',
                  'marl_jax.envs.jax_games:GAMES'),
    'jaxmarl': Family('marl_jax.envs.jaxmarl:make_env',
                      'marl_jax.envs.jaxmarl:NAMES'),
}

# family -> the extra that installs its package (utils/extras.py); the
# families not listed need only the core install.
FAMILY_EXTRAS: Dict[str, str] = {
    'jaxmarl': 'jaxmarl',
    'meltingpot': 'meltingpot',
    'meltingpot_scenario': 'meltingpot',
    'openspiel': 'openspiel',
    'pettingzoo': 'pettingzoo',
}

# family -> (names, factory) of families registered at run time.
_REGISTERED: Dict[str, Tuple[Tuple[str, ...], Callable[..., Environment]]] = {}
_REGISTERED_JAX: Dict[str, Tuple[Tuple[str, ...],
                                 Callable[..., JaxEnvironment]]] = {}


def register(family: str, names: Iterable[str],
             factory: Callable[..., Environment]) -> None:
  """Adds ``factory(name, **kwargs)`` for ``family/<name>`` of ``names``."""
  _REGISTERED[family] = (tuple(names), factory)


def register_jax(family: str, names: Iterable[str],
                 factory: Callable[..., JaxEnvironment]) -> None:
  """Adds a functional ``factory`` for ``make_jax("family/<name>")``."""
  _REGISTERED_JAX[family] = (tuple(names), factory)


def _resolve(where: str):
  module, _, attribute = where.partition(':')
  return getattr(importlib.import_module(module), attribute)


def _family(family: str, table, registered):
  """``(names, factory)`` of ``family``, or None when there is none."""
  if family in registered:
    return registered[family]
  if family not in table:
    return None
  names = _resolve(table[family].names)
  names = tuple(names() if callable(names) else names)
  return names, _resolve(table[family].factory)


def _listing(table, registered) -> List[str]:
  out = []
  for family in sorted(set(table) | set(registered)):
    names, _ = _family(family, table, registered)
    out += [f'{family}/{n}' for n in names]
  return sorted(out)


def _make(name, kwargs, table, registered, what: str):
  family, _, short = str(name).partition('/')
  entry = _family(family, table, registered)
  if entry is None or short not in entry[0]:
    valid = _listing(table, registered)
    close = difflib.get_close_matches(str(name), valid, n=3)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    raise UnknownEnvironmentError(
        f'Unknown {what} {name!r}.{hint} Valid {what}s: {", ".join(valid)}.')
  if family not in registered and family in FAMILY_EXTRAS:
    extras.require(FAMILY_EXTRAS[family], str(name))
  return entry[1](short, **kwargs)


def list_envs() -> List[str]:
  """Names ``make`` accepts."""
  return _listing(FAMILIES, _REGISTERED)


def make(name: str, **kwargs) -> Environment:
  """Builds the environment called ``name`` (``"family/name"``)."""
  return _make(name, kwargs, FAMILIES, _REGISTERED, 'environment')


def list_jax_envs() -> List[str]:
  """Names ``make_jax`` accepts."""
  return _listing(JAX_FAMILIES, _REGISTERED_JAX)


def make_jax(name: str, **kwargs) -> JaxEnvironment:
  """Builds the functional (JAX-native) environment called ``name``.

  ``make(name)`` of the same name gives it behind the stateful contract.
  """
  return _make(name, kwargs, JAX_FAMILIES, _REGISTERED_JAX, 'JAX environment')
