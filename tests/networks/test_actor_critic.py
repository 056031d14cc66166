"""Actor-critic network: acting step by step equals the learner's unroll."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from marl_jax.networks import AgentInput, make_actor_critic
from marl_jax.types import ArraySpec, EnvSpec, StepType


def _config(lstm_size, key='FEATURES', mlp=(16,)):
  return ml_collections.ConfigDict(dict(
      observation_key=key, mlp_sizes=mlp, conv_channels=(4, 4),
      conv_kernels=(3, 3), conv_strides=(1, 2), lstm_size=lstm_size,
      use_prev_action=True, use_prev_reward=True))


VEC = EnvSpec(2, {'FEATURES': ArraySpec((6,), np.float32)}, 4, 10)
GRID = EnvSpec(2, {'GRID': ArraySpec((5, 4, 3), np.float32)}, 4, 10)


def _inputs(rng, spec, key, T, B):
  shape = spec.observation[key].shape
  step_type = np.full((T, B), StepType.MID, np.int32)
  step_type[0] = StepType.FIRST
  if T > 3:
    step_type[3, 1] = StepType.FIRST  # an episode starts mid-sequence
  return AgentInput({key: rng.normal(size=(T, B) + shape).astype(np.float32)},
                    rng.integers(0, 4, size=(T, B)).astype(np.int32),
                    rng.normal(size=(T, B)).astype(np.float32), step_type)


@pytest.mark.parametrize('spec,key,lstm', [(VEC, 'FEATURES', 0),
                                           (VEC, 'FEATURES', 8),
                                           (GRID, 'GRID', 8)])
def test_unroll_equals_steps(spec, key, lstm):
  net = make_actor_critic(spec, _config(lstm, key))
  params = net.init(jax.random.PRNGKey(0))
  T, B = 6, 2
  inputs = _inputs(np.random.default_rng(0), spec, key, T, B)
  (logits, values), _ = net.unroll(params, inputs, net.initial_state(B))
  assert logits.shape == (T, B, 4) and values.shape == (T, B)
  state = net.initial_state(B)
  for t in range(T):
    (lt, vt), state = net.step(params, jax.tree.map(lambda x: x[t], inputs),
                               state)
    np.testing.assert_allclose(lt, logits[t], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vt, values[t], rtol=1e-5, atol=1e-6)


def test_first_step_resets_the_core():
  """On FIRST the output does not depend on the incoming recurrent state."""
  net = make_actor_critic(VEC, _config(8))
  params = net.init(jax.random.PRNGKey(0))
  x = jax.tree.map(lambda a: a[0], _inputs(np.random.default_rng(1), VEC,
                                           'FEATURES', 1, 2))
  junk = jax.tree.map(lambda s: s + 3., net.initial_state(2))
  (a, _), _ = net.step(params, x, junk)
  (b, _), _ = net.step(params, x, net.initial_state(2))
  np.testing.assert_allclose(a, b, rtol=1e-6)
  mid = x._replace(step_type=jnp.full((2,), StepType.MID, jnp.int32))
  (c, _), _ = net.step(params, mid, junk)
  assert not np.allclose(a, c)


def test_previous_action_and_reward_are_inputs():
  net = make_actor_critic(VEC, _config(0))
  params = net.init(jax.random.PRNGKey(0))
  x = jax.tree.map(lambda a: a[0], _inputs(np.random.default_rng(2), VEC,
                                           'FEATURES', 1, 2))
  (a, va), _ = net.step(params, x, ())
  (b, vb), _ = net.step(params, x._replace(prev_action=(x.prev_action + 1) % 4),
                        ())
  (c, vc), _ = net.step(params, x._replace(prev_reward=x.prev_reward + 5.), ())
  assert not np.allclose(va, vb) and not np.allclose(va, vc)
  off = _config(0)
  off.use_prev_action = off.use_prev_reward = False
  net_off = make_actor_critic(VEC, off)
  p_off = net_off.init(jax.random.PRNGKey(0))
  (d, _), _ = net_off.step(p_off, x, ())
  (e, _), _ = net_off.step(p_off, x._replace(prev_action=(x.prev_action + 1) % 4,
                                             prev_reward=x.prev_reward + 5.), ())
  np.testing.assert_allclose(d, e)


def test_unknown_observation_key_is_named():
  with pytest.raises(ValueError, match='RGB'):
    make_actor_critic(VEC, _config(0, key='RGB'))
