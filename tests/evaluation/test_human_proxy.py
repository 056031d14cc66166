"""The human proxy as a held-out partner: named by spec, cloned once into its
directory and then loaded from it, refused in one line where the human data
cannot partner the run, and reported by seat."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from marl_jax.evaluation import crossplay, human_proxy, report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_specs():
  assert human_proxy.parse('human_proxy') == 'test'
  assert human_proxy.parse('human_proxy:test') == 'test'
  assert human_proxy.parse('human_proxy:train') == 'train'
  assert human_proxy.parse('runs/sp') is None
  assert human_proxy.parse('scripted:greedy') is None
  for bad in ('human_proxy:', 'human_proxy:val'):
    with pytest.raises(ValueError, match='human_proxy:train'):
      human_proxy.parse(bad)


def _config(env, **kwargs):
  return ml_collections.ConfigDict(dict(env=env, env_kwargs=kwargs))


def test_runs_the_human_data_cannot_partner_are_named():
  proxy = human_proxy.layout_of(
      _config('overcooked/forced_coordination', old_dynamics=True,
              observation='lossless'), 'runs/a')
  assert proxy == ('overcooked', 'forced_coordination', 'lossless')
  assert proxy.env == 'overcooked/forced_coordination'
  # JaxMARL's Overcooked plays the 2019 rules: no old_dynamics to ask for.
  proxy = human_proxy.layout_of(_config('jaxmarl/overcooked_forced_coord'),
                                'r')
  assert proxy == ('jaxmarl', 'forced_coord', 'GRID')
  assert proxy.env == 'jaxmarl/overcooked_forced_coord'
  # The two families' clones of one layout live apart.
  assert human_proxy.proxy_dir('cramped_room', 'test', 'GRID', '/p',
                               family='jaxmarl') == '/p/jaxmarl_cramped_room_test'
  assert human_proxy.proxy_dir('cramped_room', 'test', 'featurized',
                               '/p') == '/p/cramped_room_test_featurized'
  with pytest.raises(ValueError, match=r'runs/b was trained on '
                     r'overcooked/large_room, and the human data covers'):
    human_proxy.layout_of(_config('overcooked/large_room', old_dynamics=True),
                          'runs/b')
  for env in ('jaxmarl/mpe_simple_spread', 'jaxmarl/overcooked_nowhere'):
    with pytest.raises(ValueError, match='jaxmarl/overcooked_cramped_room'):
      human_proxy.layout_of(_config(env), 'r')
  with pytest.raises(ValueError, match='old_dynamics=True'):
    human_proxy.layout_of(_config('overcooked/cramped_room'), 'runs/c')


def test_seat_orders_split_the_alternating_episodes():
  # Episodes alternate seats: 0, 2, ... the focal side at index 0.
  episodes = np.array([[[10., 30., 20., 50.], [0., 40., 10., 60.]]])
  result = crossplay.CrossPlayResult(
      mean=episodes.mean(-1), ci95=np.zeros((1, 2)), episodes=episodes,
      metric='episode_sparse_reward')
  seats = report.seat_orders(result)
  m0, se0, n0 = seats['seat_0']
  m1, se1, n1 = seats['seat_1']
  assert (n0, n1) == (4, 4)
  assert m0 == pytest.approx(np.mean([10, 20, 0, 10]))
  assert m1 == pytest.approx(np.mean([30, 50, 40, 60]))
  assert se0 == pytest.approx(np.std([10, 20, 0, 10], ddof=1) / 2)
  assert se1 == pytest.approx(np.std([30, 50, 40, 60], ddof=1) / 2)


def _bc_run(exp_dir, split, epochs):
  # pylint: disable=g-import-not-at-top
  from configs import bc
  from marl_jax.runtime import build, offline
  from marl_jax.utils import config as config_lib
  # pylint: enable=g-import-not-at-top
  c = bc.get_config('overcooked/cramped_room')
  c.dataset = f'human:{split}'
  c.num_epochs = epochs
  c.env_kwargs.horizon = 60
  c = build.prepare(c).config
  c.exp_dir = exp_dir
  os.makedirs(exp_dir)
  with open(os.path.join(exp_dir, 'config.json'), 'w') as f:
    f.write(config_lib.to_json(c))
  offline.run(c, exp_dir)


@pytest.mark.skipif(not __import__('importlib').util.find_spec(
    'overcooked_ai_py'), reason='needs overcooked-ai')
def test_evaluate_with_the_human_proxy_by_name(tmp_path):
  focal = str(tmp_path / 'focal')
  _bc_run(focal, 'train', epochs=2)
  # The proxy directory already holds a clone: it is loaded, not re-cloned.
  root = tmp_path / 'proxies'
  proxy = human_proxy.proxy_dir('cramped_room', 'test', 'featurized',
                                str(root))
  _bc_run(proxy, 'test', epochs=1)
  out = str(tmp_path / 'eval')
  env = dict(os.environ, MARL_JAX_HUMAN_PROXY_DIR=str(root))
  env.pop('XLA_FLAGS', None)
  r = subprocess.run(
      [sys.executable, 'evaluate.py', f'--exp_dir={focal}',
       '--heldout=human_proxy', '--num_episodes=4', f'--out_dir={out}'],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
  assert r.returncode == 0, r.stderr
  assert 'cloning' not in r.stderr
  with open(os.path.join(out, 'results.json')) as f:
    doc = json.load(f)
  assert doc['runs']['human_proxy']['exp_dir'] == proxy
  seats = doc['seat_orders']['focal with human_proxy']
  assert seats['seat_0']['episodes'] == seats['seat_1']['episodes'] == 2
  pair = next(p for p in doc['pairs'] if p['partner_run'] == 'human_proxy')
  assert pair['mean'] == pytest.approx(
      (seats['seat_0']['mean'] + seats['seat_1']['mean']) / 2)
  assert '| focal with human_proxy |' in r.stdout
  # A run the proxy cannot partner: one line, nothing else.
  other = str(tmp_path / 'other')
  os.makedirs(other)
  with open(os.path.join(focal, 'config.json')) as f:
    config = json.load(f)
  config['env_kwargs']['old_dynamics'] = False
  with open(os.path.join(other, 'config.json'), 'w') as f:
    json.dump(config, f)
  os.symlink(os.path.join(focal, 'checkpoints'),
             os.path.join(other, 'checkpoints'))
  r = subprocess.run(
      [sys.executable, 'evaluate.py', f'--exp_dir={other}',
       '--heldout=human_proxy', '--num_episodes=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
  assert r.returncode == 2
  assert 'old_dynamics=True' in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1
