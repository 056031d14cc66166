"""run_dir: a run directory's config and checkpoints, read back."""

import os

import jax
import numpy as np
import pytest

from configs import impala as impala_configs
from marl_jax import algorithms, envs, run_dir
from marl_jax.utils import checkpointing
from marl_jax.utils import config as config_lib


def test_load_run_restores_the_saved_population(tmp_path):
  exp_dir = str(tmp_path)
  config = impala_configs.get_config('toy')
  config.population_size = 2
  with open(run_dir.config_path(exp_dir), 'w') as f:
    f.write(config_lib.to_json(config))
  env = envs.make(config.env)
  algorithm = algorithms.make(config.algo, env.spec(), config)
  state = jax.vmap(algorithm.init)(jax.random.split(jax.random.PRNGKey(7), 2))
  shapes = run_dir.population_shapes(algorithm, 2)
  assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(
      lambda x: (x.shape, x.dtype), state)
  with checkpointing.Checkpointer(run_dir.checkpoint_dir(exp_dir)) as ckpt:
    ckpt.save(40, dict(learner=state, runtime=b''),
              metadata=dict(env_steps=40))
  loaded = run_dir.load_run(exp_dir)
  assert loaded.config.population_size == 2 and loaded.meta['env_steps'] == 40
  assert loaded.algorithm.name == 'impala'
  jax.tree.map(np.testing.assert_array_equal, loaded.params, state.params)


def test_a_directory_without_a_run_is_one_clear_error(tmp_path):
  with pytest.raises(checkpointing.CheckpointError,
                     match='config.json does not exist'):
    run_dir.load_run(str(tmp_path))
  with open(os.path.join(tmp_path, 'config.json'), 'w') as f:
    f.write('{not json')
  with pytest.raises(checkpointing.CheckpointError, match='not a readable'):
    run_dir.read_config(str(tmp_path))
  config = impala_configs.get_config('toy')
  with open(os.path.join(tmp_path, 'config.json'), 'w') as f:
    f.write(config_lib.to_json(config))
  with pytest.raises(checkpointing.CheckpointError, match='no checkpoint'):
    run_dir.load_run(str(tmp_path))
  assert not os.path.exists(run_dir.checkpoint_dir(str(tmp_path)))
