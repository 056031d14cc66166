"""The payoff table: named policies x named policies -> mean return, count.

Rows and columns are *named* policies (population members such as
``member_0``, frozen snapshots such as ``snapshot_3``, held-out or scripted
partners such as ``scripted:greedy``); entry ``(row, col)`` is the mean of
the row policy's results (e.g. its episode return) when playing with, or
against, the column policy, and how many results that mean is over. Entries
are updated incrementally, ``mean += (x - mean) / count``, so the table can
absorb evaluation matches as they arrive without keeping them.

The table is saved with the run as ``payoff.json`` (``save`` writes a
temporary file in the same directory and renames it over the old one, so a
reader never sees a half-written table) and read back with ``load``.
Meta-solvers (``population/meta_solvers.py``) read ``matrix(...)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

FILENAME = 'payoff.json'
_FORMAT = 'marl_jax.payoff/1'


class PayoffTable:
  """Mean results of named policies against named policies.

  Args:
    names: policies known from the start (more are added on first update).
  """

  def __init__(self, names: Iterable[str] = ()):
    self._names: List[str] = []
    self._entries: Dict[Tuple[str, str], Tuple[float, int]] = {}
    for name in names:
      self.add_policy(name)

  # ---------------------------------------------------------------- contents
  @property
  def names(self) -> List[str]:
    """Every policy, in the order they were added."""
    return list(self._names)

  def add_policy(self, name: str) -> None:
    if not isinstance(name, str) or not name:
      raise ValueError(f'policy names must be non-empty strings, got {name!r}.')
    if name not in self._names:
      self._names.append(name)

  def update(self, row: str, col: str, values) -> None:
    """Adds results (a number or an array of them) of ``row`` with ``col``."""
    values = np.asarray(values, np.float64).reshape(-1)
    if not np.isfinite(values).all():
      raise ValueError(f'non-finite result for ({row}, {col}): {values}.')
    self.add_policy(row)
    self.add_policy(col)
    mean, count = self._entries.get((row, col), (0., 0))
    for x in values:
      count += 1
      mean += (float(x) - mean) / count
    if count:
      self._entries[(row, col)] = (mean, count)

  def mean(self, row: str, col: str) -> float:
    """The mean result, NaN when the pair has not played."""
    return self._entries.get((row, col), (float('nan'), 0))[0]

  def count(self, row: str, col: str) -> int:
    return self._entries.get((row, col), (0., 0))[1]

  def matrix(self, rows: Optional[Sequence[str]] = None,
             cols: Optional[Sequence[str]] = None
             ) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean [R, C], count [R, C])`` over ``rows`` x ``cols`` (default: all).

    Pairs that have not played have mean NaN and count 0.
    """
    rows = self._names if rows is None else list(rows)
    cols = self._names if cols is None else list(cols)
    unknown = [n for n in list(rows) + list(cols) if n not in self._names]
    if unknown:
      raise KeyError(f'Unknown policies {unknown}; the table has '
                     f'{self._names}.')
    mean = np.full((len(rows), len(cols)), np.nan)
    count = np.zeros((len(rows), len(cols)), np.int64)
    for i, r in enumerate(rows):
      for j, c in enumerate(cols):
        if (r, c) in self._entries:
          mean[i, j], count[i, j] = self._entries[(r, c)]
    return mean, count

  def __len__(self) -> int:
    return len(self._names)

  def __eq__(self, other) -> bool:
    return (isinstance(other, PayoffTable) and self._names == other._names and
            self._entries == other._entries)

  # ----------------------------------------------------------- serialisation
  def to_dict(self) -> dict:
    return dict(format=_FORMAT, names=list(self._names), entries=[
        dict(row=r, col=c, mean=m, count=n)
        for (r, c), (m, n) in self._entries.items()])

  @classmethod
  def from_dict(cls, doc: dict) -> 'PayoffTable':
    if not isinstance(doc, dict) or doc.get('format') != _FORMAT:
      raise ValueError(f'not a payoff table (expected format {_FORMAT!r}).')
    table = cls(doc['names'])
    for e in doc['entries']:
      row, col, count = e['row'], e['col'], int(e['count'])
      if row not in table._names or col not in table._names or count <= 0:
        raise ValueError(f'bad payoff entry {e!r}.')
      table._entries[(row, col)] = (float(e['mean']), count)
    return table

  def save(self, path: str) -> str:
    """Writes the table to ``path`` (a file, or a run dir for ``payoff.json``)
    atomically: the old file stays whole until the new one is complete."""
    if os.path.isdir(path):
      path = os.path.join(path, FILENAME)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.payoff.', suffix='.tmp', dir=directory)
    try:
      with os.fdopen(fd, 'w') as f:
        json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
    return path

  @classmethod
  def load(cls, path: str) -> 'PayoffTable':
    """Reads a table written by ``save`` (a file, or a run dir)."""
    if os.path.isdir(path):
      path = os.path.join(path, FILENAME)
    try:
      with open(path) as f:
        doc = json.load(f)
      return cls.from_dict(doc)
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise ValueError(f'{path}: cannot read the payoff table: {e}') from e
