"""The payoff table: incremental means, JSON round trip, atomic saves."""

import json
import os

import numpy as np
import pytest

from marl_jax.population import payoff


def random_table(seed=0):
  rng = np.random.default_rng(seed)
  names = ['member_0', 'snapshot_0', 'snapshot_1', 'scripted:greedy']
  table = payoff.PayoffTable(names[:2])
  results = {}
  for _ in range(60):
    r, c = rng.choice(names, size=2)
    values = rng.normal(size=int(rng.integers(1, 4))) * 10.
    table.update(str(r), str(c), values)
    results.setdefault((str(r), str(c)), []).extend(values)
  return table, results


def test_incremental_means_equal_numpy_means():
  table, results = random_table()
  for (r, c), values in results.items():
    assert table.count(r, c) == len(values)
    assert table.mean(r, c) == pytest.approx(np.mean(values), rel=1e-12,
                                             abs=1e-12)
  mean, count = table.matrix()
  for i, r in enumerate(table.names):
    for j, c in enumerate(table.names):
      if (r, c) in results:
        assert count[i, j] == len(results[(r, c)])
        assert mean[i, j] == pytest.approx(np.mean(results[(r, c)]))
      else:
        assert count[i, j] == 0 and np.isnan(mean[i, j])
  # A scalar is one result; names keep their insertion order.
  t = payoff.PayoffTable(['a'])
  t.update('b', 'a', 4.)
  t.update('b', 'a', [1., 1.])
  assert t.names == ['a', 'b']
  assert t.mean('b', 'a') == 2. and t.count('b', 'a') == 3
  assert np.isnan(t.mean('a', 'b')) and t.count('a', 'b') == 0
  sub, _ = t.matrix(rows=['b'], cols=['a'])
  assert sub.shape == (1, 1) and sub[0, 0] == 2.


def test_round_trip_through_a_run_dir(tmp_path):
  table, _ = random_table(1)
  path = table.save(str(tmp_path))
  assert path == str(tmp_path / 'payoff.json')
  loaded = payoff.PayoffTable.load(str(tmp_path))
  assert loaded == table and loaded.names == table.names
  np.testing.assert_array_equal(loaded.matrix()[1], table.matrix()[1])
  np.testing.assert_allclose(loaded.matrix()[0], table.matrix()[0])
  assert os.listdir(tmp_path) == ['payoff.json']  # no temporary left


def test_a_failed_save_leaves_the_old_table_whole(tmp_path, monkeypatch):
  old, _ = random_table(2)
  path = old.save(str(tmp_path / 'payoff.json'))
  with open(path) as f:
    old_text = f.read()
  new, _ = random_table(3)

  def half_then_fail(obj, f, **kwargs):
    f.write(json.dumps(obj, **kwargs)[:40])  # a partial file...
    raise OSError('disk full')  # ...then the failure.

  monkeypatch.setattr(payoff.json, 'dump', half_then_fail)
  with pytest.raises(OSError, match='disk full'):
    new.save(path)
  monkeypatch.undo()
  with open(path) as f:
    assert f.read() == old_text
  assert payoff.PayoffTable.load(path) == old
  assert os.listdir(tmp_path) == ['payoff.json']


def test_bad_inputs(tmp_path):
  t = payoff.PayoffTable()
  with pytest.raises(ValueError, match='non-finite'):
    t.update('a', 'b', [1., np.nan])
  with pytest.raises(ValueError, match='non-empty'):
    t.add_policy('')
  with pytest.raises(KeyError, match='Unknown'):
    t.matrix(rows=['nope'])
  bad = tmp_path / 'payoff.json'
  bad.write_text('{"names": [')
  with pytest.raises(ValueError, match='payoff.json'):
    payoff.PayoffTable.load(str(bad))
  bad.write_text('{"format": "something else"}')
  with pytest.raises(ValueError, match='not a payoff table'):
    payoff.PayoffTable.load(str(tmp_path))
