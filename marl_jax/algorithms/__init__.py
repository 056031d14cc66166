"""Algorithms by name. Each is one module with ``make(env_spec, config)``."""

from __future__ import annotations

import importlib

from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState

ALGORITHMS = ('impala', 'opre')


class UnknownAlgorithmError(ValueError):
  """An algorithm name that is not registered."""


def make(name: str, env_spec, config) -> Algorithm:
  """Builds algorithm ``name`` for ``env_spec`` from ``config``."""
  if name not in ALGORITHMS:
    raise UnknownAlgorithmError(
        f'Unknown algorithm {name!r}. Valid algorithms: {", ".join(ALGORITHMS)}.')
  module = importlib.import_module(f'marl_jax.algorithms.{name}')
  return module.make(env_spec, config)


__all__ = ['ALGORITHMS', 'ActorExtras', 'Algorithm', 'LearnerState',
           'UnknownAlgorithmError', 'make']
