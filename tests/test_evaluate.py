"""evaluate.py end to end: two tiny populations, the report's numbers and files."""

import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  return subprocess.run([sys.executable, script, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300, env=env)


def test_train_two_populations_then_evaluate(tmp_path):
  focal, held = str(tmp_path / 'focal'), str(tmp_path / 'held')
  for d, size, seed in ((focal, 2, 0), (held, 1, 1)):
    r = run('train.py', '--config=configs/impala.py:toy', '--num_steps=600',
            f'--population_size={size}', f'--seed={seed}',
            '--config.matchmaking=random', f'--exp_dir={d}')
    assert r.returncode == 0, r.stderr
  out = str(tmp_path / 'eval')
  r = run('evaluate.py', f'--exp_dir={focal}', f'--heldout={held}',
          '--num_episodes=3', f'--out_dir={out}')
  assert r.returncode == 0, r.stderr
  assert '| focal |' in r.stdout
  with open(os.path.join(out, 'results.json')) as f:
    doc = json.load(f)
  assert doc['metric'] == 'episode_return' and doc['num_episodes'] == 3
  s = doc['summary']['focal']
  for key in ('self_play', 'within_population_cross_play',
              'heldout_cross_play', 'gap_self_minus_heldout'):
    assert 0 <= s[key] <= 16 or key.startswith('gap')
  assert abs(s['gap_self_minus_heldout'] -
             (s['self_play'] - s['heldout_cross_play'])) < 1e-9
  with open(os.path.join(out, 'crossplay.csv')) as f:
    rows = list(csv.DictReader(f))
  # focal x focal (2 x 2) + focal x held (2 x 1) pairs.
  assert len(rows) == 6
  pairs = {(r['partner_run'], r['focal_member'], r['partner_member'])
           for r in rows}
  assert ('held', '1', '0') in pairs and ('focal', '1', '1') in pairs
  for row in rows:
    assert 0. <= float(row['mean']) <= 16.
  # The self-play value is the mean of the diagonal of the focal block.
  diag = [float(r['mean']) for r in rows
          if r['partner_run'] == 'focal' and r['focal_member'] == r['partner_member']]
  assert abs(sum(diag) / 2 - s['self_play']) < 1e-9
  with open(os.path.join(out, 'heatmap.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert os.path.getsize(os.path.join(out, 'report.md')) > 0


def test_bad_inputs(tmp_path):
  r = run('evaluate.py')
  assert r.returncode == 2 and '--exp_dir is required' in r.stderr
  r = run('evaluate.py', f'--exp_dir={tmp_path}/nope')
  assert r.returncode == 2 and 'not a directory' in r.stderr
  os.makedirs(tmp_path / 'empty')
  r = run('evaluate.py', f'--exp_dir={tmp_path}/empty')
  assert r.returncode == 2 and 'config.json' in r.stderr
  assert 'Traceback' not in r.stderr
