"""train.py --config_help: every key of every config file, with its default,
type and the meaning its config file's comment gives it."""

import importlib
import textwrap

import pytest

from marl_jax import algorithms
from marl_jax.utils import config_help


def _configs():
  """Every algorithm's config for its default, each preset and each env
  family it is commonly run on."""
  out = []
  for algo in algorithms.names():
    module = importlib.import_module(f'configs.{algo}')
    args = ['', *module.PRESETS, 'overcooked/cramped_room',
            'pettingzoo/simple_spread', 'jaxmarl/smax_3m@anakin']
    out.extend((algo, arg) for arg in args)
  return out


def _flat_keys(config, prefix=''):
  for key, value in config.items():
    if hasattr(value, 'to_dict') and key != 'env_kwargs':
      yield from _flat_keys(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}'


@pytest.mark.parametrize('algo,arg', _configs())
def test_every_key_is_listed_with_its_default_and_a_meaning(algo, arg):
  config = importlib.import_module(f'configs.{algo}').get_config(arg or None)
  text = config_help.format_help(config)
  rows = {r.key: r for r in config_help.describe(config)}
  keys = set(_flat_keys(config))
  assert set(rows) == keys
  for key in keys:
    row = rows[key]
    node = config
    for part in key.split('.'):
      node = node[part]
    expected = node.to_dict() if key == 'env_kwargs' else node
    assert row.default == expected, key
    assert f'{key} = {expected!r}' in text, key
    assert row.meaning, f'{key} of configs/{algo}.py has no comment'


def test_meanings_come_from_trailing_comments_and_blocks_not_presets():
  source = textwrap.dedent('''
      def algorithm_keys(c):
        # Run.
        c.seed = 0  # seeds everything
        # Snapshots: one every snapshot_every updates,
        # the last pool_size kept.
        c.snapshot_every = 5
        c.pool_size = 3

        net = c.network
        net.width = 8  # hidden units
        c.bare = 1

      def apply_preset(c, preset):
        c.untold = 2  # why this preset differs
        c.seed = 1  # not what seed means
      ''')
  meanings = config_help.comments_of([source])
  assert meanings == {
      'seed': 'seeds everything',
      'snapshot_every': ('Snapshots: one every snapshot_every updates, the '
                         'last pool_size kept.'),
      'pool_size': ('Snapshots: one every snapshot_every updates, the last '
                    'pool_size kept.'),
      'network.width': 'hidden units',
  }  # 'bare' has none; the section title '# Run.' is not a meaning


def test_an_algorithms_own_comment_wins_over_the_shared_one():
  from configs import qmix  # pylint: disable=g-import-not-at-top
  rows = {r.key: r for r in config_help.describe(qmix.get_config())}
  assert 'episodes per iteration' in rows['num_envs_per_actor'].meaning
  from configs import impala  # pylint: disable=g-import-not-at-top
  rows = {r.key: r for r in config_help.describe(impala.get_config('toy'))}
  assert 'env copies' in rows['num_envs_per_actor'].meaning
  assert rows['learning_rate'].default == 1e-2  # the preset's value


def test_train_py_config_help_shows_the_selected_config_and_exits(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  proc = subprocess.run(
      [sys.executable, 'train.py', '--algo=ippo', '--env=jax/meet',
       '--config.learning_rate=0.5', '--config_help',
       f'--exp_dir={tmp_path}/run'],
      capture_output=True, text=True, cwd=root, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'learning_rate = 0.5  (float)' in proc.stdout  # the override shows
  assert "env = 'jax/meet'" in proc.stdout
  assert 'clip_epsilon = 0.2' in proc.stdout  # an ippo key
  assert not os.path.exists(f'{tmp_path}/run')  # nothing was run or written
