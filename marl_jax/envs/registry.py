"""Environments by name: ``make("overcooked/cramped_room")``.

Families register a factory and the names they provide. Names are
``"family/name"``; an unknown name raises ``UnknownEnvironmentError`` listing the
valid ones.

JAX-native families also register functional factories (``register_jax``):
``make_jax("jax/climbing")`` gives the ``JaxEnvironment`` for the anakin
runtime, ``make`` of the same name the same game behind ``Environment``.
"""

from __future__ import annotations

import difflib
from typing import Callable, Dict, Iterable, List

from marl_jax.envs.base import Environment, JaxEnvironment


class UnknownEnvironmentError(ValueError):
  """An environment name that no family provides."""


# family -> (names, factory(name, **kwargs))
_FAMILIES: Dict[str, tuple] = {}
# family -> (names, factory(name, **kwargs)) of functional (JAX-native) envs.
_JAX_FAMILIES: Dict[str, tuple] = {}


def register(family: str, names: Iterable[str],
             factory: Callable[..., Environment]) -> None:
  """Registers ``factory(name, **kwargs)`` for ``family/<name>`` of ``names``."""
  _FAMILIES[family] = (tuple(names), factory)


def register_jax(family: str, names: Iterable[str],
                 factory: Callable[..., JaxEnvironment]) -> None:
  """Registers a functional ``factory`` for ``make_jax("family/<name>")``."""
  _JAX_FAMILIES[family] = (tuple(names), factory)


def _ensure_builtin_families() -> None:
  # Imported lazily so that `import marl_jax` does not import every simulator.
  from marl_jax.envs import overcooked  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import pettingzoo  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import toy  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import meltingpot  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import jax_games  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import jaxmarl  # noqa: F401  pylint: disable=g-import-not-at-top


def list_envs() -> List[str]:
  _ensure_builtin_families()
  return sorted(f'{fam}/{n}' for fam, (names, _) in _FAMILIES.items()
                for n in names)


def make(name: str, **kwargs) -> Environment:
  """Builds the environment called ``name`` (``"family/name"``)."""
  _ensure_builtin_families()
  valid = list_envs()
  family, _, short = str(name).partition('/')
  if family not in _FAMILIES or short not in _FAMILIES[family][0]:
    close = difflib.get_close_matches(str(name), valid, n=3)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    raise UnknownEnvironmentError(
        f'Unknown environment {name!r}.{hint} Valid environments: '
        f'{", ".join(valid)}.')
  return _FAMILIES[family][1](short, **kwargs)


def list_jax_envs() -> List[str]:
  """Names ``make_jax`` accepts."""
  _ensure_builtin_families()
  return sorted(f'{fam}/{n}' for fam, (names, _) in _JAX_FAMILIES.items()
                for n in names)


def make_jax(name: str, **kwargs) -> JaxEnvironment:
  """Builds the functional (JAX-native) environment called ``name``.

  ``make(name)`` of the same name gives it behind the stateful contract.
  """
  _ensure_builtin_families()
  valid = list_jax_envs()
  family, _, short = str(name).partition('/')
  if family not in _JAX_FAMILIES or short not in _JAX_FAMILIES[family][0]:
    close = difflib.get_close_matches(str(name), valid, n=3)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    raise UnknownEnvironmentError(
        f'Unknown JAX environment {name!r}.{hint} Valid JAX environments: '
        f'{", ".join(valid)}.')
  return _JAX_FAMILIES[family][1](short, **kwargs)
