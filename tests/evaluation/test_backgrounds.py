"""Trained runs as Melting Pot background players, injected into scenarios."""

import jax
import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import meltingpot
from marl_jax.evaluation import backgrounds

if meltingpot.package_dir() is None:
  pytest.skip('dm-meltingpot is not installed (pip install -r '
              'requirements.txt installs it)', allow_module_level=True)

COINS = 'coins'


@pytest.fixture(scope='module')
def population():
  """An (untrained) IMPALA population of two on coins, acting on RGB."""
  from configs import impala as impala_configs  # pylint: disable=g-import-not-at-top
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  config = impala_configs.get_config('overcooked')
  config.network.observation_key = 'RGB'
  config.network.conv_channels = (4,)
  config.network.conv_kernels = (3,)
  config.network.conv_strides = (4,)
  config.network.mlp_sizes = (8,)
  config.network.lstm_size = 4
  probe = envs.make(f'meltingpot/{COINS}')
  algorithm = algorithms.make('impala', probe.spec(), config)
  probe.close()
  params = jax.vmap(lambda k: algorithm.init(k).params)(
      jax.random.split(jax.random.PRNGKey(0), 2))
  return algorithm, params


def _play(env, steps):
  env.reset()
  for _ in range(steps):
    ts = env.step(np.zeros(1, np.int32))
  return ts


def test_a_trained_policy_plays_the_background(population):
  algorithm, params = population
  # The background plays member 1.
  policy = backgrounds.TrainedPolicy(algorithm=algorithm, params=params,
                                     member=1)
  env = envs.make('meltingpot_scenario/coins_0', background=policy,
                  global_state='none', max_episode_steps=3)
  assert _play(env, 4).first()
  env.close()
  with pytest.raises(ValueError, match='member'):
    backgrounds.TrainedPolicy(algorithm=algorithm, params=params, member=2)
  with pytest.raises(ValueError, match='exp_dir, or algorithm'):
    backgrounds.TrainedPolicy()


def test_a_trained_background_builds_one_policy_per_env(population):
  algorithm, params = population
  factory = backgrounds.TrainedBackground(algorithm=algorithm, params=params,
                                          substrate=COINS, seed=3)
  made = []
  for _ in range(2):
    env = envs.make('meltingpot_scenario/coins_0', background=factory,
                    global_state='none', max_episode_steps=3)
    assert _play(env, 4).first()
    made.append(env)
  for env in made:
    env.close()
  with pytest.raises(ValueError, match='trained on coins'):
    envs.make(f'meltingpot_scenario/{meltingpot.SCENARIOS[0]}',
              background=factory)
  with pytest.raises(ValueError, match='member'):
    backgrounds.TrainedBackground(algorithm=algorithm, params=params,
                                  member=5)
