"""Argument checks shared by the environment families (private).

Each check raises ``ValueError`` naming the argument and the valid values, so
that a user mistake never surfaces as a traceback from inside a simulator.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence

import numpy as np


def positive_int(name: str, value) -> int:
  """Returns ``value`` as an int, or raises if it is not an integer > 0."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value <= 0):
    raise ValueError(f'{name} must be a positive integer, got {value!r}.')
  return int(value)


def non_negative_int(name: str, value) -> int:
  """Returns ``value`` as an int, or raises if it is not an integer >= 0."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value < 0):
    raise ValueError(f'{name} must be a non-negative integer, got {value!r}.')
  return int(value)


def finite_float(name: str, value) -> float:
  """Returns ``value`` as a float, or raises if it is not a finite number."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real)
      or not math.isfinite(value)):
    raise ValueError(f'{name} must be a finite number, got {value!r}.')
  return float(value)


def one_of(name: str, value, valid: Sequence[str]):
  """Returns ``value`` if it is in ``valid``, else raises listing them."""
  if value not in valid:
    raise ValueError(f'{name} must be one of {", ".join(map(repr, valid))}; '
                     f'got {value!r}.')
  return value


def actions(value, num_agents: int, num_actions: int,
            action_names: Optional[Sequence[str]] = None) -> List[int]:
  """Checks a joint action and returns it as a list of Python ints.

  Args:
    value: array-like of ``[num_agents]`` integers.
    num_agents: number of agent slots.
    num_actions: actions are integers in ``[0, num_actions)``.
    action_names: optional names of the actions, quoted in the error message.

  Returns:
    The actions as a list of ``num_agents`` ints.

  Raises:
    ValueError: wrong shape, non-integer dtype, or an action out of range.
  """
  a = np.asarray(value)
  if a.shape != (num_agents,) or a.dtype.kind not in 'iu':
    raise ValueError(
        f'actions must be an integer array of shape [{num_agents}] (one action '
        f'per agent); got shape {list(a.shape)} and dtype {a.dtype}.')
  out = a.tolist()
  for x in out:
    if not 0 <= x < num_actions:
      names = ''
      if action_names:
        names = ' (' + ', '.join(f'{i}={n}' for i, n in enumerate(action_names)) + ')'
      raise ValueError(f'actions must be in [0, {num_actions}){names}; got '
                       f'{out}.')
  return out
