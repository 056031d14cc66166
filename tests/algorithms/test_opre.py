"""OPRE: the KL term, the mixture policy, K=1 equals IMPALA, and learning."""

import csv
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import opre as opre_configs
from marl_jax.algorithms import common, impala, opre
from marl_jax.networks import AgentInput
from marl_jax.networks.opre import make_opre_network
from marl_jax.runtime.launchers import single
from marl_jax.types import ArraySpec, EnvSpec
import test_impala  # same directory
from test_impala import random_sequence

K, A = 3, 5


def _opre_inputs(rng, seq, k=K):
  T1 = len(seq['actions'])
  return dict(
      option_logits=rng.normal(size=(T1, k, A)).astype(np.float32) * 2,
      option_values=rng.normal(size=(T1, k)).astype(np.float32),
      prior_logits=rng.normal(size=(T1, k)).astype(np.float32),
      posterior_logits=rng.normal(size=(T1, k)).astype(np.float32))


def _loss(x, seq, **kw):
  return opre.opre_sequence_loss(
      x['option_logits'], x['option_values'], x['prior_logits'],
      x['posterior_logits'], seq['mu_logits'], seq['actions'], seq['rewards'],
      seq['discounts'], seq['step_types'], seq['mask'], discount=0.9, **kw)


def test_kl_is_zero_iff_posterior_equals_prior():
  rng = np.random.default_rng(0)
  seq = random_sequence(rng, 12)
  x = _opre_inputs(rng, seq)
  same = dict(x, posterior_logits=x['prior_logits'] + 3.)  # same softmax
  assert abs(float(_loss(same, seq).kl_q_p)) < 1e-5
  assert float(_loss(x, seq).kl_q_p) > 1e-3
  # And by hand: sum over valid t of sum_z q log(q / p).
  q = jax.nn.softmax(x['posterior_logits'][:-1])
  p = jax.nn.softmax(x['prior_logits'][:-1])
  valid = _loss(x, seq).vtrace.valid
  expected = np.sum(valid * np.sum(q * np.log(q / p), -1))
  np.testing.assert_allclose(_loss(x, seq).kl_q_p, expected, rtol=1e-4)


def test_mixture_is_a_proper_distribution():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, K, A)).astype(np.float32) * 3
  w = rng.normal(size=(4, K)).astype(np.float32)
  probs = np.exp(np.asarray(opre.mixture_log_probs(logits, w)))
  assert (probs >= 0).all()
  np.testing.assert_allclose(probs.sum(-1), 1., rtol=1e-5)
  # Equals sum_z w_z pi_z computed directly.
  direct = np.einsum('tk,tka->ta', jax.nn.softmax(w), jax.nn.softmax(logits))
  np.testing.assert_allclose(probs, direct, rtol=1e-5)


def test_one_option_reduces_to_impala():
  rng = np.random.default_rng(2)
  seq = random_sequence(rng, 14)
  x = _opre_inputs(rng, seq, k=1)
  out = _loss(x, seq)
  ref = impala.vtrace_sequence_loss(
      x['option_logits'][:, 0], x['option_values'][:, 0], seq['mu_logits'],
      seq['actions'], seq['rewards'], seq['discounts'], seq['step_types'],
      seq['mask'], discount=0.9)
  for a, b in zip(out.vtrace, ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert float(out.kl_q_p) == 0.
  np.testing.assert_allclose(out.q_sum, [out.vtrace.num_valid])


def test_opre_needs_global_information():
  spec = EnvSpec(2, {'FEATURES': ArraySpec((4,), np.float32)}, 3)
  with pytest.raises(ValueError, match='global_state'):
    opre.make(spec, opre_configs.get_config('toy'))


def test_opre_learns_cue_coordination(tmp_path):
  c = opre_configs.get_config('toy')
  c.num_steps = 12_000
  c.progress_every_s = 1e9
  single.run(c, str(tmp_path / 'opre'))
  with open(os.path.join(tmp_path, 'opre', 'actor.csv')) as f:
    returns = np.array([float(r['member_0/episode_return'])
                        for r in csv.DictReader(f)])
  assert returns[:3].mean() < 3.  # random: 16 / 4**2 = 1
  assert returns[-5:].mean() > 0.75 * 16, returns[-10:]


# ------------------------------------------- image GLOBAL and action masks
def _small_config(**overrides):
  c = opre_configs.get_config('toy')
  c.num_options = K
  c.network.observation_key = 'FEATURES'
  c.network.mlp_sizes = (16,)
  c.network.conv_channels = (4,)
  c.network.conv_kernels = (4,)
  c.network.conv_strides = (4,)
  c.update(overrides)
  return c


def _spec(**extra):
  return EnvSpec(2, {'FEATURES': ArraySpec((test_impala.OBS,), np.float32),
                     **extra}, A, 10)


def test_update_with_an_image_global_gives_a_finite_loss():
  """Melting Pot's GLOBAL is a WORLD.RGB image ``[H, W, 3]`` uint8: the
  posterior reads it (it used to crash on the first update)."""
  spec = _spec(GLOBAL=ArraySpec((8, 12, 3), np.uint8))
  algo = opre.make(spec, _small_config())
  state = jax.jit(algo.init)(jax.random.PRNGKey(0))
  rng = np.random.default_rng(3)
  B, T = 2, 8
  batch = test_impala.random_batch(rng, (B,), T)
  image = rng.integers(0, 256, size=(B, T + 1, 8, 12, 3)).astype(np.uint8)
  batch = batch._replace(observation={**batch.observation, 'GLOBAL': image})
  new_state, metrics = jax.jit(algo.update)(state, batch)
  for k in ('loss', 'pg_loss', 'baseline_loss', 'kl_posterior_prior',
            'options_in_use', 'grad_norm'):
    assert np.isfinite(metrics[k]), k
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new_state.params))
  assert int(new_state.step) == 1


def _masked_spec():
  return _spec(GLOBAL=ArraySpec((3,), np.float32),
               ACTION_MASK=ArraySpec((A,), np.float32))


def test_act_never_picks_a_masked_action():
  algo = opre.make(_masked_spec(), _small_config())
  params = jax.jit(algo.init)(jax.random.PRNGKey(0)).params
  rng = np.random.default_rng(4)
  rows = 64
  mask = test_impala._action_mask(rng, (rows,))
  x = AgentInput(
      {'FEATURES': rng.normal(size=(rows, test_impala.OBS)).astype(np.float32),
       'GLOBAL': np.zeros((rows, 3), np.float32), 'ACTION_MASK': mask},
      jnp.zeros(rows, jnp.int32), jnp.zeros(rows), jnp.zeros(rows, jnp.int32))
  act = jax.jit(algo.act, static_argnums=4)
  picked = np.zeros((rows, A))
  for i in range(100):
    a, _, _ = act(params, x, (), jax.random.PRNGKey(i), False)
    picked[np.arange(rows), np.asarray(a)] += 1
  assert picked[mask == 0].sum() == 0
  assert picked[mask > 0].min() > 0
  greedy, extras, _ = act(params, x, (), jax.random.PRNGKey(0), True)
  assert np.all(mask[np.arange(rows), np.asarray(greedy)] > 0)
  probs = np.exp(np.asarray(extras.logits))
  np.testing.assert_allclose(probs.sum(-1), 1., rtol=1e-5)
  assert np.all(probs[mask == 0] == 0.)


def test_learner_entropy_is_the_masked_mixture_entropy():
  """The learner's policy is sum_z q(z) pi_z with each pi_z the softmax over
  the available actions; its entropy, recomputed in numpy."""
  config = _small_config()
  algo = opre.make(_masked_spec(), config)
  state = jax.jit(algo.init)(jax.random.PRNGKey(0))
  rng = np.random.default_rng(5)
  B, T = 4, 8
  batch = test_impala.random_batch(rng, (B,), T)
  mask = test_impala._action_mask(rng, (B, T + 1), batch.action)
  batch = batch._replace(observation={
      **batch.observation, 'ACTION_MASK': mask,
      'GLOBAL': rng.normal(size=(B, T + 1, 3)).astype(np.float32)})
  _, metrics = jax.jit(algo.update)(state, batch)
  net = make_opre_network(_masked_spec(), config.network, K, 'GLOBAL')
  out, _ = jax.jit(net.unroll)(state.params, common.time_major_inputs(batch),
                               batch.core_state)
  option_logits = np.swapaxes(np.asarray(out.option_logits, np.float64), 0, 1)
  q_logits = np.asarray(net.posterior(state.params,
                                      batch.observation['GLOBAL']), np.float64)
  z = np.where(mask[:, :, None, :] > 0, option_logits, -np.inf)
  pi = np.exp(z - z.max(-1, keepdims=True))
  pi /= pi.sum(-1, keepdims=True)  # [B, T+1, K, A], 0 where unavailable
  q = np.exp(q_logits - q_logits.max(-1, keepdims=True))
  q /= q.sum(-1, keepdims=True)
  mix = np.einsum('btk,btka->bta', q, pi)[:, :-1]
  h = -np.sum(np.where(mix > 0, mix * np.log(np.where(mix > 0, mix, 1.)), 0.),
              axis=-1)
  valid = np.stack([common.valid_transitions(batch.step_type[b],
                                             batch.mask[b]) for b in range(B)])
  np.testing.assert_allclose(metrics['entropy'],
                             np.sum(valid * h) / valid.sum(), rtol=1e-5)
  assert np.isfinite(metrics['loss'])
