"""PopulationPolicy.set_params: new params act, a seed restarts the key."""

import jax
import numpy as np
import pytest

from configs import impala as impala_configs
from marl_jax import algorithms, envs
from marl_jax.evaluation import policies


def population_params(algo, seed, size):
  return jax.vmap(algo.init)(
      jax.random.split(jax.random.PRNGKey(seed), size)).params


def actions(policy, env, members, steps=16):
  policy.reset(np.asarray(members))
  ts = env.reset()
  out = []
  for _ in range(steps):
    a = policy.step(ts)
    out.append(a)
    ts = env.step(a)
  return np.stack(out)


def test_set_params_acts_with_the_new_params_and_reseeds():
  config = impala_configs.get_config('toy')
  env = envs.make('toy/cue_coordination')
  algo = algorithms.make('impala', env.spec(), config)
  a = population_params(algo, 0, 2)
  b = population_params(algo, 1, 2)
  fresh_b = policies.PopulationPolicy(algo, b, 2, seed=5)
  expected = actions(fresh_b, envs.make('toy/cue_coordination'), [0, 1])
  policy = policies.PopulationPolicy(algo, a, 2, seed=0)
  actions(policy, envs.make('toy/cue_coordination'), [0, 1])
  policy.set_params(b, seed=5)
  # The same episode as a policy built with b and seed 5.
  np.testing.assert_array_equal(
      actions(policy, envs.make('toy/cue_coordination'), [0, 1]), expected)
  three = population_params(algo, 2, 3)
  with pytest.raises(ValueError, match='same structure'):
    policy.set_params(three)
