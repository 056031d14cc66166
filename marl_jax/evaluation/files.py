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


def short_label(label: str, width: int = 28) -> str:
  """``label`` cut in the middle to at most ``width`` characters (the full
  names are in the report's tables)."""
  if len(label) <= width:
    return label
  keep = width - 1
  return label[:(keep + 1) // 2] + '\u2026' + label[len(label) - keep // 2:]


def heatmap(path: str, matrix: np.ndarray, row_labels: Sequence[str],
            col_labels: Sequence[str], xlabel: str, ylabel: str, title: str,
            fmt: str = '.0f') -> None:
  """A PNG of ``matrix`` (NaN cells left blank), values written in cells.

  Cells fill the axes (so one row is a band, not a square), the figure grows
  with the number and length of the labels, long labels are cut in the
  middle, and the layout engine keeps the title and the colour bar apart.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = [short_label(str(x)) for x in row_labels]
  cols = [short_label(str(x)) for x in col_labels]
  col_chars = max((len(c) for c in cols), default=1)
  row_chars = max((len(r) for r in rows), default=1)
  width = 2.6 + 0.08 * row_chars + max(3.0, 0.9 * len(cols))
  height = 1.5 + 0.06 * col_chars + max(1.2, 0.5 * len(rows))
  fig, ax = plt.subplots(figsize=(width, height), layout='constrained')
  im = ax.imshow(matrix, cmap='viridis', aspect='auto')
  ax.set_xticks(range(len(cols)), cols, rotation=35, ha='right',
                rotation_mode='anchor')
  ax.set_yticks(range(len(rows)), rows)
  finite = matrix[np.isfinite(matrix)]
  middle = float(finite.mean()) if finite.size else 0.0
  for (i, j), v in np.ndenumerate(matrix):
    if np.isfinite(v):
      ax.text(j, i, format(v, fmt), ha='center', va='center',
              color='w' if v < middle else 'k', fontsize=8)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  fig.suptitle(title, fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, aspect=12)
  fig.savefig(path + '.tmp.png', dpi=100)
  plt.close(fig)
  os.replace(path + '.tmp.png', path)
