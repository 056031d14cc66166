"""Environments by name: ``make("overcooked/cramped_room")``.

Families register a factory and the names they provide. Names are
``"family/name"``; an unknown name raises ``UnknownEnvironmentError`` listing the
valid ones.
"""

from __future__ import annotations

import difflib
from typing import Callable, Dict, Iterable, List

from marl_jax.envs.base import Environment


class UnknownEnvironmentError(ValueError):
  """An environment name that no family provides."""


# family -> (names, factory(name, **kwargs))
_FAMILIES: Dict[str, tuple] = {}


def register(family: str, names: Iterable[str],
             factory: Callable[..., Environment]) -> None:
  """Registers ``factory(name, **kwargs)`` for ``family/<name>`` of ``names``."""
  _FAMILIES[family] = (tuple(names), factory)


def _ensure_builtin_families() -> None:
  # Imported lazily so that `import marl_jax` does not import every simulator.
  from marl_jax.envs import overcooked  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import pettingzoo  # noqa: F401  pylint: disable=g-import-not-at-top
  from marl_jax.envs import toy  # noqa: F401  pylint: disable=g-import-not-at-top


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
