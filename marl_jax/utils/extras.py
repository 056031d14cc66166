"""Optional dependencies: which extra of ``pip install "marl_jax[...]"``
installs the third-party package a feature imports.

The core install trains on Overcooked-AI, the ``toy/`` and ``jax/`` games;
every other environment family and the Ray launcher need an extra
(``pyproject.toml``'s ``[project.optional-dependencies]``). ``require(extra,
what)`` is asked before such a feature imports its package, so a missing one
is reported as one line naming the extra, not as a traceback:

  jaxmarl/overcooked_cramped_room needs the jaxmarl package: pip install "marl_jax[jaxmarl]"
"""

from __future__ import annotations

import importlib.util
from typing import Dict, Optional, Tuple

# extra -> ((module imported, distribution that provides it), ...): the
# packages of the extra that marl_jax imports itself (their own dependencies
# come with them).
EXTRAS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'jaxmarl': (('jaxmarl', 'jaxmarl'),),
    'meltingpot': (('meltingpot', 'dm-meltingpot'),),
    'openspiel': (('pyspiel', 'open-spiel'),),
    'pettingzoo': (('pettingzoo', 'pettingzoo'), ('mpe2', 'mpe2')),
    'ray': (('ray', 'ray'),),
    'wandb': (('wandb', 'wandb'),),
}

# What the extra alone does not do (README, "Install as a library").
_NOTES = {
    'meltingpot': (', from a clone after ./third_party/pygame_ce_placeholder '
                   '(README, "Install as a library")'),
}


class MissingExtraError(ImportError):
  """A feature's third-party package is not installed; the message is one
  line naming the extra that installs it."""


def installed(module: str) -> bool:
  """Whether ``module`` can be imported (without importing it)."""
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):  # e.g. a parent package that is missing
    return False


def missing(extra: str) -> Optional[str]:
  """The distribution of ``extra`` that is not installed, or None."""
  for module, distribution in EXTRAS[extra]:
    if not installed(module):
      return distribution
  return None


def require(extra: str, what: str) -> None:
  """Raises ``MissingExtraError`` when a package of ``extra`` is missing;
  ``what`` names the feature that needs it (``--launcher=ray``, an env)."""
  distribution = missing(extra)
  if distribution is not None:
    raise MissingExtraError(
        f'{what} needs the {distribution} package: pip install '
        f'"marl_jax[{extra}]"{_NOTES.get(extra, "")}')
