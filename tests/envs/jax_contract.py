"""Checks of the functional ``JaxEnvironment`` contract shared by its tests."""

import functools
import pickle

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.types import StepType


# Jitted with the environment static: environments that compare equal (ours,
# built with the same arguments) share compilations across tests.


@functools.partial(jax.jit, static_argnums=0)
def reset(env, key):
  return env.reset(key)


@functools.partial(jax.jit, static_argnums=0)
def step(env, state, actions, key):
  return env.step(state, actions, key)


@functools.partial(jax.jit, static_argnums=(0, 1))
def batched_rollout(env, num_steps, keys):
  return jax.vmap(make_rollout(env, num_steps))(keys)


def check_timestep_against_spec(spec, ts, leading=()):
  """Keys, shapes and dtypes of ``ts`` (jax or numpy) against ``spec``."""
  n = spec.num_agents
  lead = tuple(leading)
  assert set(ts.observation) == set(spec.observation)
  for name, entry in spec.observation.items():
    x = ts.observation[name]
    assert x.shape == lead + (n,) + tuple(entry.shape), (name, x.shape)
    assert np.dtype(x.dtype) == np.dtype(entry.dtype), (name, x.dtype)
  assert set(ts.info) == set(spec.info_keys)
  for name, x in ts.info.items():
    assert x.shape == lead + (n,), (name, x.shape)
  assert ts.reward.shape == lead + (n,)
  assert np.dtype(ts.reward.dtype) == np.float32
  assert np.shape(ts.discount) == lead
  assert np.dtype(ts.discount.dtype) == np.float32
  assert np.shape(ts.step_type) == lead


def random_actions(key, ts, num_actions):
  """``[N]`` int32 uniform actions, among the allowed ones if masked."""
  n = ts.reward.shape[0]
  if 'ACTION_MASK' in ts.observation:
    logits = jnp.where(ts.observation['ACTION_MASK'] > 0, 0., -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)
  return jax.random.randint(key, (n,), 0, num_actions, jnp.int32)


def make_rollout(env, num_steps):
  """A pure ``rollout(key) -> TimeStep [num_steps + 1, ...]`` of random play."""
  num_actions = env.spec().num_actions

  def rollout(key):
    key, sub = jax.random.split(key)
    state, ts = env.reset(sub)

    def body(carry, key):
      state, ts = carry
      action_key, step_key = jax.random.split(key)
      actions = random_actions(action_key, ts, num_actions)
      state, ts = env.step(state, actions, step_key)
      return (state, ts), ts

    _, tss = jax.lax.scan(body, (state, ts), jax.random.split(key, num_steps))
    return jax.tree.map(lambda x, y: jnp.concatenate([x[None], y]), ts, tss)

  return rollout


def check_spec_and_two_steps(env):
  """reset + 2 steps under one jit match the spec; returns the rollout."""
  rollout = jax.device_get(jax.jit(make_rollout(env, 2))(
      jax.random.PRNGKey(0)))
  spec = env.spec()
  check_timestep_against_spec(spec, rollout, leading=(3,))
  assert rollout.step_type[0] == StepType.FIRST
  np.testing.assert_array_equal(rollout.reward[0], 0.)
  return rollout


def check_vmap_matches_single(env, num_steps, copies=8, seed=1):
  """jit(vmap) of ``make_rollout`` over ``copies`` keys gives each copy's own
  trajectory, stepped alone (jitted ``reset``/``step``, host loop)."""
  keys = jax.random.split(jax.random.PRNGKey(seed), copies)
  batched = jax.device_get(batched_rollout(env, num_steps, keys))
  num_actions = env.spec().num_actions
  for i in range(copies):
    key, sub = jax.random.split(keys[i])
    state, ts = reset(env, sub)
    single = [ts]
    for k in jax.random.split(key, num_steps):
      action_key, step_key = jax.random.split(k)
      state, ts = step(env, state, random_actions(action_key, ts,
                                                  num_actions), step_key)
      single.append(ts)
    single = jax.device_get(jax.tree.map(lambda *x: jnp.stack(x), *single))
    mine = jax.tree.map(lambda x, i=i: x[i], batched)
    np.testing.assert_array_equal(mine.step_type, single.step_type)
    for x, y in zip(jax.tree.leaves(mine), jax.tree.leaves(single)):
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
  return batched


def check_reset_after_last(env, ts_before, state, key):
  """Stepping from LAST returns FIRST (= reset(key)), whatever the actions."""
  assert int(ts_before.step_type) == StepType.LAST
  n = env.spec().num_agents
  a = jnp.zeros((n,), jnp.int32)
  b = jnp.full((n,), env.spec().num_actions - 1, jnp.int32)
  _, ts_a = step(env, state, a, key)
  _, ts_b = step(env, state, b, key)
  _, ts_r = reset(env, key)
  for ts in (ts_a, ts_b):
    assert int(ts.step_type) == StepType.FIRST
    assert float(ts.discount) == 1.
    np.testing.assert_array_equal(ts.reward, 0.)
    for x, y in zip(jax.tree.leaves(ts), jax.tree.leaves(ts_r)):
      np.testing.assert_allclose(x, y, rtol=1e-6)


def check_host_resume(make_host, num_before=3, num_after=12, seed=0):
  """get_state -> pickle -> set_state into a fresh adapter continues exactly."""
  host = make_host()
  spec = host.spec()
  rng = np.random.default_rng(seed)
  host.reset()
  for _ in range(num_before):
    host.step(rng.integers(0, spec.num_actions, spec.num_agents))
  snapshot = pickle.loads(pickle.dumps(host.get_state()))
  actions = [rng.integers(0, spec.num_actions, spec.num_agents)
             for _ in range(num_after)]
  first = [host.step(a) for a in actions]
  other = make_host()
  other.set_state(snapshot)
  second = [other.step(a) for a in actions]
  for x, y in zip(first, second):
    assert x.step_type == y.step_type
    for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
      np.testing.assert_array_equal(u, v)
