"""The files every evaluation report writes: CSV, JSON, Markdown text and
heatmap PNGs, each written atomically (a temporary file, then a rename), and
the ``run[member]`` names their rows and columns use.

Shared by ``report.py`` (cross-play) and ``scenarios.py`` (Melting Pot
scenarios), which otherwise do not import each other.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Dict, Sequence

import numpy as np


def player_name(run: str, member: int) -> str:
  return f'{run}[{member}]'


def write_csv(path: str, rows: Sequence[Dict[str, object]]) -> None:
  """``rows`` (dicts with the same keys) as a CSV file, written atomically."""
  with open(path + '.tmp', 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  os.replace(path + '.tmp', path)


def write_json(path: str, doc) -> None:
  """``doc`` as indented JSON, written atomically."""
  with open(path + '.tmp', 'w') as f:
    json.dump(doc, f, indent=2)
  os.replace(path + '.tmp', path)


def write_text(path: str, text: str) -> None:
  """``text`` to ``path``, written atomically."""
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)


def heatmap(path: str, matrix: np.ndarray, row_labels: Sequence[str],
            col_labels: Sequence[str], xlabel: str, ylabel: str, title: str,
            fmt: str = '.0f') -> None:
  """A PNG of ``matrix`` (NaN cells left blank), values written in cells."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(max(5.5, 2.5 + 0.9 * len(col_labels)),
                                  max(4.5, 2.0 + 0.6 * len(row_labels))))
  im = ax.imshow(matrix, cmap='viridis')
  ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha='right')
  ax.set_yticks(range(len(row_labels)), row_labels)
  for (i, j), v in np.ndenumerate(matrix):
    if np.isfinite(v):
      ax.text(j, i, format(v, fmt), ha='center', va='center',
              color='w' if v < np.nanmean(matrix) else 'k', fontsize=8)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path + '.tmp.png', dpi=100)
  plt.close(fig)
  os.replace(path + '.tmp.png', path)
