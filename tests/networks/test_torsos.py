"""Torsos follow the observation spec: pixels /255, grids and vectors as they
are, through every network that chooses a torso."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from marl_jax.networks import AgentInput, input_kind, make_actor_critic
from marl_jax.networks.mappo import make_ppo_network
from marl_jax.networks.opre import make_opre_network
from marl_jax.networks.qmix import make_q_network
from marl_jax.types import ArraySpec, EnvSpec, StepType

A = 4


@pytest.mark.parametrize('name,shape,dtype,kind', [
    ('RGB', (8, 8, 3), np.uint8, 'pixels'),
    ('WORLD.RGB', (40, 72, 3), np.uint8, 'pixels'),
    ('RGB', (8, 8, 4), np.uint8, 'pixels'),  # RGB in the name
    ('FRAME', (8, 8, 3), np.uint8, 'pixels'),  # 3 channels
    ('GRID', (5, 4, 26), np.uint8, 'grid'),  # JaxMARL Overcooked
    ('GRID', (5, 4, 3), np.float32, 'grid'),  # float: never pixels
    ('RGB', (8, 8, 3), np.float32, 'grid'),
    ('GRID', (5, 4, 26), np.bool_, 'grid'),
    ('MAP', (5, 4), np.uint8, 'grid'),
    ('FEATURES', (7,), np.float32, 'vector'),
    ('FEATURES', (7,), np.uint8, 'vector'),
    ('STEP', (), np.int32, 'vector'),
])
def test_input_kind(name, shape, dtype, kind):
  assert input_kind(name, shape, dtype) == kind
  assert input_kind(name, list(shape), np.dtype(dtype)) == kind


def _config():
  return ml_collections.ConfigDict(dict(
      observation_key='X', mlp_sizes=(8,), conv_channels=(4,),
      conv_kernels=(3,), conv_strides=(1,), lstm_size=0, use_prev_action=False,
      use_prev_reward=False, torso='auto', core='', core_size=0, gru_size=4))


def _builder(which):
  """``spec -> (init(key), apply(params, observation [B, ...]) -> [B, ...])``
  for each network that picks a torso from the observation spec."""
  config = _config()

  def build(spec):
    B = lambda obs: next(iter(obs.values())).shape[0]
    inputs = lambda obs: AgentInput(obs, jnp.zeros(B(obs), jnp.int32),
                                    jnp.zeros(B(obs)),
                                    jnp.full(B(obs), StepType.MID, jnp.int32))
    if which == 'impala':
      net = make_actor_critic(spec, config)
      return net.init, lambda p, obs: net.step(p, inputs(obs), ())[0][0]
    if which == 'mappo':
      net = make_ppo_network(spec, config, critic_key='X')
      return net.init, lambda p, obs: net.step(
          p, obs, inputs(obs).step_type, net.initial_state(B(obs)))[0][0]
    if which == 'qmix':
      net = make_q_network(spec, config, use_agent_id=False)
      return net.init, lambda p, obs: net.step(
          p, inputs(obs), net.initial_state(B(obs)))[0]
    net = make_opre_network(spec, config, 2, 'GLOBAL')
    return net.init, lambda p, obs: net.step(p, inputs(obs),
                                             ())[0].option_logits
  return build


def _spec(name_shape_dtype):
  name, shape, dtype = name_shape_dtype
  obs = {'X': ArraySpec(shape, dtype), 'GLOBAL': ArraySpec((3,), np.float32)}
  return EnvSpec(2, obs, A, 10)


def _outputs(which, spec_params, spec_apply, x):
  """The network built for ``spec_apply``, with the params of the network
  built for ``spec_params``, applied to ``x``."""
  init, _ = _builder(which)(_spec(spec_params))
  params = init(jax.random.PRNGKey(0))
  _, apply = _builder(which)(_spec(spec_apply))
  obs = {'X': x, 'GLOBAL': jnp.zeros((x.shape[0], 3))}
  return np.asarray(apply(params, obs))


NETWORKS = ['impala', 'mappo', 'qmix', 'opre']


@pytest.mark.parametrize('which', NETWORKS)
def test_uint8_feature_grid_is_not_scaled(which):
  """A 0/1 uint8 grid of 6 channels reaches the conv net as 0/1: the network
  gives what the same params give on the float grid, not on grid / 255."""
  x = np.random.default_rng(0).integers(0, 2, size=(3, 5, 4, 6)).astype(
      np.uint8)
  u8 = ('X', (5, 4, 6), np.uint8)
  f32 = ('X', (5, 4, 6), np.float32)
  got = _outputs(which, u8, u8, jnp.asarray(x))
  np.testing.assert_allclose(
      got, _outputs(which, u8, f32, jnp.asarray(x, jnp.float32)),
      rtol=1e-5, atol=1e-6)
  assert not np.allclose(
      got, _outputs(which, u8, f32, jnp.asarray(x / 255., jnp.float32)),
      rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize('which', NETWORKS)
def test_rgb_pixels_are_scaled(which):
  """uint8 RGB pixels reach the conv net as pixels / 255."""
  x = np.random.default_rng(1).integers(0, 256, size=(3, 5, 4, 3)).astype(
      np.uint8)
  u8 = ('X', (5, 4, 3), np.uint8)
  f32 = ('X', (5, 4, 3), np.float32)  # float: a grid, unscaled
  got = _outputs(which, u8, u8, jnp.asarray(x))
  np.testing.assert_allclose(
      got, _outputs(which, u8, f32, jnp.asarray(x / 255., jnp.float32)),
      rtol=1e-5, atol=1e-6)
