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
import functools
import pkgutil
from typing import Dict, Optional

from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState


class UnknownAlgorithmError(ValueError):
  """An algorithm name that is not registered."""


@functools.cache
def _registry() -> Dict[str, str]:
  """Algorithm name -> the module of this package that builds it.

  Every module that lists ``NAMES`` registers them: a new algorithm is one
  module here (with ``NAMES``, ``GLOBAL_STATE_KEYS`` and ``make``) and one
  ``configs/<name>.py``, and nothing else is edited.
  """
  registry: Dict[str, str] = {}
  for info in pkgutil.iter_modules(__path__):
    if info.name.startswith('_'):
      continue
    module = importlib.import_module(f'{__name__}.{info.name}')
    for name in getattr(module, 'NAMES', ()):
      if name in registry:
        raise RuntimeError(f'Algorithm {name!r} is registered by both '
                           f'{registry[name]} and {info.name}.')
      registry[name] = info.name
  return dict(sorted(registry.items()))


def names() -> tuple:
  """The registered algorithm names, sorted."""
  return tuple(_registry())


def __getattr__(attr):
  if attr == 'ALGORITHMS':  # The registered names (computed on first use).
    return names()
  raise AttributeError(f'module {__name__!r} has no attribute {attr!r}')


def _module(name: str):
  registry = _registry()
  if name not in registry:
    raise UnknownAlgorithmError(
        f'Unknown algorithm {name!r}. Valid algorithms: '
        f'{", ".join(registry)}.')
  return importlib.import_module(f'{__name__}.{registry[name]}')


def global_state_key(config) -> Optional[str]:
  """The observation ``config``'s algorithm reads as its privileged global
  state (MAPPO's critic, QMIX's mixer, OPRE's posterior), or None."""
  key = getattr(_module(config.algo), 'GLOBAL_STATE_KEYS', {}).get(
      config.algo)
  return config.get(key) if key else None


def learns_team_reward(name: str) -> bool:
  """Whether algorithm ``name`` learns from the team's summed reward (its
  module sets ``TEAM_REWARD``: QMIX, VDN)."""
  return bool(getattr(_module(name), 'TEAM_REWARD', False))


def is_offline(name: str) -> bool:
  """Whether algorithm ``name`` learns from a dataset rather than by acting
  (its module sets ``OFFLINE``: behaviour cloning); ``runtime/offline.py``
  trains it."""
  return bool(getattr(_module(name), 'OFFLINE', False))


def with_global_state(config, observation_spec):
  """``config`` with the ``global_state`` wrapper added (a copy) when its
  algorithm reads a ``GLOBAL`` the environment lacks; else ``config``."""
  import ml_collections
  key = global_state_key(config)
  wrappers = tuple(config.get('env_wrappers', ()) or ())
  if (key != 'GLOBAL' or key in observation_spec or
      'global_state' in wrappers):
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  config.env_wrappers = wrappers + ('global_state',)
  return config


def make_env(config, name: Optional[str] = None):
  """The environment ``config``'s algorithm runs on: ``env`` (or ``name``),
  ``env_kwargs``, ``env_wrappers``, and the ``global_state`` wrapper when the
  algorithm reads a ``GLOBAL`` the environment has none of."""
  from marl_jax.envs import wrappers
  from marl_jax.utils import config as config_lib
  names_ = tuple(config.get('env_wrappers', ()) or ())
  env = wrappers.make_wrapped(name or config.env, names_,
                              **config_lib.env_kwargs(config))
  if with_global_state(config, env.spec().observation) is not config:
    env = wrappers.GlobalState(env)
  return env


def make(name: str, env_spec, config) -> Algorithm:
  """Builds algorithm ``name`` for ``env_spec`` from ``config``."""
  module = _module(name)
  from marl_jax.utils import config as config_lib
  # What the config leaves to the env spec ('auto' observation key).
  config = config_lib.derive_from_spec(config, env_spec)
  if len(module.NAMES) > 1:
    return module.make(env_spec, config, variant=name)
  return module.make(env_spec, config)


__all__ = ['ALGORITHMS', 'ActorExtras', 'Algorithm', 'LearnerState',
           'UnknownAlgorithmError', 'global_state_key', 'is_offline',
           'learns_team_reward',
           'make', 'make_env', 'names', 'with_global_state']
