"""Report pieces from hand-made match results: Elo, the payoff table, files."""

import csv
import json

import numpy as np
import pytest

from marl_jax.evaluation import crossplay, report
from marl_jax.population import payoff


def block(focal, partner, seat_values, zero_sum=True):
  """A block from ``seat_values [P_A, P_B, E, 2]`` (A's value, B's value)."""
  sv = np.asarray(seat_values, np.float64)
  episodes = sv.mean(-1)
  result = crossplay.CrossPlayResult(
      episodes.mean(-1), np.zeros(episodes.shape[:2]), episodes,
      'episode_return', sv, zero_sum)
  return report.Block(focal, partner, result)


def wins(n, lose=0, draw=0):
  """A pair's episodes: ``n`` wins, ``lose`` losses, ``draw`` draws of A."""
  return [[1., -1.]] * n + [[-1., 1.]] * lose + [[0., 0.]] * draw


def dominance_blocks():
  """pop[0] beats pop[1] 3-1 in every meeting; both beat held[0] 4-0."""
  focal = [[wins(0, 0, 4), wins(3, 1)],
           [wins(1, 3), wins(0, 0, 4)]]  # self-play pairs are not rated
  held = [[wins(4)], [wins(4)]]
  return [block('pop', 'pop', focal), block('pop', 'held', held)]


def test_match_results_by_hand():
  players, matches = report.match_results(dominance_blocks())
  assert players == ['pop[0]', 'pop[1]', 'held[0]']
  # (0, 1): 3 wins + 1 loss, (1, 0): 1 win + 3 losses; both beat held 4-0.
  assert sorted(matches) == sorted(
      [(0, 1, 1.)] * 3 + [(0, 1, 0.)] + [(1, 0, 1.)] + [(1, 0, 0.)] * 3 +
      [(0, 2, 1.)] * 4 + [(1, 2, 1.)] * 4)


def test_dominance_order_gives_monotone_ratings():
  table = report.elo_table(dominance_blocks())
  r = dict(zip(table.players, table.ratings))
  assert r['pop[0]'] > r['pop[1]'] > r['held[0]']
  assert np.mean(table.ratings) == pytest.approx(1500.)
  g = dict(zip(table.players, table.games))
  assert g == {'pop[0]': 12, 'pop[1]': 12, 'held[0]': 8}
  s = dict(zip(table.players, table.score))
  assert s['pop[0]'] == pytest.approx(10 / 12) and s['held[0]'] == 0.


def test_equal_players_get_equal_ratings():
  # Two members who draw each other and beat the same partner equally.
  blocks = [block('pop', 'pop', [[wins(0, 0, 2), wins(0, 0, 2)],
                                 [wins(0, 0, 2), wins(0, 0, 2)]]),
            block('pop', 'held', [[wins(2, 1)], [wins(2, 1)]])]
  table = report.elo_table(blocks)
  r = dict(zip(table.players, table.ratings))
  assert r['pop[0]'] == pytest.approx(r['pop[1]'], abs=1e-6)
  assert r['pop[0]'] > r['held[0]']
  # Without a prior, the fit of an exact 2-1 record: expected score 2/3 <=>
  # a gap of 400 log10(2) (two pops at equal rating, both 2-1 vs held).
  table = report.elo_table(blocks, prior=0.)
  r = dict(zip(table.players, table.ratings))
  assert r['pop[0]'] - r['held[0]'] == pytest.approx(400 * np.log10(2),
                                                     abs=1e-6)


def test_payoff_table_of_blocks_is_each_sides_own_mean():
  blocks = dominance_blocks()
  table = report.payoff_table(blocks)
  # pop[0] with pop[1]: its own values over the 4 + 4 episodes of (0, 1)
  # (3 wins, 1 loss) and (1, 0) seen from pop[0]'s seat (3 wins, 1 loss).
  assert table.mean('pop[0]', 'pop[1]') == pytest.approx(0.5)
  assert table.count('pop[0]', 'pop[1]') == 8
  assert table.mean('pop[1]', 'pop[0]') == pytest.approx(-0.5)
  assert table.mean('held[0]', 'pop[1]') == -1. and table.mean(
      'pop[1]', 'held[0]') == 1.
  assert table.count('pop[0]', 'pop[0]') == 4  # self-play, once


def test_write_report_with_elo_and_a_runs_payoff(tmp_path):
  blocks = dominance_blocks()
  runs = {}  # only names are read for the runs section
  for name, size in (('pop', 2), ('held', 1)):
    runs[name] = report.LoadedRun(name, f'/runs/{name}', object(), None, size,
                                  0)
  saved = payoff.PayoffTable()
  saved.update('member_0', 'snapshot_0', [3., 5.])
  paths = report.write_report(str(tmp_path), blocks, runs, 'game',
                              'episode_return', 4,
                              elo_ratings=report.elo_table(blocks),
                              run_payoffs={'pop': saved})
  with open(paths['json']) as f:
    doc = json.load(f)
  assert doc['zero_sum'] is True
  assert [e['player'] for e in doc['elo']] == ['pop[0]', 'pop[1]', 'held[0]']
  with open(paths['elo']) as f:
    rows = list(csv.DictReader(f))
  assert [r['player'] for r in rows] == ['pop[0]', 'pop[1]', 'held[0]']
  assert float(rows[0]['rating']) == pytest.approx(doc['elo'][0]['rating'])
  assert doc['run_payoff_tables']['pop']['entries'][0]['mean'] == 4.
  assert payoff.PayoffTable.load(paths['payoff']) == report.payoff_table(blocks)
  with open(paths['markdown']) as f:
    md = f.read()
  assert '## Elo ratings' in md and '| pop[0] |' in md
  assert 'Payoff table saved with pop' in md and '4.00 (2)' in md


def test_long_labels_are_cut_in_the_middle_and_one_row_still_draws(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from marl_jax.evaluation import files  # pylint: disable=g-import-not-at-top
  assert files.short_label('human_proxy[0]') == 'human_proxy[0]'
  cut = files.short_label('overcooked_cramped_room_ippo_20261207-213000[0]')
  assert len(cut) == 28 and cut.startswith('overcooked_cra')
  assert cut.endswith('213000[0]') and '\u2026' in cut
  path = str(tmp_path / 'h.png')
  files.heatmap(path, np.array([[85., 100.]]), ['a' * 60 + '[0]'],
                ['a' * 60 + '[0]', 'human_proxy[0]'], 'partner', 'focal',
                'a title\nsecond line')
  w, h = Image.open(path).size
  # One row is a band across a figure sized for its labels, not a square
  # dwarfed by a rotated label.
  assert w > h and h < 500
