"""Configs derived from the environment: family defaults, presets only where
reported, the observation and the global state from the spec, and train.py's
--algo/--env/--config.<key> working together."""

import importlib
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from configs import common
from marl_jax import algorithms
from marl_jax.types import ArraySpec
from marl_jax.utils import config as config_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGOS = ('impala', 'opre', 'mappo', 'ippo', 'qmix', 'vdn')


@pytest.mark.parametrize('algo', ALGOS)
@pytest.mark.parametrize('env', ['overcooked/coordination_ring',
                                 'pettingzoo/simple_spread',
                                 'meltingpot/clean_up', 'jaxmarl/smax_2s3z'])
def test_an_env_argument_gives_that_env_with_its_family_kwargs(algo, env):
  c = importlib.import_module(f'configs.{algo}').get_config(
      f'{env}@distributed')
  assert c.algo == algo and c.env == env and c.preset == ''
  assert c.env_kwargs.to_dict() == common.env_kwargs_for(env)
  assert c.network.observation_key == 'auto'
  if env.startswith('meltingpot'):  # pixels: marl-jax's strided torso
    assert tuple(c.network.conv_strides) == (8, 1)


def test_family_kwargs_are_the_familys_not_the_algorithms():
  assert common.env_kwargs_for('overcooked/cramped_room')['horizon'] == 400
  assert common.env_kwargs_for('pettingzoo/simple_spread') == {'max_cycles': 25}
  assert common.env_kwargs_for('jaxmarl/smax_3m') == {}  # no max_cycles
  assert 'observation' not in common.env_kwargs_for(
      'jaxmarl/overcooked_cramped_room')


def test_presets_are_chosen_only_for_their_env_and_runtime():
  from configs import qmix  # pylint: disable=g-import-not-at-top
  anakin = qmix.get_config('jaxmarl/smax_3m@anakin')
  assert anakin.preset == 'smax_3m' and anakin.joint_rollout == 'chunks'
  distributed = qmix.get_config('jaxmarl/smax_3m@distributed')
  assert distributed.preset == '' and distributed.joint_rollout == 'episodes'
  assert qmix.get_config('smax_2s3z').env == 'jaxmarl/smax_2s3z'
  with pytest.raises(ValueError, match='Unknown preset'):
    qmix.get_config('nonsense')
  with pytest.raises(ValueError, match='Unknown runtime'):
    qmix.get_config('jax/penalty@gpu')


def _spec(**shapes):
  return {k: ArraySpec(shape, dtype) for k, (shape, dtype) in shapes.items()}


def test_the_observation_key_follows_the_spec():
  choose = config_lib.choose_observation_key
  assert choose(_spec(RGB=((40, 40, 3), np.uint8), GLOBAL=((40, 72, 3), np.uint8),
                      INVENTORY=((1,), np.float32))) == 'RGB'
  assert choose(_spec(FEATURES=((96,), np.float32), AGENT_ID=((2,), np.float32))
                ) == 'FEATURES'
  assert choose(_spec(GRID=((4, 5, 26), np.uint8), GLOBAL=((1040,), np.uint8))
                ) == 'GRID'
  assert choose(_spec(OBS=((3,), np.float32), ACTION_MASK=((5,), np.float32))
                ) == 'OBS'
  with pytest.raises(config_lib.ConfigError, match='observation_key'):
    choose(_spec(A=((3,), np.float32), B=((3,), np.float32)))


@pytest.mark.parametrize('algo,needs', [('mappo', True), ('qmix', True),
                                        ('opre', True), ('ippo', False),
                                        ('vdn', False), ('impala', False)])
def test_a_global_state_wrapper_only_where_the_algorithm_reads_global(
    algo, needs):
  c = importlib.import_module(f'configs.{algo}').get_config(
      'overcooked/cramped_room@distributed')
  without = _spec(FEATURES=((96,), np.float32))
  with_global = dict(without, GLOBAL=ArraySpec((192,), np.float32))
  out = algorithms.with_global_state(c, without)
  assert ('global_state' in out.env_wrappers) == needs
  assert 'global_state' not in algorithms.with_global_state(
      c, with_global).env_wrappers
  assert out is c or out.env_wrappers[:len(c.env_wrappers)] == c.env_wrappers


def test_train_py_takes_config_overrides_with_algo_and_env(tmp_path):
  """--algo/--env select configs/<algo>.py for the env, and --config.<key>
  overrides apply to it (they were refused before)."""
  exp = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, 'train.py', '--algo=ippo', '--env=jax/meet',
       '--config.matchmaking=random', '--population_size=2',
       '--config.sequence_length=8', '--config.batch_size=4',
       '--config.num_envs_per_actor=2', '--config.num_minibatches=1',
       '--config.num_epochs=1', '--config.network.mlp_sizes=(8,)',
       '--config.num_learner_devices=1', '--config.eval_every_updates=0',
       '--launcher=single', '--num_steps=200', f'--exp_dir={exp}'],
      capture_output=True, text=True, cwd=_ROOT, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  saved = json.loads((exp / 'config.json').read_text())
  assert saved['algo'] == 'ippo' and saved['env'] == 'jax/meet'
  assert saved['matchmaking'] == 'random' and saved['population_size'] == 2
  assert saved['network']['observation_key'] == 'FEATURES'  # from the spec
  assert tuple(saved['network']['mlp_sizes']) == (8,)


@pytest.mark.parametrize('args,says', [
    (['--algo=nope'], "Unknown algorithm 'nope'"),
    (['--config=configs/impala.py:overcooked', '--env=jax/meet'],
     'another family'),
    (['--algo=qmix', '--env=jax/penalty', '--config.joint_rollout=chunks'],
     'joint_rollout'),
    # Population options a runtime or launcher would ignore.
    (['--algo=ippo', '--env=jax/meet', '--runtime=anakin',
      '--config.matchmaking=random'], 'has no matchmaking'),
    (['--algo=impala', '--env=toy/cue_coordination', '--launcher=local',
      '--config.matchmaking=psro'], 'launcher=single only'),
    (['--algo=vdn', '--env=jax/penalty', '--config.matchmaking=random'],
     'whole episodes'),
])
def test_train_py_refuses_in_one_line(args, says, tmp_path):
  proc = subprocess.run(
      [sys.executable, 'train.py', *args, f'--exp_dir={tmp_path}/run'],
      capture_output=True, text=True, cwd=_ROOT, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if 'error' in l]
  assert len(errors) == 1 and says in errors[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(f'{tmp_path}/run')


def test_exp_dir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / 'a_file'
  path.write_text('not a directory')
  proc = subprocess.run(
      [sys.executable, 'train.py', '--config=configs/impala.py:toy',
       '--launcher=single', f'--exp_dir={path}'],
      capture_output=True, text=True, cwd=_ROOT, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if 'error' in l]
  assert len(errors) == 1 and 'is a file' in errors[0], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert path.read_text() == 'not a directory'


def test_algorithms_are_found_by_their_module_and_config_file(tmp_path,
                                                             monkeypatch):
  """Registering an algorithm is one module in marl_jax/algorithms (NAMES,
  GLOBAL_STATE_KEYS, make) and one configs/<name>.py: the registry finds the
  module, and every registered name has its config file and the other way
  round."""
  configs_dir = os.path.join(_ROOT, 'configs')
  files = sorted(f[:-3] for f in os.listdir(configs_dir)
                 if f.endswith('.py') and f not in ('__init__.py', 'common.py'))
  assert algorithms.names() == tuple(files)
  assert algorithms.ALGORITHMS == algorithms.names()
  # A new module on the package's path registers itself, and what it
  # declares about a global state is honoured.
  (tmp_path / 'my_new_algo.py').write_text(
      'NAMES = ("my_algo", "my_algo_lite")\n'
      'GLOBAL_STATE_KEYS = {"my_algo": "my_state_key"}\n'
      'def make(env_spec, config, variant):\n'
      '  return ("built", variant, config.my_state_key)\n')
  monkeypatch.setattr(algorithms, '__path__',
                      list(algorithms.__path__) + [str(tmp_path)])
  algorithms._registry.cache_clear()  # pylint: disable=protected-access
  try:
    assert {'my_algo', 'my_algo_lite'} <= set(algorithms.names())
    c = importlib.import_module('configs.impala').get_config(
        'overcooked/cramped_room@distributed')
    c.algo, c.my_state_key = 'my_algo', 'GLOBAL'
    without = _spec(FEATURES=((96,), np.float32))
    assert algorithms.global_state_key(c) == 'GLOBAL'
    assert 'global_state' in algorithms.with_global_state(
        c, without).env_wrappers
    spec = types.SimpleNamespace(observation=without)
    assert algorithms.make('my_algo', spec, c) == ('built', 'my_algo',
                                                   'GLOBAL')
    c.algo = 'my_algo_lite'
    assert algorithms.global_state_key(c) is None
    with pytest.raises(algorithms.UnknownAlgorithmError,
                       match='Valid algorithms: .*my_algo'):
      algorithms.make('my_algx', spec, c)
  finally:
    algorithms._registry.cache_clear()  # pylint: disable=protected-access
