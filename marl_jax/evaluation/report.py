"""Evaluation reports: self-play and cross-play tables, the gap, files.

``evaluate_runs`` plays every member of each focal run with every member of
itself (self-play and within-population cross-play) and of each held-out run,
scripted partner or Melting Pot bot (zero-shot cross-play), and
``write_report`` writes JSON, CSV, a Markdown table and a heatmap PNG of the
matrix, the matches as a payoff table, for competitive games Elo ratings of
every member, and the list of recorded videos when there are any (with the
writers of ``files.py``).
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from marl_jax import algorithms
from marl_jax import run_dir
from marl_jax.evaluation import crossplay, elo, files, meltingpot_bots
from marl_jax.evaluation import policies
from marl_jax.evaluation import scripted, videos as videos_lib
from marl_jax.population import payoff as payoff_lib


class LoadedRun(NamedTuple):
  name: str
  exp_dir: str  # '' for a scripted policy
  config: object  # None for a scripted policy
  policy: crossplay.Policy
  size: int
  env_steps: int


def load(exp_dir: str, greedy: bool, seed: int, name: str = '') -> LoadedRun:
  config, algorithm, params, meta = run_dir.load_run(exp_dir)
  env = algorithms.make_env(config)
  n = env.spec().num_agents
  env.close()
  return LoadedRun(
      name=name or os.path.basename(os.path.normpath(exp_dir)),
      exp_dir=exp_dir, config=config,
      policy=policies.PopulationPolicy(algorithm, params, n, greedy=greedy,
                                       seed=seed),
      size=int(config.population_size),
      env_steps=int(meta.get('env_steps', 0)))


def load_scripted(spec: str, env, seed: int) -> LoadedRun:
  """``scripted:<name>`` as a held-out population of one, playing in ``env``."""
  name = scripted.parse(spec)
  if name is None:
    raise ValueError(f'{spec!r} is not a scripted policy (scripted:<name>).')
  return LoadedRun(name=spec, exp_dir='', config=None,
                   policy=scripted.make(name, env, seed=seed), size=1,
                   env_steps=0)


def load_meltingpot_bot(name: str, env) -> LoadedRun:
  """Melting Pot's bot ``name`` as a held-out population of one, playing in
  ``env`` (named ``meltingpot_bots:<name>``)."""
  return LoadedRun(name=meltingpot_bots.PREFIX + name, exp_dir='', config=None,
                   policy=meltingpot_bots.make(name, env), size=1, env_steps=0)


def for_env(run: LoadedRun, env, seed: int) -> LoadedRun:
  """``run`` to play in another copy of the environment, reseeded (videos).

  A trained population does not depend on the env: its policy (the same
  object) restarts its key at ``seed``. Scripted partners are rebuilt with
  ``env``; Melting Pot bots rebound to it (the same bot).
  """
  if run.config is not None:
    run.policy.reseed(seed)
    return run
  if isinstance(run.policy, meltingpot_bots.BotPolicy):
    return run._replace(policy=run.policy.for_env(env))
  return load_scripted(run.name, env, seed)


def close(runs) -> None:
  """Closes the policies that hold resources (Melting Pot bots)."""
  for r in runs:
    if callable(getattr(r.policy, 'close', None)):
      r.policy.close()


class Block(NamedTuple):
  focal: str
  partner: str
  result: crossplay.CrossPlayResult


def evaluate_runs(env, focal: Sequence[LoadedRun], heldout: Sequence[LoadedRun],
                  num_episodes: int, metric: str) -> List[Block]:
  blocks = []
  for f in focal:
    # A held-out run is never the focal run itself.
    same = lambda h, f=f: (bool(h.exp_dir) and os.path.realpath(h.exp_dir) ==
                           os.path.realpath(f.exp_dir))
    partners = [f] + [h for h in heldout if not same(h)]
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


def seat_orders(result: crossplay.CrossPlayResult) -> Dict[str, object]:
  """The focal side's value by the seat it sat in, over every pair and
  episode of one block: ``{'seat_0': (mean, standard error, n), 'seat_1':
  ...}``, the focal population at index 0 (episodes 0, 2, ...) or at index 1
  (1, 3, ...; ``crossplay.cross_play`` alternates seats). The value is the
  block's metric (the mean over agents), as in Carroll et al.'s tables, where
  the agent at index 0 or 1 plays with the partner in the other seat."""
  out = {}
  for seat in (0, 1):
    v = np.asarray(result.episodes, np.float64)[..., seat::2].ravel()
    n = v.size
    se = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else float('nan')
    out[f'seat_{seat}'] = (float(v.mean()) if n else float('nan'), se, n)
  return out


def is_zero_sum(blocks: Sequence[Block]) -> bool:
  """Whether every episode of every block had zero-sum rewards."""
  return bool(blocks) and all(b.result.zero_sum for b in blocks)


class EloTable(NamedTuple):
  players: List[str]  # run[member]
  ratings: np.ndarray  # [players] Elo, mean 1500
  games: np.ndarray  # [players] rated games played
  score: np.ndarray  # [players] mean score (1 win, 0.5 draw, 0 loss)


def match_results(blocks: Sequence[Block]):
  """``(players, [(i, j, score of i)])`` from every episode of ``blocks``.

  An episode is a win for the side whose own value of the metric (its seat's
  episode return, say) is higher, a draw when they are equal. A member
  playing itself is not a rated game.
  """
  players, index, matches = [], {}, []

  def idx(name):
    if name not in index:
      index[name] = len(players)
      players.append(name)
    return index[name]

  for b in blocks:
    sv = b.result.seat_values
    if sv is None:
      raise ValueError(f'block {b.focal} x {b.partner} has no per-seat values.')
    for i in range(sv.shape[0]):
      a = idx(files.player_name(b.focal, i))
      for j in range(sv.shape[1]):
        c = idx(files.player_name(b.partner, j))
        if a == c:
          continue
        for mine, theirs in sv[i, j]:
          diff = np.round(float(mine) - float(theirs), 9)
          matches.append((a, c, 1. if diff > 0 else 0. if diff < 0 else 0.5))
  return players, matches


def elo_table(blocks: Sequence[Block], prior: float = 1.) -> EloTable:
  """Elo ratings (a Bradley-Terry fit, ``evaluation/elo.py``) of every member
  of every run in ``blocks`` from their episodes' wins, draws and losses.

  ``prior`` virtual draws against an average player keep the ratings of
  players who never lost (or never won) finite.
  """
  players, matches = match_results(blocks)
  ratings = elo.elo_ratings(len(players), matches, prior=prior)
  games = np.zeros(len(players))
  points = np.zeros(len(players))
  for i, j, s in matches:
    games[i] += 1
    games[j] += 1
    points[i] += s
    points[j] += 1. - s
  score = np.divide(points, games, out=np.full_like(points, np.nan),
                    where=games > 0)
  return EloTable(players, ratings, games, score)


def payoff_table(blocks: Sequence[Block]) -> payoff_lib.PayoffTable:
  """The matches of ``blocks`` as a payoff table of ``run[member]`` policies.

  Entry ``(x, y)`` is the mean of x's own value of the metric over every
  episode x played with y (from both seats; a pair of blocks can add both
  ``(x, y)`` and ``(y, x)``).
  """
  table = payoff_lib.PayoffTable()
  for b in blocks:
    sv = b.result.seat_values
    for i in range(sv.shape[0]):
      for j in range(sv.shape[1]):
        x, y = files.player_name(b.focal, i), files.player_name(b.partner, j)
        table.update(x, y, sv[i, j, :, 0])
        if x != y:
          table.update(y, x, sv[i, j, :, 1])
  return table


def _payoff_markdown(title: str, table: payoff_lib.PayoffTable) -> List[str]:
  mean, count = table.matrix()
  names = table.names
  lines = ['', f'## {title}', '',
           'Mean result of the row policy with the column policy (number of '
           'results).',
           '', '| | ' + ' | '.join(names) + ' |',
           '| --- |' + ' ---: |' * len(names)]
  for i, r in enumerate(names):
    cells = [f'{mean[i, j]:.2f} ({count[i, j]})' if count[i, j] else '-'
             for j in range(len(names))]
    lines.append(f'| {r} | ' + ' | '.join(cells) + ' |')
  return lines


def write_report(out_dir: str, blocks: Sequence[Block], runs: Dict[str, LoadedRun],
                 env_name: str, metric: str, num_episodes: int,
                 elo_ratings: Optional[EloTable] = None,
                 run_payoffs: Optional[
                     Dict[str, payoff_lib.PayoffTable]] = None,
                 videos: Optional[Sequence[Dict[str, object]]] = None
                 ) -> Dict[str, str]:
  """Writes results.json, crossplay.csv, payoff.json, report.md, heatmap.png,
  and elo.csv when ``elo_ratings`` are given.

  Args:
    out_dir: where to write.
    blocks: the cross-play results.
    runs: every run (and scripted policy) by name.
    env_name: for the titles.
    metric: the episode statistic of ``blocks``.
    num_episodes: episodes per pair.
    elo_ratings: Elo ratings of the players, for competitive games.
    run_payoffs: payoff tables saved with runs (by run name), to show.
    videos: recorded episodes (``videos.record_crossplay``), to list.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {k: os.path.join(out_dir, v) for k, v in dict(
      json='results.json', csv='crossplay.csv', markdown='report.md',
      heatmap='heatmap.png', payoff=payoff_lib.FILENAME).items()}
  if elo_ratings is not None:
    paths['elo'] = os.path.join(out_dir, 'elo.csv')
  run_payoffs = run_payoffs or {}
  payoff_table(blocks).save(paths['payoff'])
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
  files.write_csv(paths['csv'], rows)
  doc = dict(env=env_name, metric=metric, num_episodes=num_episodes,
             runs={k: _run_doc(v) for k, v in runs.items()},
             summary=summ, pairs=rows, zero_sum=is_zero_sum(blocks))
  seats = {f'{b.focal} with {b.partner}': seat_orders(b.result)
           for b in blocks if b.partner != b.focal}
  if seats:
    doc['seat_orders'] = {k: {s_: dict(mean=m, se=se, episodes=n)
                              for s_, (m, se, n) in v.items()}
                          for k, v in seats.items()}
  if elo_ratings is not None:
    elo_rows = [dict(player=p, rating=float(r), games=int(g), score=float(sc))
                for p, r, g, sc in sorted(
                    zip(*elo_ratings), key=lambda x: -x[1])]
    doc['elo'] = elo_rows
    files.write_csv(paths['elo'], elo_rows)
  if run_payoffs:
    doc['run_payoff_tables'] = {k: t.to_dict() for k, t in run_payoffs.items()}
  if videos:
    doc['videos'] = list(videos)
  files.write_json(paths['json'], doc)

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
  if seats:
    lines += ['', '## Held-out partners by seat', '',
              'The focal run at index 0 (the partner at 1) and at index 1, '
              'over every member pair and episode; +- is the standard error.',
              '', '| focal with partner | focal at index 0 | focal at index 1 |'
              , '| --- | ---: | ---: |']
    for k, v in seats.items():
      cells = [f'{m:.1f} +- {se:.1f} ({n})' if n > 1 else f'{m:.1f} ({n})'
               for m, se, n in (v['seat_0'], v['seat_1'])]
      lines.append(f'| {k} | ' + ' | '.join(cells) + ' |')
  if elo_ratings is not None:
    lines += ['', '## Elo ratings', '',
              'A Bradley-Terry fit to every episode (win: the higher own '
              f'`{metric}`), mean 1500.', '',
              '| player | Elo | games | mean score |',
              '| --- | ---: | ---: | ---: |']
    for r in doc['elo']:
      lines.append(f'| {r["player"]} | {r["rating"]:.0f} | {r["games"]} | '
                   f'{r["score"]:.2f} |')
  for name, table in run_payoffs.items():
    lines += _payoff_markdown(f'Payoff table saved with {name} '
                              f'({payoff_lib.FILENAME})', table)
  if videos:
    lines += videos_lib.markdown_lines(videos, metric)
    paths['videos'] = os.path.join(out_dir, videos_lib.VIDEO_DIR)
  files.write_text(paths['markdown'], '\n'.join(lines) + '\n')

  _heatmap(paths['heatmap'], blocks, env_name, metric)
  return paths


def _run_doc(run: LoadedRun) -> Dict[str, object]:
  doc = dict(exp_dir=run.exp_dir, population_size=run.size,
             env_steps=run.env_steps,
             scripted=run.config is None and not isinstance(
                 run.policy, meltingpot_bots.BotPolicy))
  if isinstance(run.policy, meltingpot_bots.BotPolicy):
    doc['meltingpot_bot'] = run.policy.name
  return doc


def _heatmap(path: str, blocks: Sequence[Block], env_name: str,
             metric: str) -> None:
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
  files.heatmap(path, matrix, row_labels, col_labels, 'partner',
                'focal member',
                f'cross-play on {env_name}\n{metric}, mean over episodes')
