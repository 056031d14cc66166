"""Algorithms by name. Each is one module with ``make(env_spec, config)``."""

from __future__ import annotations

import importlib
import importlib.abc
import sys


def _load_rlax_without_tensorflow() -> None:
  """Keeps TensorFlow out of processes that only use rlax/distrax.

  tensorflow-probability's JAX substrate (under distrax, under rlax) imports
  TensorFlow whenever it is installed, only to copy docstrings: with
  dm-meltingpot's TensorFlow in the environment that costs every learner and
  actor process ~6 s and ~600 MB. rlax is imported here with TensorFlow
  hidden, exactly as in an environment without it; TensorFlow stays
  importable afterwards (Melting Pot's saved-model bots).
  """
  if 'tensorflow' in sys.modules:
    return

  class _Block(importlib.abc.MetaPathFinder):

    def find_spec(self, name, path=None, target=None):
      del path, target
      if name == 'tensorflow' or name.startswith('tensorflow.'):
        raise ImportError(f'{name} is not needed by the JAX backend of tfp.')
      return None

  finder = _Block()
  sys.meta_path.insert(0, finder)
  try:
    importlib.import_module('rlax')
  except ImportError:
    pass  # tfp not installed: nothing to guard.
  finally:
    sys.meta_path.remove(finder)


_load_rlax_without_tensorflow()

# pylint: disable=g-import-not-at-top,wrong-import-position
from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState

ALGORITHMS = ('impala', 'opre', 'mappo', 'ippo', 'qmix', 'vdn')
# Registry name -> module, where they differ (variants of one algorithm).
_MODULES = {'ippo': 'mappo', 'vdn': 'qmix'}


class UnknownAlgorithmError(ValueError):
  """An algorithm name that is not registered."""


def make(name: str, env_spec, config) -> Algorithm:
  """Builds algorithm ``name`` for ``env_spec`` from ``config``."""
  if name not in ALGORITHMS:
    raise UnknownAlgorithmError(
        f'Unknown algorithm {name!r}. Valid algorithms: {", ".join(ALGORITHMS)}.')
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  # What the config leaves to the env spec ('auto' observation key).
  config = config_lib.derive_from_spec(config, env_spec)
  module = importlib.import_module(
      f'marl_jax.algorithms.{_MODULES.get(name, name)}')
  if name in _MODULES:
    return module.make(env_spec, config, variant=name)
  return module.make(env_spec, config)


__all__ = ['ALGORITHMS', 'ActorExtras', 'Algorithm', 'LearnerState',
           'UnknownAlgorithmError', 'make']
