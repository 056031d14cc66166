"""MAPPO/IPPO against numpy references, a hand-worked PPO case and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mappo as mappo_configs
from marl_jax import algorithms
from marl_jax.algorithms import mappo
from marl_jax.networks import AgentInput
from marl_jax.types import ArraySpec, EnvSpec, StepType, Trajectory

A = 4
OBS = 6
N = 2
SPEC = EnvSpec(
    num_agents=N,
    observation={'FEATURES': ArraySpec((OBS,), np.float32),
                 'GLOBAL': ArraySpec((N * OBS,), np.float32),
                 'AGENT_ID': ArraySpec((N,), np.float32)},
    num_actions=A, max_episode_steps=10)


def random_sequence(rng, T):
  """Termination at 3, truncation at 7, a third episode ending at T-3, then
  padding."""
  step_types = np.full(T + 1, StepType.MID, np.int32)
  discounts = np.ones(T + 1, np.float32)
  mask = np.ones(T + 1, np.float32)
  step_types[0] = StepType.FIRST
  step_types[3], discounts[3] = StepType.LAST, 0.
  step_types[4] = StepType.FIRST
  step_types[7] = StepType.LAST
  step_types[8] = StepType.FIRST
  step_types[T - 3], discounts[T - 3] = StepType.LAST, 0.
  mask[T - 2:] = 0.
  step_types[T - 2:] = 0
  rewards = rng.normal(size=T + 1).astype(np.float32)
  rewards[step_types == StepType.FIRST] = 0.
  return dict(rewards=rewards, discounts=discounts, step_types=step_types,
              mask=mask, values=rng.normal(size=T + 1).astype(np.float32))


def numpy_gae(rewards, discounts, step_types, mask, values, gamma, lam):
  """GAE as the forward sum A_t = sum_k (gamma lambda)^(k-t) delta_k over the
  transitions k of t's own episode (Schulman et al. 2016, eq. 16)."""
  T = len(rewards) - 1
  valid = np.array([mask[t + 1] > 0 and step_types[t] != StepType.LAST
                    for t in range(T)])
  delta = np.array([rewards[t + 1] + gamma * discounts[t + 1] * values[t + 1]
                    - values[t] for t in range(T)], np.float64)
  adv = np.zeros(T)
  for t in range(T):
    if not valid[t]:
      continue
    total, coef, k = 0., 1., t
    while k < T and valid[k]:
      total += coef * delta[k]
      coef *= gamma * discounts[k + 1] * lam
      k += 1
    adv[t] = total
  return adv, valid.astype(np.float64)


@pytest.mark.parametrize('lam', [0.0, 0.95, 1.0])
def test_gae_matches_numpy(lam):
  rng = np.random.default_rng(0)
  for _ in range(3):
    seq = random_sequence(rng, 14)
    ref_adv, ref_valid = numpy_gae(gamma=0.9, lam=lam, **seq)
    out = mappo.gae(seq['rewards'], seq['discounts'], seq['step_types'],
                    seq['mask'], seq['values'], discount=0.9, lambda_=lam)
    np.testing.assert_allclose(out.valid, ref_valid)
    np.testing.assert_allclose(out.advantages, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        out.returns, (ref_adv + seq['values'][:-1]) * ref_valid, rtol=1e-5,
        atol=1e-5)


def test_gae_truncation_bootstraps_and_termination_does_not():
  T = 4
  step_types = np.array([0, 1, 2, 0, 1], np.int32)
  rewards = np.array([0., 1., 2., 0., 5.], np.float32)
  values = np.array([10., 20., 30., 40., 50.], np.float32)
  for d_last, expected_1 in ((1., 2. + 30. - 20.), (0., 2. - 20.)):
    discounts = np.array([1., 1., d_last, 1., 1.], np.float32)
    out = mappo.gae(rewards, discounts, step_types, np.ones(T + 1), values,
                    discount=1.0, lambda_=1.0)
    np.testing.assert_allclose(out.advantages[1], expected_1)
    # Transition 0 continues into 1 (same episode) with lambda = 1.
    np.testing.assert_allclose(out.advantages[0],
                               (1. + 20. - 10.) + expected_1)
    assert out.valid[2] == 0  # LAST -> FIRST is not a transition.
    np.testing.assert_allclose(out.advantages[3], 5. + 50. - 40.)


def _two_action_logits(p):
  return np.log(np.array([p, 1. - p], np.float32))


def test_ppo_loss_hand_worked_case():
  # Transition 0: pi(a)=0.6, mu(a)=0.4 -> ratio 1.5, A=+1: min(1.5, 1.2)=1.2.
  # Transition 1: pi(a)=0.4, mu(a)=0.8 -> ratio 0.5, A=-2: min(-1, -1.6)=-1.6.
  # Transition 2 is invalid and full of junk.
  logits = np.stack([_two_action_logits(0.6), _two_action_logits(0.4),
                     np.array([9., -9.], np.float32)])
  behaviour = np.stack([_two_action_logits(0.4), _two_action_logits(0.8),
                        np.array([-9., 9.], np.float32)])
  actions = np.array([0, 0, 1], np.int32)
  adv = np.array([1., -2., 100.], np.float32)
  values = np.array([1., 0., 7.], np.float32)
  old_values = np.array([0.5, 0., -7.], np.float32)
  targets = np.array([2., -1., 50.], np.float32)
  valid = np.array([1., 1., 0.], np.float32)
  out = mappo.ppo_loss(logits, values, behaviour, old_values, actions, adv,
                       targets, valid, clip_epsilon=0.2,
                       value_clip_epsilon=0.2)
  np.testing.assert_allclose(out.pg_loss, -(1.2 - 1.6) / 2, rtol=1e-5)
  # V_clip = 0.5 + clip(0.5, -0.2, 0.2) = 0.7: max(1, 1.69); then max(1, 1).
  np.testing.assert_allclose(out.value_loss, 0.5 * (1.69 + 1.) / 2, rtol=1e-5)
  np.testing.assert_allclose(out.clip_fraction, 1.0)
  np.testing.assert_allclose(
      out.approx_kl, (np.log(.4 / .6) + np.log(.8 / .4)) / 2, rtol=1e-5)
  h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))
  np.testing.assert_allclose(out.entropy, (h(.6) + h(.4)) / 2, rtol=1e-5)
  # Without value clipping: plain squared error.
  out = mappo.ppo_loss(logits, values, behaviour, old_values, actions, adv,
                       targets, valid, clip_epsilon=0.2,
                       value_clip_epsilon=0.0)
  np.testing.assert_allclose(out.value_loss, 0.5 * (1. + 1.) / 2, rtol=1e-5)


def test_ppo_gradient_is_zero_where_clipped():
  """Inside the clip the gradient is d(ratio * A); outside it vanishes."""
  behaviour = _two_action_logits(0.5)[None]
  adv = np.array([1.], np.float32)

  def pg(logits):
    return mappo.ppo_loss(logits, jnp.zeros(1), behaviour, jnp.zeros(1),
                          jnp.zeros(1, jnp.int32), adv, jnp.zeros(1),
                          jnp.ones(1), clip_epsilon=0.2,
                          value_clip_epsilon=0.).pg_loss

  clipped = jax.grad(pg)(jnp.asarray(_two_action_logits(0.7)[None]))
  np.testing.assert_allclose(clipped, 0., atol=1e-7)
  inside = jax.grad(pg)(jnp.asarray(_two_action_logits(0.55)[None]))
  # d/dlogit_0 of -(pi_0 / 0.5) = -(pi_0 (1 - pi_0)) / 0.5.
  np.testing.assert_allclose(inside[0, 0], -0.55 * 0.45 / 0.5, rtol=1e-5)


def test_value_norm_is_a_debiased_moving_average():
  state = mappo.value_norm_init()
  mean, std = mappo.value_norm_stats(state)
  assert (float(mean), float(std)) == (0., 1.)
  rng = np.random.default_rng(0)
  beta = 0.9
  batches = [rng.normal(3., 2., size=20).astype(np.float32) for _ in range(5)]
  for x in batches:
    state = mappo.value_norm_update(state, x, np.ones(20), beta)
  w = np.array([beta ** (4 - i) * (1 - beta) for i in range(5)])
  ref_mean = sum(wi * x.mean() for wi, x in zip(w, batches)) / w.sum()
  ref_sq = sum(wi * (x ** 2).mean() for wi, x in zip(w, batches)) / w.sum()
  mean, std = mappo.value_norm_stats(state)
  np.testing.assert_allclose(mean, ref_mean, rtol=1e-5)
  np.testing.assert_allclose(std, np.sqrt(ref_sq - ref_mean ** 2), rtol=1e-4)
  # Zero weights leave it unchanged.
  same = mappo.value_norm_update(state, np.full(20, 1e6), np.zeros(20), beta)
  jax.tree.map(np.testing.assert_array_equal, same, state)


# ------------------------------------------------------------------ updates
def _config(**overrides):
  c = mappo_configs.get_config('toy')
  c.network.observation_key = 'FEATURES'
  c.network.mlp_sizes = (16,)
  c.batch_size = 8
  c.num_minibatches = 2
  c.num_epochs = 2
  c.update_from_flattened_dict(overrides)  # 'network.mlp_sizes' too
  return c


def random_batch(rng, B, T, core_state=()):
  seqs = [random_sequence(rng, T) for _ in range(B)]
  stack = lambda k: np.stack([s[k] for s in seqs])
  slot = np.arange(B) % N
  return Trajectory(
      observation={
          'FEATURES': rng.normal(size=(B, T + 1, OBS)).astype(np.float32),
          'GLOBAL': rng.normal(size=(B, T + 1, N * OBS)).astype(np.float32),
          'AGENT_ID': np.repeat(np.eye(N, dtype=np.float32)[slot][:, None],
                                T + 1, axis=1)},
      prev_action=rng.integers(0, A, size=(B, T + 1)).astype(np.int32),
      prev_reward=np.zeros((B, T + 1), np.float32),
      action=rng.integers(0, A, size=(B, T + 1)).astype(np.int32),
      reward=stack('rewards'), discount=stack('discounts'),
      step_type=stack('step_types'),
      behaviour_logits=rng.normal(size=(B, T + 1, A)).astype(np.float32),
      mask=stack('mask'), core_state=core_state,
      policy_version=np.zeros((B,), np.int32))


def _junk_in_padding(batch, rng):
  """The same batch with random values wherever mask is 0, and random
  placeholder actions/logits on LAST steps."""
  pad = batch.mask == 0
  last = batch.step_type == StepType.LAST

  def junk(x, where):
    x = np.array(x)
    noise = (rng.integers(0, A, size=x.shape).astype(x.dtype)
             if x.dtype.kind == 'i' else
             rng.normal(size=x.shape).astype(x.dtype) * 100)
    w = where.reshape(where.shape + (1,) * (x.ndim - 2))
    return np.where(w, noise, x)

  return batch._replace(
      observation={k: junk(v, pad) for k, v in batch.observation.items()
                   if k != 'AGENT_ID'} | {
                       'AGENT_ID': batch.observation['AGENT_ID']},
      reward=junk(batch.reward, pad), discount=junk(batch.discount, pad),
      action=junk(batch.action, pad | last),
      behaviour_logits=junk(batch.behaviour_logits, pad | last),
      prev_action=junk(batch.prev_action, pad))


@pytest.mark.parametrize('algo,overrides', [
    ('mappo', {}),
    ('ippo', {'value_normalization': 'running', 'network.core': 'gru'}),
    ('mappo', {'share_parameters': False}),
])
def test_padding_and_placeholders_change_nothing(algo, overrides):
  config = _config(**overrides)
  algo_fns = algorithms.make(algo, SPEC, config)
  state = algo_fns.init(jax.random.PRNGKey(0))
  rng = np.random.default_rng(1)
  core = algo_fns.initial_core_state(8)
  core = jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32),
                      core)
  batch = random_batch(rng, 8, 14, core)
  other = _junk_in_padding(batch, rng)
  update = jax.jit(algo_fns.update)
  s1, m1 = update(state, batch)
  s2, m2 = update(state, other)
  for k in m1:
    np.testing.assert_allclose(m1[k], m2[k], rtol=1e-5, atol=1e-6,
                               err_msg=k)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6),
               s1.params, s2.params)
  assert np.isfinite(float(m1['loss']))
  assert int(s1.step) == 1
  # The shuffling key moved on.
  assert not np.array_equal(s1.extras['rng'], state.extras['rng'])


def test_separate_parameters_per_agent_slot():
  config = _config(share_parameters=False)
  algo = algorithms.make('mappo', SPEC, config)
  state = algo.init(jax.random.PRNGKey(0))
  leaves = jax.tree.leaves(state.params)
  assert all(x.shape[0] == N for x in leaves)
  assert any(not np.allclose(x[0], x[1]) for x in leaves)
  # Acting: a slot-1 row uses slice 1 of every parameter.
  rng = np.random.default_rng(2)
  obs = {'FEATURES': rng.normal(size=(3, OBS)).astype(np.float32),
         'GLOBAL': rng.normal(size=(3, N * OBS)).astype(np.float32),
         'AGENT_ID': np.eye(N, dtype=np.float32)[[1, 0, 1]]}
  x = AgentInput(obs, jnp.zeros(3, jnp.int32), jnp.zeros(3),
                 jnp.zeros(3, jnp.int32))
  _, extras, _ = algo.act(state.params, x, algo.initial_core_state(3),
                          jax.random.PRNGKey(0), True)
  shared = algorithms.make('mappo', SPEC, _config(use_agent_id=False))
  p1 = jax.tree.map(lambda p: p[1], state.params)
  _, ref, _ = shared.act(p1, x, shared.initial_core_state(3),
                         jax.random.PRNGKey(0), True)
  rows = np.array([0, 2])
  np.testing.assert_allclose(extras.logits[rows], ref.logits[rows],
                             rtol=1e-5, atol=1e-6)
  # Learning from slot-0 rows only leaves slot 1's parameters untouched.
  batch = random_batch(rng, 8, 10, algo.initial_core_state(8))
  slot0 = np.zeros_like(batch.observation['AGENT_ID'])
  slot0[..., 0] = 1.
  batch = batch._replace(observation={**batch.observation, 'AGENT_ID': slot0})
  new, _ = jax.jit(algo.update)(state, batch)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[1], b[1]),
               new.params, state.params)
  assert any(not np.allclose(a[0], b[0]) for a, b in zip(
      jax.tree.leaves(new.params), jax.tree.leaves(state.params)))


@pytest.mark.parametrize('core', ['gru', 'lstm'])
def test_recurrent_act_matches_learner_unroll(core):
  """Acting step by step (with a reset on FIRST) gives the logits the
  learner's unroll recomputes, so ratios start at exactly 1."""
  config = _config(**{'network.core': core, 'network.core_size': 8})
  algo = algorithms.make('ippo', SPEC, config)
  state = algo.init(jax.random.PRNGKey(3))
  rng = np.random.default_rng(3)
  T, B = 9, 2
  batch = random_batch(rng, B, T, algo.initial_core_state(B))
  batch = batch._replace(mask=np.ones((B, T + 1), np.float32),
                         step_type=np.tile(np.array(
                             [0, 1, 1, 2, 0, 1, 1, 1, 1, 1], np.int32),
                             (B, 1)))
  core_state = batch.core_state
  logits = []
  for t in range(T + 1):
    x = AgentInput({k: v[:, t] for k, v in batch.observation.items()},
                   batch.prev_action[:, t], batch.prev_reward[:, t],
                   batch.step_type[:, t])
    _, extras, core_state = algo.act(state.params, x, core_state,
                                     jax.random.PRNGKey(t))
    logits.append(extras.logits)
  batch = batch._replace(behaviour_logits=np.stack(logits, axis=1))
  config0 = _config(**{'network.core': core, 'network.core_size': 8,
                       'learning_rate': 0.0, 'num_epochs': 1,
                       'num_minibatches': 1})
  algo0 = algorithms.make('ippo', SPEC, config0)
  _, metrics = algo0.update(state, batch)
  np.testing.assert_allclose(metrics['approx_kl'], 0., atol=1e-6)
  np.testing.assert_allclose(metrics['clip_fraction'], 0.)


def test_indivisible_minibatches_and_missing_keys_are_named():
  with pytest.raises(ValueError, match='num_minibatches'):
    algorithms.make('mappo', SPEC, _config(num_minibatches=3))
  no_global = SPEC._replace(observation={
      k: v for k, v in SPEC.observation.items() if k != 'GLOBAL'})
  with pytest.raises(ValueError, match='global_state'):
    algorithms.make('mappo', no_global, _config())
  algorithms.make('ippo', no_global, _config())  # IPPO needs no GLOBAL.
  no_id = SPEC._replace(observation={
      k: v for k, v in SPEC.observation.items() if k != 'AGENT_ID'})
  with pytest.raises(ValueError, match='agent_id'):
    algorithms.make('ippo', no_id, _config())


def test_action_mask_excludes_unavailable_actions():
  spec = SPEC._replace(observation={
      **SPEC.observation, 'ACTION_MASK': ArraySpec((A,), np.float32)})
  algo = algorithms.make('ippo', spec, _config())
  state = algo.init(jax.random.PRNGKey(0))
  mask = np.array([[0, 1, 0, 1]] * 64, np.float32)
  obs = {'FEATURES': np.zeros((64, OBS), np.float32),
         'GLOBAL': np.zeros((64, N * OBS), np.float32),
         'AGENT_ID': np.eye(N, dtype=np.float32)[np.arange(64) % N],
         'ACTION_MASK': mask}
  x = AgentInput(obs, jnp.zeros(64, jnp.int32), jnp.zeros(64),
                 jnp.zeros(64, jnp.int32))
  a, _, _ = algo.act(state.params, x, algo.initial_core_state(64),
                     jax.random.PRNGKey(0))
  assert set(np.asarray(a).tolist()) == {1, 3}
