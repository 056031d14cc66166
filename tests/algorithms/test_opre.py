"""OPRE: the KL term, the mixture policy, K=1 equals IMPALA, and learning."""

import csv
import os

import jax
import numpy as np
import pytest

from configs import opre as opre_configs
from marl_jax.algorithms import impala, opre
from marl_jax.runtime.launchers import single
from test_impala import random_sequence  # same directory

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
  from marl_jax.types import ArraySpec, EnvSpec  # pylint: disable=g-import-not-at-top
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
