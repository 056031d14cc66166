"""IMPALA against a separate numpy implementation of the paper's equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import impala as impala_configs
from marl_jax.algorithms import impala
from marl_jax.runtime import learner as learner_lib
from marl_jax.types import ArraySpec, EnvSpec, StepType, Trajectory

A = 5  # actions
OBS = 7


# ------------------------------------------------------------ numpy reference
def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_vtrace_loss(logits, values, mu_logits, actions, rewards, discounts,
                      step_types, mask, gamma, lam, rho_bar, pg_rho_bar):
  """Espeholt et al. 2018, eq. (1) written as an explicit sum, one sequence.

  Transition t runs from step t to t+1. It is valid iff step t+1 is real and
  step t is not LAST; invalid transitions have rho = 0 and discount 0.
  """
  T = len(actions) - 1
  valid = np.array([mask[t + 1] * (step_types[t] != StepType.LAST)
                    for t in range(T)], np.float64)
  log_pi = _log_softmax(logits.astype(np.float64))
  log_mu = _log_softmax(mu_logits.astype(np.float64))
  rho = np.array([np.exp(log_pi[t, actions[t]] - log_mu[t, actions[t]])
                  for t in range(T)]) * valid
  r = np.array([rewards[t + 1] for t in range(T)]) * valid
  disc = np.array([gamma * discounts[t + 1] for t in range(T)]) * valid
  v = values.astype(np.float64)
  c = lam * np.minimum(1., rho)
  crho = np.minimum(rho_bar, rho)
  vs = np.zeros(T + 1)
  vs[T] = v[T]
  for s in range(T):
    total = v[s]
    for t in range(s, T):
      prod = 1.
      for k in range(s, t):
        prod *= disc[k] * c[k]
      total += prod * crho[t] * (r[t] + disc[t] * v[t + 1] - v[t])
    vs[s] = total
  # rlax bootstraps the pg target with lam * vs + (1 - lam) * v.
  boot = lam * vs[1:] + (1 - lam) * v[1:]
  boot[-1] = v[T]
  adv = np.minimum(pg_rho_bar, rho) * (r + disc * boot - v[:T])
  logp_a = np.array([log_pi[t, actions[t]] for t in range(T)])
  pi = np.exp(log_pi[:T])
  mu = np.exp(log_mu[:T])
  return dict(
      vs=vs[:T], adv=adv, valid=valid, rho=rho,
      pg_loss=-np.sum(valid * logp_a * adv),
      baseline_loss=0.5 * np.sum(valid * (vs[:T] - v[:T]) ** 2),
      entropy=np.sum(valid * -(pi * log_pi[:T]).sum(-1)),
      kl=np.sum(valid * (mu * (log_mu[:T] - log_pi[:T])).sum(-1)),
      pi=pi)


def random_sequence(rng, T):
  """A sequence with a termination, a truncation and end padding."""
  step_types = np.full(T + 1, StepType.MID, np.int32)
  discounts = np.ones(T + 1, np.float32)
  mask = np.ones(T + 1, np.float32)
  step_types[0] = StepType.FIRST
  # Episode 1 terminates at 3 (discount 0); episode 2 is truncated at 7
  # (discount 1); episode 3 ends at T-3 and the rest is padding.
  step_types[3], discounts[3] = StepType.LAST, 0.
  step_types[4] = StepType.FIRST
  step_types[7] = StepType.LAST
  step_types[8] = StepType.FIRST
  step_types[T - 3], discounts[T - 3] = StepType.LAST, 0.
  mask[T - 2:] = 0.
  step_types[T - 2:] = 0
  rewards = rng.normal(size=T + 1).astype(np.float32)
  rewards[step_types == StepType.FIRST] = 0.
  return dict(
      logits=rng.normal(size=(T + 1, A)).astype(np.float32) * 2,
      values=rng.normal(size=T + 1).astype(np.float32),
      mu_logits=rng.normal(size=(T + 1, A)).astype(np.float32) * 2,
      actions=rng.integers(0, A, size=T + 1).astype(np.int32),
      rewards=rewards, discounts=discounts, step_types=step_types, mask=mask)


@pytest.mark.parametrize('lam,rho_bar,pg_rho_bar', [
    (1.0, 1.0, 1.0), (0.9, 1.0, 1.0), (1.0, 0.5, 2.0), (0.8, 3.0, 0.7)])
def test_vtrace_loss_matches_numpy(lam, rho_bar, pg_rho_bar):
  rng = np.random.default_rng(0)
  T = 14
  for _ in range(3):
    seq = random_sequence(rng, T)
    ref = numpy_vtrace_loss(gamma=0.9, lam=lam, rho_bar=rho_bar,
                            pg_rho_bar=pg_rho_bar, **seq)
    out = impala.vtrace_sequence_loss(
        seq['logits'], seq['values'], seq['mu_logits'], seq['actions'],
        seq['rewards'], seq['discounts'], seq['step_types'], seq['mask'],
        discount=0.9, lambda_=lam, clip_rho_threshold=rho_bar,
        clip_pg_rho_threshold=pg_rho_bar)
    np.testing.assert_allclose(out.valid, ref['valid'])
    np.testing.assert_allclose(out.rho, ref['rho'], rtol=1e-5)
    np.testing.assert_allclose(out.vs_targets * ref['valid'],
                               ref['vs'] * ref['valid'], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.baseline_loss, ref['baseline_loss'],
                               rtol=1e-4)
    np.testing.assert_allclose(out.pg_loss, ref['pg_loss'], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(out.entropy, ref['entropy'], rtol=1e-5)
    np.testing.assert_allclose(out.kl, ref['kl'], rtol=1e-4, atol=1e-6)
    assert out.num_valid == ref['valid'].sum()


def test_vtrace_cuts_at_episode_boundaries():
  """Values after a LAST step never leak into the targets before it."""
  rng = np.random.default_rng(1)
  seq = random_sequence(rng, 14)
  kwargs = dict(discount=0.9, lambda_=1.0)
  base = impala.vtrace_sequence_loss(
      seq['logits'], seq['values'], seq['mu_logits'], seq['actions'],
      seq['rewards'], seq['discounts'], seq['step_types'], seq['mask'], **kwargs)
  values = seq['values'].copy()
  values[8:] += 100.  # Change everything from the third episode on.
  moved = impala.vtrace_sequence_loss(
      seq['logits'], values, seq['mu_logits'], seq['actions'],
      seq['rewards'], seq['discounts'], seq['step_types'], seq['mask'], **kwargs)
  np.testing.assert_allclose(base.vs_targets[:7], moved.vs_targets[:7],
                             rtol=1e-6)
  # Truncated episode 2 (LAST at 7, discount 1) bootstraps from V(x_7).
  assert not np.allclose(base.vs_targets[6], seq['rewards'][7])


def test_policy_gradient_matches_analytic_gradient():
  """d pg_loss / d logits = -valid * adv * (onehot(a) - pi), by hand."""
  rng = np.random.default_rng(2)
  seq = random_sequence(rng, 12)
  ref = numpy_vtrace_loss(gamma=0.95, lam=1.0, rho_bar=1.0, pg_rho_bar=1.0,
                          **seq)

  def pg(logits):
    return impala.vtrace_sequence_loss(
        logits, seq['values'], seq['mu_logits'], seq['actions'],
        seq['rewards'], seq['discounts'], seq['step_types'], seq['mask'],
        discount=0.95).pg_loss

  grad = np.asarray(jax.grad(pg)(jnp.asarray(seq['logits'])))
  T = 12
  onehot = np.eye(A)[seq['actions'][:T]]
  expected = -(ref['valid'] * ref['adv'])[:, None] * (onehot - ref['pi'])
  np.testing.assert_allclose(grad[:T], expected, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grad[T], 0.)


# ---------------------------------------------------------- population update
def _config(**overrides):
  c = impala_configs.get_config('toy')
  c.network.observation_key = 'FEATURES'
  c.network.mlp_sizes = (16,)
  c.learning_rate = 1e-2
  for k, v in overrides.items():
    if '.' in k:
      a, b = k.split('.')
      c[a][b] = v
    else:
      c[k] = v
  return c


SPEC = EnvSpec(num_agents=2, observation={'FEATURES': ArraySpec((OBS,), np.float32)},
               num_actions=A, max_episode_steps=10)


def random_batch(rng, leading, T, lstm_size=0):
  shape = tuple(leading) + (T + 1,)
  seqs = [random_sequence(rng, T) for _ in range(int(np.prod(leading)))]
  stack = lambda k: np.stack([s[k] for s in seqs]).reshape(shape + seqs[0][k].shape[1:])
  core = ()
  if lstm_size:
    import haiku as hk  # pylint: disable=g-import-not-at-top
    core = hk.LSTMState(
        hidden=rng.normal(size=tuple(leading) + (lstm_size,)).astype(np.float32),
        cell=rng.normal(size=tuple(leading) + (lstm_size,)).astype(np.float32))
  return Trajectory(
      observation={'FEATURES': rng.normal(size=shape + (OBS,)).astype(np.float32)},
      prev_action=rng.integers(0, A, size=shape).astype(np.int32),
      prev_reward=rng.normal(size=shape).astype(np.float32),
      action=stack('actions'), reward=stack('rewards'),
      discount=stack('discounts'), step_type=stack('step_types'),
      behaviour_logits=stack('mu_logits'), mask=stack('mask'),
      core_state=core,
      policy_version=np.zeros(tuple(leading), np.int32))


@pytest.mark.parametrize('overrides', [
    {}, {'popart': True, 'network.lstm_size': 8, 'optimizer': 'rmsprop'}])
def test_vmapped_population_update_equals_separate_updates(overrides):
  config = _config(**overrides)
  algo = impala.make(SPEC, config)
  P, B, T = 3, 4, 10
  rng = np.random.default_rng(3)
  batch = random_batch(rng, (P, B), T, config.network.lstm_size)
  state = learner_lib.init_population(algo, jax.random.PRNGKey(0), P)
  # Members start different (independent init).
  assert any(not np.allclose(w[0], w[1]) for w in jax.tree.leaves(state.params))
  update = learner_lib.make_population_update(algo.update, jax.devices()[:1])
  separate = []
  single = jax.jit(algo.update)
  for m in range(P):
    s_m = jax.tree.map(lambda x: x[m], state)
    b_m = jax.tree.map(lambda x: x[m], batch)
    for _ in range(2):
      s_m, _ = single(s_m, b_m)
    separate.append(s_m)
  together = state
  for _ in range(2):
    together, metrics = update(together, batch)
  for m in range(P):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a[m], b, rtol=2e-5, atol=2e-6), together.params, separate[m].params)
  assert metrics['loss'].shape == (P,)
  assert int(together.step[0]) == 2


def test_four_devices_equal_one_device():
  assert len(jax.devices()) >= 4, 'conftest sets 4 host devices'
  config = _config(**{'network.lstm_size': 8, 'popart': True})
  algo = impala.make(SPEC, config)
  P, B, T = 2, 8, 10
  batch = random_batch(np.random.default_rng(4), (P, B), T, 8)
  init = learner_lib.init_population(algo, jax.random.PRNGKey(1), P)
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    update = learner_lib.make_population_update(algo.update, devices)
    state = jax.device_put(jax.tree.map(np.asarray, init), update.replicated)
    for _ in range(3):
      state, metrics = update(state, batch)
    results.append((jax.tree.map(np.asarray, state.params),
                    {k: np.asarray(v) for k, v in metrics.items()}))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               results[0][0], results[1][0])
  np.testing.assert_allclose(results[0][1]['loss'], results[1][1]['loss'],
                             rtol=1e-4)
  # And the 4-device update really ran sharded.
  update4 = learner_lib.make_population_update(algo.update, jax.devices()[:4])
  assert len(update4.batch_sharding.device_set) == 4


def test_batch_not_divisible_by_devices_is_a_clear_error():
  algo = impala.make(SPEC, _config())
  update = learner_lib.make_population_update(algo.update, jax.devices()[:4])
  state = learner_lib.init_population(algo, jax.random.PRNGKey(0), 1)
  batch = random_batch(np.random.default_rng(0), (1, 6), 10)
  with pytest.raises(ValueError, match='divisible'):
    update(jax.device_put(state, update.replicated), batch)


def test_popart_preserves_outputs_and_tracks_targets():
  """After an update with a zero learning rate, PopArt only rescales: the
  unnormalised values are unchanged while the statistics move to the targets."""
  config = _config(popart=True, popart_step_size=0.5, learning_rate=0.0)
  algo = impala.make(SPEC, config)
  batch = random_batch(np.random.default_rng(5), (1, 4), 10)
  batch = batch._replace(reward=batch.reward * 50 + 100)
  state = learner_lib.init_population(algo, jax.random.PRNGKey(0), 1)
  update = learner_lib.make_population_update(algo.update, jax.devices()[:1])
  from marl_jax.networks import make_actor_critic, AgentInput  # pylint: disable=g-import-not-at-top
  net = make_actor_critic(SPEC, config.network)
  obs = {'FEATURES': jnp.asarray(batch.observation['FEATURES'][0, :, 0])}
  inputs = AgentInput(obs, jnp.asarray(batch.prev_action[0, :, 0]),
                      jnp.asarray(batch.prev_reward[0, :, 0]),
                      jnp.asarray(batch.step_type[0, :, 0]))

  def unnormalised(s):
    p = jax.tree.map(lambda x: x[0], s.params)
    (_, v), _ = net.step(p, inputs, ())
    pa = s.extras['popart']
    return np.asarray(v * pa.scale[0, 0] + pa.shift[0, 0])

  before = unnormalised(state)
  new_state, metrics = update(state, batch)
  after = unnormalised(new_state)
  np.testing.assert_allclose(before, after, rtol=1e-4, atol=1e-4)
  assert float(metrics['popart_shift'][0]) > 10.  # moved towards ~100+ targets


def test_bad_optimizer_is_named():
  with pytest.raises(ValueError, match='optimizer'):
    impala.make(SPEC, _config(optimizer='sgd'))


def test_act_greedy_and_sampled():
  algo = impala.make(SPEC, _config())
  state = algo.init(jax.random.PRNGKey(0))
  from marl_jax.networks import AgentInput  # pylint: disable=g-import-not-at-top
  x = AgentInput({'FEATURES': jnp.ones((3, OBS))}, jnp.zeros(3, jnp.int32),
                 jnp.zeros(3), jnp.zeros(3, jnp.int32))
  a, extras, _ = algo.act(state.params, x, (), jax.random.PRNGKey(1), True)
  np.testing.assert_array_equal(a, jnp.argmax(extras.logits, -1))
  counts = np.zeros(A)
  for i in range(200):
    a, _, _ = algo.act(state.params, x, (), jax.random.PRNGKey(i), False)
    counts[np.asarray(a)] += 1
  assert (counts > 0).sum() == A  # near-uniform initial policy samples all


# ------------------------------------------------------------ PopArt moments
def _finite(tree):
  return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree))


def numpy_popart(shift, second, targets, valid, beta, lb, ub):
  """One PopArt step (van Hasselt et al., 2016, Alg. 1) on the valid targets'
  mean and mean square only; nothing moves when none is valid."""
  t = np.asarray(targets, np.float64)[np.asarray(valid) > 0]
  if t.size:
    shift = shift + beta * (t.mean() - shift)
    second = second + beta * ((t ** 2).mean() - second)
  scale = np.sqrt(np.clip(second - shift ** 2, lb ** 2, ub ** 2))
  return shift, second, scale


def test_popart_update_matches_numpy_on_nearly_empty_batches():
  """Masked moving averages, over many updates where at most a few of 40
  targets are valid (and some batches none); invalid targets hold junk."""
  rng = np.random.default_rng(6)
  import rlax  # pylint: disable=g-import-not-at-top
  state = rlax.PopArtState(jnp.zeros(1), jnp.ones(1), jnp.ones(1))
  shift, second = 0., 1.
  update = jax.jit(lambda s, t, v: impala.popart_update(
      s, t, v, step_size=0.3, scale_lb=1e-4, scale_ub=1e6))
  for k in range(300):
    valid = np.zeros((4, 10), np.float32)
    valid.flat[rng.choice(40, size=k % 3, replace=False)] = 1.
    targets = rng.normal(size=(4, 10)).astype(np.float32) * 5 + 20
    targets[valid == 0] = rng.choice([1e30, -1e30, np.inf, np.nan],
                                     size=int((valid == 0).sum()))
    state = update(state, jnp.asarray(targets), jnp.asarray(valid))
    shift, second, scale = numpy_popart(shift, second, targets, valid, 0.3,
                                        1e-4, 1e6)
    assert _finite(state), k
  np.testing.assert_allclose(state.shift, [shift], rtol=1e-4)
  np.testing.assert_allclose(state.second_moment, [second], rtol=1e-4)
  np.testing.assert_allclose(state.scale, [scale], rtol=1e-3)


def _one_valid_transition_batch(rng, B, T, reward):
  """A batch with a single valid transition (row 0, step 0 -> step 1, which
  terminates) among ``B * T``. The behaviour policy gave the taken action
  probability ~e^-60, so rho is clipped to 1 and the V-trace target of that
  transition is exactly ``reward``, whatever the network's values."""
  batch = random_batch(rng, (B,), T)
  step_type = np.zeros((B, T + 1), np.int32)
  step_type[:, 0] = StepType.FIRST
  step_type[0, 1] = StepType.LAST
  mask = np.zeros((B, T + 1), np.float32)
  mask[:, 0] = 1.
  mask[0, 1] = 1.
  discount = np.ones((B, T + 1), np.float32)
  discount[0, 1] = 0.
  rewards = np.zeros((B, T + 1), np.float32)
  rewards[0, 1] = reward
  action = np.zeros((B, T + 1), np.int32)
  mu = np.zeros((B, T + 1, A), np.float32)
  mu[..., 0] = -60.
  return batch._replace(step_type=step_type, mask=mask, discount=discount,
                        reward=rewards, action=action, behaviour_logits=mu)


def test_popart_stays_finite_with_almost_all_transitions_invalid():
  """1 valid transition in 40 with a large PopArt step: the old second slot
  (step 39 x 0.1 per update) diverged and inf * 0 made the statistics NaN.
  With a learning rate of 0 (PopArt preserves the outputs) the one target is
  the reward, so the statistics are numpy's moving averages of the rewards."""
  config = _config(popart=True, popart_step_size=0.1, learning_rate=0.0)
  algo = impala.make(SPEC, config)
  state = algo.init(jax.random.PRNGKey(0))
  update = jax.jit(algo.update)
  rng = np.random.default_rng(7)
  shift, second = 0., 1.
  for k in range(150):
    reward = float(rng.normal() * 3 + 10)
    batch = _one_valid_transition_batch(rng, 4, 10, reward)
    state, metrics = update(state, batch)
    assert float(metrics['valid_fraction']) == pytest.approx(1 / 40)
    shift, second, scale = numpy_popart(shift, second, [reward], [1.], 0.1,
                                        config.popart_scale_lb,
                                        config.popart_scale_ub)
    pa = state.extras['popart']
    assert _finite(pa), k
    assert _finite(state.params), k
  np.testing.assert_allclose(pa.shift, [shift], rtol=1e-4)
  np.testing.assert_allclose(pa.second_moment, [second], rtol=1e-4)
  np.testing.assert_allclose(pa.scale, [scale], rtol=1e-3)


# ------------------------------------------------------------- action masks
MASKED_SPEC = SPEC._replace(observation={
    'FEATURES': ArraySpec((OBS,), np.float32),
    'ACTION_MASK': ArraySpec((A,), np.float32)})


def _action_mask(rng, shape, actions=None):
  mask = (rng.random(shape + (A,)) < 0.5).astype(np.float32)
  mask[..., 0] = 1.  # at least one available action
  if actions is not None:  # the actions taken were available
    np.put_along_axis(mask, actions[..., None], 1., axis=-1)
  return mask


def test_act_never_picks_a_masked_action():
  algo = impala.make(MASKED_SPEC, _config())
  params = algo.init(jax.random.PRNGKey(0)).params
  from marl_jax.networks import AgentInput  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(8)
  rows = 64
  mask = _action_mask(rng, (rows,))
  x = AgentInput({'FEATURES': rng.normal(size=(rows, OBS)).astype(np.float32),
                  'ACTION_MASK': mask},
                 jnp.zeros(rows, jnp.int32), jnp.zeros(rows),
                 jnp.zeros(rows, jnp.int32))
  act = jax.jit(algo.act, static_argnums=4)
  picked = np.zeros((rows, A))
  for i in range(100):
    a, extras, _ = act(params, x, (), jax.random.PRNGKey(i), False)
    picked[np.arange(rows), np.asarray(a)] += 1
  assert picked[mask == 0].sum() == 0
  assert picked[mask > 0].min() > 0  # near-uniform: every available one
  greedy, extras, _ = act(params, x, (), jax.random.PRNGKey(0), True)
  assert np.all(mask[np.arange(rows), np.asarray(greedy)] > 0)
  # The behaviour logits stored for the learner are the masked ones.
  assert np.all(np.asarray(extras.logits)[mask == 0] < -1e8)


def _masked_entropy(logits, mask):
  """Entropy of the softmax over the available actions only, numpy."""
  logits = np.asarray(logits, np.float64)
  z = np.where(mask > 0, logits, -np.inf)
  z = z - z.max(-1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
  return -np.sum(np.where(mask > 0, p * np.log(np.where(p > 0, p, 1.)), 0.),
                 axis=-1)


def test_learner_entropy_is_the_masked_softmax_entropy():
  config = _config()
  algo = impala.make(MASKED_SPEC, config)
  state = algo.init(jax.random.PRNGKey(0))
  rng = np.random.default_rng(9)
  B, T = 4, 10
  batch = random_batch(rng, (B,), T)
  mask = _action_mask(rng, (B, T + 1), batch.action)
  batch = batch._replace(observation={**batch.observation,
                                      'ACTION_MASK': mask})
  _, metrics = jax.jit(algo.update)(state, batch)
  from marl_jax.algorithms import common  # pylint: disable=g-import-not-at-top
  from marl_jax.networks import make_actor_critic  # pylint: disable=g-import-not-at-top
  net = make_actor_critic(MASKED_SPEC, config.network)
  (logits, _), _ = jax.jit(net.unroll)(
      state.params, common.time_major_inputs(batch), batch.core_state)
  logits = np.swapaxes(np.asarray(logits), 0, 1)  # [B, T+1, A]
  valid = np.stack([common.valid_transitions(batch.step_type[b],
                                             batch.mask[b]) for b in range(B)])
  h = _masked_entropy(logits[:, :-1], mask[:, :-1])
  np.testing.assert_allclose(metrics['entropy'],
                             np.sum(valid * h) / valid.sum(), rtol=1e-5)
  assert np.isfinite(metrics['loss'])
