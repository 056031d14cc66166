"""Evaluation reports: self-play and cross-play tables, the gap, files.

``evaluate_runs`` plays every member of each focal run with every member of
itself (self-play and within-population cross-play) and of each held-out run
(zero-shot cross-play), and ``write_report`` writes JSON, CSV, a Markdown
table and a heatmap PNG of the matrix.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

from marl_jax.evaluation import crossplay, policies
from marl_jax.utils import config as config_lib


class LoadedRun(NamedTuple):
  name: str
  exp_dir: str
  config: object
  policy: policies.PopulationPolicy
  size: int
  env_steps: int


def load(exp_dir: str, greedy: bool, seed: int, name: str = '') -> LoadedRun:
  config, algorithm, params, meta = policies.load_run(exp_dir)
  env = config_lib.make_env(config)
  n = env.spec().num_agents
  env.close()
  return LoadedRun(
      name=name or os.path.basename(os.path.normpath(exp_dir)),
      exp_dir=exp_dir, config=config,
      policy=policies.PopulationPolicy(algorithm, params, n, greedy=greedy,
                                       seed=seed),
      size=int(config.population_size),
      env_steps=int(meta.get('env_steps', 0)))


class Block(NamedTuple):
  focal: str
  partner: str
  result: crossplay.CrossPlayResult


def evaluate_runs(env, focal: Sequence[LoadedRun], heldout: Sequence[LoadedRun],
                  num_episodes: int, metric: str) -> List[Block]:
  blocks = []
  for f in focal:
    # A held-out run is never the focal run itself.
    partners = [f] + [h for h in heldout
                      if os.path.realpath(h.exp_dir) != os.path.realpath(f.exp_dir)]
    for p in partners:
      result = crossplay.cross_play(env, f.policy, f.size, p.policy, p.size,
                                    num_episodes, metric)
      blocks.append(Block(f.name, p.name, result))
  return blocks


def summary(blocks: Sequence[Block]) -> Dict[str, Dict[str, float]]:
  """Per focal run: self-play (diagonal), within-population cross-play
  (off-diagonal), held-out cross-play, and the self-play minus held-out gap."""
  out = {}
  for b in blocks:
    s = out.setdefault(b.focal, {})
    m = b.result.mean
    if b.partner == b.focal:
      s['self_play'] = float(np.mean(np.diag(m)))
      off = m[~np.eye(m.shape[0], dtype=bool)]
      s['within_population_cross_play'] = (float(off.mean()) if off.size
                                           else float('nan'))
    else:
      s.setdefault('_heldout', []).append(m.reshape(-1))
  for s in out.values():
    held = s.pop('_heldout', [])
    s['heldout_cross_play'] = (float(np.concatenate(held).mean()) if held
                               else float('nan'))
    s['gap_self_minus_heldout'] = s['self_play'] - s['heldout_cross_play']
  return out


def write_report(out_dir: str, blocks: Sequence[Block], runs: Dict[str, LoadedRun],
                 env_name: str, metric: str, num_episodes: int) -> Dict[str, str]:
  """Writes results.json, crossplay.csv, report.md and heatmap.png."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {k: os.path.join(out_dir, v) for k, v in dict(
      json='results.json', csv='crossplay.csv', markdown='report.md',
      heatmap='heatmap.png').items()}
  summ = summary(blocks)
  rows = []
  for b in blocks:
    r = b.result
    for i in range(r.mean.shape[0]):
      for j in range(r.mean.shape[1]):
        rows.append(dict(focal_run=b.focal, focal_member=i,
                         partner_run=b.partner, partner_member=j,
                         mean=float(r.mean[i, j]), ci95=float(r.ci95[i, j]),
                         episodes=num_episodes))
  with open(paths['csv'] + '.tmp', 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  os.replace(paths['csv'] + '.tmp', paths['csv'])
  doc = dict(env=env_name, metric=metric, num_episodes=num_episodes,
             runs={k: dict(exp_dir=v.exp_dir, population_size=v.size,
                           env_steps=v.env_steps) for k, v in runs.items()},
             summary=summ, pairs=rows)
  with open(paths['json'] + '.tmp', 'w') as f:
    json.dump(doc, f, indent=2)
  os.replace(paths['json'] + '.tmp', paths['json'])

  # Markdown: the summary, then one matrix per block.
  lines = [f'# Evaluation on {env_name}', '',
           f'Metric: `{metric}` (mean over agents), {num_episodes} episodes per '
           'pair, seats alternated; +- is the 95% interval.', '',
           '| focal run | self-play | within-population cross-play | '
           'held-out cross-play | gap (self - held-out) |',
           '| --- | ---: | ---: | ---: | ---: |']
  fmt = lambda x: f'{x:.1f}' if np.isfinite(x) else '-'
  for name, s in summ.items():
    lines.append(f'| {name} | {fmt(s["self_play"])} | '
                 f'{fmt(s["within_population_cross_play"])} | '
                 f'{fmt(s["heldout_cross_play"])} | '
                 f'{fmt(s["gap_self_minus_heldout"])} |')
  for b in blocks:
    r = b.result
    lines += ['', f'## {b.focal} (rows) with {b.partner} (columns)', '',
              '| | ' + ' | '.join(f'{b.partner}[{j}]'
                                  for j in range(r.mean.shape[1])) + ' |',
              '| --- |' + ' ---: |' * r.mean.shape[1]]
    for i in range(r.mean.shape[0]):
      cells = [f'{r.mean[i, j]:.1f} +- {r.ci95[i, j]:.1f}'
               for j in range(r.mean.shape[1])]
      lines.append(f'| {b.focal}[{i}] | ' + ' | '.join(cells) + ' |')
  with open(paths['markdown'], 'w') as f:
    f.write('\n'.join(lines) + '\n')

  _heatmap(paths['heatmap'], blocks, env_name, metric)
  return paths


def _heatmap(path: str, blocks: Sequence[Block], env_name: str,
             metric: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  focal_names = list(dict.fromkeys(b.focal for b in blocks))
  partner_names = list(dict.fromkeys(b.partner for b in blocks))
  by = {(b.focal, b.partner): b.result.mean for b in blocks}
  row_labels, col_labels = [], []
  for f in focal_names:
    row_labels += [f'{f}[{i}]' for i in range(by[(f, f)].shape[0])]
  sizes = {}
  for b in blocks:
    sizes[b.partner] = b.result.mean.shape[1]
  for p in partner_names:
    col_labels += [f'{p}[{j}]' for j in range(sizes[p])]
  matrix = np.full((len(row_labels), len(col_labels)), np.nan)
  r0 = 0
  for f in focal_names:
    c0 = 0
    for p in partner_names:
      if (f, p) in by:
        m = by[(f, p)]
        matrix[r0:r0 + m.shape[0], c0:c0 + m.shape[1]] = m
      c0 += sizes[p]
    r0 += by[(f, f)].shape[0]
  fig, ax = plt.subplots(figsize=(max(5.5, 2.5 + 0.9 * len(col_labels)),
                                  max(4.5, 2.0 + 0.6 * len(row_labels))))
  im = ax.imshow(matrix, cmap='viridis')
  ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha='right')
  ax.set_yticks(range(len(row_labels)), row_labels)
  for (i, j), v in np.ndenumerate(matrix):
    if np.isfinite(v):
      ax.text(j, i, f'{v:.0f}', ha='center', va='center',
              color='w' if v < np.nanmean(matrix) else 'k', fontsize=8)
  ax.set_xlabel('partner')
  ax.set_ylabel('focal member')
  ax.set_title(f'cross-play on {env_name}\n{metric}, mean over episodes',
               fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path + '.tmp.png', dpi=100)
  plt.close(fig)
  os.replace(path + '.tmp.png', path)
