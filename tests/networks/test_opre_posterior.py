"""OPRE's posterior q(z | GLOBAL): an MLP on vectors, a conv torso on images."""

import jax
import ml_collections
import numpy as np

from marl_jax.networks.opre import make_opre_network
from marl_jax.types import ArraySpec, EnvSpec

K, A = 3, 4


def _config():
  return ml_collections.ConfigDict(dict(
      observation_key='FEATURES', mlp_sizes=(8,), conv_channels=(4,),
      conv_kernels=(4,), conv_strides=(4,), lstm_size=0, use_prev_action=True,
      use_prev_reward=True))


def _spec(global_spec):
  return EnvSpec(2, {'FEATURES': ArraySpec((5,), np.float32),
                     'GLOBAL': global_spec}, A, 10)


def test_vector_global_posterior_is_the_mlp_it_was():
  """A vector GLOBAL keeps the posterior MLP (same parameter names, so old
  checkpoints load): logits = W_1 relu(W_0 g + b_0) + b_1, in numpy."""
  net = make_opre_network(_spec(ArraySpec((6,), np.float32)), _config(), K,
                          'GLOBAL')
  params = jax.jit(net.init)(jax.random.PRNGKey(0))
  post = {k: v for k, v in params.items() if k.startswith('posterior')}
  assert sorted(post) == ['posterior/~/linear_0', 'posterior/~/linear_1']
  g = np.random.default_rng(0).normal(size=(2, 3, 6)).astype(np.float32)
  p = jax.tree.map(np.asarray, post)
  h = np.maximum(g @ p['posterior/~/linear_0']['w'] +
                 p['posterior/~/linear_0']['b'], 0.)
  want = h @ p['posterior/~/linear_1']['w'] + p['posterior/~/linear_1']['b']
  np.testing.assert_allclose(net.posterior(params, g), want, rtol=1e-5,
                             atol=1e-6)


def test_image_global_posterior_reads_the_whole_image():
  """A Melting Pot-like ``[T, B, H, W, 3]`` uint8 GLOBAL gives ``[T, B, K]``
  logits, through a conv torso on pixels / 255."""
  spec = _spec(ArraySpec((12, 16, 3), np.uint8))
  net = make_opre_network(spec, _config(), K, 'GLOBAL')
  params = jax.jit(net.init)(jax.random.PRNGKey(0))
  assert any('conv' in k for k in params if k.startswith('posterior'))
  rng = np.random.default_rng(1)
  g = rng.integers(0, 256, size=(5, 2, 12, 16, 3)).astype(np.uint8)
  logits = np.asarray(net.posterior(params, g))
  assert logits.shape == (5, 2, K) and np.all(np.isfinite(logits))
  # Each [H, W, C] image is one input: the same image gives the same logits
  # wherever it is, and changing one pixel changes only its own logits.
  np.testing.assert_allclose(net.posterior(params, g[:1, :1]), logits[:1, :1],
                             rtol=1e-5, atol=1e-6)
  moved = g.copy()
  moved[3, 1, 0, 0] = 255 - moved[3, 1, 0, 0]
  diff = np.abs(np.asarray(net.posterior(params, moved)) - logits).sum(-1)
  assert diff[3, 1] > 0 and np.all(np.delete(diff.ravel(), 3 * 2 + 1) == 0)
  # Pixels are scaled: the same params on a float GLOBAL of g / 255 agree.
  float_net = make_opre_network(_spec(ArraySpec((12, 16, 3), np.float32)),
                                _config(), K, 'GLOBAL')
  np.testing.assert_allclose(
      float_net.posterior(params, (g / 255.).astype(np.float32)), logits,
      rtol=1e-4, atol=1e-5)
